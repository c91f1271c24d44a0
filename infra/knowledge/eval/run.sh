#!/usr/bin/env bash
# run.sh — the retrieval evaluation: starts the MiniLM embedding server (with its vector cache), runs the
# bench against it, stops the server. Run setup.sh once first.
#
#   bash infra/knowledge/eval/run.sh [extra bench flags, e.g. --out /tmp/cadre-eval/details.jsonl]
#
# Env: EVAL_VENV, EVAL_MODEL (as setup.sh), EVAL_CACHE (vector cache, SQLite), EVAL_PORT (8392).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EVAL_VENV=${EVAL_VENV:-/tmp/cadre-eval/venv}
EVAL_MODEL=${EVAL_MODEL:-/tmp/cadre-eval/minilm}
EVAL_CACHE=${EVAL_CACHE:-/tmp/cadre-eval/vectors.sqlite}
EVAL_PORT=${EVAL_PORT:-8392}

if [[ ! -x "$EVAL_VENV/bin/python" || ! -f "$EVAL_MODEL/model.safetensors" ]]; then
  echo "run.sh: $EVAL_VENV or $EVAL_MODEL/model.safetensors is missing; run bash $HERE/setup.sh first" >&2
  exit 1
fi
"$EVAL_VENV/bin/python" "$HERE/embed_server.py" --model-dir "$EVAL_MODEL" --port "$EVAL_PORT" \
  --cache "$EVAL_CACHE" > "${EVAL_CACHE%.sqlite}-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if curl -sf -o /dev/null "http://127.0.0.1:$EVAL_PORT/health"; then
    break
  fi
  kill -0 "$server" 2>/dev/null || { echo "run.sh: the embedding server exited; see ${EVAL_CACHE%.sqlite}-server.log" >&2; exit 1; }
  sleep 0.2
done
cd "$HERE/../../.."
cargo bench -p cadre-knowledge --bench retrieval -- --embed-url "http://127.0.0.1:$EVAL_PORT/v1" "$@"

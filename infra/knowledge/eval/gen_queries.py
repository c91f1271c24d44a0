#!/usr/bin/env python3
"""Builds the retrieval-evaluation corpus and its (query -> file and symbol) pairs, reproducibly.

    python gen_queries.py [--registry DIR] [--corpus /tmp/cadre-eval/corpus] [--out queries.jsonl]

1. Copies the crates below from cargo's registry (`~/.cargo/registry/src/*/NAME-VERSION`, or the
   `.crate` archive in `~/.cargo/registry/cache/`) into `--corpus`, one directory per crate: that
   directory is what the bench indexes.
2. Parses every `.rs` file under each crate's `src/` with tree-sitter (Rust grammar) and takes the
   public functions, methods, structs, enums, traits, type aliases and constants that carry a `///`
   doc comment. The query is the first sentence of that comment, with markdown links and code marks
   unwrapped and the item's own name removed (so it is not a lookup of the name). Queries that come out
   shorter than 4 words, that are not prose, or that several items share are dropped. At most
   `PER_FILE` items per file are kept, chosen by a hash of their path and symbol (not by position),
   and at most `PER_CRATE` per crate, again by that hash: the selection is deterministic.
3. Adds the hand-written natural questions of `hand_queries.jsonl` (beside this file), whose answers
   name a file and a symbol; their line spans are found by the same parse.

Each output line: {"id", "source": "doc"|"hand", "query", "path" (relative to the corpus root),
"symbol" (`Type::method` or `name`), "kind", "start_line", "end_line"} with 1-based inclusive lines
spanning the doc comment, attributes and the item. A returned chunk answers a query when it is in
`path` and overlaps those lines (or its symbol is `symbol`).

Needs `tree-sitter==0.26.1` and `tree-sitter-rust==0.24.2` (setup.sh installs them).
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile

import tree_sitter
import tree_sitter_rust

CRATES = ["serde_json-1.0.154", "hyper-1.12.0"]
PER_FILE = 6
PER_CRATE = 90
MIN_WORDS = 4

ITEM_KINDS = {
    "function_item": "function",
    "function_signature_item": "function",
    "struct_item": "struct",
    "enum_item": "enum",
    "trait_item": "trait",
    "type_item": "type",
    "const_item": "const",
    "static_item": "static",
}
HERE = os.path.dirname(os.path.abspath(__file__))


def text(src: bytes, node) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def type_name(src: bytes, node) -> str | None:
    """The bare name of an impl's self type: `Foo` for `impl<T> Trait for Foo<T>`."""
    if node is None:
        return None
    if node.type in ("type_identifier", "identifier"):
        return text(src, node)
    if node.type == "generic_type":
        return type_name(src, node.child_by_field_name("type"))
    if node.type == "scoped_type_identifier":
        return type_name(src, node.child_by_field_name("name"))
    if node.type == "reference_type":
        return type_name(src, node.child_by_field_name("type"))
    return None


def doc_before(src: bytes, siblings: list, index: int) -> tuple[list[str], int | None]:
    """The `///` lines just above sibling `index` (attributes may sit between), and the first line."""
    lines: list[str] = []
    first = None
    i = index - 1
    while i >= 0:
        node = siblings[i]
        if node.type == "attribute_item":
            i -= 1
            continue
        if node.type == "line_comment" and any(c.type == "outer_doc_comment_marker" for c in node.children):
            doc = next((c for c in node.children if c.type == "doc_comment"), None)
            lines.insert(0, text(src, doc).rstrip("\n") if doc else "")
            first = node.start_point[0]
            i -= 1
            continue
        break
    return lines, first


def is_pub(node) -> bool:
    return any(c.type == "visibility_modifier" and c.text.decode().startswith("pub") and "(" not in c.text.decode() for c in node.children)


def items(src: bytes, root):
    """Yields (symbol, name, kind, start_line, end_line, doc_lines) for documented items, recursively
    through modules, impl blocks and traits (never into function bodies)."""

    def visit(container_node, container: str | None, in_trait: bool):
        siblings = list(container_node.children)
        for i, node in enumerate(siblings):
            if node.type == "mod_item":
                body = node.child_by_field_name("body")
                if body is not None:
                    yield from visit(body, None, False)
                continue
            if node.type == "impl_item":
                body = node.child_by_field_name("body")
                if body is not None:
                    yield from visit(body, type_name(src, node.child_by_field_name("type")), False)
                continue
            kind = ITEM_KINDS.get(node.type)
            if kind is None:
                continue
            name_node = node.child_by_field_name("name")
            if name_node is None:
                continue
            name = text(src, name_node)
            # Trait members are public through the trait; impl members need their own `pub`.
            if not (in_trait or is_pub(node)):
                continue
            if node.type == "trait_item":
                body = node.child_by_field_name("body")
                if body is not None and is_pub(node):
                    yield from visit(body, name, True)
            doc, first = doc_before(src, siblings, i)
            if not doc:
                continue
            symbol = f"{container}::{name}" if container else name
            if container and kind == "function":
                kind = "method"
            start = (first if first is not None else node.start_point[0]) + 1
            yield symbol, name, kind, start, node.end_point[0] + 1, doc

    yield from visit(root, None, False)


ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|vs|cf)\.", re.IGNORECASE)


def first_sentence(doc: list[str]) -> str:
    """The first sentence of the first paragraph, markdown unwrapped."""
    para: list[str] = []
    for line in doc:
        s = line.strip()
        if not s:
            if para:
                break
            continue
        if s.startswith("#") or s.startswith("```"):
            break
        para.append(s)
    t = " ".join(para)
    t = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", t)  # [text](url)
    t = re.sub(r"\[([^\]]+)\]\[[^\]]*\]", r"\1", t)  # [text][ref]
    t = re.sub(r"\[`?([^\]`]+)`?\]", r"\1", t)  # [`Foo`]
    t = t.replace("`", "")
    masked = ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), t)
    m = re.search(r"[.!?](\s|$)", masked)
    if m:
        masked = masked[: m.start()]
    return masked.replace("\0", ".").strip()


def strip_name(sentence: str, name: str, symbol: str) -> str:
    """Removes the item's own name (and `Type::name`) as whole words, case-insensitively."""
    out = sentence
    for word in sorted({symbol, name}, key=len, reverse=True):
        out = re.sub(r"(?<![A-Za-z0-9_])" + re.escape(word) + r"(\(\))?(?![A-Za-z0-9_])", " ", out, flags=re.IGNORECASE)
    out = re.sub(r"\s+", " ", out)
    out = re.sub(r"\s+([,;:.)])", r"\1", out).strip(" ,;:-")
    return out


def prose(q: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", q)
    if len(words) < MIN_WORDS:
        return False
    low = q.lower()
    return not (low.startswith("see ") or low.startswith("deprecated") or low.startswith("alias") or "todo" in low)


def rank_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    default_registry = (sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))) or [""])[0]
    ap.add_argument("--registry", default=default_registry)
    ap.add_argument("--corpus", default="/tmp/cadre-eval/corpus")
    ap.add_argument("--out", default=os.path.join(HERE, "queries.jsonl"))
    ap.add_argument("--hand", default=os.path.join(HERE, "hand_queries.jsonl"))
    args = ap.parse_args()

    if os.path.exists(args.corpus):
        shutil.rmtree(args.corpus)
    os.makedirs(args.corpus)
    for crate in CRATES:
        src = os.path.join(args.registry, crate)
        if os.path.isfile(os.path.join(src, "Cargo.toml")):
            shutil.copytree(src, os.path.join(args.corpus, crate), ignore=shutil.ignore_patterns(".cargo-ok"))
            continue
        # Fetched but not unpacked: the .crate archive in cargo's cache holds the same files.
        cached = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/cache/*/{crate}.crate")))
        if not cached:
            sys.exit(f"{src} is missing; fetch {crate} (e.g. bash shared/anchors/index/make-corpus.sh) "
                     "or pass --registry")
        with tarfile.open(cached[0]) as archive:
            archive.extractall(args.corpus, filter="data")
        for marker in glob.glob(os.path.join(args.corpus, crate, ".cargo-ok")):
            os.remove(marker)

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))
    by_file: dict[str, list[dict]] = {}
    symbols: dict[tuple[str, str], dict] = {}
    for crate in CRATES:
        for path in sorted(glob.glob(os.path.join(args.corpus, crate, "src", "**", "*.rs"), recursive=True)):
            rel = os.path.relpath(path, args.corpus).replace(os.sep, "/")
            with open(path, "rb") as f:
                src = f.read()
            tree = parser.parse(src)
            for symbol, name, kind, start, end, doc in items(src, tree.root_node):
                entry = {"path": rel, "symbol": symbol, "kind": kind, "start_line": start, "end_line": end}
                symbols.setdefault((rel, symbol), entry)
                query = strip_name(first_sentence(doc), name, symbol)
                if prose(query):
                    by_file.setdefault(rel, []).append({"query": query, **entry})

    # Queries shared by several items ("Returns the argument unchanged") are ambiguous: drop them all.
    counts: dict[str, int] = {}
    for entries in by_file.values():
        for e in entries:
            counts[e["query"].lower()] = counts.get(e["query"].lower(), 0) + 1
    chosen: dict[str, list[dict]] = {c: [] for c in CRATES}
    for rel, entries in sorted(by_file.items()):
        unique = [e for e in entries if counts[e["query"].lower()] == 1]
        unique.sort(key=lambda e: rank_key(e["path"], e["symbol"]))
        chosen[rel.split("/")[0]].extend(unique[:PER_FILE])
    out: list[dict] = []
    for crate in CRATES:
        picks = sorted(chosen[crate], key=lambda e: rank_key("crate", e["path"], e["symbol"]))[:PER_CRATE]
        picks.sort(key=lambda e: (e["path"], e["start_line"]))
        out.extend({"source": "doc", **e} for e in picks)

    with open(args.hand) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            hand = json.loads(line)
            entry = symbols.get((hand["path"], hand["symbol"]))
            if entry is None:
                sys.exit(f"{args.hand}:{n}: no documented item {hand['symbol']} in {hand['path']}; fix the answer")
            out.append({"source": "hand", "query": hand["query"], **entry})

    with open(args.out, "w") as f:
        for i, e in enumerate(out, 1):
            row = {"id": i, "source": e["source"], "query": e["query"], "path": e["path"], "symbol": e["symbol"],
                   "kind": e["kind"], "start_line": e["start_line"], "end_line": e["end_line"]}
            f.write(json.dumps(row) + "\n")
    docs = sum(1 for e in out if e["source"] == "doc")
    print(f"{len(out)} pairs ({docs} from doc comments, {len(out) - docs} hand-written) -> {args.out}; "
          f"corpus {args.corpus} ({', '.join(CRATES)}); {len(symbols)} documented public items seen",
          file=sys.stderr)


if __name__ == "__main__":
    main()

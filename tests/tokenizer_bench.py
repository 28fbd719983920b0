"""Tokenizer cost: build time, anonymous memory, encode throughput vs llama-cpp-python.

    python tests/tokenizer_bench.py [MODEL.gguf]     (default: the default model)

Run it in a fresh process: the RssAnon numbers are this process's own.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def rss_anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def main(path=None):
    from edge_runtime import models
    from edge_runtime.gguf import open_gguf
    from edge_runtime.tokenizer import Tokenizer
    from tokenizer_corpus import long_text

    path = path or models.default()
    a0 = rss_anon_kib()
    g = open_gguf(path)
    a1 = rss_anon_kib()
    t0 = time.perf_counter()
    tok = Tokenizer.from_gguf(g)
    build_ms = (time.perf_counter() - t0) * 1e3
    a2 = rss_anon_kib()
    print(f"model: {path}")
    print(f"build: {build_ms:.1f} ms; RssAnon +{(a1 - a0) / 1024:.2f} MiB open_gguf, "
          f"+{(a2 - a1) / 1024:.2f} MiB tokenizer")

    text = long_text([tok.token_to_piece(i).decode() for i in range(46, 53)])
    data = text.encode()
    ids = tok.encode(text)          # warm-up (and the count of tokens)
    t0 = time.perf_counter()
    ids = tok.encode(text)
    ours = time.perf_counter() - t0
    print(f"text: {len(data) / 1024:.0f} KiB -> {len(ids)} tokens")
    print(f"edge_runtime: {ours * 1e3:.0f} ms, {len(ids) / ours / 1e6:.2f} M tokens/s")
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python not installed: no comparison")
        return
    llama = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    ref = llama.tokenize(data, add_bos=True, special=True)
    t0 = time.perf_counter()
    ref = llama.tokenize(data, add_bos=True, special=True)
    theirs = time.perf_counter() - t0
    print(f"llama-cpp-python: {theirs * 1e3:.0f} ms, {len(ref) / theirs / 1e6:.2f} M tokens/s; "
          f"same ids: {ref == ids}")


if __name__ == "__main__":
    main(*sys.argv[1:])

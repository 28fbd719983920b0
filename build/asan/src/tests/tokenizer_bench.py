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
    from tokenizer_corpus import PROSE, SCRIPTS, long_text

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

    markers = [tok.token_to_piece(i).decode() for i in range(46, 53)]
    prose = " ".join(" ".join(s.split()) for s in PROSE + SCRIPTS) + " "
    texts = {"mixed corpus (special-token heavy)": long_text(markers),
             "prose (few special tokens)": prose * 150}
    try:
        import llama_cpp
        llama = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    except ImportError:
        llama = None
        print("llama-cpp-python not installed: no comparison")
    for name, text in texts.items():
        data = text.encode()
        ours, ids = best_of(lambda: tok.encode(text))
        print(f"{name}: {len(data) / 1024:.0f} KiB -> {len(ids)} tokens")
        print(f"  edge_runtime:     {ours * 1e3:6.0f} ms  {len(ids) / ours / 1e6:.2f} M tokens/s")
        if llama is None:
            continue
        theirs, ref = best_of(lambda: llama.tokenize(data, add_bos=True, special=True))
        print(f"  llama-cpp-python: {theirs * 1e3:6.0f} ms  {len(ref) / theirs / 1e6:.2f} M tokens/s"
              f"  (same ids: {ref == ids})")


def best_of(fn, runs=3):
    """(fastest wall time, result) over a few runs: the machine is shared."""
    best = None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, out


if __name__ == "__main__":
    main(*sys.argv[1:])

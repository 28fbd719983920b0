"""tools/bench.py keeps running as the engine changes: its kernel micro-benchmark and its
edge_runtime worker, on a tiny model (what they print is checked for shape, never for speed)."""
import json
import os
import re
import subprocess
import sys

from edge_runtime import _native

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "bench.py")


def run_bench(*args):
    out = subprocess.run([sys.executable, BENCH, *args], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kernel_only_reports_every_kernel(tiny_gguf_factory):
    text = run_bench("--kernel-only", "--reps", "1", "--model", tiny_gguf_factory(n_vocab=2048))
    assert "stream = numpy sum" in text
    for name in _native.kernels():
        row = re.search(rf"^\| {name} \| ([0-9.]+) \| \d+% \| ([0-9.]+) \| \d+% \|$", text, re.M)
        assert row, (name, text)
        assert float(row.group(1)) > 0 and float(row.group(2)) > 0


def test_worker_reports_prefill_decode_and_constrained(tiny_gguf_factory):
    model = tiny_gguf_factory(n_vocab=2048)
    line = run_bench("--worker", "ours", "--model", model, "--threads", "1",
                     "--prompt-tokens", "12", "--decode", "3", "--ctx", "64").splitlines()[-1]
    r = json.loads(line)
    assert r["engine"] == "ours" and r["prompt_tokens"] == 12 and r["threads"] == 1
    for key in ("prefill_tok_s", "decode_tok_s", "constrained_decode_tok_s", "stream_gb_s"):
        assert r[key] > 0, key
    assert r["bytes_per_token"] > 0 and r["peak_anon"] > 0

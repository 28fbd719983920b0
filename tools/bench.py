"""Side-by-side benchmark: edge_runtime vs llama-cpp-python on the same GGUF, in one run.

Each measurement is a fresh subprocess (so peak RSS is its own), alternating ours / llama.cpp
over several repetitions; the report gives medians and ratios. Same prompt ids, same thread
count, greedy decoding of the same number of tokens. Every table names the CPU and the
single-core stream rate measured in the same run, and decode says which fraction of it we move.

    python tools/bench.py [--model P] [--threads 1 2] [--reps 3] [--out docs/BENCHMARKS.md]
    python tools/bench.py --kernel-only [--reps 5]   # GB/s of each Q8_0 kernel (ER_KERNEL: one)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from doc_section import write_section   # tools/ is on sys.path when run as a script

PROMPT = ("The engineers gathered around the small board on the bench and watched the agent "
          "answer its first request. ")


def _status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Peak:
    """Peak anonymous / file-backed RSS, sampled after every step (memory only grows)."""

    def __init__(self):
        self.anon = self.file = self.rss = 0

    def sample(self):
        s = _status()
        self.anon = max(self.anon, s.get("RssAnon", 0))
        self.file = max(self.file, s.get("RssFile", 0))
        self.rss = max(self.rss, s.get("VmRSS", 0))


def worker(engine, model, threads, n_prompt, n_decode, ctx):
    t0 = time.perf_counter()
    peak = Peak()
    import numpy as np
    if engine == "ours":
        import edge_runtime as er
        m = er.Model.load(model, max_inference_len=ctx, threads=threads)
        ids = _prompt_ids(m.tokenizer.encode, n_prompt)
        peak.sample()
        evaluate = m.eval
    else:
        import llama_cpp
        llm = llama_cpp.Llama(model, n_ctx=ctx, n_batch=512, n_threads=threads,
                              n_threads_batch=threads, swa_full=False, verbose=False)
        ids = _prompt_ids(lambda s: llm.tokenize(s.encode(), add_bos=True, special=True), n_prompt)
        peak.sample()

        def evaluate(toks):   # last-position logits (llm.scores is filled only with logits_all)
            llm.eval(toks)
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))
    t1 = time.perf_counter()
    logits = evaluate(ids)
    t2 = time.perf_counter()
    tok = int(np.argmax(logits))
    first_token = t2 - t0
    peak.sample()
    t3 = time.perf_counter()
    for _ in range(n_decode):
        tok = int(np.argmax(evaluate([tok])))
        peak.sample()
    t4 = time.perf_counter()
    constrained = None
    if engine == "ours":
        # a grammar-constrained step: logits for 64 allowed ids only (sparse lm_head rows)
        rows = np.arange(1000, 1064, dtype=np.int32)
        t5 = time.perf_counter()
        for _ in range(n_decode):
            tok = int(rows[np.argmax(m.eval([tok], rows=rows))])
        constrained = n_decode / (time.perf_counter() - t5)
    return {"engine": engine, "constrained_decode_tok_s": constrained,
            "bytes_per_token": _decode_bytes(model) if engine == "ours" else None,
            "stream_gb_s": stream_rate() if engine == "ours" else None, "threads": threads,
            "prompt_tokens": len(ids),
            "prefill_tok_s": len(ids) / (t2 - t1), "decode_tok_s": n_decode / (t4 - t3),
            "load_to_first_token_s": first_token, "load_s": t1 - t0,
            "peak_anon": peak.anon, "peak_file": peak.file, "peak_rss": peak.rss}


def _decode_bytes(path):
    """Weight bytes one decode step reads: every layer tensor, the output norm and the lm_head
    (the tied embedding table when there is no output.weight)."""
    from edge_runtime import open_gguf
    g = open_gguf(path)
    head = g.tensors.get("output.weight") or g.tensors["token_embd.weight"]
    return sum(t.nbytes for n, t in g.tensors.items() if n.startswith("blk.")) + head.nbytes


STREAM_BYTES = 256 << 20


def stream_rate(reps=3, clock=time.perf_counter):
    """Single-core read stream in GB/s, independent of our code: numpy summing 256 MiB of
    float64 (far beyond the caches), best of reps. The ceiling for a one-thread decode step."""
    import numpy as np
    a = np.ones(STREAM_BYTES // 8)
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        a.sum()
        best = min(best, clock() - t0)
    return a.nbytes / best / 1e9


def kernel_rates(model, names, reps, clock):
    """GB/s of one-token GEMVs on one thread, per kernel: over the lm_head, and over every
    body matrix in layer order (as a decode step reads them, so none is still cached)."""
    import numpy as np
    from edge_runtime import _native, open_gguf
    g = open_gguf(model)
    head = g.tensors.get("output.weight") or g.tensors["token_embd.weight"]
    body = [t for n, t in g.tensors.items() if n.startswith("blk.") and t.type == "Q8_0"]
    x = np.random.default_rng(0).standard_normal(max(t.shape[0] for t in body + [head]))
    x = x.astype(np.float32)
    xq = np.empty(x.size // 32 * 48, np.uint8)      # activation blocks, native/q8_0.h
    _native.testing.quantize_act((x.ctypes.data, x.nbytes), (xq.ctypes.data, xq.nbytes), x.size)
    y = np.empty(max(t.shape[1] for t in body + [head]), np.float32)

    def gemv(name, t):
        _native.testing.q8_0_gemm(name, (g.address() + t.offset, t.nbytes),
                                  (xq.ctypes.data, xq.nbytes), (y.ctypes.data, y.nbytes),
                                  t.shape[0], t.shape[1], 1)

    out = {}
    for name in names:
        for label, mats in (("lm_head", [head]), ("body", body)):
            best = float("inf")
            for _ in range(reps):
                t0 = clock()
                for t in mats:
                    gemv(name, t)
                best = min(best, clock() - t0)
            out[name, label] = sum(t.nbytes for t in mats) / best / 1e9
    return out, head, body


def kernel_report(model, reps):
    from edge_runtime import _native
    forced = os.environ.get("ER_KERNEL")
    names = [forced] if forced else _native.kernels()
    # the calling thread's CPU time: time slices lost to other processes on a shared machine
    # do not count (memory contention still does)
    clock = time.thread_time
    stream = stream_rate(reps, clock)
    rates, head, body = kernel_rates(model, names, reps, clock)
    stream = max(stream, stream_rate(reps, clock))
    lines = [f"Q8_0 one-token GEMV on one thread, {cpu_name()} ({platform.machine()}); "
             f"best of {reps} by thread CPU time; stream = numpy sum over {STREAM_BYTES >> 20} "
             f"MiB: {stream:.1f} GB/s; load average {_loadavg()}", "",
             f"| kernel | lm_head {head.shape[1]} x {head.shape[0]} GB/s | vs stream | "
             f"body ({len(body)} matrices, {sum(t.nbytes for t in body) / 1e6:.0f} MB) GB/s | "
             "vs stream |", "|---|---:|---:|---:|---:|"]
    for name in names:
        h, b = rates[name, "lm_head"], rates[name, "body"]
        lines.append(f"| {name} | {h:.1f} | {h / stream:.0%} | {b:.1f} | {b / stream:.0%} |")
    return "\n".join(lines)


def _loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "unknown"


def _prompt_ids(encode, n):
    ids = encode(PROMPT * (n // 10 + 2))
    return ids[:n]


def run_one(engine, args, threads):
    cmd = [sys.executable, __file__, "--worker", engine, "--model", args.model, "--threads",
           str(threads), "--prompt-tokens", str(args.prompt_tokens), "--decode", str(args.decode),
           "--ctx", str(args.ctx)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


METRICS = [("prefill_tok_s", "prefill tok/s", True), ("decode_tok_s", "decode tok/s", True),
           ("load_to_first_token_s", "load → first token (s)", False),
           ("peak_anon", "peak anon RSS (MiB)", False), ("peak_file", "peak file RSS (MiB)", False),
           ("peak_rss", "peak RSS (MiB)", False)]


def report(results, args):
    lines = ["# Benchmarks: edge_runtime vs llama.cpp", "",
             f"Generated by `python tools/bench.py --threads {' '.join(map(str, args.threads))} "
             f"--reps {args.reps} --prompt-tokens {args.prompt_tokens} --decode {args.decode} "
             f"--ctx {args.ctx}` on {time.strftime('%Y-%m-%d')}.", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"{cpu_name()}; shared and noisy, so only the ratios (same run, alternating A/B) "
             f"mean anything; load average at the end of the run: {_loadavg()}",
             f"- model: `{os.path.basename(args.model)}`",
             f"- prompt {args.prompt_tokens} tokens, then {args.decode} greedy decode steps; "
             f"context {args.ctx}; edge_runtime's `{_our_kernel()}` kernel; "
             f"llama-cpp-python {_llama_version()} with swa_full=False",
             f"- each cell: median of {args.reps} fresh processes; ratio = ours / llama.cpp "
             f"(for time and memory, lower is better)",
             "- agent latency (request → tool call, prefix KV reuse): "
             "[BENCHMARKS_AGENT.md](BENCHMARKS_AGENT.md), written by tools/bench_agent.py", ""]
    for threads in args.threads:
        lines += [f"## {threads} thread{'s' if threads > 1 else ''}", "",
                  "| metric | edge_runtime | llama.cpp | ratio |", "|---|---:|---:|---:|"]
        for key, label, _ in METRICS:
            med = {}
            for eng in ("ours", "llama"):
                vals = [r[key] for r in results if r["engine"] == eng and r["threads"] == threads]
                med[eng] = statistics.median(vals)
            scale = 2 ** 20 if key.startswith("peak") else 1
            fmt = "{:.0f}" if scale > 1 or key.endswith("tok_s") else "{:.3f}"
            lines.append(f"| {label} | {fmt.format(med['ours'] / scale)} | "
                         f"{fmt.format(med['llama'] / scale)} | {med['ours'] / med['llama']:.2f}× |")
        ours = [r["constrained_decode_tok_s"] for r in results
                if r["engine"] == "ours" and r["threads"] == threads]
        free = [r["decode_tok_s"] for r in results if r["engine"] == "llama" and r["threads"] == threads]
        c, f = statistics.median(ours), statistics.median(free)
        lines.append(f"| constrained decode tok/s (64 allowed rows) vs llama.cpp free decode | "
                     f"{c:.0f} | {f:.0f} | {c / f:.2f}× |")
        ours_runs = [r for r in results if r["engine"] == "ours" and r["threads"] == threads]
        per_tok = ours_runs[0]["bytes_per_token"]
        dec = statistics.median(r["decode_tok_s"] for r in ours_runs)
        stream = statistics.median(r["stream_gb_s"] for r in ours_runs)
        moved = per_tok * dec / 1e9
        lines += ["", f"CPU: {cpu_name()}; single-core stream rate measured in this run "
                  f"(numpy sum over {STREAM_BYTES >> 20} MiB, median of the runs): "
                  f"{stream:.1f} GB/s. Decode reads {per_tok / 1e6:.0f} MB of weights per token, so "
                  f"{dec:.1f} tok/s moves {moved:.1f} GB/s = {moved / stream:.0%} of one core's "
                  f"stream rate (at 1 thread, the ceiling is {stream * 1e9 / per_tok:.0f} tok/s)."]
        lines.append("")
    return "\n".join(lines)


def cpu_name():
    """The model name, family/model numbers and the SIMD features our kernels choose among
    (a VM may report a generic name: "Intel(R) Xeon(R) Processor")."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        return platform.processor() or "unknown CPU"
    flags = set((info.get("flags") or info.get("Features") or "").split())
    simd = [f for f in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")
            if f in flags]
    name = info.get("model name") or info.get("CPU part", "unknown CPU")
    ident = f"family {info['cpu family']} model {info['model']}, " if "cpu family" in info else ""
    return f"{name} ({ident}{' '.join(simd) or 'no SIMD flags'})"


def _our_kernel():
    from edge_runtime import _native
    return _native.selected_kernel()


def _llama_version():
    """The version and the CPU features the llama.cpp build uses (it depends on build flags)."""
    try:
        import llama_cpp
    except ImportError:
        return "not installed"
    info = llama_cpp.llama_print_system_info().decode()
    feats = [k.strip() for k, _, v in (f.partition("=") for f in info.split("|"))
             if v.strip() == "1" and k.strip() in ("AVX2", "AVX512", "AVX512_VNNI", "AVX_VNNI",
                                                    "AMX_INT8", "NEON", "DOTPROD")]
    return f"{llama_cpp.__version__} (built with {', '.join(feats) or 'no SIMD'})"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--decode", type=int, default=64)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--worker", choices=["ours", "llama"])
    p.add_argument("--kernel-only", action="store_true",
                   help="only the GEMV micro-benchmark, printed (ER_KERNEL=<name>: that path only)")
    args = p.parse_args()
    if args.model is None:
        import edge_runtime as er
        args.model = er.models.default()
    if args.kernel_only:
        print(kernel_report(args.model, args.reps))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.threads[0], args.prompt_tokens,
                                args.decode, args.ctx)))
        return
    results = []
    for threads in args.threads:
        for rep in range(args.reps):
            for eng in (("ours", "llama") if rep % 2 == 0 else ("llama", "ours")):
                r = run_one(eng, args, threads)
                print(f"threads {threads} rep {rep} {eng}: prefill {r['prefill_tok_s']:.0f} tok/s, "
                      f"decode {r['decode_tok_s']:.1f} tok/s, first token "
                      f"{r['load_to_first_token_s']:.2f} s, anon {r['peak_anon'] >> 20} MiB",
                      file=sys.stderr)
                results.append(r)
    text = report(results, args)
    write_section(args.out, "bench", text, where="start")
    print(text)


if __name__ == "__main__":
    main()

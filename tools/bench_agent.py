"""Agent latency and memory: request → tool call parsed, edge_runtime vs llama-cpp-python, in one run.

The job: the built-in toolset's prompt as the agent renders it for the default model (its call
format's instructions, demonstrations and declarations, then the request), until the first tool
call is parsed.
- edge_runtime: `Agent.run`, stopped at its first "call" event (the call is decoded under the
  grammar, parsed and validated). Without a snapshot file the cold run prefills everything; with
  `cache_dir` it reads the declarations' KV state from its file (and keeps it there: each
  request reads back what it needs). Warm requests (same process, other requests) restore the
  prefix and prefill only the request.
- llama.cpp: the same prompt token ids (rendered and tokenized by edge_runtime, so both engines
  see exactly the same tokens), evaluated, then greedy decoding (argmax of its logits, no
  grammar) of as many tokens as our call took (the positions our run added from the end of the
  prompt to the call event). "full prompt": every request re-evaluates the whole prompt.
  "prefix state": the declarations' KV state saved once with llama_state_seq_get_data (warm:
  in memory; cold: read from a file) and restored with llama_state_seq_set_data, so only the
  request is evaluated - the same trick as ours, with llama.cpp's own state format.
Every cold measurement is a fresh process (timed from model load, imports done, to the call),
engines alternating; warm = median over the requests of each process; cells = medians over
repetitions. Memory: each worker samples its own RssAnon and VmRSS every 5 ms (a thread reading
/proc/self/status, nothing imported) from before the model load to its last request;
edge_runtime's grammar index file is in the cache directory (built by the untimed calibration run).

    PYTHONPATH=. python tools/bench_agent.py [--model P] [--reps 3] [--ctx 4096] [--threads 1]
                                             [--out docs/BENCHMARKS_AGENT.md]

The report replaces the part of --out between <!-- agent --> and <!-- /agent --> (the whole
file when it has no such markers), so other generated sections are kept.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench import cpu_name, _llama_version   # tools/ is on sys.path when run as a script
from doc_section import write_section

REQUESTS = ["set a timer for 10 minutes", "turn on the kitchen lights",
            "what is the weather in Paris?"]
CTX = 4096                # --ctx
THREADS = 1               # --threads
ENGINES = ("ours", "ours+file", "llama", "llama+state")


def prompt_ids(model) -> dict:
    """The agent's prefix ids and each request's full prompt ids (no weights are bound)."""
    from types import SimpleNamespace

    from edge_runtime.agent import Agent
    from edge_runtime.calls.formats import encode_segments
    from edge_runtime.gguf import open_gguf
    from edge_runtime.tokenizer import Tokenizer
    from edge_runtime.tools_builtin import TOOLS
    g = open_gguf(model)
    bare = SimpleNamespace(gguf=g, tokenizer=Tokenizer.from_gguf(g))   # no plan: no budget
    a = Agent(bare, TOOLS)
    prefix = a.prefix_ids()
    turns = [encode_segments(bare.tokenizer,
                             a.format.turn([{"role": "user", "content": r}], {}), False)
             for r in REQUESTS]
    return {"format": a.format.name, "prefix": prefix, "prompts": [prefix + t for t in turns]}


class _Called(Exception):
    pass


class _PeakMemory:
    """Peak RssAnon and VmRSS of this process, sampled every 5 ms by a thread."""

    def __init__(self):
        self.peak = {"anon": 0, "rss": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sample()
        self._thread.start()

    def _sample(self):
        with open("/proc/self/status") as f:
            for line in f:
                key = {"RssAnon:": "anon", "VmRSS:": "rss"}.get(line.split(None, 1)[0])
                if key:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)

    def _run(self):
        while not self._stop.wait(0.005):
            self._sample()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        return {"peak_anon": self.peak["anon"], "peak_rss": self.peak["rss"]}


def ours(model, cache_dir, prompts):
    """Cold run of REQUESTS[0], then each request warm. Returns seconds and call token counts."""
    import edge_runtime as er
    from edge_runtime.agent import Agent
    from edge_runtime.tools_builtin import TOOLS
    mem = _PeakMemory()
    t0 = time.perf_counter()
    m = er.Model.load(model, max_inference_len=CTX, threads=THREADS)
    agent = Agent(m, TOOLS, cache_dir=cache_dir)

    def until_call(request, n_prompt):
        seen = {}

        def on_event(e):
            if e["type"] == "call":
                seen.update(name=e["name"], arguments=e["arguments"],
                            tokens=len(m.session.history) - n_prompt)
                raise _Called
        try:
            agent.run(request, max_steps=1, on_event=on_event)
        except _Called:
            pass
        return seen

    until_call(REQUESTS[0], len(prompts[0]))
    cold = time.perf_counter() - t0
    warm, calls = [], []
    for r, ids in zip(REQUESTS, prompts):
        t = time.perf_counter()
        call = until_call(r, len(ids))
        warm.append(time.perf_counter() - t)
        calls.append(call)
    return {"cold": cold, "warm": warm, "calls": [{k: c[k] for k in ("name", "arguments")}
                                                  for c in calls],
            "call_tokens": [c["tokens"] for c in calls], **mem.stop()}


def _llama(model):
    import llama_cpp
    return llama_cpp.Llama(model, n_ctx=CTX, n_batch=512, n_threads=THREADS,
                           n_threads_batch=THREADS, swa_full=False, verbose=False)


def llama(model, pre, prompts, call_tokens, state_file):
    """The same job on llama-cpp-python: cold (REQUESTS[0]) then each request warm."""
    import ctypes

    import llama_cpp
    import numpy as np
    mem = _PeakMemory()
    t0 = time.perf_counter()
    llm = _llama(model)
    n_vocab = llm.n_vocab()
    ctx = llm._ctx.ctx

    def save_prefix():
        llm.reset()
        llm.eval(pre)
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return bytes(buf)

    def restore_prefix(state):
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        llama_cpp.llama_state_seq_set_data(ctx, buf, len(state), 0)
        llm.n_tokens = len(pre)
        llm.input_ids[:len(pre)] = pre

    def job(ids, n, state):
        if state is not None:
            assert ids[:len(pre)] == pre, "llama.cpp: prefix ids are not a prefix of the prompt"
            restore_prefix(state)
            llm.eval(ids[len(pre):])
        else:
            llm.reset()
            llm.eval(ids)
        out = []
        for _ in range(n):   # as many greedy tokens as our call took
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
            out.append(int(np.argmax(logits)))
            if len(out) < n:
                llm.eval(out[-1:])
        return out

    state = None
    if state_file:
        with open(state_file, "rb") as f:
            state = f.read()
    job(prompts[0], call_tokens[0], state)
    cold = time.perf_counter() - t0
    if state_file:
        state = save_prefix()   # as ours, the warm requests reuse the state kept in memory
    warm, tokens = [], []
    for text, n in zip(prompts, call_tokens):
        t = time.perf_counter()
        tokens.append(job(text, n, state))
        warm.append(time.perf_counter() - t)
    return {"cold": cold, "warm": warm, "tokens": tokens, **mem.stop()}


def llama_state_file(model, pre, path):
    """Write llama.cpp's KV state of the prefix (the counterpart of our snapshot file)."""
    import ctypes

    import llama_cpp
    llm = _llama(model)
    llm.eval(pre)
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    with open(path, "wb") as f:
        f.write(bytes(buf))


def worker(args):
    global CTX, THREADS
    CTX, THREADS = args.ctx, args.threads
    with open(args.ids_file) as f:
        ids = json.load(f)
    if args.worker == "ours":
        r = ours(args.model, None, ids["prompts"])
    elif args.worker == "ours+file":
        r = ours(args.model, args.cache_dir, ids["prompts"])
    elif args.worker == "llama-state-file":
        llama_state_file(args.model, ids["prefix"], args.state_file)
        r = {}
    else:
        n = json.loads(args.call_tokens)
        r = llama(args.model, ids["prefix"], ids["prompts"], n,
                  args.state_file if args.worker == "llama+state" else None)
    print(json.dumps(r))


def run_worker(args, engine, **extra):
    cmd = [sys.executable, __file__, "--worker", engine, "--model", args.model,
           "--ctx", str(args.ctx), "--threads", str(args.threads), "--ids-file", args.ids_file]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"worker {engine} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(res, calib, args):
    med = lambda eng, key: statistics.median(
        [statistics.median(r[key]) if key == "warm" else r[key] for r in res[eng]])
    cold = {e: med(e, "cold") for e in ENGINES}
    warm = {e: med(e, "warm") for e in ENGINES}
    mib = {k: {e: med(e, k) / 2**20 for e in ENGINES} for k in ("peak_anon", "peak_rss")}
    lines = [
        "# Agent latency: request → tool call, edge_runtime vs llama.cpp", "",
        f"Generated by `python tools/bench_agent.py --reps {args.reps} --ctx {args.ctx} "
        f"--threads {args.threads}` on "
        f"{time.strftime('%Y-%m-%d')}; see the script's docstring for exactly what each engine does.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {cpu_name()}; shared and noisy, "
        f"so compare within a row (same run, engines alternating); {args.threads} thread(s) everywhere; load "
        f"average {args.load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"- model: `{os.path.basename(args.model)}`; built-in toolset "
        f"(edge_runtime.tools_builtin), call format {calib['format']}; prefix (instructions, "
        f"demonstrations, declarations) {calib['prefix_tokens']} tokens; "
        f"context {args.ctx}; llama-cpp-python {_llama_version()} (swa_full=False)",
        f"- requests: {'; '.join(repr(r) for r in REQUESTS)}; call lengths "
        f"{calib['call_tokens']} positions (llama.cpp decodes the same counts greedily, from "
        f"the same prompt ids)",
        f"- cold: fresh process, model load → prompt → call parsed ({REQUESTS[0]!r}); "
        f"model file in the page cache. warm: the next requests in the same process",
        f"- each cell: median of {args.reps} processes (warm: of the per-process median)", "",
        "| | edge_runtime | edge_runtime + snapshot file | llama.cpp, full prompt | "
        "llama.cpp + prefix state |", "|---|---:|---:|---:|---:|",
        "| cold start → call parsed (s) | " + " | ".join(f"{cold[e]:.3f}" for e in ENGINES) + " |",
        "| warm request → call parsed (s) | " + " | ".join(f"{warm[e]:.3f}" for e in ENGINES) + " |",
        "| peak anonymous RSS (MiB) | " + " | ".join(f"{mib['peak_anon'][e]:.1f}" for e in ENGINES)
        + " |",
        "| peak RSS (MiB) | " + " | ".join(f"{mib['peak_rss'][e]:.1f}" for e in ENGINES) + " |",
        "",
        f"Peak RSS, edge_runtime + snapshot file / llama.cpp full prompt: "
        f"**{mib['peak_rss']['ours+file'] / mib['peak_rss']['llama']:.2f}×**; peak anonymous: "
        f"{mib['peak_anon']['ours+file'] / mib['peak_anon']['llama']:.2f}×. Cold start → call per "
        f"repetition (ours+file / llama): "
        + ", ".join(f"{a['cold'] / b['cold']:.2f}" for a, b in zip(res['ours+file'], res['llama']))
        + ".",
        "",
        f"Cold start → call with the snapshot (and index) file present, edge_runtime / llama.cpp: "
        f"**{cold['ours+file'] / cold['llama']:.3f}×** against llama.cpp's cold start → call "
        f"(target ≤ 0.6×); {cold['ours+file'] / cold['llama+state']:.3f}× against llama.cpp "
        f"reading its own prefix state file.",
        "",
        f"Warm request → call, edge_runtime / llama.cpp: **{warm['ours'] / warm['llama']:.3f}×** "
        f"against llama.cpp re-evaluating the prompt (target ≤ 0.25×); "
        f"{warm['ours'] / warm['llama+state']:.3f}× against llama.cpp restoring its own prefix "
        f"state. Cold with the snapshot file / without: {cold['ours+file'] / cold['ours']:.3f}×.",
        "",
        f"llama.cpp's greedy tokens were {'identical' if calib['llama_same'] else 'NOT identical'} "
        "with and without its prefix state, in every process. Calls parsed by edge_runtime (identical with and without the snapshot file, in "
        "every process): "
        + "; ".join(f"`{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})`"
                    for c in calib["calls"]),
        ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--ctx", type=int, default=CTX)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--ids-file")
    p.add_argument("--out", default="docs/BENCHMARKS_AGENT.md")
    p.add_argument("--worker", choices=ENGINES + ("llama-state-file",))
    p.add_argument("--cache-dir")
    p.add_argument("--state-file")
    p.add_argument("--call-tokens")
    args = p.parse_args()
    if args.model is None:
        import edge_runtime as er
        args.model = er.models.default()
    if args.worker:
        return worker(args)
    args.load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir, state_file = os.path.join(tmp, "kv"), os.path.join(tmp, "llama.state")
        args.ids_file = os.path.join(tmp, "ids.json")
        ids = prompt_ids(args.model)
        with open(args.ids_file, "w") as f:
            json.dump(ids, f)
        # Untimed: write both engines' prefix files; learn the call lengths.
        first = run_worker(args, "ours+file", cache_dir=cache_dir)
        run_worker(args, "llama-state-file", state_file=state_file)
        calib = {"calls": first["calls"], "call_tokens": first["call_tokens"],
                 "prefix_tokens": len(ids["prefix"]), "format": ids["format"]}
        extra = {"ours": {}, "ours+file": {"cache_dir": cache_dir},
                 "llama": {"call_tokens": json.dumps(calib["call_tokens"])},
                 "llama+state": {"call_tokens": json.dumps(calib["call_tokens"]),
                                 "state_file": state_file}}
        res = {e: [] for e in ENGINES}
        for rep in range(args.reps):
            order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
            for eng in order:
                r = run_worker(args, eng, **extra[eng])
                if eng.startswith("ours") and r["calls"] != calib["calls"]:
                    raise RuntimeError(f"{eng}: calls differ from the calibration run: {r['calls']}")
                if eng.startswith("llama"):   # does its state restore change its output?
                    calib.setdefault("llama_tokens", r["tokens"])
                    calib["llama_same"] = calib.get("llama_same", True) and \
                        r["tokens"] == calib["llama_tokens"]
                res[eng].append(r)
                print(f"rep {rep} {eng}: cold {r['cold']:.3f} s, warm "
                      f"{' '.join(f'{w:.3f}' for w in r['warm'])} s, peak rss "
                      f"{r['peak_rss'] / 2**20:.1f} MiB (anon {r['peak_anon'] / 2**20:.1f})",
                      file=sys.stderr)
    text = report(res, calib, args)
    write_section(args.out, "agent", text, where="start")
    print(text)


if __name__ == "__main__":
    main()

"""Server latency: a warm chat-completions request with the built-in tools -> tool_calls at the
client, against the same request in-process and against llama-cpp-python's own server, one run.

Three engines, each on the default model, 1 thread, context 4096, alternating request by
request (so machine noise falls on all of them alike):
- in-process: `Agent.respond(messages, tool_choice="required")` in this process (no HTTP);
- edge_runtime serve: `python -m edge_runtime serve`, the official `openai` client sending
  chat.completions with the tools as JSON schemas, timed until the parsed tool_calls are back;
- llama.cpp server: `python -m llama_cpp.server`, /v1/completions with the same FunctionGemma
  prompt text our agent evaluated (llama.cpp tokenizes it with its control tokens), greedy,
  max_tokens = the tokens our turn produced. Its server keeps the previous prompt's KV state
  and reuses the common prefix, as ours restores the declarations' snapshot.
Warm: each request is sent once before timing. Cells: median over --reps rounds.
The table goes between <!-- server --> markers in docs/BENCHMARKS_AGENT.md.

    PYTHONPATH=. python tools/bench_server.py [--model P] [--reps 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from bench import _cpu_name, _llama_version   # tools/ is on sys.path when run as a script

REQUESTS = ["set a timer for 10 minutes", "turn on the kitchen lights",
            "what is the weather in Paris?"]
CTX = 4096
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(cmd, port, health):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=5).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                return f"{cmd[2]} did not start (exit status {proc.wait()})"
            time.sleep(0.3)


def _rss(pid):
    import psutil
    return psutil.Process(pid).memory_info().rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "BENCHMARKS_AGENT.md"))
    args = ap.parse_args()

    import openai

    import edge_runtime as er
    from edge_runtime.calls.schema import schema_from_callable
    from edge_runtime.tools_builtin import TOOLS
    path = args.model or er.models.default()
    tools = [schema_from_callable(t) for t in TOOLS]
    load_start = os.getloadavg()[0]

    # In-process agent; also yields the prompt text and turn length llama.cpp gets.
    model = er.Model.load(path, threads=1, max_inference_len=CTX)
    agent = er.Agent(model, tools)
    tok = model.tokenizer
    prompts, n_out, calls = {}, {}, {}

    def in_process(req):
        turn = agent.respond([{"role": "user", "content": req}], tool_choice="required")
        return turn

    for req in REQUESTS:   # warm-up, and what the other engines are given
        turn = in_process(req)
        n_prompt = turn.usage["prompt_tokens"]
        ids = model.session.history[:n_prompt]
        prompts[req] = tok.decode(ids[1:] if ids[0] == tok.bos_id else ids)
        n_out[req] = turn.usage["completion_tokens"]
        calls[req] = [(c["name"], c["arguments"]) for c in turn.calls]

    ours_port, llama_port = _free_port(), _free_port()
    ours = _spawn([sys.executable, "-m", "edge_runtime", "serve", "--model", path, "--port",
                   str(ours_port), "--threads", "1", "--max-inference-len", str(CTX)],
                  ours_port, "/health")
    if isinstance(ours, str):
        raise SystemExit(ours)
    llama = _spawn([sys.executable, "-m", "llama_cpp.server", "--model", path, "--port",
                    str(llama_port), "--n_ctx", str(CTX), "--n_threads", "1",
                    "--n_threads_batch", "1", "--verbose", "False"], llama_port, "/v1/models")
    llama_failed = llama if isinstance(llama, str) else None
    try:
        oc = openai.OpenAI(base_url=f"http://127.0.0.1:{ours_port}/v1", api_key="x", timeout=600)
        lc = openai.OpenAI(base_url=f"http://127.0.0.1:{llama_port}/v1", api_key="x",
                           timeout=600)
        name = oc.models.list().data[0].id
        lname = None if llama_failed else lc.models.list().data[0].id

        def served(req):
            r = oc.chat.completions.create(model=name, tools=tools, tool_choice="required",
                                           temperature=0,
                                           messages=[{"role": "user", "content": req}])
            return [(c.function.name, json.loads(c.function.arguments))
                    for c in r.choices[0].message.tool_calls]

        def llama_server(req):
            r = lc.completions.create(model=lname, prompt=prompts[req], max_tokens=n_out[req],
                                      temperature=0)
            return r.usage.prompt_tokens, r.choices[0].text

        engines = {"in-process Agent": in_process, "edge_runtime serve": served}
        if not llama_failed:
            engines["llama.cpp server"] = llama_server
        first = {}
        for req in REQUESTS:   # warm each server on each request
            first[req] = served(req), None if llama_failed else llama_server(req)
        times = {e: {r: [] for r in REQUESTS} for e in engines}
        for _ in range(args.reps):
            for req in REQUESTS:
                for e, fn in engines.items():
                    t = time.perf_counter()
                    fn(req)
                    times[e][req].append(time.perf_counter() - t)
        rss = {"edge_runtime serve": _rss(ours.pid)}
        if not llama_failed:
            rss["llama.cpp server"] = _rss(llama.pid)
    finally:
        for p in (ours, llama):
            if not isinstance(p, str):
                p.terminate()
                p.wait(30)
    load_end = os.getloadavg()[0]

    med = {e: {r: statistics.median(v) for r, v in d.items()} for e, d in times.items()}
    lines = [
        "<!-- server -->",
        "## Server: chat-completions request → tool_calls at the client",
        "",
        f"Generated by `python tools/bench_server.py --reps {args.reps}` on "
        f"{time.strftime('%Y-%m-%d')}; see the script's docstring for what each engine does.",
        "",
        f"- CPU: {_cpu_name()} ({platform.machine()}, {os.cpu_count()} cores, shared); 1 thread "
        f"everywhere; load average {load_start:.1f} at the start, {load_end:.1f} at the end",
        f"- model: `{os.path.basename(path)}`; built-in toolset as JSON schemas, "
        f"tool_choice=required, greedy; context {CTX}; llama-cpp-python {_llama_version()} "
        f"server (`python -m llama_cpp.server`, /v1/completions on our rendered prompt)",
        "- each cell: median of the warm requests (seconds, client side)",
        "",
        "| request | in-process Agent | edge_runtime serve | serve / in-process | "
        "llama.cpp server | serve / llama.cpp |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    def row(label, cells):
        a, s = cells[0], cells[1]
        out = f"| {label} | {a:.3f} | {s:.3f} | {s / a:.2f}× |"
        return out + (f" {cells[2]:.3f} | {s / cells[2]:.2f}× |" if len(cells) > 2
                      else " did not run | – |")

    for req in REQUESTS:
        lines.append(row(req, [med[e][req] for e in engines]))
    lines.append(row("**median**", [statistics.median(med[e].values()) for e in engines]))
    lines += ["",
              "Targets: serve / in-process ≤ 1.2×; serve / llama.cpp server ≤ 0.35×. "
              "Server RSS after the run: " + ", ".join(f"{e} {b / 2**20:.0f} MiB"
                                                        for e, b in rss.items()) + ".",
              "",
              "Calls the client received (identical to the in-process agent's: " +
              str(all(first[r][0] == calls[r] for r in REQUESTS)) + "): " +
              "; ".join(f"`{n}({json.dumps(a)})`" for r in REQUESTS for n, a in first[r][0]) +
              "."]
    if llama_failed:
        lines.append(f"llama.cpp server: {llama_failed}; -4 is SIGILL: the installed "
                     f"llama-cpp-python build uses an instruction this CPU lacks.")
    else:
        lines.append("llama.cpp's prompt tokens per request: " +
                     ", ".join(str(first[r][1][0]) for r in REQUESTS) + "; its text (no "
                     "grammar; its server does not parse FunctionGemma calls): " +
                     "; ".join(f"`{first[r][1][1][:60]!r}`" for r in REQUESTS) + ".")
    lines.append("<!-- /server -->")
    block = "\n".join(lines) + "\n"
    doc = open(args.out).read() if os.path.exists(args.out) else ""
    doc = re.sub(r"<!-- server -->.*<!-- /server -->\n?", "", doc, flags=re.S).rstrip("\n")
    with open(args.out, "w") as f:
        f.write(doc + "\n\n" + block)
    print(block)


if __name__ == "__main__":
    main()

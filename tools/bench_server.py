"""Server latency: a warm chat-completions request with the built-in tools -> tool_calls at the
client, against the same request in-process and against llama-cpp-python's own server, one run.

Three engines, each on the default model, 1 thread, context 4096, alternating request by
request (so machine noise falls on all of them alike):
- in-process: `Agent.respond(messages, tool_choice="required")` in this process (no HTTP);
- edge_runtime serve: `python -m edge_runtime serve`, the official `openai` client sending
  chat.completions with the tools as JSON schemas, timed until the parsed tool_calls are back;
- llama.cpp server: `python -m llama_cpp.server`. It knows no tool-call format of this model
  (its chat endpoint is also asked once, and what it answers is reported), so it gets "the same
  prompt" as text: the token ids our agent evaluated for the request (its declarations prefix
  and the user turn, in the call format the agent picks for the model: FunctionGemma's for a
  FunctionGemma GGUF, `python` for a base Gemma 3 one such as the default), sent to /v1/completions
  and checked id for id through its /extras/tokenize; greedy, unconstrained, max_tokens = the
  tokens our turn produced (forced and chosen), timed until the response is back.
Warm: each request is sent once to each engine before timing. llama.cpp keeps the previous
request's KV state and reuses its longest common prefix (the declarations), as ours restores
the declarations' snapshot. Its RAM state cache (`--cache True`, see --llama-cache) is off: it
would restore a repeated request's whole prompt, but saving and loading its state cost more than
that saves (a --llama-cache run on the EPYC: 9.5 s per request against 2.6 s without, 6.4 s of
it outside its evals, RSS 4.5 GiB).
Its verbose log gives its prompt-eval and decode time per request; for ours the session's
counters give the time in multi-token and one-token evals; the rest is sampling, grammar,
Python and, for the servers, HTTP/JSON.
Cells: median over --reps rounds. The tables go between <!-- server --> markers in
docs/BENCHMARKS_AGENT.md.

    pip install "edge_runtime[bench]"    # openai, llama-cpp-python and its server's packages
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
import tempfile
import time
import urllib.request

from bench import cpu_name, _llama_version   # tools/ is on sys.path when run as a script
from doc_section import write_section

REQUESTS = ["set a timer for 10 minutes", "turn on the kitchen lights",
            "what is the weather in Paris?"]
CTX = 4096
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ("in-process Agent", "edge_runtime serve", "llama.cpp server")
# llama.cpp's per-request timings (llama_perf_context_print, printed before the reply is sent)
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"print:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs")
_PREFIX_HIT = re.compile(r"(\d+) prefix-match hit")
_CHAT_FORMAT = re.compile(r"(Using fallback chat format|Guessed chat format|Using gguf chat "
                          r"template|Using chat \w+)[^\n]*")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(cmd, port, health, log):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=5).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                status = proc.wait()
                why = "; -4 is SIGILL: the build uses an instruction this CPU lacks" \
                    if status == -4 else ""
                return f"{cmd[2]} did not start (exit status {status}{why})"
            time.sleep(0.3)


def _post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=600).read())


def _rss(pid):
    import psutil
    return psutil.Process(pid).memory_info().rss


def _med(values):
    return statistics.median(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--llama-cache", action="store_true",
                    help="start llama.cpp's server with its RAM state cache (--cache True)")
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "BENCHMARKS_AGENT.md"))
    args = ap.parse_args()

    import openai

    import edge_runtime as er
    from edge_runtime.calls.schema import schema_from_callable
    from edge_runtime.tools_builtin import TOOLS
    path = args.model or er.models.default()
    tools = [schema_from_callable(t) for t in TOOLS]
    load_start = os.getloadavg()[0]

    # In-process agent; its warm-up also yields the prompt ids and turn length llama.cpp gets.
    model = er.Model.load(path, threads=1, max_inference_len=CTX)
    agent = er.Agent(model, tools)
    tok = model.tokenizer
    prompt_ids, n_out, calls, turn_text = {}, {}, {}, {}

    def in_process(req):
        before = model.session.stats()
        t = time.perf_counter()
        turn = agent.respond([{"role": "user", "content": req}], tool_choice="required")
        dt = time.perf_counter() - t
        after = model.session.stats()   # the agent's turns run on the pool's first session
        parts = {k: after[k] - before[k] for k in ("prefill_s", "prefill_tokens",
                                                   "decode_s", "decode_tokens")}
        return dt, parts, turn

    for req in REQUESTS:   # warm-up, and what the other engines are given
        turn = in_process(req)[2]
        n_prompt = turn.usage["prompt_tokens"]
        history = model.session.history
        prompt_ids[req] = history[:n_prompt]
        turn_text[req] = tok.decode(history[n_prompt:])
        n_out[req] = turn.usage["completion_tokens"]
        calls[req] = [(c["name"], c["arguments"]) for c in turn.calls]
    bos = tok.bos_id
    prompts = {r: tok.decode(ids[1:] if ids[0] == bos else ids) for r, ids in prompt_ids.items()}

    ours_port, llama_port = _free_port(), _free_port()
    llama_log = tempfile.TemporaryFile()
    procs = []
    try:
        ours = _spawn([sys.executable, "-m", "edge_runtime", "serve", "--model", path, "--port",
                       str(ours_port), "--threads", "1", "--max-inference-len", str(CTX)],
                      ours_port, "/health", subprocess.DEVNULL)
        if isinstance(ours, str):
            raise SystemExit(ours)
        procs.append(ours)
        llama = _spawn([sys.executable, "-m", "llama_cpp.server", "--model", path, "--port",
                        str(llama_port), "--n_ctx", str(CTX), "--n_threads", "1",
                        "--n_threads_batch", "1", "--verbose", "True",
                        "--cache", str(args.llama_cache)], llama_port, "/v1/models", llama_log)
        llama_failed = llama if isinstance(llama, str) else None
        if not llama_failed:
            procs.append(llama)
        oc = openai.OpenAI(base_url=f"http://127.0.0.1:{ours_port}/v1", api_key="x", timeout=600)
        lc = openai.OpenAI(base_url=f"http://127.0.0.1:{llama_port}/v1", api_key="x",
                           timeout=600)
        name = oc.models.list().data[0].id

        def served(req):
            t = time.perf_counter()
            r = oc.chat.completions.create(model=name, tools=tools, tool_choice="required",
                                           temperature=0,
                                           messages=[{"role": "user", "content": req}])
            dt = time.perf_counter() - t
            return dt, {}, [(c.function.name, json.loads(c.function.arguments))
                            for c in r.choices[0].message.tool_calls]

        def llama_server(req):
            llama_log.seek(0, os.SEEK_END)
            start = llama_log.tell()
            t = time.perf_counter()
            r = lc.completions.create(model=lname, prompt=prompts[req], max_tokens=n_out[req],
                                      temperature=0)
            dt = time.perf_counter() - t
            llama_log.seek(start)
            log = llama_log.read().decode("utf-8", "replace")
            pe, ev, hit = _PROMPT_EVAL.search(log), _EVAL.search(log), _PREFIX_HIT.search(log)
            parts = {"prefill_s": float(pe[1]) / 1e3 if pe else 0.0,
                     "prefill_tokens": int(pe[2]) if pe else 0,
                     "decode_s": float(ev[1]) / 1e3 if ev else 0.0,
                     "decode_tokens": int(ev[2]) if ev else 0,
                     "reused": int(hit[1]) if hit else 0}
            return dt, parts, (r.usage.prompt_tokens, r.choices[0].text)

        engines = dict(zip(ENGINES, (in_process, served, llama_server)))
        same_ids, chat = {}, None
        if llama_failed:
            del engines["llama.cpp server"]
        else:
            lname = lc.models.list().data[0].id
            # What llama.cpp evaluates for the prompt text: BOS + the text with control tokens.
            same_ids = {r: _post(llama_port, "/extras/tokenize", {"input": prompts[r]})["tokens"]
                        == list(prompt_ids[r]) for r in REQUESTS}
            # Its chat endpoint with the tools, once: what a client of it would get.
            c = lc.chat.completions.create(model=lname, tools=tools, tool_choice="required",
                                           temperature=0, max_tokens=n_out[REQUESTS[0]],
                                           messages=[{"role": "user", "content": REQUESTS[0]}])
            llama_log.seek(0)
            how = _CHAT_FORMAT.search(llama_log.read().decode("utf-8", "replace"))
            chat = (c.choices[0].finish_reason, c.choices[0].message.content,
                    c.choices[0].message.tool_calls, c.usage.prompt_tokens,
                    how[0] if how else "no chat format line in its log")
        first = {e: {r: fn(r)[2] for r in REQUESTS} for e, fn in engines.items()
                 if e != "in-process Agent"}   # warm each server on each request
        times = {e: {r: [] for r in REQUESTS} for e in engines}
        parts = {e: [] for e in engines}
        for _ in range(args.reps):
            for req in REQUESTS:
                for e, fn in engines.items():
                    dt, p, _ = fn(req)
                    times[e][req].append(dt)
                    if p:
                        parts[e].append(dict(p, total_s=dt))
        rss = {e: _rss(p.pid) for e, p in zip(ENGINES[1:], procs)}
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        llama_log.close()
    load_end = os.getloadavg()[0]

    med = {e: {r: _med(v) for r, v in d.items()} for e, d in times.items()}
    has_llama = "llama.cpp server" in engines
    cache_flag = "--cache True" if args.llama_cache else "no --cache"
    lines = [
        "## Server: chat-completions request → tool_calls at the client",
        "",
        f"Generated by `python tools/bench_server.py --reps {args.reps}"
        f"{' --llama-cache' if args.llama_cache else ''}` on {time.strftime('%Y-%m-%d')}; "
        "see the script's docstring for what each engine does.",
        "",
        f"- CPU: {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores, shared); 1 thread "
        f"everywhere; load average {load_start:.1f} at the start, {load_end:.1f} at the end",
        f"- model: `{os.path.basename(path)}`; built-in toolset as JSON schemas, "
        f"tool_choice=required, greedy; context {CTX}; call format `{agent.format.name}` "
        f"(the agent's choice for this model)",
        f"- llama.cpp: llama-cpp-python {_llama_version()} server (`python -m llama_cpp.server "
        f"--n_threads 1 --n_threads_batch 1 --n_ctx {CTX}`, {cache_flag}; its reuse of the "
        f"previous request's KV prefix is always on), /v1/completions on our prompt ids, "
        f"max_tokens = our turn's tokens, temperature 0",
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
    total = {e: statistics.median(med[e].values()) for e in engines}
    lines.append(row("**median**", list(total.values())))
    lines += ["",
              "Targets: serve / in-process ≤ 1.2×; serve / llama.cpp server ≤ 0.35×. "
              "Server RSS after the run: " + ", ".join(f"{e} {b / 2**20:.0f} MiB"
                                                        for e, b in rss.items()) + ".",
              "",
              "Where the time goes (medians over all timed requests; prefill = multi-token "
              "evals, decode = one-token evals, in the engine's own counters):",
              "",
              "| engine | total (s) | prefill (s / tokens) | decode (s / steps) | "
              "rest: sampling, grammar, Python, HTTP (s) |",
              "|---|---:|---:|---:|---:|"]
    rest_of = {"in-process Agent": "sampling, grammar, grounding, prefix restore",
               "llama.cpp server": "sampling over the full vocabulary, Python, HTTP/JSON"}
    split = {}   # engine -> median of each part (the served engine has none of its own)
    for e, ps in parts.items():
        if ps:
            split[e] = {k: _med([p[k] for p in ps]) for k in ps[0]}
            split[e]["rest_s"] = _med([p["total_s"] - p["prefill_s"] - p["decode_s"]
                                       for p in ps])
    for e, t in split.items():
        lines.append(f"| {e} | {t['total_s']:.3f} | {t['prefill_s']:.3f} / "
                     f"{t['prefill_tokens']:.0f} | {t['decode_s']:.3f} / "
                     f"{t['decode_tokens']:.0f} | {t['rest_s']:.3f} ({rest_of[e]}) |")
    http = total["edge_runtime serve"] - total["in-process Agent"]
    vs_agent = total["edge_runtime serve"] / total["in-process Agent"]
    lines += ["",
              f"edge_runtime serve adds {http:+.3f} s (HTTP, JSON, the openai client) to the "
              f"in-process median: {vs_agent:.2f}× (target ≤ 1.2×: "
              f"{'met' if vs_agent <= 1.2 else 'missed'})."]
    if has_llama:
        us, them = split["in-process Agent"], split["llama.cpp server"]
        vs_llama = total["edge_runtime serve"] / total["llama.cpp server"]
        evals = (us["prefill_s"] + us["decode_s"]) / them["total_s"]
        step = {e: t["decode_s"] / t["decode_tokens"] * 1e3 for e, t in split.items()
                if t["decode_tokens"]}
        lines.append(
            f"Against llama.cpp's server: {vs_llama:.2f}× (target ≤ 0.35×: "
            f"{'met' if vs_llama <= 0.35 else 'missed'}). A one-token step costs us "
            f"{step['in-process Agent']:.0f} ms (the transformer body and the allowed rows of "
            f"the output layer) against its {step['llama.cpp server']:.0f} ms (all "
            f"{model.config.n_vocab} rows), and forced text rides along in multi-token evals, "
            f"so our turn takes {us['decode_tokens']:.0f} such steps to its "
            f"{them['decode_tokens']:.0f}; the multi-token evals ({us['prefill_tokens']:.0f} "
            f"tokens: the user turn and the call's forced text) cost {us['prefill_s']:.3f} s, "
            f"{us['prefill_s'] / us['total_s']:.0%} of our turn. Our evals alone are "
            f"{evals:.2f}× llama.cpp's whole request" +
            (": even with no time outside them the target is out of reach; what is left is "
             "the evals' own speed (native/), not HTTP or the grammar." if evals > 0.35 else
             f"; the {us['rest_s']:.3f} s outside them (sampling, grammar) and HTTP are the "
             "rest."))
    lines += ["",
              "Calls the client received (identical to the in-process agent's: " +
              str(all(first["edge_runtime serve"][r] == calls[r] for r in REQUESTS)) + "): " +
              "; ".join(f"`{n}({json.dumps(a)})`" for r in REQUESTS
                        for n, a in first["edge_runtime serve"][r]) +
              "; our turns' text: " + "; ".join(f"`{turn_text[r]!r}`" for r in REQUESTS) + "."]
    if not has_llama:
        lines.append(f"llama.cpp server: {llama_failed}.")
    else:
        reused = [p["reused"] for p in parts["llama.cpp server"]]
        lines += ["",
                  "llama.cpp's tokens of our prompt text equal our prompt ids: " +
                  str(all(same_ids.values())) + " (" + ", ".join(
                      str(len(prompt_ids[r])) for r in REQUESTS) + " tokens); it reused a "
                  f"prefix of {min(reused)}–{max(reused)} of them from the previous request. "
                  "Its greedy, unconstrained text in as many tokens as our turn: " +
                  "; ".join(f"`{first['llama.cpp server'][r][1]!r}`" for r in REQUESTS) + ".",
                  "",
                  "Its chat endpoint with the same tools (tool_choice=required) on "
                  f"{REQUESTS[0]!r}: finish_reason {chat[0]!r}, content {chat[1]!r}, tool_calls "
                  f"{chat[2]!r}, {chat[3]} prompt tokens (ours: "
                  f"{len(prompt_ids[REQUESTS[0]])}); its log says `{chat[4]}`."]
    block = "\n".join(lines)
    write_section(args.out, "server", block)
    print(block)


if __name__ == "__main__":
    main()

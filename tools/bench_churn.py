"""Fairness under toolset churn: a client reusing one toolset, alone and beside a client that
sends a new toolset on every request (issue 29, item 9). `edge-runtime serve` on the default
model in its own process (`--board x86-generic --threads 1`: two sessions of one thread on two
cores, a snapshot directory), the official `openai` client.

    PYTHONPATH=. python tools/bench_churn.py [--model P] [--requests 40] [--toolsets 20]

Prints the fixed client's median latency alone and beside the rotating client, their ratio
(target <= 2x), the agents the server built, and its peak RSS against its memory plan.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bench import cpu_name   # tools/ is on sys.path when run as a script
from bench_server import _free_port, _spawn

REQUEST = "turn on the kitchen lights"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--toolsets", type=int, default=20)
    args = ap.parse_args()

    import openai
    import edge_runtime as er
    from edge_runtime.calls.schema import schema_from_callable
    from edge_runtime.tools_builtin import TOOLS
    tools = [schema_from_callable(t) for t in TOOLS]    # OpenAI tools: {"type", "function"}

    def renamed(i):      # the same tools under other names: a toolset of its own
        out = copy.deepcopy(tools)
        for t in out:
            t["function"]["name"] += f"_{i}"
        return out

    port = _free_port()
    with tempfile.TemporaryDirectory() as cache:
        proc = _spawn([sys.executable, "-m", "edge_runtime", "serve", "--model",
                       args.model or er.models.default(), "--board", "x86-generic",
                       "--threads", "1", "--max-inference-len", "2048", "--cache-dir", cache,
                       "--port", str(port)], port, "/health", subprocess.DEVNULL)
        if isinstance(proc, str):
            sys.exit(proc)
        root = f"http://127.0.0.1:{port}"
        client = openai.OpenAI(base_url=root + "/v1", api_key="unused", max_retries=0,
                               timeout=600)
        name = client.models.list().data[0].id

        def ask(toolset):
            t0 = time.perf_counter()
            r = client.chat.completions.create(model=name, tools=toolset,
                                               messages=[{"role": "user", "content": REQUEST}])
            assert r.choices[0].message.tool_calls, r
            return time.perf_counter() - t0

        ask(tools)
        ask(tools)                                        # warm, and reused: protected
        alone = [ask(tools) for _ in range(args.requests)]
        stop, rotating = threading.Event(), []

        def churn():
            i = 0
            while not stop.is_set():
                rotating.append(ask(renamed(i % args.toolsets)))
                i += 1
        th = threading.Thread(target=churn)
        th.start()
        time.sleep(2.0)
        beside = [ask(tools) for _ in range(args.requests)]
        stop.set()
        th.join()
        stats = json.loads(urllib.request.urlopen(root + "/v1/edge/stats").read())
        proc.terminate()
        proc.wait()
    st, rss = stats["prefix_reuse"], stats["rss"]
    plan = stats["memory_plan"]["total_resident"]
    a, b = statistics.median(alone), statistics.median(beside)
    print(f"CPU: {cpu_name()}; default model, serve --board x86-generic --threads 1 "
          f"({stats['admission']['slots']} sessions), context 2048, snapshot directory on")
    print("| fixed client | median (s) |\n|---|---:|")
    print(f"| alone | {a:.3f} |\n| beside a client rotating {args.toolsets} toolsets | {b:.3f} |")
    print(f"ratio {b / a:.2f}x (target <= 2x); rotating client: {len(rotating)} requests, "
          f"median {statistics.median(rotating):.3f} s; agents built {st['agents_built']}; "
          f"server peak RSS {rss['vm_hwm'] / 2**20:.0f} MiB (anonymous "
          f"{rss['peak_anon'] / 2**20:.0f}), its plan {plan / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()

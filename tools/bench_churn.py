"""Fairness under toolset churn: a client reusing one toolset, alone and beside a client that
sends a new toolset on every request (issue 29, item 9). In-process server on the default
model, two sessions of one thread each, a snapshot directory, the official `openai` client.

    PYTHONPATH=. python tools/bench_churn.py [--model P] [--requests 8] [--toolsets 20]

Prints the fixed client's median latency alone and beside the rotating client, their ratio
(target <= 2x), the server's agents built and its peak RSS against its memory plan.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import threading
import time

from bench import cpu_name   # tools/ is on sys.path when run as a script

REQUEST = "turn on the kitchen lights"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--toolsets", type=int, default=20)
    args = ap.parse_args()

    import openai

    import edge_runtime as er
    from edge_runtime import server
    from edge_runtime.calls.schema import schema_from_callable
    from edge_runtime.tools_builtin import TOOLS
    tools = [{"type": "function", "function": schema_from_callable(t)} for t in TOOLS]

    def renamed(i):      # the same tools under other names: a toolset of its own
        out = copy.deepcopy(tools)
        for t in out:
            t["function"]["name"] += f"_{i}"
        return out

    model = er.Model.load(args.model or er.models.default(), threads=1, max_inference_len=2048,
                          sessions=2, agent=er.memory.AgentSpec(snapshot_file=True))
    with tempfile.TemporaryDirectory() as cache, server.start(model, cache_dir=cache) as s:
        client = openai.OpenAI(base_url=s.url, api_key="unused", max_retries=0, timeout=600)

        def ask(toolset):
            t0 = time.perf_counter()
            r = client.chat.completions.create(model=s.server.name, tools=toolset,
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
        st = s.server.engine.stats()
        plan = s.server.plan.total_resident
        peak = model.tracker.summary()["vm_hwm"]
    a, b = statistics.median(alone), statistics.median(beside)
    print(f"CPU: {cpu_name()}; default model, 2 sessions x 1 thread, context 2048, "
          f"snapshot directory on")
    print("| fixed client | median (s) |\n|---|---:|")
    print(f"| alone | {a:.3f} |\n| beside a client rotating {args.toolsets} toolsets | {b:.3f} |")
    print(f"ratio {b / a:.2f}x (target <= 2x); rotating client: {len(rotating)} requests, "
          f"median {statistics.median(rotating):.3f} s; agents built {st['agents_built']}; "
          f"peak RSS {peak / 2**20:.0f} MiB, server plan {plan / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()

"""Measure one session's resident memory: load, prefill, decode; print one JSON object.

    python tests/rss_probe.py MODEL --max-inference-len N [--prompt-tokens P] [--decode D]
                              [--pages keep|release] [--threads T]
    python tests/rss_probe.py MODEL --max-inference-len N --agent REQUEST --cache-dir DIR
                              [--threads T]

Run in a fresh process so the peaks belong to this session alone. Decoding is greedy through
Model.eval, one token at a time, so the whole run is prompt + D positions. With --agent the
built-in tools' agent runs REQUEST instead (phases load, agent = Agent(...), run), its index
and snapshot files kept in DIR; the plan is er.memory.plan(..., agent=True) for its prefix,
whose snapshot stays in its file (snapshot_file=True).
"""
import argparse
import json
import time

import edge_runtime as er
from edge_runtime.memory import RssTracker, plan_for_model

TEXT = ("The kitchen lights are on a timer that the thermostat also reads; turn them off at "
        "night and set the heating to eighteen degrees before the morning alarm. ")


def decode(a, t):
    with t.phase("load"):
        m = er.Model.load(a.model, max_inference_len=a.max_inference_len, threads=a.threads,
                          pages=a.pages)
    ids = m.tokenizer.encode(TEXT * (a.prompt_tokens // 20 + 1), add_bos=True, special=True)
    ids = ids[:a.prompt_tokens]
    t0 = time.perf_counter()
    with t.phase("prefill"):
        logits = m.eval(ids)
    t1 = time.perf_counter()
    with t.phase("decode"):
        for _ in range(a.decode):
            logits = m.eval([int(logits.argmax())])
    t2 = time.perf_counter()
    p = plan_for_model(a.model, m.max_inference_len, threads=m.threads, pages=a.pages,
                       prefill_chunk=m.prefill_chunk, kv_dtype=m.kv_dtype)
    return m, p, {"n_prompt": len(ids), "n_decode": a.decode, "pages": a.pages,
                  "prefill_tok_s": len(ids) / (t1 - t0), "decode_tok_s": a.decode / (t2 - t1)}


def agent(a, t):
    from edge_runtime.tools_builtin import TOOLS
    t0 = time.perf_counter()
    with t.phase("load"):
        m = er.Model.load(a.model, max_inference_len=a.max_inference_len, threads=a.threads)
    with t.phase("agent"):
        ag = er.Agent(m, TOOLS, cache_dir=a.cache_dir)
    first = {}

    def on_event(e):
        if e["type"] == "call" and not first:
            first.update(seconds=time.perf_counter() - t0, name=e["name"])
    with t.phase("run"):
        r = ag.run(a.agent, on_event=on_event)
    kw = dict(threads=m.threads, agent=True, snapshot_tokens=len(ag.prefix_ids()),
              snapshot_file=True, prefill_chunk=m.prefill_chunk, kv_dtype=m.kv_dtype)
    p = plan_for_model(a.model, m.max_inference_len, **kw)
    # the plan of a context just as long as the run: the KV pages it could have touched
    used = plan_for_model(a.model, m.n_past, **kw)
    return m, p, {"calls": [c["name"] for c in r.calls], "positions": m.n_past,
                  "prefix_tokens": len(ag.prefix_ids()), "first_call_s": first.get("seconds"),
                  "plan_used_anon": used.total_anon, "plan_used_resident": used.total_resident}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--max-inference-len", type=int, required=True)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--pages", default="keep")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--agent", metavar="REQUEST")
    ap.add_argument("--cache-dir")
    a = ap.parse_args()
    t = RssTracker()
    m, p, extra = (agent if a.agent else decode)(a, t)
    print(json.dumps({"max_inference_len": m.max_inference_len, "threads": m.threads, **extra,
                      "plan_anon": p.total_anon, "plan_resident": p.total_resident,
                      "plan_rows": p.rows, **t.summary()}))


if __name__ == "__main__":
    main()

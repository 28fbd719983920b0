"""Measure one session's resident memory: load, prefill, decode; print one JSON object.

    python tests/rss_probe.py MODEL --max-inference-len N [--prompt-tokens P] [--decode D]
                              [--pages keep|release] [--threads T]

Run in a fresh process so the peaks belong to this session alone. Decoding is greedy through
Model.eval, one token at a time, so the whole run is prompt + D positions.
"""
import argparse
import json
import time

import edge_runtime as er
from edge_runtime.memory import RssTracker, plan_for_model

TEXT = ("The kitchen lights are on a timer that the thermostat also reads; turn them off at "
        "night and set the heating to eighteen degrees before the morning alarm. ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--max-inference-len", type=int, required=True)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--pages", default="keep")
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    t = RssTracker()
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
    print(json.dumps({"max_inference_len": m.max_inference_len, "n_prompt": len(ids),
                      "n_decode": a.decode, "pages": a.pages, "threads": m.threads,
                      "prefill_tok_s": len(ids) / (t1 - t0), "decode_tok_s": a.decode / (t2 - t1),
                      "plan_anon": p.total_anon, "plan_resident": p.total_resident,
                      "plan_rows": p.rows, **t.summary()}))


if __name__ == "__main__":
    main()

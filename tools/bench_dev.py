"""Right calls on the generator's held-out dev split (tools no training example uses).

    python tools/bench_dev.py [--n 200] [--seed 7] [--generator-version V] [--model P]
                              [--no-grounding | [--grounding R,R] [--grounding-off R,R]]
                              [--format F] [--call-bias B]
    python tools/bench_dev.py --sweep-call-bias [...]

--sweep-call-bias measures each example's call margin and forced calls once, then prints the
accuracy the auto decision would have at each call bias from -4 to 6 (Agent(call_bias=)): the
data the shipped adapter's call bias is chosen on (adapter.set_call_bias).

This is the data choices are made on (grounding kept or not, the call format): never a
benchmark's. Prints accuracy per kind and overall, with the CPU, the date and the commit.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge_runtime as er  # noqa: E402
from edge_runtime.calls.grounding import RULES, rules_named, rules_of  # noqa: E402
from edge_runtime.tune import data, evaluate  # noqa: E402
from bench_tools import cpu_name, git_commit  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--generator-version", type=int, default=data.GENERATOR_VERSION)
    ap.add_argument("--model", default=None, help="GGUF (default: the default model)")
    ap.add_argument("--format", default=None)
    ap.add_argument("--no-grounding", action="store_true")
    ap.add_argument("--grounding", default="all",
                    help=f"the rules to start from: all ({', '.join(RULES)}), none or a "
                         "comma-separated list")
    ap.add_argument("--grounding-off", default="",
                    help="comma-separated rules to leave out of those")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--show-wrong", action="store_true")
    ap.add_argument("--call-bias", type=float, default=None)
    ap.add_argument("--sweep-call-bias", action="store_true")
    args = ap.parse_args(argv)
    path = args.model or er.models.default()
    model = er.Model.load(path, max_inference_len=4096, threads=args.threads)
    examples = data.generate(args.n, args.seed, "dev", args.generator_version)
    t0 = time.time()
    off = [x for x in args.grounding_off.split(",") if x]
    kw = dict(format=args.format,
              grounding=False if args.no_grounding else rules_named(args.grounding) - rules_of(off),
              **({} if args.call_bias is None else {"call_bias": args.call_bias}))
    if args.sweep_call_bias:
        rows = evaluate.margins(model, examples, **kw)
        table = evaluate.sweep(rows)
        best = evaluate.best_bias(table)
        print(f"call bias sweep, dev split, {len(rows)} examples (seed {args.seed}, generator "
              f"version {args.generator_version}), {Path(path).name}: best {best:+.2f} "
              f"({dict(table)[best]}/{len(rows)}) ({time.time() - t0:.0f} s; {cpu_name()}; "
              f"{git_commit()})")
        for b, right in table:
            print(f"  {b:+6.2f}  {right}/{len(rows)} = {100 * right / len(rows):.1f}%")
        return
    results = evaluate.run(model, examples, **kw)
    kinds = evaluate.by_kind(results)
    right = sum(ok for _, _, ok in results)
    bias = er.agent.model_call_bias(model) if args.call_bias is None else args.call_bias
    print(f"dev split, {len(results)} examples (seed {args.seed}, generator version "
          f"{args.generator_version}), {Path(path).name}, format "
          f"{args.format or 'auto'}, grounding "
          f"{'off' if args.no_grounding else ','.join(sorted(kw['grounding'])) or 'none'}, "
          f"call bias {bias:+.2f}: "
          f"{right}/{len(results)} = {100 * right / len(results):.1f}%  "
          f"({time.time() - t0:.0f} s; {cpu_name()}; {git_commit()})")
    for k, (r, n) in sorted(kinds.items()):
        print(f"  {k:10s} {r}/{n} = {100 * r / n:.1f}%")
    if args.show_wrong:
        for ex, got, ok in results:
            if not ok:
                print(f"- [{ex['kind']}] {ex['messages'][0]['content']!r}\n    want "
                      f"{evaluate.expected_calls(ex)}\n    got  {got}")


if __name__ == "__main__":
    main()

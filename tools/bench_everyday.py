"""Everyday requests on a toolset written as users write their tools: does the agent make
the right decision (which tool, which arguments, or no call at all)?

    python tools/bench_everyday.py [--set home|workshop] [--model P]
                                   [--format python|functiongemma]
                                   [--tool-choice auto|required] [--limit N] [--show-wrong]
                                   [--out docs/FILE.md]

A toolset is tools/everyday/<set>_tools.py (plain functions, type hints, Google docstrings),
its requests a JSONL file beside it (SETS): one JSON object a line,
{"request": ..., "kind": ..., "calls": [{"name", "arguments"}, ...]}, where calls is the set of
expected calls ([] = no tool serves the request) and kind is one of KINDS (derived from calls
when absent). All sets were written for this bench, independently of any training data; the
home set's misses have since guided generator versions 10 to 12 (edge_runtime/tune/data.py),
so the workshop set, written after them, is the one no choice was made on. The van set was
written in the twelfth session by a writer who never saw the generator or the model's answers:
it is the blind set.

One agent (greedy, 1 thread) answers every request with Agent.respond (nothing is executed).
A reply is right when its calls match the expected ones as a set (same number; each expected
call matched by a distinct call of the same name whose arguments are equal), or, for [], when
it makes no call. Arguments are compared after filling in the function's defaults on both
sides: an argument left out equals its default, an extra argument is fine only when it equals
the default. Strings compare case-insensitively after stripping; numbers numerically (a bool
is not a number).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS_DIR.parent))
sys.path.insert(0, str(TOOLS_DIR))

from everyday.home_tools import TOOLS  # noqa: E402

REQUESTS = TOOLS_DIR / "everyday" / "requests.jsonl"
# each toolset (tools/everyday/<name>_tools.py, its TOOLS) and the requests written for it; the
# workshop set was written after generator version 12, by a writer who never saw the generator;
# the van set, the blind set, was written in the twelfth session by a writer who never saw the
# generator or the model's answers
SETS = {"home": "requests.jsonl", "workshop": "workshop_requests.jsonl",
        "van": "van_requests.jsonl"}


def toolset(name: str) -> tuple:
    """(tool functions, requests file) of one of SETS."""
    return (importlib.import_module(f"everyday.{name}_tools").TOOLS,
            TOOLS_DIR / "everyday" / SETS[name])
KINDS = ("single", "two-action", "no-call", "optional")


# ---- data ---------------------------------------------------------------------------------

def load_requests(path=REQUESTS, tools=TOOLS) -> list:
    """The requests file as [{"request", "kind", "calls"}] (kind filled in when absent)."""
    out = []
    for n, line in enumerate(open(path), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if not isinstance(r.get("request"), str) or not isinstance(r.get("calls"), list):
            raise ValueError(f"{path}:{n}: needs a string 'request' and a list 'calls'")
        r.setdefault("kind", kind_of(r["calls"], defaults_of(tools)))
        if r["kind"] not in KINDS:
            raise ValueError(f"{path}:{n}: kind {r['kind']!r} is not one of {KINDS}")
        out.append(r)
    return out


def defaults_of(tools=TOOLS) -> dict:
    """{tool name: {parameter: default}} for the optional parameters of each callable."""
    out = {}
    for fn in tools:
        out[fn.__name__] = {p.name: p.default for p in inspect.signature(fn).parameters.values()
                            if p.default is not p.empty}
    return out


def kind_of(calls, defaults=None) -> str:
    """The kind of an expected-calls list, when the requests file does not say."""
    if not calls:
        return "no-call"
    if len(calls) > 1:
        return "two-action"
    defaults = defaults_of() if defaults is None else defaults
    optional = defaults.get(calls[0]["name"], {})
    return "optional" if any(k in optional and v != optional[k]
                             for k, v in calls[0]["arguments"].items()) else "single"


# ---- scoring ------------------------------------------------------------------------------

def same_value(expected, got) -> bool:
    """Strings case-insensitively after stripping, numbers numerically, bools and None by
    identity, lists item by item, dicts key by key."""
    if isinstance(expected, bool) or isinstance(got, bool) or expected is None or got is None:
        return type(expected) is type(got) and expected == got
    if isinstance(expected, str) or isinstance(got, str):
        return isinstance(expected, str) and isinstance(got, str) and \
            expected.strip().casefold() == got.strip().casefold()
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(same_value, expected, got))
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(same_value(v, got[k])
                                                     for k, v in expected.items())
    return False


def same_call(expected: dict, got: dict, defaults: dict) -> bool:
    """One call against one expected call: same name, the same arguments once both are
    completed with the function's defaults."""
    if expected.get("name") != got.get("name") or not isinstance(got.get("arguments"), dict):
        return False
    base = defaults.get(expected["name"], {})
    want = {**base, **expected.get("arguments", {})}
    have = {**base, **got["arguments"]}
    return want.keys() == have.keys() and all(same_value(v, have[k]) for k, v in want.items())


def score_calls(expected: list, got: list, defaults=None) -> bool:
    """Whether the calls made (got: [{"name", "arguments"}]) are the expected set."""
    defaults = defaults_of() if defaults is None else defaults
    if len(expected) != len(got):
        return False
    return any(all(same_call(e, g, defaults) for e, g in zip(expected, order))
               for order in itertools.permutations(got))


# ---- running ------------------------------------------------------------------------------

def run(agent, requests, tool_choice="auto", on_result=None) -> list:
    """[(request, calls made, error or None, seconds)] in order."""
    out = []
    for r in requests:
        t0 = time.perf_counter()
        try:
            turn = agent.respond([{"role": "user", "content": r["request"]}],
                                 tool_choice=tool_choice)
            calls = [{"name": c["name"], "arguments": c["arguments"]} for c in turn.calls]
            err = None
        except (ValueError, RuntimeError) as e:     # a call that could not be read: no call
            calls, err = [], str(e)[:120]
        res = (r, calls, err, time.perf_counter() - t0)
        out.append(res)
        if on_result is not None:
            on_result(res)
    return out


def summarize(results, defaults=None) -> dict:
    """{kind: (right, total)} plus "all"."""
    defaults = defaults_of() if defaults is None else defaults
    right, total = Counter(), Counter()
    for r, calls, _, _ in results:
        ok = score_calls(r["calls"], calls, defaults)
        right[r["kind"]] += ok
        total[r["kind"]] += 1
    out = {k: (right[k], total[k]) for k in KINDS if total[k]}
    out["all"] = (sum(right.values()), sum(total.values()))
    return out


def show_call(c) -> str:
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in c["arguments"].items())
    return f"{c['name']}({args})"


def main(argv=None):
    import edge_runtime as er
    from edge_runtime.calls.grounding import rules_named
    from bench_tools import cpu_name, file_sha, git_commit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF (default: er.models.default())")
    ap.add_argument("--format", default=None, help="call format (default: the agent's choice)")
    ap.add_argument("--tool-choice", default="auto", choices=("auto", "required"))
    ap.add_argument("--limit", type=int, default=None, help="first N requests only")
    ap.add_argument("--every", type=int, default=1, help="every K-th request only")
    ap.add_argument("--set", default="home", choices=sorted(SETS), help="which toolset")
    ap.add_argument("--requests", default=None, help="requests file (JSONL; default: the set's)")
    ap.add_argument("--show-wrong", action="store_true", help="print each wrong case")
    ap.add_argument("--out", default=None, help="append a markdown table to this file")
    ap.add_argument("--call-bias", type=float, default=None,
                    help="Agent(call_bias=) (default: the one the model carries)")
    ap.add_argument("--grounding", default="all",
                    help="Agent(grounding=): all, none or comma-separated rule names")
    args = ap.parse_args(argv)
    tools, written = toolset(args.set)
    requests = load_requests(args.requests or written, tools)[::max(1, args.every)][:args.limit]
    path = args.model or er.models.default()
    model = er.Model.load(path, max_inference_len=4096, threads=1)
    agent = er.Agent(model, tools=tools, format=args.format,
                     grounding=rules_named(args.grounding),
                     **({} if args.call_bias is None else {"call_bias": args.call_bias}))
    defaults = defaults_of(tools)
    t0 = time.time()
    results = run(agent, requests, args.tool_choice)
    wall = time.time() - t0
    summary = summarize(results, defaults)
    wrong = [(r, calls, err) for r, calls, err, _ in results
             if not score_calls(r["calls"], calls, defaults)]
    if args.show_wrong:
        for r, calls, err in wrong:
            want = "; ".join(map(show_call, r["calls"])) or "no call"
            got = "; ".join(map(show_call, calls)) or "no call"
            print(f"WRONG [{r['kind']}] {r['request']!r}\n    expected {want}\n    got      "
                  f"{got}" + (f"  (error: {err})" if err else ""))
    times = sorted(t for *_, t in results)
    median = times[len(times) // 2] if times else 0.0
    errors = sum(1 for _, _, e, _ in results if e)
    table = [f"Everyday requests (tools/everyday: {len(tools)} {args.set} tools, {len(results)} "
             f"requests), format `{agent.format.name}`, tool_choice `{args.tool_choice}`, "
             f"call bias {agent.call_bias:+.2f}, grounding {args.grounding}, "
             "greedy, 1 thread", "",
             f"CPU: {cpu_name()}; date: {time.strftime('%Y-%m-%d')}; model: "
             f"`{Path(path).name}` (sha256 {file_sha(path)}); commit: {git_commit()}; "
             f"median {median:.2f} s/request, {wall:.0f} s in all, {errors} unreadable calls",
             "", "| kind | accuracy |", "|---|---:|"]
    for k, (ok, n) in summary.items():
        name = "**overall**" if k == "all" else k
        table.append(f"| {name} | {100 * ok / n:.1f}% ({ok}/{n}) |")
    print("\n".join(table))
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + "\n".join(table) + "\n")
    return summary


if __name__ == "__main__":
    main()

"""Right calls on held-out examples (tune/data.py dicts), through the agent's public API.

A reply is right when its calls equal the example's as multisets (strings compared without
case or surrounding space), or, for an example whose reply is text, when it makes no call.
Only the first reply of each example is judged. Needs no torch: tools/bench_dev.py and
`edge-runtime tune` both use it.
"""
from __future__ import annotations

import json
from collections import Counter

NO_CALL = "(no call)"


def expected_calls(example) -> list:
    reply = next(m for m in example["messages"] if m["role"] == "assistant")
    return [(c["function"]["name"], c["function"]["arguments"])
            for c in reply.get("tool_calls") or []]


def _norm(v):
    if isinstance(v, str):
        return v.strip().lower()
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def same_calls(got, want) -> bool:
    key = lambda c: json.dumps([c[0], _norm(c[1])], sort_keys=True)  # noqa: E731
    return sorted(map(key, got)) == sorted(map(key, want))


def run(model, examples, **agent_kw) -> list:
    """[(example, calls made, right)] for each example; one agent per distinct toolset."""
    import edge_runtime as er
    agents, out = {}, []
    for ex in examples:
        key = json.dumps(ex["tools"], sort_keys=True)
        if key not in agents:
            agents = {key: er.Agent(model, tools=ex["tools"], **agent_kw)}   # keep one alive
        turn = agents[key].respond([ex["messages"][0]], tool_choice=agent_kw.get(
            "tool_choice", "auto"))
        got = [(c["name"], c["arguments"]) for c in turn.calls]
        out.append((ex, got, same_calls(got, expected_calls(ex))))
    return out


def margins(model, examples, **agent_kw) -> list:
    """[(example, call margin, forced calls right)] for each example: Agent.call_margin of its
    request, and whether the calls made with tool_choice="required" are the expected ones (for
    an example whose reply is text: whether it expects no call). With these, the auto decision
    at any call_bias is known without decoding again (sweep)."""
    import edge_runtime as er
    agents, out = {}, []
    for ex in examples:
        key = json.dumps(ex["tools"], sort_keys=True)
        if key not in agents:
            agents = {key: er.Agent(model, tools=ex["tools"], **agent_kw)}
        agent, msg, want = agents[key], [ex["messages"][0]], expected_calls(ex)
        forced = want and same_calls([(c["name"], c["arguments"]) for c in agent.respond(
            msg, tool_choice="required").calls], want)
        out.append((ex, agent.call_margin(msg), bool(forced) if want else None))
    return out


# the call biases a sweep tries: a tuned model's calls and refusals can part anywhere in here
BIASES = tuple(b / 4 for b in range(-16, 25))


def best_bias(table) -> float:
    """The bias of a sweep's table with the most right, the nearest to 0 among equals."""
    return max(table, key=lambda bt: (bt[1], -abs(bt[0])))[0]


def sweep(rows, biases=BIASES) -> list:
    """[(bias, right)] for each bias: an example expecting calls is right when margin + bias
    decides for a call (>= 0) and the forced calls were right; one expecting text when it
    decides against."""
    return [(b, sum((m + b >= 0 and ok) if ok is not None else (m + b < 0)
                    for _, m, ok in rows)) for b in biases]


def by_tool(results) -> dict:
    """{tool name, or NO_CALL: (right, total)}: an example counts for each tool it calls."""
    right, total = Counter(), Counter()
    for ex, _, ok in results:
        for name in {w[0] for w in expected_calls(ex)} or {NO_CALL}:
            total[name] += 1
            right[name] += ok
    return {k: (right[k], total[k]) for k in total}


def by_kind(results) -> dict:
    right, total = Counter(), Counter()
    for ex, _, ok in results:
        total[ex["kind"]] += 1
        right[ex["kind"]] += ok
    return {k: (right[k], total[k]) for k in total}

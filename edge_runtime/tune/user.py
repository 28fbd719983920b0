"""`edge-runtime tune`: teach the default model a user's own tools, on the CPU at hand.

Examples for exactly those tools are generated from their schemas (tune/data.py
examples_for_tools), the user's own examples (JSONL) are added, and a share of the general data
keeps the rest from being forgotten. Training starts from the shipped adapter, so the result is
a complete adapter for the base model. A fifth of the generated examples and a quarter of the
user's are held out, and right calls on them are counted per tool before (the default model)
and after (the base with the new adapter merged in). Another slice of the generated examples,
also never trained on, chooses the call bias the tuned model decides with: tuning moves where
its calls and refusals part (docs/TOOL_CALLING.md), so the shipped model's bias would turn
plain requests into refusals. The bias is recorded in the adapter, and a merged model carries it.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import time
from dataclasses import dataclass, field

import psutil

from .. import adapter as adapter_file
from .. import models
from ..calls.schema import normalize_tool, schema_from_callable, validate
from ..errors import InvalidArgumentError
from . import data, evaluate
from .train import Settings, train

GENERAL_SHARE = 0.25
TOKENS_MAX = 16384        # an example's length limit: a toolset of 60 tools is ~5k tokens
MERGE_SECONDS = 20        # base + adapter into a Q8_0 GGUF, on a 2-core machine
# the estimate of what follows training ran 2 s over a 20-minute budget on the workshop set
SLACK_SECONDS = 30
HELD_OUT = 40             # generated examples held out for the report, and as many to choose
                          # the call bias on
# With less memory free than this, tune recomputes each layer in the backward pass (train's
# recompute): on 10 workshop tools training peaked at 5.6 GB of RSS (9.5 GB with the scoring
# and merges around it) and 2.4 GB recomputing (4.3 GB), at 0.7x the tokens/s.
RECOMPUTE_BELOW = 12 << 30


class ExamplesError(InvalidArgumentError):
    """A line of the user's examples file that cannot be used (the message names the line)."""


@dataclass
class Report:
    adapter: str
    manifest: dict
    call_bias: float
    before: dict = field(default_factory=dict)   # {tool name or NO_CALL: (right, total)}
    after: dict = field(default_factory=dict)

    def table(self) -> str:
        """Right calls per tool, before and after, as a markdown table."""
        rows = ["| tool | before | after |", "|---|---:|---:|"]
        for k in sorted(set(self.before) | set(self.after)):
            b, a = self.before.get(k, (0, 0)), self.after.get(k, (0, 0))
            rows.append(f"| {k} | {b[0]}/{b[1]} | {a[0]}/{a[1]} |")
        tb = [sum(v[i] for v in self.before.values()) for i in (0, 1)]
        ta = [sum(v[i] for v in self.after.values()) for i in (0, 1)]
        rows.append(f"| all | {tb[0]}/{tb[1]} | {ta[0]}/{ta[1]} |")
        return "\n".join(rows)


def _tool_dict(t) -> dict:
    spec = schema_from_callable(t) if callable(t) else t
    normalize_tool(spec)       # refuses what the agent could not declare
    return spec


def read_examples(path, tools) -> list:
    """The user's JSONL examples as generator examples. Each line: {"request": "...",
    "calls": [{"name": ..., "arguments": {...}}, ...]}; "calls": [] (or absent) means the
    model should not call; "answer" gives the reply to say then (a short decline otherwise)."""
    schemas = {normalize_tool(t)["name"]: normalize_tool(t)["parameters"] for t in tools}
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if not isinstance(d, dict) or not isinstance(d.get("request"), str) \
                        or not d["request"].strip():
                    raise ValueError('a line is an object with a non-empty "request"')
                calls = d.get("calls") or []
                if not isinstance(calls, list):
                    raise ValueError('"calls" must be a list')
                for c in calls:
                    if not isinstance(c, dict) or c.get("name") not in schemas:
                        raise ValueError(f"call of an undeclared tool {c.get('name')!r}"
                                         if isinstance(c, dict) else "a call must be an object")
                    errors = validate(c.get("arguments", {}), schemas[c["name"]])
                    if errors:
                        raise ValueError(f"{c['name']}: " + "; ".join(errors))
            except ValueError as e:   # json.JSONDecodeError is a ValueError
                raise ExamplesError(f"{path} line {n}: {e}") from None
            msgs = [{"role": "user", "content": d["request"].strip()}]
            if calls:
                msgs.append({"role": "assistant", "tool_calls": [
                    {"type": "function", "function": {"name": c["name"],
                                                      "arguments": c.get("arguments", {})}}
                    for c in calls]})
            else:
                msgs.append({"role": "assistant", "content": d.get("answer") or
                             "Sorry, I can't do that with the tools I have."})
            out.append({"kind": "user", "tools": list(tools), "messages": msgs})
    return out


def score(model_path, tools, held_out, threads=None) -> dict:
    """{tool name (or NO_CALL): (right, total)} of the agent on model_path over held_out."""
    import edge_runtime as er
    model = er.Model.load(model_path, threads=threads)
    return evaluate.by_tool(evaluate.run(model, [dict(ex, tools=tools) for ex in held_out]))


def tune(tools, out_path, examples_path=None, minutes=20.0, steps=120, seed=0,
         n_generated=800, threads=None, log=print, low_memory=None) -> Report:
    """Train an adapter for `tools` (callables or OpenAI-style schemas) into out_path, all of it
    within about `minutes`. low_memory: recompute layers in the backward pass (less memory,
    fewer steps in the time); None: when less than RECOMPUTE_BELOW bytes are free."""
    t0 = time.time()
    if low_memory is None:
        low_memory = psutil.virtual_memory().available < RECOMPUTE_BELOW
    if low_memory:
        _release_freed_tensors()
    tools = [_tool_dict(t) for t in tools]
    if not tools:
        raise InvalidArgumentError("tune needs at least one tool")
    mine = read_examples(examples_path, tools) if examples_path else []
    generated = data.examples_for_tools(tools, n_generated, seed)
    held = generated[::5][:HELD_OUT] + mine[::4]
    calibrate = generated[1::5][:HELD_OUT]
    train_set = [e for i, e in enumerate(generated) if i % 5 > 1 or i // 5 >= HELD_OUT] + \
        [e for i, e in enumerate(mine) if i % 4]
    n_general = int(len(train_set) * GENERAL_SHARE / (1 - GENERAL_SHARE))
    train_set += data.generate(n_general, seed, "train")
    random.Random(seed).shuffle(train_set)
    base = models.source()
    shipped = adapter_file.read(models.DEFAULT_ADAPTER)
    log(f"tune: {len(tools)} tools, {len(train_set)} training examples "
        f"({len(mine)} of yours), {len(held)} held out, {len(calibrate)} to choose the call "
        f"bias on" + ("; low memory: layers recomputed in the backward pass" if low_memory
                      else ""))
    t_score = time.time()
    before = score(models.default(), tools, held, threads)
    # after training come the bias's examples and the report's, each about as long as this
    # scoring, and two merges
    left = minutes * 60 - (time.time() - t0) - 2 * (time.time() - t_score) - 2 * MERGE_SECONDS \
        - SLACK_SECONDS
    # every example declares the user's whole toolset: none may be skipped for its length
    settings = Settings(rank=shipped.manifest["rank"], alpha=shipped.manifest["alpha"],
                        steps=steps, lr=2e-4, warmup=5, max_len=TOKENS_MAX)
    manifest = train(base, train_set, out_path, settings,
                     minutes=max(left, 60) / 60, init=shipped, threads=threads, log=log,
                     recompute=low_memory, record={
                         "generator_version": data.GENERATOR_VERSION, "data_seed": seed,
                         "tools": [normalize_tool(t)["name"] for t in tools],
                         "user_examples": os.path.basename(examples_path or "") or None})
    bias = choose_call_bias(models.merged(base, out_path), tools, calibrate, threads, log)
    manifest = adapter_file.set_call_bias(out_path, bias, f"tune: {len(calibrate)} held-out "
                                          f"generated examples (seed {seed}), best of a sweep")
    after = score(models.merged(base, out_path), tools, held, threads)
    return Report(os.fspath(out_path), manifest, bias, before, after)


def _release_freed_tensors():
    """glibc serves allocations below a threshold that rises with every large free from its
    heap, where freed tensors of changing sizes stay resident (the low-memory pass grew to 2.8
    GiB in 20 steps); a fixed 16 MiB threshold maps the larger ones apart and unmaps them when
    freed (2.3 GiB, with train.padded's few sizes). 1 MiB held it lower still, at half the
    speed: a third of the time went to the kernel's page faults. Elsewhere than glibc nothing
    is changed."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 16 << 20)     # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def choose_call_bias(model_path, tools, examples, threads=None, log=print) -> float:
    """The call bias with the most right decisions on examples (evaluate.sweep). The merged model
    it was measured on is removed: the adapter changes once the bias is recorded."""
    import edge_runtime as er
    model = er.Model.load(model_path, threads=threads)
    rows = evaluate.margins(model, [dict(ex, tools=tools) for ex in examples])
    model.close()
    models.forget(model_path)
    table = evaluate.sweep(rows)
    bias = evaluate.best_bias(table)
    log(f"tune: call bias {bias:+.2f} ({dict(table)[bias]}/{len(rows)} right on its examples; "
        f"0.00: {dict(table)[0.0]})")
    return bias

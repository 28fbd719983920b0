"""Train a LoRA adapter on tool-calling examples, on the CPU, resumable.

An example (tune/data.py) is rendered exactly as the agent will meet it: FunctionGemma's
declarations and turn (calls/formats/), then the reply the model should give. Only the reply
is scored: the call tokens through <end_function_call>, the <start_function_call> or
<start_function_response> that follows (the agent's next decision), a text answer through
<end_of_turn>. Tool results inside a follow-up are context, not targets.

Every `checkpoint_every` steps the adapter, the optimizer and the step are written next to the
output (OUT.ckpt, atomically); a run started again with the same settings and examples resumes
there and ends with the same adapter as an uninterrupted run. The example order is a function of
the seed alone.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import adapter as adapter_file
from ..calls.formats import FunctionGemmaFormat, encode_segments
from ..files import replacing
from ..calls.formats.functiongemma import tokens as T
from ..gguf import open_gguf
from ..models import file_sha256
from ..tokenizer import Tokenizer
from . import torch_model as M

# The embedding rows the adapter trains: FunctionGemma's seven control tokens (unused slots in
# the base model) and the turn markers.
CONTROL_ROWS = tuple(sorted(T.FUNCTION_TOKENS.values())) + (T.START_TURN_ID, T.END_TURN_ID)
IGNORE = -100
# Where a reply's shape is decided: another key or the call's end after a value, no key at all,
# and after a call another call or the end of the calls (the first of a reply's tokens is one
# of the two control tokens, or text). A few percent of the scored tokens, and where the taught
# model errs most: keys nobody asked for, a second call nobody asked for.
DECISION_TEXTS = (",", "}", "],", "]}", "{}")
PAD_TO = 64


def decision_ids(tok) -> list:
    out = [T.START_CALL_ID, T.START_RESP_ID]
    for text in DECISION_TEXTS:
        ids = tok.encode(text, add_bos=False, special=False)
        if len(ids) == 1:
            out.append(ids[0])
    return out


@dataclass
class Settings:
    rank: int = 8
    alpha: float = 16.0
    lr: float = 3e-4
    batch: int = 8            # examples per optimizer step
    steps: int = 300
    warmup: int = 10
    seed: int = 0
    bf16: bool = True         # base weights in bfloat16, the products in its dot products
    max_len: int = 768        # longer examples are skipped
    checkpoint_every: int = 10
    decision_weight: float = 1.0   # the loss's factor where a reply's shape is decided


def encode(tok, example) -> tuple[list, list]:
    """(ids, targets) of one example: targets hold the id where the model is scored, else
    IGNORE. Control ids are placed by the format; every text goes through the tokenizer as
    text."""
    fmt = FunctionGemmaFormat(tok)
    msgs = example["messages"]
    first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    ids = encode_segments(tok, fmt.prefix(None, example["tools"])
                          + fmt.turn(msgs[:first], {}), True)
    targets = [IGNORE] * len(ids)

    def add(segments, scored):
        new = encode_segments(tok, segments, False)
        ids.extend(new)
        targets.extend(new if scored else [IGNORE] * len(new))

    for i in range(first, len(msgs)):
        m = msgs[i]
        if m["role"] == "assistant" and m.get("tool_calls"):
            for c in m["tool_calls"]:
                fn = c.get("function", c)
                add([T.START_CALL_ID] + fmt.call_segments(fn["name"], fn["arguments"]), True)
            add([T.START_RESP_ID], True)     # the decision: no more calls, results next
        elif m["role"] == "assistant":
            add([m["content"], T.END_TURN_ID], True)
        elif m["role"] == "tool":
            # the agent feeds the result after the decision token it has already placed
            seg = fmt.results([{"name": m["name"], "result": m["content"]}])
            assert seg[0] == T.START_RESP_ID
            add(seg[1:], False)
        else:
            raise ValueError(f"unexpected {m['role']!r} message after the first reply")
    return ids, targets


def pack(encoded) -> tuple:
    """One pass for examples that share their first tokens (the declarations of one toolset):
    (ids, next_targets, pos, branch). The shared stem is written once (branch 0); each
    example's rest follows as branch 1, 2, ..., at the positions it has on its own, seeing
    the stem and itself only (Gemma3.masks). next_targets[i] is the target for the token after
    ids[i] within its own sequence, so the loss is the sum of the examples' own losses."""
    if len(encoded) == 1:
        stem = len(encoded[0][0])
    else:
        stem = 0
        first = encoded[0][0]
        shortest = min(len(ids) for ids, _ in encoded)
        while stem < shortest - 1 and all(ids[stem] == first[stem] for ids, _ in encoded):
            stem += 1
        # the stem's last token is followed by each branch's own first token: not a target
        while stem and any(tg[stem] != IGNORE for _, tg in encoded):
            stem -= 1
    ids0, tg0 = encoded[0]
    ids, nxt = list(ids0[:stem]), list(tg0[1:stem]) + [IGNORE] * min(stem, 1)
    pos, branch = list(range(stem)), [0] * stem
    for b, (e_ids, e_tg) in enumerate(encoded, 1):
        if stem == len(e_ids):
            continue
        ids += e_ids[stem:]
        nxt += list(e_tg[stem + 1:]) + [IGNORE]
        pos += range(stem, len(e_ids))
        branch += [b] * (len(e_ids) - stem)
    return ids, nxt, pos, branch


def padded(ids, nxt, pos, branch) -> tuple:
    """pack()'s pass grown to a multiple of PAD_TO tokens that no other token sees and nothing
    scores (a branch of their own): the loss and gradients are the same, and the allocator and
    oneDNN meet a few dozen sizes instead of hundreds, so freed blocks are used again (the
    low-memory pass's peak over 20 steps: 2,808 -> 2,258 MiB, at 2% more tokens)."""
    k = -len(ids) % PAD_TO
    return (ids + [0] * k, nxt + [IGNORE] * k, pos + list(range(k)),
            branch + [max(branch) + 1] * k)


def _groups(examples) -> list:
    """Lists of indices into examples: the examples of one group (data.py's "group"), else
    each on its own."""
    out, where = [], {}
    for i, ex in enumerate(examples):
        g = ex.get("group")
        if g is None:
            out.append([i])
        elif g in where:
            out[where[g]].append(i)
        else:
            where[g] = len(out)
            out.append([i])
    return out


def tokenizer_of(path) -> Tokenizer:
    g = open_gguf(path)
    return Tokenizer.from_gguf(g)


def _lr(s: Settings, step: int) -> float:
    """Linear warm-up, then cosine down to a tenth."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _order(n: int, need: int, seed: int) -> list:
    """Example indices for `need` draws: whole shuffled passes, the same for the same seed."""
    r, out = random.Random(seed), []
    while len(out) < need:
        p = list(range(n))
        r.shuffle(p)
        out += p
    return out[:need]


def _save(path, obj):
    with replacing(path) as tmp:
        torch.save(obj, tmp)


class Progress:
    """One line per report: step, loss, tokens/s, ETA (a bar on a terminal)."""

    def __init__(self, total, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()

    def report(self, step, loss, tok_s, eta_s, extra=""):
        eta = time.strftime("%H:%M:%S", time.gmtime(max(0, eta_s)))
        width = 24
        bar = "#" * int(width * step / self.total) + "." * (width - int(width * step / self.total))
        line = (f"[{bar}] step {step}/{self.total}  loss {loss:.4f}  {tok_s:.0f} tok/s  "
                f"ETA {eta}{extra}")
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=self.stream, flush=True)

    def done(self):
        if self.tty:
            print(file=self.stream)


def train(base_path, examples, out_path, settings: Settings = Settings(), *, minutes=None,
          init=None, record=None, threads=None, log=None, on_step=None,
          recompute=False) -> dict | None:
    """Train on examples (tune/data.py dicts) from the Gemma 3 GGUF at base_path and write the
    adapter to out_path. init: an Adapter to start from. record: extra manifest fields (how the
    data was made). on_step(step, loss) is called after each step (and its checkpoint).
    minutes: stop by then; the adapter is written with the steps done (its manifest says
    "complete": false) and the checkpoint holds the run: the same call goes on from there.
    recompute: run each layer again in the backward pass instead of keeping its activations
    (Gemma3.hidden): the same adapter, in less memory and more time.
    Returns the adapter's manifest."""
    s = settings
    t_start = time.time()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(s.seed)
    tok = tokenizer_of(base_path)
    encoded = [encode(tok, ex) for ex in examples]
    fits = [i for i, e in enumerate(encoded) if len(e[0]) <= s.max_len]
    if not fits:
        raise ValueError("no training example fits in max_len")
    if len(fits) < len(encoded):
        (log or print)(f"{len(encoded) - len(fits)} of {len(encoded)} examples are longer than "
                       f"max_len {s.max_len} tokens: skipped")
    groups = _groups([examples[i] for i in fits])
    encoded = [encoded[i] for i in fits]
    fingerprint = hashlib.sha256(json.dumps([e[0] for e in encoded]).encode()).hexdigest()
    decisions = torch.tensor(decision_ids(tok))
    model = M.load(base_path, rank=s.rank, alpha=s.alpha, rows=CONTROL_ROWS, seed=s.seed,
                   bf16=s.bf16)
    if init is not None:
        init.check_model(model.cfg)
        model.load_adapter_tensors({k: np.asarray(v, np.float32) if v.dtype != np.int64 else v
                                    for k, v in init.tensors.items()})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    ckpt = f"{out_path}.ckpt"
    step, seen_tokens, trained_s = 0, 0, 0.0
    key = {"settings": dataclasses.asdict(s), "examples": fingerprint,
           "init": init.sha256 if init is not None else None}
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False)
        if state["key"] == key:
            model.load_adapter_tensors(state["adapter"])
            opt.load_state_dict(state["optimizer"])
            step, seen_tokens, trained_s = state["step"], state["tokens"], state["seconds"]
            (log or print)(f"resuming at step {step}/{s.steps} from {ckpt}")
        else:
            (log or print)(f"{ckpt} is from another run (settings or data differ): starting over")
    # a step takes whole groups until it holds `batch` examples
    order = _order(len(groups), s.steps * s.batch, s.seed)
    steps, at = [], 0
    while len(steps) < s.steps:
        take, n = [], 0
        while n < s.batch:
            take.append(groups[order[at]])
            n, at = n + len(groups[order[at]]), at + 1
        steps.append(take)
    bar = Progress(s.steps)
    t0, tokens0, first_step = time.time(), 0, step
    ema = None

    def checkpoint():
        _save(ckpt, {"key": key, "adapter": model.adapter_tensors(),
                     "optimizer": opt.state_dict(), "step": step,
                     "tokens": seen_tokens + tokens0, "seconds": trained_s + time.time() - t0})

    while step < s.steps:
        if minutes is not None and time.time() - t_start > minutes * 60:
            if step > first_step:
                checkpoint()
            break
        for g in opt.param_groups:
            g["lr"] = _lr(s, step)
        batch = [pack([encoded[i] for i in g]) for g in steps[step]]
        n_target = sum(sum(t != IGNORE for t in p[1]) for p in batch)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for packed in batch:
            tokens0 += len(packed[0])
            ids, nxt, pos, branch = padded(*packed)
            nxt = torch.tensor(nxt)
            weights = None if s.decision_weight == 1.0 else \
                torch.where(torch.isin(nxt, decisions), s.decision_weight, 1.0)
            loss = model.loss(torch.tensor(ids), nxt, pos=torch.tensor(pos),
                              branch=torch.tensor(branch), recompute=recompute,
                              weights=weights) / n_target
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema = total if ema is None else 0.9 * ema + 0.1 * total
        el = time.time() - t0
        rate = tokens0 / el if el > 0 else 0.0
        bar.report(step, ema, rate, (s.steps - step) * el / (step - first_step))
        if step % s.checkpoint_every == 0 or step == s.steps:
            checkpoint()
        if on_step is not None:
            on_step(step, total)
    bar.done()
    elapsed = trained_s + time.time() - t0
    c = model.cfg
    manifest = {
        "base": {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_vocab": c.n_vocab,
                 "n_head": c.n_head, "n_head_kv": c.n_head_kv, "head_dim": c.head_dim_k,
                 "n_ff": c.n_ff, "file": os.path.basename(os.fspath(base_path)),
                 "sha256": file_sha256(base_path)},
        "rank": s.rank, "alpha": s.alpha, "call_format": "functiongemma",
        "training": dict(record or {}, settings=dataclasses.asdict(s), examples=len(encoded),
                         example_fingerprint=fingerprint, tokens=seen_tokens + tokens0,
                         seconds=round(elapsed, 1),
                         init=init.sha256 if init is not None else None,
                         steps_done=step, complete=step == s.steps,
                         torch=torch.__version__, threads=torch.get_num_threads()),
    }
    adapter_file.write(out_path, model.adapter_tensors(), manifest)
    return adapter_file.read(out_path).manifest

"""The training path: the torch forward against the float64 reference, what is scored, the
adapter file, merging it into a GGUF, resuming, and the walls (the runtime never imports torch)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from edge_runtime import adapter as adapter_file
from edge_runtime.errors import AdapterError

torch = pytest.importorskip("torch")

from edge_runtime.calls.formats.functiongemma import tokens as T  # noqa: E402
from edge_runtime.tune import torch_model as M  # noqa: E402
from edge_runtime.tune import train  # noqa: E402

from reference_f64 import Reference  # noqa: E402

TINY = dict(n_layer=2, n_embd=64, n_head=2, n_head_kv=1, head_dim=32, n_ff=128, n_vocab=512,
            sliding_window=8, context_length=1024, weight_type="F32")

LAMP = {"type": "function", "function": {"name": "lamp", "description": "Switch the lamp",
        "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}},
                       "required": ["on"]}}}
FAN = {"type": "function", "function": {"name": "fan", "description": "Set the fan",
       "parameters": {"type": "object", "properties": {
           "speed": {"type": "string", "enum": ["low", "high"]}}, "required": ["speed"]}}}


def _call(name, args):
    return {"role": "assistant", "tool_calls": [{"type": "function",
                                                 "function": {"name": name, "arguments": args}}]}


def _example(request, reply):
    return {"kind": "single", "tools": [LAMP, FAN],
            "messages": [{"role": "user", "content": request}, reply]}


def _tool_examples():
    return [_example("lamp on", _call("lamp", {"on": True})),
            _example("lamp off", _call("lamp", {"on": False})),
            _example("fan low", _call("fan", {"speed": "low"})),
            _example("fan high", _call("fan", {"speed": "high"})),
            _example("hello", {"role": "assistant", "content": "hi"})]


# ---- the forward pass ------------------------------------------------------------------------

def _ref_vs_torch(path, ids):
    ref = Reference(path).forward(ids)
    m = M.load(path, rank=4, rows=train.CONTROL_ROWS)
    with torch.no_grad():
        got = m(torch.tensor(ids)).double().numpy()
    return got, ref


@pytest.mark.parametrize("attn_rows", [3, M.ATTN_ROWS])
def test_forward_matches_the_float64_reference_on_a_tiny_model(tiny_gguf_factory, monkeypatch,
                                                                attn_rows):
    """Also with attention in pieces of 3 queries (Gemma3.masks), each over its own keys."""
    monkeypatch.setattr(M, "ATTN_ROWS", attn_rows)
    path = tiny_gguf_factory(**TINY)
    ids = [2, 105, 40, 300, 301, 302, 48, 52, 400, 49, 106, 1, 7, 8]   # past the window of 8
    got, ref = _ref_vs_torch(path, ids)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.model
def test_forward_matches_the_float64_reference_on_the_real_weights():
    """The base the shipped adapter is trained on: the Q4_K_M source, dequantized."""
    from edge_runtime import models
    from edge_runtime.tune.train import tokenizer_of

    path = models.source()
    ids = tokenizer_of(path).encode("Turn the kitchen lights off and set a timer for 5 minutes")
    got, ref = _ref_vs_torch(path, ids)
    # float32 against float64 over 18 layers: ~1e-6 of the logit range
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    assert (got.argmax(-1) == ref.argmax(-1)).all()


# ---- what is scored ---------------------------------------------------------------------------

def test_only_the_reply_is_scored(tiny_gguf_factory):
    tok = train.tokenizer_of(tiny_gguf_factory(**TINY))
    ex = _example("lamp on", _call("lamp", {"on": True}))
    ids, targets = train.encode(tok, ex)
    scored = [i for i, t in enumerate(targets) if t != train.IGNORE]
    assert scored == list(range(scored[0], len(ids)))       # one block at the end
    assert targets[scored[0]:] == ids[scored[0]:]
    assert T.decode(tok, ids[:scored[0]]).endswith("lamp on<end_of_turn>\n<start_of_turn>model\n")
    reply = T.decode(tok, ids[scored[0]:])
    assert reply == "<start_function_call>call:lamp{on:true}<end_function_call>" \
                    "<start_function_response>"
    answer = train.encode(tok, _example("hello", {"role": "assistant", "content": "hi"}))
    scored_ids = [t for t in answer[1] if t != train.IGNORE]
    assert scored_ids[-1] == T.END_TURN_ID and T.decode(tok, scored_ids[:-1]) == "hi"


def test_a_tool_result_is_context_not_target(tiny_gguf_factory):
    tok = train.tokenizer_of(tiny_gguf_factory(**TINY))
    ex = {"kind": "followup", "tools": [LAMP], "messages": [
        {"role": "user", "content": "lamp on"}, _call("lamp", {"on": True}),
        {"role": "tool", "name": "lamp", "content": {"state": "on"}},
        {"role": "assistant", "content": "the lamp is on"}]}
    ids, targets = train.encode(tok, ex)
    scored = T.decode(tok, [t for t in targets if t != train.IGNORE])
    assert scored == ("<start_function_call>call:lamp{on:true}<end_function_call>"
                      "<start_function_response>the lamp is on<end_of_turn>")
    assert "response:lamp{state:<escape>on<escape>}<end_function_response>" in T.decode(tok, ids)


def _perturbed(path, seed):
    """The torch model with every trainable parameter moved off its start (B = 0 would leave
    A without a gradient)."""
    m = M.load(path, rank=4, rows=train.CONTROL_ROWS, seed=seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) / 8)
    return m


@pytest.mark.parametrize("attn_rows", [3, M.ATTN_ROWS])
def test_a_packed_pass_is_the_sum_of_its_examples(tiny_gguf_factory, monkeypatch, attn_rows):
    """Requests on one toolset share its declarations in one pass (train.pack): the loss and
    every gradient must be those of the examples run one by one, past the sliding window
    (also with attention in pieces whose queries see different branches)."""
    monkeypatch.setattr(M, "ATTN_ROWS", attn_rows)
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    group = [train.encode(tok, ex) for ex in _tool_examples()]
    m = _perturbed(path, seed=3)

    def run(packed):
        m.zero_grad()
        total = 0.0
        for ids, nxt, pos, branch in packed:
            loss = m.loss(torch.tensor(ids), torch.tensor(nxt), pos=torch.tensor(pos),
                          branch=torch.tensor(branch))
            loss.backward()
            total += float(loss.detach())
        return total, [p.grad.clone() for p in m.parameters()]

    one_by_one = [train.pack([e]) for e in group]
    together = train.pack(group)
    stem = together[3].count(0)
    assert stem > TINY["sliding_window"] and len(together[0]) < sum(len(p[0]) for p in one_by_one)
    assert sum(t != train.IGNORE for t in together[1]) == \
        sum(t != train.IGNORE for _, tg in group for t in tg)
    want, want_grads = run(one_by_one)
    got, got_grads = run([together])
    assert abs(got - want) <= 1e-5 * abs(want)
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max()))


def test_padding_a_pass_changes_neither_its_loss_nor_its_gradients(tiny_gguf_factory):
    """train.padded grows a pass to a multiple of PAD_TO with tokens nobody sees or scores."""
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    packed = train.pack([train.encode(tok, ex) for ex in _tool_examples()])
    grown = train.padded(*packed)
    assert len(grown[0]) % train.PAD_TO == 0 and len(grown[0]) > len(packed[0])
    m = _perturbed(path, seed=4)
    out = []
    for ids, nxt, pos, branch in (packed, grown):
        m.zero_grad()
        loss = m.loss(torch.tensor(ids), torch.tensor(nxt), pos=torch.tensor(pos),
                      branch=torch.tensor(branch))
        loss.backward()
        out.append((float(loss.detach()), [p.grad.clone() for p in m.parameters()]))
    (want, want_grads), (got, got_grads) = out
    assert got == pytest.approx(want, rel=1e-6) and want > 0
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max()))


def test_recomputing_the_layers_gives_the_same_loss_and_gradients(tiny_gguf_factory):
    """recompute (tune's low-memory pass) keeps only each layer's input and runs the layer
    again in the backward pass: the loss and every gradient are those of the plain pass."""
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    ids, nxt, pos, branch = train.pack([train.encode(tok, ex) for ex in _tool_examples()])
    m = _perturbed(path, seed=5)

    def run(recompute):
        m.zero_grad()
        loss = m.loss(torch.tensor(ids), torch.tensor(nxt), pos=torch.tensor(pos),
                      branch=torch.tensor(branch), recompute=recompute)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in m.parameters()]

    want, want_grads = run(False)
    got, got_grads = run(True)
    assert got == pytest.approx(want, rel=1e-6) and want > 0
    for g, w in zip(got_grads, want_grads):
        assert float(w.abs().max()) > 0
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max()))


@pytest.mark.parametrize("cap", [None, 4.0])
def test_the_loss_is_the_weighted_cross_entropy_of_the_logits(tiny_gguf_factory, monkeypatch,
                                                              cap):
    """Gemma3.loss makes the output's gradient with the loss, a few rows at a time
    (_ScoredLoss): its value and every gradient are autograd's through the plain logits, with
    the trained embedding rows and with a final soft cap."""
    monkeypatch.setattr(M, "LOSS_ROWS", 3)
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    ids, nxt, pos, branch = train.pack([train.encode(tok, ex) for ex in _tool_examples()[:2]])
    ids, nxt = torch.tensor(ids), torch.tensor(nxt)
    m = _perturbed(path, seed=6)
    m.cfg = dataclasses.replace(m.cfg, final_logit_softcap=cap)
    w = torch.rand(len(nxt), generator=torch.Generator().manual_seed(1)) + 0.5
    sel = nxt >= 0
    assert int(sel.sum()) > 3 * 2 and any(t in train.CONTROL_ROWS for t in nxt[sel].tolist())

    def run(loss_of):
        m.zero_grad()
        loss = loss_of()
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in m.parameters()]

    got, got_grads = run(lambda: m.loss(ids, nxt, weights=w))
    want, want_grads = run(lambda: (torch.nn.functional.cross_entropy(
        m(ids)[sel], nxt[sel], reduction="none") * w[sel]).sum())
    assert got == pytest.approx(want, rel=1e-5) and want > 0
    for g, w_ in zip(got_grads, want_grads):
        assert float(w_.abs().max()) > 0
        assert torch.allclose(g, w_, rtol=1e-4, atol=1e-5 * float(w_.abs().max()))


def test_a_bfloat16_model_gives_the_float32_loss_within_its_rounding(tiny_gguf_factory):
    """Training holds the base weights in bfloat16 (Settings.bf16): the same loss to bfloat16's
    precision, gradients pointing the same way."""
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    ids, nxt, pos, branch = train.pack([train.encode(tok, ex) for ex in _tool_examples()])
    out = []
    for bf16 in (False, True):
        m = M.load(path, rank=4, rows=train.CONTROL_ROWS, seed=2, bf16=bf16)
        loss = m.loss(torch.tensor(ids), torch.tensor(nxt), pos=torch.tensor(pos),
                      branch=torch.tensor(branch))
        loss.backward()
        assert m.embd.dtype == (torch.bfloat16 if bf16 else torch.float32)
        out.append((float(loss.detach()), torch.cat([p.grad.flatten() for p in m.parameters()])))
    (want, g32), (got, g16) = out
    assert got == pytest.approx(want, rel=2e-2)
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > 0.99


def test_decision_positions_weigh_decision_weight_times_in_the_loss(tiny_gguf_factory):
    """Settings.decision_weight multiplies the loss where a reply's shape is decided (another
    key or the call's end, another call or none): held to cross-entropy over the plain
    forward pass's logits at those positions."""
    path = tiny_gguf_factory(**TINY)
    tok = train.tokenizer_of(path)
    ex = _example("lamp on and fan high", {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "lamp", "arguments": {"on": True}}},
        {"type": "function", "function": {"name": "fan", "arguments": {"speed": "high"}}}]})
    ids, nxt, pos, branch = train.pack([train.encode(tok, ex)])
    ids, nxt = torch.tensor(ids), torch.tensor(nxt)
    m = M.load(path, rank=4, rows=train.CONTROL_ROWS, seed=5)
    dec = torch.isin(nxt, torch.tensor(train.decision_ids(tok)))
    assert int(dec.sum()) >= 3         # after the first call, after the second, and the first
    with torch.no_grad():
        logits = m(ids)
        want = float(torch.nn.functional.cross_entropy(logits[dec], nxt[dec], reduction="sum"))
        plain = float(m.loss(ids, nxt))
        tripled = float(m.loss(ids, nxt, weights=torch.where(dec, 3.0, 1.0)))
    assert want > 0 and tripled == pytest.approx(plain + 2 * want, rel=1e-5)


@pytest.mark.parametrize("make, size", [
    (lambda data: data.generate(40, 1, "train", 7), 4),
    (lambda data: data.examples_for_tools([LAMP, FAN], 40, 1), 8)])
def test_grouped_examples_share_their_declarations(make, size):
    from edge_runtime.tune import data
    groups = {}
    for ex in make(data):
        if ex["group"] is not None:
            groups.setdefault(ex["group"], []).append(ex)
    assert 40 / size <= len(groups) < 40 / 2 and all(len(g) <= size for g in groups.values())
    assert any(len(g) == size for g in groups.values())
    for g in groups.values():
        assert all(ex["tools"] == g[0]["tools"] for ex in g)
        for ex in g:
            names = {t["function"]["name"] for t in ex["tools"]}
            called = [c["function"]["name"] for c in ex["messages"][1].get("tool_calls", [])]
            assert set(called) <= names


# ---- training, the adapter file, merging ------------------------------------------------------

QUICK = train.Settings(rank=4, alpha=8.0, lr=2e-2, batch=5, steps=4, warmup=1, bf16=False,
                       checkpoint_every=2)


def test_resume_gives_the_adapter_of_an_uninterrupted_run(tiny_gguf_factory, tmp_path):
    path = tiny_gguf_factory(**TINY)
    whole = tmp_path / "whole.adapter"
    train.train(path, _tool_examples(), whole, QUICK, threads=1, log=lambda *a: None)

    class Stop(Exception):
        pass

    def stop_at_2(step, loss):
        if step == 2:
            raise Stop

    cut = tmp_path / "cut.adapter"
    with pytest.raises(Stop):
        train.train(path, _tool_examples(), cut, QUICK, threads=1, on_step=stop_at_2)
    assert not cut.exists()
    said = []
    train.train(path, _tool_examples(), cut, QUICK, threads=1, log=said.append)
    assert said and "resuming at step 2" in said[0]
    a, b = adapter_file.read(whole), adapter_file.read(cut)
    assert set(a.tensors) == set(b.tensors)
    for k in a.tensors:
        assert np.array_equal(a.tensors[k], b.tensors[k]), k
    assert np.abs(a.tensors["blk.0.attn_q.lora_b"]).max() > 0       # it did train


def test_a_tiny_model_learns_a_two_tool_set(tiny_gguf_factory, tmp_path, monkeypatch):
    """`tune`'s path end to end on a tiny random Gemma 3: examples generated for two tools,
    trained, merged, then held-out requests (none written for any training example) scored
    through the agent as it runs by default (constrained, grounded): mostly wrong before,
    mostly right after. Grounding alone copies values; which tool a request wants, the
    random model cannot tell until it has been taught."""
    from edge_runtime import Model, models
    from edge_runtime.tune import data, evaluate
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    path = tiny_gguf_factory(**dict(TINY, context_length=4096, n_embd=128, n_head=4,
                                    n_ff=256))
    taught = data.examples_for_tools([LAMP, FAN], 240, seed=0, extra_unfit=False)
    seen = {e["messages"][0]["content"] for e in taught}
    held = [e for e in data.examples_for_tools([LAMP, FAN], 120, seed=1, extra_unfit=False)
            if e["kind"] in ("single", "choose", "convert")
            and e["messages"][0]["content"] not in seen]
    assert len(held) >= 30

    def right(gguf):
        m = Model.load(str(gguf), threads=1)
        return sum(ok for *_, ok in evaluate.run(m, held, tool_choice="required"))
    settings = train.Settings(rank=8, alpha=16.0, lr=2e-2, batch=8, steps=120, warmup=3,
                              bf16=False, seed=0, max_len=4096, checkpoint_every=120)
    out = tmp_path / "two.adapter"
    train.train(path, taught, out, settings, threads=1, log=lambda *a: None)
    before, after = right(path), right(models.merged(path, str(out)))
    # 0.8, not 0.85, since requests are also said per kind of action ("fan to 3"): shorter,
    # harder for a random tiny model (43 of 51 after, 27 before, when that came in)
    assert before <= 0.7 * len(held) and after >= 0.8 * len(held), (before, after, len(held))


def _trained(tiny_gguf_factory, tmp_path):
    path = tiny_gguf_factory(**TINY)
    out = tmp_path / "a.adapter"
    train.train(path, _tool_examples(), out, QUICK, threads=1, log=lambda *a: None)
    return path, out


def test_merging_adds_the_low_rank_product(tiny_gguf_factory, tmp_path):
    """The merged Q8_0 weights are base + alpha/r * B @ A (and base rows + offsets), within
    Q8_0's rounding of each 32-value block: checked with gguf's own dequantizer."""
    from edge_runtime.convert import convert
    path, out = _trained(tiny_gguf_factory, tmp_path)
    a = adapter_file.read(out)
    merged = tmp_path / "merged.gguf"
    convert(path, merged, progress=False, adapter=a)
    base, after = Reference(path).w, Reference(str(merged)).w
    for name in ("blk.1.ffn_down.weight", "blk.0.attn_q.weight"):
        stem = name[:-len(".weight")]
        want = base[name] + a.scale * (a.tensors[stem + ".lora_b"].astype(np.float64)
                                       @ a.tensors[stem + ".lora_a"].astype(np.float64))
        blocks = want.reshape(-1, 32)
        step = np.abs(blocks).max(axis=1, keepdims=True) / 127
        # half a step, plus the fp16 rounding of the scale over |q| <= 127 (2^-11 relative)
        assert (np.abs(after[name].reshape(-1, 32) - blocks) <= step * (0.5 + 127 / 2048)).all()
        assert np.abs(want - base[name]).max() > 10 * step.max()   # the change is visible
    rows = a.tensors["token_embd.rows"]
    want = base["token_embd.weight"][rows] + a.tensors["token_embd.row_delta"]
    assert np.abs(after["token_embd.weight"][rows] - want).max() <= np.abs(want).max() / 127
    import edge_runtime as er
    m = er.Model.load(str(merged))
    from edge_runtime.calls.formats import get_format
    assert get_format(None, m).name == "functiongemma"     # the adapter names its format


def test_a_damaged_adapter_is_refused(tiny_gguf_factory, tmp_path):
    _, out = _trained(tiny_gguf_factory, tmp_path)
    raw = bytearray(out.read_bytes())
    bad = tmp_path / "bad.adapter"
    for damage in (lambda b: b[:len(b) // 2], lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:],
                   lambda b: b"not a zip at all"):
        bad.write_bytes(bytes(damage(bytes(raw))))
        with pytest.raises(AdapterError):
            adapter_file.read(bad)


def test_an_adapter_for_another_model_is_refused(tiny_gguf_factory, tmp_path):
    from edge_runtime import models
    _, out = _trained(tiny_gguf_factory, tmp_path)
    other = tiny_gguf_factory(**dict(TINY, n_ff=256))
    with pytest.raises(AdapterError, match="another base model.*n_ff 256"):
        models.merged(other, out)


def test_model_load_with_an_adapter_merges_once(tiny_gguf_factory, tmp_path, monkeypatch):
    import edge_runtime as er
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "cache"))
    path, out = _trained(tiny_gguf_factory, tmp_path)
    m = er.Model.load(path, adapter=str(out))
    merged = list((tmp_path / "cache").glob("merged-*.gguf"))
    assert len(merged) == 1 and m.gguf.metadata["edge_runtime.adapter_sha256"] == \
        adapter_file.read(out).sha256
    mtime = merged[0].stat().st_mtime_ns
    er.Model.load(path, adapter=str(out))
    assert merged[0].stat().st_mtime_ns == mtime               # cached, not rebuilt


def test_a_recorded_call_bias_travels_with_the_merged_model(tiny_gguf_factory, tmp_path,
                                                            monkeypatch):
    """The call bias recorded in an adapter names a new adapter (a new merge), is carried by the
    merged model, and is what an Agent decides with unless told otherwise; a model with none
    decides with 0.0, its own lean."""
    import edge_runtime as er
    from edge_runtime.agent import model_call_bias
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "cache"))
    path, out = _trained(tiny_gguf_factory, tmp_path)
    before = adapter_file.read(out)
    manifest = adapter_file.set_call_bias(out, -1.25, "a test")
    after = adapter_file.read(out)
    assert after.call_bias == -1.25 and manifest["call_bias_chosen_on"] == "a test"
    assert after.sha256 != before.sha256 and all(
        np.array_equal(after.tensors[k], v) for k, v in before.tensors.items())
    m = er.Model.load(path, adapter=str(out))
    assert len(list((tmp_path / "cache").glob("merged-*.gguf"))) == 1
    assert model_call_bias(m) == -1.25
    assert er.Agent(m, tools=[LAMP]).call_bias == -1.25
    assert er.Agent(m, tools=[LAMP], call_bias=2.0).call_bias == 2.0
    assert er.Agent(er.Model.load(path), tools=[LAMP]).call_bias == 0.0
    with pytest.raises(AdapterError, match="finite"):
        adapter_file.set_call_bias(out, float("nan"), "a test")


def _without_training(monkeypatch) -> dict:
    """tune's steps replaced by fakes that record what each was given (returned dict)."""
    from edge_runtime import models
    from edge_runtime.tune import user
    seen = {}

    def fake_train(base, examples, out, settings, **kw):
        seen.update(train=examples, minutes=kw["minutes"], recompute=kw["recompute"])
        return {}

    def fake_choose(model_path, tools, examples, threads=None, log=None):
        seen["bias"] = examples
        return -0.5
    monkeypatch.setattr(user, "train", fake_train)
    monkeypatch.setattr(user, "score", lambda p, t, held, th=None: seen.setdefault("held", held)
                        and {})
    monkeypatch.setattr(user, "choose_call_bias", fake_choose)
    monkeypatch.setattr(user.adapter_file, "set_call_bias",
                        lambda path, bias, how: seen.update(recorded=(path, bias)) or {})
    monkeypatch.setattr(models, "merged", lambda *a, **k: "unused")
    monkeypatch.setattr(models, "default", lambda: "unused")
    return seen


@pytest.mark.parametrize("free_gib, low_memory, recompute", [
    (3.5, None, True), (20, None, False), (20, True, True), (3.5, False, False)])
def test_tune_recomputes_layers_when_memory_is_short(monkeypatch, tmp_path, free_gib,
                                                     low_memory, recompute):
    """Below RECOMPUTE_BELOW free bytes (a 4 GB board) tune trains in the low-memory pass,
    unless told otherwise; --low-memory asks for it anywhere."""
    import collections

    from edge_runtime.tune import user
    seen = _without_training(monkeypatch)
    vm = collections.namedtuple("vm", "available")
    monkeypatch.setattr(user.psutil, "virtual_memory", lambda: vm(int(free_gib * 2**30)))
    monkeypatch.setattr(user, "_release_freed_tensors", lambda: seen.update(released=True))
    user.tune([LAMP, FAN], tmp_path / "a.adapter", n_generated=50, log=lambda *a: None,
              low_memory=low_memory)
    assert seen["recompute"] is recompute and seen.get("released", False) is recompute


def test_tune_chooses_the_call_bias_on_examples_it_neither_trains_on_nor_reports(monkeypatch,
                                                                                 tmp_path):
    """Training, the bias and the before/after report each see their own examples; the bias
    chosen is recorded in the adapter the report names; training leaves time for the rest."""
    from edge_runtime.tune import user
    seen = _without_training(monkeypatch)
    report = user.tune([LAMP, FAN], tmp_path / "lamp.adapter", n_generated=300, log=lambda *a: None)
    # by example drawn, not by text: two tools give few distinct requests, and the same one
    # may be drawn twice
    drawn = {k: {id(e) for e in seen[k]} for k in ("train", "bias", "held")}
    assert len(drawn["bias"]) >= 30 and len(drawn["held"]) >= 30
    assert not drawn["bias"] & drawn["train"] and not drawn["held"] & drawn["train"]
    assert not drawn["bias"] & drawn["held"]
    assert report.call_bias == -0.5 and seen["recorded"] == (tmp_path / "lamp.adapter", -0.5)
    assert 1 <= seen["minutes"] <= 20 - 2 * user.MERGE_SECONDS / 60


# ---- walls -----------------------------------------------------------------------------------

def test_the_runtime_never_imports_torch_or_the_trainer():
    code = ("import sys, edge_runtime, edge_runtime.agent, edge_runtime.models, "
            "edge_runtime.adapter, edge_runtime.convert, edge_runtime.cli\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('edge_runtime.tune')]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_shipped_adapter_is_small_and_says_how_it_was_made():
    from edge_runtime import models
    a = adapter_file.read(models.DEFAULT_ADAPTER)
    assert models.DEFAULT_ADAPTER.stat().st_size <= 10 * 2**20
    t = a.manifest["training"]
    for key in ("generator_version", "data_seed", "settings", "examples", "tokens", "seconds",
                "example_fingerprint", "command"):
        assert key in t, key
    assert a.manifest["base"]["n_layer"] == 18 and a.manifest["base"]["n_embd"] == 640
    assert a.call_format == "functiongemma"
    assert a.call_bias is not None and "dev split" in a.manifest["call_bias_chosen_on"]


@pytest.mark.model
def test_the_shipped_adapter_s_data_comes_from_the_committed_generator():
    """The last of tools/train_adapter.py's SHIPPED stages is the shipped adapter's own
    manifest, and the committed generator, given its version and seed, writes the very examples
    it was trained on (the fingerprint of their token ids)."""
    import hashlib
    import json
    import sys
    from pathlib import Path

    from edge_runtime import models
    from edge_runtime.gguf import open_gguf
    from edge_runtime.tokenizer import Tokenizer
    from edge_runtime.tune import data
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from train_adapter import SHIPPED
    t = adapter_file.read(models.DEFAULT_ADAPTER).manifest["training"]
    last = SHIPPED[-1]
    assert t["generator_version"] == last["generator_version"] and t["data_seed"] == last["seed"]
    assert all(t["settings"][k] == v for k, v in last.items()
               if k not in ("generator_version", "examples")), (t["settings"], last)
    tok = Tokenizer.from_gguf(open_gguf(models.source()))
    found = data.generate(last["examples"], last["seed"], "train", last["generator_version"])
    ids = [i for i in (train.encode(tok, e)[0] for e in found) if len(i) <= last["max_len"]]
    assert len(ids) == t["examples"]
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == t["example_fingerprint"]


# ---- tune: a user's own tools -----------------------------------------------------------------

def test_the_users_examples_file_is_checked_line_by_line(tmp_path):
    from edge_runtime.tune.user import ExamplesError, read_examples
    f = tmp_path / "mine.jsonl"
    f.write_text('{"request": "lamp on", "calls": [{"name": "lamp", "arguments": {"on": true}}]}\n'
                 '{"request": "how are you", "calls": []}\n')
    got = read_examples(f, [LAMP, FAN])
    assert [len(e["messages"]) for e in got] == [2, 2] and got[1]["messages"][1]["content"]
    for bad, why in (('{"request": "fan", "calls": [{"name": "fan", "arguments": '
                      '{"speed": "max"}}]}', "line 3: fan"),
                     ('{"request": "x", "calls": [{"name": "oven"}]}', "line 3: call of an "
                      "undeclared tool 'oven'"),
                     ('not json', "line 3"), ('{"calls": []}', 'line 3: .*"request"')):
        f.write_text('{"request": "lamp on", "calls": []}\n\n' + bad + "\n")
        with pytest.raises(ExamplesError, match=why):
            read_examples(f, [LAMP, FAN])


@pytest.mark.model
def test_tune_trains_on_every_example_of_an_everyday_toolset(monkeypatch, tmp_path):
    """Each example declares all of the user's tools (11 here: ~1,000 tokens); none may be
    dropped for its length (they once all were, at the trainer's 768-token default)."""
    from pathlib import Path

    from edge_runtime import models
    from edge_runtime.cli import _load_tools
    from edge_runtime.tune import user
    seen = {}

    def fake_train(base, examples, out, settings, **kw):
        seen.update(examples=examples, settings=settings)
        return {}
    monkeypatch.setattr(user, "train", fake_train)
    monkeypatch.setattr(user, "score", lambda *a, **k: {})
    monkeypatch.setattr(user, "choose_call_bias", lambda *a, **k: 0.0)
    monkeypatch.setattr(user.adapter_file, "set_call_bias", lambda *a, **k: {})
    monkeypatch.setattr(models, "merged", lambda *a, **k: "unused")
    tools = _load_tools(str(Path(__file__).resolve().parents[1] / "tools/everyday/home_tools.py"))
    user.tune(tools, tmp_path / "home.adapter", n_generated=100, log=lambda *a: None)
    tok = train.tokenizer_of(models.source())
    mine = [e for e in seen["examples"] if str(e.get("group")).startswith("user:")]
    lengths = [len(train.encode(tok, e)[0]) for e in mine]
    assert len(mine) >= 40 and min(lengths) > 768
    assert max(lengths) <= seen["settings"].max_len


def test_train_says_when_it_skips_long_examples(tiny_gguf_factory, tmp_path):
    path = tiny_gguf_factory(**TINY)
    said = []
    short = train.Settings(**dict(vars(QUICK), max_len=40, steps=1))
    examples = _tool_examples()
    examples[0] = _example("lamp on " * 20, _call("lamp", {"on": True}))
    with pytest.raises(ValueError, match="no training example fits"):
        train.train(path, examples, tmp_path / "none.adapter", short, threads=1, log=said.append)
    said.clear()
    medium = train.Settings(**dict(vars(QUICK), steps=1,
                                   max_len=len(train.encode(train.tokenizer_of(path),
                                                            examples[1])[0]) + 8))
    train.train(path, examples, tmp_path / "a.adapter", medium, threads=1, log=said.append)
    assert any("1 of 5 examples are longer than max_len" in s for s in said), said


def test_tune_without_torch_names_the_extra(tmp_path):
    tools = tmp_path / "t.py"
    tools.write_text("def lamp(on: bool) -> dict:\n    '''Switch the lamp.'''\n    return {}\n")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edge_runtime.cli import main\n"
            f"sys.exit(main(['tune', '--tools', {str(tools)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2 and 'pip install "edge_runtime[tune]"' in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("flag, low_memory", [([], None), (["--low-memory"], True)])
def test_tune_s_low_memory_flag_reaches_tune(tmp_path, monkeypatch, flag, low_memory):
    from edge_runtime.cli import main
    from edge_runtime.tune import user
    tools = tmp_path / "t.py"
    tools.write_text('def lamp(on: bool) -> dict:\n    "Switch the lamp."\n    return {}\n')
    seen = {}

    def fake_tune(tools, out, **kw):
        seen.update(kw)
        raise ValueError("stop here")
    monkeypatch.setattr(user, "tune", fake_tune)
    assert main(["tune", "--tools", str(tools)] + flag) == 2
    assert seen["low_memory"] is low_memory


def test_tune_refuses_a_module_without_tools(tmp_path):
    from edge_runtime.cli import main
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    assert main(["tune", "--tools", str(empty)]) == 2


def test_merging_refuses_when_the_disk_is_too_small(tiny_gguf_factory, tmp_path, monkeypatch):
    import collections
    from edge_runtime import models
    from edge_runtime.errors import ConversionError
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "cache"))
    path, out = _trained(tiny_gguf_factory, tmp_path)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(models.shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1000))
    with pytest.raises(ConversionError, match="not enough disk"):
        models.merged(path, out)

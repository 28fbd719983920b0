"""The real default model against llama.cpp (llama-cpp-python) on the same Q8_0 file.

Exact logit equality is not on offer: llama.cpp itself moves this model's logits by ~0.5
between its two attention paths (flash attention on/off), and the model amplifies any
rounding. So for each prompt the test measures that self-disagreement and accepts a greedy
divergence only where llama.cpp's own top-two gap is below it — the point where llama.cpp
cannot decide against itself either. The report names every divergence.
"""
import numpy as np
import pytest

import edge_runtime as er

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.model, pytest.mark.llama]

N_TOKENS = 64
LONG = ("In the beginning of the project the engineers wrote down what they wanted: a small "
        "runtime that could answer requests on a board with very little memory. ") * 24

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "<start_of_turn>user\nList three colours of the rainbow.<end_of_turn>\n<start_of_turn>model\n",
    "Once upon a time, in a village by the sea,",
    '{"name": "kitchen light", "state": ',
    LONG + "\nSummary of the text above:",
]


@pytest.fixture(scope="module")
def runtimes(default_model):
    ours = er.Model.load(default_model, max_inference_len=2048, threads=2)
    kw = dict(n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False, swa_full=False)
    return ours, llama_cpp.Llama(default_model, flash_attn=False, **kw), \
        llama_cpp.Llama(default_model, flash_attn=True, **kw)


def _last_logits(llm):
    """Last-position logits (llm.scores is only filled with logits_all, which costs GBs)."""
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32)


def _llama_greedy(llm, ids, n):
    """Greedy continuation with the logits of every step."""
    llm.reset()
    llm.eval(ids)
    out, logits = [], []
    for _ in range(n):
        row = _last_logits(llm)
        logits.append(row)
        out.append(int(row.argmax()))
        llm.eval([out[-1]])
    return out, logits


def _gap(row):
    top2 = np.sort(row)[-2:]
    return float(top2[1] - top2[0])


@pytest.mark.parametrize("prompt", PROMPTS, ids=[f"p{i}" for i in range(len(PROMPTS))])
def test_greedy_continuation_matches_llama(runtimes, prompt, record_property):
    ours, llm, llm_fa = runtimes
    ids = ours.tokenizer.encode(prompt, add_bos=True, special=True)
    assert ids == llm.tokenize(prompt.encode(), add_bos=True, special=True)
    if prompt is LONG:
        assert len(ids) > 600

    ref, ref_logits = _llama_greedy(llm, ids, N_TOKENS)
    _, fa_logits = _llama_greedy(llm_fa, ids, 1)
    self_noise = float(np.abs(ref_logits[0] - fa_logits[0]).max())

    ours.reset()
    logits = ours.eval(ids)
    delta = float(np.abs(logits - ref_logits[0]).max())
    record_property("first_logits_max_abs_delta", delta)
    record_property("llama_fa_on_off_max_abs_delta", self_noise)
    tolerance = max(self_noise, 1e-2)
    if logits.argmax() != ref_logits[0].argmax():   # allowed only at a near-tie llama.cpp flips too
        gap0 = _gap(ref_logits[0])
        print(f"\n{prompt[:30]!r}: last-position top-1 differs; llama.cpp top-2 gap {gap0:.4f}")
        assert gap0 < tolerance, f"top-1 differs where llama.cpp's top-2 gap is {gap0:.4f}"

    got = list(ours.generate(ids, max_tokens=N_TOKENS, stop=[]))
    ours_stop_ids = {ours.tokenizer.eos_id, ours.tokenizer.find("<end_of_turn>")}
    ref_cut = next((i for i, t in enumerate(ref) if t in ours_stop_ids), len(ref))
    ref = ref[:ref_cut]
    first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)
    if first is None:
        assert len(got) == len(ref), f"lengths differ: ours {len(got)}, llama {len(ref)}"
        record_property("divergence", "none")
        return
    gap = _gap(ref_logits[first])
    record_property("divergence", f"token {first}, llama top-2 gap {gap:.4f}")
    print(f"\n{prompt[:30]!r}: diverges at token {first}; llama.cpp top-2 gap {gap:.4f}, "
          f"its own fa on/off max |Δ| {self_noise:.3f}, ours vs llama max |Δ| {delta:.3f}")
    assert gap < tolerance, (
        f"diverged at token {first} where llama.cpp's top-2 gap is {gap:.4f} "
        f"(its own attention paths differ by {self_noise:.3f})")

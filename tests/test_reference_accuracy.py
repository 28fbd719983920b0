"""The real base model's logits against an exact float64 forward pass (tests/reference_f64.py).

The untaught base (models.base()), on which issue 14's target was set: on the taught default
model one prompt (story~128) measured 0.134 for us against llama.cpp's 0.110 (2026-12-06,
docs/PARITY.md), an open finding, not a target met.

Both engines approximate the same computation; the question is whose logits are closer to it.
Per prompt of tools/ref_accuracy.PROMPTS (short ones, ~128 tokens, past the 512-position window):
our top-1 must be the reference's wherever the reference's top-two gap exceeds 0.1, and our RMS
error over the vocabulary must be no larger than llama.cpp's (flash attention off), issue 14's
target. Almost all of either engine's error is the rounding of matmul inputs; ours rounds them in
groups of eight with f32 scales where llama.cpp uses Q8_0's 32 with fp16 (docs/PARITY.md).
The float64 logits are computed here (about a minute, ~3.5 GB) and cached in the session's tmp
dir, never in the repo.
"""
import os
import sys

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")
pytestmark = [pytest.mark.model, pytest.mark.llama]

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_accuracy  # noqa: E402

GAP = 0.1


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from edge_runtime import models
    cache = tmp_path_factory.getbasetemp() / "ref_accuracy.npy"
    if cache.exists():
        return np.load(cache, allow_pickle=True).item()
    try:
        path = models.base()
    except models.DefaultModelUnavailable as e:
        pytest.skip(f"base model unavailable: {e}")
    out = ref_accuracy.measure(path)
    print("\n" + ref_accuracy.table(out))
    np.save(cache, out, allow_pickle=True)
    return out


@pytest.mark.parametrize("name", list(ref_accuracy.PROMPTS))
def test_top1_matches_float64_where_it_is_decided(results, name):
    ours = results[name]["edge_runtime"]
    if ours["gap"] > GAP:
        assert ours["top1"], f"{name}: top-1 differs where the reference's top-2 gap is {ours['gap']:.3f}"


@pytest.mark.parametrize("name", list(ref_accuracy.PROMPTS))
def test_rms_error_no_larger_than_llama_cpp(results, name):
    row = results[name]
    ours, off = row["edge_runtime"]["rms"], row["llama.cpp fa off"]["rms"]
    assert ours <= off, f"{name}: RMS error vs float64 {ours:.3f}; llama.cpp's (fa off) {off:.3f}"

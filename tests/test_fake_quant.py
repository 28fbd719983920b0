"""fake_quant (tests/reference_f64.py), the activation rounding the quantizer study of
tools/ref_accuracy.py puts back into the float64 pass: its lane-group setting must give exactly
what the engine's own quantizer gives (the scalar reference of native/q8_0.c), and its other
settings must do what they say."""
import os
import sys

import numpy as np

from edge_runtime import _native

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_f64 import fake_quant  # noqa: E402

ACT = np.dtype([("d", "<f4", 4), ("qs", "i1", 32)])   # an activation block (native/q8_0.h)


def activations(rng, rows=8, k=640):
    """Gaussian rows with a few outlier dimensions, exact ties and an all-zero block."""
    x = rng.standard_normal((rows, k))
    x[:, [7, 300, 301]] *= 40.0
    x[1, :32] = np.r_[127.0, np.arange(-15, 16) + 0.5]   # d = 1: ties round away from zero
    x[2, 32:64] = 0.0
    return x.astype(np.float32).astype(np.float64)


def test_lane_group_setting_is_the_engine_quantizer():
    x = activations(np.random.default_rng(1))
    blocks = np.empty((x.shape[0], x.shape[1] // 32), dtype=ACT)
    x32 = np.ascontiguousarray(x, np.float32)
    _native.testing.quantize_act((x32.ctypes.data, x32.nbytes), (blocks.ctypes.data, blocks.nbytes),
                                 x32.size, "scalar")
    engine = blocks["d"].astype(np.float64)[..., np.arange(32) % 16 // 4] * blocks["qs"]
    np.testing.assert_array_equal(fake_quant(x, block=8, lanes=True, fp16_scale=False),
                                  engine.reshape(x.shape))


def test_smaller_blocks_scale_each_block_by_its_own_amax():
    x = activations(np.random.default_rng(2))
    for block in (16, 8):
        got = fake_quant(x, block=block, fp16_scale=False).reshape(-1, block)
        b = x.reshape(-1, block)
        d = (np.abs(b).max(axis=1, keepdims=True) / 127).astype(np.float32).astype(np.float64)
        q = np.divide(got, d, out=np.zeros_like(got), where=d > 0)
        np.testing.assert_allclose(q, np.round(q), atol=1e-6)         # integers...
        assert np.abs(q).max() <= 127                                   # ...within int8
        assert np.all(np.abs(got - b) <= d / 2 * (1 + 1e-6))           # nearest grid point


def test_residual_pass_and_int16_shrink_the_error_by_the_second_grid():
    x = activations(np.random.default_rng(3))
    one = np.abs(fake_quant(x) - x).max()
    two = np.abs(fake_quant(x, passes=2) - x).max()
    wide = np.abs(fake_quant(x, levels=32767, fp16_scale=False) - x).max()
    assert two < one / 100 and wide < one / 100


def test_least_squares_scale_never_loses_to_amax():
    x = activations(np.random.default_rng(4))
    err = {s: ((fake_quant(x, scale=s, fp16_scale=False) - x) ** 2).reshape(-1, 32).sum(axis=1)
           for s in ("amax", "mse")}
    assert np.all(err["mse"] <= err["amax"] * (1 + 1e-12))

"""The Q8_0 kernels (native/q8_0*.c) against independent numpy references.

Every path the CPU offers is checked against numpy's evaluation of the defining formula
    Y[t, r] = sum_b fp16(W[r,b].d) * sum_j X[t,b].d[group(j)] * W[r,b].qs[j] * X[t,b].qs[j]
(activation blocks: native/q8_0.h) and against the scalar kernel; quantization is compared
byte for byte with a numpy quantizer written from the definition, and half-float conversion
with numpy's float16.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from edge_runtime import _native

testing = _native.testing   # the kernels one at a time (native/testing.c)
ALL_KERNELS = ("scalar", "avx2", "avxvnni", "avx512vnni", "neon", "neon_dotprod")
AVAILABLE = _native.kernels()
BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", 32)])   # numpy's own view of a Q8_0 block
ACT = np.dtype([("d", "<f4", 4), ("qs", "i1", 32)])  # an activation block
assert BLOCK.itemsize == 34 and ACT.itemsize == 48
GROUP = np.arange(32) % 16 // 4                      # the scale group of each value of a block


def buf(a):
    """An array as the C door takes a buffer: (address, length in bytes)."""
    return a.ctypes.data, a.nbytes


def quantize(x, kernel="scalar"):
    """Rows of float32 -> activation blocks via a kernel's quantizer, shape (rows, k // 32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], x.shape[1] // 32), dtype=ACT)
    testing.quantize_act(buf(x), buf(out), x.size, kernel)
    return out


def act_values(x):
    """Each quant of activation blocks x times its group's scale, in float64: (rows, blocks, 32)."""
    return x["d"].astype(np.float64)[..., GROUP] * x["qs"]


def random_weights(rng, rows, k):
    """Any int8 (including -128) with fp16 scales of mixed magnitude and sign."""
    w = np.empty((rows, k // 32), dtype=BLOCK)
    w["qs"] = rng.integers(-128, 128, size=w["qs"].shape)
    w["d"] = (rng.standard_normal(w.shape) * 10.0 ** rng.integers(-4, 1, size=w.shape)).astype(np.float16)
    return w


def gemm(name, w, x):
    rows, nb = w.shape
    nt = x.shape[0]
    y = np.full((nt, rows), np.nan, dtype=np.float32)
    testing.q8_0_gemm(name, buf(w), buf(x), buf(y), nb * 32, rows, nt)
    return y


def reference(w, x):
    """(Y in float64, bound on float reassociation error) straight from the formula."""
    wd = w["d"].astype(np.float64)[..., None] * w["qs"]
    xd = act_values(x)
    return (np.einsum("rbj,tbj->tr", wd, xd),
            1e-5 * np.einsum("rbj,tbj->tr", np.abs(wd), np.abs(xd)) + 1e-30)


def kernel_param(name):
    why = f"this CPU does not offer the {name} kernel"
    return pytest.param(name, marks=pytest.mark.skipif(name not in AVAILABLE, reason=why))


KERNELS = [kernel_param(n) for n in ALL_KERNELS]


def test_kernel_list():
    assert AVAILABLE[0] == "scalar"
    assert set(AVAILABLE) <= set(ALL_KERNELS) and len(set(AVAILABLE)) == len(AVAILABLE)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("k", [32, 96, 640, 2048])
def test_gemm_matches_formula_and_scalar(name, k):
    rng = np.random.default_rng(k)
    for nt in (1, 2, 3, 5, 64):
        for rows in (1, 3, 8, int(rng.integers(9, 80)) | 1):     # odd row counts included
            w = random_weights(rng, rows, k)
            acts = rng.standard_normal((nt, k)).astype(np.float32) * rng.uniform(0.01, 100, (nt, 1))
            acts[0, : k // 2] = 0.0                        # whole zero blocks: d == 0
            x = quantize(acts.astype(np.float32))
            want, tol = reference(w, x)
            got = gemm(name, w, x)
            err = np.abs(got - want)
            assert np.all(err <= tol), (name, rows, k, nt, float(np.max(err / tol)))
            if name != "scalar":
                assert np.all(np.abs(got - gemm("scalar", w, x)) <= 2 * tol)


def scalar_in_float32(w, x):
    """The scalar kernel's arithmetic, independently: exact integer group dots, then for each
    block and group in order sum += (dw * dx[g]) * dot in float32 (no fused multiply-add)."""
    wq, xq = w["qs"].astype(np.int64), x["qs"].astype(np.int64)
    y = np.zeros((x.shape[0], w.shape[0]), dtype=np.float32)
    for b in range(w.shape[1]):
        for g in range(4):
            sel = GROUP == g
            dot = np.einsum("rj,tj->tr", wq[:, b, sel], xq[:, b, sel]).astype(np.float32)
            scale = x["d"][:, b, g][:, None] * w["d"][:, b].astype(np.float32)[None, :]
            y = y + scale * dot                            # float32 products, rounded each
    return y


@pytest.mark.parametrize("k", [32, 640])
def test_scalar_is_the_formula_in_float32_bit_for_bit(k):
    rng = np.random.default_rng(k + 1)
    w = random_weights(rng, 13, k)
    x = quantize(rng.standard_normal((3, k)).astype(np.float32))
    np.testing.assert_array_equal(gemm("scalar", w, x), scalar_in_float32(w, x))


def gemm_rows(name, w, x, r0, r1, ldy):
    """Rows [r0, r1) into Y of row stride ldy; the rest of Y must stay untouched (NaN)."""
    rows, nb = w.shape
    y = np.full((x.shape[0], ldy), np.nan, dtype=np.float32)
    testing.q8_0_gemm(name, buf(w), buf(x), buf(y), nb * 32, rows,
                      x.shape[0], r0, r1, ldy)
    assert np.isnan(y[:, :r0]).all() and np.isnan(y[:, r1:]).all()
    return y[:, r0:r1]


@pytest.mark.parametrize("name", KERNELS)
def test_row_grouping_never_changes_a_result(name):
    """Every fast path advances several rows (and tokens) side by side; each result must be bit
    for bit the one computed for that row alone, for any range, stride and token count,
    including counts that are not multiples of the unroll."""
    rng = np.random.default_rng(7)
    for k in (32, 640, 2048):
        rows = 61
        w = random_weights(rng, rows, k)
        for nt in (1, 2, 3, 4, 5, 9):
            x = quantize(rng.standard_normal((nt, k)).astype(np.float32))
            alone = np.concatenate([gemm_rows(name, w, x, r, r + 1, rows) for r in range(rows)], 1)
            for r0, r1 in ((0, rows), (1, rows - 1), (3, 4), (5, 10), (2, 39), (0, 17), (7, 7)):
                got = gemm_rows(name, w, x, r0, r1, rows + 5)
                np.testing.assert_array_equal(got, alone[:, r0:r1], err_msg=f"{name} {k} {nt} {r0}:{r1}")


@pytest.mark.parametrize("name", KERNELS)
def test_token_grouping_never_changes_a_result(name):
    """Prefill runs several tokens per pass (and passes of many tokens); each token's results
    must be bit for bit the one-token (decode) results, for token counts around the tile and
    pass sizes, row ranges that are not multiples of the row tile, and a row too long for the
    prefill tile's scale buffers (k = 33792: the general tile runs instead)."""
    rng = np.random.default_rng(9)
    for k, rows, counts in ((32, 7, (2, 3, 4, 5, 67)), (640, 13, (2, 6, 64, 65, 150)),
                            (2048, 5, (3, 64, 131)), (33792, 4, (5,))):
        w = random_weights(rng, rows, k)
        for nt in counts:
            x = quantize(rng.standard_normal((nt, k)).astype(np.float32))
            one = np.concatenate([gemm(name, w, x[t:t + 1]) for t in range(nt)])
            np.testing.assert_array_equal(gemm(name, w, x), one, err_msg=f"{name} {k} {nt}")
            for r0, r1 in ((1, rows), (2, rows - 1)):
                np.testing.assert_array_equal(gemm_rows(name, w, x, r0, r1, rows + 3), one[:, r0:r1])


X86 = [n for n in ("avx2", "avxvnni", "avx512vnni") if n in AVAILABLE]


@pytest.mark.skipif(len(X86) < 2, reason="fewer than two x86 kernels on this CPU")
def test_x86_kernels_agree_bit_for_bit():
    """The x86 paths differ in how they form each block's exact int32 lane sums (maddubs,
    256-bit VNNI, 512-bit VNNI with two tokens per register) but then apply the same float
    operations in the same order, so a model's logits do not depend on which one the CPU has."""
    rng = np.random.default_rng(11)
    for k, rows in ((32, 9), (640, 21), (2048, 6)):
        w = random_weights(rng, rows, k)
        for nt in (1, 3, 5, 8, 33, 64):
            x = quantize(rng.standard_normal((nt, k)).astype(np.float32))
            want = gemm(X86[0], w, x)
            for name in X86[1:]:
                np.testing.assert_array_equal(gemm(name, w, x), want, err_msg=f"{name} {k} {nt}")


def gemv_rows(name, w, x, ids):
    ids = np.ascontiguousarray(ids, dtype=np.int32)
    y = np.full(ids.size + 1, np.nan, dtype=np.float32)
    testing.q8_0_gemv_rows(name, buf(w), buf(ids), ids.size, buf(x),
                           buf(y), w.shape[1] * 32)
    assert np.isnan(y[-1])
    return y[:-1]


@pytest.mark.parametrize("name", KERNELS)
def test_sparse_rows_match_dense_bit_for_bit(name):
    """Constrained decoding scores listed rows (unsorted, repeated, any count); each must equal
    the dense kernel's value for that row exactly, so masking never changes a logit."""
    rng = np.random.default_rng(8)
    for k in (32, 640):
        w = random_weights(rng, 300, k)
        x = quantize(rng.standard_normal((1, k)).astype(np.float32))
        dense = gemm(name, w, x)[0]
        for n in (0, 1, 2, 3, 4, 5, 7, 8, 9, 64, 67):
            ids = rng.integers(0, 300, size=n)
            if n > 2:
                ids[1] = ids[0]                           # a repeated row
            np.testing.assert_array_equal(gemv_rows(name, w, x, ids), dense[ids])


def test_gemm_rejects_bad_shapes():
    w = np.zeros((2, 1), dtype=BLOCK)
    y = np.zeros(2, dtype=np.float32)
    with pytest.raises(ValueError):
        testing.q8_0_gemm("scalar", buf(w), buf(w), buf(y), 33, 2, 1)
    with pytest.raises(ValueError):
        testing.q8_0_gemm("no-such-kernel", buf(w), buf(w), buf(y), 32, 2, 1)


def quantize_numpy(x):
    """The activation quantizer from its definition (native/q8_0.h), in numpy float32:
    per group d = amax / 127, q = round(x * (1 / d)) half away from zero (0 where d = 0)."""
    v = x.astype(np.float32).reshape(x.shape[0], -1, 32)
    out = np.empty(v.shape[:2], dtype=ACT)
    for g in range(4):
        vg = v[..., GROUP == g]
        d = np.abs(vg).max(-1) / np.float32(127)
        inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
        p = vg * inv[..., None]
        out["d"][..., g] = d
        p = p.astype(np.float64)                             # so that + 0.5 is exact
        out["qs"][..., GROUP == g] = np.sign(p) * np.floor(np.abs(p) + 0.5)
    return out


@pytest.mark.parametrize("name", [kernel_param(k) for k in ALL_KERNELS])
@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-6, 1e-3, 1.0, 7.5, 1e3, 6e4])
def test_quantize_matches_its_definition_byte_for_byte(scale, name):
    rng = np.random.default_rng(int(scale * 1000) + 1)
    x = (rng.standard_normal((16, 640)) * scale).astype(np.float32)
    x[1] = np.round(x[1] * 2) / 2                           # exact halves: ties round away
    x[2, :32] = np.linspace(-127, 127, 32) * scale          # amax on a grid point
    x[3, :32] = np.r_[127.0, np.arange(-15, 16) + 0.5]       # ties: d = 1 in group 0 ...
    x[3, 4:8] = x[3, 20:24] = 127.0                         # ... and in group 1
    x[3, 32:64] = -x[3, :32]
    x[4, 8:12] = 0.0                                         # one group all zero...
    x[4, 24:28] = 0.0
    x[4, 12] = 3e4                                           # ...and one far larger than the rest
    want = quantize_numpy(x)
    got = quantize(x, name)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("name", [kernel_param(k) for k in ALL_KERNELS])
def test_quantize_keeps_non_finite_blocks_visible(name):
    """A block holding NaN or Inf quantizes to d = NaN, so every dot with it is NaN (on every
    path; rounding NaN to int8 is undefined and fmaxf would drop it)."""
    x = np.random.default_rng(5).standard_normal((1, 128)).astype(np.float32)
    x[0, 3], x[0, 70] = np.nan, np.inf
    q = quantize(x, name)
    assert np.isnan(q["d"][0, [0, 2]]).all() and (q["qs"][0, [0, 2]] == 0).all()
    assert np.isfinite(q["d"][0, [1, 3]]).all()
    w = random_weights(np.random.default_rng(6), 3, 128)
    y = gemm(name, w, q)
    assert np.isnan(y).all()


@pytest.mark.parametrize("name", KERNELS)
def test_a_non_finite_token_stays_its_own(name):
    """Prefill tiles run several tokens side by side (the AVX-512 one two per register): a token
    whose activations hold NaN must turn only its own results to NaN, the others staying their
    one-token values bit for bit."""
    rng = np.random.default_rng(12)
    w = random_weights(rng, 9, 640)
    acts = rng.standard_normal((7, 640)).astype(np.float32)
    acts[3, 100] = np.nan                                  # token 3 shares a pair with token 2
    x = quantize(acts)
    got = gemm(name, w, x)
    assert np.isnan(got[3]).all()
    for t in (0, 1, 2, 4, 5, 6):
        np.testing.assert_array_equal(got[t], gemm(name, w, x[t:t + 1])[0], err_msg=str(t))


def test_quantize_rejects_bad_length():
    x = np.zeros(40, dtype=np.float32)
    with pytest.raises(ValueError):
        testing.quantize_act(buf(x), buf(x), 40)


def test_fp16_to_fp32_all_values():
    h = np.arange(65536, dtype=np.uint16)
    got = np.empty(65536, dtype=np.float32)
    testing.fp16_to_fp32(buf(h), buf(got), h.size)
    want = h.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def fp32_to_fp16(f):
    f = np.ascontiguousarray(f, dtype=np.float32)
    out = np.empty(f.shape, dtype=np.uint16)
    testing.fp32_to_fp16(buf(f), buf(out), f.size)
    return out


def test_fp32_to_fp16_rounds_like_numpy():
    rng = np.random.default_rng(5)
    h = np.arange(65536, dtype=np.uint16)
    exact = h.view(np.float16).astype(np.float32)
    with np.errstate(all="ignore"):                     # NaN and inf inputs are intended
        nexts = np.nextafter(exact, np.float32(np.inf)), np.nextafter(exact, np.float32(-np.inf))
        mids = ((exact[:-1].astype(np.float64) + exact[1:]) / 2).astype(np.float32)  # ties
        f = np.concatenate([
            exact, *nexts, mids,
            rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32),
            np.array([65504, 65519.99, 65520, 1e6, -1e6, 2.0**-25, 2.0**-26, 3 * 2.0**-26], np.float32),
        ])
        want = f.astype(np.float16).view(np.uint16)
    got = fp32_to_fp16(f)
    nan = np.isnan(f)
    assert np.all(np.isnan(got[nan].view(np.float16)))
    np.testing.assert_array_equal(got[~nan], want[~nan])


def test_bf16_to_fp32():
    h = np.arange(0, 65536, 7, dtype=np.uint16)
    got = np.empty(h.size, dtype=np.float32)
    testing.bf16_to_fp32(buf(h), buf(got), h.size)
    np.testing.assert_array_equal(got.view(np.uint32), h.astype(np.uint32) << 16)


def selected_in_subprocess(value):
    env = dict(os.environ, ER_KERNEL=value)
    code = "from edge_runtime import _native; print(_native.selected_kernel())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_default_is_best_available():
    r = selected_in_subprocess("")
    assert r.returncode == 0 and r.stdout.strip() == AVAILABLE[-1]


@pytest.mark.parametrize("name", KERNELS)
def test_er_kernel_override(name):
    r = selected_in_subprocess(name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


@pytest.mark.parametrize("name", ["bogus"] + [n for n in ALL_KERNELS if n not in AVAILABLE])
def test_er_kernel_unknown_or_unsupported_rejected(name):
    r = selected_in_subprocess(name)
    assert r.returncode != 0 and "ValueError" in r.stderr


def test_kernel_entry_points_check_their_buffers():
    """A buffer shorter than the shapes say, a row outside W, or a bare address is refused
    before any byte is touched."""
    w = np.zeros((2, 1), dtype=BLOCK)
    x = quantize(np.ones((1, 32), np.float32))
    y, y2 = np.zeros(1, dtype=np.float32), np.zeros(2, dtype=np.float32)
    rows, h = np.array([1, 2], np.int32), np.zeros(2, np.uint16)   # named: buffers must outlive
    with pytest.raises(ValueError, match="Y: 4 bytes given, at least 8 needed"):
        testing.q8_0_gemm("scalar", buf(w), buf(x), buf(y), 32, 2, 1)
    with pytest.raises(ValueError, match="W: 34 bytes given, at least 68 needed"):
        testing.q8_0_gemm("scalar", buf(w[:1]), buf(x), buf(y2), 32, 2, 1)
    with pytest.raises(ValueError, match=r"rows\[1\] is outside W's 2 rows"):
        testing.q8_0_gemv_rows("scalar", buf(w), buf(rows), 2, buf(x), buf(y2), 32)
    with pytest.raises(TypeError, match=r"\(address, length\) pair"):
        testing.q8_0_gemm("scalar", w.ctypes.data, buf(x), buf(y), 32, 1, 1)
    with pytest.raises(ValueError, match="dst: 4 bytes given, at least 8 needed"):
        testing.fp16_to_fp32(buf(h), buf(y), 2)

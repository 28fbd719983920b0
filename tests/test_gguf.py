"""The lean GGUF loader against crafted files (one test per validation rule), gguf's writer and
reader (independent references), and the real model (open time and memory)."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from edge_runtime.gguf import GGML_TYPES, MAX_STRING, GGUFError, open_gguf

gguf = pytest.importorskip("gguf")

F32, Q8_0 = 0, 8
VT_U32, VT_STRING, VT_ARRAY = 4, 8, 9


# ---- a byte-level GGUF builder that can write invalid files ----------------------------------

def s(text) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def u32(v):
    return struct.pack("<I", v)


def tinfo(name, shape, type_id, offset, n_dims=None) -> bytes:
    n = len(shape) if n_dims is None else n_dims
    return (s(name) + u32(n) + b"".join(struct.pack("<Q", d) for d in shape)
            + u32(type_id) + struct.pack("<Q", offset))


class Built:
    """The bytes of a crafted file plus where each part starts."""

    def __init__(self, *, kvs=None, tensors=None, data=None, magic=b"GGUF", version=3,
                 n_kv=None, n_tensors=None, align=32):
        kvs = [kv("general.architecture", VT_STRING, s("gemma3")), kv("x.u32", VT_U32, u32(7)),
               kv("x.tokens", VT_ARRAY, u32(VT_STRING) + struct.pack("<Q", 3)
                  + s("a") + s("bc") + s("\u00e9"))] if kvs is None else kvs
        tensors = [tinfo("a", [8], F32, 0), tinfo("b", [32, 2], Q8_0, 32)] if tensors is None else tensors
        data = np.random.default_rng(1).integers(0, 256, 32 + 68, np.uint8).tobytes() if data is None else data
        head = magic + u32(version) + struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors,
                                                  len(kvs) if n_kv is None else n_kv)
        self.kv_at, self.ti_at, pos = [], [], len(head)
        for part, starts in ((kvs, self.kv_at), (tensors, self.ti_at)):
            for p in part:
                starts.append(pos)
                pos += len(p)
        self.ti_end = pos
        self.data_at = -(-pos // align) * align
        self.bytes = (head + b"".join(kvs) + b"".join(tensors)).ljust(self.data_at, b"\0") + data


def write(tmp_path, raw: bytes, name="f.gguf"):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def fails(tmp_path, raw, *patterns):
    """Opening `raw` raises GGUFError whose message matches every pattern (field, offset)."""
    with pytest.raises(GGUFError) as e:
        open_gguf(write(tmp_path, raw))
    msg = str(e.value)
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in {msg!r}"
    return msg


def test_crafted_valid_file_parses_like_gguf_reader(tmp_path):
    b = Built()
    path = write(tmp_path, b.bytes)
    g = open_gguf(path)
    ref = gguf.GGUFReader(path)
    assert g.metadata["x.u32"] == 7 and list(g.metadata["x.tokens"]) == ["a", "bc", "\u00e9"]
    assert g.data_offset == b.data_at == ref.data_offset
    for t in ref.tensors:
        ours = g.tensors[t.name]
        assert ours.offset == t.data_offset and ours.type_id == int(t.tensor_type)
        assert list(ours.shape) == [int(d) for d in t.shape]


# ---- one test per validation rule ------------------------------------------------------------

def test_short_file(tmp_path):
    fails(tmp_path, b"GGUF\x03\0\0\0", r"^header", r"offset 0")


def test_wrong_magic(tmp_path):
    fails(tmp_path, Built(magic=b"GGML").bytes, r"^magic", r"offset 0", "GGML")


@pytest.mark.parametrize("version", [0, 1, 4, 0x03000000])
def test_bad_version(tmp_path, version):
    fails(tmp_path, Built(version=version).bytes, r"^version", rf"{version} at offset 4")


@pytest.mark.parametrize("field,kw", [("n_kv", dict(n_kv=1 << 40)), ("n_tensors", dict(n_tensors=1 << 60)),
                                      ("n_kv", dict(n_kv=2**64 - 1))])
def test_absurd_counts(tmp_path, field, kw):
    fails(tmp_path, Built(**kw).bytes, r"^counts", r"offset 8")


def _boundaries():
    b = Built()
    cuts = {"after magic": 4, "after version": 8, "after tensor_count": 16, "after header": 24}
    cuts.update({f"before kv {i}": at for i, at in enumerate(b.kv_at[1:], 1)})
    cuts.update({f"before tensor info {i}": at for i, at in enumerate(b.ti_at)})
    cuts.update({"mid kv 0 value": b.kv_at[1] - 3, "mid tensor info 1": b.ti_at[1] + 5,
                 "in padding": b.ti_end + 1, "at data start": b.data_at, "inside tensor b": b.data_at + 40,
                 "last byte of data": len(b.bytes) - 1})
    return cuts


@pytest.mark.parametrize("where", list(_boundaries()))
def test_truncated(tmp_path, where):
    cut = _boundaries()[where]
    msg = fails(tmp_path, Built().bytes[:cut], r"offset \d+")
    # the message starts with the field it was reading: a known field label, then a colon
    assert re.match(r"(header|counts|kv |tensor )", msg), msg


def test_truncated_tensor_data_names_tensor_and_offset(tmp_path):
    b = Built()
    fails(tmp_path, b.bytes[:-1], r"^tensor 'b'", rf"file offset {b.data_at + 32}", "past end")


def test_key_length_past_end(tmp_path):
    b = Built(kvs=[struct.pack("<Q", 1000) + b"abc"], tensors=[], data=b"")
    fails(tmp_path, b.bytes, r"^kv key at offset 24", r"needs 1000 bytes at offset 32")


def test_string_length_over_cap(tmp_path):
    raw = kv("k", VT_STRING, struct.pack("<Q", MAX_STRING + 1))
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes, r"kv 'k' value",
          rf"offset {24 + 8 + 1 + 4}", "exceeds")


def test_string_value_past_end(tmp_path):
    raw = kv("k", VT_STRING, struct.pack("<Q", 50) + b"xy")
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes, r"^kv 'k' value",
          rf"at offset {24 + 8 + 1 + 4 + 8}")


def test_invalid_utf8_key(tmp_path):
    fails(tmp_path, Built(kvs=[kv(b"\xff\xfe", VT_U32, u32(1))], tensors=[], data=b"").bytes,
          r"UTF-8", r"offset 24")


@pytest.mark.parametrize("vtype", [13, 255, 2**32 - 1])
def test_unknown_kv_value_type(tmp_path, vtype):
    fails(tmp_path, Built(kvs=[kv("k", vtype, u32(1))], tensors=[], data=b"").bytes,
          rf"kv 'k': unknown value type {vtype}", rf"offset {24 + 8 + 1}")


@pytest.mark.parametrize("etype", [VT_ARRAY, 13])
def test_bad_array_element_type(tmp_path, etype):
    raw = kv("k", VT_ARRAY, u32(etype) + struct.pack("<Q", 1) + u32(0))
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes,
          rf"kv 'k': unsupported array element type {etype}", rf"offset {24 + 8 + 1 + 4}")


def test_numeric_array_past_end(tmp_path):
    raw = kv("k", VT_ARRAY, u32(VT_U32) + struct.pack("<Q", 1000) + u32(0))
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes, r"^kv 'k' array of 1000",
          rf"offset {24 + 8 + 1 + 4 + 12}")


def test_string_array_count_too_large(tmp_path):
    raw = kv("k", VT_ARRAY, u32(VT_STRING) + struct.pack("<Q", 1 << 40) + s("a"))
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes, r"kv 'k': \d+ strings",
          rf"offset {24 + 8 + 1 + 4 + 12}")


def test_string_array_element_past_end(tmp_path):
    raw = kv("k", VT_ARRAY, u32(VT_STRING) + struct.pack("<Q", 2) + s("a") + struct.pack("<Q", 99))
    at = 24 + 8 + 1 + 4 + 12 + 9
    fails(tmp_path, Built(kvs=[raw], tensors=[], data=b"").bytes, r"kv 'k': element 1",
          rf"at offset {at}")


def test_duplicate_key(tmp_path):
    b = Built(kvs=[kv("k", VT_U32, u32(1)), kv("k", VT_U32, u32(2))], tensors=[], data=b"")
    fails(tmp_path, b.bytes, r"kv key 'k'", rf"offset {b.kv_at[1]}", "twice")


def test_duplicate_tensor(tmp_path):
    b = Built(tensors=[tinfo("a", [8], F32, 0), tinfo("a", [8], F32, 32)])
    fails(tmp_path, b.bytes, r"^tensor 'a'", rf"offset {b.ti_at[1]}", "twice")


@pytest.mark.parametrize("n_dims", [0, 5, 2**32 - 1])
def test_n_dims_out_of_range(tmp_path, n_dims):
    b = Built(tensors=[tinfo("a", [8], F32, 0, n_dims=n_dims)], data=b"\0" * 32)
    fails(tmp_path, b.bytes, rf"tensor 'a': n_dims {n_dims}", rf"offset {b.ti_at[0] + 8 + 1}")


@pytest.mark.parametrize("type_id", [4, 5, 31, 99, 2**32 - 1])
def test_unknown_tensor_type(tmp_path, type_id):
    b = Built(tensors=[tinfo("a", [8], type_id, 0)], data=b"\0" * 32)
    fails(tmp_path, b.bytes, rf"tensor 'a': unknown GGML type id {type_id}",
          rf"offset {b.ti_at[0] + 8 + 1 + 4 + 8}")


def test_misaligned_tensor_offset(tmp_path):
    b = Built(tensors=[tinfo("a", [8], F32, 4)], data=b"\0" * 64)
    fails(tmp_path, b.bytes, r"tensor 'a': data offset 4", rf"info at offset {b.ti_at[0]}",
          "aligned to 32")


@pytest.mark.parametrize("payload,vtype", [(u32(0), VT_U32), (u32(3), VT_U32), (u32(48), VT_U32),
                                           (s("32"), VT_STRING), (b"\x01", 7)])
def test_bad_alignment_value(tmp_path, payload, vtype):
    b = Built(kvs=[kv("general.alignment", vtype, payload)])
    fails(tmp_path, b.bytes, r"^general\.alignment", rf"offset {b.kv_at[0] + 8 + 17 + 4}",
          "power of two")


def test_custom_alignment_is_honoured(tmp_path):
    b = Built(kvs=[kv("general.alignment", VT_U32, u32(64))], tensors=[tinfo("a", [8], F32, 64)],
              data=b"\0" * 64 + np.arange(8, dtype="<f4").tobytes(), align=64)
    g = open_gguf(write(tmp_path, b.bytes))
    assert g.alignment == 64 and g.data_offset % 64 == 0
    assert g.tensors["a"].data.tolist() == list(range(8))


def test_tensor_past_end(tmp_path):
    b = Built(tensors=[tinfo("a", [8], F32, 1 << 20)], data=b"\0" * 32)
    fails(tmp_path, b.bytes, r"^tensor 'a': 32 bytes", rf"file offset {b.data_at + (1 << 20)}",
          "past end")


def test_row_not_multiple_of_block(tmp_path):
    b = Built(tensors=[tinfo("q", [16, 2], Q8_0, 0)], data=b"\0" * 68)
    fails(tmp_path, b.bytes, r"tensor 'q': row of 16 values", rf"offset {b.ti_at[0]}",
          "Q8_0 block size 32")


@pytest.mark.parametrize("shape", [[0], [8, 0], [1 << 41]])
def test_zero_or_huge_dimension(tmp_path, shape):
    b = Built(tensors=[tinfo("a", shape, F32, 0)], data=b"\0" * 32)
    fails(tmp_path, b.bytes, r"tensor 'a': shape", rf"offset {b.ti_at[0]}", "invalid")


# ---- against gguf's writer (an independent implementation of the format) ---------------------

def test_tensor_views_are_the_files_bytes(tiny_gguf_factory):
    for weight_type in ("Q8_0", "F16", "F32"):
        path = tiny_gguf_factory(weight_type=weight_type, n_layer=1)
        raw = open(path, "rb").read()
        g = open_gguf(path)
        ref = {t.name: t for t in gguf.GGUFReader(path).tensors}
        assert set(ref) == set(g.tensors)
        for name, t in g.tensors.items():
            assert t.offset == ref[name].data_offset and t.nbytes == ref[name].n_bytes
            view = g.view[t.offset:t.offset + t.nbytes]
            assert np.shares_memory(view, t.data)  # zero-copy
            assert t.data.tobytes() == raw[t.offset:t.offset + t.nbytes]


SCALARS = [  # (key, GGUFValueType name, value, our meta_type)
    ("s.u8", "UINT8", 250, "u8"), ("s.i8", "INT8", -120, "i8"), ("s.u16", "UINT16", 65000, "u16"),
    ("s.i16", "INT16", -32000, "i16"), ("s.u32", "UINT32", 4_000_000_000, "u32"),
    ("s.i32", "INT32", -2_000_000_000, "i32"), ("s.f32", "FLOAT32", 1.5, "f32"),
    ("s.bool", "BOOL", True, "bool"), ("s.false", "BOOL", False, "bool"),
    ("s.str", "STRING", "héllo ▁wörld \U0001F600", "string"), ("s.empty", "STRING", "", "string"),
    ("s.u64", "UINT64", 2**64 - 1, "u64"), ("s.i64", "INT64", -(2**63), "i64"),
    ("s.f64", "FLOAT64", -2.5e300, "f64"),
]
ARRAYS = [  # (key, element type name, values, numpy dtype or None for strings)
    ("a.u8", "UINT8", [0, 1, 255], np.uint8), ("a.i8", "INT8", [-128, 0, 127], np.int8),
    ("a.u16", "UINT16", [0, 65535], np.uint16), ("a.i16", "INT16", [-32768, 5], np.int16),
    ("a.u32", "UINT32", [0, 2**32 - 1], np.uint32), ("a.i32", "INT32", [-(2**31), 3], np.int32),
    ("a.f32", "FLOAT32", [0.5, -1e-3, 3.0e38], np.float32), ("a.bool", "BOOL", [True, False, True], bool),
    ("a.u64", "UINT64", [2**64 - 1, 0], np.uint64), ("a.i64", "INT64", [-(2**63), 1], np.int64),
    ("a.f64", "FLOAT64", [1e-300, -2.0], np.float64),
    ("a.str", "STRING", ["", "a", "▁the", "<0x0A>", "\n", "日本"], None),
]


def test_metadata_of_every_type_reads_back(tmp_path):
    V = gguf.GGUFValueType
    path = tmp_path / "meta.gguf"
    w = gguf.GGUFWriter(str(path), arch="gemma3")
    for key, vt, value, _ in SCALARS:
        w.add_key_value(key, value, V[vt])
    for key, vt, values, _ in ARRAYS:
        w.add_key_value(key, values, V.ARRAY, sub_type=V[vt])
    w.add_tensor("t", np.arange(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    g = open_gguf(path)
    for key, _, value, type_name in SCALARS:
        assert g.meta_type(key) == type_name
        got = g.metadata[key]
        assert got == value and type(got) is type(value), key
    for key, vt, values, dtype in ARRAYS:
        got = g.metadata[key]
        assert g.meta_type(key) == f"array[{'string' if dtype is None else _short(vt)}]"
        if dtype is None:
            assert list(got) == values and [got.raw(i) for i in range(len(got))] == [v.encode() for v in values]
        else:
            assert got.dtype == np.dtype(dtype) and got.tolist() == np.array(values, dtype).tolist(), key
    assert g.tensors["t"].data.tolist() == list(range(32))


def _short(vt):
    return {"UINT8": "u8", "INT8": "i8", "UINT16": "u16", "INT16": "i16", "UINT32": "u32",
            "INT32": "i32", "FLOAT32": "f32", "BOOL": "bool", "UINT64": "u64", "INT64": "i64",
            "FLOAT64": "f64"}[vt]


def test_ggml_types_match_gguf_constants():
    ref = {int(t): (t.name, *sizes) for t, sizes in gguf.constants.GGML_QUANT_SIZES.items()}
    assert GGML_TYPES == ref


# ---- the real model: open cost ---------------------------------------------------------------

_MEASURE = r"""
import json, sys, time
def rss(kind):
    for line in open("/proc/self/status"):
        if line.startswith(kind + ":"):
            return int(line.split()[1]) * 1024
import numpy
from edge_runtime.gguf import open_gguf
a0, f0 = rss("RssAnon"), rss("RssFile"); t0 = time.perf_counter()
g = open_gguf(sys.argv[1])
tokens = g.metadata["tokenizer.ggml.tokens"]; n = len(tokens); g.tensors["token_embd.weight"].data
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "anon": rss("RssAnon") - a0, "file": rss("RssFile") - f0,
                  "n_vocab": n}))
"""


@pytest.mark.model
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_real_model_opens_fast_and_small(default_model):
    out = subprocess.run([sys.executable, "-c", _MEASURE, default_model], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    m = json.loads(out.stdout)
    print(f"open_gguf: {m['seconds'] * 1000:.1f} ms, +{m['anon'] / 2**20:.1f} MiB anon, "
          f"+{m['file'] / 2**20:.1f} MiB file")   # time is reported, never asserted
    assert m["n_vocab"] == 262144
    assert m["anon"] < 16 * 2**20   # ~5 MiB measured
    assert m["file"] < 64 * 2**20   # lazy: the 285 MB of weights are not read

"""Convert any GGUF that gguf's reference dequantizers can read into the runtime's layout.

Every 2-D (or higher) weight becomes Q8_0, every 1-D tensor (the norms) F32; metadata is copied
with its original value types. The source is read through our own mmap loader and processed one
tensor at a time, a few million values at a time, so converting Gemma 3 270M needs a few hundred
MiB, not gigabytes. gguf (the `model`/`test` extra) is needed here only, never at run time.

Q8_0 (ggml's block_q8_0): 32 values per block, stored as an fp16 scale d = amax / 127 followed by
32 int8 q = roundf(x / d), rounding half away from zero, exactly as llama.cpp's reference
quantizer does, so a file we write is byte-identical to what llama-quantize would write.
"""
from __future__ import annotations

import os
import re
import sys
import time

import numpy as np

from .errors import ConversionError
from .files import replacing
from .calls.formats import CALL_BIAS_KEY, CALL_FORMAT_KEY
from .gguf import GGML_TYPE_IDS, GGML_TYPES, open_gguf

__all__ = ["convert", "quantize_q8_0", "FUNCTION_TOKENS", "FILE_TYPE_MOSTLY_Q8_0"]

QK8_0 = 32
FILE_TYPE_MOSTLY_Q8_0 = 7        # llama_ftype LLAMA_FTYPE_MOSTLY_Q8_0
TOKEN_TYPE_CONTROL = 3
# FunctionGemma's control tokens live in Gemma 3's <unused40>..<unused46> slots.
FUNCTION_TOKENS = {
    46: "<start_function_declaration>", 47: "<end_function_declaration>",
    48: "<start_function_call>", 49: "<end_function_call>",
    50: "<start_function_response>", 51: "<end_function_response>",
    52: "<escape>",
}
CHUNK_VALUES = 1 << 22           # values dequantized at once: 16 MiB of float32


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Quantize float values (last axis a multiple of 32) to Q8_0 blocks, as uint8 [n_blocks, 34]."""
    blocks = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK8_0)
    amax = np.abs(blocks).max(axis=1)
    if not np.isfinite(amax).all():
        raise ConversionError("cannot quantize non-finite values (inf or nan) to Q8_0")
    d = amax / np.float32(127)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.float32(1) / d
    # d == 0 (all zeros) and subnormal d (1/d overflows; undefined in ggml) both give q = 0.
    inv[~np.isfinite(inv)] = 0
    v = blocks * inv[:, None]
    # roundf: floor(|v|) + 1 when the fraction is >= 0.5. (np.rint rounds ties to even, and
    # floor(|v| + 0.5) is off by one just below .5 because the sum rounds up.)
    a = np.abs(v)
    q = np.floor(a)
    q += (a - q) >= 0.5
    q = np.copysign(q, v).astype(np.int8)
    out = np.empty((blocks.shape[0], 2 + QK8_0), np.uint8)
    with np.errstate(over="ignore"):  # amax > 65504 * 127 makes d inf, as in ggml
        out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out


def _value_type_table():
    from gguf import GGUFValueType as V
    return {"u8": V.UINT8, "i8": V.INT8, "u16": V.UINT16, "i16": V.INT16, "u32": V.UINT32,
            "i32": V.INT32, "f32": V.FLOAT32, "bool": V.BOOL, "string": V.STRING, "u64": V.UINT64,
            "i64": V.INT64, "f64": V.FLOAT64}


def _can_dequantize(type_name: str) -> bool:
    from gguf import GGMLQuantizationType, quants
    block_bytes = GGML_TYPES[GGML_TYPE_IDS[type_name]][2]
    try:
        quants.dequantize(np.zeros(block_bytes, np.uint8), GGMLQuantizationType[type_name])
    except (NotImplementedError, KeyError):
        return False
    return True


# Metadata a merged model carries: the call format its adapter taught and the call bias it
# decides with (read by calls/formats/ and the agent), and the adapter's hash.
ADAPTER_KEY = "edge_runtime.adapter_sha256"


def _copy_metadata(src, writer, rename_function_tokens, adapter=None):
    """Copy every kv pair with its original value type, renaming function tokens if asked;
    a merged adapter adds its call format, call bias and hash."""
    from gguf import GGUFValueType as V
    types = _value_type_table()
    meta = src.metadata
    if rename_function_tokens and "tokenizer.ggml.tokens" not in meta:
        raise ConversionError("rename_function_tokens: the source has no tokenizer.ggml.tokens")
    for key in meta:
        if key in ("general.architecture", "general.file_type", "general.alignment"):
            continue  # the writer sets these itself
        if adapter is not None and key in (CALL_FORMAT_KEY, CALL_BIAS_KEY, ADAPTER_KEY):
            continue  # replaced below
        tname, value = src.meta_type(key), meta[key]
        if not tname.startswith("array["):
            writer.add_key_value(key, value, types[tname])
            continue
        if len(value) == 0:
            continue  # gguf's writer cannot encode an empty array; it carries no values
        sub = types[tname[6:-1]]
        # strings as raw bytes: copied exactly, even where they are not valid UTF-8
        items = [value.raw(i) for i in range(len(value))] if sub == V.STRING else value.tolist()
        if rename_function_tokens and key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
            _rename_function_tokens(key, items)
        writer.add_key_value(key, items, V.ARRAY, sub_type=sub)
    if adapter is not None:
        if adapter.call_format:
            writer.add_key_value(CALL_FORMAT_KEY, adapter.call_format, V.STRING)
        if adapter.call_bias is not None:
            writer.add_key_value(CALL_BIAS_KEY, float(adapter.call_bias), V.FLOAT32)
        writer.add_key_value(ADAPTER_KEY, adapter.sha256, V.STRING)
    writer.add_key_value("general.file_type", FILE_TYPE_MOSTLY_Q8_0, V.UINT32)
    if "general.quantization_version" not in meta:
        writer.add_key_value("general.quantization_version", 2, V.UINT32)


def _rename_function_tokens(key, items):
    """Give ids 46..52 FunctionGemma's names (over <unusedN> slots only) and the CONTROL type."""
    if len(items) <= max(FUNCTION_TOKENS):
        raise ConversionError(f"rename_function_tokens: vocabulary of {len(items)} tokens has no ids "
                         f"{min(FUNCTION_TOKENS)}..{max(FUNCTION_TOKENS)}")
    for i, name in FUNCTION_TOKENS.items():
        if key == "tokenizer.ggml.token_type":
            items[i] = TOKEN_TYPE_CONTROL
        elif re.fullmatch(rb"<unused\d+>", items[i]) or items[i] == name.encode():
            items[i] = name.encode()
        else:
            raise ConversionError(f"rename_function_tokens: id {i} is {items[i]!r}, not an unused slot")


def _plan(src):
    """(tensor, output type name) for each tensor, checking up front that all can be converted."""
    plan, readable = [], {}
    for t in src.tensors.values():
        out = "Q8_0" if len(t.shape) >= 2 else "F32"
        if t.type != out:
            if t.type not in readable:
                readable[t.type] = _can_dequantize(t.type)
            if not readable[t.type]:
                raise ConversionError(f"tensor {t.name!r}: source type {t.type} cannot be converted "
                                 f"(no dequantizer for it in gguf.quants)")
        if out == "Q8_0" and t.shape[0] % QK8_0:
            raise ConversionError(f"tensor {t.name!r}: rows of {t.shape[0]} values cannot be Q8_0 "
                             f"(not a multiple of {QK8_0})")
        plan.append((t, out))
    return plan


def _convert_tensor(src, t, out_type, adapter=None):
    """The tensor's bytes in `out_type`, converted a chunk of rows at a time (an adapter's
    change to the tensor merged into each chunk)."""
    raw = src.view[t.offset:t.offset + t.nbytes]
    merge = adapter is not None and t.name in adapter.targets
    if t.type == out_type and not merge:
        return raw  # already in the target layout: copied as is, as llama-quantize does
    from gguf import GGMLQuantizationType, quants
    qtype = GGMLQuantizationType[t.type]
    row_values = t.shape[0]
    n_rows = t.n_elements // row_values
    rows = raw.reshape(n_rows, -1)
    out_row = row_values // QK8_0 * (2 + QK8_0) if out_type == "Q8_0" else row_values * 4
    out = np.empty((n_rows, out_row), np.uint8)
    step = max(1, CHUNK_VALUES // row_values)
    for r in range(0, n_rows, step):
        values = quants.dequantize(rows[r:r + step], qtype).astype(np.float32, copy=False)
        if merge:
            values = adapter.apply(t.name, values, r)
        if out_type == "Q8_0":
            try:
                out[r:r + step] = quantize_q8_0(values).reshape(len(values), out_row)
            except ConversionError as e:
                raise ConversionError(f"tensor {t.name!r}: {e}") from None
        else:
            out[r:r + step] = values.astype("<f4").view(np.uint8)
    return out


class _Progress:
    """tqdm on stderr when installed, else a plain percentage line; silent when disabled."""

    def __init__(self, total, enabled):
        self.bar = self.total = None
        self.done, self.shown = 0, -1
        if not enabled:
            return
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="val", unit_scale=True, desc="convert", file=sys.stderr)
        except ImportError:
            self.total = total

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)
        elif self.total:
            self.done += n
            pct = 100 * self.done // self.total
            if pct != self.shown:
                self.shown = pct
                print(f"\rconvert: {pct:3d}%", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.total:
            print(file=sys.stderr)


def convert(in_path, out_path, type="q8_0", progress=True, rename_function_tokens=False,
            adapter=None) -> dict:
    """Write `in_path` as a Q8_0 GGUF at `out_path` (atomically: a crash leaves no partial file).

    rename_function_tokens: give ids 46..52 FunctionGemma's control-token names (CONTROL type).
    adapter: an edge_runtime.adapter.Adapter merged into the weights as they are written (its
    shape is checked against the source first).
    Returns a summary: {"tensors", "bytes", "seconds", "source_types"}.
    """
    if str(type).lower() != "q8_0":
        raise ConversionError(f"convert: output type {type!r} is not supported (only q8_0)")
    try:
        import gguf
    except ImportError:
        raise ConversionError("convert needs the gguf package: pip install 'edge_runtime[model]'") from None
    t0 = time.perf_counter()
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"output directory {out_dir} does not exist")
    src = open_gguf(in_path)
    try:
        if adapter is not None:
            from .config import from_gguf
            adapter.check_model(from_gguf(src))
        plan = _plan(src)
        with replacing(out_path) as tmp:
            writer = gguf.GGUFWriter(tmp, arch=src.metadata.get("general.architecture", "unknown"))
            try:
                _write(gguf, src, plan, writer, rename_function_tokens, adapter, progress)
            finally:
                writer.close()
    finally:
        src.close()
    return {"tensors": len(plan), "bytes": os.path.getsize(out_path),
            "seconds": time.perf_counter() - t0,
            "source_types": sorted({t.type for t, _ in plan})}


def _write(gguf, src, plan, writer, rename_function_tokens, adapter, progress):
    if "general.alignment" in src.metadata:
        writer.add_custom_alignment(src.alignment)
    _copy_metadata(src, writer, rename_function_tokens, adapter)
    for t, out in plan:
        shape = tuple(reversed(t.shape))  # the writer wants numpy order
        nbytes = t.n_elements // (QK8_0 if out == "Q8_0" else 1) * (34 if out == "Q8_0" else 4)
        writer.add_tensor_info(t.name, shape, np.dtype(np.float32), nbytes,
                               raw_dtype=gguf.GGMLQuantizationType[out])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    bar = _Progress(sum(t.n_elements for t, _ in plan), progress)
    for t, out in plan:
        writer.write_tensor_data(_convert_tensor(src, t, out, adapter))
        bar.update(t.n_elements)
    bar.close()

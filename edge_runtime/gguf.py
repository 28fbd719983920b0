"""The GGUF file format alone: header parse, validation and zero-copy tensor views.

The file is mapped read-only once. Metadata scalars are decoded on first access; arrays stay
in the mapping (numeric ones as numpy views, string ones as an offset table), so opening a
model with a 262k-entry vocabulary costs a few MiB, not hundreds.

Layout (little-endian): magic "GGUF", version u32 (2 or 3), tensor count u64, kv count u64,
then kv pairs, then tensor infos, then padding to `general.alignment`, then tensor data.
"""
from __future__ import annotations

import mmap
import os
import struct
from array import array

import numpy as np

__all__ = ["GGUFError", "GGUFFile", "Tensor", "StringArray", "GGML_TYPES", "open_gguf"]

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGML type id -> (name, values per block, bytes per block). Mirrors ggml.h.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
GGML_TYPE_IDS = {name: tid for tid, (name, _, _) in GGML_TYPES.items()}

# GGUF metadata value types: id -> (name, struct code or None for string/array).
_VT_STRING, _VT_ARRAY = 8, 9
_VALUE_TYPES = {
    0: ("u8", "B"), 1: ("i8", "b"), 2: ("u16", "H"), 3: ("i16", "h"), 4: ("u32", "I"),
    5: ("i32", "i"), 6: ("f32", "f"), 7: ("bool", "?"), 8: ("string", None),
    9: ("array", None), 10: ("u64", "Q"), 11: ("i64", "q"), 12: ("f64", "d"),
}
_NP_DTYPES = {"B": "<u1", "b": "<i1", "H": "<u2", "h": "<i2", "I": "<u4", "i": "<i4",
              "f": "<f4", "?": "<u1", "Q": "<u8", "q": "<i8", "d": "<f8"}

# Caps that keep a crafted header from making us allocate or loop without bound.
MAX_DIMS = 4
MAX_STRING = 1 << 24


class GGUFError(ValueError):
    """The file is not a valid GGUF; the message names the field and the byte offset."""


_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class StringArray:
    """A GGUF string array kept in the mapping: an offset table, strings decoded on access."""

    def __init__(self, buf, offsets: np.ndarray):
        self._buf = buf
        self.offsets = offsets  # byte offset of each string's payload; its u64 length precedes it

    def __len__(self):
        return len(self.offsets)

    def raw(self, i: int) -> bytes:
        off = int(self.offsets[i])
        n = _U64.unpack_from(self._buf, off - 8)[0]
        return bytes(self._buf[off:off + n])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.raw(i).decode("utf-8", errors="replace")

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class Tensor:
    """One tensor's info plus a zero-copy uint8 view of its bytes in the mapping."""

    __slots__ = ("name", "type", "type_id", "shape", "offset", "nbytes", "_file")

    def __init__(self, name, type_id, shape, offset, nbytes, file):
        self.name, self.type_id, self.shape = name, type_id, shape
        self.type = GGML_TYPES[type_id][0]
        self.offset, self.nbytes, self._file = offset, nbytes, file

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def data(self) -> np.ndarray:
        """Raw bytes (uint8) for block types; typed values for F32/F16/I*; zero-copy."""
        raw = self._file.view[self.offset:self.offset + self.nbytes]
        plain = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I8": "<i1", "I16": "<i2",
                 "I32": "<i4", "I64": "<i8"}.get(self.type)
        if plain is None:
            return raw
        return raw.view(plain).reshape(tuple(reversed(self.shape)))

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.type}, shape={list(self.shape)}, offset={self.offset})"


class _Reader:
    """Bounds-checked cursor over the mapping; every failure names the field and offset."""

    def __init__(self, buf, size):
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n, what):
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"{what}: needs {n} bytes at offset {self.pos}, file ends at {self.size}")

    def u32(self, what):
        self.need(4, what)
        v = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def u64(self, what):
        self.need(8, what)
        v = _U64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def string(self, what):
        start = self.pos
        n = self.u64(f"{what} length")
        if n > MAX_STRING:
            raise GGUFError(f"{what}: string length {n} at offset {start} exceeds {MAX_STRING}")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{what}: invalid UTF-8 at offset {start}") from None

    def skip_strings(self, count, what):
        """Walk `count` length-prefixed strings; return their payload offsets (no decoding)."""
        offs = array("q")
        buf, pos, size, unpack, append = self.buf, self.pos, self.size, _U64.unpack_from, offs.append
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFError(f"{what}: element {len(offs)} length at offset {pos} past end of file")
            n = unpack(buf, pos)[0]
            pos += 8
            if n > MAX_STRING or pos + n > size:
                raise GGUFError(f"{what}: element {len(offs)} of {n} bytes at offset {pos - 8} "
                                f"runs past end of file ({size})")
            append(pos)
            pos += n
        self.pos = pos
        return np.frombuffer(offs, dtype=np.int64) if len(offs) else np.zeros(0, np.int64)


class GGUFFile:
    """An open GGUF file. `metadata` maps key -> value (arrays as views), `tensors` name -> Tensor."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise GGUFError(f"cannot open {self.path}: {e.strerror}") from None
        try:
            self.stat = os.fstat(fd)   # identifies the mapped file (edge_runtime.prefix_cache)
            self.size = self.stat.st_size
            if self.size < 24:
                raise GGUFError(f"header: file is {self.size} bytes, a GGUF header needs 24 at offset 0")
            try:
                self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except OSError as e:   # e.g. no address space left for it on a 32-bit board
                raise GGUFError(f"cannot map {self.path} ({self.size} bytes): {e.strerror}") from None
        finally:
            os.close(fd)
        self.view = np.frombuffer(self._mm, dtype=np.uint8)
        self._raw_meta = {}   # key -> (value type, offset of value)
        self._meta_cache = {}
        self.tensors = {}
        self._parse()
        self.metadata = _LazyMetadata(self)

    # ---- parsing -------------------------------------------------------------------------
    def _parse(self):
        r = _Reader(self._mm, self.size)
        if bytes(self._mm[0:4]) != MAGIC:
            raise GGUFError(f"magic: expected b'GGUF' at offset 0, found {bytes(self._mm[0:4])!r}")
        r.pos = 4
        self.version = r.u32("version")
        if self.version not in (2, 3):
            raise GGUFError(f"version: {self.version} at offset 4 is not supported (2 or 3)")
        n_tensors = r.u64("tensor_count")
        n_kv = r.u64("kv_count")
        # Each kv needs >= 8+1+4+1 bytes and each tensor info >= 8+1+4+8+4+8: reject absurd counts
        # before looping on them.
        if n_kv * 14 > self.size or n_tensors * 33 > self.size:
            raise GGUFError(f"counts: {n_tensors} tensors / {n_kv} kv pairs at offset 8 "
                            f"cannot fit in a {self.size}-byte file")
        for _ in range(n_kv):
            at = r.pos
            key = r.string(f"kv key at offset {at}")
            if key in self._raw_meta:
                raise GGUFError(f"kv key {key!r} at offset {at} appears twice")
            vtype = r.u32(f"kv {key!r} type")
            if vtype not in _VALUE_TYPES:
                raise GGUFError(f"kv {key!r}: unknown value type {vtype} at offset {r.pos - 4}")
            self._raw_meta[key] = (vtype, r.pos)
            self._skip_value(r, vtype, key)

        alignment = self._scalar_meta("general.alignment", DEFAULT_ALIGNMENT)
        if (not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0
                or alignment & (alignment - 1)):
            at = self._raw_meta["general.alignment"][1]
            raise GGUFError(f"general.alignment: {alignment!r} at offset {at} is not a power of two")
        self.alignment = alignment

        infos = []
        for _ in range(n_tensors):
            at = r.pos
            name = r.string(f"tensor name at offset {at}")
            n_dims = r.u32(f"tensor {name!r} n_dims")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GGUFError(f"tensor {name!r}: n_dims {n_dims} at offset {r.pos - 4} "
                                f"not in 1..{MAX_DIMS}")
            shape = tuple(r.u64(f"tensor {name!r} dim {i}") for i in range(n_dims))
            type_at = r.pos
            type_id = r.u32(f"tensor {name!r} type")
            if type_id not in GGML_TYPES:
                raise GGUFError(f"tensor {name!r}: unknown GGML type id {type_id} at offset {type_at}")
            offset = r.u64(f"tensor {name!r} offset")
            if name in self.tensors or any(name == i[0] for i in infos[-1:]):
                raise GGUFError(f"tensor {name!r} at offset {at} appears twice")
            infos.append((name, shape, type_id, offset, at))
            self.tensors[name] = None

        self.data_offset = -(-r.pos // alignment) * alignment
        if self.data_offset > self.size and n_tensors:
            raise GGUFError(f"tensor data: starts at offset {self.data_offset}, past end of file "
                            f"({self.size})")
        for name, shape, type_id, offset, at in infos:
            tname, block, bsize = GGML_TYPES[type_id]
            if any(d == 0 for d in shape) or any(d >= 1 << 40 for d in shape):
                raise GGUFError(f"tensor {name!r}: shape {list(shape)} at offset {at} is invalid")
            if shape[0] % block:
                raise GGUFError(f"tensor {name!r}: row of {shape[0]} values at offset {at} is not a "
                                f"multiple of the {tname} block size {block}")
            n = 1
            for d in shape:
                n *= d
            nbytes = n // block * bsize
            if offset % alignment:
                raise GGUFError(f"tensor {name!r}: data offset {offset} (info at offset {at}) is not "
                                f"aligned to {alignment}")
            start = self.data_offset + offset
            if start + nbytes > self.size:
                raise GGUFError(f"tensor {name!r}: {nbytes} bytes at file offset {start} run past end "
                                f"of file ({self.size})")
            self.tensors[name] = Tensor(name, type_id, shape, start, nbytes, self)

    def _skip_value(self, r, vtype, key):
        if vtype == _VT_STRING:
            r.string(f"kv {key!r} value")
        elif vtype == _VT_ARRAY:
            at = r.pos
            etype = r.u32(f"kv {key!r} array type")
            count = r.u64(f"kv {key!r} array count")
            if etype not in _VALUE_TYPES or etype == _VT_ARRAY:
                raise GGUFError(f"kv {key!r}: unsupported array element type {etype} at offset {at}")
            if etype == _VT_STRING:
                if count * 8 > self.size - r.pos:
                    raise GGUFError(f"kv {key!r}: {count} strings at offset {r.pos} cannot fit in file")
                self._meta_cache[key] = StringArray(self._mm, r.skip_strings(count, f"kv {key!r}"))
            else:
                code = _VALUE_TYPES[etype][1]
                n = count * struct.calcsize(code)
                r.need(n, f"kv {key!r} array of {count}")
                r.pos += n
        else:
            code = _VALUE_TYPES[vtype][1]
            r.need(struct.calcsize(code), f"kv {key!r} value")
            r.pos += struct.calcsize(code)

    # ---- metadata values -----------------------------------------------------------------
    def _scalar_meta(self, key, default):
        if key not in self._raw_meta:
            return default
        return self.get_meta(key)

    def get_meta(self, key):
        if key in self._meta_cache:
            return self._meta_cache[key]
        vtype, off = self._raw_meta[key]
        if vtype == _VT_STRING:
            r = _Reader(self._mm, self.size)
            r.pos = off
            value = r.string(key)
        elif vtype == _VT_ARRAY:
            etype, count = _U32.unpack_from(self._mm, off)[0], _U64.unpack_from(self._mm, off + 4)[0]
            code = _VALUE_TYPES[etype][1]
            value = self.view[off + 12:off + 12 + count * struct.calcsize(code)].view(_NP_DTYPES[code])
            if code == "?":
                value = value.astype(bool)
        else:
            value = struct.unpack_from("<" + _VALUE_TYPES[vtype][1], self._mm, off)[0]
        self._meta_cache[key] = value
        return value

    def meta_type(self, key) -> str:
        """The GGUF value type name of a key ("u32", "string", "array[f32]", ...)."""
        vtype, off = self._raw_meta[key]
        if vtype == _VT_ARRAY:
            return f"array[{_VALUE_TYPES[_U32.unpack_from(self._mm, off)[0]][0]}]"
        return _VALUE_TYPES[vtype][0]

    def address(self) -> int:
        """Base address of the mapping, for the native core (kept alive by this object)."""
        return self.view.ctypes.data

    def close(self):
        self.metadata = self.tensors = None
        self.view = None
        try:
            self._mm.close()
        except BufferError:
            pass  # views still exported: the mapping is released when they are

    def __repr__(self):
        return f"GGUFFile({self.path!r}, v{self.version}, {len(self.tensors)} tensors)"


class _LazyMetadata:
    """Read-only mapping over the header's kv pairs; values are decoded on first access."""

    def __init__(self, f):
        self._f = f

    def __getitem__(self, key):
        if key not in self._f._raw_meta:
            raise KeyError(key)
        return self._f.get_meta(key)

    def get(self, key, default=None):
        return self[key] if key in self._f._raw_meta else default

    def __contains__(self, key):
        return key in self._f._raw_meta

    def __iter__(self):
        return iter(self._f._raw_meta)

    def __len__(self):
        return len(self._f._raw_meta)

    def keys(self):
        return self._f._raw_meta.keys()

    def items(self):
        return ((k, self[k]) for k in self._f._raw_meta)


def open_gguf(path) -> GGUFFile:
    return GGUFFile(path)

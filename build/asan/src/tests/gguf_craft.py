"""An independent GGUF reader/writer for building broken files in tests.

It does not use edge_runtime.gguf (so the parser under test is never its own oracle). `parse`
reads a well-formed file into parts (kv payloads are kept as raw bytes); `build` writes parts
back, so a test can change one thing — a key, a type, a shape, an offset — and keep the rest.
`fields` lists every length/count/type/offset field with its byte position: the fuzzer's map.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

VT_STRING, VT_ARRAY = 8, 9
VT_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
VT_CODE = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# GGML type id -> (values per block, bytes per block), for the few types tests write.
BLOCK = {0: (1, 4), 1: (1, 2), 8: (32, 34), 30: (1, 2)}


@dataclass
class KV:
    key: str
    vtype: int
    payload: bytes   # the value's bytes exactly as stored after the type field


@dataclass
class TensorInfo:
    name: str
    dims: list        # ggml order: dims[0] = values per row
    ttype: int
    offset: int       # relative to the start of the data section


@dataclass
class Parts:
    version: int
    kvs: list
    tensors: list
    alignment: int = 32
    data: bytes = b""            # the data section (from the aligned header end)
    data_size: int = 0           # its size, when `data` is left out (see parse(keep_data=False))
    magic: bytes = b"GGUF"
    extra: dict = field(default_factory=dict)

    def kv(self, key):
        return next(k for k in self.kvs if k.key == key)

    def tensor(self, name):
        return next(t for t in self.tensors if t.name == name)

    def copy(self):
        return replace(self, kvs=[replace(k) for k in self.kvs],
                       tensors=[replace(t, dims=list(t.dims)) for t in self.tensors])


def _str(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def string(text) -> bytes:
    return _str(text.encode() if isinstance(text, str) else text)


def scalar(vtype, value) -> bytes:
    return struct.pack("<" + VT_CODE[vtype], value)


def array(etype, values) -> bytes:
    if etype == VT_STRING:
        body = b"".join(string(v) for v in values)
    else:
        body = b"".join(scalar(etype, v) for v in values)
    return struct.pack("<IQ", etype, len(values)) + body


class _Cursor:
    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def raw_string(self):
        n = self.take("Q")
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b


def _value_end(c: _Cursor, vtype, fields=None):
    """Advance c past one value of vtype, recording the fields it holds."""
    if vtype == VT_STRING:
        if fields is not None:
            fields.append((c.pos, 8, "strlen"))
        c.raw_string()
    elif vtype == VT_ARRAY:
        if fields is not None:
            fields += [(c.pos, 4, "atype"), (c.pos + 4, 8, "acount")]
        etype, count = c.take("I"), c.take("Q")
        if etype == VT_STRING:
            for i in range(count):
                if fields is not None and i < 64:   # the first few are enough to aim at
                    fields.append((c.pos, 8, "strlen"))
                c.raw_string()
        else:
            c.pos += count * VT_SIZE[etype]
    else:
        c.pos += VT_SIZE[vtype]


def parse(buf, keep_data=True) -> Parts:
    """Parts of a well-formed GGUF (bytes or a mapping); raises struct.error on a broken one."""
    c = _Cursor(buf, 4)
    version, n_tensors, n_kv = c.take("I"), c.take("Q"), c.take("Q")
    kvs = []
    for _ in range(n_kv):
        key = c.raw_string().decode()
        vtype = c.take("I")
        start = c.pos
        _value_end(c, vtype)
        kvs.append(KV(key, vtype, bytes(buf[start:c.pos])))
    tensors = []
    for _ in range(n_tensors):
        name = c.raw_string().decode()
        dims = [c.take("Q") for _ in range(c.take("I"))]
        tensors.append(TensorInfo(name, dims, c.take("I"), c.take("Q")))
    align = 32
    for k in kvs:
        if k.key == "general.alignment":
            align = struct.unpack("<I", k.payload)[0]
    start = -(-c.pos // align) * align
    parts = Parts(version, kvs, tensors, align, magic=bytes(buf[:4]))
    if keep_data:
        parts.data = bytes(buf[start:])
    parts.data_size = len(buf) - start
    return parts


def header(p: Parts, n_kv=None, n_tensors=None) -> bytes:
    """Header bytes, padded to the alignment (the data section follows)."""
    out = [p.magic, struct.pack("<IQQ", p.version,
                                len(p.tensors) if n_tensors is None else n_tensors,
                                len(p.kvs) if n_kv is None else n_kv)]
    for k in p.kvs:
        out += [string(k.key), struct.pack("<I", k.vtype), k.payload]
    for t in p.tensors:
        out += [string(t.name), struct.pack("<I", len(t.dims)),
                b"".join(struct.pack("<Q", d) for d in t.dims), struct.pack("<IQ", t.ttype, t.offset)]
    h = b"".join(out)
    return h + b"\0" * (-len(h) % p.alignment)


def build(p: Parts, **kw) -> bytes:
    return header(p, **kw) + p.data


def fields(buf, header_end=None):
    """(pos, width, kind) of every length, count, type and offset field in a well-formed
    header, plus "section" markers (width 0) at each kv, tensor info and data boundary."""
    out = [(4, 4, "version"), (8, 8, "n_tensors"), (16, 8, "n_kv")]
    c = _Cursor(buf, 4)
    _, n_tensors, n_kv = c.take("I"), c.take("Q"), c.take("Q")
    for _ in range(n_kv):
        out += [(c.pos, 0, "section"), (c.pos, 8, "strlen")]
        c.raw_string()
        out.append((c.pos, 4, "vtype"))
        vtype = c.take("I")
        _value_end(c, vtype, out)
    for _ in range(n_tensors):
        out += [(c.pos, 0, "section"), (c.pos, 8, "strlen")]
        c.raw_string()
        out.append((c.pos, 4, "ndims"))
        for _ in range(c.take("I")):
            out.append((c.pos, 8, "dim"))
            c.pos += 8
        out += [(c.pos, 4, "ttype"), (c.pos + 4, 8, "toffset")]
        c.pos += 12
    out.append((c.pos, 0, "section"))
    return out, c.pos


def shrink_arrays(p: Parts, n: int) -> Parts:
    """A copy whose array values keep only their first n elements (a real vocabulary of 262k
    strings makes every parse cost ~0.1 s; the fuzzer needs its layout, not its size)."""
    q = p.copy()
    for k in q.kvs:
        if k.vtype != VT_ARRAY:
            continue
        etype, count = struct.unpack_from("<IQ", k.payload)
        if count <= n:
            continue
        c = _Cursor(k.payload, 12)
        for _ in range(n):
            _value_end(c, etype)
        k.payload = struct.pack("<IQ", etype, n) + k.payload[12:c.pos]
    return q


def nbytes(t: TensorInfo) -> int:
    per_block, block_bytes = BLOCK[t.ttype]
    n = 1
    for d in t.dims:
        n *= d
    return n // per_block * block_bytes

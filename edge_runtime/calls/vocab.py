"""The vocabulary indexed for token-level constrained decoding: every token's bytes, the normal
tokens sorted by their bytes (a trie held as one sorted sequence), and per string-automaton
state the tokens that may continue string content.

The index is a handful of flat arrays (about 25 bytes per token; 6.1 MiB for Gemma 3's 262k):

    offsets u32[n+1]   token i's bytes are flat[offsets[i]:offsets[i+1]]
    order   i32[m]     the m normal tokens sorted by their bytes (ties by id)
    kstart  i32[k+1]   order[kstart[a]:kstart[a+1]] share the a-th distinct byte string
    chars   u32[n]     characters per token (bytes that are not UTF-8 continuation bytes)
    normal  u8[n]      1 for tokens that are plain bytes (not control/special/empty)
    flat    u8[...]    all token bytes, by id

For a model read from a GGUF file it is built once and kept in the cache directory
(`edge_runtime.models.cache_dir()`) as `<model file name>-<path hash>.vocab-<key>.idx`, mapped
read-only: file-backed pages that processes share and the kernel may evict. The key hashes the
model's GGUF header (metadata and vocabulary: everything the index is built from), the
format version and the byte order, so a model with another vocabulary, or this model rebuilt
with one, gets another file (the one it supersedes at the same path is deleted). Layout: a
72-byte header (magic, version, n, m, k, flat length, flags, key, crc32 of the body), then the
arrays above, each 8-byte aligned.
A file that fails a check is rebuilt with a VocabIndexWarning; one that cannot be written
leaves the index in memory. Files are only ever replaced by rename, never rewritten in place,
so a mapping never sees its file shrink.

Per string-automaton state, the allowed set is computed on first use (one pass over the token
bytes, in chunks so that it allocates ~1 MiB at a time) and kept as a packed bit mask, n/8
bytes per state (32 KiB for 262k tokens); beside a mapped index the masks are also saved
(`<index>.<automaton digest>.masks`), so later processes compute none of them again.
"""
from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import re
import struct
import sys
import warnings
import weakref
import zlib
from pathlib import Path

import numpy as np

from ..files import write_atomically

_CONTROL = re.compile(rb"<[A-Za-z0-9_]+>|\[[a-z_]+\]")
MAGIC = b"ERVOCIX\0"
VERSION = 1
_HEADER = struct.Struct("<8sIIIIQI32sI")     # magic version n m k flat_len flags key crc
_HEADER_SIZE = _HEADER.size   # 72: the arrays after it stay 8-byte aligned
_FIELDS = (("offsets", "<u4"), ("order", "<i4"), ("kstart", "<i4"), ("chars", "<u4"),
           ("normal", "u1"), ("flat", "u1"))
_MASKS = struct.Struct("<8sIIII")   # content masks file: magic version n count crc
MASKS_MAGIC = b"ERVOCMK\0"
_CHUNK = 1 << 15             # tokens per pass when computing a content set


class VocabIndexWarning(UserWarning):
    """An index file was ignored (damaged, foreign) or could not be written."""


def _counts(n, m, k, flat_len):
    return {"offsets": n + 1, "order": m, "kstart": k + 1, "chars": n, "normal": n,
            "flat": flat_len}


def _layout(n, m, k, flat_len):
    """{field: (offset, count)} and the total file size."""
    at, out = _HEADER_SIZE, {}
    for name, dt in _FIELDS:
        count = _counts(n, m, k, flat_len)[name]
        out[name] = (at, count)
        at += -(-count * np.dtype(dt).itemsize // 8) * 8
    return out, at


def build_arrays(pieces, special) -> dict:
    """The index arrays for token byte strings `pieces`; special[i] marks tokens that never
    appear as plain text. (Lean on temporaries: it runs once per model, possibly on a board.)"""
    n = len(pieces)
    lens = np.fromiter(map(len, pieces), np.int64, n)
    if lens.sum() >= 1 << 32:
        raise ValueError("vocabulary too large to index (over 4 GiB of token bytes)")
    offsets = np.zeros(n + 1, "<u4")
    np.cumsum(lens, out=offsets[1:])
    flat = np.frombuffer(b"".join(pieces), np.uint8)
    normal = (lens > 0) & ~np.asarray(special, bool)
    order = np.asarray(sorted(np.flatnonzero(normal).tolist(), key=pieces.__getitem__), "<i4")
    m = len(order)
    differs = np.fromiter((pieces[order[a]] != pieces[order[a - 1]] for a in range(1, m)), bool,
                          max(m - 1, 0))
    kstart = np.concatenate([[0], np.flatnonzero(differs) + 1, [m]] if m else [[0]]).astype("<i4")
    lead = np.zeros(len(flat) + 1, np.uint32)
    np.cumsum((flat & 0xC0) != 0x80, out=lead[1:])
    single = {pieces[i] for i in np.flatnonzero(normal & (lens == 1)).tolist()}
    return {"offsets": offsets, "order": order, "kstart": kstart,
            "chars": lead[offsets[1:]] - lead[offsets[:-1]],
            "normal": normal.astype(np.uint8), "flat": flat,
            "byte_fallback": all(bytes((b,)) in single for b in range(0x80, 0xC0))}


class _Pieces:
    """pieces[i] -> bytes of token i."""
    __slots__ = ("_flat", "_off")

    def __init__(self, flat, offsets):
        self._flat, self._off = memoryview(flat), memoryview(offsets).cast("B").cast("I")

    def __len__(self):
        return len(self._off) - 1

    def __getitem__(self, i):
        if not 0 <= i < len(self._off) - 1:
            raise IndexError(i)
        return self._flat[self._off[i]:self._off[i + 1]].tobytes()


class _Ids:
    """ids[a] -> [token ids whose bytes are keys[a]], ascending."""
    __slots__ = ("_order", "_kstart")

    def __init__(self, order, kstart):
        self._order = memoryview(order).cast("B").cast("i")
        self._kstart = memoryview(kstart).cast("B").cast("i")

    def __len__(self):
        return len(self._kstart) - 1

    def __getitem__(self, a):
        a = self._checked(a)
        return self._order[self._kstart[a]:self._kstart[a + 1]].tolist()

    def first(self, a) -> int:
        return self._order[self._kstart[self._checked(a)]]

    def _checked(self, a):
        if not 0 <= a < len(self._kstart) - 1:
            raise IndexError(a)
        return a


class _Keys:
    """keys[a] -> the a-th distinct normal byte string, ascending (len / index / bisect)."""
    __slots__ = ("_pieces", "_ids")

    def __init__(self, pieces, ids):
        self._pieces, self._ids = pieces, ids

    def __len__(self):
        return len(self._ids)

    def __getitem__(self, a):
        return self._pieces[self._ids.first(a)]


class Vocab:
    """Token byte strings indexed for grammar walks.

    n, pieces[i] (bytes), normal[i] (bool array), chars (array), byte_fallback, keys / ids
    (sorted distinct byte strings and the ids having each), content_ids(...); path: the mapped
    index file, or None when the index lives in memory."""

    _cache = weakref.WeakKeyDictionary()

    def __init__(self, pieces, special):
        """An index built in memory (tests, tokenizers without a GGUF file)."""
        self._bind(build_arrays(pieces, special), None)

    def _bind(self, arrays, path, mapping=None):
        self.path, self._mapping = path, mapping
        self.n = len(arrays["normal"])
        self._offsets, self._flat = arrays["offsets"], arrays["flat"]
        self.normal = arrays["normal"].view(bool)
        self.chars = arrays["chars"]
        self.byte_fallback = bool(arrays["byte_fallback"])
        self.pieces = _Pieces(self._flat, self._offsets)
        self.ids = _Ids(arrays["order"], arrays["kstart"])
        self.keys = _Keys(self.pieces, self.ids)
        self._masks = {}     # (automaton name, state) -> (packed mask, longest in chars)
        self._stored = {}    # automaton digest -> {state: (packed mask, longest)}

    @classmethod
    def _from_arrays(cls, arrays, path=None, mapping=None):
        v = cls.__new__(cls)
        v._bind(arrays, path, mapping)
        return v

    @classmethod
    def from_tokenizer(cls, tok, cache_dir=None):
        """The index of tok's vocabulary: mapped from (or first written to) the cache
        directory when tok was read from a GGUF file, else built in memory. One per tokenizer."""
        try:
            return cls._cache[tok]
        except (KeyError, TypeError):
            pass
        g = getattr(tok, "gguf", None)
        if g is not None:
            from ..models import cache_dir as default_dir
            v = cls._mapped(tok, g, Path(cache_dir) if cache_dir else default_dir())
        else:
            v = cls(*_pieces_and_special(tok))
        try:
            cls._cache[tok] = v
        except TypeError:
            pass
        return v

    # ---- the index file ------------------------------------------------------------------

    @classmethod
    def _mapped(cls, tok, g, directory):
        key = _key(g, int(tok.n_vocab))
        path = _path(g, key, directory)
        if path.exists():
            v = cls._open(path, key, int(tok.n_vocab))
            if v is not None:
                return v
        arrays = build_arrays(*_pieces_and_special(tok))
        if _write(path, key, arrays) is None:
            return cls._from_arrays(arrays)
        for stale in directory.glob(_stem(g) + "*"):   # this path's former model, its masks
            if not stale.name.startswith(path.name):
                _unlink(stale)
        v = cls._open(path, key, int(tok.n_vocab))
        if v is None:
            return cls._from_arrays(arrays)
        del arrays
        _trim_heap()
        return v

    @classmethod
    def _open(cls, path, key, n_vocab):
        """The mapped index at path, or None (with a warning) if it fails a check."""
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < _HEADER_SIZE:
                    return _ignore(path, "truncated header")
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            return _ignore(path, f"cannot read it ({e.strerror})")
        magic, version, n, m, k, flat_len, flags, fkey, crc = _HEADER.unpack_from(mm)
        why = ("not a vocabulary index" if magic != MAGIC else
               f"format version {version}, expected {VERSION}" if version != VERSION else
               "made for another model" if fkey != key or n != n_vocab else None)
        if why is None:
            fields, total = _layout(n, m, k, flat_len)
            if size != total:
                why = f"{size} bytes, the header says {total} (truncated or padded)"
            elif zlib.crc32(memoryview(mm)[_HEADER_SIZE:]) != crc:
                why = "checksum mismatch (damaged)"
        if why is not None:
            mm.close()
            return _ignore(path, why)
        arrays = {name: np.frombuffer(mm, dt, fields[name][1], fields[name][0])
                  for name, dt in _FIELDS}
        arrays["byte_fallback"] = bool(flags & 1)
        return cls._from_arrays(arrays, path, mm)

    # ---- string content ------------------------------------------------------------------

    def content_ids(self, automaton, state: int, room: int, also=()):
        """Sorted int32 ids of tokens that may continue string content entered in automaton
        state `state` and add at most `room` characters, merged with the ids `also` (the
        string's closing and other symbols). `automaton` is (name, table, boundary):
        table[state, byte] -> next state or -1 (dead), boundary[state] true where a character
        is complete. The set per (automaton, state) is built on first use."""
        mask, longest = self._content_mask(automaton, state)
        ok = np.unpackbits(mask, count=self.n, bitorder="little").view(bool)
        return self._ids(ok, room if room < longest else None, also)

    def pattern_ids(self, automaton, escaping, state, pattern, q, room, also=()):
        """content_ids for a string whose value must also match a pattern: `pattern` is
        (table, escape_ok, need, to_char_end) of its DFA over the value's unescaped bytes, in
        state q (see _content_chunk). Computed at every step, never kept: the pattern's state moves with
        each token, and one pass over the vocabulary in numpy is ~0.1 s where a walk of it in
        Python was minutes."""
        ok = np.empty(self.n, bool)
        name, table, boundary = automaton
        for lo in range(0, self.n, _CHUNK):
            hi = min(lo + _CHUNK, self.n)
            ok[lo:hi] = self._content_chunk(table, boundary, state, lo, hi,
                                            (escaping,) + tuple(pattern) + (q, room))
        return self._ids(ok, room, also)

    def _ids(self, ok, room, also):
        """Sorted int32 ids where ok (a fresh bool array over the vocabulary, changed here),
        at most `room` characters long (None: any), and the ids `also`. Built chunk by chunk
        into its int32 result: this runs at every step inside a string, and the whole
        vocabulary's int64 positions would be 2 MiB more of the agent's peak (memory/plan.py)."""
        for lo in range(0, self.n, _CHUNK) if room is not None else ():
            ok[lo:lo + _CHUNK] &= self.chars[lo:lo + _CHUNK] <= room
        ok[np.asarray(also, np.int64)] = True
        out = np.empty(np.count_nonzero(ok), np.int32)
        at = 0
        for lo in range(0, self.n, _CHUNK):
            got = np.flatnonzero(ok[lo:lo + _CHUNK])
            out[at:at + len(got)] = got + lo
            at += len(got)
        return out

    def _content_mask(self, automaton, state):
        name, table, boundary = automaton
        got = self._masks.get((name, state))
        if got is None:
            digest = hashlib.sha256(name.encode() + np.ascontiguousarray(table, "<i4").tobytes()
                                    + np.asarray(boundary, bool).tobytes()).hexdigest()[:16]
            if digest not in self._stored:
                self._stored[digest] = self._load_masks(digest)
            stored = self._stored[digest]
            got = stored.get(state)
            if got is None:
                ok = np.zeros(self.n, bool)
                for lo in range(0, self.n, _CHUNK):   # chunks: ~1 MiB of temporaries, not 20
                    hi = min(lo + _CHUNK, self.n)
                    ok[lo:hi] = self._content_chunk(table, boundary, state, lo, hi)
                got = stored[state] = (np.packbits(ok, bitorder="little"),
                                       int(self.chars[ok].max(initial=0)))
                self._save_masks(digest, stored)
            self._masks[(name, state)] = got
        return got

    # The masks computed so far for one automaton, kept beside a mapped index in
    # <index>.<automaton digest>.masks: magic | version u32 | n u32 | count u32 | crc32 u32,
    # then per state: state u32 | longest u32 | mask (n/8 bytes). Rewritten (by rename) when a
    # state is added; one that fails a check is ignored and replaced.

    def _masks_path(self, digest):
        if self.path is not None:
            return self.path.with_name(f"{self.path.name}.{digest}.masks")

    def _load_masks(self, digest) -> dict:
        path = self._masks_path(digest)
        try:
            data = path.read_bytes() if path is not None else b""
        except OSError:
            return {}
        nb, out = -(-self.n // 8), {}
        if len(data) < _MASKS.size:
            return {}
        magic, version, n, count, crc = _MASKS.unpack_from(data)
        body = memoryview(data)[_MASKS.size:]
        if (magic, version, n) != (MASKS_MAGIC, VERSION, self.n) or len(body) != count * (8 + nb) \
                or zlib.crc32(body) != crc:
            return {}
        for i in range(count):
            at = i * (8 + nb)
            state, longest = struct.unpack_from("<II", body, at)
            out[state] = (np.frombuffer(body[at + 8:at + 8 + nb], np.uint8), longest)
        return out

    def _save_masks(self, digest, stored):
        path = self._masks_path(digest)
        if path is None:
            return
        body = b"".join(struct.pack("<II", st, longest) + mask.tobytes()
                        for st, (mask, longest) in sorted(stored.items()))
        _write_file(path, _MASKS.pack(MASKS_MAGIC, VERSION, self.n, len(stored), zlib.crc32(body)),
                    body, quiet=True)

    def _content_chunk(self, table, boundary, state, lo, hi, pattern=None):
        """Which tokens lo..hi-1 the automaton takes from `state` through to a state that can
        go on; every token's bytes run through the table at once, byte position by position.
        pattern: (escaping, dfa table, escape_ok, need, to_char_end, q, room) to run a
        pattern's DFA beside it on the value's unescaped bytes - escaping[state]: the byte is
        an escape's second; escape_ok[q]: some escape is one the pattern could take (else a
        backslash is dead); need[q]: bytes still needed to match, less to_char_end[state] (the
        character being written, already counted), must fit in the room left."""
        normal = self.normal[lo:hi]
        start = self._offsets[lo:hi].astype(np.int64)
        lens = self._offsets[lo + 1:hi + 1].astype(np.int64) - start
        st = np.where(normal, state, -1).astype(np.int32)
        if pattern is not None:
            escaping, dfa, escape_ok, need, to_char_end, q0, room = pattern
            qs = np.full(hi - lo, q0, np.int32)
        for pos in range(int(lens.max(initial=0))):
            live = np.flatnonzero((lens > pos) & (st >= 0))
            if not len(live):
                break
            c = self._flat[start[live] + pos]
            nxt = table[st[live], c]
            if pattern is not None:
                q, was = qs[live], escaping[st[live]]
                starts = ~was & escaping[np.maximum(nxt, 0)] & (nxt >= 0)
                q2 = np.where(was, dfa[q, _UNESCAPE[c]], dfa[q, c])
                q2 = np.where(starts, np.where(escape_ok[q], q, -1), q2)
                nxt = np.where(q2 >= 0, nxt, -1)
                qs[live] = q2
            st[live] = nxt
        # a token that stops mid-character is only safe if every continuation byte exists as
        # a token (byte fallback), else the string could never close
        good = st >= 0
        if pattern is not None:     # as the grammar's step
            end = np.maximum(st, 0)
            good &= self.chars[lo:hi] + np.maximum(
                0, need[np.maximum(qs, 0)] - to_char_end[end]) <= room
        good[good] = boundary[st[good]] | self.byte_fallback
        return good


_UNESCAPE = np.arange(256, dtype=np.uint8)      # an escape's second byte -> the byte it means
_UNESCAPE[[ord("n"), ord("r"), ord("t")]] = [10, 13, 9]


def _pieces_and_special(tok):
    n = int(tok.n_vocab)
    pieces = tok.all_pieces() if hasattr(tok, "all_pieces") else \
        [bytes(tok.token_to_piece(i)) for i in range(n)]
    types = getattr(tok, "token_types", None)
    if types is not None:  # GGUF types: 1 normal, 4 user-defined, 6 byte
        special = [t not in (1, 4, 6) or (p[:1] in b"<[" and bool(_CONTROL.fullmatch(p)))
                   for t, p in zip(np.asarray(types).tolist(), pieces)]
    else:
        special = [bool(_CONTROL.fullmatch(p)) for p in pieces]
    return pieces, special


def _key(g, n_vocab) -> bytes:
    """A hash of the GGUF header (metadata and vocabulary: all the index is built from; its
    pages are resident already, the tokenizer read them) with the format version."""
    header = min((t.offset for t in g.tensors.values()), default=g.size)
    h = hashlib.blake2b(g.view[:header], digest_size=32)
    h.update(f"|n={n_vocab}|v{VERSION}|{sys.byteorder}".encode())
    return h.digest()


def _stem(g) -> str:
    """The model file's name and a hash of its full path: the indexes of one path share it."""
    where = hashlib.sha256(os.path.abspath(g.path).encode()).hexdigest()[:8]
    return f"{os.path.basename(g.path)}-{where}.vocab-"


def _path(g, key, directory) -> Path:
    return Path(directory) / f"{_stem(g)}{key.hex()[:16]}.idx"


def index_path(g, n_vocab, directory) -> Path:
    """Where the index of the open GGUF g lives in `directory`."""
    return _path(g, _key(g, n_vocab), directory)


def _write(path, key, arrays):
    """Write the index atomically; the path, or None."""
    n, m, k = len(arrays["normal"]), len(arrays["order"]), len(arrays["kstart"]) - 1
    fields, total = _layout(n, m, k, len(arrays["flat"]))
    body = bytearray(total - _HEADER_SIZE)
    for name, dt in _FIELDS:
        at, count = fields[name]
        body[at - _HEADER_SIZE:at - _HEADER_SIZE + count * np.dtype(dt).itemsize] = \
            np.ascontiguousarray(arrays[name], dt).tobytes()
    head = _HEADER.pack(MAGIC, VERSION, n, m, k, len(arrays["flat"]),
                        int(arrays["byte_fallback"]), key, zlib.crc32(body))
    return _write_file(path, head, body)


def _write_file(path, head, body, quiet=False):
    """head + body to path atomically (temporary name, then rename); the path, or None (with a
    warning unless quiet: a cache that cannot be written only costs time)."""
    try:
        write_atomically(path, [head, body])
        return path
    except OSError as e:
        if not quiet:
            warnings.warn(f"cannot write vocabulary index {path}: {e}; keeping it in memory",
                          VocabIndexWarning, stacklevel=4)
        return None


def _trim_heap():
    """Hand the build's freed heap back to the system (glibc keeps ~35 MiB of it otherwise:
    262k small byte strings leave the heap fragmented)."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform.startswith("linux") \
        else None
    if trim is not None:
        trim(0)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _ignore(path, why):
    warnings.warn(f"rebuilding vocabulary index {path}: {why}", VocabIndexWarning, stacklevel=5)
    return None

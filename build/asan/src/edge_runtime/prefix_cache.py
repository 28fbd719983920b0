"""KV snapshots of a prompt prefix (an agent's tool declarations) kept on disk across restarts.

One file per (model file, prefix ids, KV dtype, context length): its name is the hex of a
sha256 key over those, and its header repeats the key, so a file renamed, copied from another
model or left over from an older format is recognised as foreign. Layout (little-endian):

    magic 8s | version u32 | n_ids u32 | data_len u64 | key 32s | crc32 u32 | reserved u32
    ids int32[n_ids] | data (the native KV state, Session.snapshot().data)

The crc32 covers ids and data. A file that fails any check - or that the session then refuses
to restore - is ignored with a PrefixCacheWarning and rewritten; it is never trusted. Files are
written to a temporary name and renamed, so a crash mid-write leaves no partial snapshot.
The file is read back into memory rather than mapped: a mapping of a file that someone else
truncates would kill the process (SIGBUS) instead of raising an error.
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"ERKVPFX\0"
VERSION = 1
_HEADER = struct.Struct("<8sIIQ32sII")
SUFFIX = ".kvs"
# Model identity: the file size plus a hash of its first MiB (metadata, vocabulary start) and of
# pages sampled evenly through the weights, so fine-tunes of one shape differ; a full sha256 of
# a 290 MB file would cost seconds on a board at every start.
_HEAD_BYTES = 1 << 20
_SAMPLES, _SAMPLE_BYTES = 64, 4096


class PrefixCacheWarning(UserWarning):
    """A snapshot file was ignored (damaged, truncated, foreign) or could not be written."""


def model_identity(g) -> bytes:
    """A cheap fingerprint of a mapped GGUF file (size + sampled content)."""
    h = hashlib.sha256(struct.pack("<Q", g.size))
    view = g.view
    h.update(view[:_HEAD_BYTES])
    start, span = min(_HEAD_BYTES, g.size), max(g.size - _HEAD_BYTES, 0)
    for i in range(_SAMPLES + 1):
        at = start + span * i // _SAMPLES
        h.update(view[max(at - _SAMPLE_BYTES, start):at])
    return h.digest()


def _ids_bytes(ids) -> bytes:
    return np.asarray(ids, dtype="<i4").tobytes()


class PrefixCache:
    """Snapshot files for one model in `directory` (created on first save)."""

    def __init__(self, directory, model):
        self.directory = Path(directory)
        self._salt = hashlib.sha256(
            model_identity(model.gguf)
            + f"|kv={model.kv_dtype}|ctx={model.max_inference_len}|v{VERSION}".encode()).digest()

    def key(self, ids) -> bytes:
        return hashlib.sha256(self._salt + _ids_bytes(ids)).digest()

    def path_for(self, ids) -> Path:
        return self.directory / (self.key(ids).hex()[:32] + SUFFIX)

    def load(self, ids):
        """The KVSnapshot stored for exactly these prefix ids, or None (missing: silently;
        present but unusable: with a warning)."""
        path = self.path_for(ids)
        try:
            with open(path, "rb") as f:
                return self._read(f, path, ids)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            return self._ignore(path, f"cannot read it ({e.strerror})")

    def _read(self, f, path, ids):
        from .model import KVSnapshot
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return self._ignore(path, "truncated header")
        magic, version, n_ids, data_len, key, crc, _ = _HEADER.unpack(head)
        if magic != MAGIC:
            return self._ignore(path, "not a prefix snapshot")
        if version != VERSION:
            return self._ignore(path, f"format version {version}, expected {VERSION}")
        if key != self.key(ids):
            return self._ignore(path, "made for another model, prefix, KV dtype or context length")
        body = os.fstat(f.fileno()).st_size - _HEADER.size
        if body != 4 * n_ids + data_len:
            return self._ignore(path, f"{body} bytes of body, header says {4 * n_ids + data_len} "
                                      f"(truncated or padded)")
        stored_ids, data = f.read(4 * n_ids), f.read(data_len)   # data: the one copy kept
        if zlib.crc32(data, zlib.crc32(stored_ids)) != crc or len(data) != data_len:
            return self._ignore(path, "checksum mismatch (damaged)")
        if stored_ids != _ids_bytes(ids):
            return self._ignore(path, "holds another prefix")
        return KVSnapshot(ids, data)

    def save(self, snap):
        """Write snap atomically; returns the path, or None (with a warning) on failure."""
        path = self.path_for(snap.ids)
        ids = _ids_bytes(snap.ids)
        crc = zlib.crc32(snap.data, zlib.crc32(ids))
        head = _HEADER.pack(MAGIC, VERSION, len(snap.ids), len(snap.data), self.key(snap.ids),
                            crc, 0)
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
            with os.fdopen(fd, "wb") as f:
                for part in (head, ids, snap.data):   # no joined copy of a multi-MB state
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return path
        except OSError as e:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            warnings.warn(f"cannot write prefix snapshot {path}: {e}", PrefixCacheWarning,
                          stacklevel=3)
            return None

    @staticmethod
    def _ignore(path, why):
        warnings.warn(f"ignoring prefix snapshot {path}: {why}", PrefixCacheWarning, stacklevel=5)
        return None

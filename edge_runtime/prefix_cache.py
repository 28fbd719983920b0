"""KV snapshots of a prompt prefix (an agent's tool declarations) kept on disk across restarts.

One file per (model content, decoder, kernel, prefix ids, KV dtype, context length): its name
is the hex of a sha256 key over those, and its header repeats the key, so a file renamed,
copied from another model or written by another decoder build is recognised as foreign.
Layout (little-endian):

    magic 8s | version u32 | n_ids u32 | data_len u64 | key 32s | crc32 u32 | reserved u32
    ids int32[n_ids] | data (the native KV state, Session.snapshot().data)

The key cannot be fooled by a changed model: it holds the sha256 of the whole model file. That
costs seconds on a board, so it is computed once per version of the file and kept in a sidecar
(HASHES in the cache directory) under the file's (device, inode, size, mtime_ns, ctime_ns) -
rewriting the file in place or replacing it changes those (ctime cannot be set back). The
decoder is the package version plus a sha256 of the native extension that writes the state.

Reading trusts nothing. The path is opened non-blocking without following a symlink and must
be a regular file (a FIFO there is never waited on; a symlink, directory or device is refused);
the header's sizes must be those a session of this model produces for this prefix before
anything is read; the crc32 covers ids and data (checked in 1 MiB pieces, no copy of the
state). A file that fails any check - or that the session then refuses to restore - is ignored
with a PrefixCacheWarning and rewritten. Files are written to `.tmp-<pid>-<random>` and renamed,
so a crash mid-write leaves no partial snapshot; temporary files whose writer is gone (or that
are over an hour old) are deleted by the next save. Each toolset, model or setting writes a
snapshot of its own (9.6 MiB for the built-in tools' 713 tokens), so a directory keeps only the
MAX_SNAPSHOTS newest, within MAX_SNAPSHOT_BYTES: a save deletes the older ones (a process still
reading one keeps its descriptor; a deleted one is computed again when next needed).

A checked file stays where it is: load() returns a FileSnapshot that keeps the file open and
restores by reading it (pread) straight into the session's KV buffers, so the state lives in
the page cache - shared, evictable - not in the process's anonymous memory; after a request
only the ring slots it overwrote are read back (native/gemma3.c er_session_state_load). The
descriptor pins the checked version against a rename; a change in place (size, mtime or ctime
differ) makes the restore fail with ValueError. The file is read rather than mapped: a mapping
of a file that someone else truncates would kill the process (SIGBUS) instead of raising an
error.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import stat
import struct
import time
import warnings
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np

from . import _native
from .files import write_atomically
from .memory.plan import snapshot_bytes

MAGIC = b"ERKVPFX\0"
VERSION = 2
_HEADER = struct.Struct("<8sIIQ32sII")
SUFFIX = ".kvs"
HASHES = "model-sha256.json"      # the sidecar: file identity -> sha256 of its content
_MAX_HASHES = 16                  # entries kept (the newest)
MAX_SNAPSHOTS = 16                # snapshot files a directory keeps (the newest)...
MAX_SNAPSHOT_BYTES = 192 << 20    # ...and bytes: a server's disk (an SD card) stays bounded
_NAME = re.compile(r"[0-9a-f]{32}\.kvs\Z")
_TEMP = re.compile(r"\.tmp-(\d+)-[a-z0-9_]+(?:\.kvs|\.json)\Z")
STALE_SECONDS = 3600              # a temporary file this old is stale whoever wrote it
_CHUNK = 1 << 20
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link",
          stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


class PrefixCacheWarning(UserWarning):
    """A snapshot file was ignored (damaged, truncated, foreign) or could not be written."""


class _Refused(OSError):
    """The path holds something other than a regular file."""


def _open_regular(path):
    """(fd, stat) of the regular file at path, opened without following a symlink and
    without blocking; _Refused for anything else, FileNotFoundError when there is nothing."""
    kind = _KINDS.get(stat.S_IFMT(os.lstat(path).st_mode))   # before opening: a device's open
    if kind:                                                 # may itself do something
        raise _Refused(f"it is {kind}, not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:   # became a symlink since the lstat
            raise _Refused("it is a symbolic link, not a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _Refused(f"it is {_KINDS.get(stat.S_IFMT(st.st_mode), 'special')}, "
                       "not a regular file")
    return fd, st


@functools.lru_cache(maxsize=None)
def decoder_identity() -> bytes:
    """What wrote a KV state: the package version and the native extension's content."""
    try:
        version = metadata.version("edge_runtime")
    except metadata.PackageNotFoundError:
        version = "unknown"
    h = hashlib.sha256(version.encode() + b"|")
    with open(_native.__file__, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.digest()


_DIGESTS: dict = {}   # file identity -> sha256, for this process


def _identity(st) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def model_digest(g, directory) -> bytes:
    """sha256 of the whole model file behind the mapped GGUF g: from this process's memory,
    else from the sidecar in directory, else computed (and then kept in both)."""
    ident = _identity(g.stat)
    if ident in _DIGESTS:
        return _DIGESTS[ident]
    sidecar = Path(directory) / HASHES
    known = _read_hashes(sidecar)
    digest = known.get(ident)
    if digest is None:
        digest = known[ident] = _hash_model(g)
        _write_hashes(sidecar, dict(list(known.items())[-_MAX_HASHES:]))
    _DIGESTS[ident] = digest
    return digest


def _hash_model(g) -> bytes:
    """Read the file when the path still names the mapped one (no pages of the mapping are
    faulted in); else hash the mapping itself - it is what the decoder reads."""
    h = hashlib.sha256()
    try:
        fd, st = _open_regular(g.path)
    except OSError:
        st = None
    if st is not None:
        with os.fdopen(fd, "rb") as f:
            if _identity(st) == _identity(g.stat):
                for block in iter(lambda: f.read(_CHUNK), b""):
                    h.update(block)
                return h.digest()
    for at in range(0, g.size, _CHUNK):
        h.update(g.view[at:at + _CHUNK])
    return h.digest()


def _read_hashes(path) -> dict:
    try:
        fd, _ = _open_regular(path)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(1 << 16))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: bytes.fromhex(v) for k, v in data.items()
            if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)}


def _write_hashes(path, hashes):
    """Best effort: a sidecar that cannot be written only means hashing again next time."""
    try:
        write_atomically(path, [json.dumps({k: v.hex() for k, v in hashes.items()}).encode()],
                          ".json")
    except OSError:
        pass


def _writer_gone(pid) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # alive, someone else's
        return False
    except OverflowError:
        return True
    return False


def clean_stale_temps(directory):
    """Delete the temporary files of writers that were killed: only names this module makes,
    only regular files, and only when their writer process is gone or they are stale."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        m = _TEMP.match(name)
        if not m:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and (_writer_gone(int(m.group(1)))
                                             or now - st.st_mtime > STALE_SECONDS):
                os.unlink(path)
        except OSError:
            continue   # gone already, or not ours to delete


def prune_snapshots(directory):
    """Delete the oldest snapshot files (by mtime) until MAX_SNAPSHOTS are left and they hold
    at most MAX_SNAPSHOT_BYTES, the newest always kept: only names this module makes, only
    regular files. An agent that restored from a deleted file keeps reading it through its
    open descriptor (FileSnapshot), so a toolset in use stays fast."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not _NAME.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((st.st_mtime_ns, st.st_size, path))
    kept = 0
    for i, (_, size, path) in enumerate(sorted(found, reverse=True)):
        kept += size
        if i == 0 or (i < MAX_SNAPSHOTS and kept <= MAX_SNAPSHOT_BYTES):
            continue
        try:
            os.unlink(path)
        except OSError:
            continue   # gone already, or not ours to delete


class FileSnapshot:
    """A prefix's KV state left in its checked snapshot file (see the module docstring).
    Quacks as a KVSnapshot for Session.restore: ids, nbytes, _load_into."""

    __slots__ = ("ids", "path", "nbytes", "_fd", "_offset", "_ident")

    def __init__(self, ids, path, fd, offset, nbytes):
        self.ids, self.path, self.nbytes = tuple(ids), path, nbytes
        self._fd, self._offset = os.dup(fd), offset
        self._ident = _identity(os.fstat(self._fd))

    def _load_into(self, handle, continued: bool) -> int:
        if _identity(os.fstat(self._fd)) != self._ident:
            raise ValueError(f"prefix snapshot {self.path} was changed in place since it was "
                             "checked")
        return _native.session_restore_fd(handle, self._fd, self._offset, self.nbytes,
                                          continued)

    def __del__(self):
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)


def _crc32_of(f, n, crc) -> int:
    """crc32 of the next n bytes of f (fewer if it ends early: the caller checks the size)."""
    buf = bytearray(min(n, _CHUNK))
    view = memoryview(buf)
    while n > 0:
        got = f.readinto(view[:min(n, _CHUNK)])
        if not got:
            break
        crc, n = zlib.crc32(view[:got], crc), n - got
    return crc


def _ids_bytes(ids) -> bytes:
    return np.asarray(ids, dtype="<i4").tobytes()


class PrefixCache:
    """Snapshot files for one model in `directory` (created on first save)."""

    def __init__(self, directory, model):
        self.directory = Path(directory)
        self.model = model
        self._salt = hashlib.sha256(
            model_digest(model.gguf, self.directory) + decoder_identity()
            + f"|kernel={model.kernel}|kv={model.kv_dtype}|ctx={model.max_inference_len}"
              f"|v{VERSION}".encode()).digest()

    def key(self, ids) -> bytes:
        return hashlib.sha256(self._salt + _ids_bytes(ids)).digest()

    def path_for(self, ids) -> Path:
        return self.directory / (self.key(ids).hex()[:32] + SUFFIX)

    def expected_bytes(self, n_ids) -> int:
        """The size of a session's state after n_ids tokens (what a true snapshot holds)."""
        m = self.model
        return snapshot_bytes(m.plan.ring_lens, m.config, n_ids, m.kv_dtype)

    def load(self, ids):
        """The FileSnapshot stored for exactly these prefix ids, or None (missing: silently;
        present but unusable: with a warning)."""
        path = self.path_for(ids)
        try:
            fd, st = _open_regular(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except _Refused as e:
            return self._ignore(path, str(e))
        except OSError as e:
            return self._ignore(path, f"cannot read it ({e.strerror})")
        with os.fdopen(fd, "rb") as f:
            try:
                return self._read(f, st.st_size, path, ids)
            except OSError as e:
                return self._ignore(path, f"cannot read it ({e.strerror})")

    def _read(self, f, size, path, ids):
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return self._ignore(path, "truncated header")
        magic, version, n_ids, data_len, key, crc, _ = _HEADER.unpack(head)
        if magic != MAGIC:
            return self._ignore(path, "not a prefix snapshot")
        if version != VERSION:
            return self._ignore(path, f"format version {version}, expected {VERSION}")
        if key != self.key(ids):
            return self._ignore(path, "made for another model, decoder, prefix, KV dtype or "
                                      "context length")
        # sizes before reading: a crafted header must not make us allocate what it says
        want = self.expected_bytes(len(ids))
        if n_ids != len(ids) or data_len != want:
            return self._ignore(path, f"header says {n_ids} ids and {data_len} bytes of state, "
                                      f"a snapshot of this prefix has {len(ids)} and {want}")
        body = size - _HEADER.size
        if body != 4 * n_ids + data_len:
            return self._ignore(path, f"{body} bytes of body, header says {4 * n_ids + data_len} "
                                      f"(truncated or padded)")
        stored_ids = f.read(4 * n_ids)
        if _crc32_of(f, data_len, zlib.crc32(stored_ids)) != crc:
            return self._ignore(path, "checksum mismatch (damaged)")
        if stored_ids != _ids_bytes(ids):
            return self._ignore(path, "holds another prefix")
        return FileSnapshot(ids, path, f.fileno(), _HEADER.size + 4 * n_ids, data_len)

    def save(self, snap):
        """Write snap atomically; returns the path, or None (with a warning) on failure.
        Stale temporary files of killed writers are deleted first."""
        path = self.path_for(snap.ids)
        ids = _ids_bytes(snap.ids)
        crc = zlib.crc32(snap.data, zlib.crc32(ids))
        head = _HEADER.pack(MAGIC, VERSION, len(snap.ids), len(snap.data), self.key(snap.ids),
                            crc, 0)
        return self._write(path, (head, ids, snap.data))

    def save_session(self, session):
        """Write session's state as the snapshot of its history (the prefix ids) straight
        from its KV buffers, with no copy of the state in memory; the checksum is computed by
        reading the written bytes back. Returns the path, or None (with a warning)."""
        ids = list(session.history)
        raw = _ids_bytes(ids)
        path = self.path_for(ids)

        def fill(f):
            f.write(bytes(_HEADER.size) + raw)
            f.flush()
            n = session._write_state(f.fileno(), _HEADER.size + len(raw))
            f.seek(_HEADER.size + len(raw))
            crc = _crc32_of(f, n, zlib.crc32(raw))
            f.seek(0)
            f.write(_HEADER.pack(MAGIC, VERSION, len(ids), n, self.key(ids), crc, 0))
        return self._write(path, fill)

    def _write(self, path, parts):
        """Stale temporary files first, then the snapshot, then the oldest snapshots beyond
        MAX_SNAPSHOTS; the path, or None (with a warning)."""
        clean_stale_temps(self.directory)
        try:
            write_atomically(path, parts, SUFFIX)
        except OSError as e:
            warnings.warn(f"cannot write prefix snapshot {path}: {e}", PrefixCacheWarning,
                          stacklevel=4)
            return None
        prune_snapshots(self.directory)
        return path

    @staticmethod
    def _ignore(path, why):
        warnings.warn(f"ignoring prefix snapshot {path}: {why}", PrefixCacheWarning, stacklevel=5)
        return None

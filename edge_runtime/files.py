"""Files written whole or not at all: a reader (another process, the next run after a crash)
never sees half a cache entry, model or adapter."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def replacing(path, suffix=None):
    """Yield a temporary path beside `path` (same directory, so the rename is atomic), named
    `.tmp-<pid>-<random><suffix>`, for the caller to create and write; it replaces `path` when
    the block ends without an exception and is removed otherwise. (Created by the caller, the
    file gets the umask's permissions, not mkstemp's 0600.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    tmp = str(path.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomically(path, parts, suffix=None):
    """Write `parts` (byte strings, in order: no joined copy of a multi-MB state) or call
    `parts(f)` with the file open for writing and reading, synced before the rename."""
    with replacing(path, suffix) as tmp, open(tmp, "x+b") as f:
        if callable(parts):
            parts(f)
        else:
            for part in parts:
                f.write(part)
        f.flush()
        os.fsync(f.fileno())

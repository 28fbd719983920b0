"""The adapter file: a LoRA adapter for a Gemma 3 model, and how it is merged (numpy only).

An adapter file is a zip archive (the format numpy's .npz uses) of:
  manifest.json   what it is for and how it was made: base model shape and source hash, rank,
                  alpha, call format, training record, each tensor's dtype, shape, sha256, and
                  the call bias the taught model decides with (set_call_bias; optional)
  NAME.npy        blk.{i}.{proj}.lora_a [r, in] and .lora_b [out, r] (float16),
                  token_embd.rows [R] (int64) and token_embd.row_delta [R, n_embd] (float32)

Merging adds scale * B @ A to each projection's weight (scale = alpha / rank) and row_delta to
the listed rows of the tied embedding; edge_runtime.convert applies it while it writes the Q8_0
file. Reading checks the zip's CRCs, the manifest and every tensor's hash and shape, so a damaged
or foreign file is refused with a clear AdapterError, never half applied.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib

import numpy as np

from .errors import AdapterError
from .files import replacing

__all__ = ["Adapter", "AdapterError", "FORMAT", "read", "set_call_bias", "write"]

FORMAT = "edge_runtime.adapter"
VERSION = 1
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
MAX_MANIFEST = 1 << 20


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


class Adapter:
    def __init__(self, manifest: dict, tensors: dict):
        self.manifest, self.tensors = manifest, tensors
        self.rank = int(manifest["rank"])
        self.scale = float(manifest["alpha"]) / self.rank
        self.call_format = manifest.get("call_format")
        self.call_bias = manifest.get("call_bias")
        self.sha256 = manifest.get("sha256", "")

    @property
    def targets(self) -> set:
        """Names of the GGUF tensors this adapter changes."""
        names = {k.rsplit(".", 1)[0] + ".weight" for k in self.tensors if k.endswith(".lora_a")}
        return names | ({"token_embd.weight"} if "token_embd.rows" in self.tensors else set())

    def apply(self, name: str, w: np.ndarray, row0: int = 0) -> np.ndarray:
        """Rows row0.. of weight `name` (float32, numpy order [rows, cols]) with the adapter
        merged in, as a new array: + scale * B[rows] @ A for a projection, + the row offsets
        for the embedding."""
        if name == "token_embd.weight":
            w = w.copy()
            rows = self.tensors["token_embd.rows"]
            hit = (rows >= row0) & (rows < row0 + len(w))
            w[rows[hit] - row0] += self.tensors["token_embd.row_delta"][hit]
            return w
        stem = name[:-len(".weight")]
        a = self.tensors[stem + ".lora_a"].astype(np.float32)
        b = self.tensors[stem + ".lora_b"][row0:row0 + len(w)].astype(np.float32)
        return w + (b @ a) * np.float32(self.scale)

    def check_model(self, config) -> None:
        """Refuse a model whose shape is not the one the adapter was trained on."""
        base = self.manifest["base"]
        mine = {"n_layer": config.n_layer, "n_embd": config.n_embd, "n_vocab": config.n_vocab,
                "n_head": config.n_head, "n_head_kv": config.n_head_kv,
                "head_dim": config.head_dim_k, "n_ff": config.n_ff}
        diff = [f"{k} {mine[k]} (adapter: {base.get(k)})" for k in mine if base.get(k) != mine[k]]
        if diff:
            raise AdapterError("the adapter is for another base model: " + ", ".join(diff))


def _expected_shapes(base: dict, rank: int, n_rows: int) -> dict:
    c, q, kv, ff = base["n_embd"], base["n_head"] * base["head_dim"], \
        base["n_head_kv"] * base["head_dim"], base["n_ff"]
    io_dims = {"attn_q": (c, q), "attn_k": (c, kv), "attn_v": (c, kv), "attn_output": (q, c),
               "ffn_gate": (c, ff), "ffn_up": (c, ff), "ffn_down": (ff, c)}
    out = {"token_embd.rows": (n_rows,), "token_embd.row_delta": (n_rows, c)}
    for il in range(base["n_layer"]):
        for p, (i, o) in io_dims.items():
            out[f"blk.{il}.{p}.lora_a"] = (rank, i)
            out[f"blk.{il}.{p}.lora_b"] = (o, rank)
    return out


def _identity(manifest) -> str:
    """The hash that names an adapter in cache keys: of its tensors, and of its call bias, which
    a merged model carries too."""
    text = json.dumps(manifest["tensors"], sort_keys=True)
    if manifest.get("call_bias") is not None:
        text += f"\ncall_bias={float(manifest['call_bias'])!r}"
    return hashlib.sha256(text.encode()).hexdigest()


def write(path, tensors: dict, manifest: dict) -> str:
    """Write an adapter file atomically; returns its sha256 (also stored in the manifest's
    'sha256' field: _identity)."""
    stored = {}
    for k, v in tensors.items():
        if k.endswith((".lora_a", ".lora_b")):
            v = np.asarray(v, np.float16)
        stored[k] = np.ascontiguousarray(v)
    manifest = dict(manifest, format=FORMAT, version=VERSION,
                    tensors={k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _sha(v)}
                             for k, v in sorted(stored.items())})
    if manifest.get("call_bias") is not None and not np.isfinite(manifest["call_bias"]):
        raise AdapterError(f"call bias must be a finite number, got {manifest['call_bias']!r}")
    manifest["sha256"] = _identity(manifest)
    with replacing(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for k, v in sorted(stored.items()):
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=False)
            z.writestr(k + ".npy", buf.getvalue())
    return manifest["sha256"]


def set_call_bias(path, bias: float, chosen_on: str) -> dict:
    """Record in the adapter file at path the call bias its model decides with (added to the
    call token's logit where tool_choice "auto" decides: edge_runtime.agent) and the data it was
    chosen on; returns the new manifest. A model merged with it carries the bias (convert.py)."""
    a = read(path)
    manifest = dict(a.manifest, call_bias=float(bias), call_bias_chosen_on=str(chosen_on))
    write(path, a.tensors, manifest)
    return read(path).manifest


def read(path) -> Adapter:
    """Read and verify an adapter file (AdapterError if it is not one, or damaged)."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("manifest.json")
            if info.file_size > MAX_MANIFEST:
                raise AdapterError(f"{path}: manifest too large")
            manifest = json.loads(z.read(info))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise AdapterError(f"{path}: not an edge_runtime adapter file")
            if manifest.get("version") != VERSION:
                raise AdapterError(f"{path}: adapter format version {manifest.get('version')} "
                                   f"is not supported (this runtime reads {VERSION})")
            base, rank = manifest["base"], int(manifest["rank"])
            listed = manifest["tensors"]
            n_rows = listed.get("token_embd.rows", {}).get("shape", [0])[0]
            want = _expected_shapes(base, rank, n_rows)
            if set(listed) != set(want):
                raise AdapterError(f"{path}: the tensors do not match the manifest's model shape")
            tensors = {}
            for k, meta in listed.items():
                with z.open(k + ".npy") as f:
                    a = np.load(io.BytesIO(f.read()), allow_pickle=False)
                if tuple(a.shape) != want[k] or str(a.dtype) != meta["dtype"] \
                        or _sha(a) != meta["sha256"]:
                    raise AdapterError(f"{path}: tensor {k} is damaged or of the wrong shape")
                tensors[k] = a
    except AdapterError:
        raise
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, OSError,
            EOFError) as e:
        raise AdapterError(f"{path}: not a readable adapter file ({type(e).__name__}: {e})") \
            from None
    rows = tensors["token_embd.rows"]
    if rows.dtype != np.int64 or (len(rows) and (rows.min() < 0 or rows.max() >= base["n_vocab"])):
        raise AdapterError(f"{path}: embedding rows outside the vocabulary")
    if not all(np.isfinite(v).all() for k, v in tensors.items() if k != "token_embd.rows"):
        raise AdapterError(f"{path}: the adapter holds non-finite values")
    return Adapter(manifest, tensors)

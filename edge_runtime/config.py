"""Gemma 3 hyperparameters read from a GGUF's `gemma3.*` metadata.

Layer kinds follow llama.cpp: layer il slides iff il % 6 < 5 (so in 18 layers, 5, 11 and 17
are global). Local layers rotate with base 10000, global ones with the file's freq_base.
Queries are scaled by 1/sqrt(query_pre_attn_scalar): head_dim, except for the 27B, whose
checkpoint uses n_embd / n_head; GGUF files carry no key for it, so llama.cpp recognises the
27B by its 62 layers, and so does this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .gguf import GGUFError

SUPPORTED_ARCHITECTURES = ("gemma3",)
SWA_PATTERN = 6
LOCAL_ROPE_BASE = 10000.0
LAYERS_27B = 62


class UnsupportedModelError(GGUFError):
    """The file is a valid GGUF but not a model this runtime can run."""


@dataclass(frozen=True)
class Config:
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    eps: float
    context_length: int
    sliding_window: int
    rope_base_global: float
    rope_base_local: float = LOCAL_ROPE_BASE
    rope_scale_global: float = 1.0
    final_logit_softcap: float = 0.0
    swa_layers: tuple = field(default=())
    query_pre_attn_scalar: float = 0.0   # queries are scaled by its 1/sqrt; 0 means head_dim_k

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim_k

    @property
    def kv_dim(self) -> int:
        return self.n_head_kv * self.head_dim_k

    def is_swa(self, il: int) -> bool:
        return il in self.swa_layers


_INT_TYPES = ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64")
_REQUIRED = object()
# Far above any Gemma 3 (27B: n_embd 5376, n_ff 21504, 62 layers), far below what would overflow
# the C core's int sizes: a crafted header is refused here, not by a failed giant allocation.
MAX_DIM, MAX_LAYERS, MAX_CONTEXT, MAX_VOCAB = 1 << 16, 1 << 10, 1 << 24, 1 << 24


def _num(g, key, default=_REQUIRED, kind=int, lo=None, hi=None):
    """A scalar metadata value of the right kind, within [lo, hi]; a clear error otherwise."""
    if key in g.metadata:
        vtype = g.meta_type(key)
        if vtype not in (_INT_TYPES if kind is int else _INT_TYPES + ("f32", "f64")):
            raise UnsupportedModelError(f"metadata {key!r} is {vtype}, expected "
                                        f"{'an integer' if kind is int else 'a number'}")
        v = kind(g.metadata[key])
    elif default is _REQUIRED:
        raise UnsupportedModelError(f"missing required metadata key {key!r}")
    else:
        v = default
    if v != v or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise UnsupportedModelError(f"metadata {key!r} = {v} is outside {lo}..{hi}")
    return v


def _typed(g, key, vtype, default=None):
    """A metadata value that must have GGUF type vtype ("string", "array[string]"...)."""
    if key not in g.metadata:
        return default
    if g.meta_type(key) != vtype:
        raise UnsupportedModelError(f"metadata {key!r} is {g.meta_type(key)}, expected {vtype}")
    return g.metadata[key]


def from_gguf(g) -> Config:
    arch = _typed(g, "general.architecture", "string")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    p = arch + "."
    dim = dict(lo=1, hi=MAX_DIM)
    n_layer = _num(g, p + "block_count", lo=1, hi=MAX_LAYERS)
    n_embd = _num(g, p + "embedding_length", **dim)
    n_head = _num(g, p + "attention.head_count", **dim)
    n_head_kv = _num(g, p + "attention.head_count_kv", n_head, **dim)
    head_k = _num(g, p + "attention.key_length", n_embd // n_head, **dim)
    head_v = _num(g, p + "attention.value_length", head_k, **dim)
    emb = g.tensors.get("token_embd.weight")
    if emb is None:
        raise UnsupportedModelError("missing required tensor 'token_embd.weight'")
    n_vocab = int(emb.shape[1]) if len(emb.shape) == 2 else 0
    if n_vocab > MAX_VOCAB:
        raise UnsupportedModelError(f"token_embd.weight has {n_vocab} rows, more than {MAX_VOCAB}")
    tokens = _typed(g, "tokenizer.ggml.tokens", "array[string]")
    if tokens is not None and len(tokens) > n_vocab:
        raise UnsupportedModelError(
            f"vocabulary has {len(tokens)} tokens but token_embd.weight has {n_vocab} rows")
    if n_head % n_head_kv:
        raise UnsupportedModelError(
            f"bad attention shape: {n_layer} layers, {n_head} heads, {n_head_kv} kv heads")
    if head_k != head_v:
        raise UnsupportedModelError(f"key_length {head_k} != value_length {head_v} is not supported")
    if head_k % 2:
        raise UnsupportedModelError(f"key_length {head_k} must be even for RoPE")
    scaling = _typed(g, p + "rope.scaling.type", "string", "none")
    factor = _num(g, p + "rope.scaling.factor", 1.0, float, lo=0.0, hi=1e6) or 1.0
    if scaling not in ("none", "linear"):
        raise UnsupportedModelError(f"rope scaling {scaling!r} is not supported (none, linear)")
    window = _num(g, p + "attention.sliding_window", 0, lo=0, hi=MAX_CONTEXT)
    swa = tuple(i for i in range(n_layer) if window > 0 and i % SWA_PATTERN < SWA_PATTERN - 1)
    return Config(
        n_vocab=n_vocab, n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv,
        head_dim_k=head_k, head_dim_v=head_v,
        n_ff=_num(g, p + "feed_forward_length", **dim),
        eps=_num(g, p + "attention.layer_norm_rms_epsilon", 1e-6, float, lo=0.0, hi=1.0),
        context_length=_num(g, p + "context_length", lo=1, hi=MAX_CONTEXT),
        sliding_window=window,
        rope_base_global=_num(g, p + "rope.freq_base", 1e6, float, lo=1.0, hi=1e12),
        rope_scale_global=1.0 / factor if scaling == "linear" else 1.0,
        final_logit_softcap=_num(g, p + "final_logit_softcapping", 0.0, float, lo=0.0, hi=1e6),
        swa_layers=swa,
        query_pre_attn_scalar=float(n_embd // n_head if n_layer == LAYERS_27B else head_k),
    )

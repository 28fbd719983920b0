"""Gemma 3 hyperparameters read from a GGUF's `gemma3.*` metadata.

Layer kinds follow llama.cpp: layer il slides iff il % 6 < 5 (so in 18 layers, 5, 11 and 17
are global). Local layers rotate with base 10000, global ones with the file's freq_base.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .gguf import GGUFError

SUPPORTED_ARCHITECTURES = ("gemma3",)
SWA_PATTERN = 6
LOCAL_ROPE_BASE = 10000.0


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

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim_k

    @property
    def kv_dim(self) -> int:
        return self.n_head_kv * self.head_dim_k

    @property
    def global_layers(self) -> tuple:
        return tuple(i for i in range(self.n_layer) if i not in self.swa_layers)

    def is_swa(self, il: int) -> bool:
        return il in self.swa_layers


def _require(meta, key):
    if key not in meta:
        raise UnsupportedModelError(f"missing required metadata key {key!r}")
    return meta[key]


def from_gguf(g) -> Config:
    meta = g.metadata
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
    p = arch + "."
    n_layer = int(_require(meta, p + "block_count"))
    n_embd = int(_require(meta, p + "embedding_length"))
    n_head = int(_require(meta, p + "attention.head_count"))
    n_head_kv = int(meta.get(p + "attention.head_count_kv", n_head))
    head_k = int(meta.get(p + "attention.key_length", n_embd // n_head))
    head_v = int(meta.get(p + "attention.value_length", head_k))
    emb = g.tensors.get("token_embd.weight")
    if emb is None:
        raise UnsupportedModelError("missing required tensor 'token_embd.weight'")
    n_vocab = int(emb.shape[1]) if len(emb.shape) == 2 else 0
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is not None and len(tokens) > n_vocab:
        raise UnsupportedModelError(
            f"vocabulary has {len(tokens)} tokens but token_embd.weight has {n_vocab} rows")
    if n_layer <= 0 or n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv:
        raise UnsupportedModelError(
            f"bad attention shape: {n_layer} layers, {n_head} heads, {n_head_kv} kv heads")
    if head_k != head_v:
        raise UnsupportedModelError(f"key_length {head_k} != value_length {head_v} is not supported")
    if head_k % 2:
        raise UnsupportedModelError(f"key_length {head_k} must be even for RoPE")
    scaling = meta.get(p + "rope.scaling.type", "none")
    factor = float(meta.get(p + "rope.scaling.factor", 1.0) or 1.0)
    if scaling not in ("none", "linear"):
        raise UnsupportedModelError(f"rope scaling {scaling!r} is not supported (none, linear)")
    window = int(meta.get(p + "attention.sliding_window", 0))
    swa = tuple(i for i in range(n_layer) if window > 0 and i % SWA_PATTERN < SWA_PATTERN - 1)
    return Config(
        n_vocab=n_vocab, n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv,
        head_dim_k=head_k, head_dim_v=head_v,
        n_ff=int(_require(meta, p + "feed_forward_length")),
        eps=float(meta.get(p + "attention.layer_norm_rms_epsilon", 1e-6)),
        context_length=int(_require(meta, p + "context_length")),
        sliding_window=window,
        rope_base_global=float(meta.get(p + "rope.freq_base", 1e6)),
        rope_scale_global=1.0 / factor if scaling == "linear" else 1.0,
        final_logit_softcap=float(meta.get(p + "final_logit_softcapping", 0.0) or 0.0),
        swa_layers=swa,
    )

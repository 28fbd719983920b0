"""Gemma 3 in torch, for training an adapter on the CPU: the forward pass with LoRA on the seven
projections of every layer and trainable rows of the (tied) embedding.

Shapes: T positions, C = n_embd, H query heads, K kv heads, D head_dim, V vocabulary, r rank.

The pass follows the same definition as tests/reference_f64.py (which the tests hold it to on
the real weights): the GGUF's norm weights already carry Gemma's +1, the embedding is scaled by
sqrt(C) and doubles as the output matrix, five of every six layers attend in a sliding window
with RoPE base 10,000, queries are scaled by query_pre_attn_scalar^-1/2, GELU is the tanh form.

Only the adapter is trainable; the base weights are frozen float32 buffers dequantized from the
GGUF (any type gguf.quants reads: the default model's Q4_K_M source, Q8_0, F16, ...).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import Config, from_gguf
from ..gguf import open_gguf

# The projections that carry a LoRA pair, by their GGUF names within a block.
# scored positions per piece of the loss when recomputing (Gemma3.loss)
LOSS_ROWS = 32
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def read_weights(path) -> tuple[Config, dict]:
    """(config, {tensor name: float32 array in numpy order [rows, cols]}) of a Gemma 3 GGUF."""
    from gguf import GGMLQuantizationType, quants

    g = open_gguf(path)
    try:
        cfg = from_gguf(g)
        out = {}
        for name, t in g.tensors.items():
            raw = g.view[t.offset:t.offset + t.nbytes]
            a = quants.dequantize(raw, GGMLQuantizationType[t.type]).astype(np.float32, copy=False)
            a = a.reshape([int(d) for d in reversed(t.shape)])
            out[name] = a if a.flags.writeable and a.flags.c_contiguous else np.array(a)
        return cfg, out
    finally:
        g.close()


class LoRALinear(nn.Module):
    """y = x W^T + (x A^T) B^T * alpha / r; W frozen, A and B trained (B starts at zero, so the
    adapter starts as the identity)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float, gen: torch.Generator):
        super().__init__()
        out_f, in_f = weight.shape
        self.register_buffer("weight", weight, persistent=False)
        self.scale = alpha / rank
        self.A = nn.Parameter(torch.randn(rank, in_f, generator=gen) / math.sqrt(in_f))
        self.B = nn.Parameter(torch.zeros(out_f, rank))

    def forward(self, x):
        return F.linear(x, self.weight) + F.linear(F.linear(x, self.A), self.B) * self.scale


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, base, scale, dim):
    """NEOX rotation of halves; x [T, heads, D]."""
    half = dim // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / dim)
    ang = (pos.to(torch.float64) * scale)[:, None] * inv[None, :]
    c, s = ang.cos().to(x.dtype)[:, None, :], ang.sin().to(x.dtype)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


class Gemma3(nn.Module):
    def __init__(self, cfg: Config, weights: dict, rank: int = 8, alpha: float = 16.0,
                 rows=(), seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        t = lambda name: torch.from_numpy(weights[name])  # noqa: E731 - shares the array's memory
        self.register_buffer("embd", t("token_embd.weight"), persistent=False)     # [V, C]
        self.register_buffer("out_norm", t("output_norm.weight"), persistent=False)
        self.norms = [{k: t(f"blk.{i}.{k}.weight") for k in
                       ("attn_norm", "attn_q_norm", "attn_k_norm", "post_attention_norm",
                        "ffn_norm", "post_ffw_norm")} for i in range(cfg.n_layer)]
        self.lora = nn.ModuleList(
            nn.ModuleDict({p: LoRALinear(t(f"blk.{i}.{p}.weight"), rank, alpha, gen)
                           for p in PROJECTIONS}) for i in range(cfg.n_layer))
        # Embedding rows the adapter owns (the call format's control tokens): trained as
        # offsets from the base rows, used both as inputs and as output logits (tied).
        self.rows = torch.tensor(sorted(rows), dtype=torch.long)
        self.row_delta = nn.Parameter(torch.zeros(len(self.rows), cfg.n_embd))
        self.rank, self.alpha = rank, alpha

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embd[ids]
        if len(self.rows):
            hit = (ids[:, None] == self.rows[None, :]).to(x.dtype)     # [T, R]
            x = x + hit @ self.row_delta
        return x * math.sqrt(self.cfg.n_embd)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output logits [T, V] of final hidden states h [T, C] (normed here)."""
        h = rms_norm(h, self.out_norm, self.cfg.eps)
        out = h @ self.embd.T
        if len(self.rows):
            out = out.index_add(1, self.rows, h @ self.row_delta.T)
        cap = self.cfg.final_logit_softcap
        return torch.tanh(out / cap) * cap if cap else out

    def _attention(self, q, k, v, keep):
        c = self.cfg
        T = q.shape[0]
        group = c.n_head // c.n_head_kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scale = (c.query_pre_attn_scalar or c.head_dim_k) ** -0.5
        o = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                           v.transpose(0, 1), attn_mask=keep, scale=scale)
        return o.transpose(0, 1).reshape(T, c.n_head * c.head_dim_v)

    def masks(self, pos: torch.Tensor, branch: torch.Tensor) -> tuple:
        """(global, local) attention masks [T, T] of a packed sequence: a token sees the
        tokens before it in the shared stem (branch 0) and in its own branch, the local layers
        only those fewer than sliding_window positions back."""
        idx = torch.arange(len(pos))
        keep = (idx[None, :] <= idx[:, None]) & \
            ((branch[None, :] == 0) | (branch[None, :] == branch[:, None]))
        return keep, keep & (pos[:, None] - pos[None, :] < self.cfg.sliding_window)

    def block(self, il: int, x: torch.Tensor, pos: torch.Tensor, keep: torch.Tensor
              ) -> torch.Tensor:
        """Layer il on hidden states x [T, C] at positions pos, attending where keep [T, T]."""
        c = self.cfg
        T = x.shape[0]
        n, p = self.norms[il], self.lora[il]
        h = rms_norm(x, n["attn_norm"], c.eps)
        q = rms_norm(p["attn_q"](h).view(T, c.n_head, c.head_dim_k), n["attn_q_norm"], c.eps)
        k = rms_norm(p["attn_k"](h).view(T, c.n_head_kv, c.head_dim_k), n["attn_k_norm"], c.eps)
        v = p["attn_v"](h).view(T, c.n_head_kv, c.head_dim_v)
        base, scale = (c.rope_base_local, 1.0) if c.is_swa(il) else \
            (c.rope_base_global, c.rope_scale_global)
        q = rope(q, pos, base, scale, c.head_dim_k)
        k = rope(k, pos, base, scale, c.head_dim_k)
        a = p["attn_output"](self._attention(q, k, v, keep))
        x = x + rms_norm(a, n["post_attention_norm"], c.eps)
        h = rms_norm(x, n["ffn_norm"], c.eps)
        f = p["ffn_down"](F.gelu(p["ffn_gate"](h), approximate="tanh") * p["ffn_up"](h))
        return x + rms_norm(f, n["post_ffw_norm"], c.eps)

    def hidden(self, ids: torch.Tensor, pos: torch.Tensor | None = None,
               branch: torch.Tensor | None = None, recompute: bool = False) -> torch.Tensor:
        """Final hidden states [T, C] (before the output norm) of one sequence ids [T], or of
        a packed one: a stem shared by several branches (pack()), pos the positions, branch
        0 for the stem and 1, 2, ... for the branches. recompute: keep only each layer's input
        for the backward pass and run the layer again there (torch.utils.checkpoint): about a
        third more time for a fraction of the memory, as a layer's activations are ~20x its
        input."""
        T = ids.shape[0]
        if pos is None:
            pos, branch = torch.arange(T), torch.zeros(T, dtype=torch.long)
        keep_global, keep_local = self.masks(pos, branch)
        x = self.embed(ids)
        for il in range(self.cfg.n_layer):
            keep = keep_local if self.cfg.is_swa(il) else keep_global
            if recompute and torch.is_grad_enabled():
                x = checkpoint(self.block, il, x, pos, keep, use_reentrant=False)
            else:
                x = self.block(il, x, pos, keep)
        return x

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits at every position [T, V]."""
        return self.logits(self.hidden(ids))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, bf16: bool = False,
             pos: torch.Tensor | None = None, branch: torch.Tensor | None = None,
             recompute: bool = False, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Summed cross-entropy over the positions whose target is >= 0 (the model's reply):
        only those rows of the output matrix product are computed. targets[i] is the token that
        should follow ids[i] (pack() gives ids, targets, pos, branch). bf16: the layers run
        under bfloat16 autocast (1.4x on a CPU with bf16 dot products); the output matrix
        product stays float32, as autocast would recast the whole embedding at every step.
        recompute: see hidden(). weights: each position's factor on its loss (1 if None)."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = self.hidden(ids, pos, branch, recompute)
        sel = targets >= 0
        h, tgt = h[sel].float(), targets[sel]
        w = torch.ones(len(tgt)) if weights is None else weights[sel]
        if not recompute:
            return self._scored(h, tgt, w)
        # a scored position's logits, their softmax and its gradient are 3 x 1 MB (V floats):
        # a few rows at a time, recomputed in the backward pass
        return sum(checkpoint(self._scored, h[i:i + LOSS_ROWS], tgt[i:i + LOSS_ROWS],
                              w[i:i + LOSS_ROWS], use_reentrant=False)
                   for i in range(0, len(tgt), LOSS_ROWS))

    def _scored(self, h, tgt, w):
        return (F.cross_entropy(self.logits(h), tgt, reduction="none") * w).sum()

    # ---- the adapter's tensors -------------------------------------------------------------

    def adapter_tensors(self) -> dict:
        """{name: float32 array}: lora A/B per projection and the embedding rows' offsets."""
        out = {}
        for il, layer in enumerate(self.lora):
            for p, m in layer.items():
                out[f"blk.{il}.{p}.lora_a"] = m.A.detach().numpy().copy()
                out[f"blk.{il}.{p}.lora_b"] = m.B.detach().numpy().copy()
        out["token_embd.rows"] = self.rows.numpy().astype(np.int64)
        out["token_embd.row_delta"] = self.row_delta.detach().numpy().copy()
        return out

    def load_adapter_tensors(self, tensors: dict):
        with torch.no_grad():
            for il, layer in enumerate(self.lora):
                for p, m in layer.items():
                    m.A.copy_(torch.from_numpy(np.asarray(tensors[f"blk.{il}.{p}.lora_a"],
                                                          np.float32)))
                    m.B.copy_(torch.from_numpy(np.asarray(tensors[f"blk.{il}.{p}.lora_b"],
                                                          np.float32)))
            if not np.array_equal(tensors["token_embd.rows"], self.rows.numpy()):
                raise ValueError("the adapter trains other embedding rows than this model")
            self.row_delta.copy_(torch.from_numpy(
                np.asarray(tensors["token_embd.row_delta"], np.float32)))


def load(path, **kw) -> Gemma3:
    cfg, w = read_weights(path)
    return Gemma3(cfg, w, **kw)

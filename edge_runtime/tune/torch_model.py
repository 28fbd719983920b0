"""Gemma 3 in torch, for training an adapter on the CPU: the forward pass with LoRA on the seven
projections of every layer and trainable rows of the (tied) embedding.

Shapes: T positions, C = n_embd, H query heads, K kv heads, D head_dim, V vocabulary, r rank.

The pass follows the same definition as tests/reference_f64.py (which the tests hold it to on
the real weights): the GGUF's norm weights already carry Gemma's +1, the embedding is scaled by
sqrt(C) and doubles as the output matrix, five of every six layers attend in a sliding window
with RoPE base 10,000, queries are scaled by query_pre_attn_scalar^-1/2, GELU is the tanh form.

Only the adapter is trainable; the base weights are frozen buffers dequantized from the GGUF
(any type gguf.quants reads: the default model's Q4_K_M source, Q8_0, F16, ...), float32, or
bfloat16 for training (bf16=True): half the memory, and the layers' and the output's matrix
products in bfloat16 dot products (2-4x float32's on a CPU that has them), summed in float32.
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

# scored positions per piece of the loss (_ScoredLoss): a piece's logits are V floats a row
LOSS_ROWS = 64
# queries per piece of attention (Gemma3.masks)
ATTN_ROWS = 128
# The projections that carry a LoRA pair, by their GGUF names within a block.
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


def _pieces(keep: torch.Tensor) -> list:
    """[(first query, the keys any of its ATTN_ROWS queries sees, their mask)] of a mask [T, T]."""
    out = []
    for first in range(0, len(keep), ATTN_ROWS):
        rows = keep[first:first + ATTN_ROWS]
        seen = rows.any(0)
        out.append((first, seen.nonzero().squeeze(1), rows[:, seen]))
    return out


class _ScoredLoss(torch.autograd.Function):
    """sum_i w_i * cross-entropy(logits of normed h_i, tgt_i), as Gemma3.logits() defines the
    logits, LOSS_ROWS rows at a time. The gradient is made with the loss (softmax minus the
    target, times w) and kept as [N, C]: no [N, V] tensor outlives its piece, and the
    vocabulary-wide pieces are made once, not again by autograd's log-softmax, fill and copy."""

    @staticmethod
    def forward(ctx, h, row_delta, embd, rows, tgt, w, cap):
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        gh, gd, total = torch.zeros_like(h), torch.zeros_like(row_delta), h.new_zeros(())
        for i in range(0, len(h), LOSS_ROWS):
            hh, t, ww = h[i:i + LOSS_ROWS], tgt[i:i + LOSS_ROWS], w[i:i + LOSS_ROWS]
            at = torch.arange(len(hh))
            z = (hh.to(embd.dtype) @ embd.T).float()
            if len(rows):
                z.index_add_(1, rows, hh @ row_delta.T)
            if cap:
                th = torch.tanh(z / cap)
                z = th * cap
            picked, top = z[at, t], z.amax(1)
            g = z.sub_(top[:, None]).exp_()     # in place: z's biggest piece is made once
            sums = g.sum(1)
            total += (ww * (top + sums.log() - picked)).sum()
            if not grads:
                continue
            g.div_(sums[:, None])               # the softmax
            g[at, t] -= 1
            g.mul_(ww[:, None])
            if cap:
                g.mul_(1 - th * th)
            gh[i:i + LOSS_ROWS] = (g.to(embd.dtype) @ embd).float()
            if len(rows):
                g_rows = g[:, rows]
                gh[i:i + LOSS_ROWS] += g_rows @ row_delta
                gd += g_rows.T @ hh
        ctx.save_for_backward(gh, gd)
        return total

    @staticmethod
    def backward(ctx, grad):
        gh, gd = ctx.saved_tensors
        return gh * grad, gd * grad, None, None, None, None, None


class Gemma3(nn.Module):
    def __init__(self, cfg: Config, weights: dict, rank: int = 8, alpha: float = 16.0,
                 rows=(), seed: int = 0, bf16: bool = False):
        super().__init__()
        self.cfg, self.bf16 = cfg, bf16
        gen = torch.Generator().manual_seed(seed)

        def t(name):   # float32 shares the array's memory; bfloat16 lets it go
            w = torch.from_numpy(weights.pop(name) if bf16 else weights[name])
            return w.to(torch.bfloat16) if bf16 and w.dim() == 2 else w
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
        x = self.embd[ids].float()
        if len(self.rows):
            hit = (ids[:, None] == self.rows[None, :]).to(x.dtype)     # [T, R]
            x = x + hit @ self.row_delta
        return x * math.sqrt(self.cfg.n_embd)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Output logits [T, V] of final hidden states h [T, C] (normed here)."""
        h = rms_norm(h, self.out_norm, self.cfg.eps)
        out = (h.to(self.embd.dtype) @ self.embd.T).float()
        if len(self.rows):
            out.index_add_(1, self.rows, h @ self.row_delta.T)
        cap = self.cfg.final_logit_softcap
        return torch.tanh(out / cap) * cap if cap else out

    def _attention(self, q, k, v, pieces):
        c = self.cfg
        T = q.shape[0]
        group = c.n_head // c.n_head_kv
        scale = (c.query_pre_attn_scalar or c.head_dim_k) ** -0.5
        out = []
        for first, keys, keep in pieces:
            kk = k.index_select(0, keys).repeat_interleave(group, dim=1).transpose(0, 1)
            vv = v.index_select(0, keys).repeat_interleave(group, dim=1).transpose(0, 1)
            out.append(F.scaled_dot_product_attention(
                q[first:first + len(keep)].transpose(0, 1), kk, vv, attn_mask=keep, scale=scale))
        return torch.cat(out, dim=1).transpose(0, 1).reshape(T, c.n_head * c.head_dim_v)

    def masks(self, pos: torch.Tensor, branch: torch.Tensor) -> tuple:
        """(global, local) attention of a packed sequence: a token sees the tokens before it in
        the shared stem (branch 0) and in its own branch, the local layers only those fewer
        than sliding_window positions back. Each as pieces (first query, the keys any of
        ATTN_ROWS queries sees, their mask): a piece's scores are computed for those keys only,
        a fraction of T x T where branches and windows leave most pairs unseen."""
        idx = torch.arange(len(pos))
        keep = (idx[None, :] <= idx[:, None]) & \
            ((branch[None, :] == 0) | (branch[None, :] == branch[:, None]))
        local = keep & (pos[:, None] - pos[None, :] < self.cfg.sliding_window)
        return _pieces(keep), _pieces(local)

    def block(self, il: int, x: torch.Tensor, pos: torch.Tensor, keep: list) -> torch.Tensor:
        """Layer il on hidden states x [T, C] at positions pos, attending as keep (masks())."""
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for il in range(self.cfg.n_layer):
                keep = keep_local if self.cfg.is_swa(il) else keep_global
                if recompute and torch.is_grad_enabled():
                    x = checkpoint(self.block, il, x, pos, keep, use_reentrant=False)
                else:
                    x = self.block(il, x, pos, keep)
        return x.float()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits at every position [T, V]."""
        return self.logits(self.hidden(ids))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor,
             pos: torch.Tensor | None = None, branch: torch.Tensor | None = None,
             recompute: bool = False, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Summed cross-entropy over the positions whose target is >= 0 (the model's reply):
        only those rows of the output matrix product are computed. targets[i] is the token that
        should follow ids[i] (pack() gives ids, targets, pos, branch). recompute: see
        hidden(). weights: each position's factor on its loss (1 if None)."""
        h = self.hidden(ids, pos, branch, recompute)
        sel = targets >= 0
        w = torch.ones(int(sel.sum())) if weights is None else weights[sel]
        h = rms_norm(h[sel], self.out_norm, self.cfg.eps)
        return _ScoredLoss.apply(h, self.row_delta, self.embd, self.rows, targets[sel], w,
                                 self.cfg.final_logit_softcap)

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

"""An independent float64 forward pass of a Gemma 3 GGUF, and how to score logits against it.

Written from the Gemma 3 description (and llama.cpp's graph), reading weights through gguf's own
dequantizer: it shares no code with the runtime. Every op is exact up to float64 rounding, so on
a Q8_0 file it is the computation both engines approximate (their own extra rounding: activation
quantization before the integer dots, f16 KV, f16 GELU table, f32 accumulation).
"""
import numpy as np

import gguf


class Reference:
    """quant, if given, is applied to every matmul input as quant(x, weight name) -> x: a way to
    put one engine rounding back in (tools/ref_accuracy.py --study) without copying the pass."""

    def __init__(self, path, quant=None):
        self.quant = quant
        r = gguf.GGUFReader(path)
        f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
        self.n_layer = f["gemma3.block_count"]
        self.n_embd = f["gemma3.embedding_length"]
        self.n_head = f["gemma3.attention.head_count"]
        self.n_kv = f["gemma3.attention.head_count_kv"]
        self.hd = f["gemma3.attention.key_length"]
        self.eps = f["gemma3.attention.layer_norm_rms_epsilon"]
        self.window = f["gemma3.attention.sliding_window"]
        self.base = f["gemma3.rope.freq_base"]
        # query_pre_attn_scalar: n_embd / n_head for the 27B (62 layers), head_dim for the
        # others (gemma_pytorch's configs; llama.cpp tells the 27B by its layer count)
        self.q_scale = (self.n_embd // self.n_head if self.n_layer == 62 else self.hd) ** -0.5
        self.w = {}
        for t in r.tensors:
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            self.w[t.name] = a.reshape([int(d) for d in reversed(t.shape)])

    def mm(self, x, name):
        if self.quant is not None:
            x = self.quant(x, name)
        return x @ self.w[name].T

    @staticmethod
    def rms(x, w, eps):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(self, x, pos, base):  # x [T, heads, hd], NEOX halves
        half = self.hd // 2
        inv = base ** (-np.arange(half) * 2.0 / self.hd)
        ang = np.asarray(pos)[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

    @staticmethod
    def gelu(v):  # the tanh approximation, as Gemma 3 is defined
        return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))

    def attention(self, q, k, v, local):
        """Causal GQA attention (sliding window on local layers); q [T, H, D], k/v [T, Hk, D]."""
        T, group = len(q), self.n_head // self.n_kv
        pos = np.arange(T)
        mask = pos[None, :] > pos[:, None]
        if local:
            mask |= pos[:, None] - pos[None, :] >= self.window
        qg = q.reshape(T, self.n_kv, group, self.hd)
        s = np.einsum("tkgd,skd->kgts", qg, k)
        s = np.where(mask, -np.inf, s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        return np.einsum("kgts,skd->tkgd", s, v).reshape(T, self.n_head * self.hd)

    def forward(self, ids, last_only=False):
        """Logits at every position for the sequence ids (only the last with last_only)."""
        T, W = len(ids), self.w
        pos = np.arange(T)
        x = W["token_embd.weight"][ids] * np.sqrt(self.n_embd)
        for il in range(self.n_layer):
            p = f"blk.{il}."
            local = il % 6 < 5
            h = self.rms(x, W[p + "attn_norm.weight"], self.eps)
            q = self.mm(h, p + "attn_q.weight").reshape(T, self.n_head, self.hd)
            k = self.mm(h, p + "attn_k.weight").reshape(T, self.n_kv, self.hd)
            v = self.mm(h, p + "attn_v.weight").reshape(T, self.n_kv, self.hd)
            q = self.rms(q, W[p + "attn_q_norm.weight"], self.eps)
            k = self.rms(k, W[p + "attn_k_norm.weight"], self.eps)
            base = 10000.0 if local else self.base
            q = self.rope(q, pos, base) * self.q_scale
            k = self.rope(k, pos, base)
            a = self.mm(self.attention(q, k, v, local), p + "attn_output.weight")
            x = x + self.rms(a, W[p + "post_attention_norm.weight"], self.eps)
            h = self.rms(x, W[p + "ffn_norm.weight"], self.eps)
            f = self.gelu(self.mm(h, p + "ffn_gate.weight")) * self.mm(h, p + "ffn_up.weight")
            f = self.mm(f, p + "ffn_down.weight")
            x = x + self.rms(f, W[p + "post_ffw_norm.weight"], self.eps)
        if last_only:
            x = x[-1:]
        x = self.rms(x, W["output_norm.weight"], self.eps)
        out = self.mm(x, "output.weight" if "output.weight" in W else "token_embd.weight")
        return out[0] if last_only else out


# The 8-value groups of edge_runtime's activation blocks: group g of a 32-value block holds
# values 4g..4g+3 and 16+4g..19+4g, the bytes every kernel sums into one int32 lane (two lanes
# on x86) -- see native/q8_0.h.
LANE_GROUPS = np.array([4 * g + j + h for g in range(4) for h in (0, 16) for j in range(4)])


def fake_quant(x, block=32, levels=127, passes=1, scale="amax", fp16_scale=True, lanes=False):
    """x with every run of `block` values along the last axis rounded as an integer dot product
    sees it (lanes: groups of 8 over LANE_GROUPS within each 32 instead of runs): d * q with
    q = round(x / d) half away from zero, |q| <= levels. scale "amax" is d = amax / levels
    (Q8_0: block 32, levels 127); "mse" picks, per block, the d = amax / L (L from levels up to
    1.3 * levels, q clipped) with the least squared error. fp16_scale stores d as fp16 after
    rounding with 1/d in f32 (Q8_0, llama.cpp). passes=2 adds a second quantization of the
    residual: x ~ d1 * q1 + d2 * q2."""
    x = np.asarray(x, np.float64)
    if lanes:
        assert block == 8
        runs = x.reshape(*x.shape[:-1], -1, 32)[..., LANE_GROUPS]
        out = np.empty_like(runs)
        out[..., LANE_GROUPS] = fake_quant(runs, 8, levels, passes, scale, fp16_scale)
        return out.reshape(x.shape)
    shape = x.shape
    b = x.reshape(-1, shape[-1] // block, block)
    out = np.zeros_like(b)
    for _ in range(passes):
        r = b - out
        amax = np.abs(r).max(axis=-1, keepdims=True)
        cands = [levels] if scale == "amax" else np.linspace(levels, 1.3 * levels, 31)
        best, best_err = None, None
        for L in cands:
            d = (amax / L).astype(np.float32)
            inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0).astype(np.float32)
            v = (r.astype(np.float32) * inv).astype(np.float64)
            q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -levels, levels)
            d = d.astype(np.float16) if fp16_scale else d
            dq = d.astype(np.float64) * q
            err = ((r - dq) ** 2).sum(axis=-1, keepdims=True)
            if best is None:
                best, best_err = dq, err
            else:
                better = err < best_err
                best, best_err = np.where(better, dq, best), np.minimum(err, best_err)
        out = out + best
    return out.reshape(shape)


def logit_errors(got, ref, top=20):
    """How far one engine's logits are from the reference's (both 1-D over the vocabulary)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    d = np.abs(got - ref)
    order = np.argsort(-ref)
    top_ref = order[:top]
    top_got = np.argsort(-got)[:top]
    return dict(
        rms=float(np.sqrt(np.mean(d * d))),
        max_top=float(d[top_ref].max()),
        overlap=len(set(top_ref.tolist()) & set(top_got.tolist())) / top,
        top1=bool(got.argmax() == order[0]),
        gap=float(ref[order[0]] - ref[order[1]]),
    )

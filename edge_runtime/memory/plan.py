"""What a session will use, in bytes, computed from the model's dimensions before anything runs.

The native session allocates exactly the anonymous rows below; the weights stay in the file
mapping. Shape legend: T = prefill chunk (tokens per forward), C = max_inference_len (context),
E = n_embd, Q = n_head * head_dim (q_dim), KV = n_head_kv * head_dim (kv_dim), F = n_ff,
V = n_vocab. KV cache: per layer K and V of ring_len x KV (f16 or f32), ring_len = min(C, window)
for sliding layers, C for global ones. Scratch: T x (E, Q, KV, F)-wide f32 buffers; attention
scores: threads x C floats per query head of a K/V group (n_head / n_head_kv).

Resident weights, by page policy (what we assume the decoder touches):
  keep     every tensor the forward pass reads stays resident: all layer weights, output norm,
           and the tied embedding in full (its every row is read by the lm_head each token);
           an untied embedding contributes only the pages of the rows that C tokens can touch.
  release  a layer's weight pages are dropped after it has run, so at most the largest layer
           is resident at once, plus the lm_head (the whole embedding when tied) and the globals.
The GGUF header (metadata and vocabulary, read once by the tokenizer at load) is counted
resident under both policies: its pages stay in the mapping.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from ..calls.grammar import ALLOWED_CACHE_IDS, ALLOWED_CACHE_SETS
from ..errors import InvalidArgumentError, MemoryBudgetError

MIB = 1 << 20
PAGE = 4096
DEFAULT_MAX_INFERENCE_LEN = 4096
AUTO_STEP = 256
# Room for the prefix snapshot of a toolset not known yet (the server's further toolsets). The
# agent's own plan uses its real prefix length instead (memory.agent_budget.agent_prefix_tokens: the
# built-in toolset renders to 713 tokens with the Python format and its demonstrations).
AGENT_SNAPSHOT_TOKENS = 512
GELU_TABLE_BYTES = 4 << 16   # one f32 per fp16 value, built on the first FFN step

# Measured 2026-11-30 on the x86-64 dev VM (CPython 3.11, numpy 2.4 with OpenBLAS, psutil 7.2):
# RssAnon and RssFile after `import edge_runtime` (numpy and psutil alone: 15.8 MiB anon, 12.9
# MiB file); 18.1 MiB anon before the call-format modules (2026-11-24).
INTERPRETER_ANON = int(20.1 * MIB)
INTERPRETER_FILE = int(16.2 * MIB)
# Tokenizer lookup structures: the GGUF token offset table (8 B/token), the C hash table of ids
# and the special-token index; measured 5.3-5.6 MiB (21-22.5 B/token) on Gemma 3's 262144
# entries.
TOKENIZER_BYTES_PER_TOKEN = 23
# GGUF header bytes per vocabulary entry (token string + score + type), from the Gemma 3 file.
HEADER_BYTES_PER_TOKEN = 25
# The agent (plan(..., agent=True)), measured on Gemma 3's 262144-token vocabulary:
# - the grammar's vocabulary index file (edge_runtime/calls/vocab.py), mapped and read in full
#   by the first string-content step: 6,444,944 bytes;
VOCAB_INDEX_BYTES_PER_TOKEN = 25
# - per string-automaton state, a packed mask (1 bit per token), read from the masks file
#   beside the index or computed: at most the FunctionGemma string automaton's 32 states;
CONTENT_MASK_STATES = 32
# - per constrained step inside a string, where nearly the whole vocabulary is allowed: the
#   unpacked mask (1 B), the allowed ids (int32, built in chunks: Vocab.content_ids), their
#   logits and the grounding bonus added to them in place (float32); glibc keeps these freed
#   blocks in its heap;
STEP_BYTES_PER_TOKEN = 13
# - the small allowed sets TokenConstraint keeps (calls/grammar.py): their int32 ids, and per set
#   the array object, the dict slot and the state tuple it is keyed by (at most 1.5 KB over the
#   built-in tools' 32 states, by sys.getsizeof; 2 KiB planned);
ALLOWED_CACHE_BYTES = 4 * ALLOWED_CACHE_IDS + 2048 * ALLOWED_CACHE_SETS
# - building the index (first run only; peak above the process before it): the tokenizer's
#   262k pieces as Python bytes, the sort, the arrays; freed (and trimmed) once it is written.
INDEX_BUILD_BYTES_PER_TOKEN = 190

KV_BYTES = {"f16": 2, "f32": 4}
# Rows each session has of its own (the rest is shared by all sessions of a model).
SESSION_ROWS = ("KV cache", "scratch:", "attention scores", "logits")
PAGE_POLICIES = ("keep", "release")
Q8_0_BLOCK, Q8_0_BYTES = 32, 34


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _q8_0_bytes(n_values: int) -> int:
    return _round_up(n_values, Q8_0_BLOCK) // Q8_0_BLOCK * Q8_0_BYTES


@dataclass(frozen=True)
class WeightLayout:
    """Where the bytes of a GGUF go: header, each layer's tensors, embedding, lm_head, globals."""
    file_size: int
    header: int               # bytes before the first tensor (metadata, vocabulary)
    layers: tuple             # bytes of each layer's tensors
    token_embd: int
    token_embd_row: int       # bytes of one embedding row
    output: int               # untied lm_head bytes; 0 when tied to the embedding
    globals_: int             # other non-layer tensors (output norm, ...)

    @classmethod
    def from_gguf(cls, g) -> "WeightLayout":
        layers, globals_ = {}, 0
        for name, t in g.tensors.items():
            m = re.match(r"blk\.(\d+)\.", name)
            if m:
                layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + t.nbytes
            elif name not in ("token_embd.weight", "output.weight"):
                globals_ += t.nbytes
        emb = g.tensors["token_embd.weight"]
        out = g.tensors.get("output.weight")
        n_rows = emb.shape[1] if len(emb.shape) == 2 else 1
        return cls(file_size=g.size, header=min(t.offset for t in g.tensors.values()),
                   layers=tuple(layers.get(i, 0) for i in range(max(layers, default=-1) + 1)),
                   token_embd=emb.nbytes, token_embd_row=emb.nbytes // max(n_rows, 1),
                   output=out.nbytes if out is not None else 0, globals_=globals_)

    @classmethod
    def estimate(cls, config, file_size=None) -> "WeightLayout":
        """A Q8_0 file (matrices Q8_0, norms f32, tied embedding) of this config's shape."""
        c = config
        matrices = 2 * c.n_embd * c.q_dim + 2 * c.n_embd * c.kv_dim + 3 * c.n_embd * c.n_ff
        norms = 4 * (4 * c.n_embd + 2 * c.head_dim_k)
        layer = _q8_0_bytes(matrices) + norms
        row = _q8_0_bytes(c.n_embd)
        tensors = c.n_layer * layer + c.n_vocab * row + 4 * c.n_embd
        header = HEADER_BYTES_PER_TOKEN * c.n_vocab
        if file_size is not None:
            header = max(int(file_size) - tensors, 0)
        return cls(file_size=tensors + header, header=header, layers=(layer,) * c.n_layer,
                   token_embd=c.n_vocab * row, token_embd_row=row, output=0, globals_=4 * c.n_embd)

    def resident(self, pages: str, max_inference_len: int) -> int:
        if self.output:  # untied: the embedding is only gathered, row by row
            head = self.output + min(self.token_embd,
                                     max_inference_len * _round_up(self.token_embd_row, PAGE))
        else:
            head = self.token_embd
        layers = sum(self.layers) if pages == "keep" else max(self.layers, default=0)
        return layers + head + self.globals_


@dataclass
class MemoryPlan:
    # (name, bytes, kind): kind "anon", "file" (the resident part of a mapping) or "cache" (a
    # file read with pread: page cache, evictable, not in the process's RSS nor its totals)
    rows: list
    max_inference_len: int
    ring_lens: tuple           # KV positions held per layer
    mapped: int                # bytes of the file mapping (address space, not all resident)
    settings: dict = field(default_factory=dict)
    budget: int = None         # the budget it was planned for (Model.load's), if any

    @property
    def total_anon(self) -> int:
        return sum(b for _, b, k in self.rows if k == "anon")

    @property
    def total_file(self) -> int:
        return sum(b for _, b, k in self.rows if k == "file")

    @property
    def total_resident(self) -> int:
        return self.total_anon + self.total_file

    @property
    def session_bytes(self) -> int:
        """What each further session adds: its KV cache, scratch, attention scores, logits."""
        return sum(b for n, b, k in self.rows if k == "anon" and n.startswith(SESSION_ROWS))

    def sessions_within(self, budget: int) -> int:
        """How many sessions the budget holds: the plan's one plus each further session that
        fits in the headroom; 0 when the plan itself does not fit."""
        if not self.fits(budget):
            return 0
        return 1 + (budget - self.total_resident) // max(self.session_bytes, 1)

    def fits(self, budget: int) -> bool:
        return self.total_resident <= budget

    def check(self, budget: int, what: str = "memory plan") -> "MemoryPlan":
        """Raise MemoryBudgetError (one line: rows and overage) unless the plan fits."""
        if not self.fits(budget):
            rows = ", ".join(f"{n} {b / MIB:.1f} MiB"
                             for n, b, k in sorted(self.rows, key=lambda r: -r[1])
                             if k != "cache")
            raise MemoryBudgetError(
                f"{what} for max_inference_len {self.max_inference_len} needs "
                f"{self.total_resident / MIB:.1f} MiB but the budget is {budget / MIB:.1f} MiB: "
                f"over by {(self.total_resident - budget) / MIB:.1f} MiB ({rows})")
        return self

    def table(self, budget=None) -> str:
        lines = [(n, k, b) for n, b, k in self.rows]
        lines += [None, ("total anonymous", "anon", self.total_anon),
                  ("total resident", "", self.total_resident)]
        if budget is not None:
            lines += [("budget", "", budget), ("headroom", "", budget - self.total_resident)]
        width = max(len(r[0]) for r in lines if r)
        out = [f"{'item':<{width}}  {'kind':<4}  {'MiB':>9}  {'bytes':>12}"]
        for r in lines:
            if r is None:
                out.append("-" * (width + 33))
            else:
                out.append(f"{r[0]:<{width}}  {r[1]:<4}  {r[2] / MIB:>9.2f}  {r[2]:>12,}")
        out.append(f"(file mapping {self.mapped / MIB:.1f} MiB of address space; "
                   f"settings: {', '.join(f'{k}={v}' for k, v in self.settings.items())})")
        return "\n".join(out)

    def to_dict(self, budget=None) -> dict:
        d = {"max_inference_len": self.max_inference_len,
             "rows": [{"name": n, "bytes": b, "kind": k} for n, b, k in self.rows],
             "total_anon": self.total_anon, "total_resident": self.total_resident,
             "mapped": self.mapped, "ring_lens": list(self.ring_lens), **self.settings}
        if budget is not None:
            d.update(budget=budget, headroom=budget - self.total_resident, fits=self.fits(budget))
        return d


def _scratch_rows(c, T: int, kv_bytes: int) -> list:
    """Per-chunk buffers of the native session (native/gemma3.c er_session_create), T tokens."""
    f32 = 4
    return [
        ("scratch: hidden x, xn", T * (c.n_embd + max(c.n_embd, c.q_dim)) * f32, "anon"),
        ("scratch: q, k, v, attn_out", T * (2 * c.q_dim + 2 * c.kv_dim) * f32, "anon"),
        ("scratch: ffn gate, up", 2 * T * c.n_ff * f32, "anon"),
        # RoPE has no [ctx x dim] table: cos and sin are computed per chunk, for both bases.
        ("scratch: RoPE cos, sin", 2 * 2 * T * (c.head_dim_k // 2) * f32, "anon"),
        # activation blocks: 32 int8 and four f32 group scales (native/q8_0.h block_q8_act)
        ("scratch: quantized activations", T * max(c.n_embd, c.q_dim, c.n_ff) // 32 * 48, "anon"),
        ("scratch: K/V chunk staging", 2 * T * c.kv_dim * kv_bytes, "anon"),
    ]


def plan(config, max_inference_len=None, prefill_chunk=64, threads=1, kv_dtype="f16",
         pages="keep", weights=None, n_vocab=None, budget=None, snapshot_tokens=0,
         agent=False, snapshot_file=False) -> MemoryPlan:
    """Itemised plan for one session. `weights`: a WeightLayout, an open GGUF, a file size in
    bytes (layout estimated as Q8_0 of that size) or None (a Q8_0 file of this shape).
    `max_inference_len`: int, None (default) or "auto" (needs `budget`).
    `snapshot_tokens`: length of a prefix whose KV snapshot is kept beside the session (the
    agent's tool declarations; see snapshot_bytes), 0 for none.
    `agent`: add what the tool-calling agent allocates beside the session (grammar index,
    content masks, per-step buffers); its declarations snapshot is snapshot_tokens long (the
    agent's real prefix: memory.agent_budget.agent_prefix_tokens), which agent=True requires.
    `snapshot_file`: the snapshot stays in its file (Agent(cache_dir=...)), read into the KV
    cache at each restore: a page-cache row, not resident in the process."""
    if kv_dtype not in KV_BYTES:
        raise InvalidArgumentError(f"kv_dtype must be one of {', '.join(KV_BYTES)}, not {kv_dtype!r}")
    if pages not in PAGE_POLICIES + ("auto",):
        raise InvalidArgumentError(f"pages must be one of {', '.join(PAGE_POLICIES)} or auto, "
                                   f"not {pages!r}")
    if prefill_chunk < 1 or threads < 1:
        raise InvalidArgumentError("prefill_chunk and threads must be >= 1")
    if isinstance(snapshot_tokens, bool) or not isinstance(snapshot_tokens, int) \
            or snapshot_tokens < 0:
        raise InvalidArgumentError(f"snapshot_tokens must be a non-negative integer, not {snapshot_tokens!r}")
    if agent and not snapshot_tokens:
        raise InvalidArgumentError("an agent's plan needs snapshot_tokens, the length of its "
                                   "prefix (memory.agent_budget.agent_prefix_tokens)")
    layout = _layout(config, weights)
    kw = dict(prefill_chunk=prefill_chunk, threads=threads, kv_dtype=kv_dtype,
              weights=layout, n_vocab=n_vocab, snapshot_tokens=snapshot_tokens, agent=agent,
              snapshot_file=snapshot_file)
    if pages == "auto":
        pages = choose_pages(config, max_inference_len, budget, **kw)
    kw["pages"] = pages
    C = resolve_max_inference_len(config, max_inference_len, budget, **kw)
    c, V = config, n_vocab or config.n_vocab
    kvb = KV_BYTES[kv_dtype]
    window = c.sliding_window if c.sliding_window > 0 else C
    ring = tuple(min(C, window) if c.is_swa(il) else C for il in range(c.n_layer))
    n_local = sum(1 for il in range(c.n_layer) if c.is_swa(il))
    local_len = min(C, window)
    rows = [
        ("interpreter (python, numpy, psutil)", INTERPRETER_ANON, "anon"),
        ("tokenizer index", TOKENIZER_BYTES_PER_TOKEN * V, "anon"),
        (f"KV cache: {n_local} local layers x {local_len} pos",
         n_local * 2 * local_len * c.kv_dim * kvb, "anon"),
        (f"KV cache: {c.n_layer - n_local} global layers x {C} pos",
         (c.n_layer - n_local) * 2 * C * c.kv_dim * kvb, "anon"),
        *_scratch_rows(c, prefill_chunk, kvb),
        ("attention scores", threads * (c.n_head // c.n_head_kv) * C * 4, "anon"),
        ("GELU table (native/ops.c)", GELU_TABLE_BYTES, "anon"),
        ("norm weights (f32 copies)", 4 * (c.n_layer * (4 * c.n_embd + 2 * c.head_dim_k) + c.n_embd),
         "anon"),
        ("logits", V * 4, "anon"),
        *([(f"prefix snapshot: {min(snapshot_tokens, C)} tokens"
            + (" (its file, read at restore)" if snapshot_file else ""),
            snapshot_bytes(ring, c, snapshot_tokens, kv_dtype),
            "cache" if snapshot_file else "anon")] if snapshot_tokens else []),
        ("shared libraries (mapped)", INTERPRETER_FILE, "file"),
        (f"weights resident (pages={pages})", layout.resident(pages, C), "file"),
        ("gguf header + vocabulary", layout.header, "file"),
        *(agent_rows(V) if agent else []),
    ]
    return MemoryPlan(rows=rows, max_inference_len=C, ring_lens=ring, mapped=layout.file_size,
                      settings=dict(prefill_chunk=prefill_chunk, threads=threads,
                                    kv_dtype=kv_dtype, pages=pages, agent=bool(agent),
                                    snapshot_tokens=snapshot_tokens,
                                    snapshot_file=bool(snapshot_file)),
                      budget=budget)


def agent_rows(n_vocab: int) -> list:
    """What the agent allocates beside its session and snapshot (see the constants above)."""
    return [
        ("agent: grammar vocabulary index (mapped file)", VOCAB_INDEX_BYTES_PER_TOKEN * n_vocab,
         "file"),
        (f"agent: string-content masks ({CONTENT_MASK_STATES} states)",
         CONTENT_MASK_STATES * -(-n_vocab // 8), "anon"),
        ("agent: per-step allowed ids and their logits", STEP_BYTES_PER_TOKEN * n_vocab, "anon"),
        ("agent: allowed sets kept by grammar state", ALLOWED_CACHE_BYTES, "anon"),
    ]


def snapshot_bytes(ring_lens, config, n_tokens: int, kv_dtype="f16") -> int:
    """Bytes of a KV snapshot after n_tokens (native/gemma3.c er_session_state_bytes): a
    16-byte header, one u32 ring length per layer, then each layer's occupied slots of K and V
    - a sliding layer never holds more than its ring, so past the window it stops growing."""
    slots = sum(min(n_tokens, r) for r in ring_lens)
    return 16 + 4 * config.n_layer + 2 * slots * config.kv_dim * KV_BYTES[kv_dtype]


def _layout(config, weights) -> WeightLayout:
    if isinstance(weights, WeightLayout):
        return weights
    if hasattr(weights, "tensors"):
        return WeightLayout.from_gguf(weights)
    return WeightLayout.estimate(config, weights)


def resolve_max_inference_len(config, requested=None, budget=None, **plan_kw) -> int:
    """The effective context cap. None: min(context_length, 4096), or with a budget the
    longest up to that which fits it (a small board still runs, on a shorter context); larger
    values are clamped to the model's context_length with a warning; "auto" picks the largest
    multiple of 256 whose plan fits `budget`."""
    n_ctx = config.context_length
    if requested is None:
        default = min(n_ctx, DEFAULT_MAX_INFERENCE_LEN)
        if budget is None or plan(config, default, **plan_kw).fits(budget):
            return default
        return auto_max_inference_len(config, budget, cap=default, **plan_kw)
    if requested == "auto":
        if budget is None:
            raise InvalidArgumentError('max_inference_len="auto" needs a budget or a board')
        return auto_max_inference_len(config, budget, **plan_kw)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise InvalidArgumentError(f'max_inference_len must be a positive integer or "auto", '
                                   f'not {requested!r}')
    if requested > n_ctx:
        warnings.warn(f"max_inference_len {requested} is above the model's context_length "
                      f"{n_ctx}; using {n_ctx}", stacklevel=3)
        return n_ctx
    return requested


def _shortest(config, **plan_kw) -> int:
    """The shortest context worth planning: one step of 256 positions, and for an agent the
    first step past its prefix (a context the prefix fills leaves no room for a request)."""
    floor = AUTO_STEP * (plan_kw.get("snapshot_tokens", 0) // AUTO_STEP + 1) \
        if plan_kw.get("agent") else AUTO_STEP
    return min(floor, config.context_length)


def auto_max_inference_len(config, budget: int, cap=None, **plan_kw) -> int:
    """Largest multiple of 256 <= cap (default: context_length) whose plan fits `budget`
    (memory grows monotonically with context, so a binary search over the multiples is
    exact); not below _shortest. When even that does not fit, MemoryBudgetError says what it
    needs."""
    top = min(cap or config.context_length, config.context_length)
    shortest = _shortest(config, **plan_kw)
    lo, hi = shortest // AUTO_STEP, top // AUTO_STEP   # candidates lo*256 .. hi*256
    if hi < 1 or lo > hi:  # a model shorter than one step: all of it or nothing
        plan(config, top, **plan_kw).check(budget)
        return top
    plan(config, shortest, **plan_kw).check(budget)   # not even the shortest fits: say why
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if plan(config, mid * AUTO_STEP, **plan_kw).fits(budget):
            lo = mid
        else:
            hi = mid - 1
    return lo * AUTO_STEP


def choose_pages(config, max_inference_len, budget, **plan_kw) -> str:
    """pages="auto": "keep" (no weight page read twice) wherever that fits the budget at the
    shortest context worth running, else "release" (each layer's pages dropped once it has
    run: slower, as they are read again every token, but the weights' pages no longer all
    count). A fixed max_inference_len is tried as given."""
    if budget is None:
        return "keep"
    n = max_inference_len if isinstance(max_inference_len, int) else _shortest(config, **plan_kw)
    keep = plan(config, n, pages="keep", **plan_kw)
    if keep.fits(budget) or not plan(config, n, pages="release", **plan_kw).fits(budget):
        return "keep"
    return "release"


def smallest_fit(config, **plan_kw) -> "MemoryPlan":
    """The cheapest workable plan: pages released, the shortest context."""
    return plan(config, _shortest(config, **plan_kw), **{**plan_kw, "pages": "release"})

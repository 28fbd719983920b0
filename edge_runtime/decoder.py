"""`Model`: one mapped GGUF, its config and tokenizer, bound to the native decoder; and
`Session`: one KV state over it. A model serves any number of sessions (each with its own
KV cache); `Model.eval/generate/reset` use the model's default session, and
`Model.acquire_session()` lends sessions from a pool the memory plan sizes.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
import warnings
import weakref

import numpy as np

from . import _native, boards, memory
from . import config as config_mod
from .errors import (ContextLengthError, InvalidArgumentError, MemoryBudgetError,
                     NonFiniteLogitsError, SessionBusyError, SessionInterruptedError)
from .gguf import GGML_TYPE_IDS, open_gguf
from .memory import RssTracker
from .sampling import Sampler
from .tokenizer import Tokenizer

DEFAULT_PREFILL_CHUNK = 64
WEIGHT_TYPES = ("Q8_0", "F32", "F16", "BF16")


_local = threading.local()


class _Token:
    __slots__ = ("__weakref__",)     # a session's set of evicted threads forgets dead ones


def _thread_token():
    """The calling thread's identity for session ownership: unlike its ident, never reused by
    a later thread."""
    try:
        return _local.token
    except AttributeError:
        _local.token = _Token()
        return _local.token


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _thread_count(threads, warn=True) -> int:
    """threads as an int in 1..CPUs: more threads than CPUs only slow every step down, so a
    larger count is clamped (with a warning when the caller asked for it)."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise InvalidArgumentError(f"threads must be an integer, got {threads!r}")
    if threads <= 0:
        raise InvalidArgumentError(f"threads must be positive, got {threads}")
    cpus = default_threads()
    if threads > cpus:
        if warn:
            warnings.warn(f"threads {threads} is more than the {cpus} CPUs this process may run "
                          f"on: using {cpus}", UserWarning, stacklevel=4)
        return cpus
    return int(threads)


def token_ids(ids, n_vocab, what="token id") -> np.ndarray:
    """ids (a sequence of ints or an integer array) as int32, each checked to be an integer
    (not a bool or a float) in 0..n_vocab-1 before any conversion could wrap or truncate it."""
    if isinstance(ids, np.ndarray):
        if ids.dtype.kind not in "iu":
            raise InvalidArgumentError(f"{what}s must be integers, got an array of {ids.dtype}")
        flat = ids.reshape(-1)
    else:
        flat = [ids] if isinstance(ids, (int, np.integer)) else list(ids)
        for i in flat:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise InvalidArgumentError(f"{what} {i!r} is not an integer")
    if len(flat):
        # An array's own min/max: the builtins would walk it element by element in Python
        # (~10% of a constrained call's time, on a string value's thousands of allowed rows).
        arr = isinstance(flat, np.ndarray)
        lo, hi = (flat.min(), flat.max()) if arr else (min(flat), max(flat))
        if lo < 0 or hi >= n_vocab:
            raise InvalidArgumentError(f"{what} out of range 0..{n_vocab - 1}")
    return np.asarray(flat, dtype=np.int32)


def _descriptor(g, name, optional=False):
    t = g.tensors.get(name)
    if t is None:
        if optional:
            return None
        raise config_mod.UnsupportedModelError(f"missing required tensor {name!r}")
    if t.type not in WEIGHT_TYPES:
        raise config_mod.UnsupportedModelError(
            f"tensor {name!r} has type {t.type}; supported: {', '.join(WEIGHT_TYPES)} "
            f"(convert with `edge-runtime convert IN OUT --type q8_0`)")
    rows = t.shape[1] if len(t.shape) > 1 else 1
    if len(t.shape) > 2 or any(d != 1 for d in t.shape[2:]):
        raise config_mod.UnsupportedModelError(f"tensor {name!r} has unexpected shape {t.shape}")
    return (t.offset, GGML_TYPE_IDS[t.type], int(t.shape[0]), int(rows))


class Model:
    def __init__(self, gguf_file, cfg, tokenizer, handle, max_inference_len, threads, pages,
                 kv_dtype, prefill_chunk, plan=None, tracker=None, sessions=1):
        self.gguf, self.config, self.tokenizer = gguf_file, cfg, tokenizer
        self._handle = handle
        self.max_inference_len = max_inference_len
        self.threads, self.pages, self.kv_dtype = threads, pages, kv_dtype
        self.prefill_chunk = prefill_chunk
        self.plan = plan
        self.tracker = tracker or RssTracker()
        self.kernel = _native.model_kernel(handle)
        self.load_seconds = 0.0
        self.session_pool_size = sessions
        self._pool_cond = threading.Condition()   # guards every session's ownership fields
        self._session = self.new_session()
        self._pool = [self._session]              # grows lazily up to session_pool_size

    @classmethod
    def load(cls, path, max_inference_len=None, threads=None, budget=None, board=None,
             pages="keep", kv_dtype="f16", prefill_chunk=DEFAULT_PREFILL_CHUNK, snapshot_tokens=0,
             sessions=None, agent=None, adapter=None):
        """adapter: an adapter file (`edge-runtime tune`) merged into the model: the merged Q8_0
        file is built once into the cache (edge_runtime.models.merged) and loaded instead.
        snapshot_tokens: length of a prefix whose KV snapshot will be kept (the agent's
        tool declarations); the memory plan and budget check count it.
        agent: None, or the agent that will run on the model - True (the built-in toolset) or
        an er.memory.AgentSpec: the plan (and max_inference_len="auto") then counts the agent's
        rows and its real prefix, rendered with the tokenizer (built first for that).
        sessions: size of the acquire_session() pool; None = as many as the budget holds
        (MemoryPlan.sessions_within) and the cores run at once at `threads` each (the board's
        cores, or this process's CPUs), or 1 without a budget. More than the budget holds is a
        MemoryBudgetError."""
        if adapter is not None:
            from . import models
            path = models.merged(path, adapter)
        t0 = time.perf_counter()
        tracker = RssTracker()
        with tracker.phase("load"):
            m = cls._load(path, max_inference_len, threads, budget, board, pages, kv_dtype,
                          prefill_chunk, snapshot_tokens, sessions, tracker, agent)
        m.load_seconds = time.perf_counter() - t0
        return m

    @classmethod
    def _load(cls, path, max_inference_len, threads, budget, board, pages, kv_dtype,
              prefill_chunk, snapshot_tokens, sessions, tracker, agent=None):
        if pages not in ("keep", "release", "auto"):
            raise InvalidArgumentError(f"pages must be 'keep', 'release' or 'auto', got {pages!r}")
        if kv_dtype not in ("f16", "f32"):
            raise InvalidArgumentError(f"kv_dtype must be 'f16' or 'f32', got {kv_dtype!r}")
        explicit = threads is not None
        cores = default_threads()
        if board is not None:
            b = boards.get(board) if isinstance(board, str) else board
            budget = b.budget if budget is None else budget
            threads = b.default_threads if threads is None else threads
            cores = min(cores, b.cores)
        threads = _thread_count(default_threads() if threads is None else threads, warn=explicit)
        if int(prefill_chunk) <= 0:
            raise InvalidArgumentError(f"prefill_chunk must be positive, got {prefill_chunk}")
        g = open_gguf(path)
        cfg = config_mod.from_gguf(g)
        tok, extra = None, {}
        if agent is not None and agent is not False:
            spec = memory.AgentSpec() if agent is True else agent
            if not isinstance(spec, memory.AgentSpec):
                raise InvalidArgumentError(f"agent must be True or an er.memory.AgentSpec, "
                                           f"not {agent!r}")
            tok = Tokenizer.from_gguf(g)
            extra = dict(agent=True, snapshot_file=spec.snapshot_file,
                         snapshot_tokens=memory.agent_prefix_tokens(g, tok, spec))
        kw = dict(prefill_chunk=int(prefill_chunk), threads=int(threads), kv_dtype=kv_dtype,
                  weights=g, **{"snapshot_tokens": snapshot_tokens, **extra})
        try:     # MemoryBudgetError before the session is allocated
            plan = memory.plan(cfg, max_inference_len, pages=pages, budget=budget, **kw)
            if budget is not None:
                plan.check(budget, what="the agent's memory plan" if extra else "memory plan")
        except MemoryBudgetError as e:
            raise MemoryBudgetError(f"{e}. {_what_fits(cfg, budget, **kw)}") from None
        pages = plan.settings["pages"]
        if extra and plan.max_inference_len <= extra["snapshot_tokens"]:
            raise MemoryBudgetError(
                f"the agent's prefix is {extra['snapshot_tokens']} tokens, but "
                f"max_inference_len is {plan.max_inference_len}"
                + (" (the longest whose plan fits the budget)"
                   if max_inference_len == "auto" else "") + ": no room for a request")
        pool = _pool_size(plan, budget, sessions, max(1, cores // int(threads)))
        n_ctx = plan.max_inference_len
        tok = tok or Tokenizer.from_gguf(g)
        handle = _bind(g, cfg)
        return cls(g, cfg, tok, handle, n_ctx, int(threads), pages, kv_dtype, int(prefill_chunk),
                   plan, tracker, pool)

    def new_session(self) -> "Session":
        """A session of one's own, outside the pool (not counted in session_pool_size)."""
        return Session(self)

    @contextmanager
    def acquire_session(self, timeout=None):
        """`with model.acquire_session(timeout=None) as s:` - a session that is the caller's
        alone until the block ends: admission control for agent runs and servers.

        The pool holds `model.session_pool_size` sessions: as many as the memory budget holds
        (Model.load(sessions=None, budget=...): MemoryPlan.sessions_within, the plan's one
        session plus each further KV cache + scratch + logits that fits), 1 without a budget,
        or what Model.load(sessions=N) asked for. Sessions are created on first need; the
        default one (model.eval/generate) comes first when it is free, so a single user's
        runs show in model.stats().

        Blocks until a session is free: timeout None waits as long as it takes, a number of
        seconds (0: do not wait) bounds it, after which SessionBusyError is raised. It is also
        raised at once when every session of the pool is held by the calling thread (waiting
        would never end). A free session is one no thread has leased and no call or live
        generator is using (a generator of model.generate() holds the default session until
        it is exhausted or closed).

        The lease is bound to the thread that took it: the session's methods raise
        SessionBusyError on any other thread, and model.eval/generate/reset raise there too
        while the default session is lent. The state it comes with is a previous user's: start
        with reset(), restore(), prepare() or generate() (eval() before one of those raises
        SessionBusyError rather than append to someone else's tokens)."""
        session = self._lend(timeout)
        try:
            yield session
        finally:
            session._give_back()

    def _lend(self, timeout):
        if self._session is None:
            raise RuntimeError("the model is closed: it lends no more sessions")
        me = _thread_token()
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        with self._pool_cond:
            while True:
                for s in self._pool:
                    if s._free():
                        s._lend_to(me)
                        return s
                if len(self._pool) < self.session_pool_size:
                    s = self.new_session()
                    self._pool.append(s)
                    s._lend_to(me)
                    return s
                if all(s._held_by(me) for s in self._pool):
                    raise SessionBusyError(
                        f"all {len(self._pool)} sessions of the pool are held by this thread "
                        f"(a live generator or an open acquire_session()); waiting would never end")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise SessionBusyError(
                        f"no session came free within {timeout:g} s (all "
                        f"{self.session_pool_size} of the pool are in use)")
                self._pool_cond.wait(left)

    # The default session's API, as CONTRACT.md names it on the model.
    def eval(self, ids, rows=None):
        return self._session.eval(ids, rows=rows)

    def reset(self):
        self._session.reset()

    def generate(self, prompt_or_ids, **kw):
        return self._session.generate(prompt_or_ids, **kw)

    def stats(self) -> dict:
        return self._session.stats()

    @property
    def n_past(self) -> int:
        return self._session.n_past

    @property
    def session(self) -> "Session":
        return self._session

    def close(self):
        """Free the default session's KV state now and break the model <-> session cycle, so
        the mapping goes as soon as the last reference to it does, not when the cycle
        collector runs. Sessions from new_session() keep working (they hold what they use);
        this model's own eval/generate and acquire_session do not."""
        self._session = None
        self._pool = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _what_fits(cfg, budget, **plan_kw) -> str:
    """Where a refused plan would run: its cheapest form (pages released, the shortest
    context), and the budget or smallest shipped board that holds that."""
    least = memory.smallest_fit(cfg, **plan_kw)
    need = least.total_resident
    at = f"pages=\"release\" and max_inference_len {least.max_inference_len}"
    if need <= budget:
        return f"It fits with {at} ({need / 2**20:.1f} MiB)"
    fits = sorted((b for b in boards.all_boards().values() if b.budget >= need),
                  key=lambda b: b.budget)
    where = (f"; the smallest shipped board with that budget is {fits[0].name} "
             f"({fits[0].budget / 2**20:.0f} MiB)") if fits else ""
    return f"Even with {at} it needs {need / 2**20:.1f} MiB{where}"


def _pool_size(plan, budget, sessions, by_cores) -> int:
    """The session pool: `sessions` as asked (if the budget holds them), else as many as the
    budget holds and the cores run at once (by_cores: sessions x threads within the cores, so
    a server's concurrent requests never slow each other's steps down)."""
    if sessions is not None and (isinstance(sessions, bool) or not isinstance(sessions, int)
                                 or sessions < 1):
        raise ValueError(f"sessions must be a positive integer, not {sessions!r}")
    if budget is None:
        return sessions or 1
    held = plan.sessions_within(budget)
    if sessions is not None and sessions > held:
        raise MemoryBudgetError(
            f"{sessions} sessions of {plan.session_bytes / (1 << 20):.1f} MiB each do not fit "
            f"the budget of {budget / (1 << 20):.1f} MiB: it holds {held}")
    return sessions or min(held, by_cores)


def _expected_shapes(cfg) -> dict:
    """GGUF shape (values per row, rows) of each tensor the decoder reads, by short name."""
    E, Q, K, F, D = cfg.n_embd, cfg.q_dim, cfg.kv_dim, cfg.n_ff, cfg.head_dim_k
    return {"token_embd": (E, cfg.n_vocab), "output": (E, cfg.n_vocab), "output_norm": (E, 1),
            "attn_q": (E, Q), "attn_k": (E, K), "attn_v": (E, K), "attn_output": (Q, E),
            "ffn_gate": (E, F), "ffn_up": (E, F), "ffn_down": (F, E), "attn_norm": (E, 1),
            "attn_q_norm": (D, 1), "attn_k_norm": (D, 1), "post_attention_norm": (E, 1),
            "ffn_norm": (E, 1), "post_ffw_norm": (E, 1)}


def _dims(cfg) -> dict:
    """The model's dimensions under the names the C door reads them by (_native.DIMS)."""
    return {"n_vocab": cfg.n_vocab, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
            "n_head": cfg.n_head, "n_head_kv": cfg.n_head_kv, "head_dim": cfg.head_dim_k,
            "n_ff": cfg.n_ff, "sliding_window": cfg.sliding_window, "eps": cfg.eps,
            "rope_base_global": cfg.rope_base_global, "rope_base_local": cfg.rope_base_local,
            "rope_scale_global": cfg.rope_scale_global, "softcap": cfg.final_logit_softcap,
            "query_pre_attn_scalar": cfg.query_pre_attn_scalar or cfg.head_dim_k}


def check_door(native=_native) -> None:
    """The names the C core binds by are the ones this module supplies (run at import): a
    tensor or dimension added on one side only is an error here, not a silent misbinding."""
    one = dict.fromkeys(("n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "head_dim_k",
                         "head_dim_v", "n_ff", "context_length", "sliding_window"), 1)
    cfg = config_mod.Config(**one, eps=1e-6, rope_base_global=1.0)   # only its names matter
    pairs = (("tensors", set(_expected_shapes(cfg)),
              set(native.LAYER_TENSORS) | set(native.GLOBAL_TENSORS)),
             ("dimensions", set(_dims(cfg)), set(native.DIMS)))
    for what, ours, theirs in pairs:
        if ours != theirs:
            raise ImportError(f"edge_runtime and its C core disagree on the {what}: only in "
                              f"Python {sorted(ours - theirs)}, only in C {sorted(theirs - ours)}"
                              " (rebuild the extension)")


def _bind(g, cfg):
    """Hand the native core the mapping and where each tensor lies in it, by name."""
    shapes = _expected_shapes(cfg)

    def desc(name, optional=False):
        d = _descriptor(g, name + ".weight", optional)
        short = name.split(".")[-1]
        if d is not None and d[2:] != shapes[short]:
            raise config_mod.UnsupportedModelError(
                f"tensor {name + '.weight'!r} has shape {list(d[2:])}, the config implies "
                f"{list(shapes[short])}")
        return d

    glob = {"token_embd": desc("token_embd"), "output": desc("output", optional=True),
            "output_norm": desc("output_norm")}
    layers = [{name: desc(f"blk.{il}.{name}") for name in _native.LAYER_TENSORS}
              for il in range(cfg.n_layer)]
    swa = bytes(1 if cfg.is_swa(i) else 0 for i in range(cfg.n_layer))
    try:   # g.view pins the mapping (mmap cannot close under it) for as long as the handle lives
        return _native.model_new(g.view, (g.address(), g.size), _dims(cfg), swa, glob, layers)
    except ValueError as e:
        raise config_mod.UnsupportedModelError(f"cannot bind the model: {e}") from None


def _buf(a: np.ndarray):
    """(address, length) of a contiguous array, as the native core checks buffers."""
    return a.ctypes.data, a.nbytes


class KVSnapshot:
    """A copy of a session's KV state after `ids`: restoring it replaces a prefill of `ids`.
    Sliding-window rings that wrapped cannot be rewound, so a snapshot is how a shared prefix
    (tool declarations, a system prompt) is reused whatever its length. (A snapshot left in
    its file, read only when restored: edge_runtime.prefix_cache.FileSnapshot.)"""

    __slots__ = ("ids", "data")

    def __init__(self, ids, data: bytes):
        self.ids, self.data = tuple(ids), data

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def _load_into(self, handle, continued: bool) -> int:
        """Native restore: 0, -1 (not a state of this session's shape), -2 (emptied)."""
        return _native.session_restore(handle, self.data, continued)


class Session:
    """One KV state over a model, used by one owner at a time.

    Each call (eval, reset, prepare, snapshot, restore) holds the session for its duration, and
    a generator of generate() holds it from its first token until it is exhausted, closed or
    collected. Anyone else who tries to use it meanwhile - another thread, a second generator
    interleaved with the first - gets SessionBusyError and changes nothing. A session lent by
    Model.acquire_session() is usable only on the thread that took it. The state belongs to
    the thread that last set it (reset, restore, prepare, generate, or eval on an empty state)
    and to nobody once a lease begins or ends: eval() appending to it from anywhere else
    raises SessionBusyError, so two threads taking turns on one session (each reset + eval)
    get an error instead of each other's tokens. Nor may a thread whose tokens another
    thread's reset dropped append to what is left: it too must reset first."""

    def __init__(self, model: Model):
        self.model = model
        self._handle = _native.session_new(model._handle, model.max_inference_len,
                                           model.prefill_chunk, model.kv_dtype == "f32",
                                           model.threads, model.pages == "release")
        self._cond = model._pool_cond   # guards the four ownership fields, wakes pool waiters
        self._user = self._user_thread = None   # the call or generator using it, and its thread
        self._lease_thread = None                # the thread acquire_session() lent it to
        self._state_thread = None   # who last set the state (None: nobody, after a lease)
        # whose tokens another thread's reset dropped, until they reset themselves: every one,
        # since a later reset of the empty state must not hand it back to them
        self._evicted = weakref.WeakSet()
        self.history: list[int] = []   # the ids whose keys and values the state holds
        # The snapshot the state starts with (restored or taken), while its positions are
        # still held: restoring it again reads back only the ring slots overwritten since.
        self._base = None
        self._interrupted = False      # an eval was interrupted and could not be undone
        self._logits = np.empty(model.config.n_vocab, dtype=np.float32)
        self._last_mark, self._last_kind = 0.0, "prefill"
        self._stats = {"prefill_tokens": 0, "prefill_s": 0.0, "decode_tokens": 0, "decode_s": 0.0}

    # ---- ownership -----------------------------------------------------------------------

    def _enter(self, user):
        me = _thread_token()
        with self._cond:
            if self._user is not None:
                raise SessionBusyError(
                    "the session is in use by a live generate() or another thread's call; "
                    "finish or close that generator first, or take a session of your own "
                    "(Model.acquire_session(), Model.new_session())")
            if self._lease_thread not in (None, me):
                raise SessionBusyError(
                    "the session is lent to another thread by Model.acquire_session()")
            self._user, self._user_thread = user, me

    def _leave(self):
        with self._cond:
            self._user = self._user_thread = None
            self._cond.notify_all()

    @contextmanager
    def _owned(self):
        self._enter(object())
        try:
            yield
        finally:
            self._leave()

    # The pool's side; called by Model with self._cond held (it is the model's condition).
    def _free(self) -> bool:
        return self._user is None and self._lease_thread is None

    def _held_by(self, thread) -> bool:
        return thread in (self._user_thread, self._lease_thread)

    def _lend_to(self, thread):
        self._lease_thread, self._state_thread = thread, None
        self._evicted.clear()

    def _give_back(self):
        with self._cond:
            self._lease_thread, self._state_thread = None, None
            self._evicted.clear()
            self._cond.notify_all()

    # ---- state -----------------------------------------------------------------------------

    @property
    def n_past(self) -> int:
        return len(self.history)

    def native_bytes(self) -> dict:
        return _native.session_sizes(self._handle)

    def reset(self):
        with self._owned():
            self._truncate(0)

    def _truncate(self, n):
        if not _native.session_truncate(self._handle, n):
            n = 0
            _native.session_truncate(self._handle, 0)
        me = _thread_token()
        # whose tokens another thread's reset just dropped: their next eval must not land on
        # what is left as if their tokens were still there
        if len(self.history) > n and self._state_thread not in (None, me):
            self._evicted.add(self._state_thread)
        self._evicted.discard(me)
        self.history = self.history[:n]
        self._keep_base(n)
        self._interrupted = False
        self._state_thread = me

    def eval(self, ids, rows=None) -> np.ndarray:
        """Append ids to the state; logits of the last position (all rows or just `rows`)."""
        with self._owned():
            me = _thread_token()
            if not self.history and me not in self._evicted:
                self._state_thread = me      # an empty state: whoever emptied it hands it on
            elif self._state_thread != me:
                raise SessionBusyError(
                    "the session's state was set by another thread, or it changed hands through "
                    "Model.acquire_session(): its tokens are someone else's; reset() it first")
            return self._eval(ids, rows)

    def _eval(self, ids, rows=None) -> np.ndarray:
        cfg = self.model.config
        ids = token_ids(ids, cfg.n_vocab)
        n = len(ids)
        if n == 0:
            raise InvalidArgumentError("eval needs at least one token")
        if self._interrupted:
            raise SessionInterruptedError("an earlier eval on this session was interrupted and "
                                          "its state is lost: call reset() first")
        if self.n_past + n > self.model.max_inference_len:
            raise ContextLengthError(
                f"{self.n_past} tokens in context + {n} new exceed max_inference_len "
                f"{self.model.max_inference_len}")
        if rows is None:
            out, rows_arr, n_rows = self._logits, None, 0
        else:
            rows_arr = token_ids(rows, cfg.n_vocab, "row id")
            if len(rows_arr) == 0:
                raise InvalidArgumentError("rows must name at least one token")
            out, n_rows = np.empty(len(rows_arr), dtype=np.float32), len(rows_arr)
        t0 = time.perf_counter()
        before = len(self.history)
        try:
            _native.session_eval(self._handle, _buf(ids), n, _buf(out),
                                 None if rows_arr is None else _buf(rows_arr), n_rows)
            self.history.extend(ids.tolist())
        except BaseException:   # Ctrl-C is raised as the native call returns: undo it
            self._rewind(before)
            raise
        dt = time.perf_counter() - t0
        with np.errstate(over="ignore", invalid="ignore"):   # huge finite logits overflow...
            poisoned = not np.isfinite(out.sum())   # NaN/Inf anywhere poisons the sum
        if poisoned and not np.isfinite(out).all():   # ...so look again before refusing
            raise NonFiniteLogitsError(
                "the model produced non-finite logits (NaN or Inf in its weights?)")
        kind = "decode" if n == 1 else "prefill"
        self._stats[kind + "_tokens"] += n
        self._stats[kind + "_s"] += dt
        # Memory only grows inside a session (KV pages fill), so a sample every 50 ms, plus one
        # in stats(), finds the peak at a fraction of the cost of one per token.
        now = time.perf_counter()
        if kind == "prefill" or now - self._last_mark > 0.05:
            self.model.tracker.mark(kind)
            self._last_mark = now
        self._last_kind = kind
        return out.copy()

    def _rewind(self, n):
        """Back to the first n ids; when a wrapped sliding-window ring makes that impossible,
        empty the state and refuse evals until reset() (prepare() rebuilds it anyway)."""
        if _native.session_truncate(self._handle, n):
            del self.history[n:]
        else:
            _native.session_truncate(self._handle, 0)
            self.history, self._interrupted = [], True
        self._keep_base(len(self.history))

    def _keep_base(self, n):
        if self._base is not None and n < len(self._base.ids):
            self._base = None

    def snapshot(self) -> KVSnapshot:
        with self._owned():
            self._base = KVSnapshot(self.history, _native.session_state(self._handle))
            return self._base

    def _write_state(self, fd: int, offset: int) -> int:
        """Write the state's snapshot bytes at offset of file fd, from the KV buffers (no
        copy in memory; edge_runtime.prefix_cache); returns their length."""
        with self._owned():
            return _native.session_state_write(self._handle, fd, offset)

    def restore(self, snap: KVSnapshot):
        with self._owned():
            self._restore(snap)

    def _restore(self, snap: KVSnapshot):
        continued = snap is self._base and not self._interrupted
        self._base = None
        rc = snap._load_into(self._handle, continued)
        if rc == _native.STATE_READ_FAILED:
            self.history, self._interrupted = [], False
            raise ValueError("reading the KV snapshot failed midway (its file changed or "
                             "could not be read); the session's state is now empty")
        if rc == _native.STATE_FOREIGN:
            raise ValueError("KV snapshot does not fit this session (model shape, KV dtype "
                             "or max_inference_len differ, or the data is damaged)")
        self.history, self._interrupted, self._base = list(snap.ids), False, snap
        self._state_thread = _thread_token()

    def prepare(self, ids, snapshot: KVSnapshot | None = None) -> np.ndarray:
        """Make the state hold exactly `ids`, reusing the longest prefix already computed (or
        `snapshot`, when it covers more of ids); returns the last position's logits."""
        with self._owned():
            return self._prepare(ids, snapshot)

    def _prepare(self, ids, snapshot=None) -> np.ndarray:
        ids = list(ids)
        if not ids:
            raise InvalidArgumentError("empty prompt: nothing to evaluate")
        if snapshot is not None and len(snapshot.ids) < len(ids) and \
                tuple(ids[:len(snapshot.ids)]) == snapshot.ids and \
                self.common_prefix(ids) < len(snapshot.ids):
            self._restore(snapshot)
        # at least one token must run to give logits
        self._truncate(min(self.common_prefix(ids), len(ids) - 1))
        return self._eval(ids[self.n_past:])

    def common_prefix(self, ids) -> int:
        """How many of ids the session's state already holds, from the start."""
        n = 0
        for a, b in zip(self.history, ids):
            if a != b:
                break
            n += 1
        return n

    def generate(self, prompt_or_ids, max_tokens=64, temperature=0.0, top_k=0, top_p=1.0,
                 seed=None, stop=None, truncate=None):
        """Yield new token ids. A string prompt is tokenized with BOS; the state is reused where
        it already holds a prefix of the prompt. Stops at EOS/<end_of_turn>, a stop id, or
        once the text produced contains a stop string (that token is yielded).
        A prompt that leaves no room for max_tokens is an error, or with truncate="left" loses
        its oldest tokens (a leading BOS is kept)."""
        tok = self.model.tokenizer
        if isinstance(prompt_or_ids, str):
            ids = tok.encode(prompt_or_ids, add_bos=True, special=True)
        else:
            ids = token_ids(prompt_or_ids, self.model.config.n_vocab).tolist()
        if not ids:
            raise InvalidArgumentError("empty prompt: nothing to evaluate")
        if max_tokens <= 0:
            raise InvalidArgumentError(f"max_tokens must be positive, got {max_tokens}")
        if truncate not in (None, "left"):
            raise InvalidArgumentError(f"truncate must be None or 'left', got {truncate!r}")
        room = self.model.max_inference_len - max_tokens
        if truncate == "left" and len(ids) > room > 1:
            bos = tok.bos_id is not None and ids[0] == tok.bos_id
            ids = ids[:1] + ids[len(ids) - room + 1:] if bos else ids[len(ids) - room:]
        if len(ids) + max_tokens > self.model.max_inference_len:
            raise ContextLengthError(
                f"prompt of {len(ids)} tokens + max_tokens {max_tokens} exceed max_inference_len "
                f"{self.model.max_inference_len}")
        sampler = Sampler(temperature, top_k, top_p, seed)
        stop_ids, stop_strs = {tok.eos_id, tok.find("<end_of_turn>")} - {None, -1}, []
        for s in stop or ():
            (stop_ids.add(s) if isinstance(s, int) else stop_strs.append(s))
        return self._generate(ids, max_tokens, sampler, stop_ids, stop_strs)

    def _generate(self, ids, max_tokens, sampler, stop_ids, stop_strs):
        """The generator owns the session from its first next() to its end or close()."""
        tok = self.model.tokenizer
        self._enter(object())
        try:
            logits = self._prepare(ids)
            produced = []
            for _ in range(max_tokens):
                nxt = sampler.sample(logits)
                if nxt in stop_ids:
                    return
                yield nxt
                produced.append(nxt)
                if stop_strs and any(s in tok.decode(produced) for s in stop_strs):
                    return
                if len(produced) == max_tokens:
                    return
                logits = self._eval([nxt])
        finally:
            self._leave()

    def stats(self) -> dict:
        st = dict(self._stats)
        st["prefill_tok_s"] = st["prefill_tokens"] / st["prefill_s"] if st["prefill_s"] else 0.0
        st["decode_tok_s"] = st["decode_tokens"] / st["decode_s"] if st["decode_s"] else 0.0
        st["load_s"] = self.model.load_seconds
        st["kernel"] = self.model.kernel
        st["threads"] = self.model.threads
        st["max_inference_len"] = self.model.max_inference_len
        st["pages"] = self.model.pages
        st.update(self.native_bytes())
        self.model.tracker.mark(self._last_kind)
        st.update(self.model.tracker.summary())
        return st


check_door()

"""One owner per session: threads and interleaved generators never share a KV state.

The reference for every concurrent run is the same requests run one after another on a fresh
model: concurrent results must equal it exactly, or the call must raise SessionBusyError (and
then change nothing). Tiny random models (tests/conftest.py): the property is about who owns
the state, not about the weights. The interpreter's thread switch interval is cut to 10 us
while threads run, so runs really do interleave token by token.
"""
from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np
import pytest

import edge_runtime as er
from edge_runtime.agent import Agent
from edge_runtime.errors import MemoryBudgetError, SessionBusyError

CTX = 4096
REQUESTS = ["beep twice", "note that the door is open", "beep three times",
            "note the time"]
PROMPTS = [[2] + np.random.default_rng(i).integers(300, 512, 19).tolist() for i in range(4)]
N_NEW = 12
JOIN_S = 300


def say(words: str) -> str:
    """Say something out loud."""
    return f"said {len(words)} chars"


def note(text: str) -> str:
    """Keep a note."""
    return f"noted {len(text)} chars"


def tiny_path(factory):
    return factory(context_length=4096, sliding_window=8, seed=0)   # seed: requests differ


def load(factory, **kw):
    return er.Model.load(tiny_path(factory), max_inference_len=CTX, threads=1, **kw)


def agent(model):
    return Agent(model, [say, note], system="use the tools", max_tokens=12)


def outcome(a, request):
    r = a.run(request, max_steps=2)
    return {"calls": r.calls, "text": r.text}


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def in_threads(work, n):
    """work(i) on n threads started together: [(result, None) | (None, exception)] by i."""
    out = [None] * n
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        try:
            out[i] = (work(i), None)
        except Exception as e:   # compared below
            out[i] = (None, e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return out


@pytest.fixture(scope="module")
def sequential_agent_outcomes(tiny_gguf_factory):
    a = agent(load(tiny_gguf_factory))
    got = [outcome(a, r) for r in REQUESTS]
    assert len({str(g) for g in got}) > 1       # the requests do differ
    return got


@pytest.fixture(scope="module")
def sequential_generations(tiny_gguf_factory):
    m = load(tiny_gguf_factory)
    got = [list(m.generate(p, max_tokens=N_NEW)) for p in PROMPTS]
    assert len({tuple(g) for g in got}) == len(PROMPTS)
    return got


# ---- agents on threads ----------------------------------------------------------------------

@pytest.mark.parametrize("pool", [1, 3])
@pytest.mark.parametrize("shared_agent", [False, True], ids=["own agent", "shared agent"])
def test_agents_on_threads_give_the_sequential_results(tiny_gguf_factory, fast_switching,
                                                       sequential_agent_outcomes, pool,
                                                       shared_agent):
    """Each run holds a session of the pool from its first token to its last: with one session
    the runs queue, with three they run side by side on their own KV states."""
    m = load(tiny_gguf_factory, sessions=pool)
    shared = agent(m)
    agents = [shared if shared_agent else agent(m) for _ in REQUESTS]
    rounds = 2   # the second round starts from states the first round left behind
    got = in_threads(lambda i: [outcome(agents[i], REQUESTS[i]) for _ in range(rounds)],
                     len(REQUESTS))
    assert [err for _, err in got] == [None] * len(REQUESTS)
    assert [res for res, _ in got] == [[want] * rounds for want in sequential_agent_outcomes]
    assert 1 <= len(m._pool) <= pool


def test_a_shared_agent_builds_its_lazy_state_once(tiny_gguf_factory, monkeypatch):
    """Two threads starting on one Agent at once: its token constraint is built once and its
    prefix's KV state computed once (the other session waits, then restores it)."""
    import edge_runtime.agent as agent_mod
    m = load(tiny_gguf_factory, sessions=2)
    shared = agent(m)
    built, snapshots = [], []
    real_constraint, real_snapshot = agent_mod.TokenConstraint, er.Session.snapshot

    def slow_constraint(*a, **kw):
        built.append(threading.current_thread().name)
        threading.Event().wait(0.3)      # both threads get to the lazy build meanwhile
        return real_constraint(*a, **kw)

    def counted_snapshot(self):
        snapshots.append(threading.current_thread().name)
        return real_snapshot(self)
    monkeypatch.setattr(agent_mod, "TokenConstraint", slow_constraint)
    monkeypatch.setattr(er.Session, "snapshot", counted_snapshot)
    start = threading.Barrier(2)

    def run(i):
        start.wait()
        return outcome(shared, REQUESTS[0])
    got = in_threads(run, 2)
    assert [err for _, err in got] == [None, None]
    assert got[0][0] == got[1][0]
    assert len(built) == 1 and len(snapshots) == 1


# ---- one model, its default session and the pool --------------------------------------------

def test_threads_generating_on_the_default_session_get_results_or_busy(
        tiny_gguf_factory, fast_switching, sequential_generations):
    m = load(tiny_gguf_factory)

    def work(i):
        return [list(m.generate(PROMPTS[i], max_tokens=N_NEW)) for _ in range(3)]

    got = in_threads(work, len(PROMPTS))
    for i, (res, err) in enumerate(got):
        if err is None:
            assert res == [sequential_generations[i]] * 3
        else:
            assert isinstance(err, SessionBusyError), err
    assert any(err is None for _, err in got)
    # whoever got an error changed nothing: the session still gives the sequential results
    assert [list(m.generate(p, max_tokens=N_NEW)) for p in PROMPTS] == sequential_generations


def test_threads_taking_turns_with_reset_and_eval_get_results_or_busy(tiny_gguf_factory,
                                                                       fast_switching):
    """reset() then eval() are two calls: another thread's reset in between would hand the
    second call someone else's tokens. The state belongs to the thread that set it."""
    ref = load(tiny_gguf_factory).new_session()
    want = []
    for p in PROMPTS:
        ref.reset()
        head = ref.eval(p[:10])
        want.append((head, ref.eval(p[10:])))
    m = load(tiny_gguf_factory)

    def work(i):
        outs = []
        for _ in range(20):
            try:
                m.reset()
                outs.append((m.eval(PROMPTS[i][:10]), m.eval(PROMPTS[i][10:])))
            except SessionBusyError:
                outs.append(None)
        return outs

    got = in_threads(work, len(PROMPTS))
    n_ok = 0
    for i, (res, err) in enumerate(got):
        assert err is None, err
        for pair in res:
            if pair is not None:
                n_ok += 1
                np.testing.assert_array_equal(pair[0], want[i][0])
                np.testing.assert_array_equal(pair[1], want[i][1])
    assert n_ok > 0


def test_a_reset_by_another_thread_between_two_evals_is_an_error(tiny_gguf_factory):
    """The interleaving the test above can hit only by chance, forced: A evaluates a prefix,
    B resets the session, A appends the rest. A must not get logits of the rest alone (as if
    its prefix were there); the state is B's, so A's eval is refused and changes nothing."""
    m = load(tiny_gguf_factory)
    p = PROMPTS[0]

    def step(fn):
        out = []
        t = threading.Thread(target=lambda: out.append(fn()))
        t.start()
        t.join(JOIN_S)
        return out[0]

    # A = this thread; B = a thread of its own for each of its calls
    m.reset()
    m.eval(p[:10])
    step(m.reset)
    with pytest.raises(SessionBusyError):
        m.eval(p[10:])
    assert m.n_past == 0
    m.reset()                                   # A takes the state back explicitly
    np.testing.assert_array_equal(m.eval(p), load(tiny_gguf_factory).eval(p))


def test_a_second_reset_does_not_hand_the_state_back_to_the_thread_first_evicted(
        tiny_gguf_factory):
    """A evaluates a prefix, B resets, C resets the empty state, A appends the rest: A's tokens
    are still gone, so its eval is refused (not answered as if the rest were all there)."""
    m = load(tiny_gguf_factory)
    p = PROMPTS[0]

    def other_thread(fn):
        t = threading.Thread(target=fn)
        t.start()
        t.join(JOIN_S)

    m.reset()
    m.eval(p[:10])
    other_thread(m.reset)
    other_thread(m.reset)
    with pytest.raises(SessionBusyError):
        m.eval(p[10:])
    m.reset()
    np.testing.assert_array_equal(m.eval(p), load(tiny_gguf_factory).eval(p))


@pytest.mark.parametrize("pool", [1, 2])
def test_threads_on_acquired_sessions_give_the_sequential_results(
        tiny_gguf_factory, fast_switching, sequential_generations, pool):
    m = load(tiny_gguf_factory, sessions=pool)

    def work(i):
        outs = []
        for _ in range(3):
            with m.acquire_session() as s:
                outs.append(list(s.generate(PROMPTS[i], max_tokens=N_NEW)))
        return outs

    got = in_threads(work, len(PROMPTS))
    assert [err for _, err in got] == [None] * len(PROMPTS)
    assert [res for res, _ in got] == [[want] * 3 for want in sequential_generations]


# ---- interleaving in one thread -------------------------------------------------------------

def test_interleaved_generators_on_one_session_raise(tiny_gguf_factory, sequential_generations):
    m = load(tiny_gguf_factory)
    first = m.generate(PROMPTS[0], max_tokens=N_NEW)
    got = [next(first), next(first)]
    second = m.generate(PROMPTS[1], max_tokens=N_NEW)   # arguments checked, nothing run yet
    with pytest.raises(SessionBusyError, match="live generate"):
        next(second)
    for call in (lambda: m.eval([5]), m.reset, lambda: m.session.snapshot(),
                 lambda: m.session.prepare(PROMPTS[1])):
        with pytest.raises(SessionBusyError):
            call()
    got += list(first)                                  # untouched by the refused users
    assert got == sequential_generations[0]
    third = m.generate(PROMPTS[2], max_tokens=N_NEW)    # once the first is done: free again
    assert list(third) == sequential_generations[2]


def test_a_closed_or_dropped_generator_frees_the_session(tiny_gguf_factory,
                                                         sequential_generations):
    m = load(tiny_gguf_factory)
    g = m.generate(PROMPTS[0], max_tokens=N_NEW)
    next(g)
    g.close()
    assert list(m.generate(PROMPTS[1], max_tokens=N_NEW)) == sequential_generations[1]
    for _ in m.generate(PROMPTS[0], max_tokens=N_NEW):
        break                                           # the loop drops the generator
    assert list(m.generate(PROMPTS[3], max_tokens=N_NEW)) == sequential_generations[3]


def test_separate_sessions_interleave_freely(tiny_gguf_factory, sequential_generations):
    m = load(tiny_gguf_factory)
    gens = [m.new_session().generate(p, max_tokens=N_NEW) for p in PROMPTS]
    got = [[] for _ in PROMPTS]
    for _ in range(N_NEW):                              # round-robin, token by token
        for i, g in enumerate(gens):
            t = next(g, None)
            if t is not None:
                got[i].append(t)
    assert got == sequential_generations


# ---- the pool -------------------------------------------------------------------------------

def test_pool_size_follows_the_budget(tiny_gguf_factory, monkeypatch):
    monkeypatch.setattr("edge_runtime.decoder.default_threads", lambda: 16)   # cores: no bound
    path = tiny_path(tiny_gguf_factory)
    p = er.memory.plan_for_model(path, CTX, threads=1)
    one = er.Model.load(path, max_inference_len=CTX, threads=1)
    assert one.session_pool_size == 1                   # no budget: one session
    # what the helper counts per session is what a session allocates
    st = one.session.native_bytes()
    assert p.session_bytes == st["kv"] + st["scratch"] + st["scores"] + 4 * one.config.n_vocab
    for extra in (0, 1, 4):
        budget = p.total_resident + extra * p.session_bytes + p.session_bytes // 2
        assert p.sessions_within(budget) == 1 + extra
        m = er.Model.load(path, max_inference_len=CTX, threads=1, budget=budget)
        assert m.session_pool_size == 1 + extra
    budget = p.total_resident + p.session_bytes
    assert er.Model.load(path, max_inference_len=CTX, threads=1, budget=budget,
                         sessions=2).session_pool_size == 2
    with pytest.raises(MemoryBudgetError, match="3 sessions .* it holds 2"):
        er.Model.load(path, max_inference_len=CTX, threads=1, budget=budget, sessions=3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="sessions must be"):
            er.Model.load(path, max_inference_len=CTX, threads=1, sessions=bad)


def test_pool_size_keeps_sessions_times_threads_within_the_cores(tiny_gguf_factory, monkeypatch):
    """Sized by the budget, the pool never runs more threads at once than there are cores (the
    process's CPUs, or fewer on a board): more would only slow every request's steps down."""
    monkeypatch.setattr("edge_runtime.decoder.default_threads", lambda: 4)
    path = tiny_path(tiny_gguf_factory)
    p = er.memory.plan_for_model(path, CTX, threads=1)
    budget = p.total_resident + 7 * p.session_bytes      # holds 8 sessions
    assert p.sessions_within(budget) == 8

    def pool(**kw):
        return er.Model.load(path, max_inference_len=CTX, budget=budget, **kw).session_pool_size
    assert [pool(threads=t) for t in (1, 2, 3, 4)] == [4, 2, 1, 1]
    board = dataclasses.replace(er.boards.get("rpi-zero-2w"), cores=2, default_threads=1)
    assert pool(board=board) == 2
    assert pool(threads=1, sessions=6) == 6     # asked for: as asked, within the budget


def test_acquire_lends_distinct_sessions_then_refuses_instead_of_hanging(tiny_gguf_factory):
    m = load(tiny_gguf_factory, sessions=2)
    with m.acquire_session() as a:
        assert a is m.session                           # the default session comes first
        with m.acquire_session() as b:
            assert b is not a
            # both held by this very thread: waiting (timeout None) would never end
            with pytest.raises(SessionBusyError, match="held by this thread"):
                with m.acquire_session():
                    pass
            # another thread waits its timeout, then gets a clear error

            def try_acquire(i):
                with m.acquire_session(timeout=0.2):
                    pass

            (res, err), = in_threads(try_acquire, 1)
            assert isinstance(err, SessionBusyError) and "within 0.2 s" in str(err)
    assert len(m._pool) == 2
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        with m.acquire_session():
            pass


def test_acquire_blocks_until_a_session_is_given_back(tiny_gguf_factory):
    m = load(tiny_gguf_factory)
    lent, waiting, got = threading.Event(), threading.Event(), []

    def holder():
        with m.acquire_session() as s:
            lent.set()
            waiting.wait(JOIN_S)
            s.reset()
            s.eval([2, 300])

    def waiter():
        lent.wait(JOIN_S)
        waiting.set()
        with m.acquire_session(timeout=None) as s:
            got.append(s)

    threads = [threading.Thread(target=f) for f in (holder, waiter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert got == [m.session]


def test_a_lent_session_is_the_borrowers_alone(tiny_gguf_factory):
    m = load(tiny_gguf_factory)
    m.eval(PROMPTS[0])
    with m.acquire_session() as s:
        # it comes with someone else's tokens: appending to them is refused
        with pytest.raises(SessionBusyError, match="someone else's"):
            s.eval([5])
        s.reset()
        want = s.eval(PROMPTS[1])
        # other threads cannot use it, through the model or the session
        for call in (lambda: m.eval([5]), m.reset, lambda: s.eval([5]),
                     lambda: list(m.generate(PROMPTS[2], max_tokens=2))):
            (res, err), = in_threads(lambda i: call(), 1)
            assert isinstance(err, SessionBusyError) and "another thread" in str(err), err
        assert s.history == PROMPTS[1]
    with pytest.raises(SessionBusyError, match="someone else's"):
        m.eval([5])                                     # after the lease: the borrower's tokens
    m.reset()
    np.testing.assert_array_equal(m.eval(PROMPTS[1]), want)


def test_agent_waits_for_a_session_held_by_a_generator_of_another_thread(
        tiny_gguf_factory, sequential_agent_outcomes, sequential_generations):
    m = load(tiny_gguf_factory)
    a = agent(m)
    started, result = threading.Event(), []

    def run_agent():
        started.wait(JOIN_S)
        result.append(outcome(a, REQUESTS[0]))

    t = threading.Thread(target=run_agent)
    t.start()
    g = m.generate(PROMPTS[0], max_tokens=N_NEW)
    toks = [next(g)]
    started.set()
    toks += list(g)
    t.join(JOIN_S)
    assert toks == sequential_generations[0]
    assert result == [sequential_agent_outcomes[0]]


def test_an_agent_run_inside_a_live_generator_of_the_same_thread_raises(tiny_gguf_factory):
    m = load(tiny_gguf_factory)
    g = m.generate(PROMPTS[0], max_tokens=N_NEW)
    next(g)
    with pytest.raises(SessionBusyError, match="held by this thread"):
        agent(m).run(REQUESTS[0])
    g.close()

"""Prefix reuse (the tool declarations' KV state) in memory and on disk.

The reference for every reuse check is the same agent run with reuse_prefix=False, which
prefills the whole prompt in one go: calls and text must be identical, and the number of
tokens evaluated must drop by exactly the prefix that was not recomputed.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import edge_runtime as er
from edge_runtime.agent import Agent
from edge_runtime.prefix_cache import PrefixCache, PrefixCacheWarning

HERE = os.path.dirname(os.path.abspath(__file__))
REQUESTS = ["beep twice", "note that the door is open", "beep twice"]
CTX = 1024


def beep(times: int) -> dict:
    """Beep a few times.

    Args:
        times: How many beeps.
    """
    return {"beeped": times}


def note(text: str) -> str:
    """Keep a note."""
    return f"noted {len(text)} chars"


TOOLS = [beep, note]


def make_agent(model, **kw):
    return Agent(model, TOOLS, system="use the tools", max_tokens=12, **kw)


def outcome(agent, request):
    r = agent.run(request, max_steps=2)
    return {"calls": r.calls, "text": r.text}


def evaluated(model):
    st = model.stats()
    return st["prefill_tokens"] + st["decode_tokens"]


def tiny(factory, window=8, seed=0, kv_dtype="f16"):
    path = factory(context_length=2048, sliding_window=window, seed=seed)
    return er.Model.load(path, max_inference_len=CTX, threads=1, kv_dtype=kv_dtype)


def baseline(model, request):
    """Output of a run that prefills everything, on a fresh session of the same model."""
    fresh = er.Model.load(model.gguf.path, max_inference_len=CTX, threads=1,
                          kv_dtype=model.kv_dtype)
    return outcome(make_agent(fresh, reuse_prefix=False), request), evaluated(fresh)


# ---- in memory ------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [8, 512])   # the prefix (284 tokens) is longer / shorter
def test_reuse_gives_the_same_calls_and_text_and_skips_the_prefix(tiny_gguf_factory, window):
    reuse_model, full_model = tiny(tiny_gguf_factory, window), tiny(tiny_gguf_factory, window)
    reuse, full = make_agent(reuse_model), make_agent(full_model, reuse_prefix=False)
    n_prefix = len(reuse.prefix_ids())
    assert (n_prefix > window) == (window == 8)
    for request in REQUESTS:       # the state wanders off between requests: rings move on
        got, want = outcome(reuse, request), outcome(full, request)
        assert got == want
        assert got["calls"], "the forced first reply must hold a call"
    # the prefix was evaluated once instead of once per request
    assert evaluated(reuse_model) == evaluated(full_model) - (len(REQUESTS) - 1) * n_prefix


def test_a_session_used_by_others_in_between_still_reuses_correctly(tiny_gguf_factory):
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m)
    first = outcome(agent, REQUESTS[0])
    m.reset()
    list(m.generate([2, 300, 301, 302] * 10, max_tokens=4))   # someone else uses the session
    assert outcome(agent, REQUESTS[0]) == first == baseline(m, REQUESTS[0])[0]


@pytest.mark.model
def test_reuse_on_the_default_model_with_a_prefix_longer_than_the_window(default_model):
    from edge_runtime.tools_builtin import TOOLS as BUILTIN
    m = er.Model.load(default_model, max_inference_len=2048, threads=1)
    system = "You are a careful home assistant. " * 40       # pushes the prefix past 512
    reuse = Agent(m, BUILTIN, system=system, max_tokens=8)
    full = Agent(m, BUILTIN, system=system, max_tokens=8, reuse_prefix=False)
    assert len(reuse.prefix_ids()) > m.config.sliding_window
    for request in ("set a timer for 10 minutes", "turn on the kitchen lights"):
        # the two agents share one session, so each run also starts from the other's state
        assert reuse.run(request, max_steps=1) == full.run(request, max_steps=1)


# ---- on disk --------------------------------------------------------------------------------

_CHILD = """
import json, sys, warnings
sys.path.insert(0, {here!r})
import edge_runtime as er
from test_prefix_cache import CTX, REQUESTS, evaluated, make_agent, outcome
warnings.simplefilter("error")          # any warning (an ignored snapshot) fails the child
m = er.Model.load({path!r}, max_inference_len=CTX, threads=1)
out = outcome(make_agent(m, cache_dir={cache!r}), REQUESTS[0])
print(json.dumps({{"out": out, "evaluated": evaluated(m)}}))
"""


def test_snapshot_file_is_used_by_a_new_process(tiny_gguf_factory, tmp_path):
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m, cache_dir=tmp_path)
    outcome(agent, REQUESTS[1])
    files = list(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".kvs"]           # one snapshot, no temporary left
    want, n_full = baseline(m, REQUESTS[0])
    code = _CHILD.format(here=HERE, path=m.gguf.path, cache=str(tmp_path))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert got["out"] == json.loads(json.dumps(want))
    assert got["evaluated"] == n_full - len(agent.prefix_ids())   # the prefill came from disk


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 1000])


def _bad_magic(path):
    data = path.read_bytes()
    path.write_bytes(b"NOTASNAP" + data[8:])


@pytest.mark.parametrize("damage, why", [(_flip_last_byte, "checksum"), (_truncate, "truncated"),
                                         (_bad_magic, "not a prefix snapshot")])
def test_a_damaged_snapshot_is_ignored_with_a_warning_and_rewritten(tiny_gguf_factory, tmp_path,
                                                                    damage, why):
    m = tiny(tiny_gguf_factory)
    outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0])
    (path,) = tmp_path.iterdir()
    damage(path)
    want, n_full = baseline(m, REQUESTS[1])
    m2 = tiny(tiny_gguf_factory)
    with pytest.warns(PrefixCacheWarning, match=why):
        got = outcome(make_agent(m2, cache_dir=tmp_path), REQUESTS[1])
    assert got == want
    assert evaluated(m2) == n_full                 # recomputed, not taken from the file
    m3 = tiny(tiny_gguf_factory)                   # and the file was rewritten, valid again
    assert make_agent(m3, cache_dir=tmp_path).run(REQUESTS[1], max_steps=2).calls == want["calls"]
    assert evaluated(m3) < n_full


@pytest.mark.parametrize("other", [dict(seed=1), dict(kv_dtype="f32")])
def test_a_snapshot_of_another_model_or_kv_dtype_is_ignored(tiny_gguf_factory, tmp_path, other):
    mine = tiny(tiny_gguf_factory)
    agent = make_agent(mine, cache_dir=tmp_path)
    outcome(agent, REQUESTS[0])
    (written,) = tmp_path.iterdir()
    m = tiny(tiny_gguf_factory, **other)
    target = PrefixCache(tmp_path, m).path_for(agent.prefix_ids())
    assert target != written                       # keyed apart: never even looked up ...
    shutil.copy(written, target)                   # ... unless someone puts it there
    want, n_full = baseline(m, REQUESTS[0])
    with pytest.warns(PrefixCacheWarning, match="another model"):
        assert outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(m) == n_full


def test_a_well_formed_file_the_session_refuses_is_ignored(tiny_gguf_factory, tmp_path):
    """Header and checksum fine, but the state inside is f16 for an f32 session: the native
    restore refuses it, and that too is only a warning."""
    f16 = tiny(tiny_gguf_factory)
    a = make_agent(f16)
    outcome(a, REQUESTS[0])
    f32 = tiny(tiny_gguf_factory, kv_dtype="f32")
    PrefixCache(tmp_path, f32).save(a.prefix_snapshot)
    want, n_full = baseline(f32, REQUESTS[0])
    with pytest.warns(PrefixCacheWarning, match="does not fit"):
        assert outcome(make_agent(f32, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(f32) == n_full


def test_an_unwritable_cache_dir_only_warns(tiny_gguf_factory, tmp_path):
    m = tiny(tiny_gguf_factory)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(PrefixCacheWarning, match="cannot write"):
        got = outcome(make_agent(m, cache_dir=blocker / "kv"), REQUESTS[0])
    assert got == baseline(m, REQUESTS[0])[0]


# ---- the planner and the command line -------------------------------------------------------

@pytest.mark.parametrize("window", [8, 512])
def test_the_plan_row_is_the_snapshot_size(tiny_gguf_factory, window):
    m = tiny(tiny_gguf_factory, window)
    agent = make_agent(m)
    outcome(agent, REQUESTS[0])
    n = len(agent.prefix_ids())
    p = er.memory.plan(m.config, CTX, snapshot_tokens=n)
    (row,) = [b for name, b, _ in p.rows if name.startswith("prefix snapshot")]
    assert row == agent.prefix_snapshot.nbytes
    without = er.memory.plan(m.config, CTX)
    assert p.total_anon - without.total_anon == row


def test_cli_agent_cache_dir(tiny_gguf_factory, tmp_path, capsys):
    from edge_runtime.cli import main
    path = tiny_gguf_factory(context_length=2048, sliding_window=8)
    argv = ["agent", "--model", path, "--threads", "1", "--max-steps", "1", "--json",
            "--cache-dir", str(tmp_path), "beep twice"]
    outs = []
    for _ in range(2):
        assert main(argv) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert [f.suffix for f in tmp_path.iterdir()] == [".kvs"]
    assert outs[0] == outs[1] and outs[0]["calls"]

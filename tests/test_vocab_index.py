"""The grammar's vocabulary index file (edge_runtime/calls/vocab.py): built once per model in the
cache directory, memory-mapped, rebuilt when the model or the file changes, and giving the
constraint the same allowed sets as the index built in memory - which the grammar's own
byte-by-byte steps (an independent reference) confirm."""
import random
import shutil
import warnings

import numpy as np
import pytest

from edge_runtime.calls.formats import python as python_format
from edge_runtime.calls.grammar import CallGrammar, TokenConstraint
from edge_runtime.calls.schema import schema_from_callable
from edge_runtime.calls.syntax import END, ESC
from edge_runtime.calls.vocab import Vocab, VocabIndexWarning, _pieces_and_special, index_path
from edge_runtime.calls.formats.functiongemma import SYNTAX as FG_SYNTAX
from edge_runtime.calls.formats.functiongemma import tokens as T
from edge_runtime.gguf import open_gguf
from edge_runtime.tokenizer import Tokenizer
from edge_runtime.tools_builtin import TOOLS

pytest.importorskip("gguf")
SCHEMAS = [schema_from_callable(f) for f in TOOLS]
# both call formats: FunctionGemma (its control tokens as symbols) and Python call syntax
FORMATS = {"functiongemma": (FG_SYNTAX, {ESC: T.ESCAPE_ID, END: T.END_CALL_ID}),
           "python": (python_format.SYNTAX, {})}


def _constraints(*vocabs, fmt="functiongemma"):
    syntax, symbol_ids = FORMATS[fmt]
    g = CallGrammar(SCHEMAS, syntax)
    return [TokenConstraint(g, v, symbol_ids) for v in vocabs]


def _tok(path):
    return Tokenizer.from_gguf(open_gguf(path))


def _mapped_paths():
    with open("/proc/self/maps") as f:
        return {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}


@pytest.fixture
def model(tiny_gguf_factory, tmp_path):
    """A private copy of a tiny model (tests replace it in place)."""
    path = tmp_path / "m.gguf"
    shutil.copy(tiny_gguf_factory(n_vocab=600), path)
    return str(path)


def test_index_file_is_built_once_and_mapped(model, tmp_path):
    cache = tmp_path / "cache"
    v = Vocab.from_tokenizer(_tok(model), cache_dir=cache)
    assert v.path is not None and v.path.parent == cache and v.path.exists()
    assert str(v.path) in _mapped_paths()                   # file-backed, not a copy
    assert not v.normal.flags.owndata and not v.chars.flags.owndata
    built = v.path.stat().st_mtime_ns
    w = Vocab.from_tokenizer(_tok(model), cache_dir=cache)  # a new tokenizer: maps the file
    assert w.path == v.path and w.path.stat().st_mtime_ns == built
    assert [p.name for p in cache.glob("*.idx")] == [v.path.name]


def _same_index(a, b):
    assert a.n == b.n and a.byte_fallback == b.byte_fallback
    assert [a.pieces[i] for i in range(a.n)] == [b.pieces[i] for i in range(b.n)]
    assert np.array_equal(a.normal, b.normal) and np.array_equal(a.chars, b.chars)
    assert len(a.keys) == len(b.keys)
    assert [a.keys[k] for k in range(len(a.keys))] == [b.keys[k] for k in range(len(b.keys))]
    assert [a.ids[k] for k in range(len(a.ids))] == [b.ids[k] for k in range(len(b.ids))]


def _accepted(c, state):
    """Reference: the ids whose symbols the grammar steps through one by one."""
    ok = []
    for i in range(c.v.n):
        try:
            c.advance(state, i)
            ok.append(i)
        except ValueError:
            pass
    return ok


def _random_states(c, n_walks, seed):
    """States met on random constrained walks (structure, names, strings, numbers)."""
    rng = random.Random(seed)
    for _ in range(n_walks):
        st = c.start()
        while not c.g.done(st):
            yield st
            st = c.advance(st, int(rng.choice(c.allowed(st).tolist())))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mapped_index_equals_the_in_memory_construction(model, tmp_path, fmt):
    tok = _tok(model)
    mapped = Vocab.from_tokenizer(tok, cache_dir=tmp_path / "cache")
    memory = Vocab(*_pieces_and_special(tok))
    assert mapped.path is not None and memory.path is None
    _same_index(mapped, memory)
    a, b = _constraints(mapped, memory, fmt=fmt)
    n = 0
    for st in _random_states(a, 40, seed=1):
        allowed = a.allowed(st)
        assert np.array_equal(allowed, b.allowed(st))
        # every allowed token is one the grammar steps through (soundness, independently)
        assert set(allowed.tolist()) <= set(_accepted(a, st))
        n += 1
    assert n > 200


def test_a_changed_model_gets_a_new_index_and_the_old_one_goes(model, tiny_gguf_factory,
                                                               tmp_path):
    cache = tmp_path / "cache"
    old = Vocab.from_tokenizer(_tok(model), cache_dir=cache).path
    built = old.stat().st_mtime_ns
    # other weights, same vocabulary and metadata: the index still holds
    shutil.copy(tiny_gguf_factory(n_vocab=600, seed=7), model)
    assert Vocab.from_tokenizer(_tok(model), cache_dir=cache).path == old
    assert old.stat().st_mtime_ns == built
    # another vocabulary (ids 46..52 named as in base Gemma) at the same path: rebuilt
    shutil.copy(tiny_gguf_factory(n_vocab=600, function_tokens=False), model)
    tok = _tok(model)
    assert index_path(tok.gguf, tok.n_vocab, cache) != old
    v = Vocab.from_tokenizer(tok, cache_dir=cache)
    assert v.path == index_path(tok.gguf, tok.n_vocab, cache) and v.path.exists()
    assert not old.exists()
    _same_index(v, Vocab(*_pieces_and_special(tok)))


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign"])
def test_a_damaged_index_file_is_rebuilt(model, tmp_path, damage):
    cache = tmp_path / "cache"
    path = Vocab.from_tokenizer(_tok(model), cache_dir=cache).path
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        del data[-100:]
    else:
        data[40:72] = bytes(32)          # the key: made for another model
    path.write_bytes(bytes(data))
    tok = _tok(model)
    with pytest.warns(VocabIndexWarning, match="rebuilding vocabulary index"):
        v = Vocab.from_tokenizer(tok, cache_dir=cache)
    assert v.path == path
    _same_index(v, Vocab(*_pieces_and_special(tok)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Vocab.from_tokenizer(_tok(model), cache_dir=cache)       # the rebuilt file is good


def test_unwritable_cache_keeps_the_index_in_memory(model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    tok = _tok(model)
    with pytest.warns(VocabIndexWarning, match="keeping it in memory"):
        v = Vocab.from_tokenizer(tok, cache_dir=blocker / "cache")
    assert v.path is None
    _same_index(v, Vocab(*_pieces_and_special(tok)))


@pytest.mark.model
def test_real_vocabulary_mapped_equals_in_memory(default_model, tmp_path):
    tok = _tok(default_model)
    mapped = Vocab.from_tokenizer(tok, cache_dir=tmp_path)
    memory = Vocab(*_pieces_and_special(tok))
    _same_index(mapped, memory)
    a, b = _constraints(mapped, memory)
    states = list(_random_states(a, 3, seed=2))
    for st in random.Random(3).sample(states, min(12, len(states))):
        assert np.array_equal(a.allowed(st), b.allowed(st))


def test_content_masks_are_saved_beside_the_index(model, tmp_path):
    cache = tmp_path / "cache"
    auto = FG_SYNTAX.string_automaton
    v = Vocab.from_tokenizer(_tok(model), cache_dir=cache)
    want = {(st, room): v.content_ids(auto, st, room) for st in (0, 1, 9) for room in (0, 2, 64)}
    saved = list(cache.glob("*.masks"))
    assert len(saved) == 1 and saved[0].name.startswith(v.path.name)
    w = Vocab.from_tokenizer(_tok(model), cache_dir=cache)     # a fresh process, in effect

    def no_compute(*a):
        raise AssertionError("a saved content mask was computed again")
    w._content_chunk = no_compute
    for (st, room), ids in want.items():
        assert np.array_equal(w.content_ids(auto, st, room), ids)
    # a damaged masks file is ignored (recomputed), never trusted
    data = bytearray(saved[0].read_bytes())
    data[-1] ^= 0xFF
    saved[0].write_bytes(bytes(data))
    x = Vocab.from_tokenizer(_tok(model), cache_dir=cache)
    memory = Vocab(*_pieces_and_special(_tok(model)))
    for (st, room), ids in want.items():
        assert np.array_equal(x.content_ids(auto, st, room), ids)
        assert np.array_equal(memory.content_ids(auto, st, room), ids)

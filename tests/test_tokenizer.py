"""Tokenizer parity with llama.cpp (through llama-cpp-python) on a real Gemma 3 vocabulary.

The model comes from the `model_path` fixture: EDGE_RUNTIME_TEST_MODEL if set, else the
default model (ids 46..52 renamed to FunctionGemma's control tokens). Either file works:
the corpus takes the texts of ids 46..52 from the vocabulary under test.
"""
from __future__ import annotations

import ctypes
import os

import pytest

from edge_runtime.gguf import open_gguf
from edge_runtime.tokenizer import Tokenizer, TokenizerError
from tokenizer_corpus import corpus

FUNCTION_IDS = range(46, 53)


@pytest.fixture(scope="module")
def model_path(request):
    return os.environ.get("EDGE_RUNTIME_TEST_MODEL") or request.getfixturevalue("default_model")


@pytest.fixture(scope="module")
def tok(model_path):
    return Tokenizer.from_gguf(open_gguf(model_path))


@pytest.fixture(scope="module")
def llama(model_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    return llama_cpp.Llama(model_path, vocab_only=True, verbose=False)


@pytest.fixture(scope="module")
def texts(tok):
    markers = [tok.token_to_piece(i).decode() for i in FUNCTION_IDS]
    return corpus(markers)


def mismatches(tok, llama, texts, add_bos, special):
    bad = []
    for s in texts:
        ours = tok.encode(s, add_bos=add_bos, special=special)
        ref = llama.tokenize(s.encode(), add_bos=add_bos, special=special)
        if ours != ref:
            bad.append((s, ours, ref))
    return bad


def test_corpus_is_broad(texts):
    assert len(texts) >= 300
    for probe in ("<start_of_turn>", "\t", "  ", "🤖", "日本", "مرحبا", "नमस्ते", "é", "{\"", "42"):
        assert any(probe in s for s in texts), probe


def test_encode_matches_llama_cpp_special(tok, llama, texts):
    assert mismatches(tok, llama, texts, add_bos=True, special=True)[:3] == []


def test_encode_matches_llama_cpp_plain(tok, llama, texts):
    # Literal markers stay text, yet user-defined tokens ("\n", runs of spaces) still split.
    subset = [s for s in texts if "<" in s or "[" in s or "\n" in s or "  " in s]
    assert len(subset) >= 80
    assert mismatches(tok, llama, subset, add_bos=True, special=False)[:3] == []


def test_encode_without_bos_matches(tok, llama, texts):
    assert mismatches(tok, llama, texts[::5], add_bos=False, special=True)[:3] == []


def test_known_ids(tok, model_path):
    # Fixed expectations that do not depend on llama-cpp-python being installed.
    assert tok.encode("Hello world") == [2, 9259, 1902]
    assert tok.encode("<start_of_turn>user\nhi<end_of_turn>\n") == [2, 105, 2364, 107, 2202, 106, 107]
    assert tok.encode("<start_of_turn>", special=False)[:2] == [2, 236820]
    assert tok.encode("", add_bos=True) == [2] and tok.encode("", add_bos=False) == []
    for i in FUNCTION_IDS:
        assert tok.encode(tok.token_to_piece(i), add_bos=False) == [i]


def test_byte_fallback(tok):
    ids = tok.encode("\U000F0000", add_bos=False)   # plane-15 private use: no token for it
    assert [tok.token_to_piece(i) for i in ids] == [b"\xf3", b"\xb0", b"\x80", b"\x80"]
    assert all(tok.find(f"<0x{b:02X}>") == i for b, i in zip(b"\xf3\xb0\x80\x80", ids))


def test_decode_round_trip(tok, texts):
    # A literal U+2581 is how SentencePiece spells a space, so it comes back as " ".
    plain = [s for s in texts if "\u2581" not in s]
    assert len(plain) >= len(texts) - 2
    for s in plain:
        assert tok.decode(tok.encode(s)) == s
        assert tok.decode(tok.encode(s, special=False), special=False) == s


def test_token_to_piece_matches_llama_cpp(tok, llama):
    import llama_cpp

    buf = ctypes.create_string_buffer(256)
    vocab = llama._model.vocab
    for special in (True, False):
        bulk = tok.all_pieces(special)
        for i in range(0, tok.n_vocab, 1 if special else 7):
            n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, special)
            assert tok.token_to_piece(i, special) == buf.raw[:n], (i, special)
            assert bulk[i] == buf.raw[:n], (i, special)


def test_decode_matches_llama_cpp(tok, llama, texts):
    import llama_cpp

    buf = ctypes.create_string_buffer(1 << 16)
    for s in texts:
        ids = tok.encode(s)
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        for remove_special in (True, False):
            n = llama_cpp.llama_detokenize(llama._model.vocab, arr, len(ids), buf, len(buf),
                                           remove_special, True)
            assert tok.decode_bytes(ids, special=True, remove_special=remove_special) == buf.raw[:n]


def test_random_text_matches_llama_cpp(tok, llama):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    pieces = st.sampled_from(["<start_of_turn>", "<end_of_turn>", "<escape>", "<unused40>", "<",
                              ">", " ", "  ", "\n", "\t", "▁", "é", "日", "🤖", "ab", "the", "0"])
    text = st.lists(pieces | st.characters(blacklist_categories=("Cs",)), max_size=40).map("".join)

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @hypothesis.given(text, st.booleans())
    def check(s, special):
        assert tok.encode(s, special=special) == llama.tokenize(s.encode(), add_bos=True,
                                                                special=special)

    check()


def test_lookups(tok):
    assert tok.n_vocab == len(tok) == 262144
    assert (tok.bos_id, tok.eos_id) == (2, 1)
    assert tok.id_of("<start_of_turn>") == 105 and tok.id_of("\u2581Hello") == 26352
    assert tok.eog_ids == {1, 106}
    with pytest.raises(KeyError):
        tok.id_of("no such token, surely")
    with pytest.raises(TokenizerError):
        tok.token_to_piece(tok.n_vocab)
    with pytest.raises(TypeError):
        tok.encode(12)


# ---- a tiny vocabulary with add_space_prefix = true (the other SPM branch) -------------------

def _write_vocab_gguf(path, add_space_prefix=True, model="llama"):
    gguf = pytest.importorskip("gguf")
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "x", "▁h", "he", "ll", "llo", "▁he",
              "▁hello", "▁w", "or", "▁wor", "▁world", "lo", "el", "▁x"]
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<ctl>", "<user>"]
    tokens += [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [3, 3, 3, 2, 3, 4] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 262 + [-float(i % 5) for i in range(len(pieces))]  # many ties on purpose
    w = gguf.GGUFWriter(str(path), arch="llama")
    for key, value in (("context_length", 64), ("embedding_length", 8), ("block_count", 1),
                       ("feed_forward_length", 16), ("attention.head_count", 2)):
        w.add_uint32(f"llama.{key}", value)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_space_prefix_vocab_matches_llama_cpp(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    path = _write_vocab_gguf(tmp_path / "v.gguf")
    ours = Tokenizer.from_gguf(open_gguf(path))
    ref = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    cases = ["hello world", " hello", "hello<ctl>world", "<user>hello<user> x", "héllo\n",
             "", " ", "<ctl>", "wor ld  hel lo", "xxxx"]
    for s in cases:
        for add_bos in (True, False):
            for special in (True, False):
                assert ours.encode(s, add_bos, special) == ref.tokenize(s.encode(), add_bos, special), s


def test_rejects_non_spm_vocab(tmp_path):
    path = _write_vocab_gguf(tmp_path / "gpt2.gguf", model="gpt2")
    with pytest.raises(TokenizerError, match="only 'llama'"):
        Tokenizer.from_gguf(open_gguf(path))


def test_rejects_duplicate_tokens(tmp_path):
    g = open_gguf(_write_vocab_gguf(tmp_path / "v.gguf"))
    md = g.metadata
    tokens = md["tokenizer.ggml.tokens"]
    offsets = tokens.offsets.copy()
    offsets[9] = offsets[8]   # token 9 now has token 8's bytes

    class Dup:
        def __init__(self):
            self.offsets = offsets

        def __len__(self):
            return len(tokens)

        def raw(self, i):
            return tokens.raw(i)

    with pytest.raises(ValueError, match="duplicate token"):
        Tokenizer(Dup(), md["tokenizer.ggml.scores"], md["tokenizer.ggml.token_type"], bos_id=2,
                  eos_id=1, add_bos=True, add_eos=False, add_space_prefix=False,
                  mapping=g)

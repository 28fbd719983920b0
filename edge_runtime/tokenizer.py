"""SentencePiece over the mapped vocabulary, giving the same ids as llama.cpp.

Covers GGUF vocabularies with `tokenizer.ggml.model = "llama"` (llama.cpp's SPM path):

1. Special-token partition (llama.cpp's tokenizer_st_partition): control, unknown and
   user-defined tokens, longest first, split the text wherever they occur. With
   special=False control and unknown tokens are left as plain text, but user-defined tokens
   (Gemma's "\\n", runs of spaces and tabs, HTML tags) still split it, as in llama.cpp.
2. Each remaining text fragment gets " " -> U+2581 (and a leading one when
   tokenizer.ggml.add_space_prefix is true and the fragment follows a special token or
   starts the text), then the score-ordered merge in native/spm.c.

The vocabulary is never copied into Python objects: token bytes stay in the GGUF mapping,
looked up through a C hash table of ids (2 MiB for 262k tokens). Only the few thousand
special tokens are held as bytes, grouped by their first two bytes so that a short prompt
is searched for only the handful that could occur in it.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import _native

__all__ = ["Tokenizer", "TokenizerError"]

# GGUF token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_SPECIAL_TYPES = (UNKNOWN, CONTROL, USER_DEFINED)
_SPACE, _ESCAPED_SPACE = b" ", "\u2581".encode()
_SCAN_COST = 600  # a Python-level lookup costs about as much as searching 600 bytes in C


def _is_hex(b: bytes) -> bool:
    return all(c in b"0123456789abcdefABCDEF" for c in b)


class TokenizerError(ValueError):
    """The vocabulary cannot be used, or an id is out of range."""


class Tokenizer:
    def __init__(self, tokens, scores, token_types, *, bos_id, eos_id, add_bos, add_eos,
                 add_space_prefix, mapping):
        """tokens: a gguf StringArray (payload offsets into `mapping`, a GGUFFile or anything
        with address(), size and view); scores (float32) and token_types (int32) are arrays
        of the same length."""
        n = len(tokens)
        if len(scores) != n or len(token_types) != n:
            raise TokenizerError(f"tokenizer: {n} tokens but {len(scores)} scores and "
                                 f"{len(token_types)} token types")
        for name, tid in (("bos", bos_id), ("eos", eos_id)):
            if tid is not None and not 0 <= tid < n:
                raise TokenizerError(f"tokenizer: {name} id {tid} is outside the vocabulary of {n}")
        if add_bos and bos_id is None:
            raise TokenizerError("tokenizer: add_bos_token is true but bos_token_id is not set")
        self._tokens = tokens
        self._offsets = np.ascontiguousarray(tokens.offsets, dtype=np.int64)
        self._scores = scores = np.ascontiguousarray(scores, dtype="<f4")  # C reads f32
        self._types = np.asarray(token_types)
        self.token_types = self._types  # GGUF token type per id (read-only view of the file)
        self.gguf = None   # the GGUFFile it was read from (from_gguf): keys the grammar's index
        try:
            # the capsule keeps the mapping and both arrays alive: the C index points into them
            self._vocab = _native.vocab_new(
                (mapping.view, self._offsets, scores), (mapping.address(), mapping.size),
                (self._offsets.ctypes.data, self._offsets.nbytes),
                (scores.ctypes.data, scores.nbytes), n)
        except ValueError as e:   # duplicate or empty vocabulary
            raise TokenizerError(str(e)) from None
        self.n_vocab = n
        self.bos_id, self.eos_id = bos_id, eos_id
        self.add_bos, self.add_eos, self.add_space_prefix = add_bos, add_eos, add_space_prefix
        eot = self.find("<end_of_turn>")
        self.eot_id = eot if eot >= 0 else None
        # End-of-generation ids: eos plus the turn end (the Gemma part of llama.cpp's EOG list).
        self.eog_ids = frozenset(i for i in (eos_id, self.eot_id) if i is not None)
        self._build_special_index()
        for i in np.flatnonzero(self._types == BYTE):   # token_to_piece reads <0xNN> as a byte
            raw = self._tokens.raw(int(i))
            if len(raw) != 6 or raw[:3] != b"<0x" or raw[5:] != b">" or not _is_hex(raw[3:5]):
                raise TokenizerError(f"tokenizer: byte token {int(i)} is {raw!r}, not <0xNN>")

    @classmethod
    def from_gguf(cls, g) -> "Tokenizer":
        """Build from an open GGUFFile; the tokenizer keeps its mapping alive."""
        md = g.metadata
        model = md.get("tokenizer.ggml.model")
        if model is not None and g.meta_type("tokenizer.ggml.model") != "string":
            raise TokenizerError(f"tokenizer: tokenizer.ggml.model is "
                                 f"{g.meta_type('tokenizer.ggml.model')}, expected string")
        if model != "llama":
            raise TokenizerError(f"tokenizer.ggml.model is {model!r}; only 'llama' "
                                 f"(SentencePiece) vocabularies are supported")
        for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            if key not in md:
                raise TokenizerError(f"tokenizer: {key} is missing from {g.path}")
        expect = {"tokenizer.ggml.tokens": ("array[string]",),
                  "tokenizer.ggml.scores": ("array[f32]", "array[i32]"),  # as llama.cpp
                  "tokenizer.ggml.token_type": ("array[i32]",)}
        for key, allowed in expect.items():
            if g.meta_type(key) not in allowed:
                raise TokenizerError(f"tokenizer: {key} is {g.meta_type(key)}, expected "
                                     f"{' or '.join(allowed)}")

        def scalar(key, default, types):
            if key not in md:
                return default
            if g.meta_type(key) not in types:
                raise TokenizerError(f"tokenizer: {key} is {g.meta_type(key)}, expected "
                                     f"{' or '.join(types)}")
            return md[key]

        def opt_id(key):
            v = scalar(key, None, ("u32", "i32", "u64", "i64"))
            return None if v is None else int(v)

        def flag(key, default):
            return bool(scalar(key, default, ("bool",)))

        tok = cls(md["tokenizer.ggml.tokens"], md["tokenizer.ggml.scores"],
                  md["tokenizer.ggml.token_type"],
                  bos_id=opt_id("tokenizer.ggml.bos_token_id"),
                  eos_id=opt_id("tokenizer.ggml.eos_token_id"),
                  # llama.cpp's defaults for SPM vocabularies when a key is absent
                  add_bos=flag("tokenizer.ggml.add_bos_token", True),
                  add_eos=flag("tokenizer.ggml.add_eos_token", False),
                  add_space_prefix=flag("tokenizer.ggml.add_space_prefix", True),
                  mapping=g)
        tok.gguf = g
        return tok

    # ---- special tokens ------------------------------------------------------------------
    def _build_special_index(self):
        ids = np.flatnonzero(np.isin(self._types, _SPECIAL_TYPES))
        texts = [self._tokens.raw(int(i)) for i in ids]
        # llama.cpp sorts its special-token cache by length, longest first. Its order among
        # equal lengths is unspecified (std::sort); it only matters when two such tokens can
        # overlap in text, which no Gemma 3 vocabulary has. Ties go to the smaller id here.
        order = sorted(range(len(ids)), key=lambda k: (-len(texts[k]), int(ids[k])))
        self._special = [(texts[k], int(ids[k]), int(self._types[ids[k]]) == USER_DEFINED)
                         for k in order if texts[k]]
        groups = defaultdict(list)
        for rank, (text, _, _) in enumerate(self._special):
            groups[text[:2]].append(rank)
        self._special_groups = [
            (prefix, ranks, {self._special[r][0]: r for r in ranks},
             sorted({len(self._special[r][0]) for r in ranks}))
            for prefix, ranks in groups.items()]

    def _specials_in(self, data: bytes, special: bool):
        """The special tokens that occur in data, in llama.cpp's matching order."""
        found = set()
        for prefix, ranks, by_text, lengths in self._special_groups:
            hits = data.count(prefix)
            if not hits:
                continue
            # Either search the text once per member (C speed, long texts cost more), or read
            # the text at each place the prefix occurs (Python speed, frequent prefixes cost
            # more): Gemma's 6k "<unused...>" want the second, runs of blanks the first.
            if hits * len(lengths) * _SCAN_COST < len(ranks) * len(data):
                at = data.find(prefix)
                while at >= 0:
                    found.update(by_text.get(data[at:at + n], -1) for n in lengths)
                    at = data.find(prefix, at + 1)
            else:
                found.update(r for r in ranks if self._special[r][0] in data)
        found.discard(-1)
        return [self._special[r] for r in sorted(found) if special or self._special[r][2]]

    def _partition(self, data: bytes, special: bool):
        """Split data into raw (start, end) ranges and special token ids, in text order.

        Same result as llama.cpp's fragment loop (each token in turn, longest first, takes
        its leftmost non-overlapping occurrences inside still-raw text), computed with a
        mask of claimed bytes instead of a list of fragments."""
        claimed = bytearray(len(data))
        claims = []
        for text, tid, _ in self._specials_in(data, special):
            n, at = len(text), data.find(text)
            while at >= 0:
                hit = claimed.find(1, at, at + n)
                if hit < 0:
                    claims.append((at, n, tid))
                    claimed[at:at + n] = b"\x01" * n
                    at = data.find(text, at + n)
                else:
                    # Any occurrence starting before the end of this claimed run overlaps it.
                    free = claimed.find(0, hit)
                    at = -1 if free < 0 else data.find(text, free)
        parts, pos = [], 0
        for at, n, tid in sorted(claims):
            if at > pos:
                parts.append((pos, at))
            parts.append(tid)
            pos = at + n
        if pos < len(data):
            parts.append((pos, len(data)))
        return parts

    # ---- public API ----------------------------------------------------------------------
    def encode(self, text, add_bos: bool = True, special: bool = True) -> list:
        """Token ids for text (str or UTF-8 bytes), as llama.cpp's llama_tokenize with
        add_special=add_bos and parse_special=special. The model's add_bos_token decides
        whether a BOS is actually added (and add_eos_token whether an EOS is appended)."""
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:
            raise TypeError(f"encode() needs str or bytes, not {type(text).__name__}")
        out = [self.bos_id] if add_bos and self.add_bos else []
        prev_special = True
        for part in self._partition(data, special):
            if isinstance(part, int):
                out.append(part)
                prev_special = True
                continue
            frag = data[part[0]:part[1]]
            if self.add_space_prefix and prev_special:
                frag = _SPACE + frag
            out += _native.spm_encode(self._vocab, frag.replace(_SPACE, _ESCAPED_SPACE))
            prev_special = False
        if add_bos and self.add_eos:
            out.append(self.eos_id)
        return out

    def token_to_piece(self, token_id: int, special: bool = True) -> bytes:
        """The bytes token_id stands for, as llama.cpp's llama_token_to_piece: U+2581 back to
        spaces, <0xNN> tokens as their byte, control/unknown tokens as their text only when
        special, user-defined tokens always as their text, unused tokens as nothing."""
        if not 0 <= token_id < self.n_vocab:
            raise TokenizerError(f"token id {token_id} is outside the vocabulary of {self.n_vocab}")
        kind = int(self._types[token_id])
        raw = self._tokens.raw(token_id)
        if kind == NORMAL:
            return raw.replace(_ESCAPED_SPACE, _SPACE)
        if kind == BYTE:
            return bytes((int(raw[3:5], 16),))
        if kind == USER_DEFINED or (special and kind in (CONTROL, UNKNOWN)):
            return raw
        return b""

    def all_pieces(self, special: bool = True) -> list:
        """token_to_piece for every id, read in one pass over the mapping (the grammar indexes
        the whole vocabulary; 262k single calls take half a second)."""
        offs = self._offsets
        if len(offs) == 0:
            return []
        view = np.frombuffer(self._tokens._buf, dtype=np.uint8)
        lens = view[(offs - 8)[:, None] + np.arange(8)].copy().view("<u8").reshape(-1)
        lo, hi = int(offs[0]), int(offs[-1] + lens[-1])
        blob = bytes(view[lo:hi])
        out = []
        for kind, o, n in zip(self._types.tolist(), (offs - lo).tolist(), lens.tolist()):
            raw = blob[o:o + n]
            if kind == NORMAL:
                out.append(raw.replace(_ESCAPED_SPACE, _SPACE))
            elif kind == BYTE:
                out.append(bytes((int(raw[3:5], 16),)))
            elif kind == USER_DEFINED or (special and kind in (CONTROL, UNKNOWN)):
                out.append(raw)
            else:
                out.append(b"")
        return out

    def decode_bytes(self, ids, special: bool = True, remove_special: bool = True) -> bytes:
        """Concatenated pieces, as llama.cpp's llama_detokenize(remove_special, special):
        remove_special drops a leading BOS (and trailing EOS) the model adds itself."""
        ids = [int(i) for i in ids]
        strip_space = self.add_space_prefix
        if remove_special and self.add_bos and ids and ids[0] == self.bos_id:
            ids, strip_space = ids[1:], False  # llama.cpp keeps the space after a removed BOS
        if remove_special and self.add_eos and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        pieces = [self.token_to_piece(i, special) for i in ids]
        if strip_space and pieces and pieces[0].startswith(_SPACE):
            pieces[0] = pieces[0][1:]
        return b"".join(pieces)

    def decode(self, ids, special: bool = True, remove_special: bool = True) -> str:
        """Text for ids; control tokens render as their text (special=True, as llama.cpp's
        detokenize with special=True). Bytes that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids, special, remove_special).decode("utf-8", errors="replace")

    def find(self, piece) -> int:
        """Id of the token whose text (U+2581 for spaces) is piece, or -1."""
        data = piece.encode("utf-8") if isinstance(piece, str) else bytes(piece)
        return _native.vocab_find(self._vocab, data)

    def id_of(self, piece) -> int:
        """Id of the token whose text is piece; KeyError if the vocabulary has none."""
        tid = self.find(piece)
        if tid < 0:
            raise KeyError(f"no token {piece!r} in the vocabulary")
        return tid

    def __len__(self):
        return self.n_vocab

    def __repr__(self):
        return (f"Tokenizer(n_vocab={self.n_vocab}, bos={self.bos_id}, eos={self.eos_id}, "
                f"add_space_prefix={self.add_space_prefix})")

"""The vocabulary indexed for token-level constrained decoding: every token's bytes, sorted for
trie walks, and per string-automaton entry state the tokens that may continue string content."""
from __future__ import annotations

import re
import weakref

import numpy as np

from ..functiongemma import tokens as T

_CONTROL = re.compile(rb"<[A-Za-z0-9_]+>|\[[a-z_]+\]")


class Vocab:
    """Token byte strings indexed for grammar walks. Built once per tokenizer (lazily)."""

    _cache = weakref.WeakKeyDictionary()

    def __init__(self, pieces, special):
        self.pieces = pieces
        self.n = len(pieces)
        normal = [i for i in range(self.n) if pieces[i] and not special[i]]
        order = sorted(normal, key=pieces.__getitem__)
        self.keys, self.ids = [], []
        for i in order:
            if self.keys and self.keys[-1] == pieces[i]:
                self.ids[-1].append(i)
            else:
                self.keys.append(pieces[i])
                self.ids.append([i])
        self.normal = np.zeros(self.n, bool)
        self.normal[normal] = True
        # characters per piece: bytes that are not UTF-8 continuation bytes
        self.flat = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        self.starts = np.zeros(self.n + 1, np.int64)
        np.cumsum([len(p) for p in pieces], out=self.starts[1:])
        lead = np.concatenate([[0], np.cumsum((self.flat & 0xC0) != 0x80)])
        self.chars = (lead[self.starts[1:]] - lead[self.starts[:-1]]).astype(np.int32)
        self._valid = {}
        known = set(self.keys)
        self.byte_fallback = all(bytes((b,)) in known for b in range(0x80, 0xC0))

    @classmethod
    def from_tokenizer(cls, tok):
        try:
            return cls._cache[tok]
        except (KeyError, TypeError):
            pass
        n = int(tok.n_vocab)
        pieces = tok.all_pieces() if hasattr(tok, "all_pieces") else \
            [bytes(tok.token_to_piece(i)) for i in range(n)]
        types = getattr(tok, "token_types", None)
        if types is not None:  # GGUF types: 1 normal, 4 user-defined, 6 byte
            types = np.asarray(types)
            special = [t not in (1, 4, 6) or (p[:1] in b"<[" and bool(_CONTROL.fullmatch(p)))
                       for t, p in zip(types.tolist(), pieces)]
        else:
            special = [bool(_CONTROL.fullmatch(p)) for p in pieces]
        for i in T.TOKEN_NAMES:
            if i < n:
                special[i] = True
        v = cls(pieces, special)
        try:
            cls._cache[tok] = v
        except TypeError:
            pass
        return v

    def content_ids(self, automaton, state: int, room: int):
        """Sorted ids of tokens that may continue string content entered in automaton state
        `state` and add at most `room` characters. `automaton` is (name, table, boundary):
        table[state, byte] -> next state or -1 (dead), boundary[state] true where a character
        is complete. Results are built per (automaton, entry state) on first use; a step then
        costs a slice (or one comparison pass near the cap)."""
        name, table, boundary = automaton
        t = self._valid.get((name, state))
        if t is None:
            # run every normal token through the automaton at once, byte position by byte
            # position
            cand = np.flatnonzero(self.normal)
            starts, lens = self.starts[cand], self.starts[cand + 1] - self.starts[cand]
            st = np.full(len(cand), state, np.int32)
            for pos in range(int(lens.max(initial=0))):
                live = np.flatnonzero((lens > pos) & (st >= 0))
                st[live] = table[st[live], self.flat[starts[live] + pos]]
            # a token that stops mid-character is only safe if every continuation byte
            # exists as a token (byte fallback), else the string could never close
            good = st >= 0
            good[good] = boundary[st[good]] | self.byte_fallback
            ok = np.zeros(self.n, bool)
            ok[cand[good]] = True
            ids = np.flatnonzero(ok).astype(np.int32)
            t = (ids, self.chars[ids], int(self.chars[ids].max(initial=0)))
            self._valid[(name, state)] = t
        ids, chars, longest = t
        return ids if room >= longest else ids[chars <= room]

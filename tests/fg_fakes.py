"""A small tokenizer and a scripted model for testing the agent without weights.

FakeTokenizer follows edge_runtime.tokenizer.Tokenizer's interface (encode with add_bos and
special, token_to_piece, decode_bytes, decode, all_pieces, n_vocab, bos_id, eos_id, eot_id,
add_bos) with Gemma's fixed ids for <eos>, <bos>, the function tokens (46-52) and the turn
tokens (105/106). ScriptedModel follows Model's public API (tokenizer, eval(ids, rows), reset,
n_past) and steers each reply toward a scripted text wherever the constraint lets it.
"""
import numpy as np

from edge_runtime.calls.formats.functiongemma import tokens as T

WORDS = ["call", "call:", "get", "_weather", "weather", "Paris", "city", "set_timer",
         "minutes", "label", "toggle", "_light", "room", "on", "true", "false", "kitchen",
         "12", " is", "ok", "é", "日本", "<esc", "ape", "rm", "_rf", "path", "unit", "days",
         "celsius", "{city", ":<", "}", "{", "Done", " it", "The",
         # the python format's line markers and a few call pieces
         "Request", "Call", "Result", "Answer", "Call:", "(city", '="', '")', "True", "False"]


class FakeTokenizer:
    def __init__(self, words=WORDS):
        special = {0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>", 105: "<start_of_turn>",
                   106: "<end_of_turn>", **T.TOKEN_NAMES}
        self.pieces = [special.get(i, f"<unused{i}>").encode() for i in range(107)]
        self.special = {p: i for i, p in enumerate(self.pieces)}
        chars = [chr(c) for c in range(32, 127)] + ["\n"]
        self.pieces += [w.encode() for w in chars + list(words)]
        self.pieces.append(b"\xc3")      # a lone UTF-8 lead byte, like a byte-fallback token
        self.n_vocab = len(self.pieces)
        self.normal = {p: i for i, p in enumerate(self.pieces) if i > 106}
        self.bos_id, self.eos_id, self.eot_id, self.add_bos = 2, 1, 106, True

    def token_to_piece(self, i, special=True):
        return self.pieces[i] if special or i > 106 else b""

    def all_pieces(self, special=True):
        return [self.token_to_piece(i, special) for i in range(self.n_vocab)]

    def encode(self, text, add_bos=True, special=True):
        data, ids, pos = text.encode(), [2] if add_bos else [], 0
        while pos < len(data):
            if special and data[pos:pos + 1] == b"<":
                hit = next((p for p in self.special if data.startswith(p, pos)), None)
                if hit:
                    ids.append(self.special[hit])
                    pos += len(hit)
                    continue
            n = max((len(p) for p in self.normal if data.startswith(p, pos)), default=0)
            if n == 0:
                raise ValueError(f"fake tokenizer cannot encode {data[pos:pos + 8]!r}")
            ids.append(self.normal[data[pos:pos + n]])
            pos += n
        return ids

    def decode_bytes(self, ids, special=True, remove_special=True):
        ids = [int(i) for i in ids]
        if remove_special and ids and ids[0] == self.bos_id:
            ids = ids[1:]
        return b"".join(self.token_to_piece(i, special) for i in ids)

    def decode(self, ids, special=True, remove_special=True):
        return self.decode_bytes(ids, special, remove_special).decode("utf-8", "replace")


class ScriptedModel:
    """Each model reply (the first after reset, then one after every batch of tool results)
    prefers, token by token, whatever extends that reply's scripted text; when nothing does
    it prefers <end_of_turn>. Ties break by a fixed tiny per-id bias.

    Where a reply starts: functiongemma - after the prompt's last "<start_of_turn>model\\n",
    then after each <end_function_response>; python - after the prompt's last line, then
    after each batch of "Result: ..." lines (the reply text then starts with the marker the
    agent feeds, e.g. "Call: " or "Answer:")."""

    def __init__(self, script, tokenizer=None, format="functiongemma"):
        self.tokenizer = tokenizer or FakeTokenizer()
        self.script = list(script)
        self.format = format
        self.reset()

    def reset(self):
        self.history, self.reply, self.reply_start, self.calls = [], -1, 0, []

    @property
    def n_past(self):
        return len(self.history)

    def _reply_starts(self, ids):
        """Where the next reply starts if ids begin one, else None."""
        tok, h = self.tokenizer, self.history
        if self.format == "functiongemma":
            if len(h) == len(ids):
                turn = len(h) - 1 - h[::-1].index(105)
                return turn + 1 + len(tok.encode("model\n", add_bos=False))
            return len(h) - ids[::-1].index(51) if 51 in ids else None
        newline = tok.encode("\n", add_bos=False)[0]
        if len(h) == len(ids) or tok.encode("Result", add_bos=False)[0] in ids:
            at = len(h) - 1 - h[::-1].index(newline)
            return at + 1
        return None

    def prepare(self, ids, snapshot=None):
        """Session.prepare: keep the common prefix (at most all but the last id), eval the rest."""
        n = 0
        while n < min(len(ids) - 1, len(self.history)) and self.history[n] == ids[n]:
            n += 1
        del self.history[n:]
        return self.eval(ids[n:])

    def eval(self, ids, rows=None):
        ids = [int(i) for i in ids]
        assert ids, "eval needs at least one id"
        self.calls.append((list(ids), None if rows is None else np.asarray(rows).copy()))
        self.history += ids
        start = self._reply_starts(ids)
        if start is not None:
            self.reply, self.reply_start = self.reply + 1, start
        said = T.decode(self.tokenizer, self.history[self.reply_start:])
        want = self.script[self.reply] if self.reply < len(self.script) else ""
        logits = np.arange(self.tokenizer.n_vocab, dtype=np.float32) * -1e-6
        logits[106] = 50.0
        for i in range(self.tokenizer.n_vocab):
            piece = T.TOKEN_NAMES.get(i) or self.tokenizer.pieces[i].decode("utf-8", "replace")
            if i >= 106 or i in T.TOKEN_NAMES:
                if want.startswith(said + piece) and len(want) > len(said):
                    logits[i] = 100.0 + len(piece)
        return logits if rows is None else logits[np.asarray(rows)]

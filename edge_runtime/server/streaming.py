"""Text as a streaming client sees it: every piece sent is final (the concatenation of the
pieces equals the unstreamed reply), so pieces are held back while they may still change -
an incomplete UTF-8 character, the possible start of a stop string, whitespace the reply's
final strip may remove.
"""
from __future__ import annotations

import codecs


class TextOut:
    """Generated tokens -> text as a client may see it: whole UTF-8 characters only, and
    nothing that could still turn out to be the start of a stop string (the stop string itself
    is never sent, as in the OpenAI API). on_text(piece) gets each piece once it is safe."""

    def __init__(self, tokenizer, stop, on_text=None):
        self.tok, self.stop, self.on_text = tokenizer, stop or [], on_text
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._all = ""       # everything decoded so far
        self.text = ""       # the part released to the client
        self._hold = max((len(s) for s in self.stop), default=1) - 1

    def add(self, token_id):
        self._all += self._decoder.decode(self.tok.token_to_piece(token_id))
        self._release(len(self._all) - self._hold)

    def finish(self) -> bool:
        """Release the rest; True if the text was cut at a stop string."""
        self._all += self._decoder.decode(b"", final=True)
        return self._release(len(self._all))

    def _release(self, upto) -> bool:
        cut = min((i for i in (self._all.find(s) for s in self.stop) if i >= 0), default=-1)
        end = min(upto, cut) if cut >= 0 else upto
        if end > len(self.text):
            new = self._all[len(self.text):end]
            self.text += new
            if self.on_text is not None:
                self.on_text(new)
        return cut >= 0


class TrimmedText:
    """Decoded pieces of a reply whose final text is stripped and cut at the first stop
    string (Agent.respond): releases only what that final text must begin with. A U+FFFD
    (a piece that split a UTF-8 character) pauses the stream; finish(final) sends the rest."""

    def __init__(self, stop, on_text):
        self.stop, self.on_text = stop or [], on_text
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self._raw = ""
        self.text = ""

    def add(self, piece: str):
        self._raw += piece
        raw = self._raw
        cut = min((i for i in (raw.find(x) for x in self.stop) if i >= 0), default=-1)
        end = cut if cut >= 0 else len(raw) - self._hold   # a stop may begin in the tail
        bad = raw.find("\ufffd")
        if bad >= 0:
            end = min(end, bad)
        self._send(raw[:max(end, 0)].strip())

    def finish(self, final: str):
        if final.startswith(self.text):
            self._send(final)

    def _send(self, upto: str):
        if len(upto) > len(self.text) and upto.startswith(self.text):
            new = upto[len(self.text):]
            self.text = upto
            self.on_text(new)

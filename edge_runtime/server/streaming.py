"""Text as a streaming client sees it: every piece sent is final (the concatenation of the
pieces equals the unstreamed reply), so pieces are held back while they may still change -
an incomplete UTF-8 character, the possible start of a stop string, whitespace the reply's
final strip may remove.
"""
from __future__ import annotations

import codecs


class StreamedText:
    """Pieces of a reply -> text a client may see: nothing that could still turn out to be the
    start of a stop string (the stop string itself is never sent, as in the OpenAI API), and
    nothing after a U+FFFD (a piece that split a UTF-8 character) until the end. strip: the
    final text is stripped (Agent.respond's), so only what it must begin with is sent.
    on_text(piece) gets each piece once it is safe; `text` is all that was sent."""

    def __init__(self, stop, on_text=None, strip=False):
        self.stop, self.on_text, self.strip = stop or [], on_text, strip
        self._hold = max((len(s) for s in self.stop), default=1) - 1
        self._raw = ""
        self.text = ""

    def add(self, piece: str):
        self._raw += piece
        cut = self._cut()
        end = cut if cut >= 0 else len(self._raw) - self._hold   # a stop may begin in the tail
        bad = self._raw.find("\ufffd")
        if bad >= 0:
            end = min(end, bad)
        self._send(self._raw[:max(end, 0)])

    def finish(self, final=None) -> bool:
        """Send the rest: `final` (the reply's own final text) if given, else what came, up to
        the first stop string. True if the text was cut at a stop string."""
        cut = self._cut()
        self._send(final if final is not None else self._raw[:cut] if cut >= 0 else self._raw)
        return cut >= 0

    def _cut(self) -> int:
        return min((i for i in (self._raw.find(s) for s in self.stop) if i >= 0), default=-1)

    def _send(self, upto: str):
        upto = upto.strip() if self.strip else upto
        if len(upto) > len(self.text) and upto.startswith(self.text):
            new = upto[len(self.text):]
            self.text = upto
            if self.on_text is not None:
                self.on_text(new)


class TokenText(StreamedText):
    """StreamedText fed with generated token ids, decoded to whole UTF-8 characters."""

    def __init__(self, tokenizer, stop, on_text=None):
        super().__init__(stop, on_text)
        self.tok = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add_token(self, token_id):
        self.add(self._decoder.decode(self.tok.token_to_piece(token_id)))

    def finish(self, final=None) -> bool:
        self._raw += self._decoder.decode(b"", final=True)
        return super().finish(final)

"""What the server runs for a request, off the event loop: chat turns through an Agent (one per
distinct system text + tools, kept in a small LRU so their prefix snapshots are reused), plain
completions through a session's generate(). Blocking; app.py calls it from worker threads.
"""
from __future__ import annotations

import codecs
import contextlib
import json
import threading
from collections import OrderedDict

from .openai_shapes import RequestError

DEFAULT_AGENTS = 4


class Engine:
    def __init__(self, model, cache_dir=None, agents=DEFAULT_AGENTS, agent_factory=None):
        from ..agent import Agent
        self.model, self.cache_dir = model, cache_dir
        self._make_agent = agent_factory or Agent
        self._agents: OrderedDict = OrderedDict()
        self._max_agents = max(1, int(agents))
        self._lock = threading.Lock()
        self._session_lock = threading.Lock()
        self.counters = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0,
                         "completion_tokens": 0, "agents_built": 0}

    # ---- chat ------------------------------------------------------------------------------

    def agent_for(self, messages, tools):
        """The Agent for this request's system text and tools (built on first use)."""
        system = "\n\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
        key = (system, json.dumps(tools, sort_keys=True))
        with self._lock:
            agent = self._agents.get(key)
            if agent is not None:
                self._agents.move_to_end(key)
                return agent
            try:
                agent = self._make_agent(self.model, tools=tools, cache_dir=self.cache_dir)
            except ValueError as e:   # a schema outside the subset the agent enforces
                raise RequestError(f"tools: {e}", param="tools") from None
            self._agents[key] = agent
            self.counters["agents_built"] += 1
            while len(self._agents) > self._max_agents:
                self._agents.popitem(last=False)
            return agent

    def chat(self, p, on_text=None):
        """One model turn; returns (text, calls, finish_reason, usage)."""
        agent = self.agent_for(p["messages"], p["tools"])
        turn = agent.respond(p["messages"], tool_choice=p["tool_choice"],
                             max_tokens=p["max_tokens"], temperature=p["temperature"],
                             top_p=p["top_p"], seed=p["seed"], stop=p["stop"], on_text=on_text)
        self._count(turn.usage)
        return turn.text, turn.calls, turn.finish_reason, turn.usage

    # ---- plain completions -----------------------------------------------------------------

    def complete(self, p, on_text=None):
        """Plain text after the prompt; returns (text, finish_reason, usage)."""
        tok = self.model.tokenizer
        ids = tok.encode(p["prompt"], add_bos=True, special=False)
        out = TextOut(tok, p["stop"], on_text)
        with self.session() as session:
            cached = min(_common_prefix(session.history, ids), len(ids) - 1)
            n = 0
            for t in session.generate(ids, max_tokens=p["max_tokens"],
                                      temperature=p["temperature"], top_p=p["top_p"],
                                      seed=p["seed"], stop=p["stop"]):
                n += 1
                out.add(t)
        stopped = out.finish()
        reason = "length" if n == p["max_tokens"] and not stopped else "stop"
        u = {"prompt_tokens": len(ids), "completion_tokens": n, "cached_tokens": cached}
        self._count(u)
        return out.text, reason, u

    @contextlib.contextmanager
    def session(self):
        """A session for one request. Until Model has a session pool: its default session, one
        request at a time."""
        with self._session_lock:
            yield self.model.session

    def _count(self, u):
        with self._lock:
            self.counters["requests"] += 1
            for k in ("prompt_tokens", "cached_tokens", "completion_tokens"):
                self.counters[k] += int(u.get(k, 0))

    def stats(self) -> dict:
        with self._lock:
            c = dict(self.counters)
        c["prefilled_tokens"] = c["prompt_tokens"] - c["cached_tokens"]
        c["agents_cached"] = len(self._agents)
        return c


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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

"""What the server runs for a request, off the event loop: chat turns through an Agent (one per
distinct system text + tools, kept in a small LRU so their prefix snapshots are reused), plain
completions through a session's generate(). Blocking; app.py calls it from worker threads.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict

from ..agent import Agent, Decoder
from ..calls.json_reply import reply_constraint
from ..sampling import Sampler
from .openai_shapes import RequestError
from .streaming import StreamedText, TokenText

DEFAULT_AGENTS = 4
SESSION_WAIT = 600.0


class Engine:
    def __init__(self, model, cache_dir=None, agents=DEFAULT_AGENTS, agent_factory=None):
        self.model, self.cache_dir = model, cache_dir
        self._make_agent = agent_factory or Agent
        self._agents: OrderedDict = OrderedDict()      # protected: toolsets used again
        self._probation: OrderedDict = OrderedDict()   # toolsets seen once
        self._json: OrderedDict = OrderedDict()     # JSON reply constraints by schema
        self.max_agents = max(1, int(agents))
        # Requests decoded at once: the model's session pool (sized by its memory plan).
        self.sessions = getattr(model, "session_pool_size", 1)
        self._lock = threading.Lock()
        self.counters = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0,
                         "completion_tokens": 0, "agents_built": 0}

    # ---- chat ------------------------------------------------------------------------------

    def agent_for(self, system, tools):
        """The Agent for this system text and these tools (built on first use). Agents are kept
        in two LRU segments: a toolset seen once waits on probation (one place), one used again
        is protected (the other places). A client sending a new toolset on every request so
        only churns the probation place and never evicts the agents other clients reuse."""
        key = (system, json.dumps(tools, sort_keys=True))
        with self._lock:
            for seg in (self._agents, self._probation):
                agent = seg.get(key)
                if agent is not None:
                    del seg[key]
                    self._protect(key, agent)
                    return agent
        try:   # outside the lock: building the grammar takes a while
            agent = self._make_agent(self.model, tools=tools, system=system or None,
                                     cache_dir=self.cache_dir)
        except ValueError as e:   # a schema outside the subset the agent enforces
            raise RequestError(f"tools: {e}", param="tools") from None
        with self._lock:
            agent = self._agents.get(key) or self._probation.setdefault(key, agent)
            self.counters["agents_built"] += 1
            while len(self._probation) > self.max_agents - len(self._agents):
                self._probation.popitem(last=False)
        return agent

    def _protect(self, key, agent):
        """Move a reused agent to the protected segment (under the lock); its oldest moves
        back to probation when the protected places are full."""
        self._agents[key] = agent
        while len(self._agents) > max(1, self.max_agents - 1):
            old, a = self._agents.popitem(last=False)
            self._probation[old] = a
            self._probation.move_to_end(old, last=False)   # first out of probation
        while len(self._agents) + len(self._probation) > self.max_agents:
            self._probation.popitem(last=False)

    def chat(self, p, on_text=None):
        """One model turn; returns (text, calls, finish_reason, usage)."""
        if not p["tools"]:
            return self._chat_without_tools(p, on_text)
        system = "\n\n".join(m["content"] for m in p["messages"]
                              if m["role"] in ("system", "developer"))
        agent = self.agent_for(system, p["tools"])
        out = StreamedText(p["stop"], on_text, strip=True) if on_text is not None else None
        turn = agent.respond(   # the agent holds a session of the pool for the turn
            p["messages"], tool_choice=p["tool_choice"], max_tokens=p["max_tokens"],
            parallel_tool_calls=p["parallel_tool_calls"],
            temperature=p["temperature"], top_p=p["top_p"], seed=p["seed"], stop=p["stop"],
            on_text=out.add if out is not None else None)
        if out is not None:
            out.finish(turn.text)
        self._count(turn.usage)
        return turn.text, turn.calls, turn.finish_reason, turn.usage

    def _chat_without_tools(self, p, on_text):
        """No tools: the conversation in Gemma's chat template; the reply free text, or one
        JSON value of p["response_format"]'s schema."""
        ids = chat_prompt_ids(self.model.tokenizer, p["messages"])
        if p.get("response_format") is not None:
            text, reason, u = self._generate_json(ids, p, on_text)
        else:
            text, reason, u = self._generate(ids, p, on_text)
        return text, [], reason, u

    def _reply_constraint(self, schema):
        """The JSON reply constraint for schema (the last few kept: their allowed-token sets
        are cached inside)."""
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            c = self._json.get(key)
            if c is not None:
                self._json.move_to_end(key)
                return c
        c = reply_constraint(self.model.tokenizer, schema)
        with self._lock:
            c = self._json.setdefault(key, c)
            while len(self._json) > self.max_agents:
                self._json.popitem(last=False)
        return c

    def _generate_json(self, ids, p, on_text):
        """A reply constrained to one JSON value of the schema: finish "stop" when the value
        is complete, "length" when max_tokens (or the context) ends it first."""
        c = self._reply_constraint(p["response_format"])
        limit = self._limit(ids, p)
        out = TokenText(self.model.tokenizer, None, on_text)
        sampler = Sampler(temperature=p["temperature"], top_p=p["top_p"], seed=p["seed"])
        n = 0
        with self.session() as session:
            cached = min(session.common_prefix(ids), len(ids) - 1)
            session.prepare(ids[:-1])
            dec = Decoder(session, sampler)
            dec.feed(ids[-1:])
            st = c.start()
            while not c.g.done(st) and n < limit:
                t = dec.choose(c.allowed(st))
                st = c.advance(st, t)
                dec.feed([t])
                out.add_token(t)
                n += 1
        out.finish()
        u = {"prompt_tokens": len(ids), "completion_tokens": n, "cached_tokens": cached}
        self._count(u)
        return out.text, "stop" if c.g.done(st) else "length", u

    def _limit(self, ids, p) -> int:
        """max_tokens, or (absent) what the context has room for, as OpenAI does."""
        if p["max_tokens"] is not None:
            return p["max_tokens"]
        limit = self.model.max_inference_len - len(ids)
        if limit < 1:
            raise RequestError(f"the prompt is {len(ids)} tokens: no room left in the "
                               f"context of {self.model.max_inference_len}",
                               param="messages", code="context_length_exceeded")
        return limit

    # ---- plain completions -----------------------------------------------------------------

    def complete(self, p, on_text=None):
        """Plain text after the prompt; returns (text, finish_reason, usage)."""
        ids = self.model.tokenizer.encode(p["prompt"], add_bos=True, special=False)
        return self._generate(ids, p, on_text)

    def _generate(self, ids, p, on_text):
        limit = self._limit(ids, p)
        out = TokenText(self.model.tokenizer, p["stop"], on_text)
        with self.session() as session:
            cached = min(session.common_prefix(ids), len(ids) - 1)
            n = 0
            for t in session.generate(ids, max_tokens=limit,
                                      temperature=p["temperature"], top_p=p["top_p"],
                                      seed=p["seed"], stop=p["stop"]):
                n += 1
                out.add_token(t)
        stopped = out.finish()
        reason = "length" if n == limit and not stopped else "stop"
        u = {"prompt_tokens": len(ids), "completion_tokens": n, "cached_tokens": cached}
        self._count(u)
        return out.text, reason, u

    def session(self):
        """A session of the model's pool for one request; admission keeps the requests in
        flight within the pool, so the wait is bounded only as a safeguard."""
        return self.model.acquire_session(timeout=SESSION_WAIT)

    def _count(self, u):
        with self._lock:
            self.counters["requests"] += 1
            for k in ("prompt_tokens", "cached_tokens", "completion_tokens"):
                self.counters[k] += int(u.get(k, 0))

    def stats(self) -> dict:
        with self._lock:
            c = dict(self.counters)
        c["prefilled_tokens"] = c["prompt_tokens"] - c["cached_tokens"]
        c["agents_cached"] = len(self._agents) + len(self._probation)
        # Measured, not reported by the agent: every token the session has run through the
        # decoder, in prefill chunks and single decode steps.
        pool = [se.stats() for se in self.model._pool]   # every session the pool created
        c["evaluated"] = {k: sum(st[k] for st in pool) for k in ("prefill_tokens",
                                                                 "decode_tokens")}
        return c


def chat_prompt_ids(tok, messages) -> list:
    """Gemma 3's chat template as ids: the turn markers are placed as ids, every message is
    encoded as plain text (it can never become a control token). System text opens the first
    user turn, as the template does."""
    sot, eot = tok.find("<start_of_turn>"), tok.find("<end_of_turn>")

    def text(s):
        return tok.encode(s, add_bos=False, special=False)

    system = "\n\n".join(m["content"].strip() for m in messages
                          if m["role"] in ("system", "developer"))
    ids = [tok.bos_id] if tok.bos_id is not None else []
    for i, m in enumerate(messages):
        if m["role"] in ("system", "developer"):
            continue
        if m["role"] == "tool" or m.get("tool_calls"):
            raise RequestError(f"messages[{i}]: tool calls and results need 'tools'",
                               param=f"messages[{i}]")
        body = m["content"].strip()
        if system and m["role"] == "user":
            body, system = system + "\n\n" + body, ""
        role = "model" if m["role"] == "assistant" else "user"
        ids += [sot] + text(f"{role}\n{body}") + [eot] + text("\n")
    return ids + [sot] + text("model\n")

"""The memory plan of a server: the model's plan plus what serving adds, as rows of the same
table, so a board's budget is checked (and shown at /v1/edge/stats) before the first request.
"""
from __future__ import annotations

from ..memory.plan import (AGENT_SNAPSHOT_TOKENS, ALLOWED_CACHE_BYTES, CONTENT_MASK_STATES, MIB,
                           MemoryPlan, agent_rows, snapshot_bytes)

# Measured 2026-11-30 on the x86-64 dev VM (CPython 3.11, Starlette 1.10, uvicorn 0.54): RssAnon
# and RssFile growth from importing the stack and running an idle server (event loop, worker
# thread); steady-state growth per request was 2.3 KiB over 50 requests (allocator noise).
HTTP_STACK_ANON = int(8.0 * MIB)
HTTP_STACK_FILE = int(0.6 * MIB)
# One in-flight request: its JSON body (capped at 1 MiB by the server, usually < 8 KiB),
# parsed messages, asyncio and h11 state; counted generously.
PER_REQUEST = 64 << 10

def server_plan(model_plan: MemoryPlan, config, sessions: int, queue: int,
                agents: int) -> MemoryPlan:
    """model_plan (one session, and the agent's rows and prefix snapshot when the model was
    loaded with agent=...) plus the HTTP stack, the requests that may be in flight or queued,
    the agent's rows if model_plan lacks them, and the other cached toolsets' token constraints
    and snapshots, each sized like the planned prefix (AGENT_SNAPSHOT_TOKENS when none was
    planned)."""
    s = model_plan.settings
    more = max(agents - 1, 0)
    prefix = s.get("snapshot_tokens") or AGENT_SNAPSHOT_TOKENS
    rows = list(model_plan.rows) + [
        (f"sessions: {sessions - 1} more of the pool", (sessions - 1) *
         model_plan.session_bytes, "anon"),
        ("server: HTTP stack (Starlette, uvicorn, event loop)", HTTP_STACK_ANON, "anon"),
        (f"server: {sessions + queue} requests in flight or queued", (sessions + queue) *
         PER_REQUEST, "anon"),
        *([] if s.get("agent") else agent_rows(config.n_vocab)),
        (f"agent: token constraints of {more} more toolsets (masks, allowed sets)",
         more * (CONTENT_MASK_STATES * -(-config.n_vocab // 8) + ALLOWED_CACHE_BYTES), "anon"),
        (f"agent: prefix snapshots of {more} more toolsets ({prefix} tokens each)",
         more * snapshot_bytes(model_plan.ring_lens, config, prefix, s.get("kv_dtype", "f16")),
         "cache" if s.get("snapshot_file") else "anon"),
        ("server: HTTP stack libraries (mapped)", HTTP_STACK_FILE, "file"),
    ]
    return MemoryPlan(rows=rows, max_inference_len=model_plan.max_inference_len,
                      ring_lens=model_plan.ring_lens, mapped=model_plan.mapped,
                      settings={**s, "sessions": sessions, "queue": queue, "agents": agents})

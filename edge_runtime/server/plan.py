"""The memory plan of a server: the model's plan plus what serving adds, as rows of the same
table, so a board's budget is checked (and shown at /v1/edge/stats) before the first request.
"""
from __future__ import annotations

from ..memory.plan import AGENT_SNAPSHOT_TOKENS, MIB, MemoryPlan, snapshot_bytes

# Measured 2026-11-30 on the x86-64 dev VM (CPython 3.11, Starlette 1.10, uvicorn 0.54): RssAnon
# and RssFile growth from importing the stack and running an idle server (event loop, worker
# thread); steady-state growth per request was 2.3 KiB over 50 requests (allocator noise).
HTTP_STACK_ANON = int(8.0 * MIB)
HTTP_STACK_FILE = int(0.6 * MIB)
# One in-flight request: its JSON body (capped at 1 MiB by the server, usually < 8 KiB),
# parsed messages, asyncio and h11 state; counted generously.
PER_REQUEST = 64 << 10
# The agent's call-vocabulary index (built once per model, shared by every toolset): measured
# 371 B per vocabulary entry on Gemma 3's 262144 tokens (92.7 MiB) until the planner counts
# it itself.
CALL_INDEX_BYTES_PER_TOKEN = 380


def server_plan(model_plan: MemoryPlan, config, sessions: int, queue: int,
                agents: int) -> MemoryPlan:
    """model_plan (one session, one prefix snapshot) plus the HTTP stack, the requests that
    may be in flight or queued, the call index and the other cached toolsets' snapshots."""
    more = max(agents - 1, 0)
    rows = list(model_plan.rows) + [
        (f"sessions: {sessions - 1} more of the pool", (sessions - 1) *
         model_plan.session_bytes, "anon"),
        ("server: HTTP stack (Starlette, uvicorn, event loop)", HTTP_STACK_ANON, "anon"),
        (f"server: {sessions + queue} requests in flight or queued", (sessions + queue) *
         PER_REQUEST, "anon"),
        ("agent: call vocabulary index", CALL_INDEX_BYTES_PER_TOKEN * config.n_vocab, "anon"),
        (f"agent: prefix snapshots of {more} more toolsets",
         more * snapshot_bytes(model_plan.ring_lens, config, AGENT_SNAPSHOT_TOKENS,
                               model_plan.settings.get("kv_dtype", "f16")), "anon"),
        ("server: HTTP stack libraries (mapped)", HTTP_STACK_FILE, "file"),
    ]
    return MemoryPlan(rows=rows, max_inference_len=model_plan.max_inference_len,
                      ring_lens=model_plan.ring_lens, mapped=model_plan.mapped,
                      settings={**model_plan.settings, "sessions": sessions, "queue": queue,
                                "agents": agents})

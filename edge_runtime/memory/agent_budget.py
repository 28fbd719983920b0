"""The agent's memory against the model's budget, checked when an Agent is constructed.

Model.load checks the session's plan; an agent adds its grammar index, content masks, per-step
buffers and declarations snapshot (plan(..., agent=True)). check_agent_budget replans with
those rows and, where a budget was given (Model.load(budget=...) or board=...), refuses with
MemoryBudgetError before anything of the agent is allocated. It then maps the vocabulary index
(building it on the first run for this model), so that a build's temporaries come and go now,
before decoding makes the weights resident, and the first request rebuilds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from .plan import INDEX_BUILD_BYTES_PER_TOKEN, MemoryPlan, WeightLayout, plan

# Rows that are not resident yet while an Agent is being constructed (the weights are mapped but
# untouched, the KV cache is calloc'ed but unwritten, no step has run).
_NOT_YET = ("weights resident", "KV cache", "prefix snapshot", "logits", "agent:")


@dataclass(frozen=True)
class AgentSpec:
    """The agent Model.load(agent=...) plans for before it exists: Agent's arguments that decide
    its prefix (tools None: the built-in toolset) and whether its snapshot stays in a file
    (Agent(cache_dir=...))."""
    tools: tuple = None
    format: str = None
    system: str = None
    demonstrations: bool = True
    snapshot_file: bool = False


def agent_prefix_tokens(gguf, tokenizer, spec: AgentSpec = AgentSpec()) -> int:
    """The length of the prefix (instructions, demonstrations, declarations) the agent that
    spec describes renders for this model: what its Agent(...).prefix_ids() will hold."""
    from types import SimpleNamespace

    from ..calls.formats import get_format, prefix_ids
    from ..calls.schema import declare
    from ..tools_builtin import TOOLS
    fmt = get_format(spec.format, SimpleNamespace(gguf=gguf, tokenizer=tokenizer),
                     spec.demonstrations)
    return len(prefix_ids(fmt, tokenizer, spec.system, declare(spec.tools or TOOLS)))


def agent_plan(model, prefix_tokens, snapshot_file=False) -> MemoryPlan:
    """model's plan with the agent's rows; prefix_tokens: its prefix's length; snapshot_file:
    the prefix snapshot stays in its file (Agent(cache_dir=...))."""
    s = model.plan.settings
    return plan(model.config, model.max_inference_len, prefill_chunk=s["prefill_chunk"],
                threads=s["threads"], kv_dtype=s["kv_dtype"], pages=s["pages"],
                weights=model.gguf, agent=True, snapshot_tokens=prefix_tokens,
                snapshot_file=snapshot_file)


def check_agent_budget(model, agent):
    """Raise MemoryBudgetError if the agent's plan (or, on a first run, building its index)
    does not fit the budget model was loaded with; then map the vocabulary index. Returns the
    agent's plan, or None for models without one (test doubles). An agent with a cache_dir is
    planned with its snapshot in the file; if the file cannot be written it stays in memory,
    9.6 MiB the plan does not show for the built-in toolset."""
    if getattr(model, "plan", None) is None or getattr(model, "gguf", None) is None:
        return None
    from ..calls.vocab import Vocab, index_path
    from ..models import cache_dir
    p = agent_plan(model, len(agent.prefix_ids()), snapshot_file=agent.cache_dir is not None)
    budget = model.plan.budget
    if budget is not None:
        p.check(budget, what="the agent's memory plan")
        V = model.tokenizer.n_vocab
        if not index_path(model.gguf, V, cache_dir()).exists():
            before = [r for r in p.rows if not r[0].startswith(_NOT_YET)]
            build = MemoryPlan(rows=before + [("agent: building the vocabulary index (once "
                                               "per model)", INDEX_BUILD_BYTES_PER_TOKEN * V,
                                               "anon")],
                               max_inference_len=p.max_inference_len, ring_lens=p.ring_lens,
                               mapped=p.mapped, settings=p.settings)
            build.check(budget, what="the agent's first run (index build)")
    Vocab.from_tokenizer(model.tokenizer)
    return p


def plan_for_model(path, max_inference_len=None, **kw) -> MemoryPlan:
    """The plan for a GGUF file: config and tensor layout read from its header. With
    agent=True and no snapshot_tokens, the prefix is the built-in toolset's, rendered for this
    model (agent_prefix_tokens)."""
    from ..config import from_gguf
    from ..gguf import open_gguf
    g = open_gguf(path)
    try:
        if kw.get("agent") and not kw.get("snapshot_tokens"):
            from ..tokenizer import Tokenizer
            kw["snapshot_tokens"] = agent_prefix_tokens(g, Tokenizer.from_gguf(g))
        return plan(from_gguf(g), max_inference_len, weights=WeightLayout.from_gguf(g), **kw)
    finally:
        g.close()

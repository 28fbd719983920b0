"""Memory: what a session will use (plan), what it does use (rss), and the page policy (pages)."""
from .agent_budget import AgentSpec, agent_plan, agent_prefix_tokens, check_agent_budget, plan_for_model
from .pages import advise
from .plan import (MemoryPlan, WeightLayout, auto_max_inference_len, choose_pages, plan,
                   resolve_max_inference_len, smallest_fit)
from .rss import RssTracker, Sample

__all__ = ["AgentSpec", "MemoryPlan", "WeightLayout", "RssTracker", "Sample", "advise",
           "agent_plan", "agent_prefix_tokens",
           "auto_max_inference_len", "check_agent_budget", "choose_pages", "plan", "plan_for_model",
           "resolve_max_inference_len", "smallest_fit"]

"""edge_runtime: Gemma 3 / FunctionGemma inference for low-memory boards.

Data path: gguf (mapping) → config → tokenizer / memory.plan → Model (native decoder step)
→ sampling → functiongemma → Agent → cli.
"""
from . import boards, memory, models
from .errors import ContextLengthError, MemoryBudgetError, SessionBusyError
from .gguf import GGUFError, open_gguf
from .model import KVSnapshot, Model, Session
from .agent import Agent  # issue 5 (tool calling)

__all__ = ["Agent", "ContextLengthError", "GGUFError", "KVSnapshot", "MemoryBudgetError", "Model", "Session",
           "SessionBusyError", "boards", "memory", "models", "open_gguf"]

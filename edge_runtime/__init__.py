"""edge_runtime: Gemma 3 / FunctionGemma inference for low-memory boards.

Data path: gguf (mapping) → config → tokenizer / memory.plan → decoder.Model (native decoder
step) → sampling → calls (formats, grammar) → Agent → cli / server.
"""
from . import boards, memory, models
from .errors import ContextLengthError, MemoryBudgetError, SessionBusyError
from .gguf import GGUFError, open_gguf
from .decoder import KVSnapshot, Model, Session
from .agent import Agent  # issue 5 (tool calling)

__all__ = ["Agent", "ContextLengthError", "GGUFError", "KVSnapshot", "MemoryBudgetError", "Model", "Session",
           "SessionBusyError", "boards", "memory", "models", "open_gguf"]

"""edge_runtime: Gemma 3 / FunctionGemma inference for low-memory boards."""
from .gguf import GGUFError, open_gguf

__all__ = ["GGUFError", "open_gguf"]

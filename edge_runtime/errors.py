"""Exceptions that mean bad input from the user (the CLI turns them into exit status 2)."""
from .config import UnsupportedModelError
from .gguf import GGUFError


class MemoryBudgetError(ValueError):
    """The memory plan does not fit the budget; raised before anything is allocated."""


class NonFiniteLogitsError(ValueError):
    """A step produced NaN or Inf logits (the weights hold NaN/Inf): nothing is sampled."""


class ContextLengthError(ValueError):
    """A prompt (plus the tokens asked for) does not fit in max_inference_len."""


class SessionBusyError(RuntimeError):
    """A session is in use by someone else (a live generator, another thread's call or lease),
    its state changed hands since it was last reset, or no session of a model's pool came free
    in time. Nothing was evaluated."""


USER_ERRORS = (GGUFError, UnsupportedModelError, MemoryBudgetError, ContextLengthError,
               NonFiniteLogitsError, ValueError)

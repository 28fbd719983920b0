"""Exceptions that mean bad input from the user (the CLI turns them into exit status 2).

Only these named types count as user errors: a bare ValueError (or anything else) raised inside
the runtime is a bug and keeps its traceback.
"""
from .boards import BoardError
from .config import UnsupportedModelError
from .gguf import GGUFError
from .tokenizer import TokenizerError


class InvalidArgumentError(ValueError):
    """An argument value the API or the command line cannot take (a count <= 0, an unknown
    option, a token id that is not an id of this model...)."""


class ConversionError(ValueError):
    """`convert` cannot turn this source file into the requested type."""


class AdapterError(ValueError):
    """An adapter file that cannot be used: damaged, of another format, or for another model."""


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


class SessionInterruptedError(RuntimeError):
    """An eval was interrupted (Ctrl-C) after the native state had moved on and it could not be
    rewound: the session refuses to run until reset()."""


USER_ERRORS = (GGUFError, UnsupportedModelError, TokenizerError, BoardError, ConversionError,
               AdapterError,
               MemoryBudgetError, ContextLengthError, NonFiniteLogitsError, InvalidArgumentError)

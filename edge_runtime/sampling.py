"""Choosing the next token from logits: greedy, or temperature with top-k / top-p.

A grammar restricts the choice by handing over the allowed ids together with their logits;
the sampler never needs the full vocabulary.
"""
from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError


class Sampler:
    def __init__(self, temperature=0.0, top_k=0, top_p=1.0, seed=None):
        if temperature < 0:
            raise InvalidArgumentError(f"temperature must be >= 0, got {temperature}")
        if top_k < 0:
            raise InvalidArgumentError(f"top_k must be >= 0, got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise InvalidArgumentError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.rng = np.random.default_rng(seed)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def sample(self, logits: np.ndarray, ids: np.ndarray | None = None) -> int:
        """Pick a token. `ids`, when given, names the token of each logit (a sparse choice)."""
        if self.greedy:
            i = int(np.argmax(logits))
        else:
            i = self._sample(np.asarray(logits, dtype=np.float64))
        return int(ids[i]) if ids is not None else i

    def _sample(self, logits):
        order = np.argsort(-logits, kind="stable")
        if self.top_k:
            order = order[:self.top_k]
        z = logits[order] / self.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        if self.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(p), self.top_p) + 1)
            order, p = order[:keep], p[:keep] / p[:keep].sum()
        return int(order[self.rng.choice(len(order), p=p)])

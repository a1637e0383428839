"""What one more attempt at a request waits for and sends.

- :func:`backoff`: exponential backoff with full jitter for transient errors,
  at least the server's ``Retry-After`` (capped by ``--max-retry-after``);
- :func:`varied`: the request a retry after a *rejected answer* sends. Sending
  the same request again to a deterministic server (temperature 0, or a
  seed) only returns the same answer again, so each retry changes what can
  change the answer: another seed, a temperature raised in small steps from
  below :data:`TEMPERATURE_FLOOR`, and twice the ``max_tokens`` after an answer
  cut off by the length limit (up to :data:`MAX_TOKENS_GROWTH` times the
  original). The cache keeps the answer under the original request's key, so
  a re-run finds it.
"""

from __future__ import annotations

import dataclasses
import random

from itkit.llm.base import ChatRequest, TransientLLMError

BACKOFF_BASE = 0.25
"""Seconds: the first retry waits up to this long (full jitter), doubling each time."""
BACKOFF_MAX = 30.0
"""Seconds: the longest backoff between two attempts (Retry-After may ask for more)."""
TEMPERATURE_FLOOR = 0.3
"""A temperature below this is raised on a retry after a rejected answer..."""
TEMPERATURE_STEP = 0.2
"""...by this much per retry..."""
TEMPERATURE_MAX = 1.0
"""...up to this."""
MAX_TOKENS_GROWTH = 4
"""A cut-off answer's retry may ask for up to this many times the original max_tokens."""
RETRY_SEED_BASE = 7919
"""The seed of the first varied retry when the request had none."""


def backoff(attempt: int, error: TransientLLMError, base: float, most: float, max_retry_after: float) -> float:
    """Seconds before attempt ``attempt + 1`` after a transient ``error``."""
    delay = random.uniform(0, min(most, base * 2 ** max(attempt - 1, 0)))
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, max_retry_after))
    return delay


def varied(request: ChatRequest, retry: int, cut_off: bool) -> ChatRequest:
    """The ``retry``-th retry of ``request`` after a rejected answer (``cut_off``: by the length limit)."""
    s = request.sampling
    changes: dict = {"seed": (s.seed if s.seed is not None else RETRY_SEED_BASE) + retry}
    if s.temperature is not None and s.temperature < TEMPERATURE_FLOOR:
        changes["temperature"] = round(min(s.temperature + TEMPERATURE_STEP * retry, TEMPERATURE_MAX), 3)
    if cut_off and s.max_tokens:
        changes["max_tokens"] = s.max_tokens * min(2**retry, MAX_TOKENS_GROWTH)
    return dataclasses.replace(request, sampling=dataclasses.replace(s, **changes))


__all__ = ["BACKOFF_BASE", "BACKOFF_MAX", "backoff", "varied"]

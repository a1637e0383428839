"""The endpoints of a run: one :class:`~itkit.llm.base.LLM` each, with its own limits, breaker and knowledge.

Each :class:`Endpoint` keeps, across the run, what it has learned (how many
requests it answered, its context size) and, per event loop, its adaptive
concurrency limit (:mod:`itkit.llm.concurrency`), its circuit breaker
(:mod:`itkit.llm.breaker`) and its rate limits (:mod:`itkit.llm.ratelimits`).
:func:`pick` chooses where the next attempt goes: the endpoint with the most
free slots among those whose breaker is closed (all of them when every
breaker is open, so the probes go on).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from itkit.llm.base import LLM
from itkit.llm.breaker import Breaker
from itkit.llm.concurrency import AdaptiveLimit
from itkit.llm.ratelimits import RateLimits
from itkit.llm.settings import LLMSettings


@dataclass
class Endpoint:
    llm: LLM
    name: str
    """The endpoint as messages show it (no credentials)."""
    settings: LLMSettings
    answered: int = 0
    """Requests this endpoint answered (HTTP 200) during the run."""
    context_size: int | None = None
    """The model's context in tokens, once the server named it in an error."""
    limiter: AdaptiveLimit = field(init=False)
    breaker: Breaker = field(init=False)
    limits: RateLimits = field(init=False)

    def __post_init__(self) -> None:
        self.bind()

    def bind(self) -> None:
        """Fresh loop-bound state (the engine may run several event loops one after the other)."""
        s = self.settings
        self.limiter = AdaptiveLimit(s.concurrency, adapt=not s.no_adapt, deadline=s.timeout)
        self.breaker = Breaker(self.name, s.max_outage)
        self.limits = RateLimits(s.rpm, s.tpm, s.max_retry_after)

    def status(self) -> str:
        return self.breaker.status() or self.limits.status()


_turn = itertools.count()


def pick(endpoints: list[Endpoint]) -> Endpoint:
    """The endpoint for the next attempt."""
    if len(endpoints) == 1:
        return endpoints[0]
    up = [e for e in endpoints if not e.breaker.is_open] or endpoints
    start = next(_turn) % len(up)
    rotated = up[start:] + up[:start]  # ties go round
    return max(rotated, key=lambda e: e.limiter.free / e.limiter.size)


__all__ = ["Endpoint", "pick"]

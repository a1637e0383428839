"""Adaptive concurrency: how many requests one endpoint gets at once, found as TCP finds its window.

``--concurrency`` is the ceiling. Below it, :class:`AdaptiveLimit` keeps a
limit that grows while the server keeps up and shrinks when it does not:

- *ramp*: from :data:`INITIAL_LIMIT`, before the server has said anything,
  the limit doubles each time :data:`RAMP_GRACE` passes with the limit full,
  records waiting for a slot, and no request refused: a server that refuses
  what it cannot serve does so at once (HTTP 503 or 429 in a millisecond on a
  local network), so requests it holds without refusing are requests it
  serves. This finds the ceiling, or the server's capacity, in a few tens of
  milliseconds instead of several round trips (against a server answering in
  200 ms, slow start from 4 cost 0.6 s of a 7 s run at 64 in flight). A
  server that queues what it cannot serve gets the whole burst; the latency
  and timeout signals below bring the limit down from there;
- *slow start*: from the first answer on, +2 per answered request (the limit
  triples every round trip) until the first sign of overload (the ramp ends
  with the first answer or the first refusal);
- *additive increase*: then +1 per round trip (+1/limit per answer), and,
  near the level where the server was last overloaded, ``PROBE_PATIENCE``
  times slower (doubling after each overload at the same level), so a server
  that serves K at a time sees an error once in many requests, not every few;
- *multiplicative decrease*: an HTTP 429 or a timeout, or answers taking more
  than half the attempt deadline (a server queueing more than it serves in
  time), halve the limit (once per round of requests);
- a request the server refused (HTTP 5xx) caps the limit at the number of
  requests still in flight: a server that serves K at a time and refuses the
  rest settles at K, and a flaky server's odd 500 costs one slot, not half.

Only answers from requests that were in flight while the limit was reached (a
request filled it, or records waited for a slot) count for growth, and the ramp
doubles only while records wait (a run that never fills its limit does not
inflate it). ``adapt=False`` (``--no-adapt``) keeps the limit at the ceiling,
for benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

INITIAL_LIMIT = 2
"""Requests in flight at the start (or the ceiling, if lower): a server that serves one at a time refuses one."""
RAMP_GRACE = 0.01
"""Ramp: seconds the limit stays full without a refusal before it doubles (a refusal takes a millisecond locally;
one that takes longer only makes the ramp overshoot, and the first refusal caps the limit at what is in flight)."""
RAMP_FACTOR = 2.0
"""Ramp: the limit is multiplied by this each RAMP_GRACE without a refusal."""
SLOW_START_STEP = 2.0
"""Slow start: the limit grows by this much per answer (it triples every round trip)."""
DECREASE_FACTOR = 0.5
"""The limit is multiplied by this on overload."""
PROBE_PATIENCE = 16
"""Near the last overload level, growth is this many times slower (doubling per repeat overload)."""
MAX_PATIENCE = 256
SLOW_SHARE = 0.5
"""Answers (smoothed) taking more than this share of the attempt deadline (--timeout) mean the server queues
more than it can serve in time: overload, before requests start timing out. (Latency relative to the quickest
answer is no signal: it rises as much when this process is short of CPU, or when answers are longer.)"""
LATENCY_SMOOTHING = 0.2
"""Weight of a new answer in the smoothed latency."""

OK = "ok"
OVERLOAD = "overload"
REFUSED = "refused"
NEUTRAL = "neutral"
"""Outcomes of a request for the limit: answered, overloaded (429, timeout), refused (5xx), or says nothing."""


@dataclass
class Ticket:
    """One admitted request: when it started, at which decrease epoch, whether the limit was full, and how often
    the limit had been found full before (so a request in flight when it fills later counts too)."""

    started: float
    epoch: int
    full: bool
    fills: int = 0


class AdaptiveLimit:
    """An adjustable semaphore whose size adapts to the server (AIMD)."""

    def __init__(
        self,
        ceiling: int,
        *,
        adapt: bool = True,
        initial: int = INITIAL_LIMIT,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ceiling = max(1, ceiling)
        self.adapt = adapt
        self.limit = float(min(initial, self.ceiling) if adapt else self.ceiling)
        self.in_flight = 0
        self.decreases = 0
        self._clock = clock
        self._epoch = 0
        self._slow_start = True
        self._loss_level: float | None = None
        self._patience = PROBE_PATIENCE
        self.slow_after = deadline * SLOW_SHARE if deadline else None
        self._smoothed: float | None = None
        self._waiters: deque[asyncio.Future] = deque()
        self._ramping = self.adapt
        self._ramp_timer: asyncio.TimerHandle | None = None
        self._fills = 0
        """Times a request found the limit full (had to wait): tickets compare it to tell they saw demand."""
        self.ramp_steps = 0

    @property
    def size(self) -> int:
        return max(1, int(self.limit))

    @property
    def free(self) -> int:
        return self.size - self.in_flight

    async def acquire(self) -> Ticket:
        while self.in_flight >= self.size:
            self._fills += 1
            if self._ramping and self._ramp_timer is None:
                self._ramp_timer = asyncio.get_running_loop().call_later(RAMP_GRACE, self._ramp)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the slot it was given on
                raise
        self.in_flight += 1
        # the limit is reached when this request fills it, or when others are still waiting for a slot
        return Ticket(self._clock(), self._epoch, self.in_flight >= self.size or bool(self._waiters), self._fills)

    def release(self, ticket: Ticket, outcome: str = NEUTRAL) -> None:
        self.in_flight -= 1
        if self.adapt:
            if outcome == OK and self._queueing(self._clock() - ticket.started):
                outcome = OVERLOAD
            if outcome != NEUTRAL:
                self._end_ramp()  # the server has spoken: grow by its answers from now on
            if outcome == OVERLOAD:
                self._decrease(ticket)
            elif outcome == REFUSED:
                self._refused(ticket)
            elif outcome == OK and (ticket.full or self._fills > ticket.fills):
                self._increase()
        self._wake()

    def _ramp(self) -> None:
        """RAMP_GRACE passed with the limit full and nothing refused: double it (and look again later)."""
        self._ramp_timer = None
        if not self._ramping or not self._waiters or self.in_flight < self.size:
            return
        self.limit = min(float(self.ceiling), self.limit * RAMP_FACTOR)
        self.ramp_steps += 1
        self._wake()
        if self.limit >= self.ceiling:
            self._ramping = False
        elif self._waiters:
            self._ramp_timer = asyncio.get_running_loop().call_later(RAMP_GRACE, self._ramp)

    def _end_ramp(self) -> None:
        self._ramping = False
        if self._ramp_timer is not None:
            self._ramp_timer.cancel()
            self._ramp_timer = None

    def _queueing(self, latency: float) -> bool:
        if self.slow_after is None:
            return False
        self._smoothed = latency if self._smoothed is None else (
            self._smoothed + LATENCY_SMOOTHING * (latency - self._smoothed)
        )
        return self._smoothed > self.slow_after

    def _increase(self) -> None:
        if self._slow_start:
            step = SLOW_START_STEP
        elif self._loss_level is not None and int(self.limit) + 1 >= int(self._loss_level):
            step = 1.0 / (self.limit * self._patience)
        else:
            step = 1.0 / self.limit
        self.limit = min(float(self.ceiling), self.limit + step)

    def _refused(self, ticket: Ticket) -> None:
        before = self.limit
        self.limit = max(1.0, min(self.limit, float(self.in_flight)))  # at most that many fit
        if ticket.epoch == self._epoch:
            self._lost(before)
        elif self._loss_level is not None:  # the same burst: the level that failed is lower than first thought
            self._loss_level = min(self._loss_level, before)

    def _decrease(self, ticket: Ticket) -> None:
        if ticket.epoch != self._epoch:
            return  # sent before the last decrease: already accounted for
        before = self.limit
        self.limit = max(1.0, before * DECREASE_FACTOR)
        self._lost(before)

    def _lost(self, before: float) -> None:
        """The server was overloaded at ``before``: remember the level, probe it more patiently next time."""
        repeat = self._loss_level is not None and before <= self._loss_level + 1
        self._patience = min(self._patience * 2, MAX_PATIENCE) if repeat else PROBE_PATIENCE
        self._loss_level = before
        self._slow_start = False
        self._smoothed = None  # judge the new limit by its own answers
        self._epoch += 1
        self.decreases += 1

    def _wake(self) -> None:
        free = self.size - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


__all__ = ["NEUTRAL", "OK", "OVERLOAD", "REFUSED", "AdaptiveLimit", "Ticket"]

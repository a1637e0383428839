"""The circuit breaker of one endpoint: stop sending into a server that is down, probe it, resume.

When :data:`TRIP_AFTER` errors in a row that say the server is gone (refused
or dropped connections, timeouts, HTTP 502/503/504; not a 500, which is
often one request's problem), spanning at least :data:`TRIP_RECORDS`
different requests, come back from an endpoint that has answered before, the
breaker *opens*: no request is sent but one probe at a time, after a backoff
that doubles from :data:`PROBE_FIRST` to :data:`PROBE_MAX` seconds. The first
answer closes it and every waiting request goes on. Attempts that failed
because the server was down do not count against a record's retries. When
the breaker has been open longer than ``--max-outage`` seconds,
:class:`~itkit.llm.errors.ServerUnreachable` stops the run (the records not
yet done stay undone; a re-run continues from the cache).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from itkit.llm.errors import ServerUnreachable

TRIP_AFTER = 5
"""Consecutive "unreachable" errors that open the breaker..."""
TRIP_RECORDS = 2
"""...spanning at least this many different requests."""
PROBE_FIRST = 0.5
"""Seconds before the first probe of an open breaker."""
PROBE_MAX = 2.0
"""Seconds: the longest wait between two probes (one small request: a server back is noticed at once)."""


class Breaker:
    def __init__(
        self,
        endpoint: str,
        max_outage: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.endpoint = endpoint
        self.max_outage = max_outage
        self.trips = 0
        self._clock = clock
        self._wall = wall
        self._streak = 0
        self._streak_keys: set[str] = set()
        self._opened: float | None = None
        self._opened_wall = 0.0
        self._next_probe = 0.0
        self._backoff = PROBE_FIRST
        self._probing = False
        self._last_error = ""
        self._changed: asyncio.Event | None = None

    @property
    def is_open(self) -> bool:
        return self._opened is not None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def succeeded(self) -> None:
        self._streak = 0
        self._streak_keys.clear()
        if self._opened is not None:
            self._opened = None
            self._probing = False
            self._backoff = PROBE_FIRST
        self._notify()

    def failed(self, key: str, error: str, probe: bool) -> None:
        """An outage error on the request ``key`` (``probe``: it was the open breaker's probe)."""
        self._last_error = error
        self._streak += 1
        self._streak_keys.add(key)
        if self._opened is None:
            if self._streak >= TRIP_AFTER and len(self._streak_keys) >= TRIP_RECORDS:
                self._opened = self._clock()
                self._opened_wall = self._wall()
                self._next_probe = self._opened + PROBE_FIRST
                self._backoff = PROBE_FIRST
                self.trips += 1
        elif probe:
            self._backoff = min(self._backoff * 2, PROBE_MAX)
            self._next_probe = self._clock() + self._backoff
        if probe:
            self._probing = False
        self._notify()

    def released(self, probe: bool) -> None:
        """A request ended without an outage error or an answer (e.g. a 4xx): a probe's turn passes on."""
        if probe:
            self._probing = False
            self._notify()

    def check_outage(self) -> None:
        if self._opened is not None and self._clock() - self._opened > self.max_outage:
            since = time.strftime("%H:%M:%S", time.localtime(self._opened_wall))
            raise ServerUnreachable(
                f"{self.endpoint}: the server has not answered since {since} "
                f"(longer than --max-outage {self.max_outage:g} s; last error: {self._last_error}); "
                "the records not done yet were not attempted: re-run the same command when it is back "
                "(answers so far are in the cache)"
            )

    async def admit(self) -> bool:
        """Wait until a request may be sent; True when it is the probe of an open breaker."""
        while True:
            if self._opened is None:
                return False
            self.check_outage()
            now = self._clock()
            if not self._probing and now >= self._next_probe:
                self._probing = True
                return True
            wait = max(self._next_probe - now, 0.05) if not self._probing else None
            if wait is not None:
                wait = min(wait, max(self._opened + self.max_outage - now, 0) + 0.05)
            try:
                await asyncio.wait_for(self._event().wait(), wait)
            except asyncio.TimeoutError:
                pass

    def status(self) -> str:
        """The progress line's word on the endpoint, "" while it answers."""
        if self._opened is None:
            return ""
        since = time.strftime("%H:%M:%S", time.localtime(self._opened_wall))
        if self._probing:
            return f"server unreachable since {since}, probing"
        left = max(0.0, self._next_probe - self._clock())
        return f"server unreachable since {since}, retrying in {left:.0f} s"


__all__ = ["Breaker", "PROBE_FIRST", "PROBE_MAX", "TRIP_AFTER", "TRIP_RECORDS"]

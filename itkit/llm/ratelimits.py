"""Rate limits of one endpoint: request and token buckets, the 429 cool-down, and limits learned from headers.

- ``--rpm`` / ``--tpm`` fill a request bucket and a token bucket (prompt tokens
  by tiktoken plus ``max_tokens``) per minute;
- a 429 makes every request to the endpoint pause (``Retry-After``, capped by
  ``--max-retry-after``, else :data:`RATE_LIMIT_COOLDOWN`), not only the one
  that got it;
- OpenAI and several providers send ``x-ratelimit-limit-requests``,
  ``x-ratelimit-limit-tokens``, ``x-ratelimit-remaining-*`` and
  ``x-ratelimit-reset-*`` with every response: the buckets follow the limits
  they announce (an explicit ``--rpm`` / ``--tpm`` wins), are kept in step
  with what the server says is used (a bucket learned from the first answers
  starts with the requests already sent, not full), and a remaining count of 0
  pauses until its reset.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Callable

from itkit.lazy import lazy_module

aiolimiter = lazy_module("aiolimiter")

RATE_PERIOD = 60.0
"""Seconds: --rpm and --tpm are per minute."""
RATE_LIMIT_COOLDOWN = 2.0
"""Seconds every request pauses after a 429 that gave no Retry-After."""
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def reset_seconds(value: str | None) -> float | None:
    """Seconds of an ``x-ratelimit-reset-*`` value: ``"6m0s"``, ``"1.5s"``, ``"250ms"`` or a number of seconds."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    found = _DURATION.match(text)
    if not found or not any(found.groups()):
        return None
    h, m, s, ms = (float(g) if g else 0.0 for g in found.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def _int(value: str | None) -> int | None:
    try:
        number = int(float(value)) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def in_step(bucket: "aiolimiter.AsyncLimiter", used: float) -> None:
    """Count at least ``used`` as spent in ``bucket`` (the server's count; ours may hold requests it has not seen).

    (aiolimiter keeps the spent amount in ``_level``, drained as time passes; it has no public setter.)
    """
    if hasattr(bucket, "_level") and hasattr(bucket, "_leak"):
        bucket._leak()
        bucket._level = max(bucket._level, min(float(used), float(bucket.max_rate)))


class RateLimits:
    def __init__(self, rpm: int | None, tpm: int | None, max_retry_after: float, clock: Callable[[], float] | None = None):
        self.explicit_rpm = rpm
        self.explicit_tpm = tpm
        self.rpm = rpm
        self.tpm = tpm
        self.max_retry_after = max_retry_after
        self.learned = False
        self._clock = clock or time.monotonic
        self._rpm_bucket = aiolimiter.AsyncLimiter(rpm, RATE_PERIOD) if rpm else None
        self._tpm_bucket = aiolimiter.AsyncLimiter(tpm, RATE_PERIOD) if tpm else None
        self._pause_until = 0.0
        self._pause_reason = ""

    def _now(self) -> float:
        return self._clock()

    @property
    def counts_tokens(self) -> bool:
        return self._tpm_bucket is not None

    async def wait_pause(self) -> None:
        while (delay := self._pause_until - self._now()) > 0:
            await asyncio.sleep(delay)

    async def acquire(self, tokens: int) -> None:
        await self.wait_pause()
        if self._rpm_bucket is not None:
            await self._rpm_bucket.acquire()
        if self._tpm_bucket is not None and tokens:
            await self._tpm_bucket.acquire(min(tokens, int(self._tpm_bucket.max_rate)))
        await self.wait_pause()  # a 429 may have come while this request waited

    def pause(self, seconds: float, reason: str) -> None:
        until = self._now() + seconds
        if until > self._pause_until:
            self._pause_until = until
            self._pause_reason = reason

    def rate_limited(self, retry_after: float | None) -> float:
        """A 429: pause every request; returns the pause in seconds."""
        seconds = RATE_LIMIT_COOLDOWN if retry_after is None else min(retry_after, self.max_retry_after)
        self.pause(seconds, "rate limited (429)")
        return seconds

    def capped(self, retry_after: float) -> float:
        return min(retry_after, self.max_retry_after)

    def learn(self, headers: dict[str, str] | None) -> None:
        """Follow the limits a response announces (its ``x-ratelimit-*`` headers)."""
        if not headers:
            return
        rpm = _int(headers.get("x-ratelimit-limit-requests"))
        tpm = _int(headers.get("x-ratelimit-limit-tokens"))
        if rpm and self.explicit_rpm is None and rpm != self.rpm:
            self.rpm = rpm
            self._rpm_bucket = aiolimiter.AsyncLimiter(rpm, RATE_PERIOD)
            self.learned = True
        if tpm and self.explicit_tpm is None and tpm != self.tpm:
            self.tpm = tpm
            self._tpm_bucket = aiolimiter.AsyncLimiter(tpm, RATE_PERIOD)
            self.learned = True
        for kind, bucket in (("requests", self._rpm_bucket), ("tokens", self._tpm_bucket)):
            limit, left = _int(headers.get(f"x-ratelimit-limit-{kind}")), _int(headers.get(f"x-ratelimit-remaining-{kind}"))
            if bucket is not None and limit is not None and left is not None and limit == bucket.max_rate:
                in_step(bucket, limit - left)
            if left == 0:
                wait = reset_seconds(headers.get(f"x-ratelimit-reset-{kind}"))
                if wait:
                    self.pause(min(wait, self.max_retry_after), f"{kind} limit reached (x-ratelimit headers)")

    def status(self) -> str:
        """The progress line's word on a pause, "" when there is none."""
        left = self._pause_until - self._now()
        if left <= 0.5:
            return ""
        return f"{self._pause_reason}: waiting {left:.0f} s"


__all__ = ["RATE_LIMIT_COOLDOWN", "RATE_PERIOD", "RateLimits", "in_step", "reset_seconds"]

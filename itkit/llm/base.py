"""The LLM interface every rewrite method depends on.

- :class:`LLM` is the one async interface to a chat model: ``complete(request)``.
  The OpenAI-compatible client (``itkit.llm.openai_client``) is one
  implementation; tests use scripted fakes.
- Failures are typed: :class:`FatalLLMError` stops the whole run at once
  (invalid key, unknown model, bad request); :class:`TransientLLMError` is
  retried with backoff (429, 5xx, timeouts, dropped connections);
  :class:`ResponseRejected` means the response came back but is unusable
  (empty, cut off by the length limit, not valid JSON, unparseable): it is
  retried up to the limit, then the record goes to the failures file with the
  raw text and the reason (:class:`RecordFailure`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from itkit.errors import ItkitError

CONNECTION_STATUS = -1
"""``TransientLLMError.status`` of a refused or dropped connection."""
TIMEOUT_STATUS = -2
"""``TransientLLMError.status`` of an attempt that ran past its deadline."""

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; None means: use the run's setting (or the server's default)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def merged(self, override: "Sampling | None") -> "Sampling":
        """These settings with every non-None field of ``override`` on top."""
        if override is None:
            return self
        values = {k: v for k, v in override.__dict__.items() if v is not None}
        return Sampling(**{**self.__dict__, **values})

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    json_mode: bool = False
    """Ask for a JSON object (response_format) and reject a body that is not valid JSON."""
    template: str = ""
    """The identity (text hash) of the prompt template, part of the cache key."""


@dataclass(frozen=True)
class ChatResponse:
    text: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    limits: dict[str, str] | None = field(default=None, compare=False)
    """The response's ``x-ratelimit-*`` headers (lower-case names), when it had any."""


class LLM(ABC):
    """One chat model behind one async method."""

    @abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request; raise FatalLLMError or TransientLLMError on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LLMError(ItkitError):
    """Base of LLM failures."""


class FatalLLMError(LLMError):
    """Retrying cannot help (HTTP 400/401/403/404, bad settings): stop the run."""


class TransientLLMError(LLMError):
    """Worth retrying with backoff (HTTP 429/5xx, timeouts, dropped connections)."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None, short: str | None = None
    ):
        super().__init__(message)
        self.short = short or message
        """The message without the server's words (``HTTP 500``), for counting errors by kind."""
        self.retry_after = retry_after
        self.status = status
        """The HTTP status, or CONNECTION_STATUS / TIMEOUT_STATUS."""
        self.limits: dict[str, str] | None = None
        """The response's ``x-ratelimit-*`` headers, when it had any."""

    @property
    def outage(self) -> bool:
        """A sign the server is down or overloaded (connection error, timeout, 5xx), not a rate limit."""
        return self.status is not None and (self.status < 0 or self.status >= 500)

    @property
    def unreachable(self) -> bool:
        """A sign the server is gone: refused or dropped connection, timeout, 502/503/504 from a proxy or a restart."""
        return self.status is not None and (self.status < 0 or self.status in (502, 503, 504))


class ResponseRejected(LLMError):
    """A response arrived but cannot be used; ``raw`` is its text."""

    def __init__(self, reason: str, raw: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class RecordFailure(LLMError):
    """A record could not be processed after all retries: it goes to the failures file."""

    def __init__(self, reason: str, raw: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.base_reason = reason
        """The reason without the attempt count (the key of the failure counts)."""

"""What an HTTP error from an OpenAI-compatible server means: one classifier for every server's shapes.

:func:`classify` turns a status, the body and the headers into the typed
errors of :mod:`itkit.llm.base` and :mod:`itkit.llm.errors`, quoting the
server's own message (sanitised by :mod:`itkit.llm.server_text`, the key
masked):

- a prompt longer than the model's context, in each server's words:
  :class:`RequestTooLarge` (that record fails; the others go on), carrying the
  context size when the server names it;
- 401, 403, 404, an exhausted quota: :class:`FatalLLMError` (the run stops);
- other 400 and 422: :class:`BadRequest`, which the engine treats as fatal
  while no request has succeeded on the endpoint (a wrong model or path) and as
  that record's failure afterwards;
- 429 (with ``Retry-After``), 408, 409, 425 and 5xx: :class:`TransientLLMError`.
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any, Callable

from itkit.llm.base import FatalLLMError, TransientLLMError
from itkit.llm.errors import BadRequest, RequestTooLarge
from itkit.llm.server_text import sanitize, server_message

TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
FATAL_HINTS = {
    400: "the server rejected the request as invalid; check --model and the sampling options",
    401: "the API key was rejected; check --api-key or OPENAI_API_KEY",
    403: "the API key is not allowed to use this model or endpoint; check --model and the key's permissions",
    404: "the model or endpoint was not found; check --model and --base-url",
    422: "the server could not process the request; check --model and the sampling options",
}
CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"})
"""Error codes/types that mean: the prompt does not fit the model's context (OpenAI, llama.cpp)."""
_CONTEXT_WORDS = re.compile(
    r"context[ _](?:length|size|window)|maximum context|too many tokens|prompt is too long|input is too long"
    r"|exceeds? (?:the )?(?:model'?s? )?(?:max(?:imum)?|available) (?:context|input|sequence)|max_model_len"
    r"|must have less than \d+ tokens|inputs?`? tokens \+ `?max_new_tokens|input length (?:of \d+ )?exceeds",
    re.I,
)
"""vLLM "maximum context length", llama.cpp "exceeds the available context size" and "Context size has been
exceeded", TGI "`inputs` must have less than N tokens" / "inputs tokens + max_new_tokens must be <= N",
Ollama "input length exceeds the context length", OpenAI "maximum context length"."""
_CONTEXT_SIZE = (
    re.compile(r"maximum context length is (\d+)", re.I),
    re.compile(r"available context size \((\d+) tokens?\)", re.I),
    re.compile(r"context (?:size|length|window) (?:of |is )?\(?(\d+)", re.I),
    re.compile(r"must have less than (\d+) tokens", re.I),
    re.compile(r"max_new_tokens`? must be <= (\d+)", re.I),
    re.compile(r"max_model_len[ =(]+(\d+)", re.I),
)


def context_size_in(message: str) -> int | None:
    """The model's context size (tokens) when the server's message names it."""
    for pattern in _CONTEXT_SIZE:
        found = pattern.search(message)
        if found:
            size = int(found.group(1))
            if size > 0:
                return size
    return None


def is_context_overflow(status: int, code: str, message: str) -> bool:
    if code in CONTEXT_CODES:
        return status in (400, 413, 422, 500)
    return status in (400, 413, 422, 500) and bool(_CONTEXT_WORDS.search(message))


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _code(body: Any) -> str:
    """The error's machine-readable code (else its type), where the body has one."""
    if not isinstance(body, dict):
        return ""
    inner = body.get("error")
    fields = inner if isinstance(inner, dict) else body
    for name in ("code", "type", "error_type"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def classify(
    status: int,
    body: Any,
    headers: Any,
    *,
    where: str,
    mask: Callable[[str], str] = lambda text: text,
) -> Exception:
    """The typed error for an HTTP error response.

    ``body`` is the raw body (bytes or text) or its parsed JSON; ``where`` names
    the endpoint and model for fatal messages; ``mask`` hides the API key in the
    quoted message.
    """
    said = mask(server_message(body))
    code = _code(body)
    quoted = f" (server said: {said})" if said else ""
    if status == 429:
        if code == "insufficient_quota":
            return FatalLLMError(f"{where}: HTTP 429: the account's quota is exhausted; check billing{quoted}")
        return TransientLLMError(
            f"HTTP 429 rate limited{quoted}", retry_after_seconds(headers), 429, short="HTTP 429 rate limited"
        )
    if is_context_overflow(status, code, said):
        return RequestTooLarge(
            f"the prompt is longer than the model's context (HTTP {status}){quoted}", context_size=context_size_in(said)
        )
    if status >= 500 or status in TRANSIENT_STATUS:
        return TransientLLMError(f"HTTP {status}{quoted}", retry_after_seconds(headers), status, short=f"HTTP {status}")
    hint = FATAL_HINTS.get(status, "the server refused the request")
    if status in (400, 422):
        return BadRequest(f"{where}: HTTP {status}: {hint}{quoted}", status=status, said=f"HTTP {status}{quoted}")
    return FatalLLMError(f"{where}: HTTP {status}: {hint}{quoted}")


__all__ = [
    "CONTEXT_CODES",
    "classify",
    "context_size_in",
    "is_context_overflow",
    "retry_after_seconds",
    "sanitize",
]

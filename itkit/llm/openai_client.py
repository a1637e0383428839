"""The :class:`~itkit.llm.base.LLM` for any OpenAI-compatible endpoint, on the official ``openai`` SDK.

OpenAI, vLLM (``vllm serve``), Ollama (``http://localhost:11434/v1``), LM Studio,
llama.cpp's server and hosted gateways all speak the chat completions API.

The SDK's own retries are off (``max_retries=0``): the engine retries, because
it must also retry rejected responses, share a 429 cool-down between all
requests in flight, and count every attempt. SDK errors become the typed errors
of :mod:`itkit.llm.base`:

- 400, 401, 403, 404, 422 and a 429 for an exhausted quota: :class:`FatalLLMError`
  (one message that says what to check; the key never appears in it);
- a 400 for a prompt longer than the model's context: :class:`RequestTooLarge`,
  which fails that record only;
- other 429s (with ``Retry-After``), 408, 409, 5xx, timeouts, dropped
  connections and malformed bodies: :class:`TransientLLMError`.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from typing import Any

import orjson

from itkit.llm.base import ChatRequest, ChatResponse, FatalLLMError, LLM, TransientLLMError
from itkit.llm.errors import RequestTooLarge
from itkit.llm.secrets import mask_server_text, split_credentials
from itkit.llm.settings import LLMSettings

CHAT_PATH = "/chat/completions"
NO_KEY_PLACEHOLDER = "no-key"
"""Sent as the key to a custom --base-url when none is given (local servers accept anything)."""
MAX_SERVER_MESSAGE = 300
"""Characters of a server's error message quoted in ours."""
KEEPALIVE_EXPIRY = 30.0
TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
FATAL_HINTS = {
    400: "the server rejected the request as invalid; check --model and the sampling options",
    401: "the API key was rejected; check --api-key or OPENAI_API_KEY",
    403: "the API key is not allowed to use this model or endpoint; check --model and the key's permissions",
    404: "the model or endpoint was not found; check --model and --base-url",
    422: "the server could not process the request; check --model and the sampling options",
}
_CONTEXT_LENGTH = re.compile(r"context[ _]length|maximum context|too many tokens|prompt is too long", re.I)


def _httpx() -> Any:
    """The HTTP library of the installed SDK (``httpx2`` for openai 3.x, ``httpx`` before)."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older SDKs
        import httpx

        return httpx


def http_client(concurrency: int, timeout: float) -> Any:
    """The SDK's HTTP client with one pooled connection per concurrency slot.

    The SDK's aiohttp transport (``openai.DefaultAioHttpClient``) needs half the
    CPU per request of its default httpx transport (whose pool scans every idle
    connection on each request), which is what lets one process keep 64 and
    more requests in flight at the server's pace; SDKs without it get the
    default transport.
    """
    import openai

    limits = _httpx().Limits(
        max_connections=max(concurrency, 1),
        max_keepalive_connections=max(concurrency, 1),
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
    except (AttributeError, RuntimeError):  # pragma: no cover - an SDK or install without the aiohttp transport
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout)


def parse_completion(content: bytes) -> ChatResponse:
    """A chat completion body as a :class:`ChatResponse`; TransientLLMError when it is not one."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise TransientLLMError("the server sent a malformed (non-JSON) response body") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TransientLLMError("the server sent a response without choices")
    choice = choices[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    finish = choice.get("finish_reason")
    return ChatResponse(
        text=text if isinstance(text, str) else "",
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        model=str(data.get("model") or ""),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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


class OpenAIChatLLM(LLM):
    """Chat completions through ``openai.AsyncOpenAI`` against ``settings.base_url``.

    One SDK client is made per event loop (the engine may run several loops
    one after the other) and closed by :meth:`aclose`.
    """

    def __init__(self, settings: LLMSettings):
        key = settings.key_value()
        if key is None and settings.base_url is None:
            raise FatalLLMError(
                "no API key: pass --api-key or set OPENAI_API_KEY "
                "(for a local server such as vLLM or Ollama, set --base-url; it needs no key)"
            )
        self.settings = settings
        self._key = key or NO_KEY_PLACEHOLDER
        # user:password@ in --base-url: HTTP Basic auth (a gateway in front of a local server), instead of a key
        self._base_url, basic = split_credentials(settings.base_url) if settings.base_url else (None, None)
        if basic is not None and key is not None:
            raise FatalLLMError(
                f"{settings.endpoint}: the URL carries a user and password and an API key is given too; "
                "HTTP sends one Authorization header: drop one of them"
            )
        self._headers = {"Authorization": basic} if basic is not None else None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None


    def _client_for_loop(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self._base_url,
                default_headers=self._headers,
                timeout=self.settings.timeout,
                max_retries=0,
                http_client=http_client(self.settings.concurrency, self.settings.timeout),
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass

    async def complete(self, request: ChatRequest) -> ChatResponse:
        import openai

        client = self._client_for_loop()
        body: dict[str, Any] = {"model": request.model, "messages": list(request.messages)}
        body.update(request.sampling.as_dict())
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            # the SDK's documented low-level call: the same auth, headers, timeouts and typed status errors as
            # ``chat.completions.create``, without re-validating a body we built ourselves or building a pydantic
            # model we would only read three fields of (together a quarter of the client's CPU per request)
            http = await client.post(CHAT_PATH, body=body, cast_to=_httpx().Response)
        except openai.APIConnectionError as exc:  # timeouts included
            raise self._connection_error(exc) from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        return parse_completion(http.content)

    def _connection_error(self, exc: Exception) -> TransientLLMError:
        """A timeout or a dropped/refused connection, named after its root cause.

        (The aiohttp transport reports a dropped connection as a connect
        timeout; the root cause tells them apart.)
        """
        root: BaseException = exc
        while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        if isinstance(root, TimeoutError) or "Timeout" in type(root).__name__:
            return TransientLLMError(f"the request timed out after {self.settings.timeout:g} s")
        return TransientLLMError(f"connection error ({type(root).__name__})")

    def _server_message(self, exc: Any) -> str:
        body = getattr(exc, "body", None)
        message = ""
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict):
                message = str(inner.get("message") or "")
            elif isinstance(inner, str):
                message = inner
        if not message:
            message = str(getattr(exc, "message", "") or "")
            message = re.sub(r"^Error code: \d+ - ", "", message)
        message = mask_server_text(message, self._key)
        message = " ".join(message.split())
        if len(message) > MAX_SERVER_MESSAGE:
            message = message[: MAX_SERVER_MESSAGE - 3] + "..."
        return message

    def _status_error(self, exc: Any) -> Exception:
        status = int(getattr(exc, "status_code", 0) or 0)
        code = str(getattr(exc, "code", "") or "")
        said = self._server_message(exc)
        quoted = f" (server said: {said})" if said else ""
        where = f"{self.settings.endpoint}, model '{self.settings.model}'"
        if status == 429:
            if code == "insufficient_quota":
                return FatalLLMError(f"{where}: HTTP 429: the account's quota is exhausted; check billing{quoted}")
            headers = getattr(getattr(exc, "response", None), "headers", None)
            return TransientLLMError("HTTP 429 rate limited", retry_after=retry_after_seconds(headers), status=429)
        if status >= 500 or status in TRANSIENT_STATUS:
            return TransientLLMError(f"HTTP {status}", status=status)
        if status == 400 and (code == "context_length_exceeded" or _CONTEXT_LENGTH.search(said)):
            return RequestTooLarge(f"the prompt is longer than the model's context (HTTP 400){quoted}")
        hint = FATAL_HINTS.get(status, "the server refused the request")
        return FatalLLMError(f"{where}: HTTP {status}: {hint}{quoted}")

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
import dataclasses
from typing import Any

import orjson

from itkit.llm.base import CONNECTION_STATUS, TIMEOUT_STATUS, ChatRequest, ChatResponse, FatalLLMError, LLM, TransientLLMError
from itkit.llm.server_errors import classify
from itkit.llm.secrets import mask_server_text, split_credentials
from itkit.llm.settings import LLMSettings, shown_url

CHAT_PATH = "/chat/completions"
NO_KEY_PLACEHOLDER = "no-key"
"""Sent as the key to a custom --base-url when none is given (local servers accept anything)."""
KEEPALIVE_EXPIRY = 30.0
RATE_LIMIT_HEADER_PREFIX = "x-ratelimit-"


def _httpx() -> Any:
    """The HTTP library of the installed SDK (``httpx2`` for openai 3.x, ``httpx`` before)."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - older SDKs
        import httpx

        return httpx


def timeouts(timeout: float, connect_timeout: float | None = None) -> Any:
    """read: the gap between bytes; connect: a port that never answers fails fast; pool: the engine bounds concurrency."""
    return _httpx().Timeout(timeout, connect=connect_timeout or timeout, pool=None)


def http_client(concurrency: int, timeout: float, connect_timeout: float | None = None) -> Any:
    """The SDK's HTTP client with one pooled connection per concurrency slot.

    The SDK's aiohttp transport (``openai.DefaultAioHttpClient``) needs half the
    CPU per request of its default httpx transport (whose pool scans every idle
    connection on each request), which is what lets one process keep 64 and
    more requests in flight at the server's pace; SDKs without it get the
    default transport.
    """
    import openai

    httpx = _httpx()
    limits = httpx.Limits(
        max_connections=max(concurrency, 1),
        max_keepalive_connections=max(concurrency, 1),
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    try:
        return openai.DefaultAioHttpClient(limits=limits, timeout=timeouts(timeout, connect_timeout))
    except (AttributeError, RuntimeError):  # pragma: no cover - an SDK or install without the aiohttp transport
        return openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeouts(timeout, connect_timeout))


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


def rate_limit_headers(headers: Any) -> dict[str, str] | None:
    """The ``x-ratelimit-*`` headers of a response (lower-case names), None when it has none."""
    if headers is None:
        return None
    found = {k.lower(): v for k, v in headers.items() if k.lower().startswith(RATE_LIMIT_HEADER_PREFIX)}
    return found or None


class OpenAIChatLLM(LLM):
    """Chat completions through ``openai.AsyncOpenAI`` against ``settings.base_url``.

    One SDK client is made per event loop (the engine may run several loops
    one after the other) and closed by :meth:`aclose`.
    """

    chat_path = CHAT_PATH

    def __init__(self, settings: LLMSettings, base_url: str | None = None):
        key = settings.key_value()
        url = base_url or settings.base_url
        if key is None and url is None:
            raise FatalLLMError(
                "no API key: pass --api-key or set OPENAI_API_KEY "
                "(for a local server such as vLLM or Ollama, set --base-url; it needs no key)"
            )
        # user:password@ in --base-url: HTTP Basic auth (a gateway in front of a local server), instead of a key
        self.base_url, basic = split_credentials(url) if url else (None, None)
        if basic is not None and key is not None:
            raise FatalLLMError(
                f"{shown_url(url)}: the URL carries a user and password and an API key is given too; "
                "HTTP sends one Authorization header: drop one of them"
            )
        self._headers = {"Authorization": basic} if basic is not None else None
        self.settings = settings
        self._key = key or NO_KEY_PLACEHOLDER
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.concurrency = settings.concurrency
        self.endpoint = shown_url(url) if url else settings.endpoint

    def _client_for_loop(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.base_url,
                default_headers=self._headers,
                timeout=timeouts(self.settings.timeout, self.settings.connect_timeout),
                max_retries=0,
                http_client=http_client(self.concurrency, self.settings.timeout, self.settings.connect_timeout),
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
        body = self.settings.adapt_body(body, self.base_url)
        try:
            # the SDK's documented low-level call: the same auth, headers, timeouts and typed status errors as
            # ``chat.completions.create``, without re-validating a body we built ourselves or building a pydantic
            # model we would only read three fields of (together a quarter of the client's CPU per request).
            # --timeout bounds the whole attempt, not only the gap between two bytes.
            async with asyncio.timeout(self.settings.timeout):
                http = await client.post(self.chat_path, body=body, cast_to=_httpx().Response)
                content = http.content
        except TimeoutError:
            raise TransientLLMError(f"the request timed out after {self.settings.timeout:g} s", status=TIMEOUT_STATUS) from None
        except openai.APIConnectionError as exc:  # timeouts included
            raise self._connection_error(exc) from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        response = parse_completion(content)
        limits = rate_limit_headers(http.headers)
        return response if limits is None else dataclasses.replace(response, limits=limits)

    def _connection_error(self, exc: Exception) -> TransientLLMError:
        """A timeout or a dropped/refused connection, named after its root cause.

        (The aiohttp transport reports a dropped connection as a connect
        timeout; the root cause tells them apart.)
        """
        root: BaseException = exc
        names = [type(root).__name__]
        while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
            names.append(type(root).__name__)
        timed_out = isinstance(root, (TimeoutError, asyncio.CancelledError)) or "Timeout" in type(root).__name__
        if timed_out and any("Connect" in name and "Timeout" in name for name in names[1:]):
            return TransientLLMError(
                f"could not connect within {self.settings.connect_timeout:g} s (--connect-timeout)",
                status=CONNECTION_STATUS,
            )
        if timed_out:
            return TransientLLMError(f"the request timed out after {self.settings.timeout:g} s", status=TIMEOUT_STATUS)
        return TransientLLMError(f"connection error ({type(root).__name__})", status=CONNECTION_STATUS)

    def _status_error(self, exc: Any) -> Exception:
        status = int(getattr(exc, "status_code", 0) or 0)
        response = getattr(exc, "response", None)
        body = getattr(exc, "body", None)
        if body is None or not isinstance(body, (dict, list, str)):
            try:
                body = response.content if response is not None else getattr(exc, "message", "")
            except Exception:  # a streamed body that cannot be read again
                body = getattr(exc, "message", "")
        headers = getattr(response, "headers", None)
        error = classify(
            status,
            body,
            headers,
            where=f"{self.endpoint}, model '{self.settings.model}'",
            mask=lambda text: mask_server_text(text, self._key),
        )
        if isinstance(error, TransientLLMError):
            error.limits = rate_limit_headers(headers)
        return error

"""A fake OpenAI-compatible chat server for end-to-end tests and benchmarks.

It speaks real HTTP/1.1 (keep-alive, Content-Length) on 127.0.0.1, implemented
on asyncio streams in a background thread, so the real ``openai`` SDK talks to
it exactly as it talks to OpenAI, vLLM or Ollama. It is fast enough (one event
loop, no per-request threads) that it is not the bottleneck of a benchmark.

Use in tests (``tests/`` is on ``sys.path`` under pytest)::

    from llm_server import FakeLLMServer, Fault, fake_llm   # fake_llm: a fixture expecting TEST_API_KEY

    with FakeLLMServer(api_key="sk-test", latency=0.0) as server:
        base_url = server.base_url                 # "http://127.0.0.1:PORT/v1"
        server.reply = lambda body: body["messages"][-1]["content"].upper()
        server.faults = lambda req, attempt: Fault("429", retry_after=0.1) if attempt == 0 else None
        ...                                        # run itkit against base_url
        server.requests                            # every request received, in arrival order
        server.completed                           # requests answered with a normal 200 reply
        server.max_in_flight                       # most requests being answered at once

Routes: ``POST /v1/chat/completions`` and ``POST /chat/completions``;
``GET /v1/models``; anything else is 404.

Knobs (attributes, changeable while running):

- ``reply(body) -> str | dict``: the assistant text for a request body (the
  parsed JSON). Return a dict to control more: ``{"content": str | None,
  "finish_reason": str, "usage": dict | None}``. The default,
  :func:`echo_reply`, is a deterministic transform of the last user message
  (``"echo:" + sha256(text)[:16]``, or ``{"echo": ...}`` as JSON when the
  request asks for ``response_format`` ``json_object``), so a test can prove
  which request an answer belongs to.
- ``latency``: seconds before answering, a float or ``fn(body) -> float``.
- ``faults(request, attempt) -> Fault | str | None``: fault injection.
  ``attempt`` counts earlier requests with the same messages (0 for the
  first), so "fail the first try of every third record" is one lambda. Kinds:

  ========== ==============================================================
  ``429``    HTTP 429 with ``Retry-After: <retry_after>`` (seconds)
  ``500``    HTTP 500 (also ``502``, ``503``)
  ``timeout``sleep ``hang`` seconds (past the client's timeout), then close
  ``malformed`` HTTP 200 with a body that is not JSON
  ``empty``  HTTP 200, content ""
  ``length`` HTTP 200, content cut in half, ``finish_reason: "length"``
  ``not_json`` HTTP 200, content that is not a JSON object
  ``drop``   close the connection without answering
  ``400``, ``401``, ``403``, ``404``, ``422`` HTTP errors with an OpenAI-style body
  ``context_length`` HTTP 400 ``context_length_exceeded``
  ``quota``  HTTP 429 ``insufficient_quota`` (retrying cannot help)
  ``raw``    HTTP ``status`` with ``body`` and ``headers`` as given (any server's error shape)
  ``trickle`` a valid answer sent in ``pieces`` pieces ``gap`` seconds apart
  ========== ==============================================================

  Real servers' shapes, ready to use: :data:`LLAMA_CPP_CONTEXT` (400
  ``exceed_context_size_error``), :data:`LLAMA_CPP_CONTEXT_500`, :data:`VLLM_CONTEXT`,
  :data:`TGI_CONTEXT`, :data:`FASTAPI_DETAIL` (``{"detail": ...}`` of transformers
  serve and llama-cpp-python), :data:`OLLAMA_ERROR` (``{"error": "..."}``),
  :data:`PLAIN_TEXT`.

- ``models``: the model names ``GET /v1/models`` lists (default ``["gpt-4o-mini"]``).
- ``capacity``: serve at most this many chat requests at once; beyond it,
  ``overflow="503"`` answers HTTP 503 at once (llama-server with all slots busy)
  and ``overflow="queue"`` makes them wait their turn (latency rises).
- ``rpm`` / ``tpm``: enforce requests and tokens (usage counts) per minute
  (``period`` seconds) with token buckets, 429 + ``Retry-After``; every answer then carries OpenAI's
  ``x-ratelimit-limit/remaining/reset-requests/tokens`` headers
  (``send_limits=False`` leaves them out).
- ``stop()`` then ``start()`` again serves on the same port (an outage and a restart).

- ``api_key``: when set, a request whose ``Authorization`` is not
  ``Bearer <api_key>`` gets 401 (an OpenAI-style message that echoes part of
  the key, as OpenAI does, so tests can check that itkit never repeats it).
- ``usage``: include a ``usage`` block (word counts) in replies (default True).

Each received request is a :class:`SeenRequest` (``path``, ``headers`` with
lower-case names, ``body`` dict or None, ``raw`` bytes, ``fault`` applied,
``status`` sent). ``reset()`` clears the records.

As a script, for benchmarks in another process::

    python tests/llm_server.py --latency 0.2 [--port 0]

prints ``READY http://127.0.0.1:PORT/v1`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Union

HOST = "127.0.0.1"
DEFAULT_HANG = 30.0
"""How long a ``timeout`` fault sleeps before closing the connection."""


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: float | None = 1.0
    hang: float = DEFAULT_HANG
    status: int = 400
    """``raw``: the HTTP status to answer with."""
    body: bytes | str = b""
    """``raw``: the body, sent as is (JSON of any shape, plain text, HTML, escape codes)."""
    headers: dict | None = None
    """``raw``: extra response headers."""
    pieces: int = 10
    """``trickle``: the answer is sent in this many pieces..."""
    gap: float = 0.5
    """...this many seconds apart."""


FaultSpec = Union[Fault, str, None]


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict | None
    time: float
    fault: str | None = None
    status: int | None = None

    @property
    def messages(self) -> list[dict]:
        return list((self.body or {}).get("messages") or [])

    @property
    def last_user(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


def content_key(body: dict | None) -> str:
    """Identity of a request's messages (used to count attempts)."""
    messages = (body or {}).get("messages")
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def echo_text(text: str) -> str:
    return "echo:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def echo_reply(body: dict) -> str:
    """The default reply: a deterministic digest of the last user message."""
    last = ""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            last = str(message.get("content") or "")
            break
    text = echo_text(last)
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"echo": text})
    return text


def _error_body(message: str, type_: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


ERRORS: dict[str, tuple[int, dict]] = {
    "400": (400, _error_body("Invalid value for 'messages'.", "invalid_request_error", None)),
    "403": (403, _error_body("You are not allowed to sample from this model.", "invalid_request_error", None)),
    "404": (404, _error_body("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found")),
    "422": (422, _error_body("Unprocessable request.", "invalid_request_error", None)),
    "500": (500, _error_body("The server had an error while processing your request.", "server_error", None)),
    "502": (502, _error_body("Bad gateway.", "server_error", None)),
    "503": (503, _error_body("The engine is currently overloaded, please try again later.", "server_error", None)),
    "quota": (
        429,
        _error_body("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "insufficient_quota"),
    ),
    "context_length": (
        400,
        _error_body(
            "This model's maximum context length is 128 tokens. However, your messages resulted in 4000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
    ),
}
LLAMA_CPP_CONTEXT = Fault("raw", status=400, body=json.dumps({"error": {
    "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 3873, "n_ctx": 1024,
    "message": "request (3873 tokens) exceeds the available context size (1024 tokens), try increasing it"}}))
"""llama.cpp's llama-server, a prompt longer than its context."""
LLAMA_CPP_CONTEXT_500 = Fault("raw", status=500, body=json.dumps({"error": {
    "code": 500, "type": "server_error", "message": "Context size has been exceeded."}}))
"""llama.cpp (older builds): the same, as a 500."""
VLLM_CONTEXT = Fault("raw", status=400, body=json.dumps({"object": "error", "type": "BadRequestError", "code": 400,
    "message": "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens "
               "(3900 in the messages, 100 in the completion). Please reduce the length of the messages or completion.",
    "param": None}))
"""vLLM: the prompt and max_tokens exceed max_model_len."""
TGI_CONTEXT = Fault("raw", status=422, body=json.dumps({
    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` "
             "tokens and 200 `max_new_tokens`", "error_type": "validation"}))
"""Hugging Face TGI: input validation error."""
FASTAPI_DETAIL = Fault("raw", status=400, body=json.dumps({"detail": "Model 'other-model' is not loaded; this server "
                                                                     "is pinned to 'tiny-llama'."}))
"""``transformers serve`` / llama-cpp-python: FastAPI's ``{"detail": ...}``."""
OLLAMA_ERROR = Fault("raw", status=400, body=json.dumps({"error": "invalid option provided: presence_penalty"}))
"""Ollama: ``{"error": "..."}`` as a plain string."""
PLAIN_TEXT = Fault("raw", status=500, body="Internal Server Error: the worker died\n")
"""A proxy or a crashed worker: a plain-text body."""

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


class _Drop(Exception):
    """Close the connection without an answer."""


class _Trickle(Exception):
    """Send a valid answer slowly, in pieces."""

    def __init__(self, fault: "Fault"):
        super().__init__("trickle")
        self.fault = fault


def _usage_of(body: dict | None) -> dict:
    messages = (body or {}).get("messages") or []
    prompt = sum(len(str(m.get("content") or "").split()) + 3 for m in messages) + 3
    done = 2
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


class FakeLLMServer:
    """An OpenAI-compatible chat completions server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        reply: Callable[[dict], str | dict] | None = None,
        latency: float | Callable[[dict], float] = 0.0,
        faults: Callable[[SeenRequest, int], FaultSpec] | None = None,
        api_key: str | None = None,
        port: int = 0,
        usage: bool = True,
        record: bool = True,
        models: list[str] | None = None,
        capacity: int | None = None,
        overflow: str = "503",
        rpm: int | None = None,
        tpm: int | None = None,
        send_limits: bool = True,
        period: float = 60.0,
    ):
        self.reply = reply or echo_reply
        self.latency = latency
        self.faults = faults
        self.api_key = api_key
        self.usage = usage
        self.record = record
        self.requests: list[SeenRequest] = []
        self.completed: list[SeenRequest] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[asyncio.Task] = set()
        self._ids = 0
        self.in_flight = 0
        self.max_in_flight = 0
        """Most chat requests being answered at once (the client's effective concurrency)."""
        self.models = ["gpt-4o-mini"] if models is None else list(models)
        self.capacity = capacity
        self.overflow = overflow
        self.rpm = rpm
        self.tpm = tpm
        self.send_limits = send_limits
        self.refused = 0
        """Chat requests answered 503 (over capacity) or 429 (over a rate limit)."""
        self.served = 0
        self._serving = 0
        self._queue: asyncio.Semaphore | None = None
        self.period = period
        self._refilled = 0.0
        self._requests_left = 0.0
        self._tokens_left = 0.0

    # ---- lifecycle -----------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}/v1"

    def start(self) -> "FakeLLMServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._queue = None
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, HOST, self._port, backlog=1024)
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - reported to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            for task in list(self._conns):
                task.cancel()
            loop.run_until_complete(asyncio.gather(*self._conns, return_exceptions=True))
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.completed.clear()
            self._attempts.clear()
            self.max_in_flight = 0

    # ---- views for tests ----------------------------------------------
    def chat_requests(self) -> list[SeenRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # ---- HTTP ------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = (lines[0].split(" ", 2) + ["", ""])[:3]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                try:
                    status, payload, extra = await self._respond(method, path, headers, raw)
                except _Drop:
                    return
                except _Trickle as slow:
                    await self._trickle(writer, slow.fault, raw)
                    continue
                self._write(writer, status, payload, extra)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._conns.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def _trickle(self, writer: asyncio.StreamWriter, fault: Fault, raw: bytes) -> None:
        body = json.loads(raw)
        payload = json.dumps({
            "id": "chatcmpl-trickle", "object": "chat.completion", "created": 1700000000, "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": echo_reply(body)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\nContent-Type: application/json\r\n"
                "Connection: keep-alive\r\n\r\n").encode("latin-1")
        writer.write(head)
        step = max(1, -(-len(payload) // fault.pieces))
        for start in range(0, len(payload), step):
            await asyncio.sleep(fault.gap)
            writer.write(payload[start:start + step])
            await writer.drain()

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: int, payload: bytes, extra: dict[str, str]) -> None:
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        head.append(f"Content-Length: {len(payload)}")
        head.append(f"Content-Type: {extra.pop('content-type', 'application/json')}")
        head.append("Connection: keep-alive")
        for name, value in extra.items():
            head.append(f"{name}: {value}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, dict]:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = SeenRequest(method, path, headers, raw, body if isinstance(body, dict) else None, time.monotonic())
        if self.record:
            with self._lock:
                self.requests.append(seen)

        if method == "GET" and path.rstrip("/") in ("/v1/models", "/models"):
            data = [{"id": name, "object": "model", "owned_by": "itkit-tests"} for name in self.models]
            return 200, json.dumps({"object": "list", "data": data}).encode(), {}
        if method != "POST" or path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            seen.status = 404
            return 404, json.dumps(_error_body(f"no route {method} {path}", "invalid_request_error", None)).encode(), {}

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            shown = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
            seen.status = 401
            message = f"Incorrect API key provided: {shown}. You can find your API key in your account settings."
            return 401, json.dumps(_error_body(message, "invalid_request_error", "invalid_api_key")).encode(), {}
        if seen.body is None:
            seen.status = 400
            return 400, json.dumps(_error_body("The request body is not valid JSON.", "invalid_request_error", None)).encode(), {}

        key = content_key(seen.body)
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        spec = self.faults(seen, attempt) if self.faults is not None else None
        fault = Fault(spec) if isinstance(spec, str) else spec
        seen.fault = fault.kind if fault is not None else None

        if self.rpm or self.tpm:
            limited = self._rate_limited(seen)
            if limited is not None:
                return limited
        if fault is not None and fault.kind in ("raw", "trickle"):
            return await self._special(fault, seen, writer_hint=None)
        if self.capacity is not None:
            if self.overflow == "queue":
                if self._queue is None:
                    self._queue = asyncio.Semaphore(self.capacity)
                async with self._queue:
                    return await self._serve(seen, fault)
            if self._serving >= self.capacity:
                seen.status = 503
                self.refused += 1
                err = _error_body("Loading model / all slots are busy", "unavailable_error", None)
                return 503, json.dumps(err).encode(), {}
            self._serving += 1
            try:
                return await self._serve(seen, fault)
            finally:
                self._serving -= 1
        return await self._serve(seen, fault)

    def _refill(self, now: float) -> None:
        """Token buckets (as OpenAI's limits work): full at the start, refilled continuously per ``period``."""
        elapsed = now - self._refilled
        self._refilled = now
        if self.rpm:
            self._requests_left = min(float(self.rpm), self._requests_left + elapsed * self.rpm / self.period)
        if self.tpm:
            self._tokens_left = min(float(self.tpm), self._tokens_left + elapsed * self.tpm / self.period)

    def _rate_limited(self, seen: SeenRequest) -> tuple[int, bytes, dict] | None:
        now = time.monotonic()
        if self._refilled == 0.0:
            self._refilled = now
            self._requests_left = float(self.rpm or 0)
            self._tokens_left = float(self.tpm or 0)
        self._refill(now)
        tokens = _usage_of(seen.body)["total_tokens"]
        short_requests = self.rpm and self._requests_left < 1
        short_tokens = self.tpm and self._tokens_left < tokens
        if short_requests or short_tokens:
            waits = []
            if short_requests:
                waits.append((1 - self._requests_left) * self.period / self.rpm)
            if short_tokens:
                waits.append((tokens - self._tokens_left) * self.period / self.tpm)
            seen.status = 429
            self.refused += 1
            err = _error_body("Rate limit reached for requests.", "requests", "rate_limit_exceeded")
            return 429, json.dumps(err).encode(), {"Retry-After": f"{max(waits):.3f}", **self._limit_headers(now)}
        if self.rpm:
            self._requests_left -= 1
        if self.tpm:
            self._tokens_left -= tokens
        return None

    def _limit_headers(self, now: float) -> dict[str, str]:
        if not self.send_limits:
            return {}
        headers = {}
        if self.rpm:
            headers["x-ratelimit-limit-requests"] = str(self.rpm)
            headers["x-ratelimit-remaining-requests"] = str(int(self._requests_left))
            headers["x-ratelimit-reset-requests"] = f"{(self.rpm - self._requests_left) * self.period / self.rpm:.3f}s"
        if self.tpm:
            headers["x-ratelimit-limit-tokens"] = str(self.tpm)
            headers["x-ratelimit-remaining-tokens"] = str(int(self._tokens_left))
            headers["x-ratelimit-reset-tokens"] = f"{(self.tpm - self._tokens_left) * self.period / self.tpm:.3f}s"
        return headers

    async def _special(self, fault: Fault, seen: SeenRequest, writer_hint: Any) -> tuple[int, bytes, dict]:
        if fault.kind == "raw":
            seen.status = fault.status
            body = fault.body.encode("utf-8") if isinstance(fault.body, str) else fault.body
            stripped = body.strip()
            extra = dict(fault.headers or {})
            if not stripped.startswith((b"{", b"[")):
                extra.setdefault("content-type", "text/plain; charset=utf-8")
            return fault.status, body, extra
        raise _Trickle(fault)

    async def _serve(self, seen: SeenRequest, fault: Fault | None) -> tuple[int, bytes, dict]:
        latency = self.latency(seen.body) if callable(self.latency) else self.latency
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if latency:
                await asyncio.sleep(latency)
        finally:
            self.in_flight -= 1

        if fault is not None:
            kind = fault.kind
            if kind == "drop":
                raise _Drop()
            if kind == "timeout":
                await asyncio.sleep(fault.hang)
                raise _Drop()
            if kind == "429":
                seen.status = 429
                extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                err = _error_body("Rate limit reached for requests.", "requests", "rate_limit_exceeded")
                return 429, json.dumps(err).encode(), extra
            if kind == "401":
                seen.status = 401
                return 401, json.dumps(_error_body("Invalid authentication.", "invalid_request_error", "invalid_api_key")).encode(), {}
            if kind in ERRORS:
                status, err = ERRORS[kind]
                seen.status = status
                return status, json.dumps(err).encode(), {}
            if kind == "malformed":
                seen.status = 200
                return 200, b'{"id": "chatcmpl-broken", "choices": [{"message": {"content": "unterminat', {}

        produced = self.reply(seen.body)
        spec_out: dict[str, Any] = produced if isinstance(produced, dict) else {"content": produced}
        content = spec_out.get("content")
        finish = spec_out.get("finish_reason", "stop")
        if fault is not None:
            if fault.kind == "empty":
                content = ""
            elif fault.kind == "length":
                content = (content or "")[: max(1, len(content or "") // 2)]
                finish = "length"
            elif fault.kind == "not_json":
                content = "Sure! Here is the answer you asked for (not JSON)."
        with self._lock:
            self._ids += 1
            ident = self._ids
        completion = {
            "id": f"chatcmpl-fake{ident}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": seen.body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
            ],
        }
        usage = spec_out.get("usage", "auto")
        if usage == "auto":
            usage = None
            if self.usage:
                prompt = sum(len(str(m.get("content") or "").split()) + 3 for m in seen.messages) + 3
                done = len((content or "").split())
                usage = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
        if usage is not None:
            completion["usage"] = usage
        seen.status = 200
        self.served += 1
        if fault is None:
            with self._lock:
                self.completed.append(seen)
        extra = self._limit_headers(time.monotonic()) if (self.rpm or self.tpm) else {}
        return 200, json.dumps(completion, ensure_ascii=False).encode("utf-8"), extra


TEST_API_KEY = "sk-itkit-test-7f3a9c2e5b1d4086"
"""The key the ``fake_llm`` fixture's server expects."""

try:
    import pytest
except ImportError:  # pragma: no cover - the benchmark runs without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_llm():
        """A started :class:`FakeLLMServer` expecting ``TEST_API_KEY``; stopped after the test.

        Import it into a test module (``from llm_server import fake_llm``) to use it.
        """
        with FakeLLMServer(api_key=TEST_API_KEY) as server:
            yield server


def main() -> None:  # pragma: no cover - used by benchmarks
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible chat API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--capacity", type=int, default=None, help="serve at most this many requests at once")
    parser.add_argument("--overflow", choices=["503", "queue"], default="503")
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--tpm", type=int, default=None)
    parser.add_argument("--period", type=float, default=60.0, help="seconds of a rate-limit 'minute'")
    parser.add_argument("--no-limit-headers", action="store_true")
    parser.add_argument("--reply-text", default=None, help="answer every request with this text (default: echo)")
    args = parser.parse_args()
    reply = (lambda body: args.reply_text) if args.reply_text is not None else None
    server = FakeLLMServer(latency=args.latency, api_key=args.api_key, port=args.port, record=False, reply=reply,
                           capacity=args.capacity, overflow=args.overflow, rpm=args.rpm, tpm=args.tpm,
                           period=args.period, send_limits=not args.no_limit_headers)
    server.start()
    print(f"READY {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()

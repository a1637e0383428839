"""The provider's batch API: ``/v1/files`` and ``/v1/batches`` through the official ``openai`` SDK (synchronous).

Every call the batch mode makes to the provider goes through :class:`BatchAPI`:
upload an input file, create a batch (``completion_window``, itkit's
``metadata``), retrieve, list, cancel, and download a file's content. Errors
become the engine's typed errors (:func:`itkit.llm.server_errors.classify`):
429s, 5xx, timeouts and dropped connections are retried with backoff up to
``--max-retries``; a bad key, an exhausted quota or balance stop the run
(:class:`FatalLLMError`), the key never quoted.

A batch object is kept as the plain dict the API returns (``id``, ``status``,
``input_file_id``, ``output_file_id``, ``error_file_id``, ``request_counts``
``{total, completed, failed}``, ``errors``, ``metadata``, ``created_at``,
``expires_at``...).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from itkit.llm.attempts import BACKOFF_BASE, BACKOFF_MAX, backoff
from itkit.llm.base import CONNECTION_STATUS, FatalLLMError, TransientLLMError
from itkit.llm.secrets import mask_server_text, split_credentials
from itkit.llm.server_errors import classify
from itkit.llm.settings import LLMSettings, shown_url

CHAT_URL = "/v1/chat/completions"
"""The ``url`` of every batch line and the ``endpoint`` of every batch."""
LIST_PAGE = 100
"""Batches per page when itkit looks its batches up by metadata."""
NO_BATCH_API_HINT = (
    "; a server without a batch API (vllm serve, Ollama) cannot take --batch: write the requests with "
    "--batch-file and run them with vllm run-batch, then read them back with --batch-results"
)
TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})
"""Batch statuses after which nothing changes any more."""


class BatchAPI:
    """The files and batches endpoints of one server (``settings.base_url``, else OpenAI)."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        on_call: Callable[[], None] | None = None,
    ):
        from itkit.llm.openai_client import NO_KEY_PLACEHOLDER, timeouts

        key = settings.key_value()
        url = settings.base_url
        if key is None and url is None:
            raise FatalLLMError("no API key: pass --api-key or set OPENAI_API_KEY (--batch submits to the provider)")
        base, basic = split_credentials(url) if url else (None, None)
        self.settings = settings
        self._key = key or NO_KEY_PLACEHOLDER
        self.where = shown_url(url) if url else settings.endpoint
        self._backoff = (backoff_base, backoff_max)
        self._on_call = on_call
        import openai

        self._client = openai.OpenAI(
            api_key=self._key,
            base_url=base,
            default_headers={"Authorization": basic} if basic is not None else None,
            timeout=timeouts(settings.timeout, settings.connect_timeout),
            max_retries=0,
        )

    # ---- the calls ------------------------------------------------------------
    def upload(self, name: str, content: bytes) -> str:
        """Upload a batch input file; its file id."""
        return self._call("upload", lambda: self._client.files.create(file=(name, content), purpose="batch")).id

    def create(self, file_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        return self._call(
            "create",
            lambda: self._client.batches.create(
                input_file_id=file_id,
                endpoint=CHAT_URL,
                completion_window=self.settings.batch_window,
                metadata=metadata,
            ),
        ).model_dump()

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._call("retrieve", lambda: self._client.batches.retrieve(batch_id)).model_dump()

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._call("cancel", lambda: self._client.batches.cancel(batch_id)).model_dump()

    def find(self, match: Callable[[dict[str, Any]], bool], since: float = 0.0) -> dict[str, Any] | None:
        """The newest batch for which ``match(batch)`` is true, looking back to ``since`` (epoch seconds)."""
        after: str | None = None
        while True:
            page = self._call(
                "list",
                lambda: self._client.batches.list(limit=LIST_PAGE, **({"after": after} if after else {})),
            )
            batches = [b.model_dump() for b in page.data]
            for batch in batches:
                if match(batch):
                    return batch
            if not batches or not getattr(page, "has_more", False):
                return None
            if (batches[-1].get("created_at") or 0) < since:
                return None
            after = batches[-1]["id"]

    def content(self, file_id: str) -> bytes:
        """A file's content (a batch's output or error file)."""
        return self._call("download", lambda: self._client.files.content(file_id)).content

    # ---- errors and retries -----------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import openai

        attempt = 0
        while True:
            if self._on_call is not None:
                self._on_call()
            try:
                return fn()
            except openai.APIStatusError as exc:
                error = self._status_error(exc)
                error.status = int(getattr(exc, "status_code", 0) or 0)  # type: ignore[attr-defined]
            except openai.APIConnectionError as exc:
                error = TransientLLMError(f"connection error ({type(exc).__name__})", status=CONNECTION_STATUS)
            if not isinstance(error, TransientLLMError):
                hint = NO_BATCH_API_HINT if status_of(error) == 404 and what == "upload" else ""
                raise FatalLLMError(f"batch {what} at {self.where}: {error}{hint}") from None
            attempt += 1
            if attempt > self.settings.max_retries:
                raise FatalLLMError(
                    f"batch {what} at {self.where}: {error} on every attempt ({attempt}); "
                    "nothing is lost: re-run the same command later"
                ) from None
            time.sleep(backoff(attempt, error, *self._backoff, self.settings.max_retry_after))

    def _status_error(self, exc: Any) -> Exception:
        status = int(getattr(exc, "status_code", 0) or 0)
        response = getattr(exc, "response", None)
        body = getattr(exc, "body", None)
        if body is None or not isinstance(body, (dict, list, str)):
            body = getattr(exc, "message", "")
        return classify(
            status,
            body,
            getattr(response, "headers", None),
            where=self.where,
            mask=lambda text: mask_server_text(text, self._key),
        )

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


def status_of(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)


def line_error(line: dict[str, Any]) -> str | None:
    """Why a batch output or error line holds no usable answer (None: it holds one)."""
    error = line.get("error")
    response = line.get("response") if isinstance(line.get("response"), dict) else None
    if error:
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or error)
        return str(error)
    if response is None:
        return "the line has no response"
    status = response.get("status_code")
    if status != 200:
        body = response.get("body")
        said = body.get("error") if isinstance(body, dict) else None
        message = said.get("message") if isinstance(said, dict) else said
        return f"HTTP {status}" + (f": {message}" if message else "")
    return None


def batch_failure(batch: dict[str, Any]) -> str:
    """What a failed batch's ``errors`` say (validation errors), in one line."""
    errors = batch.get("errors") or {}
    data = errors.get("data") if isinstance(errors, dict) else None
    messages = [str(e.get("message") or e.get("code")) for e in data or [] if isinstance(e, dict)]
    return "; ".join(messages[:3]) or f"the batch {batch.get('status')}"


__all__ = ["BatchAPI", "CHAT_URL", "TERMINAL", "batch_failure", "line_error"]

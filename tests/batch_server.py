"""A fake OpenAI batch API for tests: ``/v1/files`` and ``/v1/batches`` on top of :class:`FakeLLMServer`.

The chat route keeps working (``--batch-retry online``, the online runs a test
compares with); a batch's lines are answered by the same ``reply`` and
``faults`` as online requests, so an answer from a batch is byte for byte the
online one.

Routes: ``POST /v1/files`` (multipart upload), ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches`` (``limit``,
``after``; newest first), ``POST /v1/batches/{id}/cancel``.

Scripted outcomes (attributes, changeable while running):

- ``script(number, lines) -> Script``: what becomes of the ``number``-th batch
  (1-based) with these input lines: ``Script("completed")`` (the default),
  ``Script("expired", answer=0.5)`` (half the lines answered, the rest not),
  ``Script("failed", message=...)`` (validation failed, no output),
  ``Script("stuck")`` (stays ``in_progress`` for ever), and ``polls``: how many
  retrieves see it ``in_progress`` before it ends (0: the first retrieve sees
  it finished).
- ``line_error(body, attempt) -> str | None``: a line answered in the error
  file with this message (HTTP 500) instead of the output file.
- ``create_faults``: a list of fault kinds for the next batch creates
  (``"429"``, ``"quota"``: insufficient balance), used up one per create.
- ``kill_pid`` and ``kill_at``: ``kill -9`` the client at a remote-call
  boundary: ``"upload:after"`` (the file is stored, its id never reaches the
  client), ``"create:before"``, ``"create:after"`` (the batch exists, its id
  never reaches the client), ``"download"`` (the content is never sent).

``files``, ``batches`` (by id) and ``calls`` (``(method, path)`` of every
files/batches call) are there to assert on.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from llm_server import ERRORS, Fault, FakeLLMServer, SeenRequest, _error_body, content_key

DAY = 86400


@dataclass(frozen=True)
class Script:
    outcome: str = "completed"
    polls: int = 0
    answer: float = 1.0
    """expired / cancelled: the share of lines answered before the end."""
    message: str = "Invalid line: the model is not supported for batches"


class FakeBatchServer(FakeLLMServer):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.script: Callable[[int, list[dict]], Script] = lambda number, lines: Script()
        self.line_error: Callable[[dict, int], str | None] | None = None
        self.create_faults: list[str] = []
        self.kill_pid: int | None = None
        self.kill_at: str | None = None
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self._batch_state: dict[str, dict] = {}
        self._n = 0

    # ---- helpers ----------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:06d}"

    def _kill(self, point: str) -> None:
        if self.kill_at == point and self.kill_pid is not None:
            self.kill_at = None
            os.kill(self.kill_pid, signal.SIGKILL)
            time.sleep(0.2)

    def created(self) -> list[dict]:
        """Every batch created, oldest first."""
        return sorted(self.batches.values(), key=lambda b: b["id"])

    def input_lines(self, batch: dict) -> list[dict]:
        return [json.loads(raw) for raw in self.files[batch["input_file_id"]].splitlines() if raw.strip()]

    # ---- routes -----------------------------------------------------------------
    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, dict]:
        route = urlsplit(path)
        parts = [p for p in route.path.split("/") if p]
        if parts[:2] not in (["v1", "files"], ["v1", "batches"]):
            return await super()._respond(method, path, headers, raw)
        self.calls.append((method, route.path))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, json.dumps(_error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")).encode(), {}
        if parts[1] == "files":
            if method == "POST" and len(parts) == 2:
                return self._upload(headers, raw)
            if method == "GET" and len(parts) == 4 and parts[3] == "content" and parts[2] in self.files:
                self._kill("download")
                return 200, self.files[parts[2]], {"content-type": "application/octet-stream"}
        else:
            if method == "POST" and len(parts) == 2:
                return self._create(json.loads(raw))
            if method == "GET" and len(parts) == 2:
                return self._list(parse_qs(route.query))
            if len(parts) >= 3 and parts[2] in self.batches:
                batch_id = parts[2]
                if method == "GET" and len(parts) == 3:
                    await self._advance(batch_id)
                    return 200, json.dumps(self.batches[batch_id]).encode(), {}
                if method == "POST" and parts[3:] == ["cancel"]:
                    batch = self.batches[batch_id]
                    if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                        batch["status"] = "cancelling"
                        batch["cancelling_at"] = int(time.time())
                    return 200, json.dumps(batch).encode(), {}
        return 404, json.dumps(_error_body(f"no route {method} {path}", "invalid_request_error", None)).encode(), {}

    def _upload(self, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, dict]:
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            f"Content-Type: {headers.get('content-type', '')}\r\n\r\n".encode() + raw
        )
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        part = fields["file"]
        content = part.get_payload(decode=True)
        file_id = self._id("file")
        self.files[file_id] = content
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": part.get_filename() or "upload.jsonl", "purpose": "batch", "status": "processed"}
        self._kill("upload:after")
        return 200, json.dumps(obj).encode(), {}

    def _create(self, body: dict) -> tuple[int, bytes, dict]:
        self._kill("create:before")
        if self.create_faults:
            kind = self.create_faults.pop(0)
            if kind == "429":
                err = _error_body("Rate limit reached for requests.", "requests", "rate_limit_exceeded")
                return 429, json.dumps(err).encode(), {"Retry-After": "0"}
            status, err = ERRORS[kind]
            return status, json.dumps(err).encode(), {}
        if body.get("input_file_id") not in self.files:
            return 404, json.dumps(_error_body("No such File object", "invalid_request_error", None)).encode(), {}
        now = int(time.time())
        lines = [json.loads(r) for r in self.files[body["input_file_id"]].splitlines() if r.strip()]
        batch_id = self._id("batch")
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + DAY, "finalizing_at": None, "completed_at": None,
            "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
        }
        self._batch_state[batch_id] = {"polls": 0, "script": self.script(len(self.batches), lines)}
        self._kill("create:after")
        return 200, json.dumps(self.batches[batch_id]).encode(), {}

    def _list(self, query: dict) -> tuple[int, bytes, dict]:
        limit = int((query.get("limit") or ["20"])[0])
        newest = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
        after = (query.get("after") or [None])[0]
        if after is not None:
            ids = [b["id"] for b in newest]
            newest = newest[ids.index(after) + 1:] if after in ids else []
        page = newest[:limit]
        return 200, json.dumps({
            "object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(newest) > limit,
        }).encode(), {}

    # ---- processing ----------------------------------------------------------------
    async def _advance(self, batch_id: str) -> None:
        batch, state = self.batches[batch_id], self._batch_state[batch_id]
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        script: Script = state["script"]
        if script.outcome == "failed":
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": [{"code": "invalid_request", "message": script.message, "line": 1}]})
            return
        if batch["status"] == "cancelling":
            await self._finish(batch, "cancelled", script.answer)
            return
        if script.outcome == "stuck" or state["polls"] < script.polls:
            state["polls"] += 1
            batch["status"] = "in_progress"
            batch["in_progress_at"] = batch["in_progress_at"] or int(time.time())
            return
        await self._finish(batch, script.outcome, script.answer if script.outcome != "completed" else 1.0)

    async def _finish(self, batch: dict, status: str, share: float) -> None:
        lines = self.input_lines(batch)
        answered = lines[: int(len(lines) * share)]
        out, errors = [], []
        for n, line in enumerate(answered):
            body = line["body"]
            key = content_key(body)
            with self._lock:
                attempt = self._attempts.get(key, 0)
                self._attempts[key] = attempt + 1
            said = self.line_error(body, attempt) if self.line_error is not None else None
            request_id = f"req_{batch['id']}_{n}"
            if said is not None:
                err = _error_body(said, "server_error", None)
                errors.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                               "response": {"status_code": 500, "request_id": request_id, "body": err}, "error": None})
                continue
            seen = SeenRequest("POST", "/v1/chat/completions", {}, json.dumps(body).encode(), body, time.monotonic())
            spec = self.faults(seen, attempt) if self.faults is not None else None
            fault = Fault(spec) if isinstance(spec, str) else spec
            _status, payload, _extra = await self._serve(seen, fault)
            out.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "request_id": request_id, "body": json.loads(payload)},
                        "error": None})
        now = int(time.time())
        if out:
            batch["output_file_id"] = self._id("file")
            self.files[batch["output_file_id"]] = "".join(json.dumps(o) + "\n" for o in out).encode()
        if errors:
            batch["error_file_id"] = self._id("file")
            self.files[batch["error_file_id"]] = "".join(json.dumps(e) + "\n" for e in errors).encode()
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}
        batch.update(status=status, finalizing_at=now, **{f"{status}_at": now})

"""Durable batch mode (``--batch``): the engine's requests go through the provider's batch API, in rounds.

A *round* is one run of the method over the cache and the ledger
(:mod:`itkit.llm.batch_ledger`). :meth:`Engine.complete` asks
:meth:`BatchMode.answer` for every request the cache does not hold:

- an answer downloaded from a batch is checked like a fresh response; an
  accepted one goes into the cache and is returned, a rejected one (cut off,
  unparseable) is retried with the request a retry would send online;
- an error line is retried as it is; after ``--max-retries`` either fails its
  record with the provider's reason (to the failures file);
- ``--batch-retry online`` sends those retries online instead;
- any other request is *deferred* (:class:`BatchDeferred`): queued for a batch,
  or already waiting in one.

When a round deferred anything, nothing is written: :meth:`BatchMode.submit`
puts the new lines into batches (``custom_id`` = the cache key; at most
``--batch-max-requests`` lines and ``--batch-max-bytes`` per file), uploads and
creates them (``metadata.itkit_job`` = the ledger's job id), and raises
:class:`BatchPending` (exit 4: re-run the same command to collect). The next
round (a re-run, or ``--wait``) first polls the batches, downloads finished
output and error files and maps each line back by ``custom_id``. A method with
several stages (Evol-Instruct's rewrite, equality and response; Self-Instruct's
rounds) needs one round per stage: each re-run takes the finished stages from
the cache and submits the next. The output is the online run's, byte for byte.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

import orjson

from itkit.errors import EXIT_BATCH_PENDING, ItkitError, UsageError
from itkit.llm import batch_ledger as L
from itkit.llm.attempts import varied
from itkit.llm.base import ChatRequest, ChatResponse, FatalLLMError, ResponseRejected
from itkit.llm.batch_api import TERMINAL, BatchAPI, batch_failure, line_error
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.responses import CUT_OFF_REASON

ERROR_PREFIX = "batch error line: "
"""Starts the failure reason of a record whose last batch line was an error."""


class BatchDeferred(Exception):
    """Raised by :meth:`Engine.complete` in batch mode: the request waits for a batch (the round cannot finish)."""


class BatchPending(ItkitError):
    """The run submitted batches (or waits for some) and stops before writing anything: exit 4."""

    exit_code = EXIT_BATCH_PENDING
    kind = "batch"


class OnlineRetry:
    """``--batch-retry online``: the engine sends this request online (the failed line's retry)."""

    def __init__(self, request: ChatRequest):
        self.request = request


class BatchMode:
    """One engine's batch mode over the cache's ledger (see the module docstring)."""

    def __init__(self, settings: Any, cache: Any, stats: Any, *, api_factory: Callable[[], BatchAPI] | None = None):
        if cache is None:
            raise UsageError("--batch keeps its ledger in the response cache: drop --no-cache")
        self.settings = settings
        self.ledger = L.Ledger(cache._db, cache.path)
        self.stats = stats
        self.scope = settings.cache_scope
        self._api_factory = api_factory or (lambda: BatchAPI(settings, on_call=self._count_call))
        self._api: BatchAPI | None = None
        self._billed: dict[str, tuple[int, int, int, int]] = {}
        self.begin_round()

    # ---- a round -----------------------------------------------------------------
    def begin_round(self) -> None:
        self.new: dict[str, tuple[str, str, int, int, bytes]] = {}
        """custom_id -> a line to queue (not yet in the ledger)."""
        self.new_keys: set[str] = set()
        self.queued: dict[str, str] = {}
        """custom_id -> stage: lines of this round waiting for a new job."""
        self.waiting: dict[str, str] = {}
        """custom_id -> job: lines of this round in a job at the provider (or not yet created there)."""
        self.stages: Counter = Counter()
        self.plan = DryRunPlan()

    @property
    def deferred(self) -> bool:
        return bool(self.queued or self.waiting)

    @property
    def api(self) -> BatchAPI:
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def _count_call(self) -> None:
        self.stats.batch_remote_calls += 1

    def answer(self, engine: Any, request: ChatRequest, key: str, json_mode: bool, parse: Any, allow_length: bool,
               expected_tokens: int | None) -> Any:
        """The request's value from a batch answer, an :class:`OnlineRetry`, or :class:`BatchDeferred`."""
        stage = request.template.split("@", 1)[0] or "requests"
        if key in self.new_keys:  # the same request twice in this round: one line
            raise BatchDeferred()
        line = self.ledger.latest(key)
        if line is None or line.state == L.TAKEN:
            attempt = 0 if line is None else line.attempt + 1
            return self._defer_new(engine, request, key, attempt, line.rejected if line else 0, stage, expected_tokens)
        if line.state == L.QUEUED:
            if line.job is None:
                self.queued[line.custom_id] = stage
            else:
                self.waiting[line.custom_id] = line.job
            self.stages[stage] += 1
            raise BatchDeferred()
        self.bill(key)
        if line.state == L.ANSWERED:
            response = _response(line)
            try:
                value = engine._accept(response, json_mode, parse, allow_length)
            except ResponseRejected as exc:
                rejected = line.rejected + 1
                if line.attempt + 1 > self.settings.max_retries:
                    raise engine._give_up(exc.reason, exc.raw, line.attempt + 1) from None
                retry = varied(request, rejected, cut_off=exc.reason == CUT_OFF_REASON)
                if self.settings.batch_retry == "online":
                    return OnlineRetry(retry)
                engine.stats.retries += 1
                return self._defer_new(engine, retry, key, line.attempt + 1, rejected, stage, expected_tokens)
            engine.cache.put(key, response)
            self.ledger.take(line.custom_id)
            return value
        # an error line (or a line of a failed batch)
        if line.attempt + 1 > self.settings.max_retries:
            raise engine._give_up(f"{ERROR_PREFIX}{line.error}", "", line.attempt + 1) from None
        if self.settings.batch_retry == "online":
            return OnlineRetry(request)
        engine.stats.retries += 1
        # the same line again (the request of a retry after a rejected answer stays that request)
        return self._defer_new(engine, request, key, line.attempt + 1, line.rejected, stage, expected_tokens,
                               body=self.ledger.body(line.custom_id) or None)

    def _defer_new(self, engine: Any, request: ChatRequest, key: str, attempt: int, rejected: int, stage: str,
                   expected_tokens: int | None, body: bytes | None = None) -> Any:
        from itkit.llm.openai_client import chat_body

        custom = L.custom_id(key, attempt)
        if body is None:
            body = orjson.dumps(chat_body(request, self.settings))
        self.new[custom] = (custom, key, attempt, rejected, body)
        self.new_keys.add(key)
        self.queued[custom] = stage
        self.stages[stage] += 1
        if self.stats.batch_price is not None or self.settings.max_cost is not None:  # for --max-cost, itkit batches
            self.plan.add(request, engine._prompt_tokens(request), expected_tokens)
        raise BatchDeferred()

    def bill(self, key: str) -> bool:
        """Count what the batches billed for ``key`` (once per line, however many rounds ask); True when they did."""
        now = self.ledger.billed(key)
        before = self._billed.get(key, (0, 0, 0, 0))
        if now == before:
            return now[0] > 0
        self._billed[key] = now
        self.stats.batch_lines += now[0] - before[0]
        self.stats.batch_errors += now[1] - before[1]
        self.stats.batch_prompt_tokens += now[2] - before[2]
        self.stats.batch_completion_tokens += now[3] - before[3]
        return True

    # ---- before a round: look at the batches ---------------------------------------
    def refresh(self) -> None:
        """Poll this endpoint's unfinished batches; download and store the finished ones (offline: read results)."""
        if self.settings.offline_batch:
            from itkit.llm.batch_files import read_results

            for path in self.settings.batch_results:
                read_results(path, self.ledger)
            return
        for job in self.ledger.active_jobs(self.scope):
            self._poll(job)

    def _poll(self, job: dict[str, Any]) -> dict[str, Any]:
        batch = self.api.retrieve(job["batch_id"])
        counts = batch.get("request_counts") or {}
        self.ledger.update_job(
            job["id"], state=batch["status"], status=batch["status"], completed=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0), expires=batch.get("expires_at"),
        )
        if batch["status"] in TERMINAL:
            self._collect(job, batch)
        return batch

    def _collect(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        """Store every line of a finished batch; lines it did not answer wait for the next batch."""
        results: dict[str, tuple[str, str, bytes | None, str | None, int, int]] = {}
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if file_id:
                results.update(parse_output(self.api.content(file_id)))
        if batch["status"] == "failed":
            reason = batch_failure(batch)
            for custom, _body in self.ledger.lines_of(job["id"]):
                results.setdefault(custom, (custom, L.ERROR, None, reason, 0, 0))
        mine = _ids(self.ledger.lines_of(job["id"]))
        self.ledger.store([r for r in results.values() if r[0] in mine])
        # expired or cancelled: what it finished is kept; the rest is retried (an attempt: a provider that never
        # gets to a line fails it after --max-retries instead of looping)
        why = f"the batch {batch['status']} before answering this request"
        self.ledger.store([(c, L.ERROR, None, why, 0, 0) for c in self.ledger.unanswered(job["id"])])
        prompt = sum(r[4] for r in results.values() if r[0] in mine)
        completion = sum(r[5] for r in results.values() if r[0] in mine)
        message = batch_failure(batch) if batch["status"] == "failed" else None
        self.ledger.update_job(job["id"], state=L.COLLECTED, prompt_tokens=prompt, completion_tokens=completion,
                               message=message)

    # ---- after a round: submit ------------------------------------------------------
    def submit(self, description: str) -> BatchPending:
        """Queue and submit the round's new lines, resume unfinished submissions; the exit-4 error to raise."""
        if self.new:
            self.ledger.queue(list(self.new.values()))
        if self.settings.max_cost is not None and self.queued:
            self._check_cost()
        if self.settings.offline_batch:
            from itkit.llm.batch_files import write_requests

            return write_requests(self, description)
        jobs = self._make_jobs(description, L.PLANNED)
        resume = {job for job in self.waiting.values()}
        for job_id in [*jobs, *sorted(resume)]:
            job = self.ledger.job(job_id)
            if job is not None and job["state"] in L.OPEN_STATES:
                self._advance(job)
        return BatchPending(self._pending_message(description, len(jobs)))

    def _make_jobs(self, description: str, state: str) -> list[str]:
        """The round's queued lines in jobs of at most --batch-max-requests lines and --batch-max-bytes."""
        jobs: list[str] = []
        chunk: list[str] = []
        size = 0
        stage = ", ".join(s for s, _ in self.stages.most_common(3))
        price = self.stats.batch_price
        for custom in self.queued:
            line = len(self._line(custom, self.ledger.body(custom)))
            if chunk and (len(chunk) >= self.settings.batch_max_requests or size + line > self.settings.batch_max_bytes):
                jobs.append(self.ledger.new_job(self.scope, description, self.settings.model, stage, chunk, size, None, state))
                chunk, size = [], 0
            chunk.append(custom)
            size += line
        if chunk:
            jobs.append(self.ledger.new_job(self.scope, description, self.settings.model, stage, chunk, size, None, state))
        if price is not None and self.plan.requests:
            share = self.plan.cost(price) / max(len(self.queued), 1)
            for job_id in jobs:
                self.ledger.update_job(job_id, estimated_cost=round(share * self.ledger.job(job_id)["requests"], 6))
        self.stats.batches += len(jobs)
        return jobs

    @staticmethod
    def _line(custom: str, body: bytes) -> bytes:
        from itkit.llm.batch_api import CHAT_URL

        return b'{"custom_id":"' + custom.encode() + b'","method":"POST","url":"' + CHAT_URL.encode() + b'","body":' + body + b"}\n"

    def input_file(self, job_id: str) -> bytes:
        return b"".join(self._line(custom, body) for custom, body in self.ledger.lines_of(job_id))

    def _advance(self, job: dict[str, Any]) -> None:
        """Upload and create a job's batch, each step saved before and after (kill -9 safe)."""
        state = job["state"]
        if state == L.PLANNED:
            file_id = self.api.upload(f"itkit-{job['id']}.jsonl", self.input_file(job["id"]))
            self.ledger.update_job(job["id"], file_id=file_id, state=L.UPLOADED)
            job = {**job, "file_id": file_id}
        elif state == L.CREATING:  # created before a kill, its id never saved? find it by its metadata
            found = self.api.find(lambda b: (b.get("metadata") or {}).get("itkit_job") == job["id"], job["created"] - 60)
            if found is not None:
                self._created(job, found)
                return
        self.ledger.update_job(job["id"], state=L.CREATING)
        metadata = {"itkit_job": job["id"], "itkit_command": job["command"][:500], "itkit_stage": job["stage"][:500]}
        self._created(job, self.api.create(job["file_id"], metadata))

    def _created(self, job: dict[str, Any], batch: dict[str, Any]) -> None:
        self.ledger.update_job(job["id"], batch_id=batch["id"], state=batch.get("status") or L.SUBMITTED,
                               status=batch.get("status"),
                               expires=batch.get("expires_at"))

    def _check_cost(self) -> None:
        price = self.stats.batch_price
        if price is None:
            raise FatalLLMError(
                f"--max-cost: no price for model '{self.settings.model}' (give --price-in and --price-out); "
                "nothing was submitted"
            )
        spent = self.stats.cost or 0.0
        planned = self.plan.cost(price) or 0.0
        if spent + planned > self.settings.max_cost:
            raise FatalLLMError(
                f"--max-cost ${self.settings.max_cost:g}: submitting {self.plan.requests:,} more requests would cost "
                f"~${planned:,.4f} at the batch price (estimated; ${spent:,.4f} spent so far); nothing was submitted"
            )

    def _pending_message(self, description: str, made: int) -> str:
        jobs = {job for job in self.waiting.values()}
        waiting = len(self.queued) + len(self.waiting)
        stages = ", ".join(f"{s} {n:,}" for s, n in self.stages.most_common())
        states = Counter((self.ledger.job(j) or {}).get("state", "?") for j in jobs)
        now = f"submitted {made} batch{'es' if made != 1 else ''} ({len(self.queued):,} requests); " if made else ""
        also = f"{len(self.waiting):,} requests in batches already submitted ({_states(states)}); " if jobs else ""
        return (
            f"{description}: {now}{also}waiting on {waiting:,} requests (stage {stages}); not finished yet: "
            "re-run the same command to collect (or add --wait); `itkit batches` lists them"
        )

    # ---- --wait -------------------------------------------------------------------------
    def wait(self, say: Callable[[str], None]) -> None:
        """Poll this endpoint's unfinished batches every --batch-poll seconds until none is left."""
        started = time.monotonic()
        last = ""
        while True:
            active = self.ledger.active_jobs(self.scope)
            if not active:
                return
            lines = []
            for job in active:
                batch = self._poll(job)
                counts = batch.get("request_counts") or {}
                left = (batch.get("expires_at") or 0) - time.time()
                lines.append(
                    f"batch {batch['id']}: {batch['status']}, {counts.get('completed', 0):,}/{counts.get('total', 0):,} "
                    f"done, {counts.get('failed', 0):,} failed"
                    + (f", deadline in {left / 3600:.1f} h" if left > 0 and batch["status"] not in TERMINAL else "")
                )
            text = "; ".join(lines)
            if text != last:
                say(f"{text} ({time.monotonic() - started:.0f} s waiting)")
                last = text
            if not self.ledger.active_jobs(self.scope):
                return
            time.sleep(self.settings.batch_poll)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def parse_output(content: bytes) -> dict[str, tuple[str, str, bytes | None, str | None, int, int]]:
    """An output or error file's lines: custom_id -> (custom_id, state, response body, error, tokens billed)."""
    results = {}
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a torn line: its request stays unanswered and is sent again
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            continue
        custom = line["custom_id"]
        response = line.get("response") if isinstance(line.get("response"), dict) else {}
        body = response.get("body") if isinstance(response.get("body"), dict) else {}
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        tokens = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
        error = line_error(line)
        if error is None:
            results[custom] = (custom, L.ANSWERED, orjson.dumps(body), None, *tokens)
        else:
            results[custom] = (custom, L.ERROR, None, error, *tokens)
    return results


def _response(line: L.Line) -> ChatResponse:
    from itkit.llm.openai_client import parse_completion

    try:
        return parse_completion(line.response or b"")
    except Exception:  # an answer that is no completion: an empty one, rejected and retried like one
        return ChatResponse(text="", finish_reason=None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _ids(rows: list[tuple[str, bytes]]) -> set[str]:
    return {r[0] for r in rows}


def _states(states: Counter) -> str:
    return ", ".join(f"{n} {state}" for state, n in states.most_common())


__all__ = ["BatchDeferred", "BatchMode", "BatchPending", "OnlineRetry", "parse_output"]

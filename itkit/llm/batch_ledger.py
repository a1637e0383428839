"""The durable record of batch mode, in the response cache's SQLite database (two more tables).

``batch_jobs``: one row per batch itkit submits (or writes to a file): its
local id (in the batch's ``metadata`` as ``itkit_job``, so a batch created by a
process killed before it saved the id is found again), the endpoint, the input
file id, the batch id, the provider's status and counts, and the tokens its
output billed. ``batch_lines``: one row per request line (``custom_id``: the
cache key, ``-N`` after it for the N-th retry), its job, its state and, once
downloaded, the provider's answer or error.

Every change is committed at once, before and after each remote call, so a
process killed at any moment leaves a ledger that the next run continues
(no batch created twice, none forgotten).

Line states: ``queued`` (waiting for, or in, a job not yet finished),
``answered`` (output line stored), ``error`` (error line stored, or its batch
failed, expired or was cancelled without answering it: retried as a new line),
``taken`` (accepted and in the cache; kept for the cost it billed).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from itkit.llm.cache import CacheError

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batch_jobs (
        id TEXT PRIMARY KEY, scope TEXT NOT NULL, command TEXT NOT NULL, model TEXT NOT NULL, stage TEXT NOT NULL,
        state TEXT NOT NULL, status TEXT, file_id TEXT, batch_id TEXT, output_file_id TEXT, error_file_id TEXT,
        requests INTEGER NOT NULL, bytes INTEGER NOT NULL, completed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0, estimated_cost REAL, message TEXT,
        created REAL NOT NULL, updated REAL NOT NULL, expires REAL)""",
    """CREATE TABLE IF NOT EXISTS batch_lines (
        custom_id TEXT PRIMARY KEY, key TEXT NOT NULL, attempt INTEGER NOT NULL, rejected INTEGER NOT NULL,
        job TEXT, state TEXT NOT NULL, body BLOB NOT NULL, response BLOB, error TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS batch_lines_key ON batch_lines (key, attempt)",
    "CREATE INDEX IF NOT EXISTS batch_lines_job ON batch_lines (job)",
)
QUEUED, ANSWERED, ERROR, TAKEN = "queued", "answered", "error", "taken"
# job states before the provider's own statuses
PLANNED, UPLOADED, CREATING, SUBMITTED, COLLECTED, WRITTEN = (
    "planned", "uploaded", "creating", "submitted", "collected", "written",
)
OPEN_STATES = (PLANNED, UPLOADED, CREATING)
"""A job not yet (known to be) created at the provider."""
DONE_STATES = (COLLECTED, WRITTEN)


@dataclass
class Line:
    custom_id: str
    key: str
    attempt: int
    rejected: int
    job: str | None
    state: str
    response: bytes | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int


def custom_id(key: str, attempt: int) -> str:
    """The ``custom_id`` of a request line: the cache key, with ``-N`` for the N-th retry."""
    return key if attempt == 0 else f"{key}-{attempt}"


def key_of(custom: str) -> tuple[str, int]:
    """The cache key and attempt a ``custom_id`` stands for."""
    key, _, attempt = custom.partition("-")
    return key, int(attempt) if attempt.isdigit() else 0


class Ledger:
    """The batch tables over the cache's open connection."""

    def __init__(self, db: sqlite3.Connection, path: Any):
        self._db = db
        self.path = path
        try:
            for statement in SCHEMA:
                db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {path}: cannot keep the batch ledger: {exc}") from None

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(args))
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: batch ledger: {exc}") from None

    def _many(self, sql: str, rows: Iterable[tuple]) -> None:
        """Several changes in one transaction (all or none survive a kill)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: batch ledger: {exc}") from None

    # ---- lines --------------------------------------------------------------------
    def latest(self, key: str) -> Line | None:
        row = self._run(
            "SELECT custom_id, key, attempt, rejected, job, state, response, error, prompt_tokens, completion_tokens "
            "FROM batch_lines WHERE key = ? ORDER BY attempt DESC LIMIT 1",
            (key,),
        ).fetchone()
        return Line(*row) if row else None

    def billed(self, key: str) -> tuple[int, int, int, int]:
        """Lines, error lines, prompt and completion tokens the batches billed for ``key`` (every attempt)."""
        row = self._run(
            "SELECT COUNT(*), SUM(state = 'error'), SUM(prompt_tokens), SUM(completion_tokens) FROM batch_lines "
            "WHERE key = ? AND state IN ('answered', 'taken', 'error')",
            (key,),
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0)

    def body(self, custom: str) -> bytes:
        return self._run("SELECT body FROM batch_lines WHERE custom_id = ?", (custom,)).fetchone()[0]

    def queue(self, lines: list[tuple[str, str, int, int, bytes]]) -> None:
        """New request lines (custom_id, key, attempt, rejected, body), waiting for a job."""
        self._many(
            "INSERT OR REPLACE INTO batch_lines (custom_id, key, attempt, rejected, job, state, body) "
            "VALUES (?, ?, ?, ?, NULL, 'queued', ?)",
            lines,
        )

    def take(self, custom: str) -> None:
        """An accepted answer is in the cache: keep only what it billed."""
        self._run("UPDATE batch_lines SET state = 'taken', response = NULL, body = x'' WHERE custom_id = ?", (custom,))

    def store(self, results: list[tuple[str, str, bytes | None, str | None, int, int]]) -> None:
        """Downloaded lines (state, response, error, prompt and completion tokens, custom_id)."""
        self._many(
            "UPDATE batch_lines SET state = ?, response = ?, error = ?, prompt_tokens = ?, completion_tokens = ? "
            "WHERE custom_id = ? AND state != 'taken'",
            [(state, response, error, p, c, custom) for custom, state, response, error, p, c in results],
        )

    def lines_of(self, job: str) -> list[tuple[str, bytes]]:
        return self._run(
            "SELECT custom_id, body FROM batch_lines WHERE job = ? ORDER BY rowid", (job,)
        ).fetchall()

    def unanswered(self, job: str) -> list[str]:
        return [r[0] for r in self._run("SELECT custom_id FROM batch_lines WHERE job = ? AND state = 'queued'", (job,))]

    def known(self, custom: str) -> bool:
        return self._run("SELECT 1 FROM batch_lines WHERE custom_id = ?", (custom,)).fetchone() is not None

    # ---- jobs -----------------------------------------------------------------------
    def new_job(
        self, scope: str, command: str, model: str, stage: str, customs: list[str], size: int, cost: float | None,
        state: str = PLANNED,
    ) -> str:
        """A job for ``customs`` (queued lines), made with them in one transaction."""
        job = uuid.uuid4().hex
        now = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO batch_jobs (id, scope, command, model, stage, state, requests, bytes, estimated_cost, "
                    "created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job, scope, command, model, stage, state, len(customs), size, cost, now, now),
                )
                self._db.executemany("UPDATE batch_lines SET job = ? WHERE custom_id = ?", [(job, c) for c in customs])
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: batch ledger: {exc}") from None
        return job

    def update_job(self, job: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        names = ", ".join(f"{name} = ?" for name in fields)
        self._run(f"UPDATE batch_jobs SET {names} WHERE id = ?", (*fields.values(), job))

    def job(self, job: str) -> dict[str, Any] | None:
        cursor = self._run("SELECT * FROM batch_jobs WHERE id = ?", (job,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None

    def jobs(self, scope: str | None = None, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM batch_jobs", []
        where = []
        if scope is not None:
            where.append("scope = ?")
            args.append(scope)
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if where:
            sql += " WHERE " + " AND ".join(where)
        cursor = self._run(sql + " ORDER BY created", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def active_jobs(self, scope: str) -> list[dict[str, Any]]:
        """Jobs of ``scope`` created at the provider and not yet collected."""
        return [j for j in self.jobs(scope) if j["state"] not in OPEN_STATES + DONE_STATES]


__all__ = ["Ledger", "Line", "custom_id", "key_of"]

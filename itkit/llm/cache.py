"""The persistent response cache: one SQLite file (stdlib ``sqlite3``, WAL).

A response is stored under the sha256 of everything that determines it: the
model, the messages, the sampling parameters, JSON mode, the prompt
template's identity (its text hash), a variant number (for a deliberate
second sample of the same prompt) and the endpoint (scheme, host, port and
path: another server's answer is not this one's; ``--cache-endpoint NAME``
shares one cache between mirrors). Only responses the engine accepted are
stored, each committed at once, so a run killed with ``kill -9`` keeps every
finished response and a re-run sends only what is missing. The API key and any
credentials or query of the endpoint URL are not part of the key and are never stored.

Location: ``--cache-dir DIR``, else ``$ITKIT_HOME``, else the per-user cache
directory (``platformdirs``); the file is ``llm-cache.sqlite3``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import orjson

from itkit.errors import ItkitError, OutputError
from itkit.llm.base import ChatRequest, ChatResponse

HOME_ENV = "ITKIT_HOME"
CACHE_FILE = "llm-cache.sqlite3"
KEY_VERSION = 2
"""Bump to invalidate every cached response (when the key's meaning changes)."""
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another process holding the database."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


class CacheError(ItkitError):
    """The cache database cannot be opened or used."""


def itkit_home() -> Path:
    """Where itkit keeps user state: ``$ITKIT_HOME`` or the per-user cache directory."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("itkit"))


def cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    return (Path(cache_dir).expanduser() if cache_dir else itkit_home()) / CACHE_FILE


def request_key(request: ChatRequest, variant: int = 0, endpoint: str = "") -> str:
    """The cache key of a request (sha256 hex); ``endpoint`` is the server's identity (scheme, host, port, path)."""
    identity = {
        "v": KEY_VERSION,
        "endpoint": endpoint,
        "model": request.model,
        "messages": [dict(m) for m in request.messages],
        "sampling": request.sampling.as_dict(),
        "json_mode": request.json_mode,
        "template": request.template,
        "variant": variant,
    }
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ResponseCache:
    """Accepted responses by request key, committed one by one."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.hits = 0
        self.stores = 0
        self.read_only = read_only
        if read_only:
            self._open_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cache folder {self.path.parent}: cannot create it: {exc.strerror or exc}") from None
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (not a power cut) without an fsync each
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"cache {self.path}: cannot open it ({exc}); delete the file, or use --cache-dir elsewhere or --no-cache"
            ) from None

    def _open_read_only(self) -> None:
        # immutable: SQLite creates no -wal/-shm/journal file and takes no lock (a dry run writes nothing)
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            self._db.execute("SELECT 1 FROM responses LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: cannot read it ({exc}); use --cache-dir elsewhere or --no-cache") from None

    @classmethod
    def open(cls, cache_dir: str | os.PathLike | None = None) -> "ResponseCache":
        return cls(cache_path(cache_dir))

    @classmethod
    def open_existing(cls, cache_dir: str | os.PathLike | None = None) -> "ResponseCache | None":
        """The cache read-only, without creating anything; None when there is none yet."""
        path = cache_path(cache_dir)
        return cls(path, read_only=True) if path.is_file() else None

    def put(self, key: str, response: ChatResponse) -> None:
        """Store and commit one accepted response (nothing in a read-only cache: a dry run stores nothing)."""
        if self.read_only:
            return
        self._put(key, response)

    def get(self, key: str) -> ChatResponse | None:
        try:
            row = self._db.execute(
                "SELECT model, text, finish_reason, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: cannot read: {exc}") from None
        if row is None:
            return None
        self.hits += 1
        model, text, finish, prompt_tokens, completion_tokens = row
        return ChatResponse(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=model,
            cached=True,
        )

    def _put(self, key: str, response: ChatResponse) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    response.model,
                    response.text,
                    response.finish_reason,
                    response.prompt_tokens,
                    response.completion_tokens,
                    time.time(),
                ),
            )
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cache {self.path}: cannot write: {exc}") from None
        self.stores += 1

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

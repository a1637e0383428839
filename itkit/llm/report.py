"""The files an LLM command writes next to its output.

- ``<output>.summary.json``: the command's parameters, the LLM settings (key
  masked), package versions, counts, failures by reason, requests, retries,
  cache hits, tokens, cost and durations.
- ``<output>.failures.jsonl``: one line per record that could not be
  processed: the input row verbatim, with ``_itkit_failure`` holding the
  reason, its location and the raw response (see :mod:`itkit.failures`), so
  the file can be fed back to the command. Written only when some record
  failed; a stale one from an earlier run is removed.

When the output is stdout (``-``) they are ``itkit-<command>.summary.json`` and
``itkit-<command>.failures.jsonl`` in the working directory. Every write is
atomic.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import orjson

import itkit
from itkit.errors import Location
from itkit.failures import failure_row
from itkit.io.sinks import RowWriter, is_stream, write_file_atomic
from itkit.llm.settings import LLMSettings
from itkit.llm.stats import EngineStats
from itkit.records import Record

if TYPE_CHECKING:
    from itkit.llm.job import InputRecords

SUMMARY_SUFFIX = ".summary.json"
FAILURES_SUFFIX = ".failures.jsonl"
VERSIONED_PACKAGES = ("openai", "httpx2", "tiktoken", "pydantic", "typer", "rich", "tenacity", "aiolimiter")


def sidecar_path(output: str, suffix: str, command: str) -> str:
    """``<output><suffix>``, or ``itkit-<command><suffix>`` when the output is stdout or a device."""
    if is_stream(output):
        return f"itkit-{command}{suffix}"
    return f"{output}{suffix}"


def package_versions(names: Sequence[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    versions = {"itkit": itkit.__version__, "python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class FailedRecord:
    """One failure: the input row it concerns (verbatim; None for a failure with no input record, such as a
    generation prompt), where that row was read, the reason, the raw response and the method's details."""

    reason: str
    raw: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    input: dict | None = None
    location: Location | None = None

    def row(self) -> dict[str, Any]:
        return failure_row(self.input, self.reason, self.location, self.raw, self.extra)


class RunReport:
    """Collects the failures of one command and writes its summary and failures files."""

    def __init__(self, command: str, output: str, settings: LLMSettings, parameters: dict[str, Any] | None = None):
        self.command = command
        self.output = output
        self.settings = settings
        self.parameters = dict(parameters or {})
        self.summary_path = sidecar_path(output, SUMMARY_SUFFIX, command)
        self.failures_path = sidecar_path(output, FAILURES_SUFFIX, command)
        self.failures: list[FailedRecord] = []
        self.started = time.time()
        self.inputs: InputRecords | None = None
        """The command's input records: :meth:`fail_record` finds each record's row there."""

    def fail_record(self, record: Record, reason: str, raw: str = "", **details: Any) -> None:
        """``record`` (one of :attr:`inputs`) failed: its input row goes to the failures file verbatim."""
        row, location = self.inputs.origin(record) if self.inputs is not None else (None, None)
        self.failures.append(FailedRecord(reason, raw, details, row, location))

    def fail(self, reason: str, raw: str = "", **details: Any) -> None:
        """A failure that concerns no input record (a generation prompt, a generated task): its details only."""
        self.failures.append(FailedRecord(reason, raw, details))

    def failure_reasons(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for failure in self.failures:
            reasons[failure.reason] = reasons.get(failure.reason, 0) + 1
        return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))

    def write_failures(self) -> str | None:
        """Write the failures file (atomically); remove a stale one when nothing failed."""
        if not self.failures:
            stale = Path(self.failures_path)
            if stale.is_file():
                stale.unlink()
            return None
        # written as they are: the key can only reach them through a server's error message, masked where
        # the client reads it (itkit.llm.secrets); records and responses are data, never scanned for it
        with RowWriter(self.failures_path, "jsonl") as writer:
            for failure in self.failures:
                writer.write(failure.row())
        return self.failures_path

    def summary(self, stats: EngineStats, counts: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        finished = time.time()
        return {
            "command": self.command,
            "parameters": self.parameters,
            "output": self.output,
            "started": _iso(self.started),
            "finished": _iso(finished),
            "seconds": round(finished - self.started, 3),
            "settings": self.settings.redacted(),
            "versions": package_versions(),
            "counts": counts,
            "failures": {
                "count": len(self.failures),
                "reasons": self.failure_reasons(),
                "file": self.failures_path if self.failures else None,
            },
            "engine": stats.as_dict(),
            **(extra or {}),
        }

    def write(self, stats: EngineStats, counts: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the failures file and the summary; returns the summary."""
        self.write_failures()
        data = self.summary(stats, counts, extra)
        blob = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        write_file_atomic(self.summary_path, blob)
        return data


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

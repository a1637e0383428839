"""Offline batches: ``--batch-file`` writes a round's requests as a batch input file instead of submitting them;
``--batch-results`` reads a batch output file back in.

The files are the OpenAI batch format that ``vllm run-batch`` also reads and
writes: one request per line, ``{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}``; one result per line, ``{"custom_id",
"response": {"status_code", "body"}, "error"}``. The ``custom_id`` is the
cache key (and the retry number), so results are mapped back by it even on
another machine's cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from itkit.errors import InputError, Location
from itkit.io.sinks import write_file_atomic
from itkit.llm import batch_ledger as L

if TYPE_CHECKING:
    from itkit.llm.batch_run import BatchMode, BatchPending

KEY_LENGTH = 64
"""A cache key: sha256 in hex."""


def read_results(path: str, ledger: L.Ledger) -> int:
    """Store the answers of a batch output file in the ledger; the number of lines read."""
    from itkit.llm.batch_run import parse_output

    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as exc:
        raise InputError(f"--batch-results: cannot read it: {exc.strerror or exc}", Location(path)) from None
    for number, raw in enumerate(content.splitlines(), 1):
        if raw.strip() and not parse_output(raw):
            raise InputError("not a batch output line (no custom_id, or not JSON)", Location(path, line=number))
    results = parse_output(content)
    unknown = []
    for custom in results:
        key, attempt = L.key_of(custom)
        if len(key) != KEY_LENGTH or any(c not in "0123456789abcdef" for c in key):
            raise InputError(f"custom_id {custom!r} is not one itkit wrote", Location(path), "custom_id")
        if not ledger.known(custom):
            unknown.append((custom, key, attempt, 0, b""))
    if unknown:  # results of requests written on another machine: the custom_id says which request they answer
        ledger.queue(unknown)
    ledger.store(list(results.values()))
    return len(results)


def write_requests(mode: "BatchMode", description: str) -> "BatchPending":
    """Write every request of the round that has no answer yet to --batch-file; the exit-4 error to raise."""
    from itkit.llm.batch_run import BatchPending

    path = mode.settings.batch_file
    customs = [*mode.queued, *mode.waiting]
    if path is None:
        raise InputError(
            f"{len(customs):,} requests have no answer in --batch-results yet; "
            "write them to a batch input file with --batch-file FILE",
            Location(", ".join(mode.settings.batch_results)),
        )
    mode._make_jobs(description, L.WRITTEN)
    lines = [mode._line(custom, mode.ledger.body(custom)) for custom in customs]
    write_file_atomic(path, b"".join(lines))
    stages = ", ".join(f"{s} {n:,}" for s, n in mode.stages.most_common())
    return BatchPending(
        f"{description}: wrote {len(lines):,} requests (stage {stages}) to {path}; run them "
        f"(e.g. vllm run-batch -i {path} -o results.jsonl --model {mode.settings.model}), then re-run the same "
        "command with --batch-results results.jsonl (and --batch-file for the next stage's requests)"
    )


__all__ = ["read_results", "write_requests"]

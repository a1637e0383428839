"""Errors of the engine beyond the interface's own (:mod:`itkit.llm.base`)."""

from __future__ import annotations

from itkit.llm.base import FatalLLMError, LLMError

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells expect."""


class RequestTooLarge(FatalLLMError):
    """This one request can never succeed (its prompt exceeds the model's context).

    Retrying cannot help, but neither is the run wrong: the engine fails the
    record (to the failures file) and goes on. ``context_size`` is the model's
    context in tokens when the server named it (the engine then fails longer
    prompts before sending them).
    """

    def __init__(self, message: str, context_size: int | None = None):
        super().__init__(message)
        self.context_size = context_size


class BadRequest(FatalLLMError):
    """HTTP 400/422 for a reason the server did not name as the context.

    Fatal while no request has succeeded on the endpoint (a wrong model or
    path); once some have, it is this request's problem and fails only its
    record. ``said`` is the short reason for the failures file.
    """

    def __init__(self, message: str, status: int, said: str):
        super().__init__(message)
        self.status = status
        self.said = said


class ServerUnreachable(FatalLLMError):
    """The endpoint stayed down longer than ``--max-outage``: the run stops, unattempted records stay unattempted."""


class Interrupted(LLMError):
    """The run was stopped with Ctrl-C, SIGTERM or SIGHUP; finished responses are in the cache."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, exit_code: int = EXIT_INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code


class DryRunRequest(LLMError):
    """Raised by the engine in dry-run mode instead of sending: the request was recorded for the estimate.

    Workers need not handle it: :meth:`Engine.run` counts the record as planned.
    """

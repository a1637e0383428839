"""Errors of the engine beyond the interface's own (:mod:`itkit.llm.base`)."""

from __future__ import annotations

from itkit.llm.base import FatalLLMError, LLMError

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells expect."""


class RequestTooLarge(FatalLLMError):
    """This one request can never succeed (its prompt exceeds the model's context).

    Retrying cannot help, but neither is the run wrong: the engine fails the
    record (to the failures file) and goes on.
    """


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

"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

``docker stop``, systemd and ``timeout`` send SIGTERM; closing a terminal sends
SIGHUP. While a command runs (:func:`terminating_signals`), both raise
:class:`Terminated`, a :class:`KeyboardInterrupt`, so every writer's cleanup
(temporary files and folders removed, cache kept) and every "how to resume"
message of Ctrl-C applies to them too; the exit code is 128 + the signal
number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A second signal during that
cleanup is ignored, so the cleanup finishes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
EXIT_SIGNAL_BASE = 128
EXIT_BROKEN_PIPE = EXIT_SIGNAL_BASE + getattr(signal, "SIGPIPE", 13)
"""A closed stdout (``itkit convert big.json | head -1``) ends quietly with 141, as Unix tools do."""


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def signal_number(exc: BaseException) -> int:
    """The signal behind an interruption: the Terminated one's, else SIGINT (Ctrl-C)."""
    return exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)


def exit_code_of(exc: BaseException) -> int:
    return EXIT_SIGNAL_BASE + signal_number(exc)


def _raise(signum: int, frame: object) -> None:
    for sig in SIGNALS:  # the cleanup this starts must not be cut short by a second signal
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def terminating_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in SIGNALS:
        try:
            previous[sig] = signal.signal(sig, _raise)
        except (OSError, ValueError):  # pragma: no cover - not settable here
            continue
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["EXIT_BROKEN_PIPE", "Terminated", "exit_code_of", "signal_number", "terminating_signals"]

"""The progress bar of an LLM run, on stderr: records done/total, requests/s, tokens, cost, errors, ETA.

Quiet when stderr is not a terminal or with ``--quiet``. The live figures are
read from the engine's statistics when the bar is drawn (10 times a second),
so the hot path only advances a counter.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

if TYPE_CHECKING:
    from itkit.llm.stats import EngineStats

REFRESH_PER_SECOND = 8


class _StatsColumn(ProgressColumn):
    def __init__(self, stats: "EngineStats", status: Callable[[], str] | None = None):
        super().__init__()
        self.stats = stats
        self.status = status

    def render(self, task) -> Text:  # noqa: ANN001 - rich's Task
        s = self.stats
        elapsed = max(time.monotonic() - s.run_started, 1e-9) if s.run_started else 0.0
        rate = s.requests / elapsed if elapsed else 0.0
        tokens = s.prompt_tokens + s.completion_tokens
        cost = s.cost
        parts = [
            f"{rate:5.1f} req/s",
            f"{tokens:,} tok",
            "cost n/a" if cost is None else f"${cost:,.4f}",
            f"{s.error_count} err",
        ]
        if s.failures:
            parts.append(f"{s.failures} failed")
        if s.cache_hits:
            parts.append(f"{s.cache_hits} cached")
        if self.status is not None:
            try:
                word = self.status()
            except Exception:  # drawn from rich's thread while the engine changes: skip one frame
                word = ""
            if word:
                parts.append(word)
        return Text(" | ".join(parts), style="dim")


class RunProgress:
    """One progress bar for one engine run (a no-op when disabled)."""

    def __init__(
        self,
        stats: "EngineStats",
        total: int | None,
        description: str,
        enabled: bool,
        console: Console | None = None,
        status: Callable[[], str] | None = None,
    ):
        self.console = console or Console(stderr=True, highlight=False)
        self.enabled = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _StatsColumn(stats, status),
                TimeRemainingColumn(),
                console=self.console,
                refresh_per_second=REFRESH_PER_SECOND,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task(description or "records", total=total)

    def start(self) -> None:
        if self._progress is not None:
            self._progress.start()

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def set_total(self, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()

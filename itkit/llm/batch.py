"""Many items through the engine: :meth:`amap` in a running loop, :meth:`run` and :meth:`execute` on a fresh one.

A mixin of :class:`~itkit.llm.engine.Engine` (it uses the engine's settings,
endpoints, statistics and :meth:`complete`): the progress bar, Ctrl-C, and
the outcomes in input order.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from itkit.llm.base import FatalLLMError, RecordFailure
from itkit.interrupts import Terminated, exit_code_of
from itkit.llm.batch_run import BatchDeferred
from itkit.llm.errors import DryRunRequest, Interrupted
from itkit.llm.progress import RunProgress
from itkit.llm.responses import Outcome

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

WORKERS_PER_SLOT = 2
"""run() keeps this many records per concurrency slot in progress (cache hits never wait for a slot)."""


class Batches(ABC):
    """Mapping a worker over items, with the progress bar and Ctrl-C handling (mixed into Engine)."""

    settings: Any
    stats: Any
    endpoints: list
    cache: Any
    llm: Any
    _progress: RunProgress | None
    _done: int
    _total: int | None
    _loop: asyncio.AbstractEventLoop | None

    @abstractmethod
    def _bind(self) -> None:
        """Bind the engine's per-loop state to the running event loop (the engine's)."""

    @abstractmethod
    def status(self) -> str:
        """The progress line's word on the endpoints (the engine's)."""

    async def amap(
        self,
        items: Iterable[I],
        worker: Callable[[I], Awaitable[T]],
        *,
        advance: bool = True,
    ) -> list[Outcome[I, T]]:
        """Run ``worker`` on every item concurrently, inside a running engine; outcomes in input order.

        ``worker`` returns the item's value or raises :class:`RecordFailure`
        (usually from :meth:`complete`). Any other exception (FatalLLMError, a
        bug) cancels the other workers and propagates.
        """
        self._bind()
        indexed = list(enumerate(items))
        outcomes: list[Outcome[I, T] | None] = [None] * len(indexed)
        feed = iter(indexed)
        deferring = getattr(self, "batch", None) is not None

        async def pump() -> None:
            for index, item in feed:
                outcome = outcomes[index] = await self._one(item, worker)
                if advance and not (outcome.planned and deferring):  # a batch's record is done when downloaded
                    self.advance()
                await asyncio.sleep(0)  # cache hits never wait: let Ctrl-C and the other workers in

        slots = sum(e.limiter.ceiling for e in self.endpoints) or self.settings.concurrency
        n_workers = min(len(indexed), slots * WORKERS_PER_SLOT)
        await _all_or_nothing([asyncio.ensure_future(pump()) for _ in range(n_workers)])
        batch = getattr(self, "batch", None)
        if batch is not None and batch.deferred:
            raise BatchDeferred()  # the round waits for batches: its results are not all there
        return outcomes  # type: ignore[return-value]

    async def _one(self, item: I, worker: Callable[[I], Awaitable[T]]) -> Outcome[I, T]:
        try:
            return Outcome(item, value=await worker(item))
        except RecordFailure as failure:
            return Outcome(item, failure=failure)
        except DryRunRequest:
            return Outcome(item, planned=True)
        except BatchDeferred:  # --batch: the item waits for a batch (the round raises at its end)
            return Outcome(item, planned=True)

    def run(
        self,
        items: Iterable[I],
        worker: Callable[[I], Awaitable[T]],
        *,
        description: str = "",
    ) -> list[Outcome[I, T]]:
        """Synchronous entry: ``worker`` over all items with the progress bar; outcomes in input order."""
        items = list(items)
        return self.execute(lambda: self.amap(items, worker), total=len(items), description=description)

    def execute(
        self,
        coro_factory: Callable[[], Awaitable[T]],
        *,
        total: int | None = None,
        description: str = "",
    ) -> T:
        """Run an async driver on a fresh event loop with the progress bar and Ctrl-C handling.

        (From code that already runs in an event loop, await :meth:`amap` and
        :meth:`complete` directly instead.)

        The driver calls :meth:`complete` / :meth:`amap` and moves the bar with
        :meth:`advance`. Ctrl-C stops at once; finished responses are already in
        the cache, and :class:`Interrupted` says how to resume.
        """
        self._done = 0
        self._total = total
        self._progress = RunProgress(
            self.stats, total, description, enabled=not self.settings.quiet, status=self.status
        )

        async def main() -> T:
            self._bind()
            try:
                return await coro_factory()
            finally:
                if self.llm is not None:
                    await self.llm.aclose()

        batch = getattr(self, "batch", None)
        if batch is not None:
            batch.begin_round()
            batch.refresh()  # poll the batches, download what finished: this round's answers
        self.stats.begin()
        self._progress.start()
        try:
            return asyncio.run(main())
        except BatchDeferred:
            self._progress.stop()
            raise batch.submit(description or "run") from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (itkit.interrupts.Terminated)
            raise self._interrupted(exc) from None
        finally:
            self._progress.stop()
            self.stats.end()
            self._loop = None

    def advance(self, n: int = 1) -> None:
        """Move the progress bar by ``n`` finished records."""
        self._done += n
        if self._progress is not None:
            self._progress.advance(n)

    def _interrupted(self, exc: BaseException) -> Interrupted:
        by = f" by {exc.name}" if isinstance(exc, Terminated) else ""
        if self._total is not None:
            done = f"interrupted{by} after {self._done} of {self._total} records"
        else:
            done = f"interrupted{by} after {self._done} records" if self._done else f"interrupted{by}"
        if self.cache is None:
            saved = "nothing was cached (--no-cache): a re-run starts over"
        else:
            saved = (
                f"finished responses are saved in the cache ({self.cache.path}): "
                "re-run the same command to resume; only the missing requests will be sent"
            )
        return Interrupted(f"{done}; {saved}", exit_code_of(exc))


async def _all_or_nothing(tasks: list[asyncio.Future]) -> None:
    """Wait for all tasks; on the first exception cancel the rest and raise it."""
    if not tasks:
        return
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    if failed:
        fatal = [t for t in failed if isinstance(t.exception(), FatalLLMError)]
        raise (fatal or failed)[0].exception()  # type: ignore[misc]


__all__ = ["Batches", "WORKERS_PER_SLOT"]

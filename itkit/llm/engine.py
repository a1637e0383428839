"""The engine every rewrite method runs through.

:meth:`Engine.complete` sends one chat request the careful way:

1. the cache is looked up (a hit costs nothing and is checked like a fresh response);
2. in dry-run mode the request is recorded for the estimate instead of sent;
3. otherwise it waits for a concurrency slot (``--concurrency``), for the
   request and token buckets (``--rpm``, ``--tpm``: prompt tokens by tiktoken
   plus ``max_tokens``) and for any 429 cool-down, then sends;
4. the response is checked (empty, cut off by the length limit, not JSON in
   JSON mode, or rejected by the caller's ``parse``); an accepted response is
   stored in the cache and committed at once;
5. transient errors and rejected responses are retried with exponential
   backoff and jitter (tenacity), honouring ``Retry-After``; a 429 makes every
   request in flight cool down, not only the one that got it. After
   ``--max-retries`` the record fails with :class:`RecordFailure`; a
   :class:`FatalLLMError` (bad key, unknown model) stops the whole run at once.

:meth:`Engine.run` maps a worker over records concurrently and returns the
outcomes in input order; :meth:`Engine.execute` runs any async driver (such as
Self-Instruct's generate-until-N loop) with the same progress bar and Ctrl-C
handling. Both may be called several times on one engine.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Iterable, Sequence, TypeVar

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from itkit.errors import UsageError
from itkit.interrupts import Terminated, exit_code_of
from itkit.llm.base import (
    LLM,
    ChatRequest,
    ChatResponse,
    FatalLLMError,
    Message,
    RecordFailure,
    ResponseRejected,
    Sampling,
    TransientLLMError,
)
from itkit.llm.cache import ResponseCache, request_key
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.errors import DryRunRequest, Interrupted, RequestTooLarge
from itkit.llm.pricing import price_for
from itkit.llm.sampling_spec import SamplingSpec
from itkit.llm.progress import RunProgress
from itkit.llm.settings import LLMSettings
from itkit.llm.stats import EngineStats
from itkit.tokens import TokenCounter, counter_for

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

BACKOFF_BASE = 0.25
"""Seconds: the first retry waits up to this long (full jitter), doubling each time."""
BACKOFF_MAX = 30.0
"""Seconds: the longest backoff between two attempts (Retry-After may ask for more)."""
RETRY_AFTER_MAX = 300.0
"""Seconds: the longest Retry-After honoured."""
RATE_LIMIT_COOLDOWN = 2.0
"""Seconds every request pauses after a 429 that gave no Retry-After."""
RATE_PERIOD = 60.0
"""Seconds: --rpm and --tpm are per minute."""
TPM_COMPLETION_ALLOWANCE = 512
"""Completion tokens reserved in the --tpm bucket for a request without max_tokens."""
WORKERS_PER_SLOT = 2
"""run() keeps this many records per concurrency slot in progress (cache hits never wait for a slot)."""
LENGTH_FINISH = "length"

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.S | re.I)


def parse_json(text: str) -> Any:
    """The JSON value of a response body (a surrounding ```json fence is allowed); ResponseRejected if invalid."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ResponseRejected(f"the response is not valid JSON ({exc.msg})", text) from None


def sampling_from(values: "SamplingSpec | dict[str, Any] | None", where: str = "sampling") -> Sampling:
    """A :class:`Sampling` from a template's ``sampling:`` block (or plain data); unknown keys are an error."""
    data = values.given() if isinstance(values, SamplingSpec) else dict(values or {})
    known = set(Sampling.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{where}: unknown sampling parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if data.get("stop") is not None:
        stop = data["stop"]
        data["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    return Sampling(**data)


def check_response(response: ChatResponse, json_mode: bool, allow_length: bool = False) -> None:
    """Raise ResponseRejected for an empty, truncated (unless ``allow_length``) or (in JSON mode) non-JSON response."""
    if not response.text.strip():
        raise ResponseRejected("empty response", response.text)
    if response.finish_reason == LENGTH_FINISH and not allow_length:
        raise ResponseRejected("the response was cut off by the length limit (finish_reason=length)", response.text)
    if json_mode:
        parse_json(response.text)


@dataclass
class Outcome(Generic[I, T]):
    """What became of one item: a value, a failure, or (dry run) a plan."""

    item: I
    value: T | None = None
    failure: RecordFailure | None = None
    planned: bool = False
    """Dry run: the item's requests were recorded, nothing was sent."""

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.planned


class Engine:
    """Concurrency, rate limits, retries, cache, accounting and progress around one :class:`LLM`."""

    def __init__(
        self,
        llm: LLM | None,
        settings: LLMSettings,
        cache: ResponseCache | None = None,
        counter: TokenCounter | None = None,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
    ):
        if llm is None and not settings.dry_run:
            raise FatalLLMError("an engine without a model can only do a dry run")
        self.llm = llm
        self.settings = settings
        self.cache = cache
        self._counter = counter
        self.stats = EngineStats(price=price_for(settings.model, settings.price_in, settings.price_out))
        self.plan = DryRunPlan()
        self._user_sampling = settings.sampling()
        self._retry_wait = wait_random_exponential(multiplier=backoff_base, max=backoff_max)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._rpm: AsyncLimiter | None = None
        self._tpm: AsyncLimiter | None = None
        self._cooldown_until = 0.0
        self._fatal: FatalLLMError | None = None
        self._progress: RunProgress | None = None
        self._done = 0
        self._total: int | None = None

    # ---- helpers ----------------------------------------------------------
    @property
    def counter(self) -> TokenCounter:
        """tiktoken counter for the model (loaded on first use: only --tpm, dry runs and missing usage need it)."""
        if self._counter is None:
            self._counter = counter_for(self.settings.model)
        return self._counter

    def _bind(self) -> None:
        """Loop-bound primitives, made anew for each event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._rpm = AsyncLimiter(self.settings.rpm, RATE_PERIOD) if self.settings.rpm else None
        self._tpm = AsyncLimiter(self.settings.tpm, RATE_PERIOD) if self.settings.tpm else None
        self._cooldown_until = 0.0
        self._fatal = None

    def request_for(
        self,
        messages: Sequence[Message],
        *,
        template: str = "",
        sampling: Sampling | None = None,
        json_mode: bool = False,
    ) -> ChatRequest:
        """The request ``complete`` would send: the call's sampling with the user's explicit options on top."""
        effective = (sampling or Sampling()).merged(self._user_sampling)
        return ChatRequest(
            model=self.settings.model,
            messages=tuple({"role": m["role"], "content": m["content"]} for m in messages),
            sampling=effective,
            json_mode=json_mode,
            template=template,
        )

    # ---- one request --------------------------------------------------------
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        template: str = "",
        sampling: Sampling | None = None,
        json_mode: bool = False,
        parse: Callable[[ChatResponse], T] | None = None,
        variant: int = 0,
        expected_tokens: int | None = None,
        allow_length: bool = False,
    ) -> T | ChatResponse:
        """Send one chat request (or take it from the cache) and return ``parse(response)`` or the response.

        ``sampling`` holds the call's defaults (a template's, a method's); the
        options the user gave explicitly (``--temperature``, ``--top-p``,
        ``--max-tokens``, ``--seed``) win over them. ``template`` is the
        prompt template's identity (its ``ref`` or hash), part of the cache
        key. ``parse`` turns an accepted response into the caller's value and
        may raise :class:`ResponseRejected` to have it retried. ``variant``
        asks for a different sample of the same prompt (a different cache
        entry). ``expected_tokens`` is the caller's guess of the completion's
        length, used only for the dry-run estimate. ``allow_length`` hands a
        response cut off by the length limit to ``parse`` (which sees
        ``finish_reason == "length"``) instead of rejecting it, for methods
        that use what came before the cut (Self-Instruct drops the last item).

        Raises :class:`RecordFailure` after the retry limit,
        :class:`FatalLLMError` when the run cannot go on, and (dry run)
        :class:`DryRunRequest` instead of sending.
        """
        self._bind()
        request = self.request_for(messages, template=template, sampling=sampling, json_mode=json_mode)
        key = request_key(request, variant) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)  # type: ignore[union-attr]
            if hit is not None:
                try:
                    value = self._accept(hit, json_mode, parse, allow_length)
                except ResponseRejected:
                    pass  # the caller's checks changed since it was stored: ask again
                else:
                    self.stats.cache_hits += 1
                    if self.settings.dry_run:
                        self.plan.cached += 1
                    return value
        if self.settings.dry_run:
            self.plan.add(request, self.counter.count_messages(list(request.messages)), expected_tokens)
            raise DryRunRequest("dry run: request recorded, not sent")

        tokens = self._tpm_reservation(request) if self._tpm is not None else 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((TransientLLMError, ResponseRejected)),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._send(request, tokens)
                    value = self._accept(response, json_mode, parse, allow_length)
        except ResponseRejected as exc:
            raise self._give_up(exc.reason, exc.raw) from None
        except RequestTooLarge as exc:
            raise self._give_up(str(exc), "") from None
        except TransientLLMError as exc:
            if self.stats.responses == 0:
                # not one answer yet, and a request has used up its retries: the endpoint is down or wrong
                self._fatal = FatalLLMError(
                    f"{self.settings.endpoint}: {exc} on every attempt and no request has succeeded yet; "
                    "check --base-url and that the server is up, then re-run the same command"
                )
                raise self._fatal from None
            raise self._give_up(str(exc), "") from None
        if key is not None:
            self.cache.put(key, response)  # type: ignore[union-attr]
        return value

    def _give_up(self, reason: str, raw: str) -> RecordFailure:
        self.stats.failures += 1
        self.stats.failure_reasons[reason] += 1
        attempts = self.settings.max_retries + 1
        return RecordFailure(f"{reason} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})", raw)

    async def _send(self, request: ChatRequest, tokens: int) -> ChatResponse:
        await self._cool_down()
        async with self._slots:  # type: ignore[union-attr]
            if self._rpm is not None:
                await self._rpm.acquire()
            if self._tpm is not None:
                await self._tpm.acquire(tokens)
            await self._cool_down()  # a 429 may have come while this request waited
            if self._fatal is not None:  # the run is stopping: send nothing more
                raise self._fatal
            self.stats.requests += 1
            try:
                response = await self.llm.complete(request)  # type: ignore[union-attr]
            except RequestTooLarge:
                raise
            except FatalLLMError as exc:
                self._fatal = exc
                raise
            except TransientLLMError as exc:
                self.stats.errors[str(exc)] += 1
                if exc.status == 429:
                    self.stats.rate_limited += 1
                    pause = RATE_LIMIT_COOLDOWN if exc.retry_after is None else min(exc.retry_after, RETRY_AFTER_MAX)
                    loop_now = asyncio.get_running_loop().time()
                    self._cooldown_until = max(self._cooldown_until, loop_now + pause)
                raise
        self.stats.responses += 1
        self._account(request, response)
        return response

    def _accept(
        self,
        response: ChatResponse,
        json_mode: bool,
        parse: Callable[[ChatResponse], T] | None,
        allow_length: bool = False,
    ) -> Any:
        try:
            check_response(response, json_mode, allow_length)
            return parse(response) if parse is not None else response
        except ResponseRejected as exc:
            if not response.cached:
                self.stats.errors[exc.reason] += 1
            raise

    async def _cool_down(self) -> None:
        loop = asyncio.get_running_loop()
        while (delay := self._cooldown_until - loop.time()) > 0:
            await asyncio.sleep(delay)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ResponseRejected):
            return 0.0  # the server is fine; ask again at once
        delay = self._retry_wait(state)
        if isinstance(exc, TransientLLMError) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, RETRY_AFTER_MAX))
        return delay

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1

    def _tpm_reservation(self, request: ChatRequest) -> int:
        prompt = self.counter.count_messages(list(request.messages))
        reserve = prompt + (request.sampling.max_tokens or TPM_COMPLETION_ALLOWANCE)
        return min(reserve, self.settings.tpm or reserve)  # a request larger than the bucket takes all of it

    def _account(self, request: ChatRequest, response: ChatResponse) -> None:
        if response.prompt_tokens or response.completion_tokens:
            self.stats.prompt_tokens += response.prompt_tokens
            self.stats.completion_tokens += response.completion_tokens
        else:  # the server sent no usage: count with tiktoken
            self.stats.tokens_estimated += 1
            self.stats.prompt_tokens += self.counter.count_messages(list(request.messages))
            self.stats.completion_tokens += self.counter.count(response.text)

    # ---- many items -----------------------------------------------------------
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

        async def pump() -> None:
            for index, item in feed:
                outcomes[index] = await self._one(item, worker)
                if advance:
                    self.advance()
                await asyncio.sleep(0)  # cache hits never wait: let Ctrl-C and the other workers in

        n_workers = min(len(indexed), self.settings.concurrency * WORKERS_PER_SLOT)
        await _all_or_nothing([asyncio.ensure_future(pump()) for _ in range(n_workers)])
        return outcomes  # type: ignore[return-value]

    async def _one(self, item: I, worker: Callable[[I], Awaitable[T]]) -> Outcome[I, T]:
        try:
            return Outcome(item, value=await worker(item))
        except RecordFailure as failure:
            return Outcome(item, failure=failure)
        except DryRunRequest:
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
        self._progress = RunProgress(self.stats, total, description, enabled=not self.settings.quiet)

        async def main() -> T:
            self._bind()
            try:
                return await coro_factory()
            finally:
                if self.llm is not None:
                    await self.llm.aclose()

        self.stats.begin()
        self._progress.start()
        try:
            return asyncio.run(main())
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

    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def open_engine(settings: LLMSettings, llm: LLM | None = None) -> Engine:
    """An engine for ``settings``: the OpenAI-compatible client (none in a dry run) and the cache unless --no-cache."""
    if llm is None and not settings.dry_run:
        from itkit.llm.openai_client import OpenAIChatLLM

        llm = OpenAIChatLLM(settings)
    if settings.no_cache:
        cache = None
    elif settings.dry_run:  # a dry run writes nothing: it only reads an existing cache (to count what is cached)
        cache = ResponseCache.open_existing(settings.cache_dir)
    else:
        cache = ResponseCache.open(settings.cache_dir)
    return Engine(llm, settings, cache)


__all__ = ["Engine", "Outcome", "check_response", "open_engine", "parse_json", "sampling_from"]

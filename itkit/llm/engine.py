"""The engine every rewrite method runs through.

:meth:`Engine.complete` sends one chat request the careful way:

1. the cache is looked up (a hit costs nothing and is checked like a fresh
   response); the key holds the endpoint (:attr:`LLMSettings.cache_scope`);
2. in dry-run mode the request is recorded for the estimate instead of sent;
3. an identical request already in flight is not sent again: the second
   caller waits for the first one's answer (single flight);
4. otherwise it goes to an endpoint (:mod:`itkit.llm.endpoints`: adaptive
   concurrency, circuit breaker, rate limits, each in its own module), after
   a prompt the endpoint's known context cannot hold is failed unsent;
5. the response is checked (empty, cut off by the length limit, not JSON in
   JSON mode, or rejected by the caller's ``parse``); an accepted response is
   stored in the cache and committed at once;
6. transient errors are retried with backoff (:mod:`itkit.llm.attempts`),
   rejected responses at once with a request that can change the answer;
   attempts that failed while the endpoint's breaker was open do not count.
   After ``--max-retries`` the record fails with :class:`RecordFailure`
   (saying how many requests were sent); a prompt beyond the context, or a 400
   once the endpoint has answered other requests, fails only its record; a
   :class:`FatalLLMError` (bad key, unknown model, server gone longer than
   ``--max-outage``) stops the whole run at once.

:meth:`Engine.run` maps a worker over records concurrently and returns the
outcomes in input order; :meth:`Engine.execute` runs any async driver (such as
Self-Instruct's generate-until-N loop) with the same progress bar and Ctrl-C
handling. Both may be called several times on one engine.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence, TypeVar

from itkit import notices
from itkit.errors import ItkitError, UsageError
from itkit.llm.attempts import BACKOFF_BASE, BACKOFF_MAX, backoff, varied
from itkit.llm.base import (
    LLM,
    TIMEOUT_STATUS,
    ChatRequest,
    ChatResponse,
    FatalLLMError,
    Message,
    RecordFailure,
    ResponseRejected,
    Sampling,
    TransientLLMError,
)
from itkit.llm.batch import WORKERS_PER_SLOT, Batches  # noqa: F401  (re-exported)
from itkit.llm.cache import ResponseCache, request_key
from itkit.llm.concurrency import NEUTRAL, OK, OVERLOAD, REFUSED
from itkit.llm.discovery import discover_model
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.endpoints import Endpoint, pick
from itkit.llm.errors import BadRequest, DryRunRequest, RequestTooLarge
from itkit.llm.pricing import batch_price, price_for
from itkit.llm.progress import RunProgress
from itkit.llm.responses import (  # noqa: F401  (re-exported: the engine is where callers find them)
    CUT_OFF_REASON,
    LENGTH_FINISH,
    Outcome,
    check_response,
    parse_json,
    sampling_from,
)
from itkit.llm.settings import LLMSettings
from itkit.llm.stats import EngineStats
from itkit.tokens import TokenCounter, counter_for, preload

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

FIRST_ANSWER_POLL = 0.05
"""Seconds between looks for a first answer before calling an endpoint that never answered wrong."""
CHARS_PER_TOKEN = 4
"""The rough size of a token where tiktoken's files are missing."""
CONTEXT_MARGIN = 1.1
"""A prompt is failed unsent when tiktoken counts this many times the context the server named (tokenizers differ)."""
TPM_COMPLETION_ALLOWANCE = 512
"""Completion tokens reserved in the --tpm bucket for a request without max_tokens."""


class Engine(Batches):
    """Endpoints, retries, cache, accounting and progress around one or more :class:`LLM` instances.

    ``llm`` is one LLM or a list (one per endpoint: ``--base-url`` given several times).
    """

    def __init__(
        self,
        llm: LLM | Sequence[LLM] | None,
        settings: LLMSettings,
        cache: ResponseCache | None = None,
        counter: TokenCounter | None = None,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
    ):
        if llm is None and not settings.dry_run:
            raise FatalLLMError("an engine without a model can only do a dry run")
        llms = [] if llm is None else list(llm) if isinstance(llm, (list, tuple)) else [llm]
        self.llm = llms[0] if llms else None
        self.settings = settings
        self.cache = cache
        self._counter = counter
        self._preload: Any = None
        """The counter loading in a thread (:meth:`preload_counter`), or None."""
        price = price_for(settings.model, settings.price_in, settings.price_out, use_table=settings.is_openai)
        self.stats = EngineStats(price=price)
        if settings.max_cost is not None and price is None:
            raise UsageError(
                f"--max-cost: no price for model '{settings.model}' at {settings.endpoint}; give --price-in and --price-out"
            )
        self.batch: Any = None
        """--batch: the :class:`~itkit.llm.batch_run.BatchMode` (None online and in a dry run)."""
        if settings.batched:
            self.stats.batched = True
            self.stats.batch_price = batch_price(price, settings.batch_discount)
            if not settings.dry_run:
                from itkit.llm.batch_run import BatchMode

                self.batch = BatchMode(settings, cache, self.stats)
        self.plan = DryRunPlan()
        self._user_sampling = settings.sampling()
        self._backoff = (backoff_base, backoff_max)
        self.endpoints = [
            Endpoint(one, getattr(one, "endpoint", settings.endpoint), settings) for one in llms
        ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fatal: FatalLLMError | None = None
        self._flights: dict[str, asyncio.Future] = {}
        self._active = 0
        """Records whose requests are being attempted (to tell a wrong endpoint from a slow first answer)."""
        self._progress: RunProgress | None = None
        self._done = 0
        self._total: int | None = None

    # ---- helpers ----------------------------------------------------------
    @property
    def counter(self) -> TokenCounter:
        """tiktoken counter for the model (loaded on first use: only --tpm, dry runs and missing usage need it).

        Only the --tpm budget needs exact counts; offline without the encoding, dry-run and usage
        figures are estimated (with one warning)."""
        if self._counter is None:
            loaded = self._preload.result() if self._preload is not None else None
            self._counter = loaded or counter_for(self.settings.model, required=self.settings.tpm is not None)
            if self._counter.estimated:
                self.plan.token_basis = f"estimated: no tiktoken encoding {self._counter.encoding}"
        return self._counter

    def preload_counter(self) -> None:
        """Load :attr:`counter` in a thread from now on, so the first requests need not wait for it."""
        if self._counter is None and self._preload is None:
            self._preload = preload(self.settings.model)

    async def counter_ready(self) -> TokenCounter:
        """:attr:`counter`, once a load :meth:`preload_counter` started has finished (without blocking the loop)."""
        if self._counter is None and self._preload is not None and not self._preload.done():
            await asyncio.wrap_future(self._preload)
        return self.counter

    def _bind(self) -> None:
        """Loop-bound primitives, made anew for each event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        for endpoint in self.endpoints:
            endpoint.bind()
        self._flights = {}
        self._active = 0
        self._fatal = None

    def status(self) -> str:
        """The progress line's word on the endpoints: outages, pauses, concurrency."""
        words = [e.status() for e in self.endpoints]
        words = [w for w in words if w]
        limits = [e.limiter for e in self.endpoints]
        if limits and not self.settings.no_adapt:
            words.append("j " + "+".join(str(l.size) for l in limits))
        return " | ".join(words)

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
        key = request_key(request, variant, self.settings.cache_scope)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    value = self._accept(hit, json_mode, parse, allow_length)
                except ResponseRejected:
                    pass  # the caller's checks changed since it was stored: ask again
                else:
                    if self.batch is None or not self.batch.bill(key):  # a batch's answer is counted as one
                        self.stats.cache_hits += 1
                    if self.settings.dry_run:
                        self.plan.cached += 1
                    return value
        if self.settings.dry_run:
            self.plan.add(request, self._prompt_tokens(request), expected_tokens)
            raise DryRunRequest("dry run: request recorded, not sent")
        if self.batch is not None:
            from itkit.llm.batch_run import OnlineRetry

            answered = self.batch.answer(self, request, key, json_mode, parse, allow_length, expected_tokens)
            if not isinstance(answered, OnlineRetry):
                return answered
            request = answered.request  # --batch-retry online: the failed line's retry goes online

        flight = self._flights.get(key)
        if flight is not None:  # the same request is in flight: one request, one answer, for both callers
            self.stats.coalesced += 1
            try:
                response = await asyncio.shield(flight)
            except RecordFailure as failure:
                self.stats.failures += 1
                self.stats.failure_reasons[failure.base_reason] += 1
                raise RecordFailure(failure.reason, failure.raw) from None
            try:
                return self._accept(response, json_mode, parse, allow_length)
            except ResponseRejected as exc:
                raise self._give_up(exc.reason, exc.raw, 0) from None
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value, response = await self._attempts(request, key, json_mode, parse, allow_length)
        except BaseException as exc:
            if isinstance(exc, RecordFailure):
                flight.set_exception(exc)
                flight.exception()  # retrieved: no "never retrieved" warning when nobody waits
            else:
                flight.cancel()
            raise
        else:
            flight.set_result(response)
        finally:
            self._flights.pop(key, None)
        if self.cache is not None:
            self.cache.put(key, response)
        return value

    async def _attempts(
        self,
        request: ChatRequest,
        key: str,
        json_mode: bool,
        parse: Callable[[ChatResponse], T] | None,
        allow_length: bool,
    ) -> tuple[Any, ChatResponse]:
        """Send ``request`` until an accepted response, the retry limit, or a fatal error."""
        self._active += 1
        try:
            return await self._attempt_loop(request, key, json_mode, parse, allow_length)
        finally:
            self._active -= 1

    async def _attempt_loop(
        self,
        request: ChatRequest,
        key: str,
        json_mode: bool,
        parse: Callable[[ChatResponse], T] | None,
        allow_length: bool,
    ) -> tuple[Any, ChatResponse]:
        counted = 0  # attempts that count against --max-retries
        sent = 0  # requests sent for this record (what the failure message says)
        rejected = 0
        current = request
        tokens = 0
        while True:
            endpoint = pick(self.endpoints)
            if endpoint.limits.counts_tokens and not tokens:
                tokens = self._tpm_reservation(request, endpoint.limits.tpm)
            probe = await endpoint.breaker.admit()
            sent += 1
            try:
                response = await self._send(endpoint, current, tokens, key, probe)
                return self._accept(response, json_mode, parse, allow_length), response
            except ResponseRejected as exc:
                counted += 1
                rejected += 1
                if counted > self.settings.max_retries:
                    raise self._give_up(exc.reason, exc.raw, sent) from None
                # the server is fine; ask again at once, with a request that can give another answer
                current = varied(request, rejected, cut_off=exc.reason == CUT_OFF_REASON)
                self.stats.retries += 1
            except RequestTooLarge as exc:
                if exc.context_size:
                    endpoint.context_size = exc.context_size
                raise self._give_up(str(exc), "", sent) from None
            except BadRequest as exc:
                if endpoint.answered:  # this endpoint serves other requests: this one is the problem
                    raise self._give_up(exc.said, "", sent) from None
                self._fatal = exc
                raise
            except TransientLLMError as exc:
                excused = exc.unreachable and endpoint.breaker.is_open
                if not excused:
                    counted += 1
                if counted > self.settings.max_retries:
                    self._active -= 1  # waiting: not counted, so records that all wait do not wait for each other
                    try:
                        while self.stats.responses == 0 and self._active > 0 and self._fatal is None:
                            await asyncio.sleep(FIRST_ANSWER_POLL)  # others may yet get the first answer
                    finally:
                        self._active += 1
                    if self.stats.responses == 0:
                        # not one answer yet, and a request has used up its retries: the endpoint is down or wrong
                        self._fatal = FatalLLMError(
                            f"{endpoint.name}: {exc.short} on every attempt and no request has succeeded yet; "
                            "check --base-url and that the server is up, then re-run the same command"
                            + str(exc).removeprefix(exc.short)
                        )
                        raise self._fatal from None
                    raise self._give_up(str(exc), "", sent) from None
                self.stats.retries += 1
                if not excused:  # an open breaker paces its own probes
                    await asyncio.sleep(backoff(counted, exc, *self._backoff, self.settings.max_retry_after))

    def _prompt_tokens(self, request: ChatRequest) -> int:
        return self.counter.count_messages(list(request.messages))

    @property
    def plan_price(self) -> Any:
        """The price a dry run estimates at: the batch price with --batch."""
        return self.stats.batch_price if self.settings.batched else self.stats.price

    def rounds(self, fn: Callable[[], T]) -> T:
        """``fn()`` (a whole method run); with ``--batch --wait``, again after each round's batches finished."""
        from itkit.llm.batch_run import BatchPending

        while True:
            try:
                return fn()
            except BatchPending as pending:
                if self.batch is None or not self.settings.batch_wait or self.settings.offline_batch:
                    raise
                if not self.settings.quiet:
                    notices.say(str(pending))
                self.batch.wait(notices.say if not self.settings.quiet else lambda _text: None)

    def _check_context(self, endpoint: Endpoint, request: ChatRequest) -> None:
        """Fail a prompt the endpoint's known context cannot hold without sending it."""
        if endpoint.context_size is None:
            return
        try:
            prompt = self.counter.count_messages(list(request.messages))
        except ItkitError:  # no tokenizer here: let the server judge
            return
        if prompt > endpoint.context_size * CONTEXT_MARGIN:
            raise self._give_up(
                f"the prompt ({prompt} tokens by tiktoken) is longer than the model's context "
                f"({endpoint.context_size} tokens, as the server said); not sent",
                "",
                0,
            )

    def _give_up(self, reason: str, raw: str, sent: int) -> RecordFailure:
        self.stats.failures += 1
        self.stats.failure_reasons[reason] += 1
        shown = f"{reason} (gave up after {sent} attempt{'s' if sent > 1 else ''})" if sent else reason
        failure = RecordFailure(shown, raw)
        failure.base_reason = reason
        return failure

    async def _send(self, endpoint: Endpoint, request: ChatRequest, tokens: int, key: str, probe: bool) -> ChatResponse:
        ticket = await endpoint.limiter.acquire()
        outcome = NEUTRAL
        try:
            self._check_context(endpoint, request)
            await endpoint.limits.acquire(tokens)
            if self._fatal is not None:  # the run is stopping: send nothing more
                raise self._fatal
            if self.settings.max_cost is not None and (self.stats.cost or 0.0) >= self.settings.max_cost:
                self._fatal = FatalLLMError(
                    f"--max-cost ${self.settings.max_cost:g} reached (${self.stats.cost:,.4f} spent); the finished "
                    "responses are in the cache: re-run with a higher --max-cost to go on"
                )
                raise self._fatal
            self.stats.requests += 1
            try:
                response = await endpoint.llm.complete(request)
            except TransientLLMError as exc:
                self.stats.errors[exc.short] += 1
                endpoint.limits.learn(exc.limits)
                if exc.status == 429:
                    self.stats.rate_limited += 1
                    endpoint.limits.rate_limited(exc.retry_after)
                    outcome = OVERLOAD
                elif exc.outage:
                    outcome = REFUSED if exc.status >= 500 else OVERLOAD if exc.status == TIMEOUT_STATUS else NEUTRAL
                    if endpoint.answered and exc.unreachable:  # a server that never answered is wrong, not down
                        endpoint.breaker.failed(key, str(exc), probe)
                        probe = False
                    if exc.retry_after is not None:
                        endpoint.limits.pause(endpoint.limits.capped(exc.retry_after), "server busy (Retry-After)")
                raise
            except (RequestTooLarge, BadRequest):
                raise
            except FatalLLMError as exc:
                self._fatal = exc
                raise
            outcome = OK
            endpoint.answered += 1
            endpoint.breaker.succeeded()
            probe = False
            endpoint.limits.learn(response.limits)
        finally:
            endpoint.breaker.released(probe)
            endpoint.limiter.release(ticket, outcome)
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

    def _tpm_reservation(self, request: ChatRequest, tpm: int | None = None) -> int:
        try:
            prompt = self.counter.count_messages(list(request.messages))
        except ItkitError:  # no tokenizer here (a limit learned from headers): about 4 characters a token
            prompt = sum(len(m["content"]) for m in request.messages) // CHARS_PER_TOKEN + 1
        reserve = prompt + (request.sampling.max_tokens or TPM_COMPLETION_ALLOWANCE)
        bucket = tpm or self.settings.tpm
        return min(reserve, bucket or reserve)  # a request larger than the bucket takes all of it

    def _account(self, request: ChatRequest, response: ChatResponse) -> None:
        if response.prompt_tokens or response.completion_tokens:
            self.stats.prompt_tokens += response.prompt_tokens
            self.stats.completion_tokens += response.completion_tokens
        else:  # the server sent no usage: count with tiktoken
            self.stats.tokens_estimated += 1
            self.stats.prompt_tokens += self.counter.count_messages(list(request.messages))
            self.stats.completion_tokens += self.counter.count(response.text)

    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        if self.batch is not None:
            self.batch.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_engine(settings: LLMSettings, llm: LLM | Sequence[LLM] | None = None) -> Engine:
    """An engine for ``settings``: one OpenAI-compatible client per endpoint (none in a dry run), the cache unless --no-cache.

    With no ``--model`` for a server that is not OpenAI, the server is asked for its model first
    (:mod:`itkit.llm.discovery`); the engine's ``settings`` then name it.
    """
    if llm is None:
        settings = discover_model(settings)
        if not settings.dry_run:
            from itkit.llm.openai_client import OpenAIChatLLM

            llm = [OpenAIChatLLM(settings, url) for url in settings.base_urls]
    if settings.dry_run and settings.key_value() is None and settings.base_url is None:
        notices.warn(
            f"dry run without an API key: the real run against {settings.endpoint} would fail; "
            "set OPENAI_API_KEY (or --api-key), or --base-url for a local server"
        )
    if settings.no_cache:
        cache = None
    elif settings.dry_run:  # a dry run writes nothing: it only reads an existing cache (to count what is cached)
        cache = ResponseCache.open_existing(settings.cache_dir)
    else:
        cache = ResponseCache.open(settings.cache_dir)
    return Engine(llm, settings, cache)


__all__ = ["Engine", "Outcome", "check_response", "open_engine", "parse_json", "sampling_from"]

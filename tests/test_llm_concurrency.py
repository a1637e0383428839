"""AdaptiveLimit on its own: the ramp, slow start, AIMD and the refusal cap (the engine-level behaviour against a
server that serves K at a time is in test_llm_real_servers.py, section 5)."""

from __future__ import annotations

import asyncio
import time

from llm_server import TEST_API_KEY, FakeLLMServer
from test_llm_real_servers import ask, make_engine

from itkit.llm import concurrency
from itkit.llm.concurrency import OK, OVERLOAD, REFUSED, AdaptiveLimit


async def _hold(limit: AdaptiveLimit, n: int) -> list[asyncio.Task]:
    """``n`` requests that take a slot and keep it (cancelled by the caller)."""

    async def one() -> None:
        await limit.acquire()
        await asyncio.sleep(3600)

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0)
    return tasks


def test_the_ramp_doubles_to_the_ceiling_while_records_wait_and_nothing_is_refused():
    async def main() -> tuple[int, float, int]:
        limit = AdaptiveLimit(64)
        assert limit.size == concurrency.INITIAL_LIMIT
        started = time.monotonic()
        tasks = await _hold(limit, 100)
        while limit.in_flight < 64 and time.monotonic() - started < 2:
            await asyncio.sleep(0.001)
        took = time.monotonic() - started
        for t in tasks:
            t.cancel()
        return limit.size, took, limit.ramp_steps

    size, took, steps = asyncio.run(main())
    assert size == 64
    assert steps == 5  # 2, 4, 8, 16, 32, 64
    assert took < 20 * concurrency.RAMP_GRACE  # well before a 200 ms server would have answered one request


def test_the_ramp_does_not_grow_a_limit_nobody_waits_for():
    async def main() -> int:
        limit = AdaptiveLimit(64)
        tasks = await _hold(limit, 2)  # exactly the initial limit: nobody waits
        await asyncio.sleep(10 * concurrency.RAMP_GRACE)
        for t in tasks:
            t.cancel()
        return limit.size

    assert asyncio.run(main()) == concurrency.INITIAL_LIMIT


def test_a_refusal_ends_the_ramp_and_caps_the_limit_at_what_is_in_flight():
    async def main() -> tuple[int, int]:
        limit = AdaptiveLimit(64)
        tickets = [await limit.acquire(), await limit.acquire()]
        waiting = [asyncio.ensure_future(limit.acquire()) for _ in range(20)]
        await asyncio.sleep(3.5 * concurrency.RAMP_GRACE)  # a few doublings: 2 -> 4 -> 8 (-> 16)
        await asyncio.sleep(0)
        tickets += [w.result() for w in waiting if w.done()]
        grown = limit.size
        limit.release(tickets.pop(), REFUSED)
        await asyncio.sleep(5 * concurrency.RAMP_GRACE)
        for w in waiting:
            w.cancel()
        return grown, limit.size

    grown, after = asyncio.run(main())
    assert grown >= 8
    assert after == grown - 1  # what was still in flight; the ramp does not start again


def test_slow_start_counts_every_answer_of_a_request_in_flight_while_the_limit_was_full():
    async def main() -> float:
        limit = AdaptiveLimit(64, initial=4)
        limit._end_ramp()  # answer-based growth only
        first = [await limit.acquire() for _ in range(3)]  # none of these filled the limit
        fourth = await limit.acquire()
        waiter = asyncio.ensure_future(limit.acquire())  # demand beyond the limit
        await asyncio.sleep(0)
        for t in [*first, fourth]:
            limit.release(t, OK)
        await waiter
        return limit.limit

    assert asyncio.run(main()) == 4 + 4 * concurrency.SLOW_START_STEP


def test_an_overload_halves_the_limit_once_per_round():
    async def main() -> float:
        limit = AdaptiveLimit(64, initial=32)
        limit._end_ramp()
        tickets = [await limit.acquire() for _ in range(10)]
        for t in tickets:
            limit.release(t, OVERLOAD)  # one round: one decrease
        return limit.limit

    assert asyncio.run(main()) == 16


def test_against_a_healthy_server_the_engine_reaches_its_ceiling_before_the_first_answer():
    arrivals: list[float] = []

    def latency(body: dict) -> float:
        arrivals.append(time.monotonic())
        return 0.4

    with FakeLLMServer(api_key=TEST_API_KEY, latency=latency) as server:
        with make_engine(server, concurrency=24, max_retries=0) as engine:
            engine.run([f"ramp {i}" for i in range(48)], ask(engine))
            limiter = engine.endpoints[0].limiter
    assert limiter.size == 24 and limiter.decreases == 0 and len(arrivals) == 48
    assert arrivals[23] < arrivals[0] + 0.4  # the 24th request was sent before the first answer came back


def test_simplify_sends_its_first_requests_while_the_encoding_loads(runner, tmp_path, monkeypatch):
    import concurrent.futures
    import threading

    from conftest import invoke
    from test_llm_real_servers import LONG, write_alpaca

    from itkit.llm import engine as engine_module
    from itkit.tokens import TokenCounter

    loaded: list[float] = []

    def slow_preload(model=None, encoding=None):  # an encoding that takes 2 s to load
        future: concurrent.futures.Future = concurrent.futures.Future()

        def load() -> None:
            time.sleep(2.0)
            loaded.append(time.monotonic())
            future.set_result(TokenCounter("cl100k_base"))

        threading.Thread(target=load, daemon=True).start()
        return future

    monkeypatch.setattr(engine_module, "preload", slow_preload)
    arrivals: list[float] = []

    def latency(body: dict) -> float:
        arrivals.append(time.monotonic())
        return 0.0

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG + f" {i}" for i in range(6)])
    with FakeLLMServer(api_key=TEST_API_KEY, latency=latency) as server:
        server.reply = lambda body: "short"
        result = invoke(runner, "simplify", src, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
                        "--model", "tiny", "-j", "4")
    assert result.exit_code == 0, result.stderr
    assert loaded and arrivals and arrivals[0] < loaded[0] - 1.0  # sent long before the encoding was there
    assert len(arrivals) == 6 and len(out.read_text().splitlines()) == 6

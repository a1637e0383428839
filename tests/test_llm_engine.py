"""The engine, end to end through the real OpenAI SDK against the local fake server."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time

import pytest

from llm_server import TEST_API_KEY, Fault, FakeLLMServer, echo_text, fake_llm  # noqa: F401  (fixture)

from itkit.llm import engine as engine_module  # noqa: F401
from itkit.llm import ratelimits as ratelimits_module
from itkit.llm.base import ChatResponse, FatalLLMError, RecordFailure, ResponseRejected, Sampling
from itkit.llm.cache import ResponseCache, cache_path
from itkit.llm.engine import Engine, open_engine
from itkit.llm.errors import Interrupted
from itkit.llm.openai_client import OpenAIChatLLM
from itkit.llm.settings import LLMSettings
from itkit.tokens import TokenCounter

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(__import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "tiktoken"))


def make_engine(server: FakeLLMServer, *, cache: bool = True, backoff: float = 0.01, **options) -> Engine:
    values = {"api_key": TEST_API_KEY, "base_url": server.base_url, "timeout": 2.0, "max_retries": 3,
              "concurrency": 8, "quiet": True, **options}
    settings = LLMSettings.resolve(**values)
    llm = None if settings.dry_run else OpenAIChatLLM(settings)
    return Engine(llm, settings, ResponseCache.open(settings.cache_dir) if cache else None, backoff_base=backoff)


def ask(engine: Engine, **kwargs):
    async def worker(text: str):
        response = await engine.complete([{"role": "user", "content": text}], **kwargs)
        return response.text if isinstance(response, ChatResponse) else response

    return worker


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def spread_latency(body: dict) -> float:
    """0-40 ms, fixed per prompt: completions arrive out of submission order."""
    return (digest(body["messages"][-1]["content"]) % 40) / 1000


ITEMS = [f"question number {i}: what is {i} + {i}?" for i in range(120)]


def test_results_match_their_own_items_in_input_order(fake_llm):
    fake_llm.latency = spread_latency
    with make_engine(fake_llm, concurrency=16) as engine:
        outcomes = engine.run(ITEMS, ask(engine))
    assert [o.item for o in outcomes] == ITEMS
    assert [o.value for o in outcomes] == [echo_text(q) for q in ITEMS]
    arrival = [r.last_user for r in fake_llm.completed]
    assert sorted(arrival) == sorted(ITEMS) and arrival != ITEMS  # they did complete out of order
    assert 1 < fake_llm.max_in_flight <= 16


def test_concurrency_is_bounded(fake_llm):
    fake_llm.latency = 0.03
    with make_engine(fake_llm, concurrency=3) as engine:
        engine.run(ITEMS[:30], ask(engine))
    assert fake_llm.max_in_flight == 3


def test_every_item_accounted_for_under_a_mix_of_faults(fake_llm):
    kinds = ["429", "500", "503", "drop", "timeout", "malformed", "empty", "length", None, None]
    doomed = {q for q in ITEMS if digest(q) % 13 == 0}

    def faults(request, attempt):
        text = request.last_user
        if text in doomed:
            return "500"
        if attempt < 2:
            kind = kinds[(digest(text) + attempt) % len(kinds)]
            if kind == "429":
                return Fault("429", retry_after=0.05)
            if kind == "timeout":
                return Fault("timeout", hang=3)
            return kind
        return None

    fake_llm.faults = faults
    fake_llm.latency = spread_latency
    with make_engine(fake_llm, concurrency=16, timeout=0.5, no_adapt=True) as engine:  # accounting, not adapting
        outcomes = engine.run(ITEMS, ask(engine))
        stats = engine.stats
    assert len(outcomes) == len(ITEMS)
    failed = {o.item for o in outcomes if o.failure is not None}
    assert failed == doomed and doomed
    for o in outcomes:
        if o.item in doomed:
            # 4 attempts count (max_retries 3); one that met a dropped keep-alive connection while the
            # breaker was open does not, but it was sent, and the count says so
            assert re.fullmatch(
                r"HTTP 500 \(server said: The server had an error while processing your request\.\) "
                r"\(gave up after [4-6] attempts\)",
                o.failure.reason,
            ), o.failure.reason
        else:
            assert o.value == echo_text(o.item)
    assert stats.failures == len(doomed)
    assert stats.requests == len(fake_llm.chat_requests())
    for reason in ("HTTP 429 rate limited", "HTTP 500", "HTTP 503", "empty response"):
        assert stats.errors[reason] > 0, reason
    assert any("timed out" in r for r in stats.errors)
    assert any("connection error" in r for r in stats.errors)
    assert any("malformed" in r for r in stats.errors)
    assert any("length limit" in r for r in stats.errors)
    assert stats.retries == stats.requests - len(ITEMS)


def test_rejected_responses_give_up_with_reason_and_raw_text(fake_llm):
    fake_llm.faults = lambda req, attempt: "length" if "cut" in req.last_user else ("empty" if "void" in req.last_user else None)
    with make_engine(fake_llm, max_retries=2) as engine:
        cut, void, fine = engine.run(["cut me", "void me", "fine"], ask(engine))
    assert "cut off by the length limit" in cut.failure.reason and "3 attempts" in cut.failure.reason
    assert cut.failure.raw == echo_text("cut me")[: len(echo_text("cut me")) // 2]
    assert void.failure.reason.startswith("empty response")
    assert fine.value == echo_text("fine")
    per_prompt = [r.last_user for r in fake_llm.chat_requests()]
    assert per_prompt.count("cut me") == 3 and per_prompt.count("fine") == 1


def test_json_mode_sends_response_format_and_rejects_non_json(fake_llm):
    fake_llm.faults = lambda req, attempt: "not_json" if ("never" in req.last_user or attempt == 0) else None
    with make_engine(fake_llm, max_retries=1) as engine:
        good, bad = engine.run(["ok", "never json"], ask(engine, json_mode=True))
    assert good.value == '{"echo": "%s"}' % echo_text("ok")
    assert "not valid JSON" in bad.failure.reason
    assert bad.failure.raw.startswith("Sure!")
    assert all(r.body["response_format"] == {"type": "json_object"} for r in fake_llm.chat_requests())


def test_allow_length_hands_a_cut_off_response_to_parse(fake_llm):
    fake_llm.faults = lambda req, attempt: "length"

    def parse(response: ChatResponse) -> tuple[str, str | None]:
        return response.text, response.finish_reason

    with make_engine(fake_llm) as engine:
        [outcome] = engine.run(["cut"], ask(engine, parse=parse, allow_length=True))
    assert outcome.value == (echo_text("cut")[: len(echo_text("cut")) // 2], "length")
    assert len(fake_llm.chat_requests()) == 1


def test_parse_can_reject_a_response_to_have_it_retried(fake_llm):
    calls = []

    def parse(response: ChatResponse) -> str:
        calls.append(response.text)
        if len(calls) == 1:
            raise ResponseRejected("not what I wanted", response.text)
        return response.text.upper()

    with make_engine(fake_llm) as engine:
        [outcome] = engine.run(["x"], ask(engine, parse=parse))
    assert outcome.value == echo_text("x").upper()
    assert len(fake_llm.chat_requests()) == 2
    assert engine.stats.errors["not what I wanted"] == 1


def test_a_429_makes_every_request_cool_down(fake_llm):
    first = []

    def faults(request, attempt):
        if not first:
            first.append(request)
            return Fault("429", retry_after=0.6)
        return None

    fake_llm.faults = faults
    with make_engine(fake_llm, concurrency=4) as engine:
        outcomes = engine.run(ITEMS[:24], ask(engine))
    assert all(o.ok for o in outcomes)
    t429 = first[0].time
    after = [r.time - t429 for r in fake_llm.chat_requests() if r.time > t429]
    # requests already on their way when the 429 arrived may land at once; then nothing until Retry-After has passed
    assert not [t for t in after if 0.1 < t < 0.55]
    assert len([t for t in after if t >= 0.55]) >= 20
    assert engine.stats.rate_limited == 1


def test_invalid_key_stops_the_run_at_once(fake_llm):
    with make_engine(fake_llm, api_key="sk-wrong-key-0123456789abcdef", concurrency=8) as engine:
        with pytest.raises(FatalLLMError) as info:
            engine.run(ITEMS, ask(engine))
    message = str(info.value)
    assert "HTTP 401" in message and "API key was rejected" in message
    assert "sk-wrong" not in message and "cdef" not in message
    assert len(fake_llm.chat_requests()) <= 8


def test_unknown_model_is_fatal_with_a_hint(fake_llm):
    fake_llm.faults = lambda req, attempt: "404"
    with make_engine(fake_llm, model="no-such-model") as engine:
        with pytest.raises(FatalLLMError, match=r"HTTP 404: the model or endpoint was not found; check --model"):
            engine.run(ITEMS[:20], ask(engine))
    assert len(fake_llm.chat_requests()) <= 8


def test_exhausted_quota_is_fatal_not_retried(fake_llm):
    fake_llm.faults = lambda req, attempt: "quota"
    with make_engine(fake_llm, concurrency=1) as engine:
        with pytest.raises(FatalLLMError, match="quota is exhausted"):
            engine.run(ITEMS[:5], ask(engine))
    assert len(fake_llm.chat_requests()) == 1


def test_a_prompt_too_long_for_the_model_fails_only_its_record(fake_llm):
    fake_llm.faults = lambda req, attempt: "context_length" if "huge" in req.last_user else None
    with make_engine(fake_llm) as engine:
        a, huge, b = engine.run(["a", "huge prompt", "b"], ask(engine))
    assert a.ok and b.ok
    assert "longer than the model's context" in huge.failure.reason
    assert [r.last_user for r in fake_llm.chat_requests()].count("huge prompt") == 1


def test_rerun_sends_zero_requests_and_only_accepted_responses_are_cached(fake_llm):
    fake_llm.faults = lambda req, attempt: "empty" if attempt == 0 else None
    with make_engine(fake_llm) as engine:
        first = engine.run(ITEMS[:40], ask(engine))
    assert len(fake_llm.chat_requests()) == 80
    db = sqlite3.connect(cache_path())
    rows = db.execute("SELECT text FROM responses").fetchall()
    assert len(rows) == 40 and all(text.startswith("echo:") for (text,) in rows)
    fake_llm.reset()
    with make_engine(fake_llm) as engine:
        second = engine.run(ITEMS[:40], ask(engine))
        assert engine.stats.cache_hits == 40 and engine.stats.requests == 0
    assert fake_llm.requests == []
    assert [o.value for o in second] == [o.value for o in first]


def test_no_cache_sends_again(fake_llm):
    for _ in range(2):
        with make_engine(fake_llm, cache=False) as engine:
            engine.run(ITEMS[:5], ask(engine))
    assert len(fake_llm.chat_requests()) == 10
    assert not cache_path().exists()


def test_cache_key_covers_template_and_sampling(fake_llm):
    with make_engine(fake_llm) as engine:
        engine.run(["q"], ask(engine, template="t@1#aaa"))
        engine.run(["q"], ask(engine, template="t@1#aaa"))
        engine.run(["q"], ask(engine, template="t@2#bbb"))
        engine.run(["q"], ask(engine, template="t@1#aaa", sampling=Sampling(temperature=0.5)))
        engine.run(["q"], ask(engine, template="t@1#aaa", variant=1))
    assert len(fake_llm.chat_requests()) == 4


def test_user_options_override_the_call_sampling(fake_llm):
    with make_engine(fake_llm, temperature=0.9, seed=7) as engine:
        engine.run(["q"], ask(engine, sampling=Sampling(temperature=0.1, max_tokens=50, stop=("\n\n",))))
    body = fake_llm.chat_requests()[0].body
    assert body["temperature"] == 0.9 and body["seed"] == 7
    assert body["max_tokens"] == 50 and body["stop"] == ["\n\n"]
    assert "top_p" not in body


def test_request_rate_limit(fake_llm, monkeypatch):
    monkeypatch.setattr(ratelimits_module, "RATE_PERIOD", 0.5)  # --rpm 4 becomes 4 per half second
    with make_engine(fake_llm, rpm=4, concurrency=16) as engine:
        start = time.monotonic()
        engine.run(ITEMS[:16], ask(engine))
        elapsed = time.monotonic() - start
    # a burst of 4, then one every 0.125 s
    assert elapsed >= 12 * 0.125 * 0.9


def test_token_rate_limit_counts_prompt_and_max_tokens(fake_llm, monkeypatch):
    monkeypatch.setattr(ratelimits_module, "RATE_PERIOD", 0.5)
    counter = TokenCounter("cl100k_base")
    per_request = counter.count_messages([{"role": "user", "content": ITEMS[0]}]) + 100
    with make_engine(fake_llm, tpm=per_request * 3, max_tokens=100, concurrency=16) as engine:
        reserve = engine._tpm_reservation(engine.request_for([{"role": "user", "content": ITEMS[0]}]))
        assert reserve == per_request
        start = time.monotonic()
        engine.run([ITEMS[0].replace("0", str(i % 10)) + " " * (i // 10) for i in range(9)], ask(engine))
        elapsed = time.monotonic() - start
    # 3 at once, then 6 more at 6 per 0.5 s
    assert elapsed >= 6 * (0.5 / 3) * 0.8


def test_usage_missing_is_counted_with_tiktoken(fake_llm):
    fake_llm.usage = False
    with make_engine(fake_llm) as engine:
        engine.run(ITEMS[:3], ask(engine))
    counter = TokenCounter(engine.counter.name)
    assert engine.stats.tokens_estimated == 3
    assert engine.stats.prompt_tokens == sum(counter.count_messages([{"role": "user", "content": q}]) for q in ITEMS[:3])
    assert engine.stats.completion_tokens == sum(counter.count(echo_text(q)) for q in ITEMS[:3])


def test_cost_from_the_table_and_from_overrides(fake_llm):
    openai_run = Engine(None, LLMSettings.resolve(env={}, model="gpt-4o-mini", dry_run=True))
    assert openai_run.stats.price.input == 0.15 and openai_run.stats.price.output == 0.60
    with make_engine(fake_llm, model="gpt-4o-mini") as engine:  # the same name on a local server: not OpenAI's price
        engine.run(ITEMS[:4], ask(engine))
        assert engine.stats.cost is None
    with make_engine(fake_llm, model="local-llama", price_in=1.0, price_out=3.0, no_cache=True) as engine:
        engine.run(ITEMS[:4], ask(engine))
        stats = engine.stats
    assert stats.prompt_tokens > 0
    assert stats.cost == pytest.approx((stats.prompt_tokens * 1.0 + stats.completion_tokens * 3.0) / 1e6)
    with make_engine(fake_llm, model="local-llama") as engine:
        assert engine.stats.cost is None


def test_dry_run_sends_nothing_and_counts_tokens(fake_llm):
    with make_engine(fake_llm, max_tokens=64) as engine:  # one answer already cached
        engine.run(ITEMS[:1], ask(engine))
    fake_llm.reset()
    with make_engine(fake_llm, dry_run=True, max_tokens=64, price_in=0.15, price_out=0.6) as engine:
        outcomes = engine.run(ITEMS[:10], ask(engine))
        plan = engine.plan
    assert fake_llm.requests == []
    assert outcomes[0].ok and all(o.planned for o in outcomes[1:])
    counter = TokenCounter(engine.counter.name)
    assert plan.requests == 9 and plan.cached == 1
    assert plan.prompt_tokens == sum(counter.count_messages([{"role": "user", "content": q}]) for q in ITEMS[1:10])
    assert plan.completion_tokens == 9 * 64
    assert [s.messages[0]["content"] for s in plan.samples] == ITEMS[1:4]
    text = "\n".join(plan.describe(engine.stats.price, "gpt-4o-mini"))
    assert "estimated cost: $" in text and "nothing was sent" in text


def test_execute_runs_a_driver_until_it_has_enough(fake_llm):
    with make_engine(fake_llm) as engine:
        async def driver():
            kept: list[str] = []
            batch = 0
            while len(kept) < 10:
                prompts = [f"batch {batch} item {i}" for i in range(4)]
                outcomes = await engine.amap(prompts, ask(engine), advance=False)
                for o in outcomes:
                    if o.ok and len(kept) < 10:
                        kept.append(o.value)
                        engine.advance()
                batch += 1
            return kept

        kept = engine.execute(driver, total=10, description="driver")
    assert len(kept) == 10 and len(fake_llm.chat_requests()) == 12


def test_ctrl_c_stops_with_a_message_that_says_how_to_resume(fake_llm):
    with make_engine(fake_llm, concurrency=1) as engine:
        async def worker(text: str):
            if text == ITEMS[5]:
                raise KeyboardInterrupt
            return (await engine.complete([{"role": "user", "content": text}])).text

        with pytest.raises(Interrupted) as info:
            engine.run(ITEMS[:10], worker)
    assert info.value.exit_code == 130
    done = re.search(r"interrupted after (\d+) of 10 records", str(info.value))
    assert done and 4 <= int(done.group(1)) <= 5
    assert "re-run the same command to resume" in str(info.value)
    assert len(ResponseCache.open()) >= int(done.group(1))


def test_no_api_key_without_a_base_url_is_a_clear_error():
    settings = LLMSettings.resolve(env={})
    with pytest.raises(FatalLLMError, match="no API key: pass --api-key or set OPENAI_API_KEY"):
        open_engine(settings)


def test_the_key_is_never_stored(fake_llm):
    fake_llm.faults = lambda req, attempt: "500" if attempt == 0 else None
    with make_engine(fake_llm) as engine:
        engine.run(ITEMS[:10], ask(engine))
    for path in cache_path().parent.iterdir():
        assert TEST_API_KEY.encode() not in path.read_bytes(), path
    assert all(r.headers["authorization"] == f"Bearer {TEST_API_KEY}" for r in fake_llm.chat_requests())


def test_failures_raise_record_failure_from_complete(fake_llm):
    fake_llm.faults = lambda req, attempt: "500" if req.last_user == "bad" else None

    async def two(engine: Engine):
        good = await engine.complete([{"role": "user", "content": "good"}])
        try:
            await engine.complete([{"role": "user", "content": "bad"}])
        except RecordFailure as failure:
            return good.text, failure

    with make_engine(fake_llm, max_retries=1) as engine:
        text, failure = engine.execute(lambda: two(engine))
    assert text == echo_text("good")
    assert failure.reason == "HTTP 500 (server said: The server had an error while processing your request.) (gave up after 2 attempts)"
    assert len(fake_llm.chat_requests()) == 3


def test_an_endpoint_that_never_answers_stops_the_run(fake_llm):
    fake_llm.faults = lambda req, attempt: "503"
    with make_engine(fake_llm, max_retries=2, concurrency=2) as engine:
        with pytest.raises(FatalLLMError, match=r"HTTP 503 on every attempt and no request has succeeded yet; check --base-url"):
            engine.run(ITEMS, ask(engine))
    assert len(fake_llm.chat_requests()) <= 3 * 4  # at most the records in progress, each with its retries


def test_a_closed_port_stops_the_run_with_one_clear_message():
    settings = LLMSettings.resolve(env={}, base_url="http://127.0.0.1:9/v1", max_retries=1, quiet=True)
    with Engine(OpenAIChatLLM(settings), settings, None, backoff_base=0.01) as engine:
        with pytest.raises(FatalLLMError) as info:
            engine.run(ITEMS[:50], ask(engine))
    assert str(info.value).startswith("http://127.0.0.1:9/v1: connection error (ConnectionRefusedError) on every attempt")


def test_run_can_be_called_again_on_the_same_engine(fake_llm):
    with make_engine(fake_llm) as engine:
        engine.run(ITEMS[:3], ask(engine))
        again = engine.run(ITEMS[3:6], ask(engine))
    assert [o.value for o in again] == [echo_text(q) for q in ITEMS[3:6]]

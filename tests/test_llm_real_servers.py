"""The engine against the behaviours of real servers (llama.cpp, vLLM, TGI, Ollama, transformers serve, OpenAI).

Each test reproduces one behaviour with the local fake server (its error shapes, capacity, rate limits,
outages, slow answers) and drives the real SDK client, through the engine or the CLI.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import SHARED, invoke
from llm_server import (
    FASTAPI_DETAIL,
    LLAMA_CPP_CONTEXT,
    LLAMA_CPP_CONTEXT_500,
    OLLAMA_ERROR,
    PLAIN_TEXT,
    TEST_API_KEY,
    TGI_CONTEXT,
    VLLM_CONTEXT,
    Fault,
    FakeLLMServer,
    echo_text,
)

from itkit.errors import UsageError
from itkit.failures import FAILURE_KEY
from itkit.llm.base import ChatResponse, FatalLLMError, Sampling
from itkit.llm.cache import ResponseCache
from itkit.llm.engine import Engine, open_engine
from itkit.llm.errors import ServerUnreachable
from itkit.llm.openai_client import OpenAIChatLLM
from itkit.llm.ratelimits import RateLimits, reset_seconds
from itkit.llm.server_text import sanitize, server_message
from itkit.llm.settings import LLMSettings

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

ITEMS = [f"question {i}: what is {i} squared?" for i in range(30)]


def make_engine(servers, *, cache: bool = True, **options) -> Engine:
    servers = servers if isinstance(servers, list) else [servers]
    values = {"api_key": TEST_API_KEY, "base_url": [s.base_url for s in servers], "timeout": 5.0, "max_retries": 3,
              "concurrency": 8, "quiet": True, "model": "test-model", **options}
    settings = LLMSettings.resolve(**values)
    llms = [OpenAIChatLLM(settings, url) for url in settings.base_urls]
    return Engine(llms, settings, ResponseCache.open(settings.cache_dir) if cache else None, backoff_base=0.01)


def ask(engine: Engine, **kwargs):
    async def worker(text: str):
        response = await engine.complete([{"role": "user", "content": text}], **kwargs)
        return response.text if isinstance(response, ChatResponse) else response

    return worker


def write_alpaca(path: Path, outputs: list[str]) -> None:
    rows = [{"id": f"r{i}", "instruction": f"Explain item {i}.", "input": "", "output": text} for i, text in enumerate(outputs)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


LONG = " ".join(f"word{i}" for i in range(12))


def simplify(runner, server, *args):
    return invoke(runner, "simplify", *args, "--base-url", server.base_url, "--api-key", TEST_API_KEY, "--max-retries", "2",
                  "--model", "tiny")


# ---- 1. context overflow: that record only; the context size remembered ---------------------------------


@pytest.mark.parametrize("shape", [LLAMA_CPP_CONTEXT, LLAMA_CPP_CONTEXT_500, VLLM_CONTEXT, TGI_CONTEXT])
def test_a_prompt_beyond_the_context_fails_only_its_record_in_each_servers_words(shape):
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: shape if "overflow" in req.last_user else None
        with make_engine(server) as engine:
            outcomes = engine.run(ITEMS[:5] + ["overflow " + LONG] + ITEMS[5:10], ask(engine))
    failed = [o for o in outcomes if o.failure is not None]
    assert len(failed) == 1 and failed[0].item.startswith("overflow")
    assert "longer than the model's context" in failed[0].failure.reason
    assert "(gave up after 1 attempt)" in failed[0].failure.reason  # never retried
    assert all(o.value == echo_text(o.item) for o in outcomes if o.failure is None)


def test_the_context_size_the_server_names_fails_longer_prompts_before_sending():
    huge = " ".join(f"token{i}" for i in range(3000))  # far beyond the 1,024 tokens llama-server reports
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: LLAMA_CPP_CONTEXT if len(req.last_user) > 5000 else None
        with make_engine(server, concurrency=1, no_adapt=True) as engine:
            outcomes = engine.run(["short one", huge + " a", huge + " b", "short two"], ask(engine))
    assert [o.failure is None for o in outcomes] == [True, False, False, True]
    assert "not sent" in outcomes[2].failure.reason and "1024 tokens, as the server said" in outcomes[2].failure.reason
    assert sum(1 for r in server.chat_requests() if len(r.last_user) > 5000) == 1


def test_a_400_fails_its_record_once_the_endpoint_has_answered_and_stops_the_run_before():
    bad = Fault("raw", status=400, body=json.dumps({"error": {"message": "Invalid 'messages[0].content': bad"}}))
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: bad if "bad" in req.last_user else None
        with make_engine(server, concurrency=1) as engine:
            outcomes = engine.run(["good", "bad one", "good again"], ask(engine))
        assert [o.failure is None for o in outcomes] == [True, False, True]
        # 3: a single 400 is one attempt, and says so
        assert outcomes[1].failure.reason == (
            "HTTP 400 (server said: Invalid 'messages[0].content': bad) (gave up after 1 attempt)"
        )
        with make_engine(server, concurrency=1, cache=False) as engine:  # no answer yet: a wrong model or path
            with pytest.raises(FatalLLMError, match="HTTP 400: the server rejected the request"):
                engine.run(["bad first"], ask(engine))


# ---- 2. quote the server (and never print its escape codes) -----------------------------------------------


@pytest.mark.parametrize(
    "fault, said",
    [
        (FASTAPI_DETAIL, "Model 'other-model' is not loaded; this server is pinned to 'tiny-llama'."),
        (OLLAMA_ERROR, "invalid option provided: presence_penalty"),
        (Fault("raw", status=401, body=json.dumps({"detail": "Invalid API key"})), "Invalid API key"),
        (Fault("raw", status=404, body="404 page not found"), "404 page not found"),
    ],
)
def test_the_servers_own_message_is_quoted_whatever_its_shape(fault, said):
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: fault
        with make_engine(server) as engine:
            with pytest.raises(FatalLLMError) as info:
                engine.run(["q"], ask(engine))
    assert f"(server said: {said})" in str(info.value)


def test_5xx_bodies_and_plain_text_are_quoted_in_the_failures_file(runner, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG + f" {i}" for i in range(4)])
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: PLAIN_TEXT if "word11 2" in req.last_user else None
        result = simplify(runner, server, src, "-o", out)
    assert result.exit_code == 3, result.stderr
    row = json.loads(Path(f"{out}.failures.jsonl").read_text().splitlines()[0])
    failure = row[FAILURE_KEY]
    assert row["id"] == "r2"
    assert "HTTP 500 (server said: Internal Server Error: the worker died)" in failure["reason"]
    assert "gave up after 3 attempts" in failure["reason"]


def test_escape_codes_from_a_server_never_reach_the_terminal_or_the_files(runner, tmp_path):
    nasty = "\x1b[2J\x1b[31mboom\x1b[0m\x07 \x1b]0;pwned\x07 done\r\n\x00"
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG])
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: Fault("raw", status=403, body=json.dumps({"error": {"message": nasty}}))
        result = simplify(runner, server, src, "-o", out)
    assert result.exit_code == 1
    assert "boom done" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\x00" not in result.stderr
    assert sanitize(nasty) == "boom done"
    assert server_message(b"<html><body><h1>502 Bad Gateway</h1></body></html>") == "502 Bad Gateway"
    assert len(server_message("x" * 5000)) == 300


# ---- 4. an outage pauses the run; it does not fail the records --------------------------------------------


def test_a_server_that_stops_mid_run_and_comes_back_fails_no_record():
    server = FakeLLMServer(api_key=TEST_API_KEY, latency=0.02).start()
    port = server.port
    items = [f"outage item {i}" for i in range(60)]

    def outage() -> None:
        while len(server.completed) < 15:
            time.sleep(0.01)
        server.stop()
        time.sleep(2.5)
        server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        with make_engine(server, concurrency=4, max_retries=2, no_adapt=True) as engine:
            engine._backoff = (0.25, 2.0)
            outcomes = engine.run(items, ask(engine))
            trips = engine.endpoints[0].breaker.trips
    finally:
        thread.join()
        server.stop()
    assert server.port == port
    assert all(o.failure is None for o in outcomes), [o.failure.reason for o in outcomes if o.failure][:3]
    assert [o.value for o in outcomes] == [echo_text(i) for i in items]
    assert trips >= 1


def test_an_outage_longer_than_max_outage_stops_the_run_leaving_the_rest_unattempted(runner, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG + f" {i}" for i in range(40)])
    server = FakeLLMServer(api_key=TEST_API_KEY, latency=0.02).start()

    def outage() -> None:
        while len(server.completed) < 10:
            time.sleep(0.01)
        server.stop()

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        started = time.monotonic()
        result = invoke(runner, "simplify", src, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
                        "--model", "tiny", "-j", "2", "--max-outage", "2")
        elapsed = time.monotonic() - started
    finally:
        thread.join()
        server.stop()
    assert result.exit_code == 1, result.stderr
    assert "the server has not answered since" in result.stderr and "--max-outage 2" in result.stderr
    assert "re-run the same command" in result.stderr
    assert not out.exists() and not Path(f"{out}.failures.jsonl").exists()
    assert elapsed < 30


# ---- 5. adaptive concurrency ---------------------------------------------------------------------------


def test_a_server_that_serves_two_at_a_time_gets_about_two_and_few_errors():
    with FakeLLMServer(api_key=TEST_API_KEY, latency=0.05, capacity=2, overflow="503") as server:
        with make_engine(server, concurrency=16, max_retries=6) as engine:
            outcomes = engine.run([f"cap {i}" for i in range(80)], ask(engine))
            limit = engine.endpoints[0].limiter
            status = engine.status()
    assert all(o.failure is None for o in outcomes)
    assert server.refused <= 0.15 * len(server.chat_requests())
    assert 1 <= limit.size <= 3 and "j " in status


def test_no_adapt_keeps_the_concurrency_fixed():
    with FakeLLMServer(api_key=TEST_API_KEY, latency=0.05) as server:
        with make_engine(server, concurrency=6, no_adapt=True) as engine:
            engine.run([f"fixed {i}" for i in range(30)], ask(engine))
    assert server.max_in_flight == 6


# ---- 6. time limits that bound ---------------------------------------------------------------------------


def test_timeout_bounds_the_whole_attempt_not_the_gap_between_bytes():
    trickle = Fault("trickle", pieces=10, gap=0.3)  # a valid answer over 3 s, 0.3 s between pieces
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: trickle if attempt == 0 else None
        with make_engine(server, timeout=1.0, max_retries=1) as engine:
            started = time.monotonic()
            outcomes = engine.run(["slow"], ask(engine))
            elapsed = time.monotonic() - started
            errors = dict(engine.stats.errors)
    assert outcomes[0].value == echo_text("slow")
    assert any("timed out after 1 s" in e for e in errors) and elapsed < 2.5


def test_a_port_that_never_accepts_fails_after_the_connect_timeout():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue: further connects hang in SYN
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        settings = LLMSettings.resolve(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", model="m", quiet=True,
                                       connect_timeout=0.5, timeout=60, max_retries=0, no_cache=True)
        engine = Engine(OpenAIChatLLM(settings), settings)
        started = time.monotonic()
        with pytest.raises(FatalLLMError, match="no request has succeeded yet") as info:
            engine.run(["q"], ask(engine))
        assert "could not connect within 0.5 s" in str(info.value)
        assert time.monotonic() - started < 10
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_a_huge_retry_after_is_capped_and_shown():
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: Fault("429", retry_after=86400) if attempt == 0 else None
        with make_engine(server, max_retry_after=0.3) as engine:
            started = time.monotonic()
            outcomes = engine.run(["patient"], ask(engine))
            assert time.monotonic() - started < 5
    assert outcomes[0].value == echo_text("patient")
    limits = RateLimits(None, None, max_retry_after=30)
    assert limits.rate_limited(86400) == 30
    assert limits.status().startswith("rate limited (429): waiting 3")
    assert reset_seconds("6m0s") == 360 and reset_seconds("1.5s") == 1.5 and reset_seconds("250ms") == 0.25


# ---- 7. a retry after a rejected answer can change the answer ----------------------------------------------


def test_retries_after_a_cut_off_answer_change_seed_temperature_and_max_tokens():
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        server.faults = lambda req, attempt: "length" if attempt < 2 else None
        with make_engine(server, max_retries=3) as engine:
            engine.run(["cut"], ask(engine, sampling=Sampling(temperature=0, max_tokens=50)))
    bodies = [r.body for r in server.chat_requests()]
    assert len(bodies) == 3
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == 3  # never the same request twice
    assert [b["max_tokens"] for b in bodies] == [50, 100, 200]
    assert bodies[0]["temperature"] == 0 and bodies[1]["temperature"] > 0 and bodies[1]["seed"] != bodies[2]["seed"]


# ---- 8. identical requests are one request ----------------------------------------------------------------


def test_identical_requests_in_flight_are_sent_once_and_answer_both():
    counter = {"n": 0}

    def reply(body: dict) -> str:
        counter["n"] += 1
        return f"answer {counter['n']}"  # a sampling server: two requests would get two answers

    with FakeLLMServer(api_key=TEST_API_KEY, reply=reply, latency=0.05) as server:
        with make_engine(server) as engine:
            first = engine.run(["same", "other", "same"], ask(engine))
            shared = engine.stats.coalesced
        with make_engine(server) as engine:
            again = engine.run(["same", "other", "same"], ask(engine))
    assert len(server.chat_requests()) == 2 and shared == 1
    assert first[0].value == first[2].value
    assert [o.value for o in again] == [o.value for o in first]


# ---- 9. the cache is the endpoint's; the model is the server's ---------------------------------------------


def test_the_cache_never_serves_another_servers_answers(tmp_path):
    with FakeLLMServer(api_key=TEST_API_KEY) as first:
        with make_engine(first) as engine:
            engine.run(ITEMS[:3], ask(engine))
    with FakeLLMServer(api_key=TEST_API_KEY) as second:
        with make_engine(second) as engine:
            engine.run(ITEMS[:3], ask(engine))
            assert engine.stats.cache_hits == 0
        assert len(second.chat_requests()) == 3
        with make_engine(second, cache_endpoint="mirrors") as engine:
            engine.run(ITEMS[:3], ask(engine))
        with FakeLLMServer(api_key=TEST_API_KEY) as third:
            with make_engine(third, cache_endpoint="mirrors") as engine:  # the user says: one model, one cache
                engine.run(ITEMS[:3], ask(engine))
                assert engine.stats.cache_hits == 3
            assert third.chat_requests() == []


def test_without_model_a_local_server_is_asked_for_its_own_and_never_priced_as_openai(runner, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG])
    with FakeLLMServer(api_key=TEST_API_KEY, models=["llama-3.2-1b-instruct"]) as server:
        result = invoke(runner, "simplify", src, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY)
        assert result.exit_code == 0, result.stderr
        assert server.chat_requests()[0].body["model"] == "llama-3.2-1b-instruct"
        summary = json.loads(Path(f"{out}.summary.json").read_text())
        assert summary["settings"]["model"] == "llama-3.2-1b-instruct" and summary["engine"]["cost_usd"] is None
        assert "gpt-4o-mini" not in out.read_text() + Path(f"{out}.summary.json").read_text()
        server.models = ["qwen2.5-7b", "llama-3.1-8b"]
        result = invoke(runner, "simplify", src, "-o", tmp_path / "b.jsonl", "--base-url", server.base_url,
                        "--api-key", TEST_API_KEY)
        assert result.exit_code == 1
        assert "serves several models (qwen2.5-7b, llama-3.1-8b); choose one with --model" in result.stderr


# ---- 11. several servers at once ----------------------------------------------------------------------------


def test_several_base_urls_share_the_work_and_one_going_down_fails_nothing():
    with FakeLLMServer(api_key=TEST_API_KEY, latency=0.03) as a, FakeLLMServer(api_key=TEST_API_KEY, latency=0.03) as b:
        items = [f"spread {i}" for i in range(60)]

        def outage() -> None:
            while len(a.completed) < 10:
                time.sleep(0.01)
            a.stop()

        thread = threading.Thread(target=outage)
        thread.start()
        with make_engine([a, b], concurrency=4, max_retries=3) as engine:
            outcomes = engine.run(items, ask(engine))
            assert len(engine.endpoints) == 2
        thread.join()
    assert all(o.failure is None for o in outcomes)
    assert len(a.completed) >= 10 and len(b.completed) >= 30
    assert len(a.completed) + len(b.completed) == 60


def test_repeated_base_url_options_become_endpoints():
    settings = LLMSettings.resolve(env={}, base_url=["http://a:8000/v1", "http://b:8000/v1/"], model="m")
    assert settings.base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    assert settings.cache_scope == "http://a:8000/v1 http://b:8000/v1"


# ---- 13. limits learned from the server ------------------------------------------------------------------


def test_rate_limits_are_learned_from_x_ratelimit_headers():
    with FakeLLMServer(api_key=TEST_API_KEY, rpm=600) as server:
        with make_engine(server, concurrency=8) as engine:
            outcomes = engine.run([f"limited {i}" for i in range(20)], ask(engine))
            limits = engine.endpoints[0].limits
    assert all(o.failure is None for o in outcomes)
    assert limits.rpm == 600 and limits.learned
    with FakeLLMServer(api_key=TEST_API_KEY, rpm=600) as server:
        with make_engine(server, rpm=100) as engine:  # an explicit option wins
            engine.run(["one"], ask(engine))
            assert engine.endpoints[0].limits.rpm == 100


def test_a_bucket_learned_from_headers_starts_in_step_with_what_the_server_counted(monkeypatch):
    import itkit.llm.ratelimits as ratelimits

    monkeypatch.setattr(ratelimits, "RATE_PERIOD", 2.0)  # the server's "minute" too
    with FakeLLMServer(api_key=TEST_API_KEY, rpm=40, period=2.0, latency=0.05) as server:
        with make_engine(server, concurrency=32, max_retries=6) as engine:
            outcomes = engine.run([f"burst {i}" for i in range(60)], ask(engine))
            rate_limited = engine.stats.rate_limited
    assert all(o.failure is None for o in outcomes)
    assert rate_limited <= 2  # a first burst, then at the server's pace: not a 429 for every request in flight


def test_open_engine_makes_one_client_per_base_url(tmp_path):
    settings = LLMSettings.resolve(env={}, api_key="k", base_url=["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"],
                                   model="m", cache_dir=str(tmp_path))
    with open_engine(settings) as engine:
        assert [e.name for e in engine.endpoints] == ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
    with pytest.raises(ServerUnreachable.__mro__[1]):  # FatalLLMError: no key, no endpoint
        open_engine(LLMSettings.resolve(env={}, model="m", cache_dir=str(tmp_path)))


# ---- 12. parameters a server rejects or ignores ---------------------------------------------------------


def test_parameters_can_be_dropped_or_renamed_for_one_endpoint_only(runner, tmp_path):
    """vLLM on one port and `transformers serve` (which ignores presence_penalty) on another: NAME@URL scopes it."""
    with FakeLLMServer(api_key=TEST_API_KEY) as vllm, FakeLLMServer(api_key=TEST_API_KEY) as hf:
        sampling = Sampling(temperature=0.5, max_tokens=40, presence_penalty=1.0)
        options = {"drop_params": [f"presence_penalty@{hf.base_url}/"], "rename_params": [f"max_tokens=max_completion_tokens@{hf.base_url.replace('http://', 'HTTP://')}"]}
        with make_engine([vllm, hf], cache=False, **options) as engine:
            engine.run([f"record {i}" for i in range(16)], ask(engine, sampling=sampling))
        assert vllm.chat_requests() and hf.chat_requests()
        assert all(r.body["presence_penalty"] == 1.0 and r.body["max_tokens"] == 40 for r in vllm.chat_requests())
        assert all("presence_penalty" not in r.body and r.body["max_completion_tokens"] == 40 for r in hf.chat_requests())
        with pytest.raises(UsageError, match="names an endpoint this run does not use") as refused:
            make_engine(vllm, drop_params=["presence_penalty@http://user:hunter2@127.0.0.1:1/v1"])
        assert "hunter2" not in str(refused.value) and TEST_API_KEY not in str(refused.value)
        with pytest.raises(UsageError, match="give OLD=NEW or OLD=NEW@URL"):
            make_engine(vllm, rename_params=[f"max_tokens@{vllm.base_url}"])
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG])
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        result = simplify(runner, server, src, "-o", out, "--drop-param", f"temperature@{server.base_url}")
        assert result.exit_code == 0, result.stderr
        assert all("temperature" not in r.body for r in server.chat_requests())


def test_parameters_can_be_dropped_or_renamed_for_a_server_and_the_cache_knows(runner, tmp_path):
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        sampling = Sampling(temperature=0.5, max_tokens=40, presence_penalty=1.0)
        with make_engine(server) as engine:
            engine.run(["plain"], ask(engine, sampling=sampling))
        with make_engine(server, drop_params=["presence_penalty"], rename_params=["max_tokens=max_completion_tokens"]) as engine:
            engine.run(["plain"], ask(engine, sampling=sampling))
            assert engine.stats.cache_hits == 0  # another request was sent: not the first one's answer
        first, second = (r.body for r in server.chat_requests())
    assert first["presence_penalty"] == 1.0 and first["max_tokens"] == 40
    assert "presence_penalty" not in second and "max_tokens" not in second and second["max_completion_tokens"] == 40
    with pytest.raises(Exception, match="give OLD=NEW"):
        LLMSettings.resolve(env={}, rename_params=["max_tokens"])
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_alpaca(src, [LONG])
    with FakeLLMServer(api_key=TEST_API_KEY) as server:
        result = simplify(runner, server, src, "-o", out, "--drop-param", "temperature", "--drop-param", "top_p")
        assert result.exit_code == 0, result.stderr
        assert all("temperature" not in r.body for r in server.chat_requests())

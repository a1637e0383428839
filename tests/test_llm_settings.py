"""Settings, price table, cache keys, the shared CLI options and error mapping details."""

from __future__ import annotations

import inspect
from typing import Annotated

import pytest
import typer

from itkit.cli.llm_options import llm_options
from itkit.errors import UsageError
from itkit.llm.base import ChatRequest, Sampling
from itkit.llm.cache import request_key
from itkit.llm.engine import parse_json, sampling_from
from itkit.llm.base import ResponseRejected
from itkit.llm.server_errors import retry_after_seconds
from itkit.llm.pricing import price_for
from itkit.llm.report import sidecar_path
from itkit.llm.secrets import mask_key, mask_server_text, mask_url, mask_urls
from itkit.llm.settings import LLMSettings

KEY = "sk-proj-abcdefghijklmnop1234"


def test_options_win_over_environment_which_wins_over_defaults():
    env = {"OPENAI_API_KEY": "sk-env-key-000000000000", "OPENAI_BASE_URL": "http://env:1/v1"}
    from_env = LLMSettings.resolve(env=env)
    assert from_env.key_value() == "sk-env-key-000000000000" and from_env.base_url == "http://env:1/v1"
    given = LLMSettings.resolve(env=env, api_key=KEY, base_url="http://opt:2/v1/")
    assert given.key_value() == KEY and given.base_url == "http://opt:2/v1"
    default = LLMSettings.resolve(env={})
    assert default.api_key is None and default.base_url is None and default.model == "gpt-4o-mini"
    assert default.concurrency == 64 and default.max_retries == 6 and not default.no_adapt


def test_the_key_is_redacted_everywhere():
    settings = LLMSettings.resolve(env={}, api_key=KEY)
    for text in (repr(settings), str(settings), str(settings.redacted()), settings.model_dump_json()):
        assert KEY not in text
    assert settings.redacted()["api_key"] == "**********"
    assert LLMSettings.resolve(env={}).redacted()["api_key"] is None
    proxied = LLMSettings.resolve(env={}, base_url="https://me:s3cret@gateway.example/v1")
    assert proxied.redacted()["base_url"] == "https://me:**********@gateway.example/v1"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"concurrency": 0}, "--concurrency: Input should be greater than or equal to 1"),
        ({"temperature": 3.0}, "--temperature: Input should be less than or equal to 2"),
        ({"base_url": "localhost:8000"}, "--base-url: must start with http:// or https://"),
        ({"limit": 0}, "--limit: Input should be greater than or equal to 1"),
        ({"model": "  "}, "--model: must not be empty"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_option(options, message):
    with pytest.raises(UsageError) as info:
        LLMSettings.resolve(env={}, **options)
    assert str(info.value).startswith(message)


def test_server_messages_lose_the_key_and_its_fragments():
    text = f"key {KEY} or {KEY[:8]}... or ...{KEY[-8:]}"
    assert KEY[:8] not in mask_server_text(text, KEY) and KEY[-8:] not in mask_server_text(text, KEY)
    assert mask_server_text("nothing secret", KEY) == "nothing secret"


def test_only_the_exact_key_is_masked_in_files_and_never_a_short_one():
    assert mask_key(f"a {KEY} b", KEY) == "a ********** b"
    assert mask_key(f"a {KEY[:8]} b", KEY) == f"a {KEY[:8]} b"  # a fragment in data is data
    assert mask_key("max_tokens: explain x", "x") == "max_tokens: explain x"
    assert mask_key("the key is 1234567", "1234567") == "the key is 1234567"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("HTTP://user:pass@host:8000/v1", "HTTP://user:**********@host:8000/v1"),
        ("https://TOKEN@host/v1", "https://**********@host/v1"),
        ("https://host/v1?api_key=abc&x=1", "https://host/v1?api_key=**********&x=1"),
        ("https://host/v1?Token=abc", "https://host/v1?Token=**********"),
        ("https://host/v1?model=m", "https://host/v1?model=m"),
    ],
)
def test_every_url_shown_loses_its_credentials(url, shown):
    assert mask_url(url) == shown
    assert mask_urls(f"not found: {url} (see docs)") == f"not found: {shown} (see docs)"


def test_prices():
    assert price_for("gpt-4o-mini").input == 0.15
    assert price_for("gpt-4o-mini-2024-07-18").output == 0.60
    assert price_for("gpt-4o-2024-08-06").input == 2.50
    assert price_for("openai/gpt-4.1-nano").input == 0.10
    assert price_for("llama3.1:8b") is None
    assert price_for("llama3.1:8b", 0.2, 0.4).cost(1_000_000, 500_000) == pytest.approx(0.4)
    mixed = price_for("gpt-4o", price_out=1.0)
    assert (mixed.input, mixed.output) == (2.50, 1.0)


def test_cache_key_covers_everything_that_shapes_the_answer():
    base = ChatRequest("m", ({"role": "user", "content": "hi"},), Sampling(temperature=0.0), False, "t#1")
    key = request_key(base)
    assert key == request_key(ChatRequest("m", ({"role": "user", "content": "hi"},), Sampling(temperature=0.0), False, "t#1"))
    variants = [
        ChatRequest("m2", base.messages, base.sampling, False, "t#1"),
        ChatRequest("m", ({"role": "user", "content": "hi!"},), base.sampling, False, "t#1"),
        ChatRequest("m", base.messages, Sampling(temperature=0.5), False, "t#1"),
        ChatRequest("m", base.messages, Sampling(temperature=0.0, max_tokens=5), False, "t#1"),
        ChatRequest("m", base.messages, base.sampling, True, "t#1"),
        ChatRequest("m", base.messages, base.sampling, False, "t#2"),
    ]
    keys = {request_key(v) for v in variants} | {request_key(base, variant=1)}
    assert key not in keys and len(keys) == len(variants) + 1


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_parse_json_and_sampling_from_template_data():
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(ResponseRejected, match="not valid JSON"):
        parse_json("{'a': 1}")
    assert sampling_from({"temperature": 0, "stop": "\n"}) == Sampling(temperature=0, stop=("\n",))
    with pytest.raises(UsageError, match="unknown sampling parameter"):
        sampling_from({"temprature": 0}, "x.yaml")


def test_sidecar_paths():
    assert sidecar_path("out/data.jsonl", ".summary.json", "simplify") == "out/data.jsonl.summary.json"
    assert sidecar_path("-", ".failures.jsonl", "simplify") == "itkit-simplify.failures.jsonl"


def test_llm_options_adds_every_engine_option_once():
    @llm_options
    def command(src: Annotated[str, typer.Argument()], *, settings: LLMSettings, prompts_dir: str | None) -> int:
        return 0

    names = set()
    for param in inspect.signature(command).parameters.values():
        for info in getattr(param.annotation, "__metadata__", ()):
            names.update(d for d in getattr(info, "param_decls", ()) or () if d.startswith("--"))
            if isinstance(info.default, str) and info.default.startswith("--"):
                names.add(info.default)
    expected = {
        "--model", "--base-url", "--api-key", "--temperature", "--top-p", "--max-tokens", "--seed", "--timeout",
        "--max-retries", "--concurrency", "--rpm", "--tpm", "--cache-dir", "--no-cache", "--price-in",
        "--price-out", "--dry-run", "--limit", "--quiet", "--prompts-dir", "--connect-timeout", "--max-outage",
        "--max-retry-after", "--no-adapt", "--cache-endpoint", "--drop-param", "--rename-param",
        "--batch", "--wait", "--batch-retry", "--batch-file", "--batch-results", "--max-cost", "--batch-poll",
        "--batch-max-requests", "--batch-max-bytes", "--batch-discount", "--batch-window",
    }
    assert names == expected


def test_llm_options_refuses_a_clashing_command_option():
    with pytest.raises(TypeError, match="--seed is already an LLM engine option"):

        @llm_options
        def command(seed: Annotated[int, typer.Option("--seed")] = 0, *, settings: LLMSettings, prompts_dir: str | None) -> int:
            return 0


def test_progress_shows_rate_tokens_cost_and_errors_only_on_a_terminal():
    import io

    from rich.console import Console

    from itkit.llm.pricing import price_for
    from itkit.llm.progress import RunProgress
    from itkit.llm.stats import EngineStats

    stats = EngineStats(price=price_for("gpt-4o-mini"), requests=40, prompt_tokens=10000, completion_tokens=2000)
    stats.errors["HTTP 500"] += 2
    stats.begin()
    terminal = Console(file=io.StringIO(), force_terminal=True, width=160)
    progress = RunProgress(stats, 100, "simplify", enabled=True, console=terminal)
    progress.start()
    progress.advance(40)
    progress.stop()
    shown = terminal.file.getvalue()
    for part in ("simplify", "40/100", "req/s", "12,000 tok", "$0.0027", "2 err"):
        assert part in shown, part
    assert not RunProgress(stats, 100, "x", enabled=False, console=terminal).enabled
    assert not RunProgress(stats, 100, "x", enabled=True, console=Console(file=io.StringIO())).enabled


def test_progress_writes_cost_n_a_when_the_price_is_unknown():
    import io

    from rich.console import Console

    from itkit.llm.progress import RunProgress
    from itkit.llm.stats import EngineStats

    stats = EngineStats(price=None, requests=3, prompt_tokens=100, completion_tokens=20)
    stats.begin()
    terminal = Console(file=io.StringIO(), force_terminal=True, width=160)
    progress = RunProgress(stats, 10, "orca", enabled=True, console=terminal)
    progress.start()
    progress.advance(3)
    progress.stop()
    shown = terminal.file.getvalue()
    assert "cost n/a" in shown and "$?" not in shown

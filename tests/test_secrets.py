"""Secrets are masked where they can appear and nowhere else; bad keys, URLs, templates and YAML fail cleanly.

Every test drives the CLI against the local OpenAI-compatible server and asserts on the files left and the exit code.
"""

from __future__ import annotations

import base64
import json
import os
import re
import textwrap
import time
from pathlib import Path

import pytest

from conftest import SAMPLES, SHARED, invoke
from llm_server import Fault, FakeLLMServer

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))

ANSWER = "explain: x marks the spot, max x"


def records(path: Path, n: int = 4) -> Path:
    path.write_text(
        "".join(json.dumps({"instruction": f"task {i} x", "output": "an extra long answer x " * 5}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return path


def simplify(runner, src: Path, out: Path, base_url: str, *args: str, env: dict | None = None):
    from itkit.cli import app

    argv = ["simplify", str(src), "-o", str(out), "--base-url", base_url, "--max-retries", "0", "--no-cache", *args]
    return runner.invoke(app, argv, env=env, catch_exceptions=False)


def test_a_short_dummy_key_masks_nothing_in_the_summary_and_failures(runner, tmp_path):
    src = records(tmp_path / "in.jsonl")
    outputs = {}
    with FakeLLMServer(api_key=None, reply=lambda body: ANSWER) as server:
        # every other record's answer is cut off: it fails with its raw response in the failures file
        server.faults = lambda req, attempt: Fault("length") if "task 1" in req.body["messages"][-1]["content"] else None
        for key in ("x", "y"):
            out = tmp_path / f"out-{key}.jsonl"
            result = simplify(runner, src, out, server.base_url, "--api-key", key, "--max-tokens", "50")
            assert result.exit_code == 3, result.stderr
            outputs[key] = out
    failures = {k: Path(f"{o}.failures.jsonl").read_bytes() for k, o in outputs.items()}
    assert failures["x"] == failures["y"], "a 1-character key must not alter the failures file"
    assert b"**********" not in failures["x"]
    summary_text = Path(f"{outputs['x']}.summary.json").read_text()
    assert '"max_tokens": 50' in summary_text and "ma*" not in summary_text
    assert summary_text.count("**********") == 1  # the settings' api_key field, nothing else
    assert json.loads(summary_text)["settings"]["api_key"] == "**********"
    assert "x marks" in Path(outputs["x"]).read_text()


def test_a_long_key_echoed_by_the_server_is_masked_in_its_error(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    key = "sk-live-0123456789abcdefWXYZ"
    with FakeLLMServer(api_key="sk-other-key-entirely-000") as server:
        result = simplify(runner, src, tmp_path / "out.jsonl", server.base_url, "--api-key", key)
    assert result.exit_code == 1
    assert key not in result.stderr and key[:8] not in result.stderr and key[-8:] not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    with FakeLLMServer(api_key=None, reply=lambda body: "short") as server:
        url = server.base_url.replace("http://", "HTTP://me:p%40ss-w0rd-secret@")
        result = simplify(runner, src, out, url)
        assert result.exit_code == 0, result.stderr
        sent = {r.headers.get("authorization") for r in server.requests}
    assert sent == {"Basic " + base64.b64encode(b"me:p@ss-w0rd-secret").decode()}
    assert len(out.read_text().splitlines()) == 2
    summary = Path(f"{out}.summary.json").read_text()
    assert "p%40ss" not in summary and "w0rd" not in summary
    assert json.loads(summary)["settings"]["base_url"].startswith("http://me:**********@127.0.0.1:")


def test_url_credentials_and_a_key_together_are_refused(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    with FakeLLMServer(api_key=None) as server:
        url = server.base_url.replace("http://", "http://me:hunter2hunter2@")
        result = simplify(runner, src, tmp_path / "out.jsonl", url, "--api-key", "sk-1234567890abcdef")
        assert not server.requests
    assert result.exit_code == 1
    assert "internal error" not in result.stderr and "hunter2" not in result.stderr
    assert "one Authorization header" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "env, option, named",
    [
        ({"OPENAI_BASE_URL": "htps://me:topsecret99@127.0.0.1:9/v1"}, [], "OPENAI_BASE_URL"),
        ({}, ["--base-url", "ftp://me:topsecret99@127.0.0.1:9/v1"], "--base-url"),
        ({}, ["--base-url", "http://127.0.0.1:port/v1?api_key=topsecret99"], "--base-url"),
    ],
)
def test_a_bad_base_url_blames_where_it_came_from_without_its_secret(runner, tmp_path, env, option, named):
    from itkit.cli import app

    src = records(tmp_path / "in.jsonl", 1)
    result = runner.invoke(app, ["simplify", str(src), "-o", str(tmp_path / "o.jsonl"), *option], env=env)
    assert result.exit_code == 2, result.stderr
    line = result.stderr.strip()
    assert line.startswith(f"itkit: error: {named}: ") and "topsecret99" not in line, line
    assert not (tmp_path / "o.jsonl").exists()


def test_a_query_string_key_is_masked_in_a_404(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    with FakeLLMServer(api_key=None) as server:
        url = server.base_url.replace("/v1", "/nowhere?api_key=topsecret99")
        result = simplify(runner, src, tmp_path / "out.jsonl", url)
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr and "topsecret99" not in result.stderr
    assert "api_key=**********" in result.stderr


@pytest.mark.parametrize("key, why", [("clé-0123456789", "non-ASCII"), ("sk-abc\nsk-def", "several lines"), ("sk\t123", "control")])
def test_an_unsendable_api_key_is_a_usage_error(runner, tmp_path, key, why):
    src = records(tmp_path / "in.jsonl", 1)
    with FakeLLMServer(api_key=None) as server:
        result = simplify(runner, src, tmp_path / "out.jsonl", server.base_url, "--api-key", key)
        assert not server.requests
    assert result.exit_code == 2
    assert "--api-key" in result.stderr and why in result.stderr and "internal error" not in result.stderr
    assert key not in result.stderr


@pytest.mark.parametrize(
    "sampling, field",
    [
        ("{stop: 5}", "sampling.stop"),
        ("{temperature: .nan}", "sampling.temperature"),
        ('{temperature: "hot"}', "sampling.temperature"),
        ("{max_tokens: true}", "sampling.max_tokens"),
        ("{top_p: .inf}", "sampling.top_p"),
    ],
)
def test_a_template_with_wrong_sampling_types_fails_before_any_request(runner, tmp_path, sampling, field):
    src = records(tmp_path / "in.jsonl", 1)
    template = (Path(__file__).parent.parent / "prompts" / "simplify" / "simplify.yaml").read_text()
    template = re.sub(r"^sampling:\n(  .*\n)+", f"sampling: {sampling}\n", template, flags=re.M)
    (tmp_path / "p" / "simplify").mkdir(parents=True)
    (tmp_path / "p" / "simplify" / "simplify.yaml").write_text(template)
    with FakeLLMServer(api_key=None) as server:
        result = simplify(runner, src, tmp_path / "out.jsonl", server.base_url, "--prompts-dir", tmp_path / "p")
        assert not server.requests
    assert result.exit_code == 1
    assert f"simplify.yaml: field '{field}'" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_recipe_llm_settings_with_a_url_password_stay_out_of_the_run_folder(runner, tmp_path):
    (tmp_path / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    with FakeLLMServer(api_key=None, reply=lambda body: "short") as server:
        url = server.base_url.replace("http://", "http://me:hunter2hunter2@")
        recipe = tmp_path / "r.yaml"
        recipe.write_text(textwrap.dedent(f"""
            sources:
              - path: alpaca.json
            llm:
              base_url: "{url}"
              max_retries: 0
            steps:
              - simplify: {{}}
        """))
        result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"hunter2" not in path.read_bytes(), path


def test_a_yaml_alias_bomb_in_a_recipe_is_a_located_error(runner, tmp_path):
    (tmp_path / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sources:\n  - path: alpaca.json\nsteps:\n  - filter: {}\nbomb:\n" + "".join(f"  {line}\n" for line in lines))
    started = time.monotonic()
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    assert re.match(r"itkit: error: .*r\.yaml, line \d+: expands to more than [\d,]+ values", result.stderr), result.stderr
    assert not (tmp_path / "run").exists()


def test_a_yaml_alias_bomb_in_a_prompt_file_is_a_located_error(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    template = (Path(__file__).parent.parent / "prompts" / "simplify" / "simplify.yaml").read_text()
    bomb = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        bomb.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    (tmp_path / "p" / "simplify").mkdir(parents=True)
    (tmp_path / "p" / "simplify" / "simplify.yaml").write_text(template + "data:\n" + "\n".join(bomb) + "\n")
    with FakeLLMServer(api_key=None) as server:
        result = simplify(runner, src, tmp_path / "out.jsonl", server.base_url, "--prompts-dir", tmp_path / "p")
        assert not server.requests
    assert result.exit_code == 1
    assert re.search(r"simplify\.yaml, line \d+: expands to more than", result.stderr), result.stderr


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_duplicate_yaml_key_in_a_recipe_is_a_located_error(runner, tmp_path, where):
    (tmp_path / "alpaca.json").write_bytes((SAMPLES / "alpaca.json").read_bytes())
    if where == "top":
        text = "sources:\n  - path: alpaca.json\nsteps:\n  - filter: {}\nsteps:\n  - dedup: {}\n"
        line, key, first = 5, "steps", 3
    else:
        text = "sources:\n  - path: alpaca.json\nsteps:\n  - filter:\n      rules: [empty]\n      rules: [refusal]\n"
        line, key, first = 6, "rules", 5
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert f"r.yaml, line {line}: duplicate key '{key}' (first at line {first})" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_a_duplicate_key_in_a_prompt_file_is_a_located_error(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    template = (Path(__file__).parent.parent / "prompts" / "simplify" / "simplify.yaml").read_text()
    (tmp_path / "p" / "simplify").mkdir(parents=True)
    (tmp_path / "p" / "simplify" / "simplify.yaml").write_text(template + "version: 2\n")
    with FakeLLMServer(api_key=None) as server:
        result = simplify(runner, src, tmp_path / "out.jsonl", server.base_url, "--prompts-dir", tmp_path / "p")
        assert not server.requests
    assert result.exit_code == 1
    assert re.search(r"simplify\.yaml, line \d+: duplicate key 'version' \(first at line \d+\)", result.stderr), result.stderr


def test_an_unsendable_key_from_the_environment_blames_the_variable(runner, tmp_path):
    from itkit.cli import app

    src = records(tmp_path / "in.jsonl", 1)
    with FakeLLMServer(api_key=None) as server:
        result = runner.invoke(
            app, ["simplify", str(src), "-o", str(tmp_path / "o.jsonl"), "--base-url", server.base_url],
            env={"OPENAI_API_KEY": "sk-first-line\nsk-second-line"},
        )
        assert not server.requests
    assert result.exit_code == 2
    assert result.stderr.startswith("itkit: error: OPENAI_API_KEY: spans several lines") and "sk-first" not in result.stderr


def test_a_base_url_without_a_host_is_a_usage_error(runner, tmp_path):
    src = records(tmp_path / "in.jsonl", 1)
    result = invoke(runner, "simplify", src, "-o", tmp_path / "o.jsonl", "--base-url", "http://")
    assert result.exit_code == 2 and "--base-url: names no host" in result.stderr


def test_data_is_never_scanned_for_the_key_even_a_long_one(runner, tmp_path):
    key = "0123456789abcdef"
    src = tmp_path / "in.jsonl"
    row = {"instruction": "Spell the hex digits.", "output": f"They are {key}, sixteen digits in a row."}
    src.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    with FakeLLMServer(api_key=key, reply=lambda body: f"Digits: {key} and a few more words than before") as server:
        server.faults = lambda req, attempt: Fault("length")
        result = simplify(runner, src, out, server.base_url, "--api-key", key)
    assert result.exit_code == 3, result.stderr
    (failure,) = [json.loads(line) for line in Path(f"{out}.failures.jsonl").read_text().splitlines()]
    assert failure["output"] == row["output"]  # the input record verbatim
    assert key in failure["_itkit_failure"]["response"]  # the model's answer as it came
    assert key not in Path(f"{out}.summary.json").read_text()

"""End-to-end tests of ``itkit self-instruct``: the real CLI, engine and OpenAI client against a local HTTP server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, Fault, fake_llm  # noqa: F401  (fixture)
from self_instruct_fakes import answer_text, kind_of

TIKTOKEN_DIR = SHARED / "tiktoken"  # ../shared beside the repository

SEEDS = [
    {"id": f"seed_task_{i}", "name": name, "instruction": text, "instances": [{"input": inp, "output": out}], "is_classification": clf}
    for i, (name, text, inp, out, clf) in enumerate([
        ("tips", "Give three tips for staying healthy during the winter months.", "", "Sleep, eat well, move.", False),
        ("sentiment", "Classify the sentiment of the given movie review.", "A {brilliant} film!", "Positive", True),
        ("haiku", "Write a haiku about the ocean at night.", "", "Dark waves hum softly", False),
        ("climate", "Explain the difference between weather and climate.", "", "Weather is short-term.", False),
        ("shop", "Suggest a name for a coffee shop that also sells books.", "", "Chapter & Cup", False),
        ("passive", "Convert the given sentence into passive voice.", "The cat chased ${mouse}.", "${mouse} was chased.", False),
        ("fruits", "List five fruits that are high in vitamin C.", "", "Orange, kiwi, guava, lemon, papaya.", False),
        ("summary", "Summarize the main argument of the paragraph in one sentence.", "Cities grow %s fast.", "Cities grow.", False),
        ("spanish", "Translate the following phrase into Spanish.", "Good {{ morning }}", "Buenos días", False),
        ("largest", "Find the largest number in the given list of integers.", "3, 9, 2", "9", True),
    ])
]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    if not os.environ.get("TIKTOKEN_CACHE_DIR") and TIKTOKEN_DIR.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))


@pytest.fixture
def seeds_file(tmp_path) -> str:
    path = tmp_path / "seed_tasks.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in SEEDS), encoding="utf-8")
    return str(path)


def _read(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _si(runner, server, seeds: str, out: str, *args: str):
    return invoke(
        runner, "self-instruct", seeds, "-o", out, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
        "--model", "teacher", "--cache-dir", str(Path(out).parent / "cache"), "--quiet", *args,
    )


def _model(body: dict) -> str:
    return answer_text(body["messages"])


def test_generates_tasks_with_instances_end_to_end(runner, tmp_path, fake_llm, seeds_file):
    fake_llm.reply = _model
    out = str(tmp_path / "new.jsonl")
    result = _si(runner, fake_llm, seeds_file, out, "--num", "6", "--batch-size", "2", "--seed", "5")
    assert result.exit_code == 0, result.stderr

    requests = fake_llm.chat_requests()
    kinds = [kind_of(r.messages) for r in requests]
    assert kinds.count("instructions") == 2  # 5 candidates per prompt: two prompts reach 6
    assert kinds.count("classify") == 6 and kinds.count("clf_instances") + kinds.count("gen_instances") == 6
    generation = next(r.body for r in requests if kind_of(r.messages) == "instructions")
    assert generation["temperature"] == 0.7 and generation["top_p"] == 0.5
    assert generation["presence_penalty"] == 2 and generation["max_tokens"] == 1024
    assert generation["stop"] == ["\n\n", "\n16", "16.", "16 ."]
    assert generation["model"] == "teacher" and generation["seed"] == 5
    user = generation["messages"][-1]["content"]
    assert user.rstrip().endswith("\n9.") and "Classify the sentiment of the given movie review." in "".join(
        r.messages[-1]["content"] for r in requests if kind_of(r.messages) == "instructions"
    )
    classify = next(r.body for r in requests if kind_of(r.messages) == "classify")
    assert classify["temperature"] == 0 and classify["max_tokens"] == 3

    rows = _read(out)
    assert all(list(r) == ["id", "instruction", "input", "output", "metadata"] for r in rows)  # alpaca by default
    # the final stage (prepare_for_finetuning) adds the seed tasks' instances after the generated ones
    seed_rows = [r for r in rows if not r["id"].startswith("self-instruct-")]
    rows = rows[: len(rows) - len(seed_rows)]
    assert len(seed_rows) == 10 and all(r["metadata"]["provenance"][0]["operation"] == "seed-instance" for r in seed_rows)
    assert len({r["instruction"] for r in rows}) == 6 and len(rows) == 12  # 2 instances per task
    assert [r["id"] for r in rows[:3]] == ["self-instruct-1-1", "self-instruct-1-2", "self-instruct-2-1"]
    meta = rows[0]["metadata"]
    step1, step2 = meta["provenance"]
    assert step1["method"] == "self-instruct" and step1["style"] == "self-instruct" and step1["model"] == "teacher"
    assert step1["round"] == 1 and len(step1["parent_ids"]) == 8 and step1["template"].startswith("instructions@1#")
    assert step2["operation"] == "generate-instances" and step2["parent_id"] == "self-instruct-1"
    assert len(meta["most_similar"]) == 10 and isinstance(meta["is_classification"], bool)
    tasks = _read(f"{out}.tasks.jsonl")
    assert [t["id"] for t in tasks] == [f"self-instruct-{i}" for i in range(1, 7)]
    assert all(t["status"] == "written" and t["instances"] == 2 and len(t["most_similar"]) == 10 for t in tasks)
    assert all(0 <= m["score"] <= 0.7 for t in tasks for m in t["most_similar"])
    assert {t["instruction"] for t in tasks} == {r["instruction"] for r in rows}

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    counts = summary["counts"]
    assert summary["command"] == "self-instruct" and summary["style"] == "self-instruct"
    assert counts["seeds"] == 10 and counts["kept_instructions"] == 6 and counts["records_written"] == 22
    assert counts["prepare"]["parts"] == ["seeds", "strip-prefixes", "dedup"]
    assert counts["prepare"]["seed_instances_added"] == 10 and counts["prepare"]["duplicates_removed"] == 0
    assert counts["filtered"] == {"word_count": 0, "blacklist": 0, "prefix": 0, "first_character": 0, "rouge_l": 0}
    assert counts["candidates"] == 10 and counts["unused_after_target"] == 4
    assert counts["stopped"] == "reached --num"
    assert [t.split("@")[0] for t in summary["templates"]] == ["instructions", "is_classification", "instances_classification", "instances_generation"]
    for name in ("summary.json", "tasks.jsonl"):
        assert TEST_API_KEY not in Path(f"{out}.{name}").read_text()
    assert not Path(f"{out}.failures.jsonl").exists()

    # the same command again: everything from the cache, byte-identical files
    first = Path(out).read_bytes()
    first_tasks = Path(f"{out}.tasks.jsonl").read_bytes()
    fake_llm.reset()
    again = _si(runner, fake_llm, seeds_file, out, "--num", "6", "--batch-size", "2", "--seed", "5")
    assert again.exit_code == 0, again.stderr
    assert fake_llm.chat_requests() == []
    assert Path(out).read_bytes() == first and Path(f"{out}.tasks.jsonl").read_bytes() == first_tasks


def test_summary_counts_what_each_filter_removed(runner, tmp_path, fake_llm, seeds_file):
    items = [
        "Short one here",
        "Draw a map of the old harbour town.",
        "Write a program to reverse a linked list.",
        "(Optional) describe your ideal weekend.",
        "Give three tips for staying healthy in the winter months.",
        "Describe the life cycle of a butterfly in simple words.",
    ]
    fake_llm.reply = lambda body: "\n".join(f"{9 + i}. {t}" for i, t in enumerate(items)) if kind_of(body["messages"]) == "instructions" else _model(body)
    out = str(tmp_path / "out.jsonl")
    result = invoke(
        runner, "self-instruct", seeds_file, "-o", out, "--num", "1", "--no-instances", "--batch-size", "1",
        "--base-url", fake_llm.base_url, "--api-key", TEST_API_KEY, "--cache-dir", str(tmp_path / "c"),
    )
    assert result.exit_code == 0, result.stderr
    rows = _read(out)
    assert [(r["instruction"], r["input"], r["output"]) for r in rows] == [(items[-1], "", "")]
    assert "is_classification" not in rows[0]["metadata"] and len(rows[0]["metadata"]["provenance"]) == 1
    counts = json.loads(Path(f"{out}.summary.json").read_text())["counts"]
    assert counts["filtered"] == {"word_count": 1, "blacklist": 1, "prefix": 1, "first_character": 1, "rouge_l": 1}
    assert "classification" not in counts
    for line in ("1  removed by word_count", "1  removed by blacklist", "1  removed by prefix", "1  removed by first_character", "1  removed by rouge_l"):
        assert line in result.stderr
    assert "kept 1 of 1 instructions" in result.stderr


def test_a_server_answering_garbage_finishes_with_exit_3_and_every_failure_recorded(runner, tmp_path, fake_llm, seeds_file):
    fake_llm.reply = lambda body: "<html><body>502 upstream hiccup</body></html>"
    out = str(tmp_path / "out.jsonl")
    result = _si(runner, fake_llm, seeds_file, out, "--num", "4", "--batch-size", "2", "--max-retries", "1")
    assert result.exit_code == 3
    assert _read(out) == []
    failures = read_failures(f"{out}.failures.jsonl")
    assert [f["prompt"] for f in failures] == list(range(1, 7))  # 3 failed rounds of 2 prompts
    assert all(f["record"] == {} for f in failures)  # no input record failed, and no id is made up
    for failure in failures:
        assert failure["response"] == "<html><body>502 upstream hiccup</body></html>"
        assert failure["reason"].startswith("no numbered list in the response")
        assert failure["stage"] == "instruction generation"
    assert len(fake_llm.chat_requests()) == 12  # each prompt tried twice
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["stopped"] == "every prompt failed"
    assert summary["counts"]["failed_prompts"] == 6 and summary["failures"]["count"] == 6


def test_garbage_instance_answers_fail_their_tasks_only(runner, tmp_path, fake_llm, seeds_file):
    def reply(body):
        kind = kind_of(body["messages"])
        if kind == "gen_instances":
            return "I would rather not."
        if kind == "clf_instances":
            return {"content": "Class label: Yes\nInput: x\nClass label: No\nInput: y\nClass label: Ma", "finish_reason": "length"}
        return _model(body)

    fake_llm.reply = reply
    out = str(tmp_path / "out.jsonl")
    result = _si(runner, fake_llm, seeds_file, out, "--num", "5", "--max-retries", "0")
    assert result.exit_code == 3, result.stderr
    tasks = _read(f"{out}.tasks.jsonl")
    failures = {f["task"]: f for f in read_failures(f"{out}.failures.jsonl")}
    rows = _read(out)
    for task in tasks:
        if task["is_classification"]:
            assert task["status"] == "written" and task["instances"] == 2  # the cut-off last label dropped
        else:
            assert task["status"] == "failed"
            failure = failures[task["id"]]
            assert failure["response"] == "I would rather not." and failure["stage"] == "instance generation"
            assert failure["instruction"] == task["instruction"]
    written = {r["instruction"] for r in rows}
    assert written == {t["instruction"] for t in tasks if t["status"] == "written"}
    assert len(failures) == sum(t["status"] == "failed" for t in tasks) > 0


def test_alpaca_style_with_the_real_seed_tasks_as_is(runner, tmp_path, fake_llm, realdata):
    fake_llm.reply = _model
    out = str(tmp_path / "alpaca.json")
    seeds = str(realdata / "self_instruct_seed_tasks.jsonl")
    result = _si(runner, fake_llm, seeds, out, "--num", "7", "--style", "alpaca", "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(Path(out).read_text(encoding="utf-8"))
    assert len(rows) == 7 and all(r["output"] for r in rows)
    requests = fake_llm.chat_requests()
    assert {kind_of(r.messages) for r in requests} == {"alpaca"} and len(requests) == 2
    body = requests[0].body
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (1.0, 1.0, 3072, ["\n20", "20."])
    real = {json.loads(line)["instruction"] for line in Path(seeds).read_text().splitlines()}
    user = body["messages"][-1]["content"]
    demos = [line.split("Instruction: ", 1)[1] for line in user.splitlines() if ". Instruction: " in line]
    assert len(demos) == 3 and all(d in real or d.rstrip(":") in {r.rstrip(":") for r in real} for d in demos)
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["seeds"] == 175 and summary["source_format"] == "seed_tasks"
    assert "video" in summary["filters"]["blacklist"]


def test_real_seeds_self_instruct_style_to_seed_tasks(runner, tmp_path, fake_llm, realdata):
    fake_llm.reply = _model
    out = str(tmp_path / "tasks.jsonl")
    seeds = str(realdata / "self_instruct_seed_tasks.jsonl")
    result = _si(runner, fake_llm, seeds, out, "--num", "3", "--to", "seed_tasks", "--batch-size", "1")
    assert result.exit_code == 0, result.stderr
    rows = _read(out)
    assert [r["id"] for r in rows] == ["self-instruct-1", "self-instruct-2", "self-instruct-3"]
    assert all(len(r["instances"]) == 2 and isinstance(r["is_classification"], bool) for r in rows)
    first = fake_llm.chat_requests()[0].messages[-1]["content"]
    assert first.count("\n") == 9 and first.rstrip().endswith("\n9.")  # header + 8 real seeds + "9."


def test_dry_run_renders_prompts_and_estimates_cost_without_sending(runner, tmp_path, fake_llm, seeds_file):
    out = tmp_path / "never.jsonl"
    result = _si(runner, fake_llm, seeds_file, str(out), "--num", "20", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert fake_llm.chat_requests() == []
    assert not out.exists() and not Path(f"{out}.summary.json").exists()
    text = result.stdout
    assert "--- request 1 of 50 (teacher) ---" in text  # 10 generation prompts + 20 x (classify + instances)
    assert "add more, different ones" in text and "Is it classification?" in text and "Example 1" in text
    assert "estimated cost" in text and "dry run: nothing was sent" in text


def test_limit_caps_the_generation_prompts(runner, tmp_path, fake_llm, seeds_file):
    fake_llm.reply = lambda body: "9. Too short here" if kind_of(body["messages"]) == "instructions" else _model(body)
    out = str(tmp_path / "out.jsonl")
    result = _si(runner, fake_llm, seeds_file, out, "--num", "3", "--max-prompts", "3", "--batch-size", "2")
    assert result.exit_code == 3  # fewer than --num kept
    assert len(fake_llm.chat_requests()) == 3
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["counts"]["stopped"] == "prompt budget spent" and summary["counts"]["prompts"] == 3
    assert summary["parameters"]["max_prompts"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (("--num", "0"), "--num must be at least 1"),
        (("--num", "3", "--rouge-threshold", "1.5"), "--rouge-threshold"),
        (("--num", "3", "--style", "alpaca", "--num-tasks", "2"), "--num-tasks"),
    ],
)
def test_bad_options_are_usage_errors(runner, tmp_path, fake_llm, seeds_file, args, message):
    result = _si(runner, fake_llm, seeds_file, str(tmp_path / "o.jsonl"), *args)
    assert result.exit_code == 2 and message in result.stderr
    assert fake_llm.chat_requests() == []


def test_bad_seeds_and_templates_fail_before_any_request(runner, tmp_path, fake_llm, seeds_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Name a colour.", "instances": "oops"}\n', encoding="utf-8")
    result = _si(runner, fake_llm, str(bad), str(tmp_path / "o.jsonl"), "--num", "2")
    assert result.exit_code == 1 and "instances" in result.stderr and "line 1" in result.stderr
    prompts = tmp_path / "prompts" / "self_instruct"
    prompts.mkdir(parents=True)
    (prompts / "instructions.yaml").write_text(
        "name: instructions\nversion: 2\nvariables: [task_list]\nmessages:\n  - role: user\n    content: \"{{task_list}} {{next_number}}\"\n",
        encoding="utf-8",
    )
    result = _si(runner, fake_llm, seeds_file, str(tmp_path / "o.jsonl"), "--num", "2", "--prompts-dir", str(tmp_path / "prompts"))
    assert result.exit_code == 1 and "next_number" in result.stderr
    assert fake_llm.chat_requests() == [] and not (tmp_path / "o.jsonl").exists()


def test_transient_faults_are_retried_and_the_output_is_unchanged(runner, tmp_path, fake_llm, seeds_file):
    fake_llm.reply = _model
    clean = str(tmp_path / "clean.jsonl")
    assert _si(runner, fake_llm, seeds_file, clean, "--num", "4", "--batch-size", "2").exit_code == 0
    fake_llm.reset()
    fake_llm.faults = lambda request, attempt: Fault("500") if attempt == 0 else None
    faulty = str(tmp_path / "faulty" / "out.jsonl")
    result = _si(runner, fake_llm, seeds_file, faulty, "--num", "4", "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    assert Path(faulty).read_bytes() == Path(clean).read_bytes()


def test_an_invalid_key_stops_the_run_at_once_and_writes_nothing(runner, tmp_path, fake_llm, seeds_file):
    fake_llm.reply = _model
    out = tmp_path / "out.jsonl"
    wrong = "sk-wrong-key-0123456789abcdef"
    result = invoke(
        runner, "self-instruct", seeds_file, "-o", str(out), "--num", "20", "--base-url", fake_llm.base_url,
        "--api-key", wrong, "--cache-dir", str(tmp_path / "cache"), "--quiet",
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("itkit: error:")
    assert wrong not in result.stderr and wrong[:10] not in result.stderr
    assert not out.exists() and not Path(f"{out}.tasks.jsonl").exists()
    assert len(fake_llm.chat_requests()) <= 8  # at most the first round, nothing after the first 401

"""--on FIELD and --on-regex: which text every dedup stage compares; records with nothing to compare are kept."""

from __future__ import annotations

import json

import pytest
from conftest import invoke
from test_dedup_common import PREAMBLE, QUESTIONS

from itkit.dataset import read_records
from itkit.dedup.texts import NOT_COMPARED_EMPTY, NOT_COMPARED_NO_MATCH, TextSelector
from itkit.errors import UsageError
from itkit.records import Record

ROWS = [
    {"id": "r0", "instruction": "Answer the question.", "input": "", "output": "4", "question": "What is 2+2?",
     "meta": {"topic": "maths", "level": 1}},
    {"id": "r1", "instruction": "Please answer this question.", "input": "", "output": "four",
     "question": "what is 2+2?", "meta": {"topic": "Maths", "level": 2}},
    {"id": "r2", "instruction": "Answer the question.", "input": "", "output": "Paris",
     "question": "What is the capital of France?", "meta": {"topic": "geography", "level": 1}},
    {"id": "r3", "instruction": "Answer the question!", "input": "", "output": "Paris.",
     "question": "Name the capital of France.", "meta": {"topic": "geography", "level": 3}},
]


def write(path, rows) -> str:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


def ids(path) -> list[str]:
    return [r.id for r in read_records(str(path))]


def run_json(runner, *args):
    result = invoke(runner, "dedup", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_on_a_source_field_and_a_nested_field(runner, tmp_path):
    data, out = write(tmp_path / "d.json", ROWS), tmp_path / "o.json"
    # the instructions differ by case and punctuation only for r0/r2 ("Answer the question."): exact on instruction
    assert run_json(runner, data, "-o", out)["removed"] == {"exact": 1}
    assert ids(out) == ["r0", "r1", "r3"]
    # on the extra field "question": r1 is r0 in another case
    summary = run_json(runner, data, "-o", out, "--on", "question")
    assert summary["removed"] == {"exact": 1} and summary["on"] == "question"
    assert ids(out) == ["r0", "r2", "r3"]
    rows = json.loads(out.read_text())
    assert rows[0]["question"] == "What is 2+2?" and rows[0]["meta"] == {"topic": "maths", "level": 1}  # kept whole
    # a dotted path walks into an object; numbers compare as their JSON
    assert ids(out) and run_json(runner, data, "-o", out, "--on", "meta.topic")["removed"] == {"exact": 2}
    assert ids(out) == ["r0", "r2"]
    assert run_json(runner, data, "-o", out, "--on", "meta.level")["removed"] == {"exact": 1}
    assert ids(out) == ["r0", "r1", "r3"]


def test_on_a_field_the_format_maps_elsewhere(runner, tmp_path):
    # seed tasks keep "name" as metadata task_name: --on name still means the field as it is in the file
    rows = [{"id": f"seed_task_{i}", "name": name, "instruction": f"Task number {i}.",
             "instances": [{"input": "", "output": "ok"}], "is_classification": False}
            for i, name in enumerate(["breakfast_suggestion", "antonym_relation", "one_sentence_description",
                                      "harmful_stereotype_example", "email_subject_generation"])]
    rows.append({**rows[1], "id": "renamed", "instruction": "Something else entirely."})
    data, out = tmp_path / "seeds.jsonl", tmp_path / "o.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = run_json(runner, data, "-o", out, "--on", "name")
    assert summary["removed"] == {"exact": 1} and ids(out) == [r["id"] for r in rows[:5]]


def test_built_in_input_output_and_system(runner, tmp_path):
    rows = [
        {"id": "a", "instruction": "Summarise.", "input": "The cat sat on the mat.", "output": "A cat sat."},
        {"id": "b", "instruction": "Give a summary.", "input": "the cat sat on the mat.", "output": "Cat on mat."},
        {"id": "c", "instruction": "Name a colour.", "input": "", "output": "Red"},
        {"id": "d", "instruction": "Name a fruit.", "input": "", "output": "red"},
    ]
    data, out = write(tmp_path / "d.json", rows), tmp_path / "o.json"
    summary = run_json(runner, data, "-o", out, "--on", "input")
    # two empty inputs are not duplicates of each other: kept without being compared, and counted
    assert summary["removed"] == {"exact": 1} and ids(out) == ["a", "c", "d"]
    assert summary["not_compared"] == {NOT_COMPARED_EMPTY: 2} and summary["kept"] == 3
    assert any("2 of 4 records were kept without being compared (empty text: 2; the first is record 2)" in w
               for w in summary["warnings"])
    assert run_json(runner, data, "-o", out, "--on", "output")["removed"] == {"exact": 1}
    assert ids(out) == ["a", "b", "c"]
    record = Record.single_turn("s", "Hi", "Hello", system="Be brief.")
    assert TextSelector("system")(record) == "Be brief." and TextSelector("output")(record) == "Hello"


def test_on_field_works_for_near_and_rouge_and_in_a_dolly_category(runner, tmp_path):
    dolly = [
        {"instruction": f"Question {i} about nothing in particular", "context": "", "response": "x", "category": c}
        for i, c in enumerate(["open_qa", "open_qa", "brainstorming", "open qa"])
    ]
    data, out = write(tmp_path / "dolly.json", dolly), tmp_path / "o.json"
    summary = run_json(runner, data, "-o", out, "--on", "category", "--no-exact", "--near", "--rouge")
    # "open_qa" twice: a near duplicate (one shingle); "open qa" is the same words, so near again
    assert summary["removed"]["near"] == 2 and summary["kept"] == 2


def test_missing_field_is_a_usage_error_first_then_a_bad_record(runner, tmp_path):
    out = tmp_path / "o.json"
    data = write(tmp_path / "d.json", ROWS)
    result = invoke(runner, "dedup", data, "-o", out, "--on", "questoin")
    assert result.exit_code == 2 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "--on questoin" in line and "no such field" in line and "d.json" in line

    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "question"}, dict(ROWS[2])]
    data = write(tmp_path / "m.json", rows)
    result = invoke(runner, "dedup", data, "-o", out, "--on", "question")
    assert result.exit_code == 1 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "m.json" in line and "field 'question': missing; --on compares it" in line

    errors = tmp_path / "bad.jsonl"
    result = invoke(runner, "dedup", data, "-o", out, "--on", "question", "--on-error", "skip", "--errors", errors,
                    "--json")
    assert result.exit_code == 3, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 1 and summary["kept"] == 2 and summary["rows"] == 3
    (bad,) = [json.loads(x) for x in errors.read_text().splitlines()]
    assert bad["record"]["id"] == "r1" and "question" in bad["reason"]
    assert ids(out) == ["r0", "r2"]

    # with skip, a field no record has is still a typo: a usage error, nothing written
    out.unlink()
    result = invoke(runner, "dedup", data, "-o", out, "--on", "nope", "--on-error", "skip", "--errors", errors)
    assert result.exit_code == 2 and "none of the 3 records" in result.stderr and not out.exists()


def toolformer_rows() -> list[dict]:
    rows = [{"id": f"q{i}", "instruction": f"{PREAMBLE}\nQuestion: {q}", "input": "", "output": "[Search(x)]"}
            for i, q in enumerate(QUESTIONS)]
    rows.append({"id": "copy", "instruction": f"{PREAMBLE}\nQuestion: {QUESTIONS[3].upper()}", "input": "",
                 "output": "[Calculator(12*1.609)]"})
    rows.append({"id": "other", "instruction": "Tell me a joke.", "input": "", "output": "No."})
    return rows


def test_on_regex_compares_the_capture_and_keeps_what_it_does_not_match(runner, tmp_path):
    data, out, report = write(tmp_path / "t.json", toolformer_rows()), tmp_path / "o.json", tmp_path / "r.jsonl"
    summary = run_json(runner, data, "-o", out, "--on-regex", r"Question: (.+)", "--near", "--rouge",
                       "--ignore-common", "off", "--report", report)
    assert summary["removed"] == {"exact": 1, "near": 0, "rouge": 0} and summary["on_regex"] == "Question: (.+)"
    assert summary["not_compared"] == {NOT_COMPARED_NO_MATCH: 1} and summary["kept"] == len(QUESTIONS) + 1
    assert "other" in ids(out) and "copy" not in ids(out)
    (line,) = [json.loads(x) for x in report.read_text().splitlines()]
    assert line["id"] == "copy" and line["kept_id"] == "q3" and line["text"] == QUESTIONS[3].upper()
    # without the regex (and without the boilerplate detection), the preamble makes them all near duplicates
    summary = run_json(runner, data, "-o", out, "--near", "--ignore-common", "off")
    assert summary["removed"]["near"] > 10

    # the named group "text" wins over the first group; no group: the whole match
    select = TextSelector("instruction", r"(Question): (?P<text>.+)")
    assert select(Record.single_turn("x", "Question: Why?", "Because.")) == "Why?"
    assert TextSelector("auto", r"\d+")(Record.single_turn("x", "Add 12 and 30", "42")) == "12"
    assert TextSelector("auto", r"(\d+)?x")(Record.single_turn("x", "x", "")) is None  # group 1 did not take part


@pytest.mark.parametrize("pattern", ["(unclosed", "*x", "a{2,1}"])
def test_invalid_regex_is_a_one_line_usage_error(runner, tmp_path, pattern):
    data, out = write(tmp_path / "d.json", ROWS), tmp_path / "o.json"
    result = invoke(runner, "dedup", data, "-o", out, "--on-regex", pattern)
    assert result.exit_code == 2 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "--on-regex" in line and "not a valid regular expression" in line


@pytest.mark.parametrize("on", ["", " question", "meta..topic", "."])
def test_invalid_field_names_are_usage_errors(runner, tmp_path, on):
    data = write(tmp_path / "d.json", ROWS)
    result = invoke(runner, "dedup", data, "--on", on)
    assert result.exit_code == 2 and "--on takes auto, instruction" in result.stderr


def test_recipe_takes_on_field_and_on_regex(tmp_path):
    from itkit.steps.dedup import STEP
    from itkit.steps.spec import Context

    o = STEP.options(on="question", on_regex="Q: (.*)")
    assert (o.on, o.on_regex) == ("question", "Q: (.*)")
    with pytest.raises(UsageError, match="^on_regex: not a valid regular expression"):
        STEP.prepare(STEP.options(on_regex="(x"), Context(cli=False))


def test_a_recipe_step_compares_the_capture(runner, tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(toolformer_rows()), encoding="utf-8")
    (tmp_path / "recipe.yaml").write_text(
        "name: tools\nsources:\n  - path: t.json\nsteps:\n  - dedup:\n      near: true\n"
        "      ignore_common: \"off\"\n      on_regex: 'Question: (.+)'\n", encoding="utf-8")
    result = invoke(runner, "run", tmp_path / "recipe.yaml", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    (step,) = [p for p in (tmp_path / "run").iterdir() if p.name.endswith("-dedup")]
    summary = json.loads((step / "summary.json").read_text())
    assert summary["removed"] == {"exact": 1, "near": 0} and summary["not_compared"] == {NOT_COMPARED_NO_MATCH: 1}
    removed = [json.loads(x) for x in (step / "removed.jsonl").read_text().splitlines()]
    assert [(r["id"], r["kept_id"]) for r in removed] == [("copy", "q3")]

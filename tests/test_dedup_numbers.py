"""--numbers: math problems that differ only in their numbers are different problems (GSM8K's shape)."""

from __future__ import annotations

import json
import random

from conftest import invoke

from itkit.dataset import read_records
from itkit.dedup import DedupOptions, dedup_texts
from itkit.dedup.normalize import number_key, numbers, normalize_text

TEMPLATES = [
    "Natalia sold clips to {a} of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns ${a} an hour for babysitting. Yesterday, she just did {b} minutes of babysitting. How much did she earn?",
    "Betty is saving money for a new wallet which costs ${a}. Betty has only half of the money she needs. "
    "Her parents decided to give her ${b} for that purpose, and her grandparents twice as much as her parents. "
    "How much more money does Betty need to buy the wallet?",
    "James writes a {a}-page letter to {b} different friends twice a week. How many pages does he write a year?",
]


def gsm8k_like(seed: int = 5) -> list[dict]:
    """52 problems: 13 per template, each with its own numbers (and so its own answer)."""
    rng = random.Random(seed)
    records, seen = [], set()
    for t, template in enumerate(TEMPLATES):
        while sum(r["id"].startswith(f"t{t}-") for r in records) < 13:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            question = template.format(a=a, b=b)
            if question in seen:
                continue
            seen.add(question)
            records.append({"id": f"t{t}-{a}-{b}", "question": question, "answer": f"#### {a * b}"})
    return records


def write_alpaca(path, records) -> None:
    rows = [{"id": r["id"], "instruction": r["question"], "input": "", "output": r["answer"]} for r in records]
    path.write_text(json.dumps(rows), encoding="utf-8")


def test_numbers_are_digit_runs_outside_words():
    assert numbers(normalize_text("Buy 12 apples at $1,200.50 on the 3rd day, item x2, 007 and 7.")) == [
        "1", "12", "200", "50", "7", "7"]
    assert number_key("no numbers here") == 0
    assert number_key("3 cats and 5 dogs.") == number_key("5 dogs. 3 cats") != number_key("3 cats and 6 dogs.")


def test_gsm8k_problems_with_different_numbers_are_all_kept(runner, tmp_path):
    records = gsm8k_like()
    assert len(records) == 52
    data, out, report = tmp_path / "gsm8k.json", tmp_path / "out.json", tmp_path / "r.jsonl"
    write_alpaca(data, records)
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--rouge", "--report", report, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kept"] == 52 and summary["removed"] == {"exact": 0, "near": 0, "rouge": 0}
    assert [r.id for r in read_records(str(out))] == [r["id"] for r in records]

    # the same data with numbers ignored: the templates collapse (so the test above can fail)
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--rouge", "--numbers", "ignore", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["removed"]["near"] + summary["removed"]["rouge"] >= 40


def test_copies_with_the_same_numbers_are_still_removed():
    problems = [r["question"] for r in gsm8k_like()]
    copies = [
        problems[0].upper(),  # exact after normalisation
        problems[13].replace("Yesterday", "Today"),  # one word, same numbers
        problems[26].replace("How much more money", "How much more cash"),
    ]
    # (ignore_common off: four templates of 13 problems each are 25% boilerplate each, see test_dedup_common)
    decisions = dedup_texts(problems + copies, DedupOptions(near=0.7, rouge=0.7, ignore_common="off"))
    assert decisions.kept == 52
    assert {(r.index, r.kept_index) for r in decisions.removals} == {(52, 0), (53, 13), (54, 26)}
    assert [r.stage for r in decisions.removals] == ["exact", "near", "near"]


def test_recipe_accepts_numbers(tmp_path):
    from itkit.steps.dedup import STEP

    assert STEP.options(numbers="ignore").numbers == "ignore"

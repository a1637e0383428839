"""Simplification that adds nothing: the deterministic checks, the retry that names the problem, the policy.

The end-to-end tests drive ``itkit simplify`` against the local OpenAI-compatible server with a scripted model:
per record it returns a rewrite with an invented number, one that loses the final answer, one that changes a code
block, a valid shorter one and a longer one; the retry request is asserted on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import SHARED, invoke, read_failures
from llm_server import TEST_API_KEY, FakeLLMServer

from itkit.dataset import read_records
from itkit.simplify_checks import (
    CHECK_NAMES,
    final_answers,
    normalise_number,
    run_checks,
)
from itkit.simplify_report import RATIO_BUCKETS, SimplifyStats, bucket_of

os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"

# ---- the checks, one by one --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written, normal", [("1,000", "1000"), ("1000", "1000"), ("36.80", "36.8"), ("007", "7"), ("2.0", "2"), ("0.5", "0.5")]
)
def test_numbers_are_compared_after_normalisation(written, normal):
    assert normalise_number(written) == normal


@pytest.mark.parametrize(
    "original, rewrite, broken",
    [
        ("The city has 1,000 people and 36.80 km of road.", "1000 people, 36.8 km of road.", set()),
        ("The city has 1,000 people.", "The city has 1,200 people.", {"numbers"}),
        ("Steps:\nwash, dry, fold.", "1. Wash\n2. Dry\n3. Fold", set()),  # list markers are not numbers
        ("It opened on 29 March 1998.", "It opened March 29, 1998.", set()),
        ("It opened on 29 March 1998.", "It opened on 29 April 1998.", {"dates"}),
        ("See https://example.org/docs.", "See https://example.org/docs", set()),
        ("See the docs.", "See https://example.org/docs.", {"urls"}),
        ('He said "not today".', 'He said "not today".', set()),
        ('He said no.', 'He said "never again".', {"quotes"}),
        ("The Vasco da Gama Bridge is long.", "Then Vasco da Gama Bridge is long.", set()),
        ("The bridge is long.", "The Golden Gate Bridge is long.", {"names"}),
        ("## Short Summary\nIt is long.", "## Short Summary\nIt is long.", set()),
        ("Use:\n```python\nprint(1)\n```\nDone.", "```python\nprint(1)   \n```", set()),
        ("Use:\n```python\nprint(1)\n```\nDone.", "```python\nprint(2)\n```", {"code_blocks", "numbers"}),
        ("No code here.", "```sh\nls\n```", {"code_blocks"}),
        ("5 + 6 = 11. The answer is 11.", "5 + 6 = 11.", {"final_answer"}),
        ("5 + 6 = 11. The answer is 11.", "The answer is 11.", set()),
        ("Paris. The answer is (B).", "Answer: B", set()),
        ("Why the others fail...\nAnswer: C", "C is right, the others fail.", {"final_answer"}),
        ("48 / 3 = 16\n#### 16", "16\n#### 16", set()),
        ("48 / 3 = 16\n#### 16", "16\n#### 15", {"final_answer", "numbers"}),
        ("x = 2, so \\boxed{2}.", "\\boxed{2}", set()),
        ("x = 2, so \\boxed{2}.", "x is 2.", {"final_answer"}),
        ("The answer is a dog named Rex.", "A dog.", set()),  # prose, not a final-answer marker
    ],
)
def test_each_check(original, rewrite, broken):
    assert set(run_checks(original, rewrite)) == broken


def test_code_edits_can_be_allowed():
    assert run_checks("```\na\n```", "```\nb\n```", allow_code_edits=True) == {}


def test_final_answer_markers_of_the_gsm8k_shaped_sample():
    rows = read_records(str(SAMPLES / "gsm8k_style.jsonl"))
    markers = [final_answers(r.output) for r in rows]
    assert all(len(m) == 1 and m[0].kind == "####" for m in markers)
    assert markers[0][0].value == "192"


def test_real_responses_pass_every_check_against_themselves():
    """No false alarm on real data: a response compared with itself breaks nothing."""
    files = [SAMPLES / n for n in ("alpaca.json", "dolly.jsonl", "sharegpt.json", "gsm8k_style.jsonl")]
    files += [p for p in (SHARED / "realdata").glob("*.json*")] if (SHARED / "realdata").is_dir() else []
    seen = 0
    for path in files:
        for record in read_records(str(path)):
            if record.has_output and record.output.strip():
                seen += 1
                assert run_checks(record.output, record.output) == {}, (path.name, record.id)
    assert seen > 100


def test_ratio_buckets_and_summary_block_keys():
    assert [bucket_of(x) for x in (0.1, 0.5, 0.99, 1.0, 1.1, 2.0)] == [
        "[0, 0.25)", "[0.5, 0.75)", "[0.75, 1)", "1", "(1, 1.25)", ">= 1.25",
    ]
    stats = SimplifyStats()
    for original, written in ((10, 5), (10, 10), (10, 12), (4, 1)):
        stats.add_lengths(original, written)
    block = stats.as_dict()
    assert block["length_ratio"]["median"] == 0.75
    assert block["lengths"] == {
        "shortened": 2, "unchanged": 1, "longer": 1, "shares": {"shortened": 0.5, "unchanged": 0.25, "longer": 0.25},
    }
    assert [b["range"] for b in block["ratio_distribution"]] == [label for label, _, _ in RATIO_BUCKETS]
    assert set(block["violations_first_try"]) == set(CHECK_NAMES)


# ---- end to end with a scripted model ------------------------------------------------------------------

CODE = "```python\ndef area(r):\n    return 3.14159 * r * r\n```"
RECORDS = [
    {"id": "invented", "instruction": "How far is it?", "input": "",
     "output": "The trail from the car park to the lake is about 12 km long and mostly flat, with benches."},
    {"id": "lost", "instruction": "Sam has 3 bags of 4 apples. How many apples?", "input": "",
     "output": "Each bag holds 4 apples and there are 3 bags.\n3 * 4 = 12\n#### 12"},
    {"id": "code", "instruction": "Area of a circle in Python?", "input": "",
     "output": f"Here is a small function that computes the area of a circle from its radius:\n{CODE}\nCall it with the radius."},
    {"id": "valid", "instruction": "Why water plants in the morning?", "input": "",
     "output": "Watering in the morning is best because the leaves dry during the day, which helps prevent fungus."},
    {"id": "longer", "instruction": "Name a colour.", "input": "", "output": "Blue."},
]
FIRST_REWRITES = {
    "trail from the car park": "The flat trail to the lake is 15 km long.",  # invented number
    "Each bag holds": "3 bags of 4 apples make 12 apples.",  # lost "#### 12"
    "area of a circle": "```python\ndef area(r):\n    return 3.14 * r * r\n```",  # changed code block
    "Watering in the morning": "Water in the morning so the leaves dry during the day.",  # valid, shorter
    "Blue.": "The colour blue, a calm shade of the sky.",  # longer
}


def scripted(fix_on_retry: bool):
    """First request: the rewrite above. Retry: a fixed rewrite if ``fix_on_retry``, else the same one."""

    def reply(body: dict) -> str:
        first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        for marker, text in FIRST_REWRITES.items():
            if marker in first_user:
                break
        else:
            raise AssertionError("unexpected prompt")
        if len(body["messages"]) > 2 and fix_on_retry:
            return {
                "trail from the car park": "The flat trail to the lake is about 12 km long.",
                "Each bag holds": "3 * 4 = 12\n#### 12",
                "area of a circle": CODE,
                "Blue.": "Blue.",
            }[marker]
        return text

    return reply


@pytest.fixture
def server():
    with FakeLLMServer(api_key=TEST_API_KEY, reply=scripted(fix_on_retry=False)) as fake:
        yield fake


def write_input(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    return path


def run(runner, server, *args):
    return invoke(runner, "simplify", *args, "--base-url", server.base_url, "--api-key", TEST_API_KEY,
                  "--max-retries", "0", "--model", "gpt-4o-mini")


def by_id(path: Path) -> dict:
    return {r.id: r for r in read_records(str(path))}


def test_default_keeps_the_original_when_the_retry_still_breaks_a_check(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, write_input(tmp_path), "-o", out)
    assert result.exit_code == 0, result.stderr
    got = by_id(out)
    original = {r["id"]: r["output"] for r in RECORDS}
    for rid in ("invented", "lost", "code"):
        assert got[rid].output == original[rid]  # a bad rewrite never enters the SFT set
        assert got[rid].metadata["simplify_violations"]
        assert not got[rid].provenance
    assert set(got["invented"].metadata["simplify_violations"]) == {"numbers"}
    assert set(got["lost"].metadata["simplify_violations"]) == {"final_answer"}
    assert "code_blocks" in got["code"].metadata["simplify_violations"]
    assert got["valid"].output == FIRST_REWRITES["Watering in the morning"]
    assert got["longer"].output == FIRST_REWRITES["Blue."] and got["longer"].metadata["simplify_longer"] is True

    # the retry names the problem and carries the rejected rewrite: a different request, sent once per bad record
    requests = [r.body["messages"] for r in server.chat_requests()]
    assert len(requests) == 9  # 5 first tries + 4 retries (the valid one is not retried)
    retries = {m[1]["content"].split("Request:", 1)[1][:40]: m for m in requests if len(m) > 2}
    assert len(retries) == 4
    invented = next(m for m in requests if len(m) > 2 and "car park" in m[1]["content"])
    assert invented[2] == {"role": "assistant", "content": FIRST_REWRITES["trail from the car park"]}
    assert "it states the number '15', which the original answer does not contain (numbers)" in invented[3]["content"]
    lost = next(m for m in requests if len(m) > 2 and "Each bag" in m[1]["content"])
    assert "final answer '#### 12'" in lost[3]["content"]
    longer = next(m for m in requests if len(m) > 2 and "Name a colour" in m[1]["content"])
    assert "it is longer than the original answer" in longer[3]["content"]

    summary = json.loads(Path(f"{out}.summary.json").read_text())
    block = summary["simplify"]
    assert summary["counts"]["kept_original"] == 3 and summary["counts"]["simplified"] == 1
    assert summary["counts"]["longer_kept"] == 1
    assert block["violations_first_try"]["numbers"] == 2  # "15", and "3.14" in the changed code
    assert block["violations_first_try"]["final_answer"] == 1
    assert block["violations_first_try"]["code_blocks"] == 1
    assert block["violations_final"] == block["violations_first_try"]
    assert block["retried"] == 4 and block["fixed_by_retry"] == 0 and block["kept_original"] == 3
    assert block["length_unit"] == "tokens"
    assert block["lengths"]["unchanged"] == 3 and block["lengths"]["shortened"] == 1 and block["lengths"]["longer"] == 1
    assert sum(b["records"] for b in block["ratio_distribution"]) == 5
    assert block["length_ratio"]["median"] == 1.0
    assert "median ratio" in result.stderr and "numbers" in result.stderr


def test_a_retry_that_fixes_the_problem_is_used(runner, server, tmp_path):
    server.reply = scripted(fix_on_retry=True)
    out = tmp_path / "out.jsonl"
    assert run(runner, server, write_input(tmp_path), "-o", out).exit_code == 0
    got = by_id(out)
    assert got["invented"].output == "The flat trail to the lake is about 12 km long."
    assert got["lost"].output.endswith("#### 12")
    assert got["code"].output == CODE
    assert got["longer"].output == "Blue." and "simplify_longer" not in got["longer"].metadata
    assert not any("simplify_violations" in r.metadata for r in got.values())
    block = json.loads(Path(f"{out}.summary.json").read_text())["simplify"]
    assert block["retried"] == 4 and block["fixed_by_retry"] == 4
    assert all(v == 0 for v in block["violations_final"].values())


def test_on_violation_flag_writes_the_rewrite_with_its_violations(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(runner, server, write_input(tmp_path), "-o", out, "--on-violation", "flag").exit_code == 0
    got = by_id(out)
    assert got["invented"].output == FIRST_REWRITES["trail from the car park"]
    assert got["invented"].metadata["simplify_violations"]["numbers"]
    assert got["invented"].provenance[-1]["method"] == "simplify"
    assert json.loads(Path(f"{out}.summary.json").read_text())["simplify"]["flagged"] == 3


def test_on_violation_fail_sends_the_records_to_the_failures_file(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(runner, server, write_input(tmp_path), "-o", out, "--on-violation", "fail")
    assert result.exit_code == 3
    assert sorted(by_id(out)) == ["longer", "valid"]
    failures = {f["id"]: f for f in read_failures(f"{out}.failures.jsonl")}
    assert sorted(failures) == ["code", "invented", "lost"]
    assert failures["invented"]["reason"].startswith("the simplified response breaks a check (numbers)")
    assert failures["invented"]["response"] == FIRST_REWRITES["trail from the car park"]
    assert json.loads(Path(f"{out}.summary.json").read_text())["simplify"]["failed_checks"] == 3


def test_allow_code_edits_accepts_a_changed_code_block(runner, server, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(runner, server, write_input(tmp_path), "-o", out, "--allow-code-edits").exit_code == 0
    got = by_id(out)
    assert set(got["code"].metadata["simplify_violations"]) == {"numbers"}  # "3.14" is still a new number
    block = json.loads(Path(f"{out}.summary.json").read_text())["simplify"]
    assert "code_blocks" not in block["checks"] and block["allow_code_edits"] is True


def test_a_rerun_sends_nothing(runner, server, tmp_path):
    src = write_input(tmp_path)
    out, again = tmp_path / "out.jsonl", tmp_path / "again.jsonl"
    assert run(runner, server, src, "-o", out).exit_code == 0
    server.reset()
    assert run(runner, server, src, "-o", again).exit_code == 0
    assert server.requests == [] and again.read_bytes() == out.read_bytes()

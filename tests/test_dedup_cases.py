"""The two real-data cases of issue 15, end to end on the command line, each with real duplicates planted.

- Toolformer's shape: every prompt opens with the same ~50-word tool preamble; only the planted
  copies (a word changed, case and spacing changed) go, with the default settings and with
  ``--on-regex`` on the question;
- GSM8K's shape: problems that differ only in their numbers all stay; planted copies with the
  same numbers go.
"""

from __future__ import annotations

import json

from conftest import invoke
from test_dedup_common import PREAMBLE, QUESTIONS, TOPICS
from test_dedup_numbers import gsm8k_like

from itkit.dataset import read_records


def toolformer_with_copies() -> tuple[list[dict], dict[str, str]]:
    """60 different prompts behind one preamble, and 6 copies: copy id -> the id it copies."""
    rows = []
    for i, topic in enumerate(TOPICS):
        rows.append({"id": f"info-{i}", "instruction": f"{PREAMBLE}\nQuestion: Find information about {topic}.",
                     "input": "", "output": f"[Search({topic})]"})
        rows.append({"id": f"q-{i}", "instruction": f"{PREAMBLE}\nQuestion: {QUESTIONS[i]}",
                     "input": "", "output": "[Search(answer)]"})
    planted = {
        "copy-info-0": ("info-0", f"{PREAMBLE}\nQuestion: Find some information about {TOPICS[0]}."),
        "copy-info-7": ("info-7", f"{PREAMBLE}\nQuestion: Find information on {TOPICS[7]}."),
        "copy-info-20": ("info-20", f"{PREAMBLE}\nQuestion: find information about {TOPICS[20].upper()}!"),
        "copy-q-2": ("q-2", f"{PREAMBLE}\nQuestion: Who wrote the book War and Peace?"),
        "copy-q-14": ("q-14", f"{PREAMBLE}\n\nQuestion:   {QUESTIONS[14].lower()}"),
        "copy-q-29": ("q-29", f"{PREAMBLE}\nQuestion: Which is the longest river in Asia?"),
    }
    for copy_id, (_, text) in planted.items():
        rows.append({"id": copy_id, "instruction": text, "input": "", "output": "[Search(again)]"})
    return rows, {k: v for k, (v, _) in planted.items()}


def run(runner, tmp_path, rows, *args):
    data, out, report = tmp_path / "in.json", tmp_path / "out.json", tmp_path / "removed.jsonl"
    data.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--report", report, "--json", *args)
    assert result.exit_code == 0, result.stderr
    removed = {json.loads(x)["id"]: json.loads(x) for x in report.read_text().splitlines()}
    return json.loads(result.stdout), [r.id for r in read_records(str(out))], removed


def test_toolformer_preamble_only_real_duplicates_go(runner, tmp_path):
    rows, planted = toolformer_with_copies()
    summary, kept, removed = run(runner, tmp_path, rows, "--near-threshold", "0.6", "--rouge")
    assert {k: v["kept_id"] for k, v in removed.items()} == planted
    assert kept == [r["id"] for r in rows if r["id"] not in planted]
    assert summary["boilerplate"] and summary["warnings"] == []
    assert summary["rows"] == summary["kept"] + sum(summary["removed"].values()) == len(rows)

    # the same by naming the part to compare: the question after the preamble
    summary, kept, removed = run(runner, tmp_path, rows, "--near-threshold", "0.6", "--rouge",
                                 "--ignore-common", "off", "--on-regex", r"Question:\s*(?P<text>.+)")
    assert {k: v["kept_id"] for k, v in removed.items()} == planted and summary["not_compared"] == {}

    # and what the issue saw: compared whole, the preamble makes most of them "duplicates", with a warning
    summary, _, removed = run(runner, tmp_path, rows, "--near-threshold", "0.6", "--ignore-common", "off")
    assert len(removed) > len(rows) / 2 and summary["warnings"]


def test_gsm8k_number_only_differences_stay_real_copies_go(runner, tmp_path):
    problems = gsm8k_like()
    rows = [{"id": p["id"], "instruction": p["question"], "input": "", "output": p["answer"]} for p in problems]
    copies = {
        "copy-0": (problems[0]["id"], problems[0]["question"].replace("in April", "during April")),
        "copy-13": (problems[13]["id"], problems[13]["question"].replace("Yesterday", "Today")),
        "copy-30": (problems[30]["id"], "  " + problems[30]["question"].upper()),
        "copy-45": (problems[45]["id"], problems[45]["question"].replace("writes", "sends")),
    }
    rows += [{"id": k, "instruction": text, "input": "", "output": "?"} for k, (_, text) in copies.items()]
    summary, kept, removed = run(runner, tmp_path, rows, "--near", "--rouge", "--ignore-common", "off")
    assert {k: v["kept_id"] for k, v in removed.items()} == {k: v for k, (v, _) in copies.items()}
    assert kept == [p["id"] for p in problems]  # all 52 problems, whatever their shared template
    assert summary["kept"] == 52 and summary["warnings"] == []
    # with the boilerplate detection on (the default) no problem goes either; a copy whose edit falls in
    # the template text the detection left out (copy-0: "during April" twice) is compared whole and stays
    summary, kept, removed = run(runner, tmp_path, rows, "--near", "--rouge")
    assert {k: v["kept_id"] for k, v in removed.items()} == {k: v for k, (v, _) in copies.items() if k != "copy-0"}
    assert kept == [p["id"] for p in problems] + ["copy-0"]

"""--ignore-common: a template preamble shared by most records is left out of the near/rouge comparison."""

from __future__ import annotations

import json

from conftest import invoke

from itkit.dataset import read_records
from itkit.dedup import DedupOptions, dedup_texts, normalize_text
from itkit.dedup.common import Boilerplate, detect

PREAMBLE = (
    "Your task is to answer the question with the help of tools. You can call Search(query) to get web results, "
    "Calculator(expression) to evaluate arithmetic, Calendar() for today's date and WikiSearch(term) for an "
    "article summary. Write each call in square brackets where it helps, then give the final answer."
)
TOPICS = [
    "the Golden Ratio", "deep sea creatures", "the history of the printing press", "black holes", "the Roman Empire",
    "photosynthesis in desert plants", "the French Revolution", "quantum entanglement", "the Great Barrier Reef",
    "volcanic eruptions in Iceland", "early telephones", "honey bee colonies", "the Silk Road",
    "plate tectonics", "Marie Curie", "ancient Egyptian pyramids", "the water cycle", "jazz in New Orleans",
    "the first moon landing", "migratory birds", "renewable energy storage", "the human immune system",
    "medieval castles", "the Amazon rainforest", "computer history", "tea ceremonies in Japan", "Arctic sea ice",
    "the Olympic Games", "Mount Everest expeditions", "coral bleaching",
]

QUESTIONS = [
    "What is 17 times 23?", "How many days are left until the end of the year?", "Who wrote War and Peace?",
    "Convert 12 miles to kilometres.", "What is the capital of Australia?", "How tall is the Eiffel Tower?",
    "What day of the week was 1 January 2000?", "Which planet has the most moons?", "What is the square root of 1764?",
    "Who painted the Mona Lisa?", "How long does light take to reach Earth from the Sun?", "What is 15% of 240?",
    "When was the Berlin Wall built?", "Which ocean is the deepest?", "How many bones does an adult human have?",
    "What is the boiling point of water at the top of Everest?", "Who discovered penicillin?",
    "How many seconds are in a week?", "What language is spoken in Brazil?", "What is the population of Canada?",
    "Which element has the symbol Fe?", "How far is the Moon?", "Who was the first woman to fly solo across the Atlantic?",
    "What is 2 to the power of 20?", "Which country hosted the 2016 Olympics?", "What is the speed of sound in air?",
    "How many strings does a cello have?", "What year did the Titanic sink?", "Who invented the light bulb?",
    "What is the longest river in Asia?",
]


def toolformer_like() -> list[dict]:
    records = []
    for i, topic in enumerate(TOPICS):
        records.append({"id": f"info-{i}", "instruction": f"{PREAMBLE} Question: Find information about {topic}.",
                        "input": "", "output": f"[Search({topic})]"})
        records.append({"id": f"q-{i}", "instruction": f"{PREAMBLE} Question: {QUESTIONS[i]}",
                        "input": "", "output": "[Calculator(1+1)]"})
    return records


def test_toolformer_preamble_removes_nothing(runner, tmp_path):
    records = toolformer_like()
    data, out = tmp_path / "toolformer.json", tmp_path / "out.json"
    data.write_text(json.dumps(records), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--near-threshold", "0.7", "--rouge")
    assert result.exit_code == 0, result.stderr
    assert [r.id for r in read_records(str(out))] == [r["id"] for r in records]
    err = " ".join(result.stderr.split())
    assert "common text left out of the near/semantic/rouge comparison" in err
    assert "prefix: your task is to answer the question with the help of tools." in err
    assert "warning" not in err

    # compared whole, the preamble makes them all near duplicates, and the warning names the dominant text
    result = invoke(runner, "dedup", data, "-o", out, "--near-threshold", "0.7", "--ignore-common", "off", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["removed"]["near"] > 0.5 * len(records) and summary["boilerplate"] == []
    (warning,) = summary["warnings"]
    assert warning.startswith("the near stage removed ") and "of them as duplicates of record 0:" in warning
    assert "Your task is to answer" in warning
    assert "warning: the near stage removed" in " ".join(result.stderr.split())


def test_warn_share_is_configurable(runner, tmp_path):
    data, out = tmp_path / "d.json", tmp_path / "o.json"
    rows = [{"instruction": "Name a colour.", "input": "", "output": "red"}] * 3 + [
        {"instruction": "Name a fruit.", "input": "", "output": "apple"}]
    data.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--json")
    assert json.loads(result.stdout)["warnings"] == [
        'the exact stage removed 2 of 4 records (50%); 2 of them as duplicates of record 0: "Name a colour."; '
        "check --report, --ignore-common or the threshold"]
    result = invoke(runner, "dedup", data, "-o", out, "--json", "--warn-share", "0.6")
    assert json.loads(result.stdout)["warnings"] == []


def test_detect_finds_prefix_suffix_and_a_repeated_paragraph():
    texts = [normalize_text(f"{PREAMBLE}\n\n{q}\n\nAnswer briefly and cite your sources please.") for q in QUESTIONS]
    found = detect(texts)
    assert found.prefix.startswith("your task is to answer") and found.prefix.endswith("final answer. ")
    assert found.suffix == " answer briefly and cite your sources please."
    assert found.strip(texts[3]) == "convert 12 miles to kilometres."
    # a paragraph repeated in the middle, between different openings and endings
    middle = [normalize_text(f"Topic {t}. {PREAMBLE} What about {t}?") for t in TOPICS]
    found = detect(middle)
    assert not found.prefix and not found.suffix
    assert "calculator(expression) to evaluate arithmetic, calendar() for today's date and wikisearch(term) for an " \
           "article summary" not in found.sentences  # (sentences are words only)
    assert len(found.sentences) == 3
    assert found.strip(middle[0]) == "topic the golden ratio. what about the golden ratio"
    # too few texts, or nothing shared: no boilerplate; a text that is only boilerplate is compared whole
    assert not detect(texts[:5]) and not detect([normalize_text(q) for q in QUESTIONS])
    assert Boilerplate(prefix="abc def").strip("abc def") == "abc def"


def test_library_default_and_off():
    texts = [r["instruction"] for r in toolformer_like()]
    assert dedup_texts(texts, DedupOptions(near=0.7, rouge=0.7)).kept == len(texts)
    off = dedup_texts(texts, DedupOptions(near=0.7, ignore_common="off"))
    assert off.kept < len(texts) / 2 and not off.boilerplate


def test_a_stage_warning_names_a_dominant_text_only_when_there_is_one(runner, tmp_path):
    """Pairs of look-alikes (each removal matches a different kept record): no text is named as the cause."""
    data, out = tmp_path / "d.json", tmp_path / "o.json"
    rows = []
    for i in range(10):
        rows += [{"instruction": f"Write a poem about the colour number {i} and the sea.", "input": "", "output": "a"},
                 {"instruction": f"Write a poem about the colour number {i} and the sea!", "input": "", "output": "b"}]
    data.write_text(json.dumps(rows), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--json", "--ignore-common", "off")
    assert result.exit_code == 0, result.stderr
    (warning,) = json.loads(result.stdout)["warnings"]
    assert warning == (
        "the near stage removed 10 of 20 records (50%); no kept record dominates (the most matched one took 1 of "
        "them): the records are alike in small groups; check --report or the threshold")

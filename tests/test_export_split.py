"""The train/validation split: no exact or near duplicate across it, deterministic, the requested size."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from conftest import invoke
from itkit.export.split import split_records, val_count

WORDS = (
    "river mountain lantern copper violet engine harbor meadow signal orchard basket thunder pebble canyon "
    "whistle marble falcon ribbon glacier compass velvet anchor prairie beacon saddle quartz ember tundra "
    "cobalt willow lagoon summit ferry jasmine bramble citadel monsoon nickel oasis parrot quiver rafter"
).split()


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken"
    if shared.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(shared))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def planted_rows(seed: int = 11) -> tuple[list[dict], int, int]:
    """150 distinct records, 30 exact copies (case/space changed) and 30 near copies (one word changed)."""
    rng = random.Random(seed)
    base = [
        {"id": f"u{i}", "instruction": f"Describe {sentence(rng, 25)}", "input": "", "output": f"It is {sentence(rng, 40)}."}
        for i in range(150)
    ]
    exact = []
    for j, r in enumerate(rng.sample(base, 30)):
        exact.append({**r, "id": f"exact{j}", "instruction": "  " + r["instruction"].upper() + " "})
    near = []
    for j, r in enumerate(rng.sample(base, 30)):
        words = r["output"].split()
        words[rng.randrange(len(words))] = "zebra"
        near.append({**r, "id": f"near{j}", "output": " ".join(words)})
    rows = base + exact + near
    rng.shuffle(rows)
    return rows, len(exact), len(near)


def shingles(text: str, n: int = 5) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def text_of(row: dict) -> str:
    return " ".join(" ".join(row["instruction"].split()).lower().split() + row["output"].lower().split())


def test_no_exact_or_near_duplicate_across_train_and_val(runner, tmp_path):
    rows, n_exact, n_near = planted_rows()
    src = write_jsonl(tmp_path / "planted.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--target", "alpaca", "--val-ratio", "0.3", "--json")
    assert result.exit_code == 0, result.stderr
    sft = json.loads(result.stdout)["modes"]["sft"]
    train = read_jsonl(out / "sft" / "alpaca" / "train.jsonl")
    val = read_jsonl(out / "sft" / "alpaca" / "val.jsonl")
    assert len(train) + len(val) == len(rows)
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in val})
    # independent check: exact (normalised) and near (word 5-gram Jaccard) duplicates across the split
    train_texts = {text_of(r) for r in train}
    train_shingles = [shingles(text_of(r)) for r in train]
    for r in val:
        assert text_of(r) not in train_texts, r["id"]
        s = shingles(text_of(r))
        worst = max(jaccard(s, t) for t in train_shingles)
        assert worst < 0.5, (r["id"], worst)
    # the planted copies were found: moving happened and is reported
    assert sft["split"]["moved_to_train"] > 0
    assert sft["val"] == sft["split"]["requested_val"] == round(0.3 * len(rows))
    assert sft["split"]["refilled"] == sft["split"]["moved_to_train"]


def test_control_without_duplicate_detection_the_planted_copies_leak(runner, tmp_path, monkeypatch):
    """The check above can fail: with every record in its own group, planted copies end up across the split."""
    import itkit.export.pipeline as pipeline

    class NoDuplicates:
        def neighbours(self, i):
            return set()

    monkeypatch.setattr(pipeline, "duplicate_index", lambda records: NoDuplicates())
    rows, _, _ = planted_rows()
    src = write_jsonl(tmp_path / "planted.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--target", "alpaca", "--val-ratio", "0.3", "--quiet")
    assert result.exit_code == 0, result.stderr
    train = [shingles(text_of(r)) for r in read_jsonl(out / "sft" / "alpaca" / "train.jsonl")]
    leaks = [r for r in read_jsonl(out / "sft" / "alpaca" / "val.jsonl") if max(jaccard(shingles(text_of(r)), t) for t in train) >= 0.5]
    assert leaks


def test_lft_split_has_no_leakage_either(runner, tmp_path):
    rows, _, _ = planted_rows(seed=5)
    src = write_jsonl(tmp_path / "planted.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(
        runner, "export", src, "-o", out, "--mode", "lft", "--lft-size", "120", "--target", "trl", "--val-ratio", "0.25",
        "--lft-rules", "none", "--json",
    )
    assert result.exit_code == 0, result.stderr
    lft = json.loads(result.stdout)["modes"]["lft"]
    assert lft["train"] + lft["val"] == 120 and lft["val"] == 30
    flat = lambda r: " ".join(m["content"] for m in r["messages"]).lower()  # noqa: E731
    train = [shingles(flat(r)) for r in read_jsonl(out / "lft" / "trl" / "train.jsonl")]
    for r in read_jsonl(out / "lft" / "trl" / "val.jsonl"):
        assert max(jaccard(shingles(flat(r)), t) for t in train) < 0.5


def test_split_is_deterministic_and_independent_of_input_order(runner, tmp_path):
    rows, _, _ = planted_rows()
    shuffled = rows[:]
    random.Random(99).shuffle(shuffled)
    vals = []
    for name, data in (("a", rows), ("b", shuffled)):
        src = write_jsonl(tmp_path / f"{name}.jsonl", data)
        out = tmp_path / f"out_{name}"
        result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--target", "sharegpt", "--val-size", "25", "--quiet")
        assert result.exit_code == 0, result.stderr
        vals.append(sorted(r["id"] for r in read_jsonl(out / "sft" / "sharegpt" / "val.jsonl")))
    assert vals[0] == vals[1] and len(vals[0]) == 25


def test_split_records_moves_and_refills():
    ids = [f"r{i}" for i in range(10)]
    groups = [0, 0, 1, 1, 1, 3, 4, 5, 6, 7]  # r0/r1 and r2/r3/r4 are duplicates of each other
    neighbours = lambda i: {j for j, g in enumerate(groups) if g == groups[i] and j != i}  # noqa: E731
    for seed in range(20):
        split = split_records(ids, 4, seed, neighbours)
        val_groups = {groups[i] for i in split.val}
        train_groups = {groups[i] for i in split.train}
        assert not val_groups & train_groups
        assert len(split.val) == 4 and len(split.train) == 6
        assert split.refilled == split.moved


def test_val_count():
    assert val_count(100, None, None) == 10  # default 10%
    assert val_count(100, 0.25, None) == 25
    assert val_count(5, 0.1, None) == 1  # at least one when a ratio is asked for
    assert val_count(100, 0.0, None) == 0
    assert val_count(3, None, 10) == 2  # train keeps at least one
    assert val_count(1, 0.5, None) == 0

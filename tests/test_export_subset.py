"""The LFT subset: exact size, determinism, quality filters, and diversity measured against random samples."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from conftest import invoke
from itkit.export.subset import allocate, entropy_bits, select

TOPICS = {
    "cooking": "recipe oven bake flour sugar butter dough knead roast simmer skillet garlic onion",
    "astronomy": "planet star galaxy orbit telescope nebula comet asteroid moon solar eclipse cosmos",
    "finance": "stock bond interest inflation dividend portfolio loan mortgage budget tax equity",
    "gardening": "soil seed compost prune tomato mulch fertilizer weed harvest shrub bloom perennial",
    "programming": "python function variable loop compile debug array string class module syntax",
}


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


def lft_ids(out: Path, target: str = "alpaca") -> list[str]:
    rows = []
    for split in ("train", "val"):
        path = out / "lft" / target / f"{split}.jsonl"
        if path.exists():
            rows += read_jsonl(path)
    return sorted(r["id"] for r in rows)


def topic_rows(counts: dict[str, int], seed: int = 7) -> list[dict]:
    """Alpaca rows whose words come from one topic each (no category field): a skewed topical mix."""
    rng = random.Random(seed)
    rows = []
    for topic, n in counts.items():
        vocab = TOPICS[topic].split()
        for i in range(n):
            words = rng.sample(vocab, 6)
            rows.append(
                {
                    "id": f"{topic}-{i}",
                    "instruction": f"Tell me about {' '.join(words)} number {i}",
                    "input": "",
                    "output": f"Here is an answer about {' and '.join(rng.sample(vocab, 3))}, item {i}.",
                }
            )
    rng.shuffle(rows)
    return rows


def dolly_rows(counts: dict[str, int]) -> list[dict]:
    rows = []
    for category, n in counts.items():
        for i in range(n):
            rows.append(
                {
                    "instruction": f"Write something for {category} request {i} about item {i * 7}",
                    "context": "",
                    "response": f"A useful response for {category} number {i}, with a few words.",
                    "category": category,
                }
            )
    random.Random(3).shuffle(rows)
    return rows


def random_entropies(labels: list[str], size: int, draws: int = 30) -> list[float]:
    return [entropy_bits(list(Counter(random.Random(s).sample(labels, size)).values())) for s in range(draws)]


def test_exact_size_and_determinism(runner, tmp_path):
    src = write_jsonl(tmp_path / "topics.jsonl", topic_rows({"cooking": 150, "astronomy": 60, "finance": 40}))
    outs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        outs[name] = tmp_path / name
        result = invoke(runner, "export", src, "-o", outs[name], "--mode", "lft", "--lft-size", "57", "--seed", seed, "--target", "alpaca", "--quiet")
        assert result.exit_code == 0, result.stderr
    a, b, c = (lft_ids(outs[k]) for k in "abc")
    assert len(a) == len(set(a)) == 57
    assert a == b
    assert (outs["a"] / "lft" / "alpaca" / "train.jsonl").read_bytes() == (outs["b"] / "lft" / "alpaca" / "train.jsonl").read_bytes()
    assert a != c and len(c) == 57


def test_fewer_records_than_the_size_gives_all_that_pass(runner, tmp_path):
    rows = topic_rows({"cooking": 8}) + [{"id": "empty", "instruction": "Say nothing at all please", "input": "", "output": "  "}]
    src = write_jsonl(tmp_path / "few.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "lft", "--target", "alpaca", "--json")
    assert result.exit_code == 0, result.stderr
    assert lft_ids(out) == sorted(f"cooking-{i}" for i in range(8))
    lft = json.loads(result.stdout)["modes"]["lft"]
    assert lft["records"] == 8 and lft["quality"]["removed_by_rule"]["empty"] == 1


def test_quality_filters_are_applied_to_lft_only(runner, tmp_path):
    good = topic_rows({"cooking": 30, "finance": 30})
    bad = [
        {"id": "bad-empty", "instruction": "Describe the oven temperature", "input": "", "output": ""},
        {"id": "bad-placeholder", "instruction": "Describe the mortgage rules", "input": "", "output": "<No Output>"},
        {"id": "bad-na", "instruction": "Describe the bond market", "input": "", "output": "N/A"},
        {"id": "bad-refusal", "instruction": "Describe the stock market", "input": "", "output": "I'm sorry, but I cannot help with that request."},
        {"id": "bad-boilerplate", "instruction": "Describe your favourite recipe", "input": "", "output": "As an AI language model, I do not eat, but flour and butter make dough."},
        {"id": "bad-short", "instruction": "Describe the dough in one go", "input": "", "output": "Sticky."},
        {"id": "bad-long", "instruction": "Describe everything about tax", "input": "", "output": "tax " * 1200},
    ]
    src = write_jsonl(tmp_path / "mixed_quality.jsonl", good + bad)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--target", "alpaca", "--lft-size", "1000", "--val-size", "0", "--json")
    assert result.exit_code == 0, result.stderr
    lft = json.loads(result.stdout)["modes"]["lft"]
    assert lft["quality"]["removed_by_rule"] == {"empty": 1, "placeholder": 2, "refusal": 2, "length": 2}
    assert not [i for i in lft_ids(out) if i.startswith("bad-")]
    assert len(lft_ids(out)) == 60
    sft_ids = {r["id"] for r in read_jsonl(out / "sft" / "alpaca" / "train.jsonl")}
    assert {r["id"] for r in bad} <= sft_ids  # SFT is the full set: not filtered here

    # the rules and bounds can be changed
    out2 = tmp_path / "out2"
    result = invoke(
        runner, "export", src, "-o", out2, "--mode", "lft", "--target", "alpaca", "--val-size", "0",
        "--lft-rules", "empty", "--lft-min-response", "0", "--json",
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["modes"]["lft"]["quality"]["removed_by_rule"] == {"empty": 1}
    assert "bad-refusal" in lft_ids(out2)


def test_category_balance_beats_random_sampling_on_skewed_input(runner, tmp_path):
    counts = {"open_qa": 400, "brainstorming": 40, "classification": 30, "closed_qa": 20, "summarization": 15,
              "creative_writing": 12, "information_extraction": 10, "general_qa": 8}
    rows = dolly_rows(counts)
    src = write_jsonl(tmp_path / "dolly.jsonl", rows)
    out = tmp_path / "out"
    size = 80
    result = invoke(runner, "export", src, "-o", out, "--mode", "lft", "--lft-size", str(size), "--target", "alpaca", "--json")
    assert result.exit_code == 0, result.stderr
    coverage = json.loads(result.stdout)["modes"]["lft"]["coverage"]
    assert coverage["kind"] == "category" and coverage["covered"] == 8
    ids = lft_ids(out)
    assert len(ids) == size
    lineage = {r["id"]: r["category"] for r in read_jsonl(out / "lft" / "lineage.jsonl")}
    subset_h = entropy_bits(list(Counter(lineage[i] for i in ids).values()))
    baseline = random_entropies([r["category"] for r in rows], size)
    # measured: the balanced subset is far more even than any random sample of the same size
    assert subset_h > max(baseline) + 0.5, (subset_h, max(baseline))
    assert subset_h == pytest.approx(coverage["entropy_bits"]["subset"], abs=1e-3)
    # every small category is taken whole, the big one fills the rest
    got = Counter(lineage[i] for i in ids)
    assert got["general_qa"] == 8 and got["information_extraction"] == 10 and got["creative_writing"] == 10


def test_topic_clusters_beat_random_sampling_without_categories(runner, tmp_path):
    counts = {"cooking": 320, "astronomy": 20, "finance": 20, "gardening": 20, "programming": 20}
    rows = topic_rows(counts)
    src = write_jsonl(tmp_path / "topics.jsonl", rows)
    size = 50
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "lft", "--lft-size", str(size), "--target", "alpaca", "--json", "--seed", "5")
    assert result.exit_code == 0, result.stderr
    coverage = json.loads(result.stdout)["modes"]["lft"]["coverage"]
    assert coverage["kind"] == "cluster"
    ids = lft_ids(out)
    assert len(ids) == size
    topic = lambda rid: rid.split("-")[0]  # noqa: E731  the ground truth the exporter never sees
    subset_h = entropy_bits(list(Counter(topic(i) for i in ids).values()))
    baseline = random_entropies([topic(r["id"]) for r in rows], size)
    mean = sum(baseline) / len(baseline)
    # measured: near the ideal log2(5) = 2.32 bits; random samples of the same size average about 1.1
    assert subset_h > max(baseline) + 0.5, (subset_h, max(baseline))
    assert subset_h > mean + 1.0, (subset_h, mean)
    assert {topic(i) for i in ids} == set(counts)


def test_allocate_is_as_even_as_capacities_allow():
    assert allocate({"a": 100, "b": 3, "c": 10}, 30) == {"a": 17, "b": 3, "c": 10}
    assert allocate({"a": 5, "b": 5}, 7) == {"a": 4, "b": 3}
    assert allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}
    assert sum(allocate({str(i): i for i in range(1, 30)}, 100).values()) == 100


def test_select_prefers_distinct_prompts():
    labels = ["x"] * 10
    keys = ["same"] * 8 + ["other1", "other2"]
    chosen = select(labels, 3, seed=1, dup_keys=keys)
    assert len(chosen) == 3
    assert {keys[i] for i in chosen} == {"same", "other1", "other2"}


def test_entropy_bits():
    assert entropy_bits([5, 5]) == pytest.approx(1.0)
    assert entropy_bits([10]) == 0.0
    assert entropy_bits([1, 1, 1, 1]) == pytest.approx(math.log2(4))


def test_random_diversity_and_repeated_target_flags(runner, tmp_path):
    src = write_jsonl(tmp_path / "topics.jsonl", topic_rows({"cooking": 60, "finance": 10}))
    out = tmp_path / "out"
    result = invoke(
        runner, "export", src, "-o", out, "--mode", "lft", "--lft-size", "20", "--diversity", "random",
        "-t", "alpaca", "-t", "sharegpt,alpaca", "--json",
    )
    assert result.exit_code == 0, result.stderr
    lft = json.loads(result.stdout)["modes"]["lft"]
    assert lft["coverage"]["kind"] == "random" and lft["records"] == 20
    assert sorted(p.name for p in (out / "lft").iterdir() if p.is_dir()) == ["alpaca", "sharegpt"]
    assert lft_ids(out, "alpaca") == lft_ids(out, "sharegpt")

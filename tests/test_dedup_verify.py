"""MinHash candidates are verified: a near removal needs a true Jaccard >= threshold on the shingle sets."""

from __future__ import annotations

import json
import random

import numpy as np
from conftest import invoke

from itkit.dedup import DedupOptions, MinHasher, dedup_texts, find_near_duplicates, normalize_text
from itkit.dedup.normalize import segments
from itkit.dedup.verify import ShingleSets


def bigrams(text: str) -> set[str]:
    return {" ".join(s[i : i + 2]) for s in segments(normalize_text(text)) for i in range(max(1, len(s) - 1))}


def true_jaccard(a: str, b: str) -> float:
    sa, sb = bigrams(a), bigrams(b)
    return len(sa & sb) / len(sa | sb)


def pairs(seed: int, n: int) -> list[str]:
    """``n`` texts of 40 random words and, after each, a copy with 3 to 7 words changed (true Jaccard ~0.6-0.85)."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    texts = []
    for _ in range(n):
        base = [rng.choice(vocab) for _ in range(40)]
        copy = list(base)
        for p in rng.sample(range(40), rng.randint(3, 7)):
            copy[p] = rng.choice(vocab)
        texts += [" ".join(base), " ".join(copy)]
    return texts


def test_shingle_sets_give_the_exact_jaccard():
    texts = pairs(3, 50)
    hasher, sets = MinHasher(32), ShingleSets()
    from itkit.dedup.minhash import WordBatch

    batch = WordBatch()
    for t in texts:
        hasher.add(normalize_text(t), batch)
    hasher.signatures(batch, sets)
    assert len(sets) == len(texts)
    for i in range(0, len(texts), 2):
        assert sets.jaccard(i, i + 1) == true_jaccard(texts[i], texts[i + 1])
        assert sets.jaccard(i, i) == 1.0


def test_no_removal_below_the_threshold_where_the_estimate_alone_removes_some():
    texts = pairs(7, 400)
    threshold = 0.75
    # few permutations: noisy estimates, so the estimate alone removes pairs below the threshold
    signatures = MinHasher(16).signatures_of_texts(texts)
    unverified = find_near_duplicates(signatures, threshold)
    wrong = [(int(r), int(m)) for r, m in zip(unverified.removed, unverified.matched)
             if true_jaccard(texts[r], texts[m]) < threshold]
    assert len(wrong) >= 10

    decisions = dedup_texts(texts, DedupOptions(exact=False, near=threshold, num_perm=16))
    near = [r for r in decisions.removals if r.stage == "near"]
    assert near
    for r in near:
        assert r.score == true_jaccard(texts[r.index], texts[r.kept_index]) >= threshold
        assert r.estimate is not None and 0 <= r.estimate <= 1
    # recall: the pairs at or above the threshold the estimate alone found are still found
    due = {i + 1 for i in range(0, len(texts), 2) if true_jaccard(texts[i], texts[i + 1]) >= threshold}
    found_before = due & {int(r) for r in unverified.removed}
    assert found_before and found_before <= {r.index for r in near}
    assert np.all(decisions.keep[[i for i in range(0, len(texts), 2)]])  # originals come first and stay


def test_report_gives_estimate_and_true_jaccard(runner, tmp_path):
    texts = pairs(11, 30)
    data, out, report = tmp_path / "d.jsonl", tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    data.write_text("".join(json.dumps({"instruction": t, "output": "x"}) + "\n" for t in texts), encoding="utf-8")
    result = invoke(runner, "dedup", data, "-o", out, "--near-threshold", "0.7", "--report", report, "-q")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert lines and all(x["stage"] == "near" for x in lines)
    for x in lines:
        assert x["score"] == true_jaccard(texts[x["index"]], texts[x["kept_index"]]) >= 0.7
        assert 0 < x["estimate"] <= 1

"""The near stage spilled to disk (signatures, sorted band-key shards, shingle sets) decides as the in-memory one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import invoke

import itkit.dedup.pipeline as pipeline
import itkit.dedup.signing as signing
import itkit.dedup.spill as spill
from itkit.dedup import DedupOptions, Deduplicator, dedup_texts

WORDS = [f"w{i}" for i in range(400)] + ["the", "a", "of", "to", "and", "in", "is"] * 30


def planted(n: int, seed: int = 3) -> tuple[list[str], list[int]]:
    """Texts with exact copies (case and spacing changed), one-word edits and number-only differences."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        kind = rng.random()
        if texts and kind < 0.1:
            texts.append("  " + rng.choice(texts).upper())
        elif texts and kind < 0.25:
            words = rng.choice(texts).split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
        elif texts and kind < 0.3:
            texts.append(rng.choice(texts) + f" {rng.randint(1, 9)}")
        else:
            sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
            texts.append(sentence + ("." if rng.random() < 0.5 else "! and " + rng.choice(WORDS)))
    lengths = [rng.randint(0, 50) for _ in range(n)]
    return texts, lengths


@pytest.fixture
def small_shards(monkeypatch):
    """Spill after 300 texts, hash 128 texts a batch, 250 rows a shard: every code path of the spill runs."""
    monkeypatch.setattr(signing, "SIGNATURE_CHUNK", 128)
    monkeypatch.setattr(spill, "SHARD_ROWS", 250)


@pytest.mark.parametrize(
    "settings",
    [
        dict(near=0.7),
        dict(near=0.7, keep="longest"),
        dict(near=0.8, exact=False),  # several items share a signature row
        dict(near=0.7, numbers="ignore", ignore_common="off"),
        dict(near=0.6, rouge=0.7),
    ],
)
def test_spilled_near_stage_makes_the_same_decisions(settings, small_shards, tmp_path, monkeypatch):
    texts, lengths = planted(2500)
    monkeypatch.setattr(spill.tempfile, "tempdir", str(tmp_path))
    memory = dedup_texts(texts, DedupOptions(**settings), lengths)
    spilled = dedup_texts(texts, DedupOptions(**settings, spill_after=300), lengths)
    assert memory.removed["near"] > 100
    assert spilled.removals == memory.removals
    assert (spilled.keep == memory.keep).all()
    assert list(tmp_path.iterdir()) == []  # the spill folder is gone


def test_spill_dir_spills_from_the_start_and_is_removed(small_shards, tmp_path):
    texts, _ = planted(800)
    seen: list[list[str]] = []
    original = spill.SpilledSignatures.columns

    def columns(self, row_of=None):
        seen.append(sorted(p.name for p in Path(self._spill.path).iterdir()))
        yield from original(self, row_of)

    spill.SpilledSignatures.columns = columns
    try:
        decisions = dedup_texts(texts, DedupOptions(near=0.7, spill_dir=str(tmp_path)))
    finally:
        spill.SpilledSignatures.columns = original
    assert decisions.removals == dedup_texts(texts, DedupOptions(near=0.7)).removals
    assert seen and "shard-1.keys.u64" in seen[0] and "signatures.u32" in seen[0] and "sets.u32" in seen[0]
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_leaves_no_spill_behind(small_shards, tmp_path):
    texts, _ = planted(1000)

    def interrupted():
        yield from texts
        raise KeyboardInterrupt  # what Ctrl-C, SIGTERM and SIGHUP raise (itkit.interrupts)

    with pytest.raises(KeyboardInterrupt):
        with Deduplicator(DedupOptions(near=0.7, spill_dir=str(tmp_path))) as dedup:
            dedup.add_all(interrupted())
    assert list(tmp_path.iterdir()) == []


def test_spill_dir_on_the_command_line(runner, tmp_path):
    texts, _ = planted(600)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"instruction": t, "input": "", "output": "x"}) + "\n" for t in texts))
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    plain = invoke(runner, "dedup", src, "-o", tmp_path / "a.jsonl", "--near-threshold", "0.7", "--report", tmp_path / "a.rep.jsonl", "-q")
    spilled = invoke(
        runner, "dedup", src, "-o", tmp_path / "b.jsonl", "--near-threshold", "0.7", "--report", tmp_path / "b.rep.jsonl",
        "--spill-dir", spill_dir, "-q",
    )
    assert plain.exit_code == spilled.exit_code == 0, spilled.stderr
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.rep.jsonl").read_bytes() == (tmp_path / "b.rep.jsonl").read_bytes()
    assert list(spill_dir.iterdir()) == []
    missing = invoke(runner, "dedup", src, "-o", tmp_path / "c.jsonl", "--near", "--spill-dir", tmp_path / "nowhere", "-q")
    assert missing.exit_code == 1 and "cannot create the dedup spill folder" in missing.stderr
    assert not (tmp_path / "c.jsonl").exists()
    no_near = invoke(runner, "dedup", src, "-o", tmp_path / "d.jsonl", "--spill-dir", spill_dir, "-q")
    assert no_near.exit_code == 2 and "--near" in no_near.stderr


def test_plain_rows_take_the_fast_path_with_the_same_result(runner, tmp_path):
    """Alpaca JSONL rows skip the record (Plain views); a JSON array of the same rows takes the record path."""
    texts, _ = planted(400, seed=5)
    rows = []
    for i, t in enumerate(texts):
        row = {"instruction": t, "input": "", "output": f"answer {i % 7}"}
        if i % 5 == 1:
            row["system"] = "be brief"
        if i % 7 == 2:
            row["input"] = "<noinput>"  # normalised: not plain
        if i % 11 == 3:
            row["extra"] = [1]  # not plain
        if i % 13 == 4:
            row["id"] = f"r{i}"
        rows.append(row)
    fast, slow = tmp_path / "in.jsonl", tmp_path / "json" / "in.json"
    slow.parent.mkdir()
    fast.write_text("".join(json.dumps(r) + "\n" for r in rows))
    slow.write_text(json.dumps(rows))
    outs = []
    for src, name in ((fast, "a"), (slow, "b")):
        result = invoke(runner, "dedup", src, "-o", tmp_path / f"{name}.jsonl", "--near-threshold", "0.7",
                        "--keep", "longest", "--report", tmp_path / f"{name}.rep.jsonl", "-q")
        assert result.exit_code == 0, result.stderr
        outs.append(((tmp_path / f"{name}.jsonl").read_bytes(), (tmp_path / f"{name}.rep.jsonl").read_bytes()))
    assert outs[0] == outs[1]
    assert outs[0][1].count(b'"stage":"near"') > 20

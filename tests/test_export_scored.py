"""Score-aware LFT selection (--lft-select quality|deita): planted scores, near-duplicates and strata."""

from __future__ import annotations

import json
import random
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED, invoke
from itkit.export.deita import SimilarityGuard, select_deita, top_up
from itkit.export.scored import ScoreSummary, rank, score_of, select_quality
from itkit.records import META_SCORES, Record

CATEGORIES = {"brainstorming": 40, "closed_qa": 15, "open_qa": 15, "summarization": 15}
"""Fillers per category: a skewed mix, so a balanced subset is not what score order alone would give."""
GOLD = 5
VOCAB = [f"w{i}x" for i in range(400)]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))


def prompt(rng: random.Random) -> list[str]:
    return rng.sample(VOCAB, 12)


def planted(seed: int = 3) -> list[dict]:
    """Per category: GOLD records scored 5 with distinct prompts, a near-duplicate of each scored 4.8 (one word of
    thirteen changed: Jaccard of the prompts' word bigrams 10/14), and fillers with distinct prompts scored 1 to 4."""
    rng = random.Random(seed)
    rows = []
    for category, fillers in CATEGORIES.items():
        for g in range(GOLD):
            words = prompt(rng)
            twin = list(words)
            twin[6] = "changed"
            for kind, text, score in (("gold", words, 5.0), ("twin", twin, 4.8)):
                rows.append(row(f"{category}-{kind}{g}", text, category, score))
        for f in range(fillers):
            rows.append(row(f"{category}-fill{f}", prompt(rng), category, round(1 + 3 * rng.random(), 2)))
    rng.shuffle(rows)
    return rows


def row(rid: str, words: list[str], category: str, quality: float | None, **scores: float) -> dict:
    out = {
        "id": rid,
        "instruction": "Explain " + " ".join(words),
        "input": "",
        "output": f"An explanation of {' '.join(words[:4])} in a few plain words.",
        "category": category,
    }
    if quality is not None:
        out["metadata"] = {META_SCORES: {"quality": quality, **scores}}
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def lft_rows(out: Path) -> list[dict]:
    rows = []
    for split in ("train", "val"):
        path = out / "lft" / "alpaca" / f"{split}.jsonl"
        if path.exists():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows


def export(runner, tmp_path: Path, rows: list[dict], *args: str, out: str = "out"):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    return invoke(runner, "export", src, "-o", tmp_path / out, "--mode", "lft", "-t", "alpaca", "--val-size", "0", *args)


def chosen(tmp_path: Path, out: str = "out") -> set[str]:
    return {r["id"] for r in lft_rows(tmp_path / out)}


# --- the library ------------------------------------------------------------------------------------------


def test_rank_puts_higher_scores_first_and_draws_ties_from_the_seed():
    scores = [1.0, 5.0, None, 5.0, 3.0, 5.0, 5.0, 5.0]
    order = rank(scores, seed=0)
    assert [scores[i] for i in order] == [5.0] * 5 + [3.0, 1.0, None]
    assert order == rank(scores, seed=0)
    ties = {tuple(rank(scores, seed=s)[:5]) for s in range(10)}
    assert len(ties) > 1, "the seed must decide the order of equal scores"


def test_score_of_multiplies_named_scores_and_refuses_what_is_not_a_number():
    record = Record.single_turn("a", "q", "r", metadata={META_SCORES: {"quality": 4.5, "complexity": 2}})
    assert score_of(record, ["quality"]) == 4.5
    assert score_of(record, ["quality", "complexity"]) == 9.0
    assert score_of(record, ["helpfulness"]) is None
    assert score_of(Record.single_turn("b", "q", "r"), ["quality"]) is None
    for bad in ("4", True, float("nan"), float("inf"), [4]):
        with pytest.raises(Exception, match="finite number"):
            score_of(Record.single_turn("c", "q", "r", metadata={META_SCORES: {"quality": bad}}), ["quality"])
    with pytest.raises(Exception, match="object of scorer name"):
        score_of(Record.single_turn("d", "q", "r", metadata={META_SCORES: 4}), ["quality"])


def test_select_quality_takes_the_best_of_each_stratum_as_evenly_as_the_strata_allow():
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 2
    scores = [float(i) for i in range(10)] + [float(i) / 10 for i in range(10)] + [0.0, 0.1]
    picks = select_quality(labels, scores, 8, seed=0)
    assert Counter(labels[i] for i in picks) == {"a": 3, "b": 3, "c": 2}
    assert {i for i in picks if labels[i] == "a"} == {7, 8, 9}
    assert {i for i in picks if labels[i] == "b"} == {17, 18, 19}


def test_the_guard_skips_at_or_above_the_threshold_and_takes_below_it():
    base = " ".join(VOCAB[:12])
    one_change = base.replace(VOCAB[6], "changed")  # bigrams: 9 shared of 13
    texts = [base, one_change, " ".join(VOCAB[12:24])]
    for threshold, similar in ((9 / 13, True), (9 / 13 + 0.01, False)):
        guard = SimilarityGuard(texts, threshold)
        guard.prepare([0, 1, 2])
        guard.take(0)
        hit = guard.nearest(1)
        assert (hit is not None) == similar, threshold
        if similar:
            assert hit == (0, pytest.approx(9 / 13))
        assert guard.nearest(2) is None


def test_select_deita_skips_near_duplicates_of_taken_records_and_fills_only_when_it_must():
    base = [" ".join(VOCAB[i * 12 : i * 12 + 12]) for i in range(4)]
    texts = base + [t.replace(t.split()[6], "changed") for t in base]
    scores = [5.0, 4.0, 3.0, 2.0, 4.9, 3.9, 2.9, 1.9]
    labels = ["x"] * 8
    found = select_deita(labels, scores, texts, 4, seed=0, threshold=0.5)
    assert found.chosen == [0, 1, 2, 3]
    assert [(s.index, s.like) for s in found.skipped] == [(4, 0), (5, 1), (6, 2)]
    assert found.filled == 0
    more = select_deita(labels, scores, texts, 6, seed=0, threshold=0.5)
    assert more.chosen == [0, 1, 2, 3, 4, 5] and more.filled == 2
    assert [s.index for s in more.skipped] == [6, 7]


def test_the_top_up_goes_to_the_strata_with_fewest_records_first():
    spare = {"a": [100], "b": [10, 11, 12], "c": [20, 21, 22]}
    assert top_up(Counter({"a": 5, "c": 1}), spare, 4) == [10, 20, 11, 21]
    assert top_up(Counter({"a": 5}), {"a": [1, 2]}, 5) == [1, 2], "no more than there are"


def test_score_summary_lists_values_only_when_few():
    few = ScoreSummary.of([5.0, 4.0, 4.0, None])
    assert (few.records, few.unscored, few.min, few.max, few.median) == (4, 1, 4.0, 5.0, 4.0)
    assert few.values == {"5": 1, "4": 2}
    assert ScoreSummary.of([i / 7 for i in range(50)]).values is None


# --- the command ------------------------------------------------------------------------------------------


def test_deita_takes_high_scores_skips_near_duplicates_and_keeps_strata_balanced(runner, tmp_path):
    rows = planted()
    result = export(runner, tmp_path, rows, "--lft-size", "40", "--lft-select", "deita")
    assert result.exit_code == 0, result.stderr
    ids = chosen(tmp_path)
    assert len(ids) == 40
    by_category = Counter(rid.split("-")[0] for rid in ids)
    assert by_category == {c: 10 for c in CATEGORIES}, "10 per category although brainstorming has twice the records"
    golds = {r["id"] for r in rows if "-gold" in r["id"]}
    twins = {r["id"] for r in rows if "-twin" in r["id"]}
    assert golds <= ids and not twins & ids
    # the rest of each category: its best fillers
    score = {r["id"]: r["metadata"][META_SCORES]["quality"] for r in rows}
    for category in CATEGORIES:
        fillers = sorted((rid for rid in score if rid.startswith(category + "-fill")), key=lambda rid: -score[rid])
        assert {rid for rid in ids if rid.startswith(category + "-fill")} == set(fillers[:5])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    selection = manifest["modes"]["lft"]["selection"]
    assert selection["method"] == "deita" and selection["similarity"] == 0.5
    assert selection["skipped_similar"] == 20 and selection["filled"] == 0
    assert all(e["id"].replace("twin", "gold") == e["like"] for e in selection["examples"])
    assert all(e["jaccard"] == pytest.approx(10 / 14, abs=1e-3) for e in selection["examples"])
    assert "of which similar to a taken one" in result.stderr


def test_quality_takes_the_highest_scores_per_stratum_near_duplicates_included(runner, tmp_path):
    rows = planted()
    result = export(runner, tmp_path, rows, "--lft-size", "40", "--lft-select", "quality")
    assert result.exit_code == 0, result.stderr
    ids = chosen(tmp_path)
    assert Counter(rid.split("-")[0] for rid in ids) == {c: 10 for c in CATEGORIES}
    assert ids == {r["id"] for r in rows if "-gold" in r["id"] or "-twin" in r["id"]}


def test_a_higher_similarity_threshold_lets_near_duplicates_through(runner, tmp_path):
    rows = planted()
    result = export(runner, tmp_path, rows, "--lft-size", "40", "--lft-select", "deita", "--lft-similarity", "0.75")
    assert result.exit_code == 0, result.stderr
    assert chosen(tmp_path) == {r["id"] for r in rows if "-gold" in r["id"] or "-twin" in r["id"]}


def test_diverse_ignores_the_scores(runner, tmp_path):
    rows = planted()
    result = export(runner, tmp_path, rows, "--lft-size", "40")
    assert result.exit_code == 0, result.stderr
    ids = chosen(tmp_path)
    assert Counter(rid.split("-")[0] for rid in ids) == {c: 10 for c in CATEGORIES}
    assert not {r["id"] for r in rows if "-gold" in r["id"]} <= ids
    assert "selection" in json.loads((tmp_path / "out" / "manifest.json").read_text())["modes"]["lft"]


def test_the_product_of_several_scores_ranks_the_records(runner, tmp_path):
    rng = random.Random(1)
    rows = [
        row("good-answer-easy", prompt(rng), "x", 5.0, complexity=1.0),
        row("fair-answer-hard", prompt(rng), "x", 3.0, complexity=4.0),
        row("poor-answer-hard", prompt(rng), "x", 1.0, complexity=5.0),
    ]
    one = ("--lft-size", "1", "--diversity", "random")
    assert export(runner, tmp_path, rows, *one, "--lft-select", "quality").exit_code == 0
    assert chosen(tmp_path) == {"good-answer-easy"}
    result = export(
        runner, tmp_path, rows, *one, "--lft-select", "deita", "--lft-score", "quality,complexity", out="o2"
    )
    assert result.exit_code == 0, result.stderr
    assert chosen(tmp_path, "o2") == {"fair-answer-hard"}
    card = (tmp_path / "o2" / "README.md").read_text()
    assert "`quality x complexity` score (the product of the scores)" in card


def test_same_seed_same_subset_another_seed_other_ties(runner, tmp_path):
    rng = random.Random(2)
    rows = [row(f"r{i}", prompt(rng), "x", 4.0) for i in range(30)]
    runs = []
    for n, seed in enumerate(("0", "0", "1")):
        assert export(runner, tmp_path, rows, "--lft-size", "10", "--lft-select", "quality", "--seed", seed, out=f"o{n}").exit_code == 0
        runs.append(chosen(tmp_path, f"o{n}"))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_the_card_names_the_selection_and_compares_the_scores(runner, tmp_path):
    result = export(runner, tmp_path, planted(), "--lft-size", "40", "--lft-select", "deita")
    assert result.exit_code == 0, result.stderr
    card = (tmp_path / "out" / "README.md").read_text()
    assert "--lft-select deita: Deita's score-first, diversity-aware selection (Liu et al. 2023)" in card
    assert "20 records skipped as too similar" in card and "spread over category strata" in card
    assert "## Scores" in card
    table = card.split("## Scores", 1)[1].split("\n\n##", 1)[0]
    lines = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert lines["candidates"].startswith("| candidates | 125 | 0 |")
    assert lines["subset"].startswith("| subset | 40 | 0 |")
    median = lambda line: float(line.split(" | ")[5])  # noqa: E731
    assert median(lines["subset"]) > median(lines["candidates"])
    assert "--lft-select deita --lft-score quality --lft-unscored error --lft-similarity 0.5" in card


def test_a_record_without_the_score_is_a_located_error_and_nothing_is_written(runner, tmp_path):
    rows = planted()
    rows[7] = {k: v for k, v in rows[7].items() if k != "metadata"}
    result = export(runner, tmp_path, rows, "--lft-select", "deita")
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith(f"itkit: error: {tmp_path / 'in.jsonl'}, line 8: field 'metadata.scores.quality': ")
    assert f"record '{rows[7]['id']}' has no 'quality' score; 1 of 125 records has none" in message
    assert "--lft-unscored last" in message and "itkit score SRC -o OUT --scorer quality" in message
    assert not (tmp_path / "out").exists()


def test_no_score_at_all_says_to_score_first(runner, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "metadata"} for r in planted()]
    result = export(runner, tmp_path, rows, "--lft-select", "quality", "--lft-score", "complexity")
    assert result.exit_code == 1
    assert "no record has a 'complexity' score (metadata.scores.complexity): score them first" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unscored_last_ranks_them_below_every_scored_record(runner, tmp_path):
    rows = planted()
    unscored = {r["id"] for r in rows if "-gold" in r["id"]}
    rows = [{k: v for k, v in r.items() if k != "metadata"} if r["id"] in unscored else r for r in rows]
    result = export(runner, tmp_path, rows, "--lft-size", "40", "--lft-select", "quality", "--lft-unscored", "last")
    assert result.exit_code == 0, result.stderr
    assert not chosen(tmp_path) & unscored
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- 20 records have no `quality` score: ranked below every scored record (--lft-unscored last)." in card
    assert "(20 unscored, ranked last)" in result.stderr


@pytest.mark.parametrize("value", ['"4.5"', "true", "[4.5]", '{"q": 1}'])
def test_a_score_that_is_not_a_number_is_a_located_error(runner, tmp_path, value):
    rows = planted()
    src = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines[3] = lines[3].replace('"quality": ' + json.dumps(rows[3]["metadata"][META_SCORES]["quality"]), '"quality": ' + value)
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke(runner, "export", src, "-o", tmp_path / "out", "--lft-select", "quality")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"itkit: error: {src}, line 4: field 'metadata.scores.quality': must be a finite number")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_bad_score_stops_the_export_also_with_on_error_skip(runner, tmp_path):
    rows = planted()
    rows[2]["metadata"][META_SCORES]["quality"] = "high"
    result = export(runner, tmp_path, rows, "--lft-select", "deita", "--on-error", "skip")
    assert result.exit_code == 1
    assert "line 3: field 'metadata.scores.quality': must be a finite number, got 'high'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_sft_only_needs_no_scores(runner, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "metadata"} for r in planted()]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    result = invoke(runner, "export", src, "-o", tmp_path / "out", "--mode", "sft", "--lft-select", "deita")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lft-similarity", "0.3"], "--lft-similarity applies to --lft-select deita, not diverse"),
        (["--lft-select", "quality", "--lft-similarity", "0.3"], "--lft-similarity applies to --lft-select deita"),
        (["--lft-select", "deita", "--lft-similarity", "0"], "--lft-similarity must be above 0 and at most 1"),
        (["--lft-score", "quality"], "--lft-score applies to --lft-select quality or deita, not diverse"),
        (["--lft-unscored", "last"], "--lft-unscored applies to --lft-select quality or deita"),
        (["--lft-select", "deita", "--lft-score", "quality,quality"], "--lft-score names quality twice"),
        (["--lft-select", "deita", "--lft-score", ","], "--lft-score needs scorer names"),
    ],
)
def test_selection_usage_errors(runner, tmp_path, args, message):
    result = export(runner, tmp_path, planted(), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


# --- the recipe -------------------------------------------------------------------------------------------


def test_recipe_export_block_selects_with_deita(runner, tmp_path):
    write_jsonl(tmp_path / "scored.jsonl", planted())
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            """
            name: scored
            sources:
              - path: scored.jsonl
            steps:
              - dedup: {}
            export:
              mode: lft
              target: alpaca
              lft_size: 40
              val_size: 0
              lft_select: deita
              lft_score: quality
              lft_similarity: 0.5
            """
        ),
        encoding="utf-8",
    )
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    manifests = list((tmp_path / "runs").rglob("manifest.json"))
    assert len(manifests) == 1
    out = manifests[0].parent
    ids = {r["id"] for r in lft_rows(out)}
    assert len(ids) == 40 and not any("-twin" in rid for rid in ids)
    assert json.loads(manifests[0].read_text())["modes"]["lft"]["selection"]["skipped_similar"] == 20


def test_recipe_rejects_a_bad_selection_with_its_line(runner, tmp_path):
    write_jsonl(tmp_path / "scored.jsonl", planted())
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("sources:\n  - path: scored.jsonl\nexport:\n  lft_select: best\n", encoding="utf-8")
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "line 4" in result.stderr and "lft_select" in result.stderr
    recipe.write_text("sources:\n  - path: scored.jsonl\nexport:\n  lft_similarity: 0.4\n", encoding="utf-8")
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "--lft-similarity applies to --lft-select deita" in result.stderr


def test_the_readme_pipeline_recipe_validates(tmp_path):
    """The README's filter -> dedup -> decontaminate -> score -> export recipe: valid as written (the score step
    is left out while itkit has no score step)."""
    from itkit.recipes.schema import load_recipe
    from itkit.recipes.steps import STEPS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- scored-recipe -->", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(block)
    assert [next(iter(s)) for s in data["steps"]] == ["filter", "dedup", "decontaminate", "score"]
    assert data["export"]["lft_select"] == "deita"
    if "score" not in STEPS:
        data["steps"] = [s for s in data["steps"] if "score" not in s]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    recipe = load_recipe(path, check_files=False)
    assert recipe.export is not None

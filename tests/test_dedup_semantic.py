"""The semantic dedup stage: paraphrases MinHash misses, unrelated texts kept, threshold, greedy rule, ANN index,
offline WordLlama, a local model2vec folder, the CLI and a recipe step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, invoke

pytest.importorskip("wordllama")
pytest.importorskip("faiss")

import numpy as np  # noqa: E402

from itkit.dedup import DedupOptions, dedup_texts  # noqa: E402
from itkit.dedup.semantic import (  # noqa: E402
    DEFAULT_SEMANTIC,
    check_available,
    find_semantic_duplicates,
    load_embedder,
)
from itkit.errors import UsageError  # noqa: E402

# (kept, paraphrase): word bigrams share little, so MinHash at 0.7 keeps both
PARAPHRASES = [
    ("How do I reverse a string in Python?", "What is the way to reverse a string using Python?"),
    ("What is the capital of Australia?", "Which city is Australia's capital?"),
    ("Summarize the article below in two sentences.", "In two sentences, give a summary of the following article."),
]
# related but different tasks: they must stay
UNRELATED = [
    "What is the capital of Canada?",
    "How do I sort a list in Python?",
    "Translate the following sentence into French.",
    "Translate the following sentence into German.",
    "Explain how a car engine works.",
    "Give three tips for staying healthy.",
]
TEXTS = [t for pair in PARAPHRASES for t in pair] + UNRELATED


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


def cosine(embedder, a: str, b: str) -> float:
    va, vb = embedder.embed([a.lower(), b.lower()]).astype(np.float64)
    return float(va @ vb)


def test_paraphrases_that_minhash_misses_are_semantic_duplicates_and_unrelated_texts_stay():
    near = dedup_texts(TEXTS, DedupOptions(near=0.7))
    assert near.kept == len(TEXTS)  # MinHash sees no near-duplicate here
    both = dedup_texts(TEXTS, DedupOptions(near=0.7, semantic=DEFAULT_SEMANTIC))
    assert [(r.stage, TEXTS[r.index], TEXTS[r.kept_index]) for r in both.removals] == [
        ("semantic", b, a) for a, b in PARAPHRASES
    ]
    assert all(r.score >= DEFAULT_SEMANTIC for r in both.removals)
    assert [TEXTS[i] for i in np.flatnonzero(both.keep)] == [a for a, _ in PARAPHRASES] + UNRELATED
    assert both.removed == {"exact": 0, "near": 0, "semantic": 3}


def test_the_threshold_decides_and_the_score_is_the_exact_cosine(embedder):
    a, b = PARAPHRASES[1]
    score = cosine(embedder, a, b)
    below = dedup_texts([a, b], DedupOptions(semantic=score - 0.005))
    assert [r.index for r in below.removals] == [1]
    assert below.removals[0].score == pytest.approx(score, abs=1e-6)
    above = dedup_texts([a, b], DedupOptions(semantic=min(1.0, score + 0.005)))
    assert above.removals == [] and above.kept == 2


def test_keep_longest_and_the_survivor_is_named():
    a, b = PARAPHRASES[0]
    decisions = dedup_texts([a, b], DedupOptions(semantic=0.85, keep="longest"), response_lengths=[1, 50])
    assert [(r.index, r.kept_index) for r in decisions.removals] == [(0, 1)]


def test_numbers_significant_keeps_problems_that_differ_in_their_numbers():
    problems = [
        "A farmer has 3 cows and buys 5 more. How many cows does he have?",
        "A farmer has 4 cows and buys 7 more. How many cows does he have?",
    ]
    assert dedup_texts(problems, DedupOptions(semantic=0.9)).kept == 2
    ignored = dedup_texts(problems, DedupOptions(semantic=0.9, numbers="ignore"))
    assert [(r.stage, r.index, r.kept_index) for r in ignored.removals] == [("semantic", 1, 0)]


def test_a_shared_preamble_is_left_out_of_the_embedding():
    preamble = (
        "You have access to the following tools: Calculator, Calendar, WikiSearch, MachineTranslator. "
        "Use them to answer the question, calling one tool per line. Question: "
    )
    topics = [
        "the Golden Ratio", "deep sea creatures", "the French Revolution", "black holes", "honey bees",
        "the Roman Empire", "volcanoes", "the human heart", "jazz music", "solar panels", "the Amazon river",
        "chess openings", "the printing press", "coral reefs", "quantum computing", "the Silk Road",
        "tectonic plates", "the immune system", "Renaissance painting", "electric cars", "glaciers",
        "the stock market", "ancient Egypt", "machine learning",
    ]
    texts = [f"{preamble}Find information about {t}." for t in topics]
    whole = dedup_texts(texts, DedupOptions(semantic=0.85, ignore_common="off"))
    assert whole.removed["semantic"] > len(texts) // 2  # the preamble dominates the mean of the tokens
    stripped = dedup_texts(texts, DedupOptions(semantic=0.85))
    assert stripped.boilerplate and stripped.kept == len(texts)


def test_greedy_rule_matches_only_kept_texts_and_ties_go_to_the_first():
    # b is close to a and to c; a and c are not close: b goes (matched to a), c stays
    a = np.array([1.0, 0.0, 0.0])
    c = np.array([0.0, 1.0, 0.0])
    b = (a + c) / np.linalg.norm(a + c)  # cos 0.707 with both
    vectors = np.stack([a, b, c]).astype(np.float32)
    result = find_semantic_duplicates(vectors, 0.7)
    assert result.removed.tolist() == [1] and result.matched.tolist() == [0]
    # visiting c first: b matches c (the kept one visited first among equals)
    result = find_semantic_duplicates(vectors, 0.7, priority=np.array([2, 1, 0]))
    assert result.removed.tolist() == [1] and result.matched.tolist() == [2]
    # the same across blocks (b decided through the index of earlier blocks)
    result = find_semantic_duplicates(vectors, 0.7, block=1)
    assert result.removed.tolist() == [1] and result.matched.tolist() == [0]


def planted(n: int, copies: int, seed: int = 0) -> tuple[np.ndarray, set[int]]:
    """``n`` random unit vectors, ``copies`` of them followed later by a slightly moved copy."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 64)).astype(np.float32)
    dup = set(rng.choice(np.arange(n // 2, n), copies, replace=False).tolist())
    for i in sorted(dup):
        vectors[i] = vectors[i - n // 2] + 0.1 * rng.standard_normal(64).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, dup


@pytest.mark.parametrize("flat_limit", [10**9, 100], ids=["exact-index", "ivf-index"])
def test_the_index_finds_the_planted_copies_across_blocks_and_is_deterministic(flat_limit):
    vectors, dup = planted(6000, 300)
    runs = [find_semantic_duplicates(vectors, 0.9, block=256, flat_limit=flat_limit) for _ in range(2)]
    assert set(runs[0].removed.tolist()) == dup
    assert all((runs[0].matched == np.asarray(runs[0].removed) - 3000).tolist())
    assert runs[0].compared < 6000 * 5999 // 2 // 4  # not all pairs
    for field in ("removed", "matched", "score"):
        assert np.array_equal(getattr(runs[0], field), getattr(runs[1], field))


def test_the_same_decisions_twice_and_in_a_fresh_process():
    first = dedup_texts(TEXTS * 3, DedupOptions(exact=False, semantic=0.8))
    second = dedup_texts(TEXTS * 3, DedupOptions(exact=False, semantic=0.8))
    assert first.removals == second.removals
    code = (
        "from itkit.dedup import DedupOptions, dedup_texts\n"
        f"d = dedup_texts({TEXTS * 3!r}, DedupOptions(exact=False, semantic=0.8))\n"
        "print([(r.index, r.kept_index, r.score) for r in d.removals])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([(r.index, r.kept_index, r.score) for r in first.removals])


def test_wordllama_pooling_is_wordllamas_own_and_bounded(embedder, monkeypatch):
    import wordllama

    from itkit.dedup import semantic

    model = wordllama.WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    texts = ["hello world", "a much longer text " * 200, "x", "Émile était là", "How do I bake bread?"]
    monkeypatch.setattr(semantic, "POOL_TOKENS", 7)  # long texts pooled over several windows
    assert np.abs(model.embed(texts, norm=True) - embedder.embed(texts)).max() < 1e-5
    assert not embedder.embed([""]).any()  # no tokens: a zero row (similar to nothing)


def test_wordllama_loads_offline_from_its_wheel_without_touching_the_root_logger(tmp_path):
    code = textwrap.dedent(
        """
        import logging, socket
        def refuse(*a, **k):
            raise OSError("network is off in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from itkit.dedup.semantic import load_embedder
        e = load_embedder()
        v = e.embed(["How do I bake bread?"])
        print(e.name, v.shape, len(logging.getLogger().handlers))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["wordllama", "l2_supercat", "256d", "(1,", "256)", "0"]
    assert not (tmp_path / ".cache").exists()  # nothing downloaded, nothing cached


def test_missing_packages_are_a_usage_error_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a))
    with pytest.raises(UsageError, match=r"--semantic needs faiss-cpu: pip install 'itkit\[semantic\]'"):
        check_available(None)


# -- a local model2vec folder (--embedding-model)


def make_model2vec(folder: Path) -> Path:
    """A tiny model2vec folder: "invert"/"reverse", "text"/"string", "with"/"in" share their vectors."""
    pytest.importorskip("model2vec")
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1}
    for word in "reverse a string in python invert text with cats are nice".split():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    vectors = np.random.default_rng(0).standard_normal((len(vocab), 16)).astype(np.float32)
    for a, b in (("invert", "reverse"), ("text", "string"), ("with", "in")):
        vectors[vocab[a]] = vectors[vocab[b]]
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(str(folder))
    return folder


def write_jsonl(path: Path, instructions: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "instruction": t, "input": "", "output": "ok"}) + "\n"
                for i, t in enumerate(instructions)),
        encoding="utf-8",
    )
    return path


def test_a_local_model2vec_folder_is_used_instead_of_wordllama(runner, tmp_path):
    model = make_model2vec(tmp_path / "m2v")
    src = write_jsonl(tmp_path / "in.jsonl", ["Reverse a string in Python", "invert a text with python", "cats are nice"])
    out, report = tmp_path / "out.jsonl", tmp_path / "removed.jsonl"
    result = invoke(runner, "dedup", src, "-o", out, "--semantic-threshold", "0.99", "--embedding-model", model,
                    "--report", report, "-q")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r0", "r2"]
    (line,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert (line["stage"], line["id"], line["kept_id"]) == ("semantic", "r1", "r0")
    assert line["score"] == pytest.approx(1.0, abs=1e-6)


def test_a_sentence_transformers_folder_is_loaded_on_the_cpu_from_local_files(runner, tmp_path, monkeypatch):
    """The wiring (folder kind, load and encode arguments) with a stand-in for the package, which needs torch."""
    import importlib.machinery
    import types

    calls = []

    class SentenceTransformer:
        def __init__(self, path, **kwargs):
            calls.append((path, kwargs))

        def encode(self, texts, **kwargs):
            calls.append(kwargs)
            return np.asarray([[1.0, 0.0] if "python" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    fake = types.ModuleType("sentence_transformers")
    fake.__spec__ = importlib.machinery.ModuleSpec("sentence_transformers", None)
    fake.SentenceTransformer = SentenceTransformer
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake)
    model = tmp_path / "st"
    model.mkdir()
    (model / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]')
    (model / "config_sentence_transformers.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    (model / "tokenizer.json").write_text("{}")
    src = write_jsonl(tmp_path / "in.jsonl", ["Reverse a string in Python", "Python: reverse it", "cats are nice"])
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", src, "-o", out, "--semantic", "--embedding-model", model, "-q")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["r0", "r2"]
    assert calls[0] == (str(model), {"device": "cpu", "local_files_only": True})
    assert calls[1] == {"convert_to_numpy": True, "normalize_embeddings": True}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--embedding-model", "m"], "--embedding-model is the model of the semantic stage; add --semantic"),
        (["--semantic", "--embedding-model", "nowhere"], "--embedding-model nowhere: not a folder"),
        (["--semantic", "--embedding-model", "."], "neither a model2vec folder"),
        (["--semantic-threshold", "0"], "the semantic cosine threshold must be in (0, 1], not 0.0"),
        (["--semantic-threshold", "1.5"], "the semantic cosine threshold must be in (0, 1], not 1.5"),
    ],
)
def test_bad_semantic_options_are_usage_errors(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    src = write_jsonl(tmp_path / "in.jsonl", ["a", "b"])
    result = invoke(runner, "dedup", src, "-o", tmp_path / "out.jsonl", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "out.jsonl").exists()


# -- end to end


def test_cli_end_to_end_with_report_and_json_summary(runner, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", TEXTS + [TEXTS[0].upper()])
    out, report = tmp_path / "out.jsonl", tmp_path / "removed.jsonl"
    result = invoke(runner, "dedup", src, "-o", out, "--near", "--semantic", "--report", report, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stages"] == ["exact", "near", "semantic"]
    assert summary["removed"] == {"exact": 1, "near": 0, "semantic": 3}
    assert summary["kept"] == len(TEXTS) - 3
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["stage"], r["index"], r["kept_index"]) for r in lines] == [
        ("semantic", 1, 0), ("semantic", 3, 2), ("semantic", 5, 4), ("exact", len(TEXTS), 0)
    ]
    first = lines[0]
    assert (first["id"], first["kept_id"], first["text"], first["kept_text"]) == ("r1", "r0", TEXTS[1], TEXTS[0])
    assert first["score"] >= DEFAULT_SEMANTIC and "estimate" not in first
    kept = [json.loads(line)["instruction"] for line in out.read_text().splitlines()]
    assert kept == [a for a, _ in PARAPHRASES] + UNRELATED


def test_cli_summary_table_names_the_stage(runner, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    result = invoke(runner, "dedup", src, "-o", tmp_path / "out.jsonl", "--semantic")
    assert result.exit_code == 0, result.stderr
    assert "removed: semantic" in result.stderr and "│     3 │" in result.stderr


def test_recipe_step_with_semantic(runner, tmp_path):
    write_jsonl(tmp_path / "data.jsonl", TEXTS)
    make_model2vec(tmp_path / "models" / "m2v")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent(
            """
            name: semantic
            sources: [{path: data.jsonl, format: alpaca}]
            steps:
              - dedup: {semantic: true, semantic_threshold: 0.85}
              - dedup: {exact: false, semantic: true, embedding_model: models/m2v}
            """
        ),
        encoding="utf-8",
    )
    run_dir = tmp_path / "run"
    result = invoke(runner, "run", recipe, "--run-dir", run_dir, "-q")
    assert result.exit_code == 0, result.stderr
    removed = [json.loads(line) for line in (run_dir / "01-dedup" / "removed.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["id"], r["kept_id"]) for r in removed] == [("semantic", "r1", "r0"), ("semantic", "r3", "r2"),
                                                                      ("semantic", "r5", "r4")]
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["steps"][1]["removed"] == {"semantic": 3}
    assert summary["steps"][2]["records_in"] == len(TEXTS) - 3
    # the model's files are part of the step's fingerprint: a changed model re-runs that step only
    assert invoke(runner, "run", recipe, "--run-dir", run_dir, "-q").exit_code == 0
    assert [s["status"] for s in json.loads((run_dir / "run_summary.json").read_text())["steps"]] == ["skipped"] * 3
    with open(tmp_path / "models" / "m2v" / "README.md", "a", encoding="utf-8") as fh:
        fh.write("changed\n")
    assert invoke(runner, "run", recipe, "--run-dir", run_dir, "-q").exit_code == 0
    statuses = [s["status"] for s in json.loads((run_dir / "run_summary.json").read_text())["steps"]]
    assert statuses == ["skipped", "skipped", "ran"]


def test_recipe_errors_name_the_recipe_key(runner, tmp_path):
    write_jsonl(tmp_path / "data.jsonl", TEXTS)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: s\nsources: [{path: data.jsonl}]\nsteps: [{dedup: {embedding_model: m}}]\n", encoding="utf-8")
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run", "-q")
    assert result.exit_code == 2
    assert "embedding_model is the model of the semantic stage; add semantic: true" in " ".join(result.stderr.split())


# -- real data (../shared/realdata; skipped when absent)


def test_self_instruct_seed_tasks_are_175_different_tasks(runner, realdata, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", realdata / "self_instruct_seed_tasks.jsonl", "-o", out, "--semantic", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == {"exact": 0, "semantic": 0}


def test_fastchat_identity_questions_are_paraphrases_of_each_other(runner, realdata, tmp_path):
    report = tmp_path / "removed.jsonl"
    result = invoke(runner, "dedup", realdata / "sharegpt_fastchat_sample.json", "-o", tmp_path / "out.json",
                    "--semantic", "--report", report, "-q")
    assert result.exit_code == 0, result.stderr
    removed = [json.loads(line) for line in report.read_text().splitlines() if '"semantic"' in line]
    assert len(removed) > 50  # "Are you trained by IBM? Have a nice day!" / "Are you trained by IBM?" ...
    assert all(r["score"] >= DEFAULT_SEMANTIC for r in removed)
    # "Are you davinci-001?" and "Are you davinci-002?" differ in a number: never paired (--numbers significant)
    digits = [(sorted(re.findall(r"\d+", r["text"])), sorted(re.findall(r"\d+", r["kept_text"]))) for r in removed]
    assert all(a == b for a, b in digits) and any(a for a, _ in digits)

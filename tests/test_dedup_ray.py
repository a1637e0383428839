"""The Ray executor (``itkit dedup --executor ray``) decides exactly as the local one, on a local Ray.

One Ray runtime (2 CPUs) serves the whole module; the tests that need it are skipped when Ray is not
installed (it is in the ``test`` extra, so CI runs them). The usage errors need no Ray runtime.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

import pytest
from conftest import invoke

from itkit.dedup.pipeline import DedupOptions, dedup_texts

WORDS = (
    "alpha beta gamma delta river mountain forest ocean poem story letter summary recipe garden city "
    "train music colour winter summer planet engine bridge market"
).split()
PREAMBLE = "You can use these tools: search, calculator and calendar. Answer the question after the word Question."


def planted_texts(n: int, seed: int = 7) -> tuple[list[str], list[int]]:
    """Texts with case/space copies, one-word edits, number-only variants, a shared preamble and odd ones."""
    rng = random.Random(seed)
    texts: list[str] = ["", "   ", "Café naïve — résumé of the “déjà vu” story.", "lone \ud800 surrogate text here"]
    while len(texts) < n:
        r = rng.random()
        if r < 0.12:
            texts.append("  ".join(rng.choice(texts).upper().split(" ")))
        elif r < 0.3:
            words = rng.choice(texts).split() or ["empty"]
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            texts.append(" ".join(words))
        elif r < 0.38:
            texts.append(f"Tom has {rng.randint(2, 9)} apples and buys {rng.randint(2, 9)} more. How many apples now?")
        else:
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 18)))
            texts.append(f"{PREAMBLE} Question: {body}" if rng.random() < 0.4 else body.capitalize() + ".")
    return texts, [rng.randint(0, 60) for _ in texts]


def test_an_unreachable_cluster_is_one_line_and_writes_nothing(runner, tmp_path):
    """(First in the module: the local Ray of the other tests is not started yet.)"""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray runtime is already running in this process")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    data = write_alpaca(tmp_path / "data.jsonl", 40)
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"itkit: error: cannot reach the Ray cluster at 127.0.0.1:{port}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not ray.is_initialized() and sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray
    finally:
        ray.shutdown()


CONFIGS = [
    pytest.param(DedupOptions(near=0.7), id="exact+near-first"),
    pytest.param(DedupOptions(near=0.8, exact=False, keep="longest", numbers="ignore", ngram=3), id="near-longest-no-exact"),
    pytest.param(DedupOptions(near=0.6, ignore_common="off", num_perm=64, seed=5), id="near-whole-texts"),
]


@pytest.mark.parametrize("options", CONFIGS)
def test_same_decisions_as_the_local_executor(local_ray, options):
    from itkit.dedup.ray_executor import RayDeduplicator

    texts, lengths = planted_texts(1500)
    local = dedup_texts(texts, options, lengths)
    with RayDeduplicator(options, shard_rows=400) as dedup:  # 4 shards, 2 shuffle partitions
        dedup.add_all(texts, lengths)
        ray = dedup.finish()
    assert local.removed.get("near", 0) > 50, "the planted duplicates must exercise the near stage"
    assert (ray.keep == local.keep).all()
    assert ray.removals == local.removals  # stage, index, survivor, true Jaccard and estimate of every removal
    assert (ray.removed, ray.entered, ray.boilerplate) == (local.removed, local.entered, local.boilerplate)
    assert ray.kept + len(ray.removals) == len(texts)
    if options.ignore_common == "auto":
        assert ray.boilerplate, "the shared preamble is detected on the driver as in the local run"


def test_exact_only_and_empty_input(local_ray):
    from itkit.dedup.ray_executor import RayDeduplicator

    texts, _ = planted_texts(300, seed=3)
    with RayDeduplicator(DedupOptions()) as dedup:
        dedup.add_all(texts)
        ray = dedup.finish()
    local = dedup_texts(texts, DedupOptions())
    assert ray.removals == local.removals and ray.removed == local.removed and ray.removed["exact"] > 10
    with RayDeduplicator(DedupOptions(near=0.7)) as dedup:
        empty = dedup.finish()
    assert empty.kept == 0 and empty.removals == [] and empty.removed == {"exact": 0, "near": 0}


def write_alpaca(path: Path, n: int = 600) -> Path:
    texts, lengths = planted_texts(n, seed=11)
    rows = [
        {"id": f"r{i}", "instruction": t, "input": "", "output": "y" * (1 + lengths[i])}
        for i, t in enumerate(texts)
        if t.strip() and "\ud800" not in t  # a record needs an instruction; JSON files hold valid UTF-8
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_and_recipe_write_the_same_files_as_the_local_executor(local_ray, runner, tmp_path):
    data = write_alpaca(tmp_path / "data.jsonl")
    outputs = {}
    for executor in ("local", "ray"):
        out, report = tmp_path / f"{executor}.jsonl", tmp_path / f"{executor}-report.jsonl"
        result = invoke(runner, "dedup", data, "-o", out, "--near-threshold", "0.7", "--keep", "longest",
                        "--executor", executor, "--report", report, "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        outputs[executor] = (out.read_bytes(), report.read_bytes(), summary["removed"], summary["kept"])
    assert outputs["ray"] == outputs["local"]
    assert outputs["ray"][2]["near"] > 10
    assert not list(tmp_path.glob(".itkit*")), "no temporary file is left behind"

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: r\nsources:\n  - path: {data.name}\nsteps:\n  - dedup:\n      near_threshold: 0.7\n"
        "      keep: longest\n      executor: ray\n",
        encoding="utf-8",
    )
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    kept = [json.loads(line)["id"] for line in outputs["local"][0].decode().splitlines()]
    written = (tmp_path / "run" / "01-dedup" / "output.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in written] == kept
    removed = (tmp_path / "run" / "01-dedup" / "removed.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(kept) + len(removed) == len(data.read_text(encoding="utf-8").splitlines())


def test_ray_executor_refuses_the_rouge_stage_and_a_stray_address(runner, tmp_path):
    data = write_alpaca(tmp_path / "data.jsonl", 40)
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", data, "-o", out, "--rouge", "--executor", "ray")
    assert result.exit_code == 2
    assert "--executor ray runs the exact and near stages, not rouge: leave out --rouge" in result.stderr
    result = invoke(runner, "dedup", data, "-o", out, "--ray-address", "ray://head:10001")
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: r\nsources:\n  - path: {data.name}\nsteps:\n  - dedup:\n      rouge: true\n      executor: ray\n",
        encoding="utf-8",
    )
    result = invoke(runner, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and "executor: ray runs the exact and near stages, not rouge: leave out rouge: true" in result.stderr
    assert not out.exists() and not (tmp_path / "run").exists()


def test_without_ray_installed_it_is_a_usage_error(runner, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    data = write_alpaca(tmp_path / "data.jsonl", 40)
    out = tmp_path / "out.jsonl"
    result = invoke(runner, "dedup", data, "-o", out, "--near", "--executor", "ray")
    assert result.exit_code == 2
    assert result.stderr.strip() == "itkit: error: the ray executor needs Ray Data, which is not installed: pip install 'itkit[ray]'"
    assert not out.exists()

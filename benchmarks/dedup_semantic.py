"""What ``--semantic`` costs: ``itkit dedup`` with and without the stage on the same file, side by side.

    python benchmarks/dedup_semantic.py [--records 100000]

Generates (once, into benchmarks/_work/) an Alpaca JSONL file of English instructions from
``dedup_data.generate_instructions`` (templates with filled slots, and Self-Instruct seed tasks with
2-8 words edited or spliced together: many near and semantic copies), then runs in subprocesses,
one after the other in this run:

- ``itkit dedup FILE -o OUT --near --json`` (the baseline), and
- ``itkit dedup FILE -o OUT --near --semantic --json`` (WordLlama embeddings, faiss index),

and prints wall time, CPU time and peak RSS (wait4 rusage of each child) of both, the semantic
stage's share (the difference) per 1,000 records, and what each stage removed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"


def ensure_input(n: int) -> Path:
    sys.path.insert(0, str(HERE))
    from dedup_data import generate_instructions

    WORK.mkdir(exist_ok=True)
    data = WORK / f"instructions_{n}.jsonl"
    if not data.exists():
        print(f"generating {n:,} records into {data} ...", flush=True)
        tmp = data.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for i, text in enumerate(generate_instructions(n)):
                fh.write(json.dumps({"id": f"r{i}", "instruction": text, "input": "", "output": f"answer {i}"}) + "\n")
        tmp.rename(data)
    return data


def run(data: Path, *flags: str) -> dict:
    out, report = WORK / "semantic_out.jsonl", WORK / "semantic_report.jsonl"
    cmd = [sys.executable, "-m", "itkit", "dedup", str(data), "-o", str(out), "--report", str(report), "--json", *flags]
    with tempfile.TemporaryFile() as out_fh, tempfile.TemporaryFile() as err_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out_fh, stderr=err_fh, env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out_fh.seek(0)
        err_fh.seek(0)
        stdout, stderr = out_fh.read(), err_fh.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"itkit dedup {' '.join(flags)} failed: {stderr.decode()}")
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss * 1024,
            "summary": json.loads(stdout), "semantic": [r for r in lines if r["stage"] == "semantic"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    data = ensure_input(args.records)
    base = run(data, "--near")
    semantic = run(data, "--near", "--semantic")
    n = args.records
    print(f"\n{n:,} records ({data.stat().st_size / 1e6:.0f} MB), exact + near, with and without --semantic:\n")
    print("| | wall | CPU | peak RSS | removed |")
    print("|---|---:|---:|---:|---|")
    for name, r in (("--near", base), ("--near --semantic", semantic)):
        removed = ", ".join(f"{v:,} {k}" for k, v in r["summary"]["removed"].items())
        print(f"| `{name}` | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['peak'] / 1e9:.2f} GB | {removed} |")
    entered = n - sum(v for k, v in semantic["summary"]["removed"].items() if k in ("exact", "near"))
    extra_wall = semantic["wall"] - base["wall"]
    extra_cpu = semantic["cpu"] - base["cpu"]
    print(
        f"\nthe semantic stage: +{extra_wall:.1f} s wall, +{extra_cpu:.1f} s CPU, "
        f"+{(semantic['peak'] - base['peak']) / 1e6:.0f} MB peak; per 1,000 records: "
        f"{1000 * extra_wall / n:.2f} s wall, {1000 * extra_cpu / n:.2f} s CPU "
        f"({entered:,} records reached it)"
    )
    pairs = semantic["semantic"]
    print("\nsemantic removals, every len/5-th by score (removed || kept):")
    for r in sorted(pairs, key=lambda r: r["score"])[:: max(1, len(pairs) // 5)]:
        print(f"  {r['score']:.3f}  {r['text'][:60]} || {r['kept_text'][:60]}")


if __name__ == "__main__":
    main()

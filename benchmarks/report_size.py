"""Benchmark: the size and cost of `itkit report` on a large run, beside the run itself.

    python benchmarks/report_size.py                    # 100,000 records
    python benchmarks/report_size.py --records 20000    # a quicker run

Generates Alpaca records (5% empty responses, 3% refusals, 8% exact and 4% near duplicates) into
benchmarks/_work/ (gitignored), runs a recipe (filter, exact + near dedup, export of LFT and SFT for TRL),
then `itkit report` on the run folder, each in its own subprocess. Prints the page's size, the report's wall
time as a ratio of the run's, and both peak RSS figures.

Targets (issue 18): the page stays under 5 MB (it shows samples, never every record) and the report takes
less time than the run it describes. Exit status 0 when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "report"
SIZE_TARGET_MB = 5.0
TIME_RATIO_TARGET = 1.0
SEED = 18
WORDS = ("river garden engine planet violin harbor market lantern orbit signal meadow copper "
         "ladder puzzle winter canyon tunnel beacon velvet summit").split()

RECIPE = """
name: report-bench
sources:
  - {path: data.jsonl, format: alpaca}
steps:
  - filter: {}
  - dedup: {near: true}
export:
  mode: both
  target: [trl]
  lft_size: 1000
report: false
"""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(path: Path, records: int) -> None:
    rng = random.Random(SEED)
    rows = []
    with path.open("w", encoding="utf-8") as fh:
        for i in range(records):
            roll = rng.random()
            if rows and roll < 0.08:
                row = dict(rng.choice(rows))
            elif rows and roll < 0.12:
                base = rng.choice(rows)
                words = base["instruction"].split()
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                row = {**base, "instruction": " ".join(words)}
            else:
                instruction = f"Task {i}: " + " ".join(sentence(rng, rng.randint(8, 20)) for _ in range(2))
                output = " ".join(sentence(rng, rng.randint(6, 18)) for _ in range(rng.randint(1, 8)))
                if roll < 0.17:
                    output = ""
                elif roll < 0.20:
                    output = "As an AI language model, I cannot do that."
                row = {"instruction": instruction, "input": "", "output": output}
            if len(rows) < 5000:
                rows.append(row)
            fh.write(json.dumps(row) + "\n")


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a subprocess."""
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / f"data-{args.records}.jsonl"
    if not data.exists():
        generate(data, args.records)
    shutil.copy(data, WORK / "data.jsonl")
    (WORK / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    run_dir = WORK / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    itkit = [sys.executable, "-m", "itkit"]
    run_s, run_rss = timed([*itkit, "run", "recipe.yaml", "--run-dir", str(run_dir), "-q"], WORK)
    page = WORK / "report.html"
    page.unlink(missing_ok=True)
    report_s, report_rss = timed([*itkit, "report", str(run_dir), "-o", str(page), "-q"], WORK)
    size_mb = page.stat().st_size / 1e6
    summary = json.loads((run_dir / "run_summary.json").read_text(encoding="utf-8"))
    removed = sum(sum(s["removed"].values()) for s in summary["steps"] if s["type"] != "export")
    print(f"records: {args.records:,} in, {removed:,} removed by filter and dedup")
    print(f"itkit run:    {run_s:7.1f} s   peak RSS {run_rss:6.0f} MB")
    print(f"itkit report: {report_s:7.1f} s   peak RSS {report_rss:6.0f} MB   ratio report/run {report_s / run_s:.2f} (target < {TIME_RATIO_TARGET})")
    print(f"report.html:  {size_mb:.2f} MB (target < {SIZE_TARGET_MB} MB)")
    return 0 if size_mb < SIZE_TARGET_MB and report_s / run_s < TIME_RATIO_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: start-up of `itkit --help` and `itkit convert --help` beside `python -c "import typer"`.

    python benchmarks/startup.py              # 15 rounds
    python benchmarks/startup.py --runs 40    # steadier medians

Each round runs every contender once, one after the other, each in its own fresh process (the installed
interpreter, ``python -m itkit``), so load on the machine hits them alike. Wall time and CPU time (user +
system, from os.wait4's rusage of that very process) are reported as medians, with the ratio to the typer
baseline: a CLI built on Typer cannot start faster than Typer imports. A two-command Typer app's --help is
shown too: Typer's rich help formatting alone costs about as much again as importing Typer.

Targets (issue 17): `itkit --help` and `itkit convert --help` <= 0.2 s on a quiet 2-core machine, where
`import typer` takes 0.07-0.1 s. Typer's own rich help already costs ~2.3x `import typer` (it imports rich's
markdown and, for a command's --help, pydantic), so the ratio that shows what itkit adds is the one to the
same help of a bare two-command Typer app (`app --help`, `app one --help`): target <= 1.2x. On a busy
machine compare the ratios (CPU ratio is the steadier one), not the absolute times. Exit status 0 when the
CPU ratios to the bare app are within the target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.2
TARGET_RATIO = 1.2
"""itkit's --help over the same help of a bare two-command Typer app (CPU time)."""
TYPER_APP = """
import sys, typer
app = typer.Typer(add_completion=False)
@app.command()
def one(x: int = 1):
    "One command."
@app.command()
def two(y: str = "a"):
    "Another."
sys.argv = ["app", *sys.argv[1:]]
app()
"""
CONTENDERS = {
    "import typer": [sys.executable, "-c", "import typer"],
    "2-command typer --help": [sys.executable, "-c", TYPER_APP, "--help"],
    "2-command typer one --help": [sys.executable, "-c", TYPER_APP, "one", "--help"],
    "itkit --help": [sys.executable, "-m", "itkit", "--help"],
    "itkit convert --help": [sys.executable, "-m", "itkit", "convert", "--help"],
}
BASELINE = "import typer"
BARE = {"itkit --help": "2-command typer --help", "itkit convert --help": "2-command typer one --help"}
"""Each itkit contender and the bare Typer app's help it is compared with."""


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {stderr.strip()}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (each runs every contender once)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    for argv in CONTENDERS.values():  # warm the file cache and the bytecode
        run_once(argv, env)
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpus: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(args.runs):
        for name, argv in CONTENDERS.items():
            wall, cpu = run_once(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base_wall = statistics.median(walls[BASELINE])
    base_cpu = statistics.median(cpus[BASELINE])
    print(f"start-up, median of {args.runs} side-by-side runs (load average {os.getloadavg()[0]:.1f})")
    print(f"{'command':<28}{'wall s':>8}{'x typer':>9}{'cpu s':>8}{'x typer':>9}{'x bare':>8}")
    ok = True
    for name in CONTENDERS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        line = f"{name:<28}{wall:>8.3f}{wall / base_wall:>8.2f}x{cpu:>8.3f}{cpu / base_cpu:>8.2f}x"
        if name in BARE:
            ratio = cpu / statistics.median(cpus[BARE[name]])
            line += f"{ratio:>7.2f}x"
            ok = ok and ratio <= TARGET_RATIO
        print(line)
    print(
        f"target: <= {TARGET_SECONDS} s on a quiet machine; CPU <= {TARGET_RATIO}x a bare two-command Typer app's same"
        f" --help (x bare): {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

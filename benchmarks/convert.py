"""Benchmark: `itkit convert` on a large JSONL file beside a plain reference loop doing the same work.

    python benchmarks/convert.py                # >= 200 MB of Alpaca JSONL, alpaca -> sharegpt, JSONL -> JSONL
    python benchmarks/convert.py --size-mb 50   # a quicker run

The input is generated once into benchmarks/_work/ (gitignored) and reused. Each contender runs in its own
subprocess; wall time and peak RSS (from os.wait4's rusage of that very process) are reported. The reference
loops read each line, parse it, map it to the ShareGPT dict, dump it and write it, with the standard
library's ``json`` and with ``orjson``. All outputs must be byte-identical, so the work is the same.
CPU time (user + system) is printed beside wall time: on a busy machine it is the steadier comparison.

Targets (issue 2): itkit within 1.5x of the ``json`` reference's time, peak memory under 300 MB.
Exit status 0 when both targets are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
DEFAULT_SIZE_MB = 210
TIME_RATIO_TARGET = 1.5
RSS_TARGET_MB = 300
SEED = 1234

REFERENCE = r"""
import sys
{import_line}
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as fin, open(dst, "wb", buffering=1 << 20) as fout:
    for line in fin:
        if not line.strip():
            continue
        row = loads(line)
        prompt = row["instruction"]
        if row.get("input"):
            prompt = prompt + "\n\n" + row["input"]
        out = {{"conversations": [{{"from": "human", "value": prompt}}, {{"from": "gpt", "value": row["output"]}}]}}
        fout.write({dump_expr})
"""
REFERENCES = {
    "reference (json)": REFERENCE.format(
        import_line="import json\nloads = json.loads",
        dump_expr='json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\\n"',
    ),
    "reference (orjson)": REFERENCE.format(
        import_line="import orjson\nloads = orjson.loads",
        dump_expr="orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE)",
    ),
}

WORDS = (
    "the a of to and in is for on with as by at from that this it be are was or an which can use data model "
    "train answer question explain write list describe summarise translate classify compare give three short "
    "example reason step first then because however city river music history science recipe garden energy "
    "climate planet language poem story letter email code function table number price weather travel "
    "café naïve résumé über straße 東京 データ 🙂 — « » ½"
).split()


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(lo, hi))
    return " ".join(words).capitalize() + rng.choice([".", "?", "!", ":"])


def generate(path: Path, size_mb: int) -> None:
    """Alpaca JSONL of at least ``size_mb`` MB: varied lengths, a third with an input, some multi-line."""
    import orjson

    rng = random.Random(SEED)
    target = size_mb * 1_000_000
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb", buffering=1 << 20) as fh:
        while written < target:
            row = {
                "instruction": sentence(rng, 5, 30),
                "input": sentence(rng, 5, 60) if rng.random() < 0.35 else "",
                "output": "\n".join(sentence(rng, 10, 60) for _ in range(rng.randint(1, 4))),
            }
            line = orjson.dumps(row) + b"\n"
            fh.write(line)
            written += len(line)
    os.replace(tmp, path)


@dataclass
class Run:
    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    digest: str


def run(name: str, argv: list[str], output: Path) -> Run:
    output.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"{name} failed with exit code {proc.returncode}:\n{stderr}")
    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    rss_mb = usage.ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
    return Run(name, seconds, usage.ru_utime + usage.ru_stime, rss_mb, file_digest(output))


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=DEFAULT_SIZE_MB, help="input size in MB (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the output files in benchmarks/_work/")
    args = parser.parse_args()

    WORK.mkdir(exist_ok=True)
    source = WORK / f"alpaca_{args.size_mb}mb.jsonl"
    if not source.exists() or source.stat().st_size < args.size_mb * 1_000_000:
        print(f"generating {source.relative_to(ROOT)} ...", file=sys.stderr)
        generate(source, args.size_mb)
    size_mb = source.stat().st_size / 1e6
    with open(source, "rb") as fh:
        records = sum(1 for _ in fh)
    print(f"input: {source.relative_to(ROOT)}, {size_mb:.0f} MB, {records:,} Alpaca records; alpaca -> sharegpt, JSONL -> JSONL")

    runs: list[Run] = []
    outputs: list[Path] = []
    itkit_out = WORK / "out_itkit.jsonl"
    outputs.append(itkit_out)
    runs.append(
        run("itkit convert", [sys.executable, "-m", "itkit", "convert", str(source), "-o", str(itkit_out), "--to", "sharegpt", "-q"], itkit_out)
    )
    for i, (name, code) in enumerate(REFERENCES.items()):
        out = WORK / f"out_reference_{i}.jsonl"
        outputs.append(out)
        runs.append(run(name, [sys.executable, "-c", code, str(source), str(out)], out))

    itkit, reference = runs[0], runs[1]
    print(f"\n{'':<20}{'wall s':>8}{'MB/s':>7}{'x json':>8}{'CPU s':>8}{'x json':>8}{'peak RSS MB':>13}")
    for r in runs:
        print(
            f"{r.name:<20}{r.seconds:>8.2f}{size_mb / r.seconds:>7.1f}{r.seconds / reference.seconds:>8.2f}"
            f"{r.cpu_seconds:>8.2f}{r.cpu_seconds / reference.cpu_seconds:>8.2f}{r.peak_rss_mb:>13.1f}"
        )
    same = len({r.digest for r in runs}) == 1
    ratio = itkit.seconds / reference.seconds
    cpu_ratio = itkit.cpu_seconds / reference.cpu_seconds
    time_ok = ratio <= TIME_RATIO_TARGET
    rss_ok = itkit.peak_rss_mb < RSS_TARGET_MB
    print(f"\noutputs byte-identical: {'yes' if same else 'NO'}")
    print(
        f"time: itkit / json reference = {ratio:.2f} wall, {cpu_ratio:.2f} CPU (target <= {TIME_RATIO_TARGET}): "
        f"{'met' if time_ok else 'MISSED'}"
    )
    print(f"memory: itkit peak RSS {itkit.peak_rss_mb:.0f} MB (target < {RSS_TARGET_MB} MB): {'met' if rss_ok else 'MISSED'}")
    if not args.keep:
        for out in outputs:
            out.unlink(missing_ok=True)
    return 0 if (same and time_ok and rss_ok) else 1


if __name__ == "__main__":
    sys.exit(main())

"""itkit decontaminate vs a plain-Python set-of-tuples loop, side by side on the same data and flags.

    python benchmarks/decontaminate.py                      # 1,000,000 training records, 100,000 items
    python benchmarks/decontaminate.py --records 100000 --items 10000

Generated data (deterministic): training records in Alpaca JSONL (a 15-word
instruction, a 40-word response, Zipf-distributed words from a 30,000-word
vocabulary), 1% of them with a benchmark question pasted into the instruction
and 0.5% with a benchmark answer as the response; benchmark items as JSONL rows
(a 25-word question, a 30-word answer). Both runs use ``--mode ngram`` (n = 13).
itkit reads plain Alpaca JSONL rows without building records
(:meth:`itkit.dataset.RecordReader.fast`; the same output, byte for byte); the
plain loop reads and writes through itkit's record reader and writer.

The plain loop ("the obvious implementation") keeps every benchmark n-gram as a
tuple of words in a Python set and checks each training n-gram against it. It
runs on the first ``--plain-share`` of the training records (default 0.2: it
needs several GB for the whole set) and its time is scaled up to the full count;
the script says so and checks that both make the same decisions on that share.
Each run is its own process, so peak RSS is each one's own; CPU time (user + system)
is printed beside wall time: on a busy machine it is the steadier comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 30_000


def generate(folder: Path, records: int, items: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(VOCAB)], dtype=object)
    ranks = np.arange(1, VOCAB + 1)
    p = 1 / ranks
    p /= p.sum()

    def texts(count: int, length: int) -> list[str]:
        words = vocab[rng.choice(VOCAB, size=(count, length), p=p)]
        return [" ".join(row) for row in words]

    bench = folder / "bench.jsonl"
    questions, answers = texts(items, 25), texts(items, 30)
    with bench.open("w", encoding="utf-8") as fh:
        for i, (q, a) in enumerate(zip(questions, answers)):
            fh.write(json.dumps({"id": f"b{i}", "question": q.capitalize() + "?", "answer": a + "."}) + "\n")
    train = folder / "train.jsonl"
    chunk = 100_000
    with train.open("w", encoding="utf-8") as fh:
        for start in range(0, records, chunk):
            n = min(chunk, records - start)
            instructions, outputs = texts(n, 15), texts(n, 40)
            for j in range(n):
                i = start + j
                instruction, output = instructions[j], outputs[j]
                if i % 100 == 7:
                    instruction = "Please answer: " + questions[(i * 31) % items].upper()
                if i % 200 == 11:
                    output = answers[(i * 17) % items]
                fh.write(json.dumps({"instruction": instruction, "input": "", "output": output}) + "\n")
    return train, bench


def run_itkit(train: str, bench: str, out: str, limit: int) -> dict:
    from itkit.decontaminate import DecontaminateOptions, decontaminate_file

    start = time.perf_counter()
    summary = decontaminate_file(train, out, against=[bench], bench_fields=["question", "answer"],
                                 options=DecontaminateOptions(mode="ngram", n=13))
    return {"seconds": time.perf_counter() - start, "records": summary.rows, "removed": summary.removed}


def run_plain(train: str, bench: str, out: str, limit: int) -> dict:
    """The obvious implementation: tuples of normalised words in Python sets."""
    from itkit.dataset import RecordReader, RecordWriter
    from itkit.decontaminate.ngrams import text_words

    n = 13
    start = time.perf_counter()

    def grams(text: str) -> list[tuple[str, ...]]:
        ws = text_words(text)
        return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]

    questions: set[tuple[str, ...]] = set()
    answers: set[tuple[str, ...]] = set()
    with open(bench, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            questions.update(grams(row["question"]))
            answers.update(grams(row.get("answer") or ""))
    reader = RecordReader(train)
    writer = RecordWriter(out, reader.format)
    seen = removed = 0
    for record in reader:
        if seen >= limit:
            break
        seen += 1
        response = "\n\n".join(t.text_with_calls for t in record.turns if t.role == "assistant")
        if any(g in questions for g in grams(record.prompt)) or any(g in answers for g in grams(response)):
            removed += 1
        else:
            writer.write(record)
    writer.close()
    return {"seconds": time.perf_counter() - start, "records": seen, "removed": removed}


def child(which: str, train: str, bench: str, out: str, limit: int) -> None:
    result = (run_itkit if which == "itkit" else run_plain)(train, bench, out, limit)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result))


def measure(which: str, train: Path, bench: Path, out: Path, limit: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", which, str(train), str(bench), str(out), str(limit)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--plain-share", type=float, default=0.2)
    parser.add_argument("--folder", type=Path, default=ROOT / "benchmarks" / ".data" / "decontaminate")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, train, bench, out, limit = args.child
        child(which, train, bench, out, int(limit))
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, bench = generate(args.folder, args.records, args.items)
    print(f"generated {args.records:,} training records and {args.items:,} benchmark items in {time.perf_counter() - t0:.0f} s")
    plain_limit = max(1, int(args.records * args.plain_share))
    fast = measure("itkit", train, bench, args.folder / "clean_itkit.jsonl", args.records)
    plain = measure("plain", train, bench, args.folder / "clean_plain.jsonl", plain_limit)
    scaled = plain["seconds"] * args.records / plain["records"]
    scaled_cpu = plain["cpu_seconds"] * args.records / plain["records"]
    print(f"itkit decontaminate --mode ngram: {fast['seconds']:.1f} s ({fast['cpu_seconds']:.1f} s CPU) for "
          f"{fast['records']:,} records, removed {fast['removed']:,}, peak RSS {fast['peak_rss_mb']:.0f} MB")
    print(f"plain set-of-tuples loop: {plain['seconds']:.1f} s ({plain['cpu_seconds']:.1f} s CPU) for the first "
          f"{plain['records']:,} records ({args.plain_share:.0%}; {scaled:.0f} s, {scaled_cpu:.0f} s CPU scaled to "
          f"{args.records:,}), removed {plain['removed']:,}, peak RSS {plain['peak_rss_mb']:.0f} MB")
    print(f"speed-up: {scaled / fast['seconds']:.1f}x wall, {scaled_cpu / fast['cpu_seconds']:.1f}x CPU "
          f"(targets: <= 60 s and <= 2048 MB for itkit)")
    with open(args.folder / "clean_itkit.jsonl", encoding="utf-8") as a, open(args.folder / "clean_plain.jsonl", encoding="utf-8") as b:
        kept_plain = b.read().splitlines()
        kept_fast = [line for _, line in zip(range(len(kept_plain)), a.read().splitlines())]
    same = kept_fast == kept_plain
    print(f"same decisions on the shared records: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

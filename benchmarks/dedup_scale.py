"""Exact + near dedup of 1,000,000 Alpaca records, end to end, side by side with rensa and datasketch.

    python benchmarks/dedup_scale.py [--records 1000000] [--sample 50000] [--readme]
    python benchmarks/dedup_scale.py --records 10000000 --work /tmp/big --itkit-only

1. Generates (once, into ``--work``, default benchmarks/_work/) an Alpaca-style JSONL file with 10%
   exact copies (case and spacing changed) and 10% near copies (one word replaced, or punctuation and
   case changed; see ``dedup_data.generate_alpaca``).
2. itkit: ``python -m itkit dedup FILE -o OUT --near-threshold 0.7 --report REPORT --json`` in a
   subprocess: read, exact + near dedup (128 permutations, word bigrams), write. Wall time is the
   child's; peak RSS is the peak of the child and its own hashing process together (sampled every
   50 ms), or the child's own peak (``os.wait4``) if that is higher.
3. rensa (Rust MinHash + LSH): in a subprocess that first reads the same compared texts (instruction
   + input; not timed), then, timed: word bigrams of each normalised text (the same shingles) and
   ``RMinHashDeduplicator(threshold=0.7, num_perm=128, use_lsh=True).add_pairs``: its hashing + LSH
   alone, no reading or writing of records.
4. datasketch: the same on the first ``--sample`` texts (``MinHash`` + ``MinHashLSH``, a candidate
   with an estimate >= 0.7 removes a text), its time extrapolated linearly to all records.

For each tool: one-word recall (planted near copies removed / planted) and removals not justified
by a true Jaccard >= 0.7 of the word-bigram sets (built here independently of itkit's hashing; a
removal is justified when some kept text is that similar). ``--readme`` writes the table into
README.md between its ``dedup-scale`` markers. Machines are noisy: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

THRESHOLD = 0.7
NUM_PERM = 128
PEAK_TARGET = 1.5 * 1024**3
UNJUSTIFIED_TARGET = 0.001
README_START, README_END = "<!-- dedup-scale:start -->", "<!-- dedup-scale:end -->"
ISSUE_ROWS = [
    # issue 15's run before this work: same machine, a quieter moment (compare within a run)
    ("itkit 0.1.0 (issue 15's run)", "56.6 s", "1.3 GB", "0.996", "4,879 (2.4%)"),
    ("rensa 0.5.0 (issue 15's run)", "24.3 s", "2.8 GB", "0.993", "1,037"),
    ("datasketch 2.0.0 (issue 15's run)", "295 s", "5.6 GB", "0.985", "1,171"),
    ("text-dedup 0.4.0 (issue 15's run)", "208 s", "6.8 GB", "0.144 (whitespace-sensitive tokens)", "29,724"),
]

RENSA_CHILD = r"""
import json, sys, time
import numpy as np, orjson
from rensa import RMinHashDeduplicator
sys.path.insert(0, sys.argv[4])
from itkit.dedup.normalize import normalize_text, segments
texts = []
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        r = orjson.loads(line)
        texts.append(r["instruction"] + ("\n\n" + r["input"] if r["input"] else ""))
started = time.perf_counter()
def bigrams(text):
    return [" ".join(s[i:i + 2]) for s in segments(normalize_text(text)) or [[]] for i in range(max(1, len(s) - 1))]
dedup = RMinHashDeduplicator(threshold=float(sys.argv[3]), num_perm=128, use_lsh=True)
keep = dedup.add_pairs((str(i), bigrams(t)) for i, t in enumerate(texts))
seconds = time.perf_counter() - started
np.save(sys.argv[2], np.asarray(keep, dtype=bool))
print(json.dumps({"seconds": seconds}))
"""

DATASKETCH_CHILD = r"""
import json, sys, time
import numpy as np, orjson
from datasketch import MinHash, MinHashLSH
sys.path.insert(0, sys.argv[5])
from itkit.dedup.normalize import normalize_text, segments
k = int(sys.argv[4])
texts = []
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        r = orjson.loads(line)
        texts.append(r["instruction"] + ("\n\n" + r["input"] if r["input"] else ""))
        if len(texts) == k:
            break
threshold = float(sys.argv[3])
started = time.perf_counter()
lsh = MinHashLSH(threshold=threshold, num_perm=128)
keep, kept = [], {}
for i, text in enumerate(texts):
    shingles = {" ".join(s[j:j + 2]).encode() for s in segments(normalize_text(text)) or [[]] for j in range(max(1, len(s) - 1))}
    m = MinHash(num_perm=128, seed=1)
    m.update_batch(list(shingles))
    dup = any(m.jaccard(kept[c]) >= threshold for c in lsh.query(m))
    keep.append(not dup)
    if not dup:
        lsh.insert(i, m)
        kept[i] = m
seconds = time.perf_counter() - started
np.save(sys.argv[2], np.asarray(keep, dtype=bool))
print(json.dumps({"seconds": seconds}))
"""


def ensure_input(n: int, work: Path) -> tuple[Path, dict]:
    """The input file and what was planted in it, generated once (in a child: this process stays small)."""
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"alpaca_{n}.jsonl"
    planted_file = data.with_suffix(".planted.json")
    if not (data.exists() and planted_file.exists()):
        started = time.perf_counter()
        print(f"generating {n:,} records into {data} ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "dedup_data.py"), str(data), str(n)], check=True)
        print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return data, json.loads(planted_file.read_text())


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants now (Linux /proc; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, ()))
    return total


def run_child(cmd: list[str]) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS bytes, stdout) of a child process: the larger of its own peak (wait4) and the
    peak of the sum over it and its descendants (itkit's hashing process), sampled every 50 ms."""
    with tempfile.TemporaryFile() as out_fh, tempfile.TemporaryFile() as err_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out_fh, stderr=err_fh, env={**os.environ, "PYTHONPATH": str(ROOT)})
        tree_peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                tree_peak[0] = max(tree_peak[0], _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        code = os.waitstatus_to_exitcode(status)
        out_fh.seek(0)
        err_fh.seek(0)
        stdout, stderr = out_fh.read(), err_fh.read()
    if code != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed ({code}): {stderr.decode()[-2000:]}")
    return wall, max(usage.ru_maxrss * 1024, tree_peak[0]), stdout  # Linux reports KiB


def run_itkit(data: Path, work: Path) -> dict:
    out, report = work / "dedup_out.jsonl", work / "dedup_report.jsonl"
    cmd = [sys.executable, "-m", "itkit", "dedup", str(data), "-o", str(out), "--near-threshold", str(THRESHOLD),
           "--report", str(report), "--report-chars", "0", "--json", "-q"]
    wall, peak, stdout = run_child(cmd)
    summary = json.loads(stdout)
    removed, pairs = [], []
    with open(report, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            removed.append(row["index"])
            if row["stage"] == "near":
                pairs.append((row["index"], row["kept_index"]))
    written = sum(1 for _ in open(out, "rb"))
    assert summary["rows"] == summary["kept"] + sum(summary["removed"].values()) + summary["rejected"]
    assert written == summary["kept"]
    out.unlink()
    return {"wall": wall, "peak": peak, "summary": summary, "removed": np.asarray(removed, dtype=np.int64), "pairs": pairs}


def compared_texts(data: Path, limit: int | None = None) -> list[str]:
    from itkit.dedup import normalize_text

    texts = []
    with open(data, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            texts.append(normalize_text(row["instruction"] + ("\n\n" + row["input"] if row["input"] else "")))
            if limit is not None and len(texts) == limit:
                break
    return texts


def bigram_set(text: str) -> set[str]:
    """Word-bigram shingles of a normalised text, built independently of itkit's hashing."""
    from itkit.dedup.normalize import segments

    return {" ".join(seg[i : i + 2]) for seg in segments(text) or [[]] for i in range(max(1, len(seg) - 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def unjustified_of_pairs(texts: list[str], pairs: list[tuple[int, int]]) -> int:
    """Removals (removed, kept) whose true bigram Jaccard is under the threshold."""
    return sum(1 for a, b in pairs if jaccard(bigram_set(texts[a]), bigram_set(texts[b])) < THRESHOLD)


def unjustified_of_keep(texts: list[str], keep: np.ndarray) -> int:
    """Removed texts that no kept text matches with a true bigram Jaccard >= the threshold.

    Candidates: texts sharing one of 32 bands of 4 rows of an independent MinHash (seed 7): a pair at
    Jaccard 0.7 shares one with probability 0.99985, so a justified removal is missed very rarely.
    """
    from itkit.dedup.lsh import band_keys
    from itkit.dedup.minhash import MinHasher

    signatures = MinHasher(NUM_PERM, 2, seed=7).signatures_of_texts(texts)
    keys = band_keys(signatures, 32, 4, seed=7)
    removed = np.flatnonzero(~keep)
    pending = set(removed.tolist())
    for band in range(keys.shape[1]):
        if not pending:
            break
        order = np.argsort(keys[:, band], kind="stable")
        k = keys[order, band]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        stops = np.r_[starts[1:], len(k)]
        for lo, hi in zip(starts.tolist(), stops.tolist()):
            if hi - lo < 2:
                continue
            members = order[lo:hi].tolist()
            gone = [m for m in members if m in pending]
            if not gone:
                continue
            kept = [m for m in members if keep[m]]
            for g in gone:
                sg = bigram_set(texts[g])
                if any(jaccard(sg, bigram_set(texts[m])) >= THRESHOLD for m in kept):
                    pending.discard(g)
    return len(pending)


def recall(removed: np.ndarray, near_planted: np.ndarray) -> float:
    return float(np.isin(near_planted, removed).mean()) if len(near_planted) else float("nan")


def gb(n: float) -> str:
    return f"{n / 1024**3:.2f} GB"


def table(rows: list[tuple[str, ...]]) -> str:
    head = "| tool | wall | peak RSS | one-word recall | removals not justified by a true Jaccard >= 0.7 |\n"
    head += "| --- | --- | --- | --- | --- |\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in rows)


def write_readme(block: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        sys.exit(f"README.md has no {README_START} ... {README_END} block")
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{block}{README_END}", text), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=50_000, help="texts datasketch is timed on")
    parser.add_argument("--work", type=Path, default=HERE / "_work", help="where the input is generated")
    parser.add_argument("--itkit-only", action="store_true", help="time itkit alone (the 10M-record run)")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()

    data, planted = ensure_input(args.records, args.work)
    near_planted = np.asarray(planted["near"], dtype=np.int64)
    print(f"input: {data.name}, {args.records:,} records, {data.stat().st_size / 1e6:,.0f} MB; planted "
          f"{len(planted['exact']):,} exact and {len(near_planted):,} near copies", flush=True)

    it = run_itkit(data, args.work)
    s = it["summary"]
    print(f"itkit: {it['wall']:.1f} s, {gb(it['peak'])}; removed exact {s['removed']['exact']:,}, near "
          f"{s['removed']['near']:,}; kept {s['kept']:,}", flush=True)
    if args.itkit_only:
        return

    wall, peak, stdout = run_child([sys.executable, "-c", RENSA_CHILD, str(data), str(args.work / "rensa_keep.npy"),
                                    str(THRESHOLD), str(ROOT)])
    rensa = {"seconds": json.loads(stdout)["seconds"], "peak": peak, "keep": np.load(args.work / "rensa_keep.npy")}
    print(f"rensa: hashing + LSH {rensa['seconds']:.1f} s (process {wall:.1f} s), {gb(peak)}", flush=True)

    k = min(args.sample, args.records)
    wall, peak, stdout = run_child([sys.executable, "-c", DATASKETCH_CHILD, str(data), str(args.work / "ds_keep.npy"),
                                    str(THRESHOLD), str(k), str(ROOT)])
    ds = {"seconds": json.loads(stdout)["seconds"], "peak": peak, "keep": np.load(args.work / "ds_keep.npy")}
    scale = args.records / k
    print(f"datasketch: {ds['seconds']:.1f} s on {k:,} texts (x{scale:g}: ~{ds['seconds'] * scale:.0f} s), {gb(peak)}",
          flush=True)

    print("checking removals against true Jaccard ...", flush=True)
    texts = compared_texts(data)
    it_bad = unjustified_of_pairs(texts, it["pairs"])
    it_removed = len(it["removed"])
    rensa_bad = unjustified_of_keep(texts, rensa["keep"])
    rensa_removed = int((~rensa["keep"]).sum())
    ds_bad = unjustified_of_keep(texts[:k], ds["keep"])
    ds_removed = int((~ds["keep"]).sum())

    def share(bad: int, total: int) -> str:
        return f"{bad:,} ({bad / max(1, total):.2%} of {total:,})"

    ratio = rensa["seconds"] / it["wall"]
    rows = [
        (f"itkit (this branch), end to end file to file", f"{it['wall']:.1f} s", gb(it["peak"]),
         f"{recall(it['removed'], near_planted):.3f}", share(it_bad, it_removed)),
        ("rensa 0.5.0, hashing + LSH alone", f"{rensa['seconds']:.1f} s", gb(rensa["peak"]),
         f"{recall(np.flatnonzero(~rensa['keep']), near_planted):.3f}", share(rensa_bad, rensa_removed)),
        (f"datasketch, hashing + LSH, {k:,} texts x{scale:g}", f"~{ds['seconds'] * scale:.0f} s",
         f"{gb(ds['peak'])} ({k:,} texts)", f"{recall(np.flatnonzero(~ds['keep']), near_planted[near_planted < k]):.3f}",
         share(ds_bad, ds_removed)),
    ]
    block = table(rows + ISSUE_ROWS)
    print()
    print(block)
    print(f"itkit end to end vs rensa's hashing + LSH alone: x{ratio:.2f} ({'faster' if ratio > 1 else 'slower'}); "
          f"peak {gb(it['peak'])} (target <= 1.5 GB: {'OK' if it['peak'] <= PEAK_TARGET else 'OVER'}); "
          f"unjustified {it_bad / max(1, it_removed):.3%} of removals (target <= 0.1%: "
          f"{'OK' if it_bad <= UNJUSTIFIED_TARGET * it_removed else 'OVER'})")
    if args.readme:
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        write_readme(f"{args.records:,} records, one run of `python benchmarks/dedup_scale.py --readme` ({stamp}, "
                     f"2-core machine shared with other jobs; the last four rows are issue 15's earlier run, at a quieter "
                     f"moment: compare rows of the same run):\n\n{block}")
        print("README.md table updated")


if __name__ == "__main__":
    main()

"""The Ray executor's shard throughput on this machine, and what 100M records would cost (an estimate).

    python benchmarks/dedup_ray.py [--records 200000] [--cpus 2] [--usd-per-cpu-hour 0.05]

1. Generates (once, into benchmarks/_work/) Alpaca records with 10% exact and 10% near duplicates
   (``dedup_data.generate_alpaca``) and reads their compared texts (instruction + input).
2. Runs the exact + near stages (threshold 0.8, 128 permutations) with the local executor and with
   :class:`itkit.dedup.ray_executor.RayDeduplicator` on a local Ray of ``--cpus`` CPUs (started before
   the clock runs), checks that both decide the same, and prints each Ray stage's wall time.
3. Extrapolates linearly to 100M records: CPU-hours of the distributed stages (wall x CPUs, so the
   machine's idle share counts as used), the driver's serial part (reading texts into shards, the
   greedy decision), the bytes the band shuffle moves, and the cost at ``--usd-per-cpu-hour``. This is
   an estimate: shuffle costs grow faster than linearly on a real network, buckets of a real dataset
   differ from the generated ones, and a cluster's CPUs are not this machine's.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

TARGET = 100_000_000


def load_texts(n: int) -> tuple[list[str], float]:
    from dedup_data import generate_alpaca

    from itkit.dataset import read_records
    from itkit.dedup.texts import text_getter

    WORK.mkdir(exist_ok=True)
    data = WORK / f"alpaca_ray_{n}.jsonl"
    if not data.exists():
        generate_alpaca(data, n)
    get = text_getter("auto")
    started = time.perf_counter()
    texts = [get(r) for r in read_records(str(data))]
    return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--usd-per-cpu-hour", type=float, default=0.05,
                        help="price of one vCPU-hour (default: about an on-demand general-purpose cloud VM)")
    args = parser.parse_args()

    import ray

    from itkit.dedup.minhash import lsh_params
    from itkit.dedup.pipeline import DedupOptions, dedup_texts
    from itkit.dedup.ray_executor import RayDeduplicator

    texts, read_s = load_texts(args.records)
    n = len(texts)
    options = DedupOptions(near=0.8)
    started = time.perf_counter()
    local = dedup_texts(texts, options)
    local_s = time.perf_counter() - started

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    init_s = time.perf_counter() - started
    try:
        with RayDeduplicator(options) as dedup:
            started = time.perf_counter()
            dedup.add_all(texts)
            add_s = time.perf_counter() - started
            started = time.perf_counter()
            decisions = dedup.finish()
            finish_s = time.perf_counter() - started
            t = dict(dedup.timings)
    finally:
        ray.shutdown()
    same = bool((decisions.keep == local.keep).all()) and decisions.removals == local.removals
    distributed = t["hash"] + t["exact"] + t["near"]
    scale = TARGET / n
    cpu_hours = distributed * args.cpus * scale / 3600
    driver_hours = (read_s + add_s + t["decide"]) * scale / 3600

    print(f"{n:,} records, exact + near (0.8, 128 permutations); local Ray with {args.cpus} CPUs (ray.init {init_s:.1f} s)")
    print(f"same decisions as the local executor: {same} ({local.removed})")
    print(f"local executor: {local_s:.1f} s")
    print("| Ray stage | wall | records/s per CPU |")
    print("|---|---:|---:|")
    for name, label in (("hash", "hashing (map_batches over shards)"), ("exact", "exact (groupby on the key)"),
                        ("near", "near (band shuffle + verification)")):
        print(f"| {label} | {t[name]:.1f} s | {n / t[name] / args.cpus:,.0f} |")
    print(f"| driver: reading the records (JSONL) | {read_s:.1f} s | {n / read_s:,.0f} (one process) |")
    print(f"| driver: texts into shards | {add_s:.1f} s | {n / add_s:,.0f} (one process) |")
    print(f"| driver: greedy decision over {t['pairs']:,} verified pairs | {t['decide']:.2f} s | |")
    print(f"| finish() total | {finish_s:.1f} s | |")
    shuffle_gb = t["hashed_bytes"] * scale / 1e9
    print(f"\nEstimate for {TARGET:,} records (linear extrapolation of the figures above, not a measurement):")
    print(f"- distributed stages: {cpu_hours:,.0f} CPU-hours, ~${cpu_hours * args.usd_per_cpu_hour:,.0f} at "
          f"${args.usd_per_cpu_hour}/CPU-hour ({cpu_hours / 100:,.1f} h on 100 CPUs)")
    print(f"- driver (serial, one process): {driver_hours:.1f} h reading the records, putting their texts in shards "
          "and deciding")
    bands = lsh_params(0.8, 128)[0]
    print(f"- object store: ~{shuffle_gb:,.0f} GB of hashed records; the band shuffle moves ~{shuffle_gb * bands:,.0f} GB "
          f"({bands} band rows per record, each with its signature and shingle set)")


if __name__ == "__main__":
    main()

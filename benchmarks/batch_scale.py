"""Batch mode's overhead at scale: how many batches, requests per batch, bytes uploaded and remote calls per record.

Setup: the fake batch API of ``tests/batch_server.py`` (in this process), N
Alpaca records (default 10,000) through ``itkit orca --batch`` in a
subprocess: the first run submits (exit 4), the second collects and writes
(exit 0). Then the same with ``--batch-max-requests`` set below N, to show
the split.

Printed, per setting: batches created, requests per batch, bytes uploaded,
files/batches API calls in all and per record (target: well under 1), and
the seconds of each run.

Run: ``python benchmarks/batch_scale.py`` (``--records N``, ``--max-requests M``).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "tiktoken"))

from batch_server import FakeBatchServer  # noqa: E402

API_KEY = "sk-benchmark-0000000000000000"


def measure(records: int, max_requests: int | None, folder: Path) -> dict:
    src = folder / "in.jsonl"
    if not src.exists():
        src.write_text("".join(
            json.dumps({"instruction": f"Explain item {i} in one sentence.", "input": "", "output": f"Item {i}."}) + "\n"
            for i in range(records)
        ), encoding="utf-8")
    cache = folder / f"cache-{max_requests}"
    out = folder / f"out-{max_requests}.jsonl"
    with FakeBatchServer(api_key=API_KEY, record=False) as server:
        command = [
            sys.executable, "-m", "itkit", "orca", str(src), "-o", str(out), "--base-url", server.base_url,
            "--api-key", API_KEY, "--model", "teacher", "--cache-dir", str(cache), "--quiet", "--batch",
            *(["--batch-max-requests", str(max_requests)] if max_requests else []),
        ]
        seconds = []
        codes = []
        for _ in range(2):
            started = time.perf_counter()
            codes.append(subprocess.run(command, cwd=ROOT, capture_output=True).returncode)
            seconds.append(time.perf_counter() - started)
        assert codes == [4, 0], codes
        assert len(out.read_text().splitlines()) == records
        batches = server.created()
        uploaded = sum(len(server.files[b["input_file_id"]]) for b in batches)
        return {
            "batches": len(batches),
            "requests_per_batch": [len(server.input_lines(b)) for b in batches],
            "bytes_uploaded": uploaded,
            "remote_calls": len(server.calls),
            "calls_per_record": len(server.calls) / records,
            "seconds": seconds,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--max-requests", type=int, default=4_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for limit in (None, args.max_requests):
            m = measure(args.records, limit, Path(tmp))
            label = "default limits" if limit is None else f"--batch-max-requests {limit}"
            sizes = m["requests_per_batch"]
            print(f"{args.records:,} records, {label}:")
            print(f"  batches created:        {m['batches']}")
            print(f"  requests per batch:     {', '.join(f'{n:,}' for n in sizes)}")
            print(f"  bytes uploaded:         {m['bytes_uploaded']:,} ({m['bytes_uploaded'] / args.records:.0f} per record)")
            print(f"  remote calls:           {m['remote_calls']} ({m['calls_per_record']:.4f} per record; target well under 1)")
            print(f"  submit run / collect run: {m['seconds'][0]:.1f} s / {m['seconds'][1]:.1f} s")


if __name__ == "__main__":
    main()

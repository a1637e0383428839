"""Rate limits: a server enforcing requests and tokens per minute (429 + Retry-After), itkit with and without them.

Setup: the fake server of ``tests/llm_server.py`` in its own process enforces
an RPM and a TPM limit with token buckets (as OpenAI does), answers 429 with
``Retry-After`` beyond them, and sends OpenAI's ``x-ratelimit-*`` headers. To
keep the run short, a "minute" lasts ``--period`` seconds on both sides (the
server's buckets and the engine's ``RATE_PERIOD``). Side by side in one run:

- itkit given the same ``--rpm`` / ``--tpm``;
- itkit given no limits (it learns them from the headers);

each over enough records for three "minutes". Printed: the sustained request
rate after the first "minute" as a share of the limit (target >= 0.95), the
429s among the requests after warm-up (target <= 2%), failed records (target 0).

Run: ``python benchmarks/llm_ratelimit.py`` (``--rpm``, ``--tpm``, ``--period``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_capacity import run_engine, start_server  # noqa: E402


def measure(url: str, prompts: list[str], home: Path, period: float, **limits) -> dict:
    import itkit.llm.ratelimits as ratelimits

    ratelimits.RATE_PERIOD = period
    done: list[float] = []
    from itkit.llm import engine as engine_module

    original = engine_module.Engine._account

    def account(self, request, response):  # the time of every answer, for the sustained rate
        done.append(time.monotonic())
        return original(self, request, response)

    engine_module.Engine._account = account
    try:
        started = time.monotonic()
        wall, stats = run_engine(url, prompts, home, max_retries=20, **limits)
    finally:
        engine_module.Engine._account = original
    after = [t for t in done if t - started >= period]
    rate = (len(after) - 1) / (after[-1] - after[0]) * period if len(after) > 1 else 0.0
    return {"wall": wall, "rate": rate, "stats": stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("--tpm", type=int, default=100_000)
    parser.add_argument("--period", type=float, default=6.0, help="Seconds of one rate-limit 'minute'.")
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="itkit-bench-ratelimit-"))
    n = int(args.rpm * args.minutes)
    server, url = start_server("--latency", "0.05", "--rpm", str(args.rpm), "--tpm", str(args.tpm),
                               "--period", str(args.period))
    try:
        given = measure(url, [f"given {i}" for i in range(n)], home, args.period, rpm=args.rpm, tpm=args.tpm)
    finally:
        server.kill()
        server.wait()
    server, url = start_server("--latency", "0.05", "--rpm", str(args.rpm), "--tpm", str(args.tpm),
                               "--period", str(args.period))
    try:
        learned = measure(url, [f"learned {i}" for i in range(n)], home, args.period)
    finally:
        server.kill()
        server.wait()
    print(f"rate limits: server allows {args.rpm} requests and {args.tpm:,} tokens per 'minute' of {args.period:g} s; "
          f"{n} records each")
    print(f"{'itkit':>24}  {'sustained / limit':>17}  {'429s':>5}  {'of requests':>11}  failed  wall")
    for name, r in (("given --rpm/--tpm", given), ("no limits (headers)", learned)):
        s = r["stats"]
        share = s["rate_limited"] / max(s["requests"], 1)
        print(f"{name:>24}  {r['rate'] / args.rpm:17.3f}  {s['rate_limited']:5d}  {share:11.1%}  {s['failed']:6d}  "
              f"{r['wall']:.1f} s")
    print("targets: sustained >= 0.95 x the limit, 429s <= 2% of requests once warmed up, 0 failed")


if __name__ == "__main__":
    main()

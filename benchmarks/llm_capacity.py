"""Adaptive concurrency against a server that serves at most K requests at a time.

Setup: the fake server of ``tests/llm_server.py`` in its own process, 100 ms
per request, serving at most K at once; beyond K it either answers HTTP 503 at
once (``--overflow 503``, as llama-server does with every slot busy) or queues
the request (``--overflow queue``: latency rises). For K = 1, 4 and 32, in
both modes, side by side in one run:

- itkit's engine with its default settings (``--concurrency`` 64 as the
  ceiling, adapting below it);
- a sweep of fixed concurrencies (``--no-adapt``) 1, 2, 4, ... 64 (from K/2 to 4K:
  the others are slower by construction), and the best of them.

Printed: throughput (records/s) of each, the ratio default / best fixed
(target >= 0.9) and the error responses of the default run as a share of its
requests (target <= 5%).

Run: ``python benchmarks/llm_capacity.py`` (``--ks 1,4,32``, ``--modes 503,queue``,
``--seconds`` of work per default run, ``--latency``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "tiktoken"))

API_KEY = "sk-benchmark-0000000000000000"
SWEEP = (1, 2, 4, 8, 16, 32, 64)


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """The fake server in its own process, with ``args`` (``--latency``, ``--capacity``...)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "llm_server.py"), "--api-key", API_KEY, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the fake server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def run_engine(url: str, prompts: list[str], home: Path, **options) -> tuple[float, dict]:
    """Wall seconds of the engine over ``prompts`` (one request each, no cache), and its statistics."""
    from itkit.llm.engine import open_engine
    from itkit.llm.settings import LLMSettings

    os.environ["ITKIT_HOME"] = str(home)
    settings = LLMSettings.resolve(
        env={}, api_key=API_KEY, base_url=url, model="bench", quiet=True, no_cache=True, **options
    )
    with open_engine(settings) as engine:

        async def worker(text: str) -> str:
            return (await engine.complete([{"role": "user", "content": text}])).text

        started = time.perf_counter()
        outcomes = engine.run(prompts, worker)
        wall = time.perf_counter() - started
        stats = engine.stats.as_dict()
        limiter = engine.endpoints[0].limiter
        stats["limit"], stats["decreases"] = limiter.size, limiter.decreases
    stats["failed"] = sum(1 for o in outcomes if o.failure is not None)
    return wall, stats


def prompts(tag: str, n: int) -> list[str]:
    return [f"{tag} request {i}" for i in range(n)]


def measure(k: int, mode: str, latency: float, seconds: float, home: Path) -> dict:
    server, url = start_server("--latency", str(latency), "--capacity", str(k), "--overflow", mode)
    try:
        run_engine(url, prompts("warm", 4), home, concurrency=1, no_adapt=True)
        capacity = k / latency  # requests per second the server can do
        n_default = max(40, int(capacity * seconds))
        wall, stats = run_engine(url, prompts(f"default-{k}-{mode}", n_default), home, max_retries=50)
        default = n_default / wall
        errors = sum(stats["errors"].values())
        sweep = {}
        n_fixed = max(20, n_default // 2)
        for j in SWEEP:
            if j > 4 * max(k, 1) and j > 8:
                break  # far beyond the capacity: only slower
            if j < k / 2:
                continue  # at most j / latency: far below the capacity
            fixed_wall, fixed_stats = run_engine(
                url, prompts(f"fixed-{k}-{mode}-{j}", n_fixed), home, concurrency=j, no_adapt=True, max_retries=50
            )
            sweep[j] = n_fixed / fixed_wall
    finally:
        server.kill()
        server.wait()
    best_j = max(sweep, key=sweep.get)
    return {
        "k": k, "mode": mode, "default": default, "best_j": best_j, "best": sweep[best_j], "sweep": sweep,
        "error_share": errors / max(stats["requests"], 1), "requests": stats["requests"], "failed": stats["failed"],
        "limit": stats["limit"], "decreases": stats["decreases"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,4,32")
    parser.add_argument("--modes", default="503,queue")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=10.0, help="Seconds of work (at capacity) per default run.")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="itkit-bench-capacity-"))
    rows = [
        measure(int(k), mode, args.latency, args.seconds, home)
        for mode in args.modes.split(",")
        for k in args.ks.split(",")
    ]
    print(f"adaptive concurrency vs the best fixed setting; server: {args.latency * 1000:.0f} ms per request, "
          "at most K at once")
    print(f"{'mode':>6} {'K':>3}  {'default rec/s':>13}  {'best fixed':>16}  {'ratio':>6}  {'errors':>7}  failed  "
          "final limit (decreases)")
    for r in rows:
        print(f"{r['mode']:>6} {r['k']:>3}  {r['default']:13.1f}  {r['best']:9.1f} (-j {r['best_j']:<2})  "
              f"{r['default'] / r['best']:6.3f}  {r['error_share']:6.1%}  {r['failed']:>6}  {r['limit']} ({r['decreases']})")
    print("targets: ratio >= 0.9, errors <= 5% of requests, 0 failed")
    for r in rows:
        sweep = ", ".join(f"-j {j}: {v:.1f}" for j, v in r["sweep"].items())
        print(f"  sweep {r['mode']} K={r['k']}: {sweep}")


if __name__ == "__main__":
    main()

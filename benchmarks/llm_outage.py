"""An outage mid-run: the server stops for 20 s and comes back; no record may fail.

Setup: the fake server of ``tests/llm_server.py`` in its own process (latency
``--latency``). Side by side in one run: itkit's engine over ``--records``
records with no outage (time T), then the same with the server killed after a
third of T and restarted on the same port ``--outage`` seconds later. Printed:
failed records (target 0) and the total time against T + the time the server
was down, its restart included (target <= 1.1x).

Run: ``python benchmarks/llm_outage.py`` (``--records``, ``--outage``, ``--latency``).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_capacity import run_engine, start_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=800)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="itkit-bench-outage-"))
    port = free_port()
    server, url = start_server("--latency", str(args.latency), "--port", str(port))
    try:
        base_wall, base = run_engine(url, [f"calm {i}" for i in range(args.records)], home)
    finally:
        server.kill()
        server.wait()

    state = {"server": start_server("--latency", str(args.latency), "--port", str(port))[0]}

    def outage() -> None:
        time.sleep(base_wall / 3)
        state["server"].kill()
        state["server"].wait()
        down = time.monotonic()
        time.sleep(args.outage)
        state["server"] = start_server("--latency", str(args.latency), "--port", str(port))[0]
        state["down"] = time.monotonic() - down  # the outage plus the server's own start-up

    thread = threading.Thread(target=outage)
    thread.start()
    try:
        wall, stats = run_engine(url, [f"stormy {i}" for i in range(args.records)], home, max_outage=120)
    finally:
        thread.join()
        state["server"].kill()
        state["server"].wait()
    bound = base_wall + state["down"]
    print(f"outage: {args.records} records, server latency {args.latency:g} s, stopped for {args.outage:g} s mid-run "
          f"(down {state['down']:.1f} s with its restart)")
    print(f"  without outage: {base_wall:6.1f} s, {base['failed']} failed")
    print(f"  with outage   : {wall:6.1f} s, {stats['failed']} failed, {stats['requests']} requests, "
          f"{stats['retries']} retries")
    print(f"  ratio: {wall / bound:.3f} x (run time + outage) (target <= 1.10), failed records: {stats['failed']} "
          "(target 0)")


if __name__ == "__main__":
    main()

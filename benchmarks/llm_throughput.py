"""Throughput of the LLM engine: ``itkit simplify`` against a local OpenAI-compatible server.

Setup: the fake server of ``tests/llm_server.py`` runs in its own process (one
asyncio loop, so it is not the bottleneck) and answers every request after a
fixed latency. 2,000 Alpaca records are simplified at concurrency 64 through
the library call ``itkit.simplify.simplify_file`` (in this process, with the
real engine: cache, retries, accounting, reading and writing the files; the
progress bar off), timed from the call to its return.

Printed side by side:

- the ideal wall time, records / concurrency x latency (2000 / 64 x 0.2 s = 6.25 s);
- a bare ``AsyncOpenAI`` + ``asyncio.gather`` loop (semaphore of 64) sending
  the same 2,000 request bodies, twice: with the SDK's default httpx transport,
  and with the SDK's aiohttp transport that itkit uses (the fair comparison of
  the engine's own overhead);
- our time (adaptive concurrency, the default, with 64 as its ceiling) and with
  ``--no-adapt`` (64 in flight from the start), and the ratios (targets:
  <= 1.15 x ideal, <= 1.10 x the bare loop);
- at zero latency: CPU seconds per request of both (this process only; the
  server runs elsewhere) and their difference, our per-request overhead.

The adaptive run is the first of this process: it also pays for loading the
tiktoken encoding simplify measures lengths with (0.3-0.5 s of CPU, in a thread
while the first requests are out) and for the first use of every code path; the
``--no-adapt`` run after it finds them loaded.

Run: ``python benchmarks/llm_throughput.py`` (``--records``, ``--concurrency``,
``--latency`` to change the setup). Lengths are counted with tiktoken's o200k_base
(``TIKTOKEN_CACHE_DIR``; without it they are estimated).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

API_KEY = "sk-benchmark-0000000000000000"


REPLY = "Systems slow down under load, and doing many requests at once hides the time each one takes."
"""The server's answer to every request: a simplification of every benchmark record that passes simplify's
fact checks (no new numbers or names), so each record costs one request, as in the bare loop."""


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "llm_server.py"), "--latency", str(latency), "--api-key", API_KEY,
         "--reply-text", REPLY],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"the fake server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def write_records(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = {
                "id": f"r{i}",
                "instruction": f"Explain topic number {i} to a colleague.",
                "input": "",
                "output": (
                    f"Topic {i} is about how systems behave under load. In short, every request takes time, "
                    f"and doing many at once hides that time. The number {i} is only a label for this example, "
                    "which exists to measure throughput rather than to say anything deep."
                ),
            }
            fh.write(json.dumps(row) + "\n")


def ours(
    source: Path, output: Path, base_url: str, concurrency: int, home: Path, no_adapt: bool = False
) -> tuple[float, float, dict]:
    """Wall and CPU seconds of itkit's simplify over the file, with a fresh cache."""
    from itkit.llm.engine import open_engine
    from itkit.llm.report import RunReport
    from itkit.llm.settings import LLMSettings
    from itkit.simplify import COMMAND, simplify_file

    os.environ["ITKIT_HOME"] = str(home)
    settings = LLMSettings.resolve(
        env={}, api_key=API_KEY, base_url=base_url, concurrency=concurrency, quiet=True, timeout=60, model="gpt-4o-mini",
        no_adapt=no_adapt,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    with open_engine(settings) as engine:
        result = simplify_file(str(source), str(output), engine=engine, report=RunReport(COMMAND, str(output), settings))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    c = result.counts()  # every record answered and accounted for (a fact check may keep the original)
    assert c["simplified"] + c["longer_kept"] + c["kept_original"] + c["flagged"] == c["read"] and c["failed"] == 0, c
    return wall, cpu, engine.stats.as_dict()


def request_bodies(source: Path) -> list[dict]:
    """The exact request bodies simplify sends (rendered by its own template)."""
    from itkit.dataset import read_records
    from itkit.llm.engine import sampling_from
    from itkit.simplify import METHOD, TEMPLATE_NAME, prompt_variables
    from itkit.templates import load_template

    template = load_template(METHOD, TEMPLATE_NAME)
    sampling = sampling_from(template.sampling).as_dict()
    return [{"messages": template.render(**prompt_variables(r)), **sampling} for r in read_records(str(source))]


def bare(
    bodies: list[dict], base_url: str, concurrency: int, aiohttp: bool = False, model: str = "gpt-4o-mini"
) -> tuple[float, float]:
    """Wall and CPU seconds of a plain AsyncOpenAI + asyncio.gather loop over the same requests.

    ``aiohttp``: use the SDK's aiohttp transport (as itkit does) instead of its default httpx one.
    """
    import openai

    async def main() -> list[str]:
        http = openai.DefaultAioHttpClient() if aiohttp else None
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0, http_client=http)
        gate = asyncio.Semaphore(concurrency)

        async def one(body: dict) -> str:
            async with gate:
                response = await client.chat.completions.create(model=model, **body)
                return response.choices[0].message.content or ""

        try:
            return await asyncio.gather(*(one(b) for b in bodies))
        finally:
            await client.close()

    wall, cpu = time.perf_counter(), time.process_time()
    texts = asyncio.run(main())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(texts) == len(bodies) and all(texts)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--cpu-records", type=int, default=2000, help="Requests for the zero-latency CPU measurement.")
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "tiktoken"))
    import openai  # noqa: F401  (import cost outside every timing)

    work = Path(tempfile.mkdtemp(prefix="itkit-bench-"))
    source = work / "in.jsonl"
    write_records(source, args.records)
    bodies = request_bodies(source)

    server, url = start_server(args.latency)
    try:
        bare(bodies[:64], url, args.concurrency)  # warm-up: sockets, code paths
        bare(bodies[:64], url, args.concurrency, aiohttp=True)
        default_wall, default_cpu = bare(bodies, url, args.concurrency)
        bare_wall, bare_lat_cpu = bare(bodies, url, args.concurrency, aiohttp=True)
        our_wall, our_lat_cpu, stats = ours(source, work / "out.jsonl", url, args.concurrency, work / "home-latency")
        fixed_wall, _fixed_cpu, _ = ours(source, work / "out-fixed.jsonl", url, args.concurrency, work / "home-fixed",
                                         no_adapt=True)
    finally:
        server.kill()
        server.wait()

    cpu_source = work / "cpu.jsonl"
    write_records(cpu_source, args.cpu_records)
    cpu_bodies = request_bodies(cpu_source)
    server, url = start_server(0.0)
    try:
        bare(cpu_bodies[:64], url, args.concurrency, aiohttp=True)
        default_cpu_wall, default_cpu_lat0 = bare(cpu_bodies, url, args.concurrency)
        bare_cpu_wall, bare_cpu = bare(cpu_bodies, url, args.concurrency, aiohttp=True)
        our_cpu_wall, our_cpu, _ = ours(cpu_source, work / "cpu-out.jsonl", url, args.concurrency, work / "home-cpu")
        cached_wall, cached_cpu, cached_stats = ours(cpu_source, work / "cpu-out2.jsonl", url, args.concurrency, work / "home-cpu")
    finally:
        server.kill()
        server.wait()

    ideal = args.records / args.concurrency * args.latency
    n = args.cpu_records
    print(f"itkit simplify (in-process library call simplify_file): {args.records} records, "
          f"concurrency {args.concurrency}, server latency {args.latency:g} s")
    print(f"  ideal ({args.records} / {args.concurrency} x {args.latency:g} s)                               : {ideal:7.2f} s")
    print(f"  bare AsyncOpenAI + gather, SDK default transport (httpx2): {default_wall:7.2f} s   "
          f"({default_wall / ideal:.3f} x ideal; {default_cpu:.2f} s CPU)")
    print(f"  bare AsyncOpenAI + gather, SDK aiohttp transport (as itkit): {bare_wall:7.2f} s   "
          f"({bare_wall / ideal:.3f} x ideal; {bare_lat_cpu:.2f} s CPU)")
    print(f"  itkit simplify                                            : {our_wall:7.2f} s   "
          f"({our_wall / ideal:.3f} x ideal; {our_lat_cpu:.2f} s CPU)")
    print(f"  itkit simplify --no-adapt (fixed concurrency)             : {fixed_wall:7.2f} s   "
          f"({fixed_wall / ideal:.3f} x ideal; adaptive / fixed = {our_wall / fixed_wall:.3f})")
    print(f"  ratios: {our_wall / ideal:.3f} x ideal (target <= 1.15), {our_wall / bare_wall:.3f} x the bare loop on the "
          f"same transport and {our_wall / default_wall:.3f} x the bare loop on the SDK default (target <= 1.10)")
    print(f"  requests sent {stats['requests']}, retries {stats['retries']}, cache hits {stats['cache_hits']}")
    print(f"zero latency, {n} requests, CPU of this process (the server runs in another):")
    print(f"  bare loop, SDK default transport : {default_cpu_lat0 / n * 1e6:7.0f} us CPU per request   ({default_cpu_wall:.2f} s wall)")
    print(f"  bare loop, aiohttp transport     : {bare_cpu / n * 1e6:7.0f} us CPU per request   ({bare_cpu_wall:.2f} s wall)")
    print(f"  itkit simplify                   : {our_cpu / n * 1e6:7.0f} us CPU per request   ({our_cpu_wall:.2f} s wall, "
          f"incl. reading, rendering, cache writes and the output)")
    print(f"  itkit overhead (vs the same transport): {(our_cpu - bare_cpu) / n * 1e6:7.0f} us CPU per request")
    print(f"  re-run from cache: {cached_wall:.2f} s wall, {cached_cpu / n * 1e6:.0f} us CPU per record, "
          f"{cached_stats['requests']} requests")


if __name__ == "__main__":
    main()

"""``itkit batches``: the batches --batch submitted (from the ledger in the response cache); refresh or cancel them."""

from __future__ import annotations

import time
from typing import Annotated, Any, Optional

import typer

from itkit.cli.root import app, handle_errors, out_console

HELP = """List the batches that --batch submitted or wrote (state, requests done and failed, age, estimated cost), from the ledger in the response cache; --refresh asks the provider for their state first; --cancel stops batches at the provider (what they finished is still collected by re-running the command: only the rest is sent again).

\b
Examples:
  itkit batches
  itkit batches --refresh --base-url http://localhost:8000/v1
  itkit batches --cancel batch_abc123
  itkit batches --cancel all --base-url http://localhost:8000/v1
"""

Opt = typer.Option


@app.command("batches", help=HELP)
@handle_errors
def batches_command(
    cache_dir: Annotated[Optional[str], Opt("--cache-dir", help="Response cache folder.  \\[default: $ITKIT_HOME or the user cache]", metavar="DIR", show_default=False)] = None,
    base_url: Annotated[Optional[str], Opt("--base-url", help="The endpoint of --refresh and --cancel.  \\[default: OpenAI]", metavar="URL", show_default=False)] = None,
    api_key: Annotated[Optional[str], Opt("--api-key", help="API key; prefer the environment (OPENAI_API_KEY).", metavar="KEY", show_default=False)] = None,
    cancel: Annotated[Optional[list[str]], Opt("--cancel", help="Cancel this batch (its batch id or itkit's job id), or 'all' unfinished of the endpoint; repeatable.", metavar="ID", show_default=False)] = None,
    refresh: Annotated[bool, Opt("--refresh", help="Ask the endpoint for the state of its unfinished batches first.", metavar="")] = False,
    as_json: Annotated[bool, Opt("--json", help="Print the batches as JSON on stdout.", metavar="")] = False,
) -> int:
    import orjson

    from itkit.llm.batch_ledger import DONE_STATES, OPEN_STATES, Ledger
    from itkit.llm.cache import ResponseCache, cache_path

    path = cache_path(cache_dir)
    if not path.is_file():
        jobs: list[dict[str, Any]] = []
    else:
        with ResponseCache.open(cache_dir) as cache:
            ledger = Ledger(cache._db, cache.path)
            if refresh or cancel:
                _remote(ledger, cache, base_url, api_key, cancel or [], refresh)
            jobs = ledger.jobs()
    if as_json:
        out_console.print(orjson.dumps(jobs, option=orjson.OPT_INDENT_2).decode(), markup=False, highlight=False)
        return 0
    if not jobs:
        out_console.print(f"no batches in {path}", markup=False, highlight=False)
        return 0
    now = time.time()
    for job in jobs:  # two lines a batch, so that ids of any length and every number fit 80 columns
        state = job["state"]
        if state in OPEN_STATES:
            state = "not created"
        elif state in DONE_STATES:  # collected: the provider's last word (completed, expired, cancelled...)
            state = job["status"] or state
        cost = "n/a" if job["estimated_cost"] is None else f"${job['estimated_cost']:.4f}"
        out_console.print(
            f"{job['batch_id'] or job['id'][:12]}  {state}  {_age(now - job['created'])} old",
            markup=False, highlight=False,
        )
        out_console.print(
            f"    {job['completed']:,} done, {job['failed']:,} failed of {job['requests']:,} requests;"
            f" est. {cost}; {job['command']} / {job['stage']}",
            markup=False, highlight=False,
        )
    return 0


def _remote(ledger: Any, cache: Any, base_url: str | None, api_key: str | None, cancel: list[str], refresh: bool) -> None:
    from itkit.errors import UsageError
    from itkit.llm.batch_api import TERMINAL, BatchAPI
    from itkit.llm.batch_run import BatchMode
    from itkit.llm.settings import LLMSettings
    from itkit.llm.stats import EngineStats

    settings = LLMSettings.resolve(base_url=base_url, api_key=api_key, batch=True)
    mode = BatchMode(settings, cache, EngineStats(), api_factory=lambda: BatchAPI(settings))
    mine = ledger.active_jobs(settings.cache_scope)
    for target in cancel:
        chosen = mine if target == "all" else [j for j in ledger.jobs() if target in (j["batch_id"], j["id"])]
        if not chosen and target != "all":
            raise UsageError(f"--cancel {target}: no such batch in {ledger.path} (itkit batches lists them)")
        for job in chosen:
            if job["scope"] != settings.cache_scope:
                raise UsageError(f"--cancel {target}: that batch was submitted to another endpoint; give its --base-url")
            if job["batch_id"] and job["state"] not in TERMINAL:
                mode.api.cancel(job["batch_id"])
    if refresh or cancel:
        for job in ledger.active_jobs(settings.cache_scope):
            mode._poll(job)
    mode.close()


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"

"""How every LLM command runs and ends: the engine, the dry-run plan on stdout, the summary on stderr, the exit code.

    return run_llm_command(
        settings,
        lambda engine: simplify_file(src, output, engine=engine, ...),
        summary=lambda result, engine: ...,  # printed unless --quiet
        dry_run=lambda result: ...,  # after the plan, optional
    )
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from itkit.cli.app import err_console, out_console
from itkit.cli.options import OnError, errors_path_for
from itkit.errors import EXIT_PARTIAL
from itkit.io.paths import check_paths
from itkit.llm.cache import cache_path
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.engine import Engine, open_engine
from itkit.llm.report import FAILURES_SUFFIX, SUMMARY_SUFFIX, sidecar_path
from itkit.llm.settings import LLMSettings

FAILURE_REASONS_SHOWN = 5
"""The most frequent failure reasons the summary lists."""
FAILURES_HEADER = "failures with reasons and raw responses"


def rejects_path(output: str, on_error: OnError, errors: str | None) -> str | None:
    """The errors file of ``--on-error skip`` (None with ``--on-error fail``)."""
    return errors_path_for(output, errors) if on_error is OnError.skip else None


def check_llm_paths(
    command: str,
    settings: LLMSettings,
    reads: Mapping[str, str | None],
    writes: Mapping[str, str | None],
    sidecars: Mapping[str, str] | None = None,
) -> None:
    """The paths rule (:func:`itkit.io.paths.check_paths`) for an LLM command, before anything is read.

    ``writes`` are the command's own output options (``-o`` first); the summary
    and failures files beside ``-o`` (plus ``sidecars``: label -> suffix) and the
    response cache are added here, so every LLM command checks all of them.
    """
    output = writes.get("-o") or "-"
    suffixes = {"the summary file": SUMMARY_SUFFIX, "the failures file": FAILURES_SUFFIX, **(sidecars or {})}
    every = {**writes, **{label: sidecar_path(output, suffix, command) for label, suffix in suffixes.items()}}
    if not settings.no_cache and not settings.dry_run:
        every["the response cache"] = str(cache_path(settings.cache_dir))
    check_paths(reads, every)


def say(text: str) -> None:
    """One summary line on stderr (never read as rich markup)."""
    err_console.print(text, markup=False)


def where(output: str) -> str:
    return "stdout" if output == "-" else output


def print_plan(plan: DryRunPlan, engine: Engine, model: str) -> None:
    """The dry run's sample prompts and estimate, on stdout."""
    for line in plan.describe(engine.stats.price, model):
        out_console.print(line, markup=False, highlight=False)


def print_engine_stats(engine: Engine) -> None:
    for line in engine.stats.describe():
        say(f"  {line}")


def print_failures(header: str, reasons: Mapping[str, int], most: int = FAILURE_REASONS_SHOWN) -> None:
    """The failures file's line and its most frequent reasons."""
    say(header)
    for reason, n in list(reasons.items())[:most]:
        say(f"  {n:>6}  {reason}")


def print_rejected(count: int, what: str, errors_path: str | None) -> None:
    if count:
        say(f"{count} {what} rejected, written to {errors_path}")


def run_llm_command(
    settings: LLMSettings,
    run: Callable[[Engine], Any],
    *,
    summary: Callable[[Any, Engine], None],
    dry_run: Callable[[Any], None] | None = None,
    engine_settings: LLMSettings | None = None,
) -> int:
    """Open the engine (``engine_settings`` or ``settings``), ``run`` the method, print what the command prints.

    A dry run prints the plan (then ``dry_run(result)``) on stdout and exits 0;
    otherwise ``summary(result, engine)`` goes to stderr unless ``--quiet``, and
    the exit code is 3 when the result is partial.
    """
    with open_engine(engine_settings or settings) as engine:
        result = run(engine)
        if result.dry_run:
            assert result.plan is not None
            print_plan(result.plan, engine, settings.model)
            if dry_run is not None:
                dry_run(result)
            return 0
        if not settings.quiet:
            summary(result, engine)
    return EXIT_PARTIAL if result.partial else 0


__all__ = [
    "check_llm_paths",
    "print_engine_stats",
    "print_failures",
    "print_plan",
    "print_rejected",
    "rejects_path",
    "run_llm_command",
    "say",
    "where",
]

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

from itkit.cli.root import err_console, out_console
from itkit.cli.options import OnError, errors_path_for
from itkit.errors import EXIT_PARTIAL
from itkit.llm.dryrun import DryRunPlan
from itkit.llm.engine import Engine, open_engine
from itkit.dataset import describe_dropped
from itkit.llm.job import limit_note
from itkit.llm.settings import LLMSettings

FAILURE_REASONS_SHOWN = 5
"""The most frequent failure reasons the summary lists."""
FAILURES_HEADER = "failures with reasons and raw responses"


def rejects_path(output: str, on_error: OnError, errors: str | None) -> str | None:
    """The errors file of ``--on-error skip`` (None with ``--on-error fail``)."""
    return errors_path_for(output, errors) if on_error is OnError.skip else None


def cli_files(
    src: str,
    output: str,
    from_: Any,
    to: Any,
    on_error: OnError,
    errors: str | None,
    prompts_dir: str | None,
    *,
    command: str,
    settings: LLMSettings,
    sidecars: dict[str, str] | None = None,
    **extra: Any,
):
    """The :class:`~itkit.steps.io.Files` of an LLM command's plumbing options, checked by the paths rule
    (:meth:`~itkit.steps.io.Files.check`: summary, failures, ``sidecars`` and cache included) before anything is read."""
    from itkit.steps.io import Files

    files = Files(
        src,
        output,
        from_format=from_.value,
        to_format=to.value if to else None,
        on_error=on_error.value,
        errors_path=rejects_path(output, on_error, errors),
        prompts_dir=prompts_dir,
        **extra,
    )
    files.check(command, settings, **(sidecars or {}))
    return files


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
    otherwise ``summary(result, engine)`` goes to stderr unless ``--quiet``
    (followed by what ``--limit`` left out and the fields the output format
    could not hold, if any), and the exit code is 3 when the result is partial.
    """
    with open_engine(engine_settings or settings) as engine:
        result = run(engine)
        if result.dry_run:
            assert result.plan is not None
            print_plan(result.plan, engine, settings.model)
            if dry_run is not None:
                dry_run(result)
            note = limit_note(result, settings.limit)
            if note:
                out_console.print(note, markup=False, highlight=False)
            return 0
        if not settings.quiet:
            summary(result, engine)
            for note in (limit_note(result, settings.limit), describe_dropped(result.dropped, result.target_format)):
                if note:
                    say(note)
    return EXIT_PARTIAL if result.partial else 0


__all__ = [
    "print_engine_stats",
    "print_failures",
    "print_plan",
    "print_rejected",
    "rejects_path",
    "run_llm_command",
    "say",
    "where",
]

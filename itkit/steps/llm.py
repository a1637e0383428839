"""What the LLM steps share: their run report, their summary parameters and their outcome in a run folder."""

from __future__ import annotations

from typing import Any

from itkit.steps.io import Files, StepIO, StepOutcome


def run_report(command: str, files: Files, settings: Any, parameters: dict[str, Any]):
    """The command's RunReport; in a run folder its summary and failures files are the step's own."""
    from itkit.llm.report import RunReport

    report = RunReport(command, files.output, settings, parameters)
    if files.summary_path:
        report.summary_path = files.summary_path
    if files.failures_path:
        report.failures_path = files.failures_path
    return report


def parameters(files: Files, **options: Any) -> dict[str, Any]:
    """The parameters block of the step's summary (the same keys on the command line and in a run)."""
    return {
        "src": files.src,
        "output": files.output,
        "from": files.from_format,
        "to": files.to_format,
        **options,
        "on_error": files.on_error,
        "prompts_dir": files.prompts_dir,
    }


def open_engine(settings: Any, io: StepIO):
    from itkit.llm.engine import open_engine as open_

    engine = open_(settings)
    engine.plan.samples_wanted = io.samples
    return engine


def outcome(
    engine: Any, *, records_in: int, records_out: int, failed: int, partial: bool, plan: Any, passed_through: int = 0
) -> StepOutcome:
    """An LLM step's outcome: what it spent, or in a dry run what it would (``passed_through``: beyond the limit)."""
    settings = engine.settings
    if settings.dry_run:
        assert plan is not None
        return StepOutcome(
            records_in=records_in,
            records_out=None,
            passed_through=passed_through,
            estimate=plan.as_dict(engine.plan_price),
            plan_lines=plan.describe(engine.plan_price, settings.model),
            engine=engine.stats.as_dict(),
        )
    return StepOutcome(
        records_in=records_in,
        records_out=records_out,
        failed=failed,
        partial=partial,
        passed_through=passed_through,
        engine=engine.stats.as_dict(),
    )


def run_records(io: StepIO, execute: Any) -> tuple[Any, StepOutcome]:
    """Run a record-in, record-out LLM step: ``execute(engine)`` (a method's result, with ``read``, ``written``,
    ``failed``, ``partial``, ``plan``, ``passed_through``) under the step's engine, one batch round after another
    with ``--batch --wait``; the result and the step's outcome."""
    with open_engine(io.settings, io) as engine:
        result = engine.rounds(lambda: execute(engine))
        return result, outcome(
            engine, records_in=result.read + result.passed_through, records_out=result.written, failed=result.failed,
            partial=result.partial, plan=result.plan, passed_through=result.passed_through,
        )


__all__ = ["open_engine", "outcome", "parameters", "run_records", "run_report"]

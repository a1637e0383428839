"""``itkit evol-instruct``: make instructions harder and more diverse (WizardLM's Evol-Instruct)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from itkit.cli.root import app, handle_errors, out_console
from itkit.cli.llm_summary import FAILURES_HEADER, cli_files, print_engine_stats, print_failures, print_rejected, run_llm_command, say, where
from itkit.cli.step_options import step_command
from itkit.cli.options import (
    ErrorsPath,
    FromFormat,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Source,
    ToFormat,
)
from itkit.llm.engine import Engine
from itkit.llm.settings import LLMSettings
from itkit.methods.evol_instruct.elimination import RULES
from itkit.methods.evol_instruct.run import EvolFileResult
from itkit.steps.evol_instruct import STEP as EVOL
from itkit.steps.spec import PANEL_IO, Context


Eliminated = Annotated[
    Optional[str],
    typer.Option(
        "--eliminated",
        help=EVOL.opt("eliminated").help,
        show_default=False,
        rich_help_panel=PANEL_IO,
    ),
]


@app.command("evol-instruct")
@handle_errors
@step_command(EVOL)
def evol_instruct(
    src: Source,
    output: Output = "-",
    eliminated: Eliminated = None,
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    options: Any,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Evolve instructions into harder and more diverse ones (WizardLM's Evol-Instruct), and answer them.

    Each round, every instruction gets one operation (in-depth: add constraints, deepening, concretizing, more reasoning steps, complicate the input; in-breadth: a new, rarer instruction), drawn from --seed, the record id and the round. An evolution is eliminated by the paper's four rules (no information gain, a "sorry" answer, an empty answer, copied prompt markers) and its parent stays in the pool, as it does when a request fails. Rewrites and responses are sampled as in the released code (temperature 1, top_p 0.95); --temperature and --top-p change them, never the equality check. Multi-turn records are not evolved. Writes OUTPUT.summary.json and, for failed requests, OUTPUT.failures.jsonl (exit 3). Details: README, "itkit evol-instruct".

    \b
    Examples:
      itkit evol-instruct alpaca.json -o evolved.json
      itkit evol-instruct alpaca.json -o evol4.jsonl --rounds 4 --keep-rounds all
      itkit evol-instruct dolly.jsonl -o deeper.jsonl --ops in-depth
      itkit evol-instruct alpaca.json -o out.json --rounds 4 --dry-run --limit 100
    """
    ops = EVOL.prepare(options, Context(settings, prompts_dir, cli=True))
    files = cli_files(src, output, from_, to, on_error, errors, prompts_dir, command=EVOL.name, settings=settings, eliminated=eliminated)
    return run_llm_command(
        settings,
        lambda engine: EVOL.execute(ops, options, files, engine, settings),
        summary=lambda result, engine: _print_summary(result, output, options.rounds, engine),
        dry_run=lambda result: _print_dry_run(result, options.rounds),
        engine_settings=EVOL.engine_settings(settings),
    )


def _print_dry_run(result: EvolFileResult, rounds: int) -> None:
    assert result.evolution is not None
    counts = result.evolution.counts()["records"]
    out_console.print(
        f"evol-instruct: {result.read} records x {rounds} round(s), up to 3 requests each "
        "(rewrite, equality check, response); the estimate assumes every evolution survives (an upper bound)"
        + (f"; {counts['skipped']} records would be skipped (multi-turn or empty)" if counts["skipped"] else ""),
        markup=False,
    )


def _print_summary(result: EvolFileResult, output: str, rounds: int, engine: Engine) -> None:
    assert result.evolution is not None
    details = result.evolution.counts()
    c = result.counts
    say(
        f"evol-instruct: {c['read']} records, {rounds} round(s) ({result.source_format} -> {result.target_format}), "
        f"{c['written']} written to {where(output)}: {c['evolved']} evolved, {c['unchanged']} unchanged (no evolution "
        f"survived), {c['skipped']} skipped; {c['failed']} with a failed request (parent kept)"
    )
    e = details["evolutions"]
    say(f"  evolutions: {e['attempted']} attempted, {e['survived']} survived, {e['eliminated']} eliminated, {e['failed']} failed")
    if "salvaged_labels" in e:
        say(f"  --salvage-labels: {e['salvaged_labels']} replies had a label, preamble or quotes stripped")
    rules = details["eliminated_by_rule"]
    say("  eliminated by rule: " + ", ".join(f"{rule} {rules[rule]}" for rule in RULES))
    for op, n in details["by_operation"].items():
        say(f"    {op:<19}{n['attempted']:>5} attempted{n['survived']:>5} survived{n['eliminated']:>5} eliminated"
            f"{n['failed']:>4} failed")  # 79 columns
    print_engine_stats(engine)
    if result.failures_path:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    if result.eliminated_path:
        say(f"eliminated evolutions: {result.eliminated_path} ({result.eliminated_written})")
    print_rejected(result.rejected, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")

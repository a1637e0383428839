"""``itkit evol-instruct``: make instructions harder and more diverse (WizardLM's Evol-Instruct)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from itkit.cli.app import app, handle_errors, out_console
from itkit.cli.llm_options import llm_options
from itkit.cli.llm_summary import check_llm_paths, FAILURES_HEADER, print_engine_stats, print_failures, print_rejected, rejects_path, run_llm_command, say, where
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
from itkit.llm.report import RunReport
from itkit.llm.settings import LLMSettings
from itkit.methods.evol_instruct.elimination import RULES
from itkit.methods.evol_instruct.evolve import DEFAULT_ROUNDS
from itkit.methods.evol_instruct.operations import OPERATION_GROUPS, OPERATION_NAMES, parse_ops
from itkit.methods.evol_instruct.run import COMMAND, EvolFileResult, run_evol_instruct, split_sampling


class KeepMode(str, Enum):
    final = "final"
    all = "all"


Rounds = Annotated[
    int,
    typer.Option(
        "--rounds",
        min=1,
        help="Rounds of evolution (M). The paper runs 4; the released WizardLM code runs 1.",
    ),
]
Ops = Annotated[
    Optional[str],
    typer.Option(
        "--ops",
        help=(
            f"Comma-separated operations to choose from (uniformly, per record and round): {', '.join(OPERATION_NAMES)}; "
            f"or the groups {', '.join(OPERATION_GROUPS)} [default: all six]."
        ),
        show_default=False,
    ),
]
KeepOpt = Annotated[
    KeepMode,
    typer.Option(
        "--keep",
        help="final: one record per input, its last surviving evolution (the input itself if none survived); "
        "all: every input and every round's survivors, lineage by lineage (the paper's data set).",
    ),
]
OnlyEvolved = Annotated[
    bool,
    typer.Option("--only-evolved", help="Leave out the input records themselves (unevolved ones with --keep final)."),
]
Eliminated = Annotated[
    Optional[str],
    typer.Option(
        "--eliminated",
        help="Also write each eliminated evolution (rule, detail, rewrite, response) to this JSONL file.",
        show_default=False,
    ),
]


@app.command("evol-instruct")
@handle_errors
@llm_options
def evol_instruct(
    src: Source,
    output: Output = "-",
    rounds: Rounds = DEFAULT_ROUNDS,
    ops: Ops = None,
    keep: KeepOpt = KeepMode.final,
    only_evolved: OnlyEvolved = False,
    eliminated: Eliminated = None,
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Evolve instructions into harder and more diverse ones, with the paper's elimination step, and answer them.

    Each round, every instruction gets one operation, chosen uniformly from --seed (default 0), the record id and the round: in-depth (add constraints, deepening, concretizing, increase reasoning steps, complicate input with code/table/JSON/XML/SQL) or in-breadth (a new, rarer instruction in the same domain). An evolution fails, and its parent stays in the pool for the next round, when (1) the model judges it Equal to its parent (no information gain; temperature 0), (2) its response says "sorry" in under 80 words, (3) its response is only punctuation and stop words, or (4) it copies the prompt's markers ("given prompt", "#Rewritten Prompt#"...). Survivors are answered by the same model and get ids <input id>-evol-r<round> with a provenance step (operation, round, parent id, model, template hash).

    The instruction and its input are evolved together into one instruction. Multi-turn conversations are not evolved (failures file; split them first). --temperature and --top-p apply to the rewrites and responses (default: the templates' 1.0 / 0.95 for rewrites), never to the equality check. Each evolved record keeps its lineage in metadata.provenance. Writes OUTPUT.summary.json (counts per rule, operation and round) and OUTPUT.failures.jsonl (exit 3) for records whose requests failed after retries.

    Interrupted? Re-run the same command: finished responses come from the cache and are not sent again.

    \b
    Examples:
      itkit evol-instruct alpaca.json -o evolved.json
      itkit evol-instruct alpaca.json -o evol4.jsonl --rounds 4 --keep all --seed 42   # the paper's set-up
      itkit evol-instruct dolly.jsonl -o deeper.jsonl --ops in-depth --eliminated dropped.jsonl
      itkit evol-instruct alpaca.json -o out.json --rounds 4 --dry-run --limit 100
    """
    check_llm_paths(
        COMMAND,
        settings,
        {"SRC": src},
        {"-o": output, "--errors": rejects_path(output, on_error, errors), "--eliminated": eliminated},
    )
    chosen = parse_ops(ops)
    seed = settings.seed if settings.seed is not None else 0
    parameters = {
        "src": src,
        "output": output,
        "rounds": rounds,
        "ops": list(chosen),
        "seed": seed,
        "keep": keep.value,
        "only_evolved": only_evolved,
        "eliminated": eliminated,
        "from": from_.value,
        "to": to.value if to else None,
        "on_error": on_error.value,
        "prompts_dir": prompts_dir,
    }
    engine_settings, sampling = split_sampling(settings)
    return run_llm_command(
        settings,
        lambda engine: run_evol_instruct(
            src,
            output,
            engine=engine,
            report=RunReport(COMMAND, output, settings, parameters),
            rounds=rounds,
            ops=chosen,
            seed=seed,
            keep=keep.value,  # type: ignore[arg-type]
            only_evolved=only_evolved,
            sampling=sampling,
            prompts_dir=prompts_dir,
            from_format=from_.value,
            to_format=to.value if to else None,
            on_error=on_error.value,
            errors_path=rejects_path(output, on_error, errors),
            eliminated_path=eliminated,
        ),
        summary=lambda result, engine: _print_summary(result, output, rounds, engine),
        dry_run=lambda result: _print_dry_run(result, rounds),
        engine_settings=engine_settings,
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
        f"{c['written']} written to {where(output)}: {c['evolved']} evolved, {c['unchanged']} unchanged (every evolution "
        f"eliminated), {c['failed']} failed, {c['skipped']} skipped"
    )
    e = details["evolutions"]
    say(f"  evolutions: {e['attempted']} attempted, {e['survived']} survived, {e['eliminated']} eliminated, {e['failed']} failed")
    rules = details["eliminated_by_rule"]
    say("  eliminated by rule: " + ", ".join(f"{rule} {rules[rule]}" for rule in RULES))
    for op, n in details["by_operation"].items():
        say(f"    {op:<19} {n['attempted']:>6} attempted {n['survived']:>6} survived {n['eliminated']:>6} eliminated {n['failed']:>4} failed")
    print_engine_stats(engine)
    if result.failures_path:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    if result.eliminated_path:
        say(f"eliminated evolutions: {result.eliminated_path} ({result.eliminated_written})")
    print_rejected(result.rejected, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")

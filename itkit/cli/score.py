"""``itkit score``: LLM-as-judge scores (quality, complexity, one's own) in each record's metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itkit.cli.root import app, handle_errors, out_console
from itkit.cli.llm_summary import FAILURES_HEADER, cli_files, print_engine_stats, print_failures, print_rejected, run_llm_command, say, where
from itkit.cli.options import ErrorsPath, FromFormat, InputFormat, OnError, OnErrorOpt, Output, Source, ToFormat
from itkit.cli.step_options import step_command
from itkit.llm.settings import LLMSettings
from itkit.steps.score import STEP as SCORE
from itkit.steps.spec import Context

if TYPE_CHECKING:
    from itkit.llm.engine import Engine
    from itkit.methods.score.run import ScoreResult


@app.command()
@handle_errors
@step_command(SCORE)
def score(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    *,
    options: Any,
    settings: LLMSettings,
    prompts_dir: str | None,
) -> int:
    """Ask an LLM judge to score each record; the scores go into its metadata (scores: {quality: 4.0, ...}).

    quality (after AlpaGasus): 1-5, how accurately the response answers the instruction, with a one-line reason. complexity (after Deita): 1-5, how hard the instruction is. A scorer of one's own is a prompt file (--scorer-file, or by name from --prompts-dir's score/ folder). An answer without one clear score in the scale is asked for again (another seed, a higher temperature), never guessed; a record still without its score goes to OUTPUT.failures.jsonl (exit 3). Records a scorer has nothing to judge in (no response) are written without that score. Then: itkit filter --min-score quality=4, itkit stats. Details: README, "itkit score".

    \b
    Examples:
      itkit score alpaca.json -o scored.json --model gpt-4o-mini
      itkit score data.jsonl -o scored.jsonl --scorer quality,complexity --dry-run
      itkit score data.jsonl -o scored.jsonl --scorer-file my_helpfulness.yaml
      itkit score data.jsonl -o scored.jsonl --base-url http://localhost:8000/v1
    """
    scorers = SCORE.prepare(options, Context(settings, prompts_dir, cli=True))
    files = cli_files(src, output, from_, to, on_error, errors, prompts_dir, command=SCORE.name, settings=settings)
    return run_llm_command(
        settings,
        lambda engine: SCORE.execute(scorers, options, files, engine, settings),
        summary=lambda result, engine: _print_summary(result, output, engine),
        dry_run=_print_dry_run,
    )


def _print_dry_run(result: ScoreResult) -> None:
    for line in result.not_scored_lines():
        out_console.print(line, markup=False, highlight=False)


def _print_summary(result: ScoreResult, output: str, engine: Engine) -> None:
    from itkit.methods.score.distribution import describe_scores, plain

    say(
        f"score: {result.read} records ({result.source_format} -> {result.target_format}) to {where(output)}: "
        f"{result.scored} scored, {result.unscored} with nothing to score (unchanged), {result.failed} failed"
    )
    for name, counts in result.by_scorer.items():
        d = describe_scores(counts.scores)
        if d["count"]:
            bars = ", ".join(f"{k}: {v}" for k, v in d["histogram"].items())
            say(f"  {name}: {d['count']} scored, mean {d['mean']:.2f}, median {plain(d['median'])}; {bars}")
        else:
            say(f"  {name}: none scored")
    for line in result.not_scored_lines():
        say(f"  {line}")
    print_engine_stats(engine)
    if result.failed:
        print_failures(f"{FAILURES_HEADER}: {result.failures_path}", result.failure_reasons)
    print_rejected(result.rejected_input, "input rows", result.errors_path)
    say(f"summary: {result.summary_path}")

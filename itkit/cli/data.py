"""convert, validate, stats: the commands that only read and write data."""

from __future__ import annotations

import json

import typer

from itkit.cli.root import app, err_console, handle_errors, out_console
from itkit.cli.options import (
    AsJson,
    Encoding,
    ErrorsPath,
    FromFormat,
    Help,
    OldTokenModel,
    InputFormat,
    OnError,
    OnErrorOpt,
    Output,
    Quiet,
    Source,
    ToFormat,
    TokenModel,
    errors_path_for,
)
from itkit.cli.options import deprecated
from itkit.errors import EXIT_FATAL, EXIT_PARTIAL

# The library is imported inside each command, so that `itkit convert --help` starts fast.


@app.command()
@handle_errors
def convert(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    quiet: Quiet = False,
    help_: Help = False,
) -> int:
    """Convert a dataset between formats and containers (streams JSONL).

    \b
    Examples:
      itkit convert alpaca.json -o chat.jsonl --to sharegpt
      itkit convert dolly.jsonl -o dolly.parquet
      cat data.jsonl | itkit convert - --to messages > messages.jsonl
      itkit convert raw.jsonl -o clean.jsonl --on-error skip --errors bad.jsonl
    """
    from itkit.convert import convert as convert_records
    from itkit.dataset import describe_dropped
    from itkit.io.paths import check_paths

    skip = on_error is OnError.skip
    errors_path = errors_path_for(output, errors) if skip else None
    check_paths({"SRC": src}, {"-o": output, "--errors": errors_path})
    result = convert_records(
        src,
        output,
        from_format=from_.value,
        to_format=to.value if to else None,
        on_error=on_error.value,
        errors_path=errors_path,
    )
    if not quiet:
        where = "stdout" if output == "-" else output
        err_console.print(
            f"converted {result.written} of {result.read} records "
            f"({result.source_format} -> {result.target_format}) to {where}",
            markup=False,
        )
        dropped = describe_dropped(result.dropped, result.target_format)
        if dropped:
            err_console.print(dropped, markup=False)
        if result.rejected:
            err_console.print(f"{result.rejected} rejected, written with reasons to {errors_path}", markup=False)
            for reason, n in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:10]:
                err_console.print(f"  {n:>6}  {reason}", markup=False)
    return EXIT_PARTIAL if result.rejected else 0


@app.command()
@handle_errors
def validate(
    src: Source,
    from_: FromFormat = InputFormat.auto,
    as_json: AsJson = False,
    quiet: Quiet = False,
    help_: Help = False,
) -> int:
    """Check every record of a dataset and report every problem found (exit 1 if any).

    \b
    Each problem is one line on stdout: FILE, line N (or index N): field 'F': what is wrong.
    Examples:
      itkit validate data.jsonl
      itkit validate data.json --from alpaca --json | jq .problems
    """
    from itkit.convert import validate as validate_source
    from itkit.io.rows import display_name

    result = validate_source(src, from_format=from_.value)
    if as_json:
        out_console.print_json(
            json.dumps(
                {
                    "source": display_name(src),
                    "format": result.format,
                    "records": result.records,
                    "valid": result.valid,
                    "problems": [{"message": p.message, **p.location} for p in result.problems],
                },
                ensure_ascii=False,
            )
        )
    else:
        for problem in result.problems:
            typer.echo(problem.message)
    if not quiet:
        verdict = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
        err_console.print(
            f"{display_name(src)}: {result.format or 'unknown format'}, {result.valid} of {result.records} records valid: {verdict}",
            markup=False,
        )
    return EXIT_FATAL if result.problems else 0


@app.command()
@handle_errors
def stats(
    src: Source,
    from_: FromFormat = InputFormat.auto,
    encoding: Encoding = None,
    model: TokenModel = None,
    as_json: AsJson = False,
    on_error: OnErrorOpt = OnError.fail,
    old_model: OldTokenModel = None,
    help_: Help = False,
) -> int:
    """Record and turn counts, empties, duplicates and token lengths per field (tiktoken).

    \b
    Fields: system, prompt (user turns), input (Alpaca input / Dolly context), response (assistant turns), total.
    Examples:
      itkit stats data.jsonl
      itkit stats data.jsonl --tokenizer-model gpt-4o --json > stats.json
    """
    from itkit.dataset import RecordReader
    from itkit.io.rows import display_name
    from itkit.stats import FIELDS, compute_stats
    from itkit.tokens import counter_for

    if old_model is not None:
        deprecated("--model", "--tokenizer-model")
        model = model or old_model
    # without --encoding/--model the token table may be estimated offline (with a warning)
    counter = counter_for(model, encoding, required=bool(model or encoding))
    reader = RecordReader(src, from_.value, on_error=on_error.value)
    result = compute_stats(reader, counter, source=display_name(src), fmt=reader.format.name)
    result.rejected = reader.counts.rejected
    if as_json:
        out_console.print_json(json.dumps(result.as_dict(), ensure_ascii=False))
        return EXIT_PARTIAL if result.rejected else 0
    from rich.table import Table

    summary = Table(title=f"{result.source} ({result.format})", show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    rows = [
        ("records", result.records),
        ("single-turn", result.single_turn),
        ("multi-turn", result.multi_turn),
        ("exchanges (user turns)", result.exchanges),
        ("max exchanges in a record", result.max_exchanges),
        ("with system prompt", result.with_system),
        ("with input/context", result.with_input),
        ("empty prompt", result.empty_prompt),
        ("empty response", result.empty_response),
        ("no response (ends with user)", result.no_response),
        ("duplicate records (normalised)", result.duplicate_records),
        ("duplicate prompts (normalised)", result.duplicate_prompts),
    ]
    if result.rejected:
        rows.append(("rejected (bad records)", result.rejected))
    for name, value in rows:
        summary.add_row(name, str(value))
    out_console.print(summary)
    tokens = Table(title=f"tokens per record ({result.encoding})")
    for col in ("field", "min", "median", "p95", "max", "mean"):
        tokens.add_column(col, justify="left" if col == "field" else "right")
    for name in FIELDS:
        d = result.tokens[name]
        tokens.add_row(name, str(d.min), f"{d.median:g}", f"{d.p95:.1f}", str(d.max), f"{d.mean:.1f}")
    out_console.print(tokens)
    if result.categories:
        cats = Table(title="categories")
        cats.add_column("category")
        cats.add_column("records", justify="right")
        for name, n in list(result.categories.items())[:20]:
            cats.add_row(name, str(n))
        out_console.print(cats)
    return EXIT_PARTIAL if result.rejected else 0


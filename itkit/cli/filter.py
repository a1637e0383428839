"""filter: remove low-quality records with named, tunable rules."""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from itkit.cli.app import app, err_console, handle_errors, out_console
from itkit.cli.options import (
    check_stdout_use,
    AsJson,
    Encoding,
    ErrorsPath,
    FromFormat,
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
from itkit.errors import EXIT_PARTIAL, UsageError
from itkit.io.paths import check_paths
from itkit.filters import DEFAULT_RULES, PARAM_OWNERS, RULES, build_rules, filter_file, parse_rule_names
from itkit.filters.options import rule_params
from itkit.filters.pipeline import FilterResult


class LengthUnit(str, Enum):
    words = "words"
    tokens = "tokens"


def _help() -> str:
    rules = "\n".join(
        f"  {name + ('*' if name in DEFAULT_RULES else ''):<13}{rule.description}" for name, rule in RULES.items()
    )
    return f"""Remove low-quality records with named rules; write the rest in input order.

Each record is removed by the first rule (in --rules order) that finds a problem. The summary
counts records in, kept and removed per rule; --report writes one JSON line per removed record
(id, source, index, rule, reason, record). Removing records is not an error: exit 0.

\b
Rules (* = applied when --rules is not given; length and language join when one of their options is):
{rules}

\b
Examples:
  itkit filter alpaca.json -o clean.json --report removed.jsonl
  itkit filter chats.json -o clean.json --rules empty,refusal,alternation
  itkit filter data.jsonl -o short.jsonl --max-response 512 --length-unit tokens
  itkit filter data.jsonl -o en.jsonl --scripts latin --min-script-share 0.8
"""


OPTION_FOR_PARAM = {
    "placeholders": "--placeholder",
    "refusal_openings": "--refusal-pattern",
    "boilerplate": "--boilerplate-pattern",
    "non_text_patterns": "--non-text-pattern",
    "keep_requested_placeholders": "--keep-requested-placeholders",
    "ignore_code": "--ignore-code",
}
"""Rule parameters whose option is not simply --the-name (list options add to the defaults)."""


def _as_options(message: str) -> str:
    """A library message about rule parameters, naming the options the user typed instead."""
    for param in PARAM_OWNERS:
        if param == "encoding":  # "tiktoken encoding" is also plain English in messages
            continue
        flag = OPTION_FOR_PARAM.get(param, "--" + param.replace("_", "-"))
        message = re.sub(rf"(?<![\w-])'?{param}'?(?!\w)", flag, message)
    return message


@app.command("filter", help=_help())
@handle_errors
def filter_command(
    src: Source,
    output: Output = "-",
    from_: FromFormat = InputFormat.auto,
    to: ToFormat = None,
    rules: Annotated[
        Optional[str],
        typer.Option("--rules", help="Comma-separated rules to apply, in this order (see above)."),
    ] = None,
    min_instruction: Annotated[
        Optional[int], typer.Option("--min-instruction", help="length: fewest words/tokens in every user turn.")
    ] = None,
    max_instruction: Annotated[
        Optional[int], typer.Option("--max-instruction", help="length: most words/tokens in every user turn.")
    ] = None,
    min_input: Annotated[
        Optional[int], typer.Option("--min-input", help="length: fewest words/tokens in the input/context (when present).")
    ] = None,
    max_input: Annotated[
        Optional[int], typer.Option("--max-input", help="length: most words/tokens in the input/context.")
    ] = None,
    min_response: Annotated[
        Optional[int], typer.Option("--min-response", help="length: fewest words/tokens in every assistant turn.")
    ] = None,
    max_response: Annotated[
        Optional[int], typer.Option("--max-response", help="length: most words/tokens in every assistant turn.")
    ] = None,
    length_unit: Annotated[
        Optional[LengthUnit],
        typer.Option("--length-unit", help="length: count whitespace-separated words or tiktoken tokens \\[default: words]."),
    ] = None,
    encoding: Encoding = None,
    model: TokenModel = None,
    placeholder: Annotated[
        Optional[list[str]],
        typer.Option("--placeholder", help="placeholder: another whole-field placeholder text (repeatable).", show_default=False),
    ] = None,
    keep_requested_placeholders: Annotated[
        Optional[bool],
        typer.Option(
            "--keep-requested-placeholders/--drop-requested-placeholders",
            help='placeholder: keep a response such as "N/A" when its prompt asks for it \\[default: keep].',
            show_default=False,
        ),
    ] = None,
    refusal_pattern: Annotated[
        Optional[list[str]],
        typer.Option("--refusal-pattern", help="refusal: another regex matched at the start of a response (repeatable).", show_default=False),
    ] = None,
    boilerplate_pattern: Annotated[
        Optional[list[str]],
        typer.Option("--boilerplate-pattern", help="refusal: another regex matched anywhere in a response (repeatable).", show_default=False),
    ] = None,
    non_text_pattern: Annotated[
        Optional[list[str]],
        typer.Option("--non-text-pattern", help="non_text: another regex for a non-text item (repeatable).", show_default=False),
    ] = None,
    scripts: Annotated[
        Optional[str],
        typer.Option("--scripts", help="language: expected scripts, comma-separated (latin, cyrillic, cjk, han, arabic...)."),
    ] = None,
    min_script_share: Annotated[
        Optional[float],
        typer.Option("--min-script-share", help="language: least share of letters in the expected scripts \\[default: 0.5]."),
    ] = None,
    min_letters: Annotated[
        Optional[int],
        typer.Option("--min-letters", help="language: records with fewer letters are not judged \\[default: 20]."),
    ] = None,
    ignore_code: Annotated[
        Optional[bool],
        typer.Option(
            "--ignore-code/--count-code",
            help="language: leave code blocks, inline code and URLs out of the letter count \\[default: ignore].",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Optional[str],
        typer.Option("--report", help="Write every removed record with its rule and reason here (JSONL)."),
    ] = None,
    on_error: OnErrorOpt = OnError.fail,
    errors: ErrorsPath = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> int:
    check_stdout_use(as_json, output, report)
    if (encoding or model) and length_unit is not LengthUnit.tokens:
        raise UsageError("--encoding and --model set the tokenizer of --length-unit tokens; add --length-unit tokens")
    given = rule_params(
        min_instruction=min_instruction,
        max_instruction=max_instruction,
        min_input=min_input,
        max_input=max_input,
        min_response=min_response,
        max_response=max_response,
        length_unit=length_unit.value if length_unit else None,
        encoding=encoding,
        model=model,
        placeholder=placeholder,
        keep_requested_placeholders=keep_requested_placeholders,
        refusal_pattern=refusal_pattern,
        boilerplate_pattern=boilerplate_pattern,
        non_text_pattern=non_text_pattern,
        scripts=parse_rule_names(scripts) if scripts is not None else None,
        min_script_share=min_script_share,
        min_letters=min_letters,
        ignore_code=ignore_code,
    )
    try:
        selected = build_rules(parse_rule_names(rules) if rules is not None else None, **given)
    except UsageError as err:
        raise UsageError(_as_options(str(err))) from None
    skip = on_error is OnError.skip
    errors_path = errors_path_for(output, errors) if skip else None
    check_paths({"SRC": src}, {"-o": output, "--report": report, "--errors": errors_path})
    result = filter_file(
        src,
        output,
        selected,
        from_format=from_.value,
        to_format=to.value if to else None,
        report_path=report,
        on_error=on_error.value,
        errors_path=errors_path,
    )
    if as_json:
        out_console.print_json(json.dumps({**result.as_dict(), "output": output}, ensure_ascii=False))
    elif not quiet:
        _print_summary(result, output)
    return EXIT_PARTIAL if result.rejected else 0


def _print_summary(result: FilterResult, output: str) -> None:
    counts = result.counts
    where = "stdout" if output == "-" else output
    # Text(): file names may hold "[...]", which rich would read as markup
    table = Table(title=Text(f"filter {result.source} ({result.source_format} -> {result.target_format})"))
    table.add_column("records")
    table.add_column("count", justify="right")
    table.add_row("in", str(result.rows))
    for name, n in counts.removed.items():
        table.add_row(f"removed: {name}", str(n))
    if result.rejected:
        table.add_row("rejected (bad records)", str(result.rejected))
    table.add_row("kept", str(result.written), style="bold")
    err_console.print(table)
    err_console.print(f"wrote {result.written} record(s) to {where}", markup=False)
    if result.report_path is not None:
        err_console.print(f"{counts.removed_total} removed record(s) with reasons in {result.report_path}", markup=False)
    if result.errors_path:
        err_console.print(f"{result.rejected} rejected record(s) with reasons in {result.errors_path}", markup=False)

"""The filter step (``itkit filter``, a recipe's ``filter:``): named, tunable rules that remove records."""

from __future__ import annotations

import re
from typing import Any

from itkit.errors import UsageError
from itkit.filters.language import LanguageRule
from itkit.filters.registry import PARAM_OWNERS
from itkit.steps import headlines
from itkit.steps.io import REMOVED_FILE, SUMMARY_FILE, Files, StepIO, StepOutcome, nonzero, write_json
from itkit.steps.spec import COMMA, REPEAT, Context, Opt, Step

RULES_PANEL = "Rules"
LENGTH_PANEL = "Rule length"
PATTERN_PANEL = "Rules placeholder, refusal, non_text"
LANGUAGE_PANEL = "Rule language"

RULE_PARAM_OPTION = {
    "placeholders": "placeholder",
    "refusal_openings": "refusal_pattern",
    "boilerplate": "boilerplate_pattern",
    "non_text_patterns": "non_text_pattern",
}
"""Rule parameters whose option has another name (the option adds to the rule's default list)."""


def _bound(name: str, which: str, part: str) -> Opt:
    return Opt(name, int, help=f"{which} words/tokens in {part}.", panel=LENGTH_PANEL)


OPTS = (
    Opt("rules", str, many=COMMA, metavar="RULES", help="Rules to apply, in this order (comma-separated; see above).", panel=RULES_PANEL),
    _bound("min_instruction", "Fewest", "every user turn"),
    _bound("max_instruction", "Most", "every user turn"),
    _bound("min_input", "Fewest", "the input/context (when present)"),
    _bound("max_input", "Most", "the input/context"),
    _bound("min_response", "Fewest", "every assistant turn"),
    _bound("max_response", "Most", "every assistant turn"),
    Opt("length_unit", str, choices=("words", "tokens"), default_text="words", panel=LENGTH_PANEL,
        help="Count whitespace-separated words or tiktoken tokens."),
    Opt("encoding", str, default_text="cl100k_base", metavar="NAME", panel=LENGTH_PANEL, help="tiktoken encoding of --length-unit tokens."),
    Opt("tokenizer_model", str, old="model", metavar="MODEL", panel=LENGTH_PANEL, help="Count tokens with this model's encoding (e.g. gpt-4o)."),
    Opt("placeholder", str, many=REPEAT, panel=PATTERN_PANEL, help="Another whole-field placeholder text (repeatable)."),
    Opt("keep_requested_placeholders", bool, flag="--keep-requested/--drop-requested", default_text="keep",
        old_flag="--keep-requested-placeholders/--drop-requested-placeholders", panel=PATTERN_PANEL,
        help='Keep a response such as "N/A" when its prompt asks for it.'),
    Opt("refusal_pattern", str, many=REPEAT, metavar="REGEX", panel=PATTERN_PANEL, help="Another regex matched at a response's start."),
    Opt("boilerplate_pattern", str, many=REPEAT, metavar="REGEX", panel=PATTERN_PANEL, help="Another regex matched anywhere in a response."),
    Opt("non_text_pattern", str, many=REPEAT, metavar="REGEX", panel=PATTERN_PANEL, help="Another regex for a non-text item."),
    Opt("scripts", str, many=COMMA, metavar="NAMES", default_text=",".join(LanguageRule.scripts), panel=LANGUAGE_PANEL,
        help="Expected scripts: latin, cyrillic, cjk, han, arabic..."),
    Opt("min_script_share", float, default_text=str(LanguageRule.min_script_share), panel=LANGUAGE_PANEL,
        help="Least share of letters in the expected scripts."),
    Opt("min_letters", int, default_text=str(LanguageRule.min_letters), panel=LANGUAGE_PANEL,
        help="Records with fewer letters are not judged."),
    Opt("ignore_code", bool, flag="--ignore-code/--count-code", default_text="ignore", panel=LANGUAGE_PANEL,
        help="Leave code blocks, inline code and URLs out of the letter count."),
)


def prepare(o: Any, ctx: Context) -> list:
    """The configured rules (unknown rule names and misplaced parameters are usage errors)."""
    from itkit.filters import build_rules
    from itkit.filters.options import rule_params

    if (o.encoding or o.tokenizer_model) and o.length_unit != "tokens":
        tokens = ctx.setting("length_unit", "tokens")
        raise UsageError(f"{ctx.name('encoding')} and {ctx.name('tokenizer_model')} set the tokenizer of {tokens}; add {tokens}")
    given = rule_params(**o.model_dump(exclude={"rules", "tokenizer_model"}), model=o.tokenizer_model)
    try:
        return build_rules(o.rules, **given)
    except UsageError as err:
        raise UsageError(_option_names(str(err), ctx)) from None


def _option_names(message: str, ctx: Context) -> str:
    """A rule library message naming the options the user wrote instead of the rules' parameters."""
    if not ctx.cli:
        for param, option in RULE_PARAM_OPTION.items():
            message = re.sub(rf"(?<![\w-])'{param}'(?!\w)", f"'{option}'", message)
        return message
    for param in PARAM_OWNERS:
        if param == "encoding":  # "tiktoken encoding" is also plain English in messages
            continue
        message = re.sub(rf"(?<![\w-])'?{param}'?(?!\w)", ctx.name(RULE_PARAM_OPTION.get(param, param)), message)
    return message


def execute(rules: list, o: Any, files: Files):
    """``filter_file`` with the step's rules: a :class:`~itkit.filters.pipeline.FilterResult`."""
    from itkit.filters import filter_file

    return filter_file(
        files.src,
        files.output,
        rules,
        from_format=files.from_format,
        to_format=files.to_format,
        report_path=files.report,
        on_error=files.on_error,
        errors_path=files.errors_path,
    )


def run(rules: list, o: Any, io: StepIO) -> StepOutcome:
    result = execute(rules, o, io.files(report=str(io.folder / REMOVED_FILE)))
    write_json(io.folder / SUMMARY_FILE, {**result.as_dict(), "output": str(io.output)})
    return StepOutcome(
        records_in=result.rows,
        records_out=result.written,
        removed=nonzero(dict(result.counts.removed)),
        rejected=result.rejected,
        partial=bool(result.rejected),
    ).headed(headlines.filter_headline(result.rows, result.written))


STEP = Step(
    "filter",
    "remove low-quality records",
    OPTS,
    panel=RULES_PANEL,
    prepare=prepare,
    execute=execute,
    run=run,
    plumbing=("src", "output", "from", "to", "report", "on_error", "errors", "quiet", "json"),
)

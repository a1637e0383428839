"""Parity: every step's command-line options and its recipe options come from one definition and agree.

For every step (and the export): each command-line option that is not input/output plumbing is a recipe
option of the same name, with the same default, the same type checks and the same choices; each recipe
option is on the command line; each deprecated spelling works in both places.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.main import get_command

from itkit.cli import app
from itkit.cli.llm_options import PREFIX as LLM_PREFIX
from itkit.cli.step_options import OLD_PREFIX, PREFIX, step_options
from itkit.recipes.schema import FORBIDDEN_LLM_FIELDS, LLM_BLOCK_FIELDS
from itkit.steps import COMMANDS, STEPS
from itkit.steps.spec import COMMA, REPEAT, Opt, Step

ROOT = get_command(app)
CTX = ROOT.context_class(ROOT, info_name="itkit")
PYTHON_NAMES = {"from_": "from", "as_json": "json"}
"""Command parameters whose Python name is not the plumbing name (``--from``, ``--json``)."""


def command(step: Step):
    cmd = ROOT.get_command(CTX, step.name)
    assert cmd is not None, f"no command itkit {step.name}"
    return cmd


def required_args(step: Step) -> list[str]:
    args = ["in.jsonl"]
    if step.name == "export":
        args += ["-o", "out"]
    for o in step.opts:
        if o.required:
            args += [o.cli, "3"]
    return args


def required_values(step: Step) -> dict:
    return {o.name: 3 for o in step.opts if o.required}


def parse(step: Step, *args: str):
    """The options model the command builds from ``args`` (a UsageError or click error when refused)."""
    cmd = command(step)
    ctx = cmd.make_context(step.name, [*required_args(step), *args])
    params = dict(ctx.params)
    params.pop("help_", None)
    return step_options(step, params)


def sample(o: Opt):
    """A valid value that is not the default: (command-line arguments, recipe value)."""
    if o.many == COMMA:
        return ["a,b"], ["a", "b"]
    if o.many == REPEAT:
        return ["a,b"], ["a,b"]
    if o.choices:
        value = next(c for c in reversed(o.choices) if c != o.default)
        return [value], value
    if o.type is bool:
        if o.default is True:
            return [f"--no-{o.cli[2:]}"], False
        return [], True
    if o.type is int:
        return ["7"], 7
    if o.type is float:
        return ["0.25"], 0.25
    return ["some-text"], "some-text"


ALL = [pytest.param(step, id=name) for name, step in COMMANDS.items()]


@pytest.mark.parametrize("step", ALL)
def test_every_option_is_on_both_sides_and_nothing_else(step):
    cmd = command(step)
    names = {p.name for p in cmd.params}
    model = set(step.options.model_fields)
    for o in step.opts:
        assert o.name in model
        if o.file:  # a path on the command line (plumbing), a switch in a recipe
            assert o.name in names and o.name in step.plumbing
        else:
            assert PREFIX + o.name in names, f"{o.cli} is missing from itkit {step.name}"
    for name in names:
        if name.startswith(PREFIX):
            assert name[len(PREFIX):] in model
        elif name.startswith(OLD_PREFIX):
            assert name[len(OLD_PREFIX):] in model and (step.opt(name[len(OLD_PREFIX):]).old or step.opt(name[len(OLD_PREFIX):]).old_flag)
        elif name == "help_":
            continue
        elif name.startswith(LLM_PREFIX) or name == "prompts_dir":
            setting = name.removeprefix(LLM_PREFIX)
            assert step.uses_llm and (setting in LLM_BLOCK_FIELDS or setting in FORBIDDEN_LLM_FIELDS), name
        else:
            assert PYTHON_NAMES.get(name, name) in step.plumbing, f"itkit {step.name}: {name} is neither an option nor plumbing"


@pytest.mark.parametrize("step", ALL)
def test_defaults_are_the_same(step):
    from_cli = parse(step)
    from_recipe = step.options.model_validate(required_values(step))
    assert from_cli == from_recipe


@pytest.mark.parametrize("step", ALL)
def test_each_value_means_the_same_on_both_sides(step):
    for o in step.opts:
        if o.file:
            continue
        args, value = sample(o)
        cli_args = (args or [o.cli]) if o.type is bool else [part for a in args for part in (o.cli, a)]
        from_cli = getattr(parse(step, *cli_args), o.name)
        from_recipe = getattr(step.options.model_validate({**required_values(step), o.name: value}), o.name)
        assert from_cli == from_recipe == value, (o.name, from_cli, from_recipe)


@pytest.mark.parametrize("step", ALL)
def test_type_checks_choices_and_ranges_are_the_same(step):
    base = required_values(step)
    for o in step.opts:
        if o.file or o.many:
            continue
        bad: list[tuple[list[str], object]] = []
        if o.choices:
            for choice in o.choices:
                assert getattr(parse(step, o.cli, choice), o.name) == choice
                assert getattr(step.options.model_validate({**base, o.name: choice}), o.name) == choice
            bad.append(([o.cli, "no-such-choice"], "no-such-choice"))
        elif o.type in (int, float):
            bad.append(([o.cli, "abc"], "abc"))
            if o.ge is not None:
                below = o.ge - 1
                bad.append(([o.cli, str(below)], below))
            if o.le is not None:
                above = o.le + 1
                bad.append(([o.cli, str(above)], above))
        for cli_args, recipe_value in bad:
            with pytest.raises(Exception) as refused:
                parse(step, *cli_args)
            assert not isinstance(refused.value, (AssertionError, TypeError)), refused.value
            with pytest.raises(ValidationError):
                step.options.model_validate({**base, o.name: recipe_value})


@pytest.mark.parametrize("step", [pytest.param(s, id=s.name) for s in COMMANDS.values() if s.renamed()])
def test_deprecated_spellings_work_on_both_sides(step, capsys):
    for old, new in step.renamed().items():
        o = step.opt(new)
        args, value = sample(o)
        cli_args = [o.cli_old, *args] if o.type is not bool else [o.cli_old]
        assert getattr(parse(step, *cli_args), new) == value
        assert f"{o.cli_old} is deprecated" in capsys.readouterr().err


OLD_FLAGS = [(s, o) for s in COMMANDS.values() for o in s.opts if o.old_flag]


@pytest.mark.parametrize("step,o", [pytest.param(s, o, id=f"{s.name}-{o.name}") for s, o in OLD_FLAGS])
def test_deprecated_flag_pairs_work_both_ways(step, o, capsys):
    """A renamed flag pair (recipe key unchanged): each old half sets what the new half sets, with a warning."""
    old_on, old_off = o.old_flag.split("/")
    new_on, new_off = o.flag.split("/")
    assert getattr(parse(step, old_on), o.name) is True
    assert f"{old_on} is deprecated" in capsys.readouterr().err and new_on
    assert getattr(parse(step, old_off), o.name) is False
    err = capsys.readouterr().err
    assert f"{old_off} is deprecated" in err and f"use {new_off}" in err


def test_the_step_table():
    assert list(STEPS) == ["filter", "simplify", "evol-instruct", "orca", "self-instruct", "dedup", "decontaminate"]
    for step in COMMANDS.values():
        assert step.prepare is not None and step.execute is not None
        assert step.options.model_config.get("extra") == "forbid"
        assert len({o.name for o in step.opts}) == len(step.opts)
        for o in step.opts:
            assert o.help and "\n" not in o.help, f"{step.name} {o.name}: one help line"
    for step in STEPS.values():
        assert step.run is not None


COMMAND_NAMES = [
    "convert", "validate", "stats", "filter", "dedup", "decontaminate", "simplify", "self-instruct", "evol-instruct",
    "orca", "export", "run", "report",
]


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_reads_well_at_80_columns(runner, name, monkeypatch):
    from conftest import invoke

    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(runner, name, "--help")
    assert result.exit_code == 0
    text = result.stdout
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "<bool>" not in text, "flags show no metavar"
    assert "{src}" not in text and "[default: (" not in text
    usage = next(line for line in lines if "Usage:" in line)
    assert usage.strip().startswith(f"Usage: itkit {name} [OPTIONS] ")
    assert "{" not in usage and usage.split()[-1].isupper(), "usage says SRC, not {SRC} or {src}"
    assert "…" not in text, "nothing cut short at 80 columns"
    assert "╭─ Options ─" not in text, "every option sits in a named panel (input/output, method, LLM, output control)"
    assert "--help" in text and "-h" in text


def test_a_step_option_may_not_take_an_engine_option_name():
    from dataclasses import replace

    from itkit.cli.step_options import step_command
    from itkit.steps.spec import Opt

    clashing = replace(STEPS["simplify"], opts=(Opt("temperature", float, help="A clash."),))
    with pytest.raises(TypeError, match="--temperature is already an LLM engine option"):
        step_command(clashing)(lambda src, *, options, settings, prompts_dir: 0)

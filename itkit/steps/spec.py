"""The one definition of a step: its options (:class:`Opt`) and the library calls it makes (:class:`Step`).

From a :class:`Step` are derived: the Typer command's options
(:mod:`itkit.cli.step_options`), the recipe step's pydantic model
(:attr:`Step.options`, checked by :mod:`itkit.recipes.schema` with located
errors), the README's command reference and the run-folder wiring
(:attr:`Step.run`). Nothing here imports Typer: the library never needs the CLI.

An option's *name* is its recipe key (``near_threshold``); its command-line
spelling is ``--near-threshold`` unless :attr:`Opt.flag` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Callable, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from itkit.steps.panels import PANEL_CONTROL, PANEL_IO, PANEL_LLM, PANEL_ORDER

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The range of every integer option (``--seed 2**70`` is a usage error, exit 2, not a crash)."""
REPEAT = "repeat"
"""A repeatable option (``--placeholder A --placeholder B``); in a recipe, a list or one string."""
COMMA = "comma"
"""A list of names: comma-separated and/or repeated (``--rules empty,refusal``); in a recipe, a list or ``"a, b"``."""


class Options(BaseModel):
    """Base of every recipe block: unknown keys are errors, types are strict."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def comma_list(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]``; lists pass through (their items are checked as strings)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def one_or_many(value: Any) -> Any:
    """A single string is a list of one (for repeatable options such as ``placeholder``)."""
    return [value] if isinstance(value, str) else value


@dataclass(frozen=True)
class Opt:
    """One option of a step, on the command line and in a recipe."""

    name: str
    """The recipe key and Python name (``near_threshold``)."""
    type: type
    """bool, int, float or str (for a list option: the type of its items, str)."""
    default: Any = None
    help: str = ""
    """One line; longer explanations belong in the README."""
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    many: str | None = None
    """:data:`REPEAT` or :data:`COMMA` for a list option."""
    flag: str | None = None
    """The command-line spelling when it is not ``--name`` (a boolean's ``--exact/--no-exact``)."""
    short: str | None = None
    required: bool = False
    default_text: str | None = None
    """What ``[default: ...]`` says when the default is None but the library applies one."""
    panel: str | None = None
    """The help panel (None: the step's method panel)."""
    old: str | None = None
    """The deprecated spelling (recipe key; ``--old-name`` on the command line), accepted with a warning."""
    old_flag: str | None = None
    """A deprecated command-line spelling (``--keep-x/--drop-x``) of an option whose recipe key did not change."""
    file: bool = False
    """A file the step may also write: a path option (plumbing) on the command line, a boolean in a recipe
    (``eliminated: true`` writes the step folder's eliminated.jsonl)."""
    metavar: str | None = None
    """What the help shows for the value (default: N, X, TEXT, a|b, or the name for long choices)."""
    recipe_value: Callable[[Any], Any] | None = None
    """Turns other recipe spellings into the option's type before the check (Orca's ``[2, 5, 7]``)."""

    @property
    def cli(self) -> str:
        """The primary command-line spelling (``--near-threshold``)."""
        return (self.flag or "--" + self.name.replace("_", "-")).split("/")[0]

    @property
    def cli_old(self) -> str | None:
        if self.old_flag:
            return self.old_flag.split("/")[0]
        return "--" + self.old.replace("_", "-") if self.old else None

    @property
    def tristate(self) -> bool:
        """A boolean whose None means "the library's default" (both spellings on the command line)."""
        return self.type is bool and self.default is None

    def annotation(self) -> Any:
        """The pydantic annotation of the recipe field."""
        if self.file:
            return bool
        if self.many:
            base: Any = list[str]
            convert = comma_list if self.many == COMMA else one_or_many
            return Annotated[base, BeforeValidator(convert)]
        base = Literal[self.choices] if self.choices else self.type  # type: ignore[valid-type]
        extra: list[Any] = []
        ge, le = self.ge, self.le
        if self.type is int and not self.choices:  # beyond 64 bits, numpy, orjson and servers fail: a usage error
            ge = INT64_MIN if ge is None else ge
            le = INT64_MAX if le is None else le
        if ge is not None or le is not None:
            extra.append(Field(ge=ge, le=le))
        if self.recipe_value is not None:
            extra.append(BeforeValidator(self.recipe_value))
        return Annotated[(base, *extra)] if extra else base

    def shown_default(self) -> str | None:
        """The default as ``[default: ...]`` shows it (None: nothing to show)."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None or self.required or self.type is bool or self.file:
            return None
        if isinstance(self.default, (list, tuple)):
            return ", ".join(map(str, self.default)) if self.default else None  # wraps at 80 columns
        return str(self.default)


@dataclass(frozen=True)
class Step:
    """A step: its options, how it checks them and what it runs. One per command, defined once."""

    name: str
    """The command and recipe step type (``evol-instruct``)."""
    description: str
    """One line for ``itkit run --help``."""
    opts: tuple[Opt, ...]
    panel: str
    """The title of the help panel of the method's own options."""
    prepare: Callable[..., Any] | None = None
    """``prepare(options, ctx)``: the library's configuration, checked (rule names, operations, templates...)."""
    execute: Callable[..., Any] | None = None
    """``execute(prepared, options, files[, engine, settings])``: the library call, the same for the command
    and the run; returns the library's result."""
    run: Callable[..., Any] | None = None
    """``run(prepared, options, io)``: the step inside a run folder (``itkit run``), a StepOutcome."""
    engine_settings: Callable[[Any], Any] | None = None
    """LLM steps: the settings the engine opens with, when not the step's own (Evol-Instruct keeps sampling apart)."""
    uses_llm: bool = False
    prompts_method: str | None = None
    """The folder of the method's prompt files (hashed into the run fingerprint)."""
    plumbing: tuple[str, ...] = ()
    """Command-line parameters a recipe does not take: the run folder supplies them (input, output, reports)."""
    seed_default: str | None = None
    """LLM steps: what ``--seed`` defaults to for this method."""
    llm_exclude: tuple[str, ...] = ()
    """Engine options this command does not take (self-instruct has no record --limit)."""
    reads: Callable[[Any, Callable[[str], str]], list[str]] | None = None
    """``reads(options, resolve)``: files the step reads besides its input (decontaminate's benchmarks);
    their sha256 goes into the run fingerprint, so a changed file re-runs the step."""

    def opt(self, name: str) -> Opt:
        for o in self.opts:
            if o.name == name:
                return o
        raise KeyError(name)

    @cached_property
    def options(self) -> type[BaseModel]:
        """The recipe model of the step's options (strict, unknown keys forbidden)."""
        fields: dict[str, Any] = {}
        for o in self.opts:
            annotation = o.annotation()
            if o.required:
                fields[o.name] = (annotation, ...)
            elif o.file:
                fields[o.name] = (bool, False)
            elif o.default is None:
                fields[o.name] = (Optional[annotation], None)
            else:
                default = list(o.default) if isinstance(o.default, (list, tuple)) else o.default
                fields[o.name] = (annotation, default)
        model_name = "".join(part.capitalize() for part in self.name.split("-")) + "Options"
        return create_model(model_name, __base__=Options, **fields)

    def renamed(self) -> dict[str, str]:
        """Deprecated option names -> current ones."""
        return {o.old: o.name for o in self.opts if o.old}


@dataclass(frozen=True)
class Context:
    """What a step's ``prepare`` gets besides its options, and how its messages name options.

    On the command line an option is ``--num-perm`` and a setting ``--near``;
    in a recipe ``num_perm`` and ``near: true``.
    """

    settings: Any = None
    """The effective LLMSettings (LLM steps)."""
    prompts_dir: str | None = None
    resolve: Callable[[str], str] = str
    """Recipe paths are relative to the recipe's folder; command-line paths are as given."""
    cli: bool = False

    def name(self, option: str) -> str:
        return "--" + option.replace("_", "-") if self.cli else option

    def setting(self, option: str, value: Any = True) -> str:
        """How the user writes ``option`` = ``value`` (``--near``, ``--length-unit tokens``; ``near: true``)."""
        if self.cli:
            return self.name(option) if value is True else f"{self.name(option)} {value}"
        shown = "true" if value is True else value
        return f"{option}: {shown}"


__all__ = [
    "COMMA",
    "PANEL_CONTROL",
    "PANEL_IO",
    "PANEL_LLM",
    "PANEL_ORDER",
    "REPEAT",
    "Context",
    "Opt",
    "Options",
    "Step",
    "comma_list",
    "one_or_many",
]

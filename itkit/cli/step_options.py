"""A step's options on the command line, built from its one definition (:class:`itkit.steps.spec.Step`).

Decorate a command (under ``@handle_errors``) with :func:`step_command`; it adds
the step's options (and, for an LLM step, the engine options) to the
function's signature as ``Annotated[..., typer.Option(...)]`` parameters, and
calls the function with ``options=`` (the step's recipe model, checked by the
same pydantic model a recipe is) plus ``settings=`` and ``prompts_dir=`` for
an LLM step::

    @app.command("dedup", help=HELP)
    @handle_errors
    @step_command(DEDUP)
    def dedup_command(src: Source, output: Output = "-", ..., *, options) -> int:
        prepared = DEDUP.prepare(options, CLI)
"""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from typing import Annotated, Any, Callable, Optional

import typer
from pydantic import ValidationError

from itkit.cli.options import deprecated
from itkit.errors import UsageError
from itkit.steps.spec import COMMA, PANEL_ORDER, Context, Opt, Step

PREFIX = "step_"
"""The added parameters are named step_<option> so they never clash with a command's own."""
OLD_PREFIX = "old_"

CLI = Context(cli=True)
"""The context of a step without an LLM on the command line (messages name --options)."""


def _choice_enum(o: Opt) -> type[Enum]:
    return Enum(o.name.title().replace("_", ""), {c: c for c in o.choices}, type=str)  # type: ignore[return-value]


def _decls(o: Opt) -> list[str]:
    if o.flag:
        decls = [o.flag]
    elif o.type is bool and o.default is True:
        decls = [f"{o.cli}/--no-{o.cli[2:]}"]
    else:
        decls = [o.cli]
    return decls + ([o.short] if o.short else [])


METAVARS = {int: "N", float: "X", str: "TEXT"}
CHOICES_SHOWN = 14
"""Choices longer than this (joined with |) show as the option's name (STYLE), listed in the help text."""


def metavar(o: Opt) -> str:
    """``N``, ``X``, ``TEXT``, ``a|b``; nothing for a flag."""
    if o.type is bool:
        return ""
    if o.metavar:
        return o.metavar
    if o.choices:
        joined = "|".join(o.choices)
        return joined if len(joined) <= CHOICES_SHOWN else o.name.upper()
    return METAVARS.get(o.type, "VALUE")


def help_text(o: Opt) -> str:
    """The option's help line with its choices (when the metavar cannot hold them) and its default."""
    text = o.help
    if o.choices and "|" not in metavar(o) and not all(c in text for c in o.choices):
        text += f" One of: {', '.join(o.choices)}."
    shown = o.shown_default()
    if o.type is bool and not o.tristate and o.default is True:
        shown = o.cli[2:]
    if shown is not None and not o.required:
        text += f"  \\[default: {shown}]"
    return text


def _parameter(o: Opt, name: str, decls: list[str], hidden: bool = False) -> inspect.Parameter:
    """One option as a keyword-only parameter with an ``Annotated[..., typer.Option]`` annotation."""
    kind: Any
    default: Any
    if o.many:
        kind, default = Optional[list[str]], None
    elif o.choices:
        enum = _choice_enum(o)
        kind = Optional[enum] if o.default is None else enum
        default = None if o.default is None else enum(o.default)
    elif o.type is bool and not o.tristate:
        kind, default = bool, bool(o.default)
    else:
        kind, default = (Optional[o.type] if o.default is None else o.type), o.default
    info = typer.Option(
        *decls,
        help=help_text(o),
        rich_help_panel=o.panel,
        show_default=False,
        min=o.ge,
        max=o.le,
        hidden=hidden,
        metavar=metavar(o),
    )
    if o.required and not hidden:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, info])
    if hidden:
        default = None
        if not o.many and not o.choices:
            kind = Optional[o.type]
        elif o.choices:
            kind = Optional[_choice_enum(o)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])


def step_parameters(step: Step) -> list[inspect.Parameter]:
    """The command-line parameters of a step's options (file options are the command's own plumbing)."""
    params = []
    for o in step.opts:
        if o.file:
            continue
        params.append(_parameter(_panelled(o, step), PREFIX + o.name, _decls(o)))
        if o.old or o.old_flag:
            decls = [o.old_flag] if o.old_flag else [o.cli_old]
            params.append(_parameter(_panelled(o, step), OLD_PREFIX + o.name, decls, hidden=True))
    return params


def _panelled(o: Opt, step: Step) -> Opt:
    if o.panel is not None:
        return o
    from dataclasses import replace

    return replace(o, panel=step.panel)


def _value(o: Opt, value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if o.many and not value:  # Typer gives [] for a list option that was not given
        return None
    if o.many == COMMA:
        return [part.strip() for item in value for part in item.split(",") if part.strip()]
    if o.many:
        return list(value)
    return value


def _spellings_used(o: Opt, value: Any) -> tuple[str, str]:
    """(the deprecated spelling given, its current spelling): for a flag pair, the half that was used."""
    if o.old_flag and "/" in o.old_flag and o.flag and "/" in o.flag:
        half = 0 if value else 1
        return o.old_flag.split("/")[half], o.flag.split("/")[half]
    return o.cli_old or "", o.cli


def step_options(step: Step, kwargs: dict[str, Any]) -> Any:
    """Pop the step's option values from ``kwargs``: the step's options model (a usage error when invalid)."""
    values: dict[str, Any] = {}
    for o in step.opts:
        if o.file:
            continue
        value = _value(o, kwargs.pop(PREFIX + o.name, None))
        if o.old or o.old_flag:
            old = _value(o, kwargs.pop(OLD_PREFIX + o.name, None))
            if old is not None:
                deprecated(*_spellings_used(o, old))
                if value is not None and value != o.default and value != old:
                    raise UsageError(f"{o.cli_old} is the old spelling of {o.cli}; give only {o.cli}")
                value = old
        if value is not None:
            values[o.name] = value
    try:
        return step.options.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        where = step.opt(name).cli if name in {o.name for o in step.opts} else step.name
        raise UsageError(f"{where}: {err['msg']}") from None


def _panel_rank(param: inspect.Parameter) -> int:
    info = next((m for m in getattr(param.annotation, "__metadata__", ()) if hasattr(m, "rich_help_panel")), None)
    if info is None:
        info = param.default if hasattr(param.default, "rich_help_panel") else None
    if info is None or type(info).__name__ == "ArgumentInfo":
        return -1
    panel = info.rich_help_panel
    return PANEL_ORDER.index(panel) if panel in PANEL_ORDER else PANEL_ORDER.index(None)


def ordered(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Arguments first, then the options panel by panel (:data:`~itkit.steps.spec.PANEL_ORDER`), stable within.

    All become keyword-only: Typer passes every parameter by name, and the help lists them in this order."""
    ranked = sorted(params, key=_panel_rank)
    return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in ranked]


def _spellings(params: list[inspect.Parameter]) -> set[str]:
    """The command-line spellings the parameters declare."""
    out: set[str] = set()
    for param in params:
        for info in getattr(param.annotation, "__metadata__", ()):
            first = getattr(info, "default", None)  # in Annotated, Typer reads the first declaration as the default
            decls = [*(getattr(info, "param_decls", None) or ()), *([first] if isinstance(first, str) else [])]
            for decl in decls:
                out.update(part for part in decl.split("/") if part.startswith("-"))
    return out


def step_command(step: Step) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``step``'s options (and an LLM step's engine options) to a Typer command; see the module docstring."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        from itkit.cli.llm_options import llm_parameters, llm_settings
        from itkit.cli.options import Help

        signature = inspect.signature(fn, eval_str=True)
        injected = {"options", "settings", "prompts_dir"}
        own = [p for name, p in signature.parameters.items() if name not in injected]
        added = step_parameters(step)
        if step.uses_llm:
            llm = llm_parameters(exclude=step.llm_exclude, seed_default=step.seed_default)
            clash = _spellings(added) & _spellings(llm)
            if clash:
                raise TypeError(f"step {step.name}: option {', '.join(sorted(clash))} is already an LLM engine option")
            added += llm
        if "help_" not in signature.parameters:
            added.append(inspect.Parameter("help_", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Help))
        params = ordered([*own, *added])
        new_signature = signature.replace(parameters=params)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if "help_" not in signature.parameters:
                kwargs.pop("help_", None)
            options = step_options(step, kwargs)
            if step.uses_llm:
                settings, prompts_dir = llm_settings(kwargs, exclude=step.llm_exclude)
                return fn(*args, options=options, settings=settings, prompts_dir=prompts_dir, **kwargs)
            return fn(*args, options=options, **kwargs)

        wrapper.__signature__ = new_signature  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **{p.name: p.annotation for p in new_signature.parameters.values()},
            "return": signature.return_annotation,
        }
        return wrapper

    return decorate


__all__ = ["CLI", "deprecated", "ordered", "step_command", "step_options", "step_parameters"]

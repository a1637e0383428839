"""Every step, defined once (:mod:`.spec`): its options, checks, library call and run-folder wiring.

- :data:`STEPS`: the step types a recipe's ``steps:`` may use, by command name, in ``itkit run --help`` order;
- :data:`EXPORT`: the export (a recipe's ``export:`` block and ``itkit export``);
- :data:`COMMANDS`: all of them, by command name.

The registry is built on first use, so that importing one step (or :mod:`.spec`) does not import every
step's part of the library (the CLI's start-up time).

Adding a step: a module here with its ``STEP`` (see README, "Development: how to add a step"), one entry
in :data:`STEP_MODULES`, a thin command in :mod:`itkit.cli`.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from itkit.steps.spec import Context, Opt, Step

STEP_MODULES = ("filter", "simplify", "evol_instruct", "orca", "self_instruct", "dedup", "decontaminate")
"""The modules of the step types a recipe may use, in ``itkit run --help`` order."""
EXPORT_MODULE = "export"


@lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    steps = {}
    for module in STEP_MODULES:
        step = importlib.import_module(f"itkit.steps.{module}").STEP
        steps[step.name] = step
    export = importlib.import_module(f"itkit.steps.{EXPORT_MODULE}").STEP
    return {"STEPS": steps, "EXPORT": export, "COMMANDS": {**steps, export.name: export}}


def __getattr__(name: str) -> Any:
    if name in ("STEPS", "EXPORT", "COMMANDS"):
        return _registry()[name]
    if name in ("Context", "Opt", "Step"):
        from itkit.steps import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'itkit.steps' has no attribute {name!r}")


if TYPE_CHECKING:
    STEPS: dict[str, Step]
    EXPORT: Step
    COMMANDS: dict[str, Step]

__all__ = ["COMMANDS", "EXPORT", "STEPS", "Context", "Opt", "Step"]

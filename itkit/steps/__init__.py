"""Every step, defined once (:mod:`.spec`): its options, checks, library call and run-folder wiring.

- :data:`STEPS`: the step types a recipe's ``steps:`` may use, by command name, in ``itkit run --help`` order;
- :data:`EXPORT`: the export (a recipe's ``export:`` block and ``itkit export``);
- :data:`COMMANDS`: all of them, by command name.

Adding a step: a module here with its ``STEP`` (see README, "Development: how to add a step"), one entry
below, a thin command in :mod:`itkit.cli`.
"""

from __future__ import annotations

from itkit.steps import decontaminate, dedup, evol_instruct, export, orca, score, self_instruct, simplify
from itkit.steps import filter as filter_
from itkit.steps.spec import Context, Opt, Step

STEPS: dict[str, Step] = {
    step.name: step
    for step in (filter_.STEP, simplify.STEP, evol_instruct.STEP, orca.STEP, self_instruct.STEP, dedup.STEP, decontaminate.STEP, score.STEP)
}
"""Every step type a recipe may use, by the name of its command."""
EXPORT: Step = export.STEP
COMMANDS: dict[str, Step] = {**STEPS, EXPORT.name: EXPORT}

__all__ = ["COMMANDS", "EXPORT", "STEPS", "Context", "Opt", "Step"]

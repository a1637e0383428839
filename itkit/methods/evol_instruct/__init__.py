"""Evol-Instruct (Xu et al. 2023, "WizardLM"): evolve instructions in depth and in breadth, eliminate failed evolutions.

Modules:

- ``operations``: the six operations, their templates (``prompts/evol_instruct/``) and the seeded choice;
- ``parsing``: reading the rewrite and the "Equal" / "Not Equal" verdict from messy answers;
- ``elimination``: the paper's four elimination rules as pure functions with tunable constants;
- ``evolve``: the async round driver (lineages, provenance, counts);
- ``run``: the ``itkit evol-instruct`` command as a library call (read, check, evolve, write, report).
"""

from itkit.methods.evol_instruct.elimination import RULES, EliminationRules
from itkit.methods.evol_instruct.evolve import DEFAULT_ROUNDS, EvolConfig, EvolResult, Evolver, Lineage, run_evolution
from itkit.methods.evol_instruct.operations import OPERATION_NAMES, OPERATIONS, EvolPrompts, choose_operation, parse_ops
from itkit.methods.evol_instruct.run import COMMAND, run_evol_instruct

__all__ = [
    "COMMAND",
    "DEFAULT_ROUNDS",
    "OPERATIONS",
    "OPERATION_NAMES",
    "RULES",
    "EliminationRules",
    "EvolConfig",
    "EvolPrompts",
    "EvolResult",
    "Evolver",
    "Lineage",
    "choose_operation",
    "parse_ops",
    "run_evol_instruct",
    "run_evolution",
]

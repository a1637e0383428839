"""The six Evol-Instruct operations, their prompt templates and the seeded choice among them.

Five in-depth operations make an instruction harder (add constraints,
deepening, concretizing, increase reasoning steps, complicate input) and one
in-breadth operation writes a brand-new, rarer instruction in the same domain
(Xu et al. 2023, "WizardLM"). Each round, every instruction in the pool gets
one operation chosen uniformly at random among the allowed ones; the choice is
a pure function of ``(seed, record id, round)``, so it does not depend on the
order in which requests complete, on ``--limit`` or on other records.

Every operation is one template, ``prompts/evol_instruct/<name>.yaml``, with
the variable ``prompt`` (the instruction, with its input joined). Its
``data`` declares ``evolution`` (in-depth / in-breadth), ``answer_headers``
(the header the model's answer follows, stripped when the model repeats it)
and ``markers`` (phrases the rewrite must not copy: elimination rule 4).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from itkit.errors import UsageError
from itkit.llm.base import Sampling
from itkit.llm.engine import sampling_from
from itkit.templates import PromptError, PromptTemplate, load_template

METHOD = "evol-instruct"
PROMPTS_METHOD = "evol_instruct"
"""The folder under ``prompts/`` that holds this method's templates."""

IN_DEPTH = "in-depth"
IN_BREADTH = "in-breadth"


@dataclass(frozen=True)
class Operation:
    name: str
    evolution: str
    summary: str

    @property
    def template(self) -> str:
        return self.name


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("add_constraints", IN_DEPTH, "add one more constraint or requirement"),
        Operation("deepening", IN_DEPTH, "increase the depth and breadth of the inquiry"),
        Operation("concretizing", IN_DEPTH, "replace general concepts with more specific ones"),
        Operation("increase_reasoning", IN_DEPTH, "explicitly ask for multi-step reasoning"),
        Operation("complicate_input", IN_DEPTH, "add structured input: code, a table, JSON, XML or SQL"),
        Operation("in_breadth", IN_BREADTH, "a brand-new, rarer instruction in the same domain"),
    )
}
OPERATION_NAMES: tuple[str, ...] = tuple(OPERATIONS)

OPERATION_GROUPS: dict[str, tuple[str, ...]] = {
    "all": OPERATION_NAMES,
    IN_DEPTH: tuple(n for n, op in OPERATIONS.items() if op.evolution == IN_DEPTH),
    IN_BREADTH: ("in_breadth",),
}

EQUALITY_TEMPLATE = "equality"
RESPONSE_TEMPLATE = "response"


def parse_ops(spec: str | None) -> tuple[str, ...]:
    """The operations named in ``--ops`` (comma-separated names or groups), in canonical order.

    ``None`` or ``""`` means all six. Hyphens and underscores are interchangeable.
    """
    if spec is None or not spec.strip():
        return OPERATION_NAMES
    chosen: set[str] = set()
    for part in spec.split(","):
        name = part.strip().lower().replace("-", "_")
        if not name:
            continue
        group = OPERATION_GROUPS.get(name.replace("_", "-")) or OPERATION_GROUPS.get(name)
        if group is not None:
            chosen.update(group)
        elif name in OPERATIONS:
            chosen.add(name)
        else:
            valid = ", ".join((*OPERATION_NAMES, *OPERATION_GROUPS))
            raise UsageError(f"--ops: unknown operation '{part.strip()}'; choose from {valid}")
    if not chosen:
        raise UsageError("--ops: name at least one operation")
    return tuple(n for n in OPERATION_NAMES if n in chosen)


def choose_operation(ops: tuple[str, ...], seed: int, record_id: str, round: int) -> str:
    """One of ``ops``, uniformly, determined by ``(seed, record_id, round)`` alone."""
    if not ops:
        raise ValueError("no operations to choose from")
    rng = random.Random(f"{METHOD}:{seed}:{record_id}:{round}")
    return ops[rng.randrange(len(ops))]


def sampling_of(template: PromptTemplate) -> Sampling | None:
    """The template's ``sampling`` block as a :class:`Sampling` override (None when empty)."""
    if not template.sampling.given():
        return None
    return sampling_from(template.sampling, f"{template.path}: sampling")


def _string_list(template: PromptTemplate, key: str) -> tuple[str, ...]:
    value = template.data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise PromptError(f"{template.path}: data.{key} must be a non-empty list of strings")
    return tuple(value)


@dataclass(frozen=True)
class EvolPrompts:
    """Every template of a run, loaded and validated before any request."""

    operations: dict[str, PromptTemplate]
    equality: PromptTemplate
    response: PromptTemplate

    @classmethod
    def load(cls, ops: tuple[str, ...] = OPERATION_NAMES, prompts_dir: str | Path | None = None) -> "EvolPrompts":
        templates = {name: load_template(PROMPTS_METHOD, OPERATIONS[name].template, prompts_dir) for name in ops}
        for name, template in templates.items():
            if template.variables != ["prompt"]:
                raise PromptError(f"{template.path}: an operation template takes one variable, 'prompt'")
            _string_list(template, "answer_headers")
            _string_list(template, "markers")
            sampling_of(template)
        equality = load_template(PROMPTS_METHOD, EQUALITY_TEMPLATE, prompts_dir)
        if set(equality.variables) != {"first", "second"}:
            raise PromptError(f"{equality.path}: the equality template takes the variables 'first' and 'second'")
        sampling_of(equality)
        response = load_template(PROMPTS_METHOD, RESPONSE_TEMPLATE, prompts_dir)
        if response.variables != ["instruction"]:
            raise PromptError(f"{response.path}: the response template takes one variable, 'instruction'")
        sampling_of(response)
        return cls(templates, equality, response)

    def answer_headers(self, op: str) -> tuple[str, ...]:
        return _string_list(self.operations[op], "answer_headers")

    def markers(self, op: str) -> tuple[str, ...]:
        return _string_list(self.operations[op], "markers")

    def evolution_messages(self, op: str, prompt: str) -> list[dict[str, str]]:
        return self.operations[op].render(prompt=prompt)

    def equality_messages(self, first: str, second: str) -> list[dict[str, str]]:
        return self.equality.render(first=first, second=second)

    def response_messages(self, instruction: str, system: str | None = None) -> list[dict[str, str]]:
        """The response request: the record's system prompt (replacing the template's, if any), then the template."""
        messages = self.response.render(instruction=instruction)
        if system:
            if messages[0]["role"] == "system":
                messages = messages[1:]
            messages = [{"role": "system", "content": system}, *messages]
        return messages

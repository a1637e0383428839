"""Instances of a generated task: parsing the model's examples, then cleaning them.

Classification tasks are generated output-first: each example starts with
``Class label: <label>`` and the lines after it are an input of that class.
Other tasks are generated input-first: ``Example N`` blocks holding an input and
an ``Output:`` (or a lone ``Output:`` when the task needs no input).

Cleaning, in the method's order (:func:`clean_instances`):

1. drop the last instance when the response was cut by the length limit;
2. drop an instance whose input equals its output, whose output is empty, or
   whose input or output ends with ":" (usually an unfinished generation);
3. drop the whole task when two instances share a (non-empty) input but have
   different outputs;
4. drop exact duplicate instances (the first copy stays);
5. keep at most ``max_instances``: a random sample, as the original's
   ``random.sample`` (seeded per task by the caller, so runs are reproducible).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from itkit.llm.base import ResponseRejected

MAX_INSTANCES = 5
"""At most this many instances are kept per task."""

# instance-level drop reasons (summary keys)
TRUNCATED_LAST = "truncated_last"
INPUT_EQUALS_OUTPUT = "input_equals_output"
EMPTY_OUTPUT = "empty_output"
ENDS_WITH_COLON = "ends_with_colon"
DUPLICATE = "duplicate"
OVER_LIMIT = "over_limit"
# task-level drop reasons
CONFLICTING_OUTPUTS = "conflicting_outputs"
NO_VALID_INSTANCES = "no_valid_instances"


@dataclass(frozen=True)
class Instance:
    input: str
    output: str


_CLASS_LABEL = re.compile(r"(?:[*_]{1,2})?class[ \t]*label[ \t]*\d*[ \t]*:(?:[*_]{1,2})?", re.IGNORECASE)
_EXAMPLE = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?(?:[*_]{1,2})?Example[ \t]*(?:\d+[ \t]*[.:)]?|[.:]?[ \t]*$)(?:[*_]{1,2})?",
    re.MULTILINE,
)
_OUTPUT = re.compile(r"Output[ \t]*\d*[ \t]*:")
_INPUT = re.compile(r"Input[ \t]*\d*[ \t]*:")
_LEADING_INPUT = re.compile(r"^Input[ \t]*\d*[ \t]*:")


def parse_classification_instances(text: str) -> list[Instance]:
    """Output-first examples: the label on the ``Class label:`` line, the input on the lines below."""
    parts = _CLASS_LABEL.split(text.replace("\r\n", "\n"))
    if len(parts) < 2:
        raise ResponseRejected("no 'Class label:' example found in the response", text)
    instances = []
    for chunk in parts[1:]:
        label, _, rest = chunk.strip().partition("\n")
        instances.append(Instance(input=rest.strip(), output=label.strip()))
    return instances


def split_input_output(block: str) -> Instance:
    """One input-first example: the text before ``Output:`` is the input, the text after it the output."""
    pieces = _OUTPUT.split(block)
    if len(pieces) >= 2:
        inp, out = pieces[0].strip(), pieces[1].strip()
    else:
        inp, out = "", block.strip()
    # a run-on example holding a second input/output pair: keep the first
    out = _INPUT.split(out)[0].strip()
    inp = _LEADING_INPUT.sub("", inp).strip()
    return Instance(input=inp, output=out)


def parse_generation_instances(text: str) -> list[Instance]:
    """Input-first examples: ``Example N`` blocks, or one ``Output:`` when the task needs no input."""
    text = text.replace("\r\n", "\n").strip()
    if _EXAMPLE.search(text):
        blocks = [b.strip() for b in _EXAMPLE.split(text) if b.strip()]
        if blocks:
            return [split_input_output(b) for b in blocks]
    if _OUTPUT.search(text):
        return [split_input_output(text)]
    raise ResponseRejected("no 'Example' or 'Output:' found in the response", text)


@dataclass
class CleanResult:
    instances: list[Instance] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    """Instances removed, per reason."""
    task_dropped: str | None = None
    """Why the whole task was dropped (conflicting outputs, nothing valid left), or None."""


def invalid_reason(instance: Instance) -> str | None:
    if instance.input == instance.output:
        return INPUT_EQUALS_OUTPUT
    if instance.output == "":
        return EMPTY_OUTPUT
    if instance.input.strip().endswith(":") or instance.output.strip().endswith(":"):
        return ENDS_WITH_COLON
    return None


def clean_instances(
    instances: list[Instance],
    truncated: bool = False,
    max_instances: int = MAX_INSTANCES,
    rng: random.Random | None = None,
) -> CleanResult:
    """Apply the cleaning rules (module docstring) in order (without ``rng``, the first ``max_instances`` stay)."""
    result = CleanResult()
    items = list(instances)
    if truncated and items:
        items.pop()
        result.dropped[TRUNCATED_LAST] += 1
    valid = []
    for inst in items:
        reason = invalid_reason(inst)
        if reason:
            result.dropped[reason] += 1
        else:
            valid.append(inst)
    outputs_by_input: dict[str, str] = {}
    for inst in valid:
        if inst.input == "":
            continue
        seen = outputs_by_input.setdefault(inst.input, inst.output)
        if seen != inst.output:
            result.task_dropped = CONFLICTING_OUTPUTS
            result.dropped[CONFLICTING_OUTPUTS] += len(valid)
            return result
    unique = list(dict.fromkeys(valid))
    result.dropped[DUPLICATE] += len(valid) - len(unique)
    if len(unique) > max_instances:
        result.dropped[OVER_LIMIT] += len(unique) - max_instances
        unique = rng.sample(unique, max_instances) if rng is not None else unique[:max_instances]
    result.instances = unique
    if not unique:
        result.task_dropped = NO_VALID_INSTANCES
    result.dropped = +result.dropped
    return result

"""The Self-Instruct prompts, rendered from the templates in ``prompts/self_instruct/``.

Templates (each overridable with ``--prompts-dir DIR/self_instruct/<name>.yaml``):

- ``instructions``: Self-Instruct generation, a numbered list of demo tasks ending at
  the next number for the model to continue;
- ``alpaca``: Alpaca generation, demo tasks as ``###``-separated Instruction/Input/Output
  blocks, then the next block's ``N. Instruction:``;
- ``is_classification``: the few-shot Yes/No question;
- ``instances_classification`` (output-first) and ``instances_generation`` (input-first).

A template's ``sampling`` gives its decoding defaults; the stop sequences that depend on
the numbering are computed here (a template that declares ``stop`` overrides them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from itkit.llm.base import Message, Sampling
from itkit.llm.engine import sampling_from
from itkit.methods.self_instruct.parse import MAX_NEW_PER_PROMPT, demo_instruction
from itkit.templates import PromptTemplate, load_template

METHOD = "self_instruct"
"""The folder of the templates under ``prompts/``."""

INSTRUCTIONS = "instructions"
ALPACA = "alpaca"
IS_CLASSIFICATION = "is_classification"
INSTANCES_CLASSIFICATION = "instances_classification"
INSTANCES_GENERATION = "instances_generation"

NO_INPUT_MARKER = "<noinput>"
"""How an Alpaca-style demo without input shows its input."""
ALPACA_SEPARATOR = "###"
BLANK_LINE_STOP = "\n\n"
INSTANCE_STOP_TASK = "Task:"
CLASSIFICATION_STOPS = ("\n", "Task")
"""As the original: the answer ends at a newline or at the next "Task"."""

def sampling_of(template: PromptTemplate) -> Sampling:
    """A template's ``sampling`` block as :class:`Sampling` (unknown keys are an error)."""
    return sampling_from(template.sampling, f"{template.path}: sampling")


def numbered_list(instructions: Sequence[str]) -> str:
    """``1. first\\n2. second...``: each instruction on one line without a trailing colon."""
    return "\n".join(f"{i}. {demo_instruction(text)}" for i, text in enumerate(instructions, 1))


def instruction_stop(first_number: int, max_new: int = MAX_NEW_PER_PROMPT) -> tuple[str, ...]:
    """Stop at a blank line or at the number after ``max_new`` new items (8 demos: "16")."""
    last = first_number + max_new
    return (BLANK_LINE_STOP, f"\n{last}", f"{last}.", f"{last} .")


@dataclass(frozen=True)
class AlpacaDemo:
    instruction: str
    input: str
    output: str


def alpaca_examples(demos: Sequence[AlpacaDemo]) -> str:
    """The demo blocks, each opened by ``###``, numbered from 1, with "<noinput>" for an empty input."""
    lines: list[str] = []
    for i, demo in enumerate(demos, 1):
        lines.append(ALPACA_SEPARATOR)
        lines.append(f"{i}. Instruction: {demo_instruction(demo.instruction)}")
        lines.append(f"{i}. Input:")
        lines.append(demo.input if demo.input.strip() else NO_INPUT_MARKER)
        lines.append(f"{i}. Output:")
        lines.append(demo.output)
    lines.append(ALPACA_SEPARATOR)
    return "\n".join(lines)


def alpaca_stop(num_tasks: int) -> tuple[str, ...]:
    """Stop before the block numbered ``num_tasks`` (as Alpaca: "\\n20", "20.")."""
    return (f"\n{num_tasks}", f"{num_tasks}.")


def instance_stop(max_instances: int) -> tuple[str, ...]:
    return (f"Example {max_instances + 1}", INSTANCE_STOP_TASK)


@dataclass(frozen=True)
class Prompt:
    """One rendered prompt: messages, decoding defaults and the template's identity."""

    messages: list[Message]
    sampling: Sampling
    template: PromptTemplate

    @property
    def ref(self) -> str:
        return self.template.ref


class SelfInstructPrompts:
    """The templates of one run, loaded and validated before any request."""

    def __init__(self, style: str, prompts_dir: str | Path | None = None, instances: bool = True):
        self.style = style
        if style == "alpaca":
            self.generate = load_template(METHOD, ALPACA, prompts_dir)
        else:
            self.generate = load_template(METHOD, INSTRUCTIONS, prompts_dir)
        self.classify: PromptTemplate | None = None
        self.clf_instances: PromptTemplate | None = None
        self.gen_instances: PromptTemplate | None = None
        if style != "alpaca" and instances:
            self.classify = load_template(METHOD, IS_CLASSIFICATION, prompts_dir)
            self.clf_instances = load_template(METHOD, INSTANCES_CLASSIFICATION, prompts_dir)
            self.gen_instances = load_template(METHOD, INSTANCES_GENERATION, prompts_dir)
        self._sampling = {t.name: sampling_of(t) for t in self.templates()}

    def templates(self) -> list[PromptTemplate]:
        return [t for t in (self.generate, self.classify, self.clf_instances, self.gen_instances) if t is not None]

    def _sampling_for(self, template: PromptTemplate, stop: tuple[str, ...]) -> Sampling:
        return Sampling(stop=stop).merged(self._sampling[template.name])

    # ---- rendering ------------------------------------------------------------
    def instructions(self, demos: Sequence[str], max_new: int = MAX_NEW_PER_PROMPT) -> Prompt:
        next_number = len(demos) + 1
        messages = self.generate.render(task_list=numbered_list(demos), next_number=next_number)
        return Prompt(messages, self._sampling_for(self.generate, instruction_stop(next_number, max_new)), self.generate)

    def alpaca(self, demos: Sequence[AlpacaDemo], num_tasks: int) -> Prompt:
        next_number = len(demos) + 1
        messages = self.generate.render(
            num_tasks=num_tasks, examples=alpaca_examples(demos), next_number=next_number
        )
        return Prompt(messages, self._sampling_for(self.generate, alpaca_stop(num_tasks)), self.generate)

    def is_classification(self, instruction: str) -> Prompt:
        assert self.classify is not None
        messages = self.classify.render(instruction=instruction.strip())
        return Prompt(messages, self._sampling_for(self.classify, CLASSIFICATION_STOPS), self.classify)

    def instances(self, instruction: str, classification: bool, max_instances: int) -> Prompt:
        template = self.clf_instances if classification else self.gen_instances
        assert template is not None
        messages = template.render(instruction=instruction.strip())
        return Prompt(messages, self._sampling_for(template, instance_stop(max_instances)), template)

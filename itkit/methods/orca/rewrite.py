"""Orca-style explanation tuning: regenerate each response under an Orca system message.

For each record, :class:`OrcaRewriter`:

1. assigns a system message (:class:`~itkit.methods.orca.assign.Assigner`);
2. renders the request from ``prompts/orca/respond.yaml``: the system message
   (left out when empty, as #1 is) and the record's prompt (instruction +
   input) as the user query, verbatim. A multi-turn record keeps its earlier
   exchanges as context, inserted before the final user message: only the
   final response is regenerated;
3. sends it through the engine and builds the output record: the new final
   response, ``system`` set to the message (None for the empty #1),
   ``metadata["orca_system_message"]``, ``metadata["task_type"]`` and a
   provenance step ``{method: "orca", operation: "system message #k", model,
   template, template_hash, parent_id, ...}``.

A record whose prompt is empty cannot be asked: it is not sent and is counted
as a failure with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itkit.llm.base import ChatResponse, Message, ResponseRejected
from itkit.llm.engine import Engine, sampling_from
from itkit.methods.orca.assign import BY_TYPE, DEFAULT_SEED, Assigner, Assignment, parse_message_set
from itkit.methods.orca.system_messages import SystemMessages, load_system_messages
from itkit.methods.orca.task_types import TaskTable, load_task_table
from itkit.records import Record
from itkit.templates import PromptError, PromptTemplate, load_template

METHOD = "orca"
TEMPLATE_NAME = "respond"
SYSTEM_VARIABLE = "system_message"
QUESTION_VARIABLE = "question"

META_SYSTEM_MESSAGE = "orca_system_message"
META_TASK_TYPE = "task_type"
META_ORIGINAL_SYSTEM = "orca_original_system"
"""The record's own system prompt, kept when the Orca message replaces a different one."""

EMPTY_PROMPT = "the record's prompt is empty: there is nothing to ask the model"
TOOL_RECORD = (
    "the record uses tools: Orca regenerates the answer from the question alone, which would drop its tool calls "
    "and results"
)
_WORD_CHAR = re.compile(r"\w")


def check_answer(response: ChatResponse) -> str:
    """The response text, stripped; a reply without a single letter or digit is rejected (and retried)."""
    text = response.text.strip()
    if not _WORD_CHAR.search(text):
        raise ResponseRejected("the response has no letters or digits", response.text)
    return text


@dataclass(frozen=True)
class OrcaItem:
    """One record with its assignment and the request to send (or why none can be sent)."""

    record: Record
    assignment: Assignment
    messages: tuple[Message, ...]
    skip_reason: str | None = None


class OrcaRewriter:
    """Assigns system messages, renders requests, and turns responses into records."""

    def __init__(
        self,
        system_messages: SystemMessages,
        table: TaskTable,
        template: PromptTemplate,
        assigner: Assigner,
        model: str,
    ):
        check_template(template)
        self.sampling = sampling_from(template.sampling, f"{template.path}: sampling")
        self.system_messages = system_messages
        self.table = table
        self.template = template
        self.assigner = assigner
        self.model = model

    @classmethod
    def load(
        cls,
        model: str,
        *,
        prompts_dir: str | Path | None = None,
        assign: str = BY_TYPE,
        system_messages: str | tuple[int, ...] | None = None,
        seed: int | None = None,
    ) -> "OrcaRewriter":
        """Load and validate the prompt files; ``system_messages`` is ``"2,5,7"`` or a tuple of numbers."""
        messages = load_system_messages(prompts_dir)
        table = load_task_table(messages.numbers, prompts_dir)
        template = load_template(METHOD, TEMPLATE_NAME, prompts_dir)
        allowed = parse_message_set(system_messages, messages.numbers) if isinstance(system_messages, str) else system_messages
        assigner = Assigner(table, messages.numbers, assign, allowed, DEFAULT_SEED if seed is None else seed)
        return cls(messages, table, template, assigner, model)

    # ---- planning (pure) ------------------------------------------------------
    def plan(self, record: Record) -> OrcaItem:
        assignment = self.assigner.assign(record)
        if not record.prompt.strip():
            return OrcaItem(record, assignment, (), EMPTY_PROMPT)
        if record.uses_tools:
            return OrcaItem(record, assignment, (), TOOL_RECORD)
        return OrcaItem(record, assignment, tuple(self.request_messages(record, assignment.number)))

    def request_messages(self, record: Record, number: int) -> list[Message]:
        """The chat request: the template's messages with the record's earlier turns before the last one."""
        rendered = self.template.render(
            **{SYSTEM_VARIABLE: self.system_messages.text(number), QUESTION_VARIABLE: record.prompt}
        )
        rendered = [m for m in rendered if not (m["role"] == "system" and not m["content"].strip())]
        last_user = record.last_user_index or 0
        history = record.to_messages(include_system=False)[:last_user]
        return [*rendered[:-1], *history, rendered[-1]]

    def system_for(self, number: int) -> str | None:
        """The record's system prompt for message ``number`` (None for an empty message)."""
        text = self.system_messages.text(number)
        return text if text.strip() else None

    def provenance_step(self, item: OrcaItem) -> dict[str, Any]:
        a = item.assignment
        return {
            "method": METHOD,
            "operation": f"system message #{a.number}",
            "parent_id": item.record.id,
            "model": self.model,
            "template": self.template.ref,
            "template_hash": self.template.hash,
            "system_messages": self.system_messages.ref,
            "task_types": self.table.ref,
            "task_type": a.task_type,
            "assigned_by": f"{self.assigner.mode} ({a.found_by})" if self.assigner.mode == BY_TYPE else self.assigner.mode,
        }

    def rewritten(self, item: OrcaItem, response: str) -> Record:
        """The output record for ``item`` with the model's ``response`` as its final answer."""
        record = item.record
        a = item.assignment
        system = self.system_for(a.number)
        out = record.with_output(response)
        metadata = dict(out.metadata)
        original = record.system
        if original and original.strip() and original != system:
            metadata[META_ORIGINAL_SYSTEM] = original
        metadata[META_SYSTEM_MESSAGE] = a.number
        metadata[META_TASK_TYPE] = a.task_type
        return out.with_provenance(self.provenance_step(item), system=system, metadata=metadata)

    # ---- the request (async) -----------------------------------------------------
    async def rewrite(self, engine: Engine, item: OrcaItem, expected_tokens: int | None = None) -> Record:
        """Ask the engine for ``item``'s answer and build its record; RecordFailure goes up to the caller.

        ``expected_tokens`` only feeds the dry-run estimate.
        """
        answer = await engine.complete(
            list(item.messages),
            template=self.template.ref,
            sampling=self.sampling,
            parse=check_answer,
            expected_tokens=expected_tokens,
        )
        return self.rewritten(item, answer)


def check_template(template: PromptTemplate) -> None:
    """The request template must take the system message and the question, and end with the user."""
    missing = {SYSTEM_VARIABLE, QUESTION_VARIABLE} - set(template.variables)
    if missing:
        raise PromptError(
            f"{template.path}: the orca request template must declare the variables "
            f"{SYSTEM_VARIABLE} and {QUESTION_VARIABLE} (missing: {', '.join(sorted(missing))})"
        )
    if set(template.variables) - {SYSTEM_VARIABLE, QUESTION_VARIABLE}:
        extra = sorted(set(template.variables) - {SYSTEM_VARIABLE, QUESTION_VARIABLE})
        raise PromptError(f"{template.path}: the orca request template has variables itkit cannot fill: {', '.join(extra)}")
    if template.messages[-1].role != "user":
        raise PromptError(f"{template.path}: the orca request template must end with a user message")


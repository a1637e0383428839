"""Response simplification: rewrite each record's final answer into a simpler, shorter one.

Ghosh et al. (2024, "A Closer Look at the Limitations of Instruction Tuning")
found that full fine-tuning on long, knowledge-heavy responses teaches a model
to borrow tokens from similar examples and hallucinate, and that training on
simplified responses, short and conservative, reduces it. ``simplify`` asks an
LLM to rewrite the final assistant turn of every record keeping only what the
original states (the prompt is ``prompts/simplify/simplify.yaml``).

What happens to each record:

- **simplified**: the rewrite replaces the final response; a provenance step
  ``{method, model, template, template_hash, parent_id}`` is added, and with
  ``keep_original`` the original response is kept in ``metadata["original_output"]``.
- **longer**: the length guard. A rewrite longer than the original (in
  characters) is asked for again (``length_retries`` times, as a different
  sample of the same prompt); if it is still longer it is kept with
  ``metadata["simplify_longer"] = True``, or, with ``reject_longer``, the
  record fails.
- **no response**: a record whose conversation ends with the user, or whose
  final response is empty, has nothing to simplify. It is written unchanged
  (no provenance step) and counted, so a dataset keeps its size and order.
- **failed**: the engine gave up (errors, empty or cut-off responses after the
  retry limit) or the longer rewrite was rejected: the record is not written; it
  goes to the failures file with the reason and the raw response.

Every record read is in exactly one of these counts. (A Self-Instruct seed
task's response is its first instance's output; further instances are kept as
they are.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from itkit.dataset import RecordWriter
from itkit.formats import get_format
from itkit.llm.base import ChatResponse, RecordFailure, ResponseRejected
from itkit.llm.engine import Engine, sampling_from
from itkit.llm.job import JobResult, fails_before_sending, file_report, read_input
from itkit.llm.report import RunReport
from itkit.records import Record
from itkit.templates import PromptTemplate, load_template

METHOD = "simplify"
COMMAND = "simplify"
TEMPLATE_NAME = "simplify"
META_ORIGINAL_OUTPUT = "original_output"
META_LONGER = "simplify_longer"
LENGTH_RETRIES = 1
"""How many more samples the length guard asks for when a rewrite is longer than the original."""
LONGER_REASON = "the simplified response is longer than the original"

STATUS_SIMPLIFIED = "simplified"
STATUS_LONGER = "longer_kept"
STATUS_NO_RESPONSE = "no_response"

_LABEL = re.compile(r"^\s*(?:\*\*)?(?:simplified|rewritten|shorter)\s+(?:answer|response|version)(?:\*\*)?\s*:\s*", re.I)
_DELIMITED = re.compile(r"^\s*<<<\s*\n?(.*?)\n?\s*>>>\s*$", re.S)


def prompt_variables(record: Record) -> dict[str, str]:
    """The template's variables for a record: earlier turns, the request, the final answer.

    With tool use the earlier turns include the calls and their results (the
    final answer rests on them), written as text for the rewriting model.
    """
    if record.uses_tools:
        return _tool_variables(record)
    history = record.history
    conversation = ""
    if history:
        lines = []
        for prompt, answer in history:
            lines.append(f"User: {prompt}")
            lines.append(f"Assistant: {answer}")
        conversation = "Earlier in the conversation:\n<<<\n" + "\n".join(lines) + "\n>>>\n\n"
    return {"conversation": conversation, "instruction": record.prompt, "response": record.output}


def _tool_variables(record: Record) -> dict[str, str]:
    last = record.last_user_index or 0
    lines = []
    for i, turn in enumerate(record.turns[:-1]):
        if i == last:
            continue  # the request itself
        if turn.role == "user":
            lines.append(f"User: {turn.content}")
        elif turn.role == "tool":
            lines.append(f"Tool result: {turn.content}")
        else:
            if turn.content:
                lines.append(f"Assistant: {turn.content}")
            for call in turn.tool_calls or ():
                lines.append(f"Assistant calls {call['function']['name']}({call['function']['arguments']})")
    conversation = "Earlier in the conversation:\n<<<\n" + "\n".join(lines) + "\n>>>\n\n" if lines else ""
    return {"conversation": conversation, "instruction": record.prompt, "response": record.output}


def clean_response(text: str) -> str:
    """The rewritten answer without a label or the prompt's delimiters echoed around it."""
    out = text.strip()
    delimited = _DELIMITED.match(out)
    if delimited:
        out = delimited.group(1).strip()
    return _LABEL.sub("", out, count=1).strip()


def parse_simplified(response: ChatResponse) -> str:
    text = clean_response(response.text)
    if not text:
        raise ResponseRejected("the simplified response is empty once its label is removed", response.text)
    return text


def needs_simplifying(record: Record) -> bool:
    """A final answer in text to rewrite; a final turn that calls tools is left untouched."""
    return record.has_output and not record.turns[-1].tool_calls and bool(record.output.strip())


@dataclass
class Simplified:
    """The result for one record."""

    record: Record
    status: str


class Simplifier:
    """The per-record worker: render, ask, check the length, build the new record."""

    def __init__(
        self,
        engine: Engine,
        template: PromptTemplate,
        *,
        keep_original: bool = False,
        reject_longer: bool = False,
        length_retries: int = LENGTH_RETRIES,
    ):
        self.engine = engine
        self.template = template
        self.sampling = sampling_from(template.sampling, f"{template.path}: sampling")
        self.keep_original = keep_original
        self.reject_longer = reject_longer
        self.length_retries = length_retries

    def messages(self, record: Record) -> list[dict[str, str]]:
        return self.template.render(**prompt_variables(record))

    async def __call__(self, record: Record) -> Simplified:
        if not needs_simplifying(record):
            return Simplified(record, STATUS_NO_RESPONSE)
        messages = self.messages(record)
        original = record.output.strip()
        expected = self.engine.counter.count(original) if self.engine.settings.dry_run else None
        text = ""
        for variant in range(self.length_retries + 1):
            text = await self.engine.complete(
                messages,
                template=self.template.ref,
                sampling=self.sampling,
                parse=parse_simplified,
                variant=variant,
                expected_tokens=expected,
            )
            if len(text) <= len(original):
                return Simplified(self.rewritten(record, text, longer=False), STATUS_SIMPLIFIED)
        if self.reject_longer:
            tries = self.length_retries + 1
            raise RecordFailure(f"{LONGER_REASON} ({len(text)} > {len(original)} characters, {tries} tries)", text)
        return Simplified(self.rewritten(record, text, longer=True), STATUS_LONGER)

    def rewritten(self, record: Record, text: str, longer: bool) -> Record:
        metadata = dict(record.metadata)
        if self.keep_original:
            metadata[META_ORIGINAL_OUTPUT] = record.output
        if longer:
            metadata[META_LONGER] = True
        step = {
            "method": METHOD,
            "model": self.engine.settings.model,
            "template": self.template.ref,
            "template_hash": self.template.hash,
            "parent_id": record.id,
        }
        return record.with_output(text).with_provenance(step, metadata=metadata)


@dataclass
class SimplifyResult(JobResult):
    source_format: str
    target_format: str
    read: int = 0
    """Records loaded (after --limit)."""
    rejected_input: int = 0
    """Input rows the reader rejected (--on-error skip): in the errors file."""
    simplified: int = 0
    longer_kept: int = 0
    no_response: int = 0
    failed: int = 0
    written: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.rejected_input)

    def counts(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "rejected_input": self.rejected_input,
            "simplified": self.simplified,
            "longer_kept": self.longer_kept,
            "no_response_passed_through": self.no_response,
            "failed": self.failed,
            "written": self.written,
        }


def check_writable(records: list[Record], target: str) -> None:
    """Fail before any request when the output format cannot hold a record."""
    fmt = get_format(target)
    for record in records:
        with fails_before_sending(f"record '{record.id}'"):
            fmt.dump(record)


def simplify_file(
    source: str,
    output: str,
    *,
    engine: Engine,
    report: RunReport | None = None,
    from_format: str = "auto",
    to_format: str | None = None,
    keep_original: bool = False,
    reject_longer: bool = False,
    length_retries: int = LENGTH_RETRIES,
    prompts_dir: str | None = None,
    on_error: str = "fail",
    errors_path: str | None = None,
) -> SimplifyResult:
    """Simplify every record of ``source`` into ``output`` (nothing is written in a dry run).

    Reads the records (``engine.settings.limit`` first ones), loads the
    template and checks the output format can hold every record before any
    request, runs the rewrites concurrently, writes the results in input order,
    then the failures file and the run summary (``report``).
    """
    settings = engine.settings
    template = load_template(METHOD, TEMPLATE_NAME, prompts_dir)
    read = read_input(source, from_format, limit=settings.limit, on_error=on_error, errors_path=errors_path)
    records = read.records
    target = to_format or read.format
    result = SimplifyResult(read.format, target, read=len(records), rejected_input=read.rejected)
    result.errors_path = read.errors_path
    check_writable(records, target)

    simplifier = Simplifier(
        engine, template, keep_original=keep_original, reject_longer=reject_longer, length_retries=length_retries
    )
    outcomes = engine.run(records, simplifier, description=COMMAND)
    if settings.dry_run:
        result.dry_run = True
        result.plan = engine.plan
        result.no_response = sum(1 for r in records if not needs_simplifying(r))
        return result

    report = report or RunReport(COMMAND, output, settings)
    with RecordWriter(output, target) as writer:
        for outcome in outcomes:
            if outcome.failure is not None:
                report.fail(outcome.item.id, outcome.failure.reason, outcome.failure.raw)
                result.failed += 1
                continue
            done: Simplified = outcome.value  # type: ignore[assignment]
            if done.status == STATUS_SIMPLIFIED:
                result.simplified += 1
            elif done.status == STATUS_LONGER:
                result.longer_kept += 1
            else:
                result.no_response += 1
            writer.write(done.record)
            result.written += 1
    file_report(
        result,
        report,
        engine.stats,
        result.counts(),
        extra={"template": template.ref, "source_format": result.source_format, "target_format": target},
    )
    return result

"""What the simplify prompt shows of a record, and how the model's rewrite is read back."""

from __future__ import annotations

import re

from itkit.llm.base import ChatResponse, ResponseRejected
from itkit.records import Record

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

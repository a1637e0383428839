"""Plain Alpaca and ShareGPT files, for any other tool.

Every row has the same keys with the same types:

- alpaca: ``{"id", "instruction", "input", "output", "system", "history"}``;
  ``system`` is "" when the record has none, ``history`` the earlier
  ``[prompt, response]`` pairs (LLaMA-Factory's variant), [] for one exchange.
- sharegpt: ``{"id", "conversations": [{"from": "human"|"gpt", "value"}], "system"}``;
  turns strictly alternate human/gpt, start with human and end with gpt. Tool
  use in LLaMA-Factory's layout (``function_call``/``observation`` turns, a
  ``tools`` JSON string, "" without tools), when the set has any.

Alpaca cannot hold tool calls (such a record is refused); neither file holds
per-turn weights (the card says so).
"""

from __future__ import annotations

import json

from itkit.export.targets import Target, TargetContext
from itkit.formats.sharegpt import sharegpt_turns
from itkit.formats.tools import plain_tools
from itkit.records import Record

SHAREGPT_TAGS = {"user": "human", "assistant": "gpt", "tool": "observation", "function_call": "function_call"}


def alpaca_refuses(record: Record) -> str | None:
    if record.uses_tools:
        return "it uses tools (tool calls, results or schemas), which Alpaca rows cannot hold"
    return None


def sharegpt_refuses(record: Record) -> str | None:
    for i, turn in enumerate(record.turns):
        if turn.tool_calls and turn.content.strip():
            return f"turn {i + 1} has both text and tool calls; a ShareGPT function_call turn holds only the calls"
    return None


def weight_note(name: str):
    def extra_files(ctx: TargetContext) -> dict[str, str]:
        if ctx.has_weights:
            ctx.notes.append(f"{name} rows hold no per-turn weight: {ctx.weighted_records} records train turns weighted 0.")
        return {}

    return extra_files


def alpaca_row(record: Record, ctx: TargetContext) -> dict:
    return {
        "id": record.id,
        "instruction": record.instruction,
        "input": record.input,
        "output": record.output,
        "system": record.system or "",
        "history": [[prompt, response] for prompt, response in record.history],
    }


def sharegpt_row(record: Record, ctx: TargetContext) -> dict:
    conversations = sharegpt_turns(record, SHAREGPT_TAGS, "ShareGPT", weights=False)
    out = {"id": record.id, "conversations": conversations, "system": record.system or ""}
    if ctx.uses_tools:
        out["tools"] = json.dumps(plain_tools(record.tools), ensure_ascii=False) if record.tools else ""
    return out


ALPACA = Target(
    name="alpaca",
    description="plain Alpaca JSONL (instruction, input, output, system, history)",
    row=alpaca_row,
    extra_files=weight_note("Alpaca"),
    refuses=alpaca_refuses,
)
SHAREGPT = Target(
    name="sharegpt",
    description="plain ShareGPT JSONL (conversations of strictly alternating human/gpt turns)",
    row=sharegpt_row,
    extra_files=weight_note("ShareGPT"),
    refuses=sharegpt_refuses,
)

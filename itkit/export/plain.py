"""Plain Alpaca and ShareGPT files, for any other tool.

Every row has the same keys with the same types:

- alpaca: ``{"id", "instruction", "input", "output", "system", "history"}``;
  ``system`` is "" when the record has none, ``history`` the earlier
  ``[prompt, response]`` pairs (LLaMA-Factory's variant), [] for one exchange.
- sharegpt: ``{"id", "conversations": [{"from": "human"|"gpt", "value"}], "system"}``;
  turns strictly alternate human/gpt, start with human and end with gpt.
"""

from __future__ import annotations

from itkit.export.targets import Target, TargetContext, no_files
from itkit.records import Record

SHAREGPT_TAGS = {"user": "human", "assistant": "gpt"}


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
    conversations = [
        {"from": SHAREGPT_TAGS[m["role"]], "value": m["content"]} for m in record.to_messages(include_system=False)
    ]
    return {"id": record.id, "conversations": conversations, "system": record.system or ""}


ALPACA = Target(
    name="alpaca",
    description="plain Alpaca JSONL (instruction, input, output, system, history)",
    row=alpaca_row,
    extra_files=no_files,
)
SHAREGPT = Target(
    name="sharegpt",
    description="plain ShareGPT JSONL (conversations of strictly alternating human/gpt turns)",
    row=sharegpt_row,
    extra_files=no_files,
)

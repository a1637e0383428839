"""TRL (SFTTrainer): conversational JSONL, ``messages`` or prompt-completion; no registration file.

- ``messages``: ``{"id", "messages": [{"role", "content"}]}`` with roles
  system/user/assistant only (TRL does not map human/gpt).
- ``prompt-completion`` (conversational): ``{"id", "prompt": [messages up to
  the last user turn], "completion": [the last assistant message]}``; TRL then
  computes the loss on the completion only.
"""

from __future__ import annotations

from itkit.export.targets import Target, TargetContext, messages_of, no_files
from itkit.records import Record


def row(record: Record, ctx: TargetContext) -> dict:
    messages = messages_of(record)
    if ctx.trl_format == "prompt-completion":
        return {"id": record.id, "prompt": messages[:-1], "completion": messages[-1:]}
    return {"id": record.id, "messages": messages}


TARGET = Target(
    name="trl",
    description="TRL SFTTrainer: conversational messages (or prompt-completion) JSONL",
    row=row,
    extra_files=no_files,
)

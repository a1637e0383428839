"""TRL (SFTTrainer): conversational JSONL, ``messages`` or prompt-completion; no registration file.

- ``messages``: ``{"id", "messages": [{"role", "content"}]}`` with roles
  system/user/assistant (and tool) only (TRL does not map human/gpt).
- ``prompt-completion`` (conversational): ``{"id", "prompt": [every message
  before the last], "completion": [the last assistant message]}``; TRL then
  computes the loss on the completion only (never on tool results).

Tool use as TRL hands it to the chat template: assistant messages with
``tool_calls`` (``arguments`` as objects), ``tool`` messages, and a ``tools``
column with the record's schemas (null for a record without tools). TRL has no
per-turn weight: with ``assistant_only_loss=True`` (a template with
``{% generation %}``) it trains every assistant turn, in prompt-completion the
last one; the card says which records' weights it cannot honour.
"""

from __future__ import annotations

from itkit.export.targets import Target, TargetContext, messages_of, no_files
from itkit.records import Record


def row(record: Record, ctx: TargetContext) -> dict:
    messages = messages_of(record)
    if ctx.trl_format == "prompt-completion":
        out: dict = {"id": record.id, "prompt": messages[:-1], "completion": messages[-1:]}
    else:
        out = {"id": record.id, "messages": messages}
    if ctx.uses_tools:
        out["tools"] = record.tools
    return out


def extra_files(ctx: TargetContext) -> dict[str, str]:
    if ctx.has_weights and not (ctx.trl_format == "prompt-completion" and ctx.last_turn_only):
        ctx.notes.append(
            f"TRL has no per-turn weight: {ctx.weighted_records} records have assistant turns with weight 0 that "
            + (
                "prompt-completion rows train only where that turn is the last."
                if ctx.trl_format == "prompt-completion"
                else "it trains (assistant_only_loss trains every assistant turn); --trl-format prompt-completion "
                "trains only the last one."
            )
        )
    return no_files(ctx)


TARGET = Target(
    name="trl",
    description="TRL SFTTrainer: conversational messages (or prompt-completion) JSONL",
    row=row,
    extra_files=extra_files,
)

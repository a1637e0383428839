"""Axolotl: messages JSONL and a YAML config fragment per mode (``type: chat_template``).

The fragment holds the ``datasets`` entry (and ``test_datasets`` for the
validation file: Axolotl takes either that or ``val_set_size``), the sequence
length, evaluation, checkpoint and warm-up steps computed from the exported
size, and the mode's method: a LoRA adapter with learning rate 1e-4 for LFT,
full fine-tuning with 1e-5 for SFT. Data paths are absolute (or, with
``--relative-paths``, relative to the fragment's folder), so the fragment works
as written; merge it into a config that sets ``base_model`` (or pass
``--base-model``) and, if the tokenizer has none, the chat template.

Tool use as Axolotl's chat_template strategy reads it: assistant messages with
``tool_calls`` (``arguments`` as JSON strings, which it parses), ``tool``
messages, and a ``tools`` column (``field_tools``; the ``parameters`` of each
schema as a JSON string, which it parses, so rows keep one type). Per-turn
weights: each weighted assistant message carries ``weight`` (0/1) and the
dataset entry sets ``message_field_training: weight``.
"""

from __future__ import annotations

import json

from itkit.export.targets import Target, TargetContext, messages_of, yaml_text
from itkit.records import Record

CONFIG_FILES = {"lft": "axolotl_lora.yaml", "sft": "axolotl_full.yaml"}
MESSAGE_PROPERTY_MAPPINGS = {"role": "role", "content": "content"}
WEIGHT_FIELD = "weight"


def _tools(record: Record) -> list[dict] | None:
    if not record.tools:
        return None
    out = []
    for tool in record.tools:
        function = dict(tool.get("function", {}))
        if "parameters" in function and not isinstance(function["parameters"], str):
            function["parameters"] = json.dumps(function["parameters"], ensure_ascii=False)
        out.append({"type": tool.get("type", "function"), "function": function})
    return out


def row(record: Record, ctx: TargetContext) -> dict:
    messages = messages_of(record, weights=ctx.has_weights)
    for message in messages:
        for call in message.get("tool_calls", ()):
            arguments = call["function"]["arguments"]
            call["function"]["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    out: dict = {"id": record.id, "messages": messages}
    if ctx.uses_tools:
        out["tools"] = _tools(record)
    return out


def refuses(record: Record) -> str | None:
    for i, turn in enumerate(record.turns):
        for call in turn.tool_calls or ():
            try:
                json.loads(call["function"]["arguments"])
            except ValueError:
                return f"turn {i + 1} calls {call['function']['name']} with arguments that are not JSON, which Axolotl cannot parse"
    return None


def dataset_entry(path: str, ctx: TargetContext, test: bool = False) -> dict:
    entry: dict = {"path": path, "ds_type": "json"}
    if test:
        entry["split"] = "train"  # a local JSON file loads as one split called "train"
    entry.update(
        type="chat_template",
        field_messages="messages",
        message_property_mappings=dict(MESSAGE_PROPERTY_MAPPINGS),
        roles_to_train=["assistant"],
    )
    if ctx.uses_tools:
        entry["field_tools"] = "tools"
    if ctx.has_weights:
        entry["message_field_training"] = WEIGHT_FIELD
    return entry


def config(ctx: TargetContext) -> dict:
    t = ctx.training
    out: dict = {}
    if ctx.base_model:
        out["base_model"] = ctx.base_model
    out["datasets"] = [dataset_entry(ctx.data_path(ctx.train_path.name), ctx)]
    if ctx.has_val:
        out["test_datasets"] = [dataset_entry(ctx.data_path(ctx.val_path.name), ctx, test=True)]
    out["sequence_len"] = ctx.cutoff_len
    if ctx.mode == "lft":
        out.update(
            adapter="lora",
            lora_r=t.lora_rank,
            lora_alpha=t.lora_alpha,
            lora_dropout=t.lora_dropout,
            lora_target_linear=True,
        )
    out.update(
        learning_rate=t.learning_rate(ctx.mode),
        num_epochs=t.epochs,
        micro_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        lr_scheduler="cosine",
        warmup_steps=t.warmup_steps(ctx.train_rows),
    )
    if ctx.has_val:
        out["eval_steps"] = t.eval_steps(ctx.train_rows)
    out.update(
        save_steps=t.eval_steps(ctx.train_rows),
        logging_steps=min(10, t.eval_steps(ctx.train_rows)),
        output_dir=f"./outputs/itkit-{ctx.mode}-{'lora' if ctx.mode == 'lft' else 'full'}",
    )
    return out


def extra_files(ctx: TargetContext) -> dict[str, str]:
    kind = "LoRA" if ctx.mode == "lft" else "full-parameter"
    header = [
        f"Axolotl config fragment written by itkit export: {kind} fine-tuning on the {ctx.mode.upper()} set",
        f"({ctx.train_rows} training records, {ctx.training.steps(ctx.train_rows)} optimiser steps).",
        "Merge into your config; it needs base_model"
        + (" (set here from --base-model)" if ctx.base_model else " (or pass --base-model to itkit export)")
        + " and, if the tokenizer has none, a chat_template.",
        *ctx.run_from,
    ]
    return {CONFIG_FILES[ctx.mode]: yaml_text(header, config(ctx))}


TARGET = Target(
    name="axolotl",
    description="Axolotl: messages JSONL + YAML fragment (type: chat_template, field_messages: messages)",
    row=row,
    extra_files=extra_files,
    refuses=refuses,
)

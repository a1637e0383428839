"""Axolotl: messages JSONL and a YAML config fragment per mode (``type: chat_template``).

The fragment holds the ``datasets`` entry (and ``test_datasets`` for the
validation file: Axolotl takes either that or ``val_set_size``), the sequence
length, and the mode's method: a LoRA adapter with learning rate 1e-4 for LFT,
full fine-tuning with 1e-5 for SFT. Data paths are absolute, so the fragment
works from any folder; merge it into a config that sets ``base_model`` (or pass
``--base-model``) and the chat template.
"""

from __future__ import annotations

from itkit.export.targets import Target, TargetContext, messages_of, yaml_text
from itkit.records import Record

CONFIG_FILES = {"lft": "axolotl_lora.yaml", "sft": "axolotl_full.yaml"}
MESSAGE_PROPERTY_MAPPINGS = {"role": "role", "content": "content"}


def row(record: Record, ctx: TargetContext) -> dict:
    return {"id": record.id, "messages": messages_of(record)}


def dataset_entry(path: str, test: bool = False) -> dict:
    entry: dict = {"path": path, "ds_type": "json"}
    if test:
        entry["split"] = "train"  # a local JSON file loads as one split called "train"
    entry.update(
        type="chat_template",
        field_messages="messages",
        message_property_mappings=dict(MESSAGE_PROPERTY_MAPPINGS),
        roles_to_train=["assistant"],
    )
    return entry


def config(ctx: TargetContext) -> dict:
    t = ctx.training
    out: dict = {}
    if ctx.base_model:
        out["base_model"] = ctx.base_model
    out["datasets"] = [dataset_entry(str(ctx.train_path))]
    if ctx.has_val:
        out["test_datasets"] = [dataset_entry(str(ctx.val_path), test=True)]
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
        warmup_ratio=t.warmup_ratio,
        output_dir=f"./outputs/itkit-{ctx.mode}-{'lora' if ctx.mode == 'lft' else 'full'}",
    )
    return out


def extra_files(ctx: TargetContext) -> dict[str, str]:
    kind = "LoRA" if ctx.mode == "lft" else "full-parameter"
    header = [
        f"Axolotl config fragment written by itkit export: {kind} fine-tuning on the {ctx.mode.upper()} set.",
        "Merge into your config; it needs base_model"
        + (" (set here from --base-model)" if ctx.base_model else " (or pass --base-model to itkit export)")
        + " and, if the tokenizer has none, a chat_template.",
    ]
    return {CONFIG_FILES[ctx.mode]: yaml_text(header, config(ctx))}


TARGET = Target(
    name="axolotl",
    description="Axolotl: messages JSONL + YAML fragment (type: chat_template, field_messages: messages)",
    row=row,
    extra_files=extra_files,
)

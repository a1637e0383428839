"""LLaMA-Factory: OpenAI-style messages JSONL, a ``dataset_info.json`` and a training config stub.

The data uses LLaMA-Factory's "sharegpt" formatting with role/content tags
(its documented OpenAI format): ``{"id", "messages": [{"role", "content"}]}``,
an optional system message first, then user/assistant turns that strictly
alternate and are even in number (LLaMA-Factory skips any other row).

``dataset_info.json`` registers ``itkit_<mode>_train`` (and ``itkit_<mode>_val``);
``train_lora.yaml`` (LFT) or ``train_full.yaml`` (SFT) points ``dataset_dir``
at this folder, so ``llamafactory-cli train train_lora.yaml`` runs once the
model and its chat template are set.
"""

from __future__ import annotations

import json

from itkit.export.targets import TRAIN_FILE, VAL_FILE, Target, TargetContext, messages_of, yaml_text
from itkit.records import Record

DATASET_INFO = "dataset_info.json"
CONFIG_FILES = {"lft": "train_lora.yaml", "sft": "train_full.yaml"}
COLUMNS = {"messages": "messages"}
TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


def dataset_name(mode: str, split: str) -> str:
    return f"itkit_{mode}_{split}"


def row(record: Record, ctx: TargetContext) -> dict:
    return {"id": record.id, "messages": messages_of(record)}


def dataset_info(ctx: TargetContext) -> dict:
    entry = {"formatting": "sharegpt", "columns": dict(COLUMNS), "tags": dict(TAGS)}
    info = {dataset_name(ctx.mode, "train"): {"file_name": TRAIN_FILE, **entry}}
    if ctx.has_val:
        info[dataset_name(ctx.mode, "val")] = {"file_name": VAL_FILE, **entry}
    return info


def training_config(ctx: TargetContext) -> dict:
    t = ctx.training
    lora = ctx.mode == "lft"
    config: dict = {"model_name_or_path": ctx.base_model, "stage": "sft", "do_train": True}
    if lora:
        config.update(
            finetuning_type="lora",
            lora_rank=t.lora_rank,
            lora_alpha=t.lora_alpha,
            lora_dropout=t.lora_dropout,
            lora_target="all",
        )
    else:
        config["finetuning_type"] = "full"
    config.update(dataset_dir=str(ctx.folder), dataset=dataset_name(ctx.mode, "train"))
    if ctx.has_val:
        config["eval_dataset"] = dataset_name(ctx.mode, "val")
    config.update(
        cutoff_len=ctx.cutoff_len,
        output_dir=f"saves/itkit-{ctx.mode}-{'lora' if lora else 'full'}",
        learning_rate=t.learning_rate(ctx.mode),
        num_train_epochs=t.epochs,
        lr_scheduler_type="cosine",
        warmup_ratio=t.warmup_ratio,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        bf16=True,
        logging_steps=10,
        save_steps=t.eval_steps,
    )
    if ctx.has_val:
        config.update(per_device_eval_batch_size=t.batch_size, eval_strategy="steps", eval_steps=t.eval_steps)
    return config


def extra_files(ctx: TargetContext) -> dict[str, str]:
    kind = "LoRA" if ctx.mode == "lft" else "full-parameter"
    header = [
        f"LLaMA-Factory config stub written by itkit export: {kind} fine-tuning on the {ctx.mode.upper()} set.",
        "Before training: set model_name_or_path (or pass --base-model to itkit export) and add",
        "`template:` with your model's chat template (llama3, qwen, mistral...). Then run:",
        f"  llamafactory-cli train {CONFIG_FILES[ctx.mode]}",
    ]
    if ctx.mode == "sft":
        header.append("Full fine-tuning of a large model usually needs DeepSpeed (add `deepspeed:` with a ZeRO-3 config).")
    return {
        DATASET_INFO: json.dumps(dataset_info(ctx), ensure_ascii=False, indent=2) + "\n",
        CONFIG_FILES[ctx.mode]: yaml_text(header, training_config(ctx)),
    }


TARGET = Target(
    name="llama-factory",
    description="LLaMA-Factory: messages JSONL + dataset_info.json (sharegpt formatting, role/content tags) + config stub",
    row=row,
    extra_files=extra_files,
)

"""LLaMA-Factory: OpenAI-style messages JSONL, a ``dataset_info.json`` and a training config.

The data uses LLaMA-Factory's "sharegpt" formatting with role/content tags
(its documented OpenAI format): ``{"id", "messages": [{"role", "content"}]}``,
an optional system message first, then user/assistant turns that strictly
alternate and are even in number (LLaMA-Factory skips any other row).

Tool use in its own convention: the assistant's calls are a ``function_call``
message whose content is the JSON of ``{"name", "arguments"}`` (a list for
parallel calls), the results one ``tool`` message (``observation_tag``; the
JSON array of the results of parallel calls), the schemas a ``tools`` column
(a JSON string); ``dataset_info.json`` names these tags and the column. An
assistant turn with both text and calls cannot be written (refused).

``dataset_info.json`` registers ``itkit_<mode>_train`` (and ``itkit_<mode>_val``);
``train_lora.yaml`` (LFT) or ``train_full.yaml`` (SFT) points ``dataset_dir``
at this folder and runs as written once the model is set: ``template:`` comes
from ``--base-model`` when its family is known (else LLaMA-Factory uses the
tokenizer's own chat template), evaluation, checkpoint and warm-up steps from
the exported size, ``mask_history`` when every record trains only its last turn.
"""

from __future__ import annotations

import json

from itkit.export.targets import TRAIN_FILE, VAL_FILE, Target, TargetContext, messages_of, yaml_text
from itkit.formats.sharegpt import sharegpt_turns
from itkit.formats.tools import plain_tools
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
TOOL_TAGS = {"observation_tag": "tool", "function_tag": "function_call"}
ROLE_TAGS = {"user": "user", "assistant": "assistant", "tool": "tool", "function_call": "function_call"}

TEMPLATES = (
    # (what the model name contains, lower-cased, LLaMA-Factory's template), first match wins
    (("qwen3",), "qwen3"),
    (("qwen",), "qwen"),
    (("llama-3", "llama3"), "llama3"),
    (("llama-2", "llama2"), "llama2"),
    (("mistral", "mixtral", "ministral"), "mistral"),
    (("gemma-3", "gemma3"), "gemma3"),
    (("gemma",), "gemma"),
    (("phi-4", "phi4"), "phi4"),
    (("glm-4", "glm4"), "glm4"),
    (("deepseek-v3", "deepseek-r1"), "deepseek3"),
)


def template_for(base_model: str | None) -> str | None:
    """LLaMA-Factory's ``template`` for a model name, when its family is known."""
    if not base_model:
        return None
    name = base_model.lower().rstrip("/").rsplit("/", 1)[-1]
    for needles, template in TEMPLATES:
        if any(n in name for n in needles):
            return template
    return None


def dataset_name(mode: str, split: str) -> str:
    return f"itkit_{mode}_{split}"


def refuses(record: Record) -> str | None:
    for i, turn in enumerate(record.turns):
        if turn.tool_calls and turn.content.strip():
            return f"turn {i + 1} has both text and tool calls; LLaMA-Factory's function_call turn holds only the calls"
    return None


def row(record: Record, ctx: TargetContext) -> dict:
    if not record.uses_tools:
        out: dict = {"id": record.id, "messages": messages_of(record)}
    else:
        turns = sharegpt_turns(record, ROLE_TAGS, "LLaMA-Factory", keys=("role", "content"), weights=False)
        system = [{"role": "system", "content": record.system}] if record.system else []
        out = {"id": record.id, "messages": system + turns}
    if ctx.uses_tools:
        out["tools"] = json.dumps(plain_tools(record.tools), ensure_ascii=False) if record.tools else ""
    return out


def dataset_info(ctx: TargetContext) -> dict:
    columns = dict(COLUMNS)
    tags = dict(TAGS)
    if ctx.uses_tools:
        columns["tools"] = "tools"
        tags.update(TOOL_TAGS)
    entry = {"formatting": "sharegpt", "columns": columns, "tags": tags}
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
    config.update(dataset_dir=ctx.config_dir, dataset=dataset_name(ctx.mode, "train"))
    if ctx.has_val:
        config["eval_dataset"] = dataset_name(ctx.mode, "val")
    template = template_for(ctx.base_model)
    if template:
        config["template"] = template
    if ctx.has_weights and ctx.last_turn_only:
        config["mask_history"] = True
    config.update(
        cutoff_len=ctx.cutoff_len,
        output_dir=f"saves/itkit-{ctx.mode}-{'lora' if lora else 'full'}",
        learning_rate=t.learning_rate(ctx.mode),
        num_train_epochs=t.epochs,
        lr_scheduler_type="cosine",
        warmup_steps=t.warmup_steps(ctx.train_rows),
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        bf16=True,
        logging_steps=min(10, t.eval_steps(ctx.train_rows)),
        save_steps=t.eval_steps(ctx.train_rows),
    )
    if ctx.has_val:
        config.update(per_device_eval_batch_size=t.batch_size, eval_strategy="steps", eval_steps=t.eval_steps(ctx.train_rows))
    return config


def extra_files(ctx: TargetContext) -> dict[str, str]:
    kind = "LoRA" if ctx.mode == "lft" else "full-parameter"
    config = training_config(ctx)
    steps = ctx.training.steps(ctx.train_rows)
    header = [
        f"LLaMA-Factory config written by itkit export: {kind} fine-tuning on the {ctx.mode.upper()} set",
        f"({ctx.train_rows} training records: {steps} optimiser steps at batch "
        f"{ctx.training.batch_size} x {ctx.training.gradient_accumulation_steps} over {ctx.training.epochs:g} epochs).",
    ]
    if not ctx.base_model:
        header.append("Before training: set model_name_or_path (or pass --base-model to itkit export).")
    if "template" not in config:
        header.append(
            "No `template:` (the model family is not known): LLaMA-Factory then uses the tokenizer's own chat template."
        )
    header += ctx.run_from + [f"Run: llamafactory-cli train {CONFIG_FILES[ctx.mode]}"]
    if ctx.mode == "sft":
        header.append("Full fine-tuning of a large model usually needs DeepSpeed (add `deepspeed:` with a ZeRO-3 config).")
    if ctx.has_weights and not ctx.last_turn_only:
        ctx.notes.append(
            f"LLaMA-Factory trains every assistant turn of a record (mask_history only keeps the last one): "
            f"{ctx.weighted_records} records have weight-0 turns it will train on."
        )
    return {
        DATASET_INFO: json.dumps(dataset_info(ctx), ensure_ascii=False, indent=2) + "\n",
        CONFIG_FILES[ctx.mode]: yaml_text(header, config),
    }


TARGET = Target(
    name="llama-factory",
    description="LLaMA-Factory: messages JSONL + dataset_info.json (sharegpt formatting, role/content tags) + config",
    row=row,
    extra_files=extra_files,
    refuses=refuses,
)

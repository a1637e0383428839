"""What an export target is, the registry of targets, and the training defaults their configs use.

A target turns a record into one JSON row (the same keys, with the same types,
in every row) and may add files next to the data: a registration file or a
training config. Data files are ``train.jsonl`` and, when the split has a
validation part, ``val.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from itkit.errors import UsageError
from itkit.records import Record

TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
MODES = ("lft", "sft")
MODE_TITLES = {"lft": "LoRA fine-tuning (LFT)", "sft": "full-parameter fine-tuning (SFT)"}
TRL_FORMATS = ("messages", "prompt-completion")


@dataclass(frozen=True)
class TrainingDefaults:
    """Hyper-parameters written into the config stubs (LLaMA-Factory's and Axolotl's examples)."""

    lora_learning_rate: float = 1.0e-4
    full_learning_rate: float = 1.0e-5
    cutoff_len: int = 2048
    epochs: float = 3.0
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    warmup_ratio: float = 0.1
    batch_size: int = 1
    gradient_accumulation_steps: int = 8
    eval_steps: int = 500

    def learning_rate(self, mode: str) -> float:
        return self.lora_learning_rate if mode == "lft" else self.full_learning_rate


@dataclass
class TargetContext:
    """What a target needs to write its extra files for one mode."""

    mode: str
    folder: Path
    """The final, absolute folder of this target's files (configs point at it)."""
    has_val: bool
    cutoff_len: int
    base_model: str | None = None
    trl_format: str = "messages"
    training: TrainingDefaults = field(default_factory=TrainingDefaults)

    @property
    def train_path(self) -> Path:
        return self.folder / TRAIN_FILE

    @property
    def val_path(self) -> Path:
        return self.folder / VAL_FILE


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    row: Callable[[Record, TargetContext], dict]
    extra_files: Callable[[TargetContext], dict[str, str]]


def messages_of(record: Record) -> list[dict[str, str]]:
    """OpenAI-style messages, exactly {role, content} with string values; the system prompt first when set."""
    return [{"role": m["role"], "content": m["content"]} for m in record.to_messages(include_system=bool(record.system))]


def yaml_text(header: list[str], data: dict) -> str:
    """A YAML document with a comment header."""
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return "".join(f"# {line}\n" if line else "#\n" for line in header) + body


def no_files(ctx: TargetContext) -> dict[str, str]:
    return {}


def _registry() -> dict[str, Target]:
    from itkit.export import axolotl, llama_factory, plain, trl

    return {t.name: t for t in (trl.TARGET, llama_factory.TARGET, axolotl.TARGET, plain.ALPACA, plain.SHAREGPT)}


TARGET_NAMES = ("trl", "llama-factory", "axolotl", "alpaca", "sharegpt")


def get_targets(names: list[str]) -> list[Target]:
    """Targets by name; accepts repeated names and comma-separated lists, keeps the first occurrence order."""
    registry = _registry()
    out: list[Target] = []
    for item in names:
        for name in (n.strip().lower() for n in item.split(",")):
            if not name:
                continue
            if name not in registry:
                raise UsageError(f"unknown target '{name}'; choose from: {', '.join(TARGET_NAMES)}")
            if registry[name] not in out:
                out.append(registry[name])
    if not out:
        raise UsageError(f"no target given; choose from: {', '.join(TARGET_NAMES)}")
    return out

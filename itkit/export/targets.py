"""What an export target is, the registry of targets, and the training defaults their configs use.

A target turns a record into one JSON row (the same keys, with the same types,
in every row) and may add files next to the data: a registration file or a
training config. Data files are ``train.jsonl`` and, when the split has a
validation part, ``val.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    """Share of the run's optimiser steps spent warming up (written as ``warmup_steps``)."""
    batch_size: int = 1
    gradient_accumulation_steps: int = 8
    evaluations_per_run: int = 10
    """Evaluations (and checkpoints) over a run: ``eval_steps`` and ``save_steps`` are the run's steps over this."""
    estimate_margin: float = 0.25
    """When lengths are estimates (no chat template), configs allow this much more than the longest record."""
    estimate_margin_min: int = 64

    def learning_rate(self, mode: str) -> float:
        return self.lora_learning_rate if mode == "lft" else self.full_learning_rate

    def steps(self, train_rows: int) -> int:
        """Optimiser steps of a run over ``train_rows`` records (one device)."""
        per_epoch = math.ceil(max(train_rows, 1) / (self.batch_size * self.gradient_accumulation_steps))
        return max(1, math.ceil(per_epoch * self.epochs))

    def eval_steps(self, train_rows: int) -> int:
        return max(1, self.steps(train_rows) // self.evaluations_per_run)

    def warmup_steps(self, train_rows: int) -> int:
        return math.ceil(self.warmup_ratio * self.steps(train_rows))

    def with_margin(self, tokens: int) -> int:
        """A sequence length that holds ``tokens`` estimated tokens, with the margin, rounded up to a multiple of 8."""
        value = tokens + max(self.estimate_margin_min, math.ceil(tokens * self.estimate_margin))
        return -(-value // 8) * 8


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
    train_rows: int = 0
    exact_lengths: bool = False
    """Lengths come from the model's own chat template (else they are estimates, see ``cutoff_len``)."""
    relative_paths: bool = False
    """Configs name their data relative to their own folder (run the trainer from there)."""
    uses_tools: bool = False
    """Some record of this set calls tools or offers tool schemas."""
    has_weights: bool = False
    """Some record of this set carries per-turn training weights."""
    last_turn_only: bool = False
    """Every record trains exactly its last assistant turn (weights 0 on every earlier one)."""
    weighted_records: int = 0
    """Records whose weights train something else than every assistant turn."""
    notes: list[str] = field(default_factory=list)
    """What the target cannot honour, for the card."""

    @property
    def train_path(self) -> Path:
        return self.folder / TRAIN_FILE

    @property
    def val_path(self) -> Path:
        return self.folder / VAL_FILE

    def data_path(self, name: str) -> str:
        """How a config names one of this folder's files."""
        return name if self.relative_paths else str(self.folder / name)

    @property
    def config_dir(self) -> str:
        return "." if self.relative_paths else str(self.folder)

    @property
    def run_from(self) -> list[str]:
        """The header line telling where to run the trainer from, when paths are relative."""
        return ["Paths are relative to this folder: run the trainer from here."] if self.relative_paths else []


def can_hold_anything(record: Record) -> str | None:
    return None


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    row: Callable[[Record, TargetContext], dict]
    extra_files: Callable[[TargetContext], dict[str, str]]
    refuses: Callable[[Record], str | None] = can_hold_anything
    """Why the target cannot hold a record (export then stops before writing anything), or None."""


def messages_of(record: Record, weights: bool = False) -> list[dict[str, Any]]:
    """OpenAI-style messages: {role, content} with string values, the system prompt first when set.

    An assistant turn that calls tools adds ``tool_calls`` (``arguments`` as
    objects, as Hugging Face chat templates expect); a tool result adds
    ``tool_call_id`` when known; ``weights`` adds each assistant turn's
    ``weight`` (0/1) where the record has one.
    """
    from itkit.formats.tools import calls_with_object_arguments

    messages = record.to_messages(include_system=bool(record.system))
    offset = len(messages) - len(record.turns)
    for i, message in enumerate(messages):
        if "tool_calls" in message:
            message["tool_calls"] = calls_with_object_arguments(message["tool_calls"])
        if weights and i >= offset and record.turns[i - offset].weight is not None:
            message["weight"] = record.turns[i - offset].weight
    return messages


def trained_pattern(record: Record) -> tuple[bool, bool]:
    """(the record trains only its last assistant turn, its weights train less than every assistant turn)."""
    assistant = [t for t in record.turns if t.role == "assistant"]
    trained = [t.trained for t in assistant]
    return trained == [False] * (len(trained) - 1) + [True], not all(trained)


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

"""Task types of records and the Orca system messages each type may receive.

Everything here is data from ``prompts/orca/task_types.yaml`` (see the comments
there): the type -> messages table, collection names (OpenOrca's id prefixes
niv/t0/cot/flan), category aliases (Dolly's categories) and an ordered list of
named regular-expression rules. Detection is transparent: a
:class:`TaskType` says which type was found and why (``category:closed_qa``,
``id-prefix:niv``, ``rule:translate`` or ``default``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from itkit.records import Record
from itkit.templates import HASH_LENGTH, PromptError, parse_prompt_file, template_path

METHOD = "orca"
FILE_NAME = "task_types"
ID_PREFIX_SEPARATOR = "."
"""OpenOrca ids name their sub-mix before the first dot: ``niv.242684``."""
RULE_FLAGS = re.IGNORECASE | re.MULTILINE
MULTIPLE_CHOICE = "multiple_choice"
"""The type whose rules decide whether a collection's record is multiple choice (FLAN)."""


class _TypeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[int] = Field(min_length=1)
    description: str = ""


class _Collection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    multiple_choice_type: str | None = None
    """The type to use instead when the record looks like multiple choice (FLAN)."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    field: Literal["instruction", "prompt"] = "prompt"
    requires_input: bool = False
    all_of: list[str] = Field(default_factory=list)
    """Patterns that must all match too (e.g. "the text holds a number")."""
    patterns: list[str] = Field(min_length=1)


class _TaskTypesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int | str
    description: str = ""
    types: dict[str, _TypeEntry] = Field(min_length=1)
    default_type: str
    collections: dict[str, _Collection] = Field(default_factory=dict)
    categories: dict[str, str] = Field(default_factory=dict)
    rules: list[_Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    field: str
    requires_input: bool
    patterns: tuple[re.Pattern[str], ...]
    all_of: tuple[re.Pattern[str], ...] = ()

    def matches(self, record: Record) -> bool:
        if self.requires_input and not record.input.strip():
            return False
        text = record.instruction if self.field == "instruction" else record.prompt
        return all(p.search(text) for p in self.all_of) and any(p.search(text) for p in self.patterns)


@dataclass(frozen=True)
class TaskType:
    """The type of one record and how it was found."""

    name: str
    found_by: str
    """``category:<value>``, ``id-prefix:<prefix>``, ``rule:<name>`` or ``default``."""


@dataclass(frozen=True)
class TaskTable:
    types: dict[str, tuple[int, ...]]
    descriptions: dict[str, str]
    default_type: str
    collections: dict[str, _Collection]
    categories: dict[str, str]
    rules: tuple[Rule, ...]
    name: str
    version: int | str
    path: str
    hash: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}#{self.hash}"

    def messages_for(self, task_type: str) -> tuple[int, ...]:
        return self.types[task_type]

    # ---- detection -------------------------------------------------------
    def detect(self, record: Record) -> TaskType:
        """The record's task type: category field, then id prefix, then the rules, then the default."""
        category = record.category
        if category is not None:
            key = normalise_key(category)
            if key in self.collections:
                return TaskType(self._collection_type(key, record), f"category:{category}")
            if key in self.categories:
                return TaskType(self.categories[key], f"category:{category}")
            if key in self.types:
                return TaskType(key, f"category:{category}")
        prefix = id_prefix(record.id)
        if prefix is not None and prefix in self.collections:
            return TaskType(self._collection_type(prefix, record), f"id-prefix:{prefix}")
        rule = self.first_rule(record)
        if rule is not None:
            return TaskType(rule.type, f"rule:{rule.name}")
        return TaskType(self.default_type, "default")

    def first_rule(self, record: Record, types: frozenset[str] | None = None) -> Rule | None:
        for rule in self.rules:
            if (types is None or rule.type in types) and rule.matches(record):
                return rule
        return None

    def _collection_type(self, key: str, record: Record) -> str:
        collection = self.collections[key]
        if collection.multiple_choice_type and self.looks_multiple_choice(record):
            return collection.multiple_choice_type
        return collection.type

    def looks_multiple_choice(self, record: Record) -> bool:
        """Whether a ``multiple_choice`` rule matches the record."""
        return self.first_rule(record, frozenset({MULTIPLE_CHOICE})) is not None


def normalise_key(value: str) -> str:
    """Category spellings compared case-insensitively, with spaces and dashes as underscores."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def id_prefix(record_id: str) -> str | None:
    if ID_PREFIX_SEPARATOR not in record_id:
        return None
    return record_id.split(ID_PREFIX_SEPARATOR, 1)[0].strip().lower() or None


def parse_task_table(raw: bytes, path: str, valid_messages: tuple[int, ...]) -> TaskTable:
    """Validate a task-types file against the numbers of the loaded system messages."""
    parsed = parse_prompt_file(raw, path, _TaskTypesFile, "a task-types file")

    known = set(valid_messages)
    types: dict[str, tuple[int, ...]] = {}
    for name, entry in parsed.types.items():
        unknown = sorted(set(entry.messages) - known)
        if unknown:
            raise PromptError(
                f"{path}: field 'types.{name}.messages': no system message #{unknown[0]} "
                f"(the system messages are numbered {min(known)}..{max(known)})"
            )
        types[name] = tuple(sorted(set(entry.messages)))

    def check_type(value: str, where: str) -> None:
        if value not in types:
            raise PromptError(f"{path}: field '{where}': unknown task type '{value}' (not under 'types')")

    check_type(parsed.default_type, "default_type")
    collections = {}
    for key, collection in parsed.collections.items():
        check_type(collection.type, f"collections.{key}.type")
        if collection.multiple_choice_type is not None:
            check_type(collection.multiple_choice_type, f"collections.{key}.multiple_choice_type")
        collections[normalise_key(key)] = collection
    categories = {}
    for key, value in parsed.categories.items():
        check_type(value, f"categories.{key}")
        categories[normalise_key(key)] = value
    rules = []
    seen: set[str] = set()
    for i, rule in enumerate(parsed.rules):
        check_type(rule.type, f"rules.{i}.type")
        if rule.name in seen:
            raise PromptError(f"{path}: field 'rules.{i}.name': rule '{rule.name}' is defined twice")
        seen.add(rule.name)
        compiled = {
            key: tuple(_compile(p, f"{path}: field 'rules.{i}.{key}.{j}' (rule '{rule.name}')") for j, p in enumerate(patterns))
            for key, patterns in (("patterns", rule.patterns), ("all_of", rule.all_of))
        }
        rules.append(Rule(rule.name, rule.type, rule.field, rule.requires_input, compiled["patterns"], compiled["all_of"]))
    if any(c.multiple_choice_type for c in collections.values()) and not any(r.type == MULTIPLE_CHOICE for r in rules):
        raise PromptError(
            f"{path}: a collection sets 'multiple_choice_type' but no rule has type '{MULTIPLE_CHOICE}' to detect it"
        )
    return TaskTable(
        types=types,
        descriptions={name: entry.description for name, entry in parsed.types.items()},
        default_type=parsed.default_type,
        collections=collections,
        categories=categories,
        rules=tuple(rules),
        name=parsed.name,
        version=parsed.version,
        path=path,
        hash=hashlib.sha256(raw).hexdigest()[:HASH_LENGTH],
    )


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, RULE_FLAGS)
    except re.error as exc:
        raise PromptError(f"{where}: bad regular expression: {exc}") from None


def load_task_table(valid_messages: tuple[int, ...], prompts_dir: str | Path | None = None) -> TaskTable:
    """The validated task-types table (``prompts_dir`` overrides the built-in file)."""
    path = template_path(METHOD, FILE_NAME, prompts_dir)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_task_table(raw, str(path), valid_messages)

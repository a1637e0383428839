"""Seed tasks: the Self-Instruct seed file as-is, or any instruction dataset itkit loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from itkit.dataset import RecordReader, RejectLog
from itkit.errors import InputError, Location
from itkit.formats.seed_tasks import META_INSTANCES, META_IS_CLASSIFICATION
from itkit.records import Record


@dataclass(frozen=True)
class Seed:
    """One seed task: its instruction and first instance (Alpaca-style demos show them)."""

    id: str
    instruction: str
    input: str = ""
    output: str = ""
    is_classification: bool | None = None
    instances: tuple[tuple[str, str], ...] = ()
    """Every (input, output) of the task (a seed-task file may hold several; other data: the record's own)."""

    @classmethod
    def from_record(cls, record: Record) -> "Seed":
        flag = record.metadata.get(META_IS_CLASSIFICATION)
        listed = record.metadata.get(META_INSTANCES)
        if isinstance(listed, list) and listed:
            instances = tuple((str(i.get("input", "")), str(i.get("output", ""))) for i in listed if isinstance(i, dict))
        else:
            instances = ((record.input, record.output),) if record.has_output and record.output.strip() else ()
        return cls(
            id=record.id,
            instruction=record.instruction.strip(),
            input=record.input,
            output=record.output,
            is_classification=flag if isinstance(flag, bool) else None,
            instances=instances,
        )


@dataclass
class SeedSet:
    seeds: list[Seed] = field(default_factory=list)
    format: str = ""
    skipped_empty: int = 0
    """Records without an instruction (they cannot be demos)."""

    @property
    def instructions(self) -> list[str]:
        return [s.instruction for s in self.seeds]


def load_seeds(source: str, fmt: str = "auto", on_error: str = "fail", rejects: RejectLog | None = None) -> SeedSet:
    """The seed tasks of ``source``; an empty instruction is skipped and counted; none at all is an error."""
    reader = RecordReader(source, fmt, on_error=on_error, rejects=rejects)  # type: ignore[arg-type]
    result = SeedSet()
    for record in reader:
        seed = Seed.from_record(record)
        if not seed.instruction:
            result.skipped_empty += 1
            continue
        result.seeds.append(seed)
    result.format = reader.format.name
    if not result.seeds:
        raise InputError("holds no seed task with an instruction; Self-Instruct needs at least one", Location(reader.name))
    return result

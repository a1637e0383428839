"""The final stage of Self-Instruct: the training pairs, as ``prepare_for_finetuning.py`` makes them.

The original (yizhongw/self-instruct) turns the kept instances into fine-tuning
data in three steps, each a part here (``--prepare``, all on by default):

- ``seeds``: the seed tasks' own instances are added after the generated ones
  (when there is at least one: a run that generated nothing writes nothing);
- ``strip-prefixes``: half of the time (a seeded draw per record), an input
  with a single field name ("Sentence: The cat sat.") loses that name, and its
  blank lines become single line breaks, so the model also learns inputs
  without labels;
- ``dedup``: exact duplicates of (instruction, input, output) are removed, the
  first copy kept.

The original also renders each pair through one of several random prompt
templates (only needed for GPT-3 completion training) and shuffles the file;
itkit writes the fields themselves and keeps the order.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Iterable

from itkit.errors import UsageError
from itkit.methods.self_instruct.seeds import Seed
from itkit.records import META_PROVENANCE, Record

SEEDS = "seeds"
STRIP_PREFIXES = "strip-prefixes"
DEDUP = "dedup"
PARTS: tuple[str, ...] = (SEEDS, STRIP_PREFIXES, DEDUP)
"""Every part, in the order they run."""
STRIP_SHARE = 0.5
"""The share of records whose single field name is stripped (the original's ``random.random() < 0.5``)."""
METHOD = "self-instruct"

_FIELD_NAME = re.compile(r"(\w+):")


def parse_parts(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"seeds,dedup"``, ``"all"`` (default) or ``"none"`` as the parts, in canonical order."""
    if spec is None:
        return PARTS
    items = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    if items in (["all"], []):
        return PARTS if items else ()
    if items == ["none"]:
        return ()
    unknown = [p for p in items if p not in PARTS]
    if unknown:
        raise UsageError(f"--prepare: unknown part '{unknown[0]}'; choose from {', '.join(PARTS)}, all or none")
    return tuple(p for p in PARTS if p in items)


def strip_field_name(text: str) -> str:
    """The original's rule: one distinct ``name:`` in the input -> the text after the first colon; blank lines -> one."""
    names = set(_FIELD_NAME.findall(text))
    out = text.split(":", 1)[1].strip() if len(names) == 1 else text.strip()
    return out.replace("\n\n", "\n")


def _draw(seed: int, record_id: str) -> float:
    digest = hashlib.sha256(f"prepare\x1f{seed}\x1f{record_id}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).random()


@dataclass
class PrepareCounts:
    parts: tuple[str, ...] = PARTS
    seed_instances_added: int = 0
    prefixes_stripped: int = 0
    duplicates_removed: int = 0
    removed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "parts": list(self.parts),
            "seed_instances_added": self.seed_instances_added,
            "prefixes_stripped": self.prefixes_stripped,
            "duplicates_removed": self.duplicates_removed,
        }


def seed_instance_records(seeds: Iterable[Seed], model: str) -> list[Record]:
    """One record per seed instance, ids ``<seed id>-<j>``, with a provenance step naming the seed."""
    out = []
    for seed in seeds:
        for j, (inp, output) in enumerate(seed.instances, 1):
            step = {"method": METHOD, "operation": "seed-instance", "parent_id": seed.id, "model": model}
            metadata = {META_PROVENANCE: [step], "is_classification": seed.is_classification}
            out.append(Record.single_turn(f"{seed.id}-{j}", seed.instruction, output, input=inp, metadata=metadata))
    return out


def prepare_for_finetuning(
    generated: list[Record], seeds: Iterable[Seed], parts: tuple[str, ...], seed: int, model: str
) -> tuple[list[Record], PrepareCounts]:
    """The training pairs: ``generated`` (then the seeds' instances), prefixes stripped, duplicates removed."""
    counts = PrepareCounts(parts=parts)
    records = list(generated)
    if SEEDS in parts and records:
        added = seed_instance_records(seeds, model)
        counts.seed_instances_added = len(added)
        records += added
    if STRIP_PREFIXES in parts:
        stripped = []
        for record in records:
            if record.input and _draw(seed, record.id) < STRIP_SHARE:
                new_input = strip_field_name(record.input)
                if new_input != record.input:
                    counts.prefixes_stripped += 1
                    metadata = {**record.metadata, "original_input": record.input}
                    record = record.model_copy(update={"input": new_input, "metadata": metadata})
            stripped.append(record)
        records = stripped
    if DEDUP in parts:
        seen: set[tuple[str, str, str]] = set()
        unique = []
        for record in records:
            key = (record.instruction.strip(), record.input.strip(), record.output.strip())
            if key in seen:
                counts.duplicates_removed += 1
                counts.removed_ids.append(record.id)
                continue
            seen.add(key)
            unique.append(record)
        records = unique
    return records, counts

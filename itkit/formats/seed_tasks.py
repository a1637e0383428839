"""Self-Instruct seed tasks: ``{id, name, instruction, instances: [{input, output}], is_classification}``.

The canonical record takes the first instance as its input/output; all
instances, the task name and the classification flag stay in metadata
(``instances``, ``task_name``, ``is_classification``) so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from itkit.errors import SchemaError
from itkit.formats.base import (
    Format,
    LoadContext,
    base_metadata,
    finish_row,
    id_for_dump,
    optional_str,
    record_id,
    require_list,
    require_single_turn,
    require_str,
    type_name,
)
from itkit.records import Record

NAME = "seed_tasks"
KNOWN = frozenset({"id", "name", "instruction", "instances", "is_classification"})
META_INSTANCES = "instances"
META_TASK_NAME = "task_name"
META_IS_CLASSIFICATION = "is_classification"


def matches(row: dict) -> bool:
    return "instruction" in row and "instances" in row


def _bool(value: Any, ctx: LoadContext) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):  # CSV cells
        return value.lower() == "true"
    raise SchemaError(f"must be true or false, got {type_name(value)}", ctx.location, "is_classification")


def load(row: dict, ctx: LoadContext) -> Record:
    instruction = require_str(row, "instruction", ctx)
    instances = require_list(row, "instances", ctx)
    if not instances:
        raise SchemaError("is empty; a seed task needs at least one instance", ctx.location, "instances")
    clean: list[dict[str, str]] = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise SchemaError(f"must be an object with input and output, got {type_name(inst)}", ctx.location, f"instances[{i}]")
        inp = inst.get("input", "")
        out = inst.get("output")
        if not isinstance(inp, str):
            raise SchemaError(f"must be a string, got {type_name(inp)}", ctx.location, f"instances[{i}].input")
        if not isinstance(out, str):
            raise SchemaError(
                "is missing" if out is None else f"must be a string, got {type_name(out)}",
                ctx.location,
                f"instances[{i}].output",
            )
        clean.append(inst)
    name = optional_str(row, "name", ctx)
    is_cls = _bool(row.get("is_classification"), ctx)
    rid, generated = record_id(row, "id", ctx)
    meta = base_metadata(NAME, row, KNOWN, generated)
    if name is not None:
        meta[META_TASK_NAME] = name
    if is_cls is not None:
        meta[META_IS_CLASSIFICATION] = is_cls
    if len(clean) > 1 or set(clean[0]) != {"input", "output"}:
        meta[META_INSTANCES] = clean
    first = clean[0]
    return Record.single_turn(rid, instruction, first["output"], input=first.get("input", ""), metadata=meta)


def dump(record: Record) -> dict:
    require_single_turn(record, NAME, allow_system=False)
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    name = record.metadata.get(META_TASK_NAME)
    if name is not None:
        out["name"] = name
    out["instruction"] = record.instruction
    instances = record.metadata.get(META_INSTANCES)
    if isinstance(instances, list) and instances:
        first = dict(instances[0])
        first["input"], first["output"] = record.input, record.output
        out["instances"] = [first, *instances[1:]]
    else:
        out["instances"] = [{"input": record.input, "output": record.output}]
    out["is_classification"] = bool(record.metadata.get(META_IS_CLASSIFICATION, False))
    return finish_row(out, record, NAME, (META_TASK_NAME, META_IS_CLASSIFICATION, META_INSTANCES))


FORMAT = Format(
    name=NAME,
    description="Self-Instruct seed tasks",
    matches=matches,
    load=load,
    dump=dump,
    keys="id, name, instruction, instances: [{input, output}], is_classification",
)

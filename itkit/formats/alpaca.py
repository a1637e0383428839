"""Alpaca: ``{instruction, input, output}``.

Variants: ``system``; ``history: [[prompt, response], ...]`` (LLaMA-Factory);
``response`` instead of ``output`` (GPTeacher). Empty-input markers such as
"<noinput>" are normalised to "". Other keys (``text``...) are kept as extra.
"""

from __future__ import annotations

from itkit.errors import SchemaError
from itkit.formats.base import (
    Format,
    LoadContext,
    Plain,
    base_metadata,
    finish_row,
    id_for_dump,
    layout_for,
    optional_str,
    present,
    record_id,
    require_no_tools,
    require_str,
    type_name,
)
from itkit.records import Record

NAME = "alpaca"
EMPTY_INPUT_MARKERS = frozenset({"<noinput>", "no input", "<no input>", "noinput", "<no_input>"})
KNOWN = frozenset({"id", "instruction", "input", "output", "response", "system", "history"})
OPTIONAL = ("id", "input", "system", "history")


def matches(row: dict) -> bool:
    return (
        "instruction" in row
        and ("output" in row or "response" in row)
        and "context" not in row
        and "instances" not in row
    )


def normalise_input(value: str) -> str:
    return "" if value.strip().lower() in EMPTY_INPUT_MARKERS else value


def _history(row: dict, ctx: LoadContext) -> list[tuple[str, str]]:
    value = row.get("history")
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaError(f"must be an array of [prompt, response] pairs, got {type_name(value)}", ctx.location, "history")
    pairs = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise SchemaError("must be a [prompt, response] pair of strings", ctx.location, f"history[{i}]")
        pairs.append((pair[0], pair[1]))
    return pairs


def load(row: dict, ctx: LoadContext) -> Record:
    instruction = require_str(row, "instruction", ctx)
    output_key = "response" if "response" in row and "output" not in row else "output"
    output = require_str(row, output_key, ctx)
    raw_input = optional_str(row, "input", ctx)
    system = optional_str(row, "system", ctx)
    history = _history(row, ctx)
    rid, generated = record_id(row, "id", ctx)
    layout = {"present": present(row, OPTIONAL)}
    if output_key != "output":
        layout["output_key"] = output_key
    # a row with both output and response keeps its response as an extra field
    known = KNOWN if output_key == "response" else KNOWN - {"response"}
    meta = base_metadata(NAME, row, known, generated, layout)
    return Record.single_turn(
        rid,
        instruction,
        output,
        input=normalise_input(raw_input) if raw_input else "",
        system=system,
        history=history,
        metadata=meta,
    )


def dump(record: Record) -> dict:
    require_no_tools(record, NAME)
    layout = layout_for(record, NAME)
    keep = set(layout.get("present", ("input",)))
    out: dict = {}
    rid = id_for_dump(record)
    if rid is not None:
        out["id"] = rid
    if record.system is not None:
        out["system"] = record.system
    out["instruction"] = record.instruction
    if record.input or "input" in keep:
        out["input"] = record.input
    out[layout.get("output_key", "output")] = record.output
    history = record.history
    if history or "history" in keep:
        out["history"] = [[p, r] for p, r in history]
    return finish_row(out, record, NAME)


PLAIN_KEYS = frozenset({"id", "system", "instruction", "input", "output"})


def plain(row: dict, default_id: str) -> Plain | None:
    """The row's :class:`Plain` view when it holds only text in :data:`PLAIN_KEYS` (instruction and output
    present, no empty-input marker), else None. ``dumped`` is what :func:`dump` writes for it."""
    if not row.keys() <= PLAIN_KEYS:
        return None
    instruction, output = row.get("instruction"), row.get("output")
    if type(instruction) is not str or type(output) is not str:
        return None
    dumped: dict = {}
    rid = row.get("id", default_id)
    if type(rid) is not str:
        return None
    dumped["id"] = rid
    system = row.get("system")
    if system is not None:
        if type(system) is not str:
            return None
        dumped["system"] = system
    elif "system" in row:
        return None
    dumped["instruction"] = instruction
    raw_input = row.get("input")
    if raw_input is None:
        if "input" in row:
            return None
        raw_input = ""
    else:
        if type(raw_input) is not str or (raw_input and normalise_input(raw_input) != raw_input):
            return None
        dumped["input"] = raw_input
    dumped["output"] = output
    return Plain(FORMAT, row, default_id, rid, system, instruction, raw_input, output, dumped)


FORMAT = Format(
    name=NAME,
    description="Alpaca instruction data",
    matches=matches,
    load=load,
    dump=dump,
    keys="instruction, input, output (or response), optional system, history",
    plain=plain,
)

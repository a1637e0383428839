"""What every format module provides, and the field checks they share.

A format is a name plus three functions over plain dict rows:

- ``matches(row) -> bool``: does this row look like the format (key checks only);
- ``load(row, ctx) -> Record``: validate and convert, raising :class:`SchemaError`
  that names the field;
- ``dump(record) -> dict``: the row in this format, restoring the source's exact
  layout when the record was loaded from this same format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from itkit.errors import ConversionError, Location, SchemaError
from itkit.records import (
    META_CATEGORY,
    META_EXTRA,
    META_LAYOUT,
    META_SOURCE_FORMAT,
    Record,
    join_input,
)

META_ID_GENERATED = "id_generated"
METADATA_KEY = "metadata"
"""The row key that carries itkit metadata (provenance, category, ...) through files between steps."""
INTERNAL_METADATA = frozenset({META_SOURCE_FORMAT, META_LAYOUT, META_EXTRA, META_ID_GENERATED})
"""Metadata that only serves loading and dumping; never written as ``metadata``."""


@dataclass(frozen=True)
class LoadContext:
    """Where a row came from, and the id to give it when it has none."""

    location: Location
    default_id: str


class Plain:
    """A row read without building its :class:`Record`: one exchange of plain text fields (a fast path).

    A format's ``plain(row, default_id)`` gives one for the rows it can read this way (else None, and the
    row is loaded as usual). Its fields are those of the record ``load(row, ctx)`` would build (``ctx``
    with that default id), ``dumped`` is the row ``dump`` would write back in the same format, and
    :meth:`record` builds the record itself; ``tests/test_fast_rows.py`` checks all three against the slow
    path. The reader that made it sets ``location`` (where the row was read), or leaves it None.
    """

    __slots__ = ("format", "row", "default_id", "id", "system", "instruction", "input", "output", "dumped", "location")

    def __init__(self, fmt: "Format", row: dict, default_id: str, id: str, system: str | None, instruction: str,
                 input: str, output: str, dumped: dict):
        self.format = fmt
        self.row = row
        self.default_id = default_id
        self.id = id
        self.system = system
        self.instruction = instruction
        self.input = input
        self.output = output
        self.dumped = dumped
        self.location: Location | None = None

    @property
    def prompt(self) -> str:
        """The user turn with its input joined (the record's ``prompt`` and its only user text)."""
        return join_input(self.instruction, self.input)

    @property
    def response(self) -> str:
        """The assistant turn (the record's only assistant text)."""
        return self.output

    def record(self) -> Record:
        location = self.location if self.location is not None else Location(self.format.name)
        return self.format.load(self.row, LoadContext(location, self.default_id))


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    matches: Callable[[dict], bool]
    load: Callable[[dict, LoadContext], Record]
    dump: Callable[[Record], dict]
    # one-line description of the keys, for error messages and --help
    keys: str
    plain: Callable[[dict, str], Plain | None] | None = None
    """The row's :class:`Plain` view when it has one (None: load it); None when the format has no fast path.
    Only for rows whose values are all strings: :meth:`~itkit.dataset.RecordReader.fast` rules out a duplicate
    key by counting 4 quotes per key."""


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )


def require_str(row: dict, key: str, ctx: LoadContext, field: str | None = None) -> str:
    if key not in row or row[key] is None:
        raise SchemaError("is missing", ctx.location, field or key)
    value = row[key]
    if not isinstance(value, str):
        raise SchemaError(f"must be a string, got {type_name(value)}", ctx.location, field or key)
    return value


def optional_str(row: dict, key: str, ctx: LoadContext, field: str | None = None) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SchemaError(f"must be a string, got {type_name(value)}", ctx.location, field or key)
    return value


def require_list(row: dict, key: str, ctx: LoadContext) -> list:
    if key not in row or row[key] is None:
        raise SchemaError("is missing", ctx.location, key)
    value = row[key]
    if not isinstance(value, list):
        raise SchemaError(f"must be an array, got {type_name(value)}", ctx.location, key)
    return value


def record_id(row: dict, key: str, ctx: LoadContext) -> tuple[str, bool]:
    """The row's id as a string, or the default id; the flag says whether it was generated."""
    value = row.get(key)
    if value is None:
        return ctx.default_id, True
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SchemaError(f"must be a string or an integer, got {type_name(value)}", ctx.location, key)
    return str(value), False


def base_metadata(
    fmt: str,
    row: dict,
    known: frozenset[str],
    id_generated: bool,
    layout: dict[str, Any] | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    saved = row.get(METADATA_KEY)
    if isinstance(saved, dict):  # written by an earlier itkit step
        meta.update({k: v for k, v in saved.items() if k not in INTERNAL_METADATA})
        known = known | {METADATA_KEY}
    meta[META_SOURCE_FORMAT] = fmt
    if category:
        meta[META_CATEGORY] = category
    if id_generated:
        meta[META_ID_GENERATED] = True
    extra = {k: v for k, v in row.items() if k not in known}
    if extra:
        meta[META_EXTRA] = extra
    if layout:
        meta[META_LAYOUT] = {"format": fmt, **layout}
    return meta


def layout_for(record: Record, fmt: str) -> dict[str, Any]:
    """The layout hints of ``record`` if it was loaded from ``fmt``, else {}."""
    layout = record.metadata.get(META_LAYOUT)
    if isinstance(layout, dict) and layout.get("format") == fmt:
        return layout
    return {}


def extra_for(record: Record, fmt: str) -> dict[str, Any]:
    """Unknown source fields to restore, only when dumping back to the source format."""
    if record.metadata.get(META_SOURCE_FORMAT) != fmt:
        return {}
    extra = record.metadata.get(META_EXTRA)
    return dict(extra) if isinstance(extra, dict) else {}


def finish_row(out: dict, record: Record, fmt: str, native: tuple[str, ...] = ()) -> dict:
    """Add the unknown source fields (same format only) and the itkit metadata to a dumped row.

    ``native`` names metadata keys the format holds in its own fields (Dolly's category...).
    """
    out.update(extra_for(record, fmt))
    saved = {
        k: v for k, v in record.metadata.items() if k not in INTERNAL_METADATA and k not in native
    }
    if saved:
        out[METADATA_KEY] = saved
    return out


TURN_LIST_KEYS = {"sharegpt": "conversations", "messages": "messages"}
"""How a format names its list of turns, for naming a per-turn field (``conversations[].weight``)."""


WEIGHTED_FORMATS = frozenset({"sharegpt", "messages"})
"""The formats that hold a turn's training ``weight``."""


def has_weights(record: Record) -> bool:
    return any(turn.weight is not None for turn in record.turns)


def dropped_fields(record: Record, fmt: str) -> list[str]:
    """The fields of the source record that a dump to ``fmt`` leaves out (only another format can lose any).

    Unknown top-level fields (``metadata.extra``) and unknown per-turn fields
    (the layout's ``turn_extra``) are given back only to the format they came
    from; turn weights only to a format that holds them (:data:`WEIGHTED_FORMATS`).
    """
    source = record.metadata.get(META_SOURCE_FORMAT)
    if source == fmt:
        return []
    lost: list[str] = []
    if fmt not in WEIGHTED_FORMATS and has_weights(record):
        lost.append(f"{TURN_LIST_KEYS.get(str(source), 'turns')}[].weight")
    if source is None:
        return lost
    extra = record.metadata.get(META_EXTRA)
    if isinstance(extra, dict):
        lost.extend(extra)
    layout = record.metadata.get(META_LAYOUT)
    if isinstance(layout, dict):
        per_turn = layout.get("turn_extra")
        if isinstance(per_turn, dict):
            turns = TURN_LIST_KEYS.get(str(source), "turns")
            keys = {key for fields in per_turn.values() if isinstance(fields, dict) for key in fields}
            lost.extend(f"{turns}[].{key}" for key in sorted(keys))
    return lost


def id_for_dump(record: Record) -> str | None:
    """The id to write: always, also one itkit made up at load time (``<first file name>-<row>``), so that
    every later command and pipe keeps it and a record can be traced back to its source row."""
    return record.id


def require_no_tools(record: Record, fmt: str) -> None:
    """Refuse to drop data: a format without tool calls cannot hold a record that uses them."""
    if record.uses_tools:
        raise ConversionError(
            f"uses tools (tool calls, results or schemas), which {fmt} cannot hold: write messages or sharegpt instead",
            None,
            "turns",
        )


def require_single_turn(record: Record, fmt: str, allow_system: bool) -> None:
    """Refuse to drop data: a format without history (or system, or tool calls) cannot hold such a record."""
    require_no_tools(record, fmt)
    if record.is_multi_turn:
        raise ConversionError(
            f"has {record.num_exchanges} exchanges; {fmt} holds one: write alpaca, sharegpt or messages instead",
            None,
            "turns",
        )
    if not allow_system and record.system:
        raise ConversionError(
            f"has a system prompt, which {fmt} cannot hold: write alpaca, sharegpt, messages or openorca instead",
            None,
            "system",
        )


def present(row: dict, keys: tuple[str, ...]) -> list[str]:
    """Which optional keys a row had, so a same-format dump can give them back."""
    return [k for k in keys if k in row]

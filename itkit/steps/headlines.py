"""Each step's own headline figures for the run table, and a warning when a step produced nothing of
what it exists for ("0 of 54 evolutions survived").

A headline is an ordered ``{label: number}`` dict: the figures that say what the step did beyond
records in and out (simplify: shortened / came out longer; evol-instruct: evolutions tried /
survived). Removals by rule or stage are the outcome's ``removed``; they are not repeated here.
"""

from __future__ import annotations

from typing import Any

Headline = dict[str, int]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def filter_headline(rows: int, written: int) -> tuple[Headline, list[str]]:
    warnings = [f"every record was removed ({rows} of {rows}): nothing is left to train on"] if rows and not written else []
    return {}, warnings


def simplify_headline(result: Any) -> tuple[Headline, list[str]]:
    headline = {"shortened": result.simplified, "came out longer": result.longer_kept}
    if result.no_response:
        headline["no response"] = result.no_response
    warnings: list[str] = []
    tried = result.simplified + result.longer_kept + result.failed
    if tried and not result.simplified:
        warnings.append(
            f"0 of {_plural(tried, 'response')} came out shorter "
            f"({result.longer_kept} longer, {result.failed} failed): check the model and the prompt"
        )
    return headline, warnings


def score_headline(result: Any) -> tuple[Headline, list[str]]:
    """From a ``ScoreResult``."""
    headline = {"scored": result.scored}
    if result.unscored:
        headline["nothing to score"] = result.unscored
    warnings: list[str] = []
    if result.read and not result.scored:
        warnings.append(f"0 of {_plural(result.read, 'record')} were scored ({result.failed} failed): check the model and the scorers")
    return headline, warnings


def evol_headline(counts: dict[str, Any]) -> tuple[Headline, list[str]]:
    """From ``EvolResult.counts()``."""
    attempts = counts.get("evolutions") or {}
    records = counts.get("records") or {}
    tried = int(attempts.get("attempted") or 0)
    survived = int(attempts.get("survived") or 0)
    headline = {
        "evolutions tried": tried,
        "survived": survived,
        "eliminated": int(attempts.get("eliminated") or 0),
    }
    if attempts.get("failed"):
        headline["failed"] = int(attempts["failed"])
    headline["records evolved"] = int(records.get("evolved") or 0)
    warnings: list[str] = []
    if tried and not survived:
        by_rule = counts.get("eliminated_by_rule") or {}
        top = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items(), key=lambda kv: -kv[1]) if n)
        why = f" (eliminated: {top})" if top else ""
        warnings.append(f"0 of {_plural(tried, 'evolution')} survived{why}: the output is the input unchanged")
    return headline, warnings


def orca_headline(result: Any) -> tuple[Headline, list[str]]:
    rewritten = result.written
    headline = {"responses rewritten": rewritten}
    warnings = [f"0 of {_plural(result.read, 'record')} got an explanation trace"] if result.read and not rewritten else []
    return headline, warnings


def self_instruct_headline(result: Any) -> tuple[Headline, list[str]]:
    counts = result.counts or {}
    headline = {
        "prompts": int(counts.get("prompts") or 0),
        "candidates": int(counts.get("candidates") or 0),
        "kept": result.kept,
        "wanted": result.requested,
    }
    warnings = []
    if result.requested and not result.kept:
        warnings.append(f"0 of the {result.requested} new instructions wanted were kept")
    return headline, warnings


def export_headline(outputs: dict[str, int]) -> tuple[Headline, list[str]]:
    empty = [mode for mode, n in outputs.items() if not n]
    warnings = [f"mode {mode} exported no records" for mode in empty]
    return {}, warnings


__all__ = [
    "Headline",
    "evol_headline",
    "export_headline",
    "filter_headline",
    "orca_headline",
    "score_headline",
    "self_instruct_headline",
    "simplify_headline",
]

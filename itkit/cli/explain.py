"""``itkit dedup --explain N``: one removal (or a pair) side by side, shared shingles highlighted, with its scores."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from itkit.dedup.explain import COMMON, SHARED, Explanation, Note, Side

STYLES = {SHARED: "bold green", COMMON: "dim"}
MAX_SHOWN_CHARS = 4000
"""Characters of each text shown in the table (the rest is counted)."""
MAX_LISTED_SHINGLES = 8
"""Shingles listed per side in the "only in" lines."""


def _text(side: Side) -> Text:
    out = Text()
    left = MAX_SHOWN_CHARS
    for piece in side.pieces:
        if left <= 0:
            break
        out.append(piece.text[:left], style=STYLES.get(piece.kind, ""))
        left -= len(piece.text)
    if len(side.text) > MAX_SHOWN_CHARS:
        out.append(f"\u2026 ({len(side.text) - MAX_SHOWN_CHARS:,} more characters)", style="italic")
    return out


def _shingle_list(shingles: set[tuple[str, ...]]) -> str:
    listed = sorted(shingles)[:MAX_LISTED_SHINGLES]
    more = len(shingles) - len(listed)
    return ", ".join(f'"{" ".join(s)}"' for s in listed) + (f" and {more:,} more" if more else "") if listed else "none"


def _headline(e: Explanation) -> str:
    if e.removal is not None:
        return (f"record {e.a.row} (id {e.a.id}) was removed by the {e.removal.stage} stage as a duplicate of "
                f"record {e.b.row} (id {e.b.id})")
    return f"record {e.a.row} (id {e.a.id}): {e.a.fate}; record {e.b.row} (id {e.b.id}): {e.b.fate}"


def score_lines(e: Explanation) -> list[tuple[str, str]]:
    """(label, line) rows under the table: what each stage sees in this pair."""
    o = e.options
    shared, union = len(e.shared), len(e.a.shingles | e.b.shingles)
    not_run = lambda stage: "" if stage in o.stages else " (stage not run)"  # noqa: E731
    rows = [("exact", ("equal" if e.exact else "different") + " after NFKC, case folding and whitespace" + not_run("exact"))]
    near = o.near if o.near is not None else None
    rows.append((
        "near",
        f"true Jaccard {e.jaccard:.3f} ({shared} of {union} word {o.ngram}-gram shingles shared), MinHash estimate "
        f"{e.estimate:.3f}" + (f"; threshold {near}" if near is not None else " (stage not run)"),
    ))
    rows.append(("rouge", f"ROUGE-L F1 {e.rouge:.3f}" + (f"; threshold {o.rouge}" if o.rouge is not None else " (stage not run)")))
    if e.numbers_a == e.numbers_b:
        numbers = "the same" + (f": {' '.join(e.numbers_a)}" if e.numbers_a else " (none)")
    else:
        numbers = f"different: {' '.join(e.numbers_a) or 'none'} vs {' '.join(e.numbers_b) or 'none'}"
        if o.numbers == "significant":
            numbers += " (--numbers significant: never near or rouge duplicates)"
    rows.append(("numbers", numbers))
    rows.append((f"only in {e.a.row}", _shingle_list(e.a.shingles - e.b.shingles)))
    rows.append((f"only in {e.b.row}", _shingle_list(e.b.shingles - e.a.shingles)))
    for line in e.boilerplate.describe():
        rows.append(("left out", line))
    return rows


def print_explanation(found: Explanation | Note, console: Console) -> None:
    if isinstance(found, Note):
        console.print(found.message, markup=False, soft_wrap=False)
        return
    e = found
    console.print(_headline(e), markup=False, soft_wrap=False)
    table = Table(expand=True, show_lines=False)
    for side, role in ((e.a, "removed: "), (e.b, "kept: ")):
        role = role if e.removal is not None else ""
        table.add_column(Text(f"{role}record {side.row}, id {side.id}"), ratio=1, overflow="fold")
    table.add_row(_text(e.a), _text(e.b))
    console.print(table)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, line in score_lines(e):
        grid.add_row(label, Text(line))
    console.print(grid)
    console.print(Text("green: in a shingle both texts share; dim: left out of the comparison", style="italic"),
                  soft_wrap=False)


def as_dict(found: Explanation | Note) -> dict[str, Any]:
    """The ``--json`` form."""
    if isinstance(found, Note):
        return {"note": found.message}
    e = found

    def side(s: Side) -> dict[str, Any]:
        return {"index": s.row, "id": s.id, "fate": s.fate, "text": s.text,
                "only": sorted(" ".join(x) for x in s.shingles - (e.b.shingles if s is e.a else e.a.shingles))}

    return {
        "removed" if e.removal is not None else "a": side(e.a),
        "kept" if e.removal is not None else "b": side(e.b),
        "stage": e.removal.stage if e.removal is not None else None,
        "score": e.removal.score if e.removal is not None else None,
        "exact": e.exact,
        "jaccard": e.jaccard,
        "estimate": e.estimate,
        "rouge": e.rouge,
        "shared_shingles": len(e.shared),
        "numbers": [e.numbers_a, e.numbers_b],
        "boilerplate": e.boilerplate.describe(),
    }

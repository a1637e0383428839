"""Small HTML building blocks: escaping, numbers, record cards, highlighted segments, searchable tables."""

from __future__ import annotations

from html import escape
from itertools import count
from typing import Any, Iterable, Sequence

_ids = count(1)


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def num(value: Any, digits: int = 0) -> str:
    if value is None or isinstance(value, bool):
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return e(value)


def cost(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def share(part: Any, whole: Any) -> str:
    if not isinstance(part, (int, float)) or not isinstance(whole, (int, float)) or not whole:
        return ""
    return f"{part / whole:.0%}"


def segments(segs: Sequence[Sequence[str]], *, mark: str | None = None) -> str:
    """Diff segments as HTML: ``same`` plain (or in ``mark`` tags), ``del`` in <del>, ``ins`` in <ins>."""
    out = []
    for kind, text in segs:
        if kind == "same":
            out.append(f"<{mark}>{e(text)}</{mark}>" if mark and text.strip() else e(text))
        elif kind == "del":
            out.append(e(text) if mark else f"<del>{e(text)}</del>")
        else:
            out.append(e(text) if mark else f"<ins>{e(text)}</ins>")
    return "".join(out)


def record_card(view: dict[str, Any], *, why: str = "", label: str = "") -> str:
    """A record: its id (and row), why it is shown, then its system prompt and turns."""
    if not view:
        return '<div class="rec empty">record not found in the files of this run</div>'
    parts = [f'<div class="rec"><div class="id">{e(label or view.get("id"))}'
             + (f' · {e(view["source"])}' if view.get("source") else "")
             + (f' · {e(view["category"])}' if view.get("category") else "") + "</div>"]
    if why:
        parts.append(f'<div class="why">{e(why)}</div>')
    if view.get("system"):
        parts.append(f'<div class="turn"><span class="role">system</span>{e(view["system"])}</div>')
    for turn in view.get("turns") or []:
        content = turn["content"] if turn["content"] else "(empty)"
        parts.append(f'<div class="turn"><span class="role">{e(turn["role"])}</span>{e(content)}</div>')
        if turn.get("input"):
            parts.append(f'<div class="turn"><span class="role">input</span>{e(turn["input"])}</div>')
    if view.get("raw"):
        parts.append(f'<div class="turn"><code>{e(view["raw"])}</code></div>')
    parts.append("</div>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (), total: int | None = None,
          search: bool = False, scroll: bool = False, what: str = "rows") -> str:
    """A table; ``search`` adds a filter box (and sorting), ``total`` says when the rows are a sample."""
    rows = list(rows)
    if not rows:
        return ""
    tid = f"t{next(_ids)}"
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in numeric:
                cells.append(f'<td class="n" data-v="{e(value if value is not None else "")}">{num(value)}</td>')
            else:
                cells.append(f"<td>{e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    html = f'<table id="{tid}" class="{"sortable" if search else ""}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    if scroll or len(rows) > 15:
        html = f'<div class="scroll">{html}</div>'
    if search:
        sample = f" (a sample of {len(rows):,} of {total:,} {what})" if total is not None and total > len(rows) else ""
        html = (f'<div class="search"><input type="search" placeholder="Search {e(what)}…" data-filter="{tid}" '
                f'aria-label="search {e(what)}"><span class="count">{len(rows):,} {e(what)}{e(sample)}</span></div>' + html)
    return html


def kv_table(items: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in items.items() if v is not None and not isinstance(v, (dict, list))]
    return table(["", "value"], rows, numeric=()) if rows else ""


def details(summary: str, body: str, *, open_: bool = False) -> str:
    return f'<details{" open" if open_ else ""}><summary>{summary}</summary><div class="body">{body}</div></details>'


def legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:var(--{c})"></i>{e(t)}</span>' for t, c in items) + "</div>"

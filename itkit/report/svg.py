"""Inline SVG charts: horizontal bars, the funnel and histograms. Colours come from CSS classes (so print works)."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

ROW = 26
"""Height of one bar row (pixels of the viewBox)."""
LABEL_W = 190
VALUE_W = 90


def _num(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    return f"{int(value):,}"


def _svg(width: int, height: int, body: str, label: str, cls: str = "chart") -> str:
    return (f'<svg class="{cls}" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" aria-label="{escape(label)}" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hbars(items: Sequence[tuple[str, float]], *, label: str, cls: str = "bar", width: int = 640,
          total: float | None = None) -> str:
    """One horizontal bar per item, longest first as given; ``total`` adds a share to each value."""
    if not items:
        return ""
    peak = max((v for _, v in items), default=0) or 1
    span = width - LABEL_W - VALUE_W
    parts = []
    for i, (name, value) in enumerate(items):
        y = i * ROW
        w = max(1.5, span * value / peak) if value else 0
        share = f" ({value / total:.0%})" if total else ""
        parts.append(
            f'<g class="row"><title>{escape(str(name))}: {_num(value)}{share}</title>'
            f'<text class="lbl" x="{LABEL_W - 8}" y="{y + ROW * 0.62:.1f}" text-anchor="end">{escape(_short(str(name)))}</text>'
            f'<rect class="{cls}" x="{LABEL_W}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" rx="3"/>'
            f'<text class="val" x="{LABEL_W + w + 6:.1f}" y="{y + ROW * 0.62:.1f}">{_num(value)}{share}</text></g>'
        )
    return _svg(width, ROW * len(items) + 4, "".join(parts), label)


def funnel(rows: list[dict[str, Any]], *, width: int = 960) -> str:
    """Records kept (and removed, failed) at each step; an export shows one bar per set."""
    bars: list[tuple[str, int, int, int, str]] = []
    for row in rows:
        if row["outputs"] and row["type"] == "export":
            for mode, n in row["outputs"].items():
                bars.append((f'{row["step"]} · {mode}', n, 0, 0, "set"))
            continue
        if row["records_out"] is None and row["records_in"] is None:
            continue
        out = row["records_out"] if row["records_out"] is not None else row["records_in"]
        bars.append((row["step"], out or 0, sum(row["removed"].values()), row["failed"] + row["rejected"], "kept"))
    if not bars:
        return ""
    peak = max(k + r + f for _, k, r, f, _ in bars) or 1
    label_w, value_w, h = 170, 230, 34
    span = width - label_w - value_w
    parts = []
    for i, (name, kept, removed, failed, cls) in enumerate(bars):
        y = i * h
        x = label_w
        segs = []
        for value, c in ((kept, cls), (removed, "removed"), (failed, "failed")):
            if not value:
                continue
            w = max(2.0, span * value / peak)
            segs.append(f'<rect class="{c}" x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{h - 10}" rx="3"/>')
            x += w
        text = f"{kept:,}"
        if removed:
            text += f"  −{removed:,} removed"
        if failed:
            text += f"  −{failed:,} failed"
        tip = f"{name}: {kept:,} records" + (f", {removed:,} removed" if removed else "") + (f", {failed:,} failed/rejected" if failed else "")
        parts.append(
            f'<g class="row" data-step="{escape(name)}" data-records="{kept}"><title>{escape(tip)}</title>'
            f'<text class="lbl" x="{label_w - 10}" y="{y + h * 0.6:.1f}" text-anchor="end">{escape(name)}</text>'
            f'{"".join(segs)}<text class="val" x="{x + 8:.1f}" y="{y + h * 0.6:.1f}">{escape(text)}</text></g>'
        )
    return _svg(width, h * len(bars) + 4, "".join(parts), "funnel: records at each step", "chart funnel")


def histogram(hist: dict[str, Any] | None, *, label: str, x_label: str, classes: dict[str, str] | None = None,
              shares: bool = False, width: int = 640, height: int = 220) -> str:
    """Vertical bars per bin, one bar per series side by side (``shares``: each series as % of its total)."""
    if not hist or not hist.get("edges"):
        return ""
    edges, series, totals = hist["edges"], hist["series"], hist.get("totals", {})
    names = [n for n in series if totals.get(n, sum(series[n]))]
    if not names:
        return ""
    classes = classes or {}
    values = {n: [c / (totals.get(n) or 1) if shares else c for c in series[n]] for n in names}
    peak = max(max(v) for v in values.values()) or 1
    left, right, top, bottom = 46, 22, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    bins = len(edges) - 1
    slot = plot_w / bins
    bar_w = max(1.0, (slot - 2) / len(names))
    parts = []
    for frac in ((0.5, 1.0) if shares or peak >= 2 else (1.0,)):
        y = top + plot_h * (1 - frac)
        tick = f"{peak * frac:.0%}" if shares else _num(peak * frac if peak * frac >= 10 else round(peak * frac, 1))
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    for s, name in enumerate(names):
        cls = classes.get(name, f"s{s}")
        for i, v in enumerate(values[name]):
            if not v:
                continue
            bh = max(1.0, plot_h * v / peak)
            x = left + i * slot + 1 + s * bar_w
            count = series[name][i]
            tip = f"{name}: {count:,} in [{_num(edges[i])}, {_num(edges[i + 1])})" + (f" ({v:.0%})" if shares else "")
            parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{top + plot_h - bh:.1f}" width="{bar_w:.1f}" height="{bh:.1f}">'
                         f'<title>{escape(tip)}</title></rect>')
    step = max(1, round(bins / 6))
    for i in range(0, bins + 1, step):
        x = left + i * slot
        parts.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 15}" text-anchor="middle">{_num(edges[i])}</text>')
    parts.append(f'<text class="axis-label" x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    legend = ""
    if len(names) > 1:
        legend = "".join(
            f'<rect class="{classes.get(n, f"s{s}")}" x="{width - right - 110 * (len(names) - s)}" y="0" width="10" height="10"/>'
            f'<text class="tick" x="{width - right - 110 * (len(names) - s) + 14}" y="9">{escape(n)} ({totals.get(n, 0):,})</text>'
            for s, n in enumerate(names)
        )
        top_pad = 14
        body = f'<g transform="translate(0,{top_pad})">{"".join(parts)}</g>{legend}'
        return _svg(width, height + top_pad, body, label, "chart hist")
    return _svg(width, height, "".join(parts), label, "chart hist")

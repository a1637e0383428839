"""The page: one self-contained HTML file (inline CSS, JavaScript and SVG; no external URL) from the report's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from itkit.report import svg
from itkit.report.html import cost, details, e, num, share, table
from itkit.report.render_steps import dedup_html, evol_html, filter_html, orca_html, score_html, self_instruct_html, simplify_html

ASSETS = Path(__file__).parent / "assets"
GENERATOR = '<meta name="generator" content="itkit report">'
"""In the first bytes of every report: how ``itkit report`` knows a file it may replace."""

RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any], str], str]]] = {
    "filter": ("Removals", filter_html),
    "dedup": ("Removals", dedup_html),
    "simplify": ("Rewrites", simplify_html),
    "evol-instruct": ("Rewrites", evol_html),
    "orca": ("Rewrites", orca_html),
    "self-instruct": ("Rewrites", self_instruct_html),
    "score": ("Scores", score_html),
}


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _kpis(data: dict[str, Any]) -> str:
    t = data["totals"]
    cards = [("records in", num(t["records_in"]), "")]
    cards.append(("removed", num(t["removed"]), f'{share(t["removed"], t["records_in"])} of the input' if t["records_in"] else ""))
    for mode, n in t["outputs"].items():
        cards.append((f"{mode.upper()} set", num(n), "records to train on"))
    if not t["outputs"] and t["records_out"] is not None:
        cards.append(("records out", num(t["records_out"]), ""))
    if t["failed"] or t["rejected"]:
        cards.append(("failed / rejected", f'{num(t["failed"])} / {num(t["rejected"])}', "in failures / rejected files"))
    if t["llm_steps"]:
        cards.append(("LLM requests", num(t["requests"]), f'{num(t["cache_hits"])} from the cache' if t["cache_hits"] else ""))
        cards.append(("tokens", num(t["tokens"]), f'cost {cost(t["cost_usd"])}' if t["cost_usd"] is not None else "cost unknown (no price set)"))
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><div class="k">{e(k)}</div><div class="v">{v}</div><div class="s">{e(s)}</div></div>' for k, v, s in cards
    ) + "</div>"


def _funnel(data: dict[str, Any]) -> str:
    rows = data["funnel"]
    anchors = {s["step"] for s in data["sections"]}
    out = ['<section class="card" id="funnel"><h2>Funnel</h2><p class="note">Records kept at every step; '
           'removed (with the reason) and failed records in colour.</p>']
    out.append('<div class="legend"><span><i style="background:var(--kept)"></i>kept</span>'
               '<span><i style="background:var(--removed)"></i>removed</span><span><i style="background:var(--failed)"></i>failed or rejected</span>'
               '<span><i style="background:var(--set)"></i>exported set</span></div>')
    out.append(svg.funnel(rows))
    body = []
    for r in rows:
        removed = sum(r["removed"].values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r["removed"].items(), key=lambda kv: -kv[1]))
        if r["outputs"] and r["type"] != "export":  # sources: records per source
            reasons = ", ".join(f"{k} {v:,}" for k, v in r["outputs"].items())
        out_cell = ", ".join(f"{m} {n:,}" for m, n in r["outputs"].items()) if r["outputs"] and r["type"] == "export" else num(r["records_out"])
        name = f'<a href="#s-{e(r["step"])}">{e(r["step"])}</a>' if r["step"] in anchors else e(r["step"])
        fails = num(r["failed"]) if r["failed"] else ""
        if r["failure_reasons"]:
            failed = "failed: " + ", ".join(f"{k} {v:,}" for k, v in r["failure_reasons"].items())
            reasons = f"{reasons}; {failed}" if reasons else failed
        llm = r["llm"]
        tokens = r["tokens"]["prompt"] + r["tokens"]["completion"]
        earlier = ' <span class="badge" title="reused from an earlier run; figures from then">earlier</span>' if r.get("spent_earlier") else ""
        body.append(
            f'<tr><td>{name}</td><td>{e(r["status"])}</td>'
            f'<td class="n">{num(r["records_in"])}</td><td class="n">{out_cell}</td>'
            f'<td class="n">{num(removed) if removed else ""}</td><td class="reasons">{e(reasons)}</td>'
            f'<td class="n">{fails}</td><td class="n">{num(r["rejected"]) if r["rejected"] else ""}</td>'
            f'<td class="n">{num(r["requests"]) + earlier if llm else ""}</td>'
            f'<td class="n">{num(tokens) if llm else ""}</td><td class="n">{cost(r["cost_usd"]) if llm and r["requests"] else ""}</td>'
            f'<td class="n">{_seconds(r["seconds"])}</td></tr>'
        )
    t = data["totals"]
    body.append(f'<tr class="total"><td>total</td><td></td><td class="n">{num(t["records_in"])}</td><td></td>'
                f'<td class="n">{num(t["removed"])}</td><td></td><td class="n">{num(t["failed"])}</td><td class="n">{num(t["rejected"])}</td>'
                f'<td class="n">{num(t["requests"])}</td><td class="n">{num(t["tokens"])}</td><td class="n">{cost(t["cost_usd"])}</td><td></td></tr>')
    head = "".join(f'<th class="{c}">{h}</th>' for h, c in (("step", ""), ("status", ""), ("in", "n"), ("out", "n"), ("removed", "n"),
                   ("reasons", ""), ("failed", "n"), ("rejected", "n"), ("requests", "n"), ("tokens", "n"), ("cost", "n"), ("time", "n")))
    out.append(f'<table class="funnel-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    for r in rows:
        if r.get("failure_examples"):
            shown = f'{len(r["failure_examples"])} of {r["failed"]:,} shown; all of them are in its failures file'
            out.append(details(f'{e(r["step"])}: failed records <span class="badge warn">{num(r["failed"])}</span> '
                               f'<span class="reasons">{e(shown)}</span>',
                               table(["id", "reason", "raw response"], [(x["id"], x["reason"], x["raw"]) for x in r["failure_examples"]])))
    return "".join(out) + "</section>"


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else ""


def _training(s: dict[str, Any], anchor: str) -> str:
    unit = s["unit"]
    tail = " (the last bin also holds the few longer records)" if s.get("clipped_at") else ""
    out = [f'<section class="card" id="{e(anchor)}"><h2>What will be trained <span class="step">{e(s["step"])}</span></h2>'
           f'<p class="note">Lengths in {e(unit)} per record as the export counts them (every message plus the chat-template allowance)'
           + (f'; targets: {e(", ".join(s["targets"]))}' if s["targets"] else "") + ".</p>"]
    for st in s["sets"]:
        out.append(f'<h3>{e(st["title"])}: {num(st["records"])} records <span class="step">train {num(st["train"])} · validation {num(st["val"])}</span></h3>')
        facts = []
        if st["candidates"] is not None:
            facts.append(f'{num(st["candidates"])} candidates')
        if st["length_dropped"]:
            facts.append(f'{num(st["length_dropped"])} over max_tokens dropped')
        if st["quality_removed"]:
            facts.append("quality rules removed " + ", ".join(f"{k} {v:,}" for k, v in st["quality_removed"].items()))
        if st["not_selected"]:
            facts.append(f'{num(st["not_selected"])} not selected for the subset')
        if st["responses"] and set(st["responses"]) != {"single"}:
            facts.append("responses: " + ", ".join(f"{k} {v:,}" for k, v in st["responses"].items()))
        if facts:
            out.append(f'<p class="note">{e("; ".join(facts))}.</p>')
        hist = svg.histogram(st["lengths"], label=f'{st["mode"]} lengths', x_label=f"{unit} per record{tail}",
                             classes={"train": "kept", "val": "failed"}) if st["lengths"] else '<p class="empty">no per-record lengths (lineage.jsonl or the export input is missing)</p>'
        stats = st["length_stats"]
        stat_rows = [(name, d.get("count"), d.get("min"), d.get("median"), d.get("p95"), d.get("max")) for name, d in stats.items() if d]
        split = st["split"]
        split_note = (f'<p class="note">validation: {num(split.get("requested_val"))} requested'
                      + (f', {num(split.get("moved_to_train"))} moved to train' if split.get("moved_to_train") else "")
                      + (f', {num(split.get("refilled"))} refilled' if split.get("refilled") else "") + ".</p>") if split else ""
        cats = sorted(st["categories"].items(), key=lambda kv: -kv[1])
        if cats and [k for k, _ in cats] != ["(none)"]:
            right = "<h3>Categories</h3>" + svg.hbars(cats[:14], label="records per category", cls="set", total=st["records"])
        else:
            right = '<p class="empty">no categories in these records</p>' if cats else ""
        out.append(f'<div class="grid2"><div class="histogram" data-mode="{e(st["mode"])}">{hist}'
                   + table(["split", "records", "min", "median", "p95", "max"], stat_rows, numeric=(1, 2, 3, 4, 5)) + split_note
                   + f"</div><div>{right}</div></div>")
    cmp = s["compare"]
    if cmp:
        out.append("<h3>The LFT subset against the whole (SFT)</h3>")
        hist = svg.histogram(cmp["lengths"], label="lft vs sft lengths", x_label=f"{unit} per record, share of each set{tail}",
                             classes={"sft": "sft", "lft": "lft"}, shares=True) if cmp["lengths"] else ""
        rows = [(r["name"], r["whole"], f'{r["whole_share"]:.0%}', r["subset"], f'{r["subset_share"]:.0%}') for r in cmp["categories"]]
        src = [(r["name"], r["whole"], f'{r["whole_share"]:.0%}', r["subset"], f'{r["subset_share"]:.0%}') for r in cmp["sources"]]
        out.append(f'<div class="grid2"><div class="histogram" data-mode="compare">{hist}</div><div>'
                   + table(["category", "SFT", "share", "LFT", "share"], rows, numeric=(1, 3))
                   + table(["source", "SFT", "share", "LFT", "share"], src, numeric=(1, 3)) + "</div></div>")
        lft = next((x for x in s["sets"] if x["mode"] == "lft"), None)
        cov = lft["coverage"] if lft else None
        if cov and cov.get("rows"):
            ent = cov.get("entropy_bits") or {}
            out.append(f'<p class="note">Diversity ({e(cov.get("kind"))} strata): the subset covers {num(cov.get("covered"))} of '
                       f'{num(cov.get("strata"))}; entropy {num(ent.get("subset"), 2)} bits vs {num(ent.get("full"), 2)} for the whole.</p>')
            out.append(table(["stratum", "whole", "subset"], [(r.get("stratum"), r.get("full"), r.get("subset")) for r in cov["rows"]],
                             numeric=(1, 2), search=True, what="strata"))
    for key, hist in s["scores"].items():
        out.append(f"<h3>Score: {e(key)}</h3>" + svg.histogram(hist, label=f"{key} distribution", x_label=key,
                                                               classes={"sft": "sft", "lft": "lft"}))
    return "".join(out) + "</section>"


def render(data: dict[str, Any]) -> str:
    """The whole page for :func:`itkit.report.collect.collect`'s data."""
    sections = []
    nav = [("funnel", "Funnel")]
    for s in data["sections"]:
        anchor = f's-{s["step"]}'
        if s["kind"] == "export":
            sections.append(_training(s, anchor))
            nav.append((anchor, "Training sets"))
            continue
        group, render_one = RENDERERS[s["kind"]]
        sections.append(render_one(s, anchor))
        nav.append((anchor, s["kind"].replace("-", " ").capitalize() if data["kind"] == "run" else group))
    meta = []
    if data.get("recipe"):
        meta.append(f'recipe {e(Path(str(data["recipe"])).name)}')
    if data.get("finished"):
        meta.append(f'finished {e(str(data["finished"]).replace("T", " ").replace("Z", " UTC"))}')
    if isinstance(data.get("seconds"), (int, float)):
        meta.append(f'{data["seconds"]:.1f} s')
    meta.append(f'itkit {e(data["itkit_version"])}')
    status = ""
    if data.get("exit_code") is not None:
        code = data["exit_code"]
        cls, word = ("ok", "finished") if code == 0 else ("warn", "finished, some records failed") if code == 3 else ("bad", "stopped")
        status = f' <span class="badge {cls}">{word}</span>'
    error = f'<p class="note"><b>Error:</b> {e(data["error"])}</p>' if data.get("error") else ""
    kind = "run" if data["kind"] == "run" else (data["sections"][0]["kind"] if data["sections"] else "command")
    nav_html = "".join(f'<a href="#{e(a)}">{e(t)}</a>' for a, t in nav)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{GENERATOR}<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>itkit report: {e(data["title"])}</title><style>{_asset("report.css")}</style></head>
<body><header class="top"><div class="wrap"><h1><span class="kind">itkit {kind} ·</span> {e(data["title"])}{status}</h1>
<div class="meta">{"".join(f"<span>{m}</span>" for m in meta)}</div></div></header>
<nav class="toc"><div class="wrap">{nav_html}</div></nav>
<main class="wrap">{error}{_kpis(data)}{_funnel(data)}{"".join(sections)}</main>
<footer>Generated {e(data["generated"])} from {e(data["path"])} by itkit report. Samples are drawn with a fixed seed; counts are the summaries'.</footer>
<script>{_asset("report.js")}</script></body></html>
"""

"""HTML of the step sections: removals (filter, dedup) and rewrites (simplify, Evol-Instruct, Orca, Self-Instruct)."""

from __future__ import annotations

from typing import Any

from itkit.report import svg
from itkit.report.html import details, e, legend, num, record_card, segments, share, table


def _head(title: str, step: str, anchor: str, note: str = "") -> str:
    sub = f' <span class="step">{e(step)}</span>' if step and step != title else ""
    return f'<section class="card" id="{e(anchor)}"><h2>{e(title)}{sub}</h2>' + (f'<p class="note">{note}</p>' if note else "")


def filter_html(s: dict[str, Any], anchor: str) -> str:
    removed = sum(r["removed"] for r in s["rules"])
    out = [_head("Filter: removed by rule", s["step"], anchor,
                 f'{num(removed)} of {num(s["records_in"])} records removed ({share(removed, s["records_in"])}); '
                 "each record is removed by the first rule that finds a problem.")]
    bars = [(r["rule"], r["removed"]) for r in sorted(s["rules"], key=lambda r: -r["removed"])]
    out.append(svg.hbars(bars, label="records removed per rule", cls="removed", total=s["records_in"]))
    largest = max(s["rules"], key=lambda r: r["removed"], default=None)
    for rule in s["rules"]:
        if not rule["removed"]:
            continue
        cards = "".join(record_card(x["record"], why=x["reason"], label=f'{x["id"]} · row {x["index"]}') for x in rule["examples"])
        shown = f"{len(rule['examples'])} of {rule['removed']:,} shown" if rule["examples"] else "no examples in the removed file"
        out.append(details(f'{e(rule["rule"])} <span class="badge">{num(rule["removed"])}</span> '
                           f'<span class="reasons">{e(shown)}</span>', cards or '<p class="empty">no examples</p>', open_=rule is largest))
    t = s["table"]
    out.append(table(["id", "row", "rule", "reason", "instruction"], t["rows"], numeric=(1,), total=t["total"], search=True,
                     what="removed records"))
    if not s["removed_file"] and removed:
        out.append('<p class="note">No removed-records file (run itkit filter with --report to see examples).</p>')
    return "".join(out) + "</section>"


def _pair_side(side: dict[str, Any], cls: str, title: str) -> str:
    where = f'{e(side["id"])} · row {num(side["index"])}' + (f' · {e(side["source"])}' if side.get("source") else "")
    if not side["found"]:
        return f'<div class="{cls}"><h4>{title}</h4><div class="id">{where}</div><p class="empty">not found in the input</p></div>'
    parts = [f'<div class="{cls}"><h4>{title}</h4><div class="rec"><div class="id">{where}</div>']
    if side.get("system"):
        parts.append(f'<div class="turn"><span class="role">system</span>{e(side["system"])}</div>')
    for turn in side.get("turns") or []:
        parts.append(f'<div class="turn"><span class="role">{e(turn["role"])}</span>'
                     f'<span class="txt">{segments(turn["segments"], mark="mark") or "(empty)"}</span></div>')
    return "".join(parts) + "</div></div>"


def dedup_html(s: dict[str, Any], anchor: str) -> str:
    removed = sum(st["removed"] for st in s["stages"])
    note = (f'{num(removed)} of {num(s["records_in"])} records removed as duplicates ({share(removed, s["records_in"])}); '
            f'compared on {e(s.get("on") or "the default key")}, keeping the {e(s.get("keep") or "first")} of each group. '
            'Text the two records share is <mark>highlighted</mark>.')
    out = [_head("Dedup: duplicate pairs", s["step"], anchor, note)]
    out.append(svg.hbars([(st["stage"], st["removed"]) for st in s["stages"]], label="records removed per dedup stage",
                         cls="removed", total=s["records_in"]))
    for st in s["stages"]:
        if not st["removed"]:
            continue
        body = []
        if st.get("scores"):
            body.append(svg.histogram(st["scores"], label=f"{st['stage']} scores", x_label="similarity score of each removed pair",
                                      classes={st["stage"]: "removed"}, height=160))
        for p in st["pairs"]:
            score = p["score"]
            body.append(f'<div class="pairhead pair-row" data-stage="{e(p["stage"])}"><span class="badge">score {num(score, 3) if isinstance(score, float) else num(score)}</span>'
                        f'<span class="reasons">shared words: prompt {p["shared"]["prompt"]:.0%}, response {p["shared"]["response"]:.0%}</span></div>')
            body.append('<div class="pair">' + _pair_side(p["removed"], "gone", "removed") + _pair_side(p["kept"], "stay", "kept (survivor)") + "</div>")
        shown = f'{len(st["pairs"])} of {st["removed"]:,} pairs shown'
        out.append(details(f'{e(st["stage"])} <span class="badge">{num(st["removed"])}</span> <span class="reasons">{e(shown)}</span>',
                           "".join(body), open_=True))
    t = s["table"]
    out.append(table(["stage", "removed id", "row", "kept id", "kept row", "score"], t["rows"], numeric=(2, 4, 5),
                     total=t["total"], search=True, what="pairs"))
    return "".join(out) + "</section>"


def simplify_html(s: dict[str, Any], anchor: str) -> str:
    c = s["counts"]
    ratio = s["ratio"]
    stats = ratio["stats"]
    fc = s.get("fact_checks")
    if fc and isinstance(fc["median_ratio"], (int, float)):
        median = f'; median length ratio {fc["median_ratio"]:.2f} (simplified / original {e(fc["unit"] or "tokens")})'
    else:
        median = f'; median length ratio {stats["median"]:.2f} (simplified / original words)' if stats else ""
    note = (f'{num(c.get("simplified"))} of {num(c.get("read"))} responses simplified'
            + (f', {num(c.get("longer_kept"))} kept because the rewrite was longer' if c.get("longer_kept") else "")
            + (f', {num(c.get("failed"))} failed' if c.get("failed") else "")
            + f'{median}. Originals {e(s["originals"])}.')
    out = [_head("Simplify: original vs simplified", s["step"], anchor, note)]
    sh = ratio["shares"]
    if fc and fc["distribution"]:
        chart = svg.hbars(fc["distribution"], label="records per length ratio", total=sum(n for _, n in fc["distribution"]))
        title = f'Length ratio ({e(fc["unit"] or "tokens")})'
    else:
        chart = svg.histogram(ratio["histogram"], label="length ratio", classes={"ratio": "kept"}, height=180,
                              x_label=f"simplified / original length (words; ≥{ratio['capped_at']:g} in the last bin)")
        title = "Length ratio (words)"
    side = table(["", "records"], [("shorter", sh["shorter"]), ("unchanged length", sh["unchanged"]), ("longer", sh["longer"])], numeric=(1,))
    out.append(f'<div class="grid2"><div><h3>{title}</h3>{chart}</div><div><h3>Lengths</h3>{side}</div></div>')
    if fc and (fc["violations"] or fc["outcomes"]):
        policy = f'; policy on a violation: {e(fc["on_violation"])}' if fc.get("on_violation") else ""
        out.append(f'<h3>Fact checks</h3><p class="note">Checks that the rewrite adds no fact and keeps the answer{policy}.</p>'
                   '<div class="grid2"><div>' + table(["check", "first try", "after the retry"], fc["violations"], numeric=(1, 2))
                   + "</div><div>" + table(["outcome", "records"], [(k.replace("_", " "), v) for k, v in fc["outcomes"].items()], numeric=(1,))
                   + "</div></div>")
    if s["checks"]:
        out.append("".join(f"<h3>{e(k)}</h3>" + table(["check", "records"], sorted(v.items(), key=lambda kv: -kv[1]), numeric=(1,))
                           for k, v in s["checks"].items()))
    out.append(legend([("deleted words", "del-bg"), ("inserted words", "ins-bg")]))
    for p in s["pairs"]:
        head = (f'<div class="pairhead"><span class="badge">{e(p["id"])}</span><span class="reasons">{num(p["words"][0])} → '
                f'{num(p["words"][1])} words' + (f' (ratio {p["ratio"]:.2f})' if p["ratio"] is not None else "") + f'</span></div>'
                f'<div class="turn"><span class="role">user</span>{e(p["instruction"])}</div>')
        out.append(head + f'<div class="pair"><div class="gone"><h4>original</h4><div class="txt">{segments(p["original"])}</div></div>'
                   f'<div class="stay"><h4>simplified</h4><div class="txt">{segments(p["simplified"])}</div></div></div>')
    flagged = s["flagged"]
    if flagged["total"]:
        rows = [(r["id"], r["flags"], r["response"]) for r in flagged["rows"]]
        out.append(f'<h3>Flagged by the fact checks <span class="badge bad">{num(flagged["total"])}</span></h3>')
        out.append(table(["id", "flags", "response"], rows, total=flagged["total"], search=True, what="flagged records"))
    return "".join(out) + "</section>"


def evol_html(s: dict[str, Any], anchor: str) -> str:
    ev = s["evolutions"]
    note = (f'{num(ev.get("attempted"))} evolutions attempted: {num(ev.get("survived"))} survived, '
            f'{num(ev.get("eliminated"))} eliminated, {num(ev.get("failed"))} failed. '
            f'Output keeps {e(s.get("keep") or "final")}.') if ev else ""
    out = [_head("Evol-Instruct: lineages and eliminations", s["step"], anchor, note)]
    rules = [(k, v) for k, v in s["eliminated_by_rule"].items() if isinstance(v, int)]
    ops = s["by_operation"]
    op_rows = [(op, d.get("attempted"), d.get("survived"), d.get("eliminated"), d.get("failed"),
                ", ".join(f"{k} {v}" for k, v in (d.get("by_rule") or {}).items() if v) or "–") for op, d in ops.items() if isinstance(d, dict)]
    left = "<h3>Eliminated per rule</h3>" + (svg.hbars(rules, label="eliminations per rule", cls="removed") if any(v for _, v in rules) else '<p class="empty">no evolution was eliminated</p>')
    rounds = table(["round", "attempted", "survived", "eliminated", "failed"],
                   [(r.get("round"), r.get("attempted"), r.get("survived"), r.get("eliminated"), r.get("failed")) for r in s["by_round"]],
                   numeric=(0, 1, 2, 3, 4))
    right = "<h3>Per operation</h3>" + table(["operation", "attempted", "survived", "eliminated", "failed", "eliminated by"], op_rows, numeric=(1, 2, 3, 4)) + rounds
    out.append(f'<div class="grid2"><div>{left}</div><div>{right}</div></div>')
    if s["lineages"]:
        out.append(f'<h3>Lineages <span class="step">{len(s["lineages"])} of {s["lineage_total"]:,}</span></h3>')
    for n, lin in enumerate(s["lineages"]):
        gens = []
        for g in lin["steps"]:
            if g["status"] == "source":
                title = f'input · {e(g["id"])}'
            elif g["status"] == "eliminated":
                title = f'round {e(g["round"])} · {e(g["operation"])} · eliminated: {e(g.get("rule"))}' + (f' ({e(g.get("detail"))})' if g.get("detail") else "")
            else:
                title = f'round {e(g["round"])} · {e(g["operation"])} · {e(g["id"])}'
            text = e(g["prompt"]) if g["prompt"] is not None else '<span class="empty">not in the output (keep: final keeps only the last round)</span>'
            gens.append(f'<div class="gen {e(g["status"])}"><div class="id">{title}</div><div class="txt">{text}</div></div>')
        if lin["final_response"]:
            gens.append(f'<div class="gen"><div class="id">response to the last round</div><div class="txt">{e(lin["final_response"])}</div></div>')
        first = lin["steps"][0]["prompt"] if lin["steps"] and lin["steps"][0]["prompt"] else ""
        rounds = sum(1 for g in lin["steps"] if g["status"] == "survived")
        eliminated = sum(1 for g in lin["steps"] if g["status"] == "eliminated")
        head = (f'{e(lin["root"])} <span class="badge">{rounds} round{"s" if rounds != 1 else ""}</span>'
                + (f' <span class="badge bad">{eliminated} eliminated</span>' if eliminated else "")
                + f' <span class="reasons">{e(first[:90])}</span>')
        out.append(details(head, f'<div class="lineage">{"".join(gens)}</div>', open_=n < 2))
    for rule, rows in s["eliminated_examples"].items():
        out.append(details(f'eliminated by {e(rule)} <span class="badge">{len(rows)}</span>',
                           table(["id", "round", "operation", "rewrite", "detail"],
                                 [(r["id"], r["round"], r["operation"], r["instruction"], r["detail"]) for r in rows], numeric=(1,))))
    return "".join(out) + "</section>"


def orca_html(s: dict[str, Any], anchor: str) -> str:
    c = s["counts"]
    a = s["assignment"]
    note = (f'{num(c.get("written"))} of {num(c.get("read"))} records answered with an explanation trace'
            + (f', {num(c.get("failed"))} failed' if c.get("failed") else "")
            + (f'; system messages assigned {e(a.get("mode"))}' if a.get("mode") else "") + ".")
    out = [_head("Orca: system messages and task types", s["step"], anchor, note)]
    total = sum(m["records"] for m in s["system_messages"])
    msgs = svg.hbars([(f'#{m["number"]}', m["records"]) for m in s["system_messages"]], label="records per system message", total=total)
    types = svg.hbars(sorted(s["task_types"].items(), key=lambda kv: -kv[1]), label="records per task type", cls="set",
                      total=sum(s["task_types"].values()))
    out.append(f'<div class="grid2"><div><h3>System messages</h3>{msgs}</div><div><h3>Task types</h3>{types}'
               + (f'<p class="note">found by: {e(", ".join(f"{k} {v}" for k, v in s["task_type_found_by"].items()))}</p>' if s["task_type_found_by"] else "")
               + "</div></div>")
    out.append(table(["#", "records", "system message"], [(m["number"], m["records"], m["text"] or "(empty: no system message)") for m in s["system_messages"]], numeric=(1,)))
    if s["examples"]:
        cards = "".join(f'<div class="rec"><div class="id">{e(x["id"])} · message #{e(x["system_message"])} · {e(x["task_type"])}</div>'
                        + (f'<div class="turn"><span class="role">system</span>{e(x["system"])}</div>' if x["system"] else "")
                        + f'<div class="turn"><span class="role">user</span>{e(x["prompt"])}</div>'
                        f'<div class="turn"><span class="role">assistant</span>{e(x["response"])}</div></div>' for x in s["examples"])
        out.append(details(f'examples <span class="badge">{len(s["examples"])}</span>', cards))
    return "".join(out) + "</section>"


def score_html(s: dict[str, Any], anchor: str) -> str:
    c = s["counts"]
    note = (f'{num(c.get("scored"))} of {num(c.get("read"))} records scored by an LLM judge'
            + (f', {num(c.get("failed"))} failed (no usable score)' if c.get("failed") else "") + ".")
    out = [_head("Scores: LLM-as-judge", s["step"], anchor, note)]
    charts = []
    for sc in s["scorers"]:
        bars = svg.hbars(list(sc["histogram"].items()), label=f'records per {sc["name"]} score', total=sc["scored"] or None)
        mean = f' · mean {num(sc["mean"], 2)}' if isinstance(sc["mean"], (int, float)) else ""
        skipped = "".join(f"; {num(n)} not scored ({e(why)})" for why, n in sc["not_scored"].items())
        charts.append(f'<div><h3>{e(sc["name"])}</h3><p class="note">{num(sc["scored"])} scored{mean}{skipped}; '
                      f'{e(sc["template"])}</p>{bars or "<p class=empty>none scored</p>"}</div>')
    out.append(f'<div class="grid2">{"".join(charts)}</div>')
    if s["examples"]:
        cards = "".join(
            record_card(x["record"], why="; ".join(
                f'{k} {v}' + (f' ({x["reasons"][k]})' if k in x["reasons"] else "") for k, v in x["scores"].items()))
            for x in s["examples"])
        out.append(details(f'scored records <span class="badge">{len(s["examples"])}</span>', cards))
    return "".join(out) + "</section>"


def self_instruct_html(s: dict[str, Any], anchor: str) -> str:
    c = s["counts"]
    note = (f'{num(c.get("kept_instructions"))} new instructions kept of {num(c.get("candidates"))} candidates '
            f'({num(c.get("records_written"))} records written from {num(c.get("seeds"))} seeds)'
            + (f'; stopped: {e(s["stopped"])}' if s.get("stopped") else "") + ".")
    out = [_head("Self-Instruct: new tasks and their most similar instructions", s["step"], anchor, note)]
    filtered = sorted(s["filtered"].items(), key=lambda kv: -kv[1])
    left = "<h3>Candidates removed per filter</h3>" + (svg.hbars(filtered, label="candidates removed per filter", cls="removed")
                                                      if any(v for _, v in filtered) else '<p class="empty">no candidate was filtered out</p>')
    right = ""
    if s.get("similarity"):
        threshold = s.get("rouge_threshold")
        right = "<h3>Similarity to the closest instruction</h3>" + svg.histogram(
            s["similarity"], label="ROUGE-L to the most similar instruction", classes={"most similar": "set"}, height=160,
            x_label="ROUGE-L F1 of each new task to its most similar instruction" + (f" (kept below {threshold})" if threshold else ""))
    out.append(f'<div class="grid2"><div>{left}</div><div>{right}</div></div>')
    for t in s["tasks"]:
        sims = "".join(f'<li>{num(x["score"], 2) if isinstance(x["score"], float) else num(x["score"])} · {e(x["instruction"])}</li>' for x in t["similar"])
        tag = "classification" if t["is_classification"] else "generation" if t["is_classification"] is False else ""
        out.append(f'<div class="rec"><div class="id">{e(t["id"])} · {e(t["status"])}' + (f" · {tag}" if tag else "")
                   + (f' · {num(t["instances"])} instances' if isinstance(t["instances"], int) else "") + "</div>"
                   f'<div class="turn">{e(t["instruction"])}</div><ul class="similar">{sims}</ul></div>')
    tb = s["table"]
    out.append(table(["id", "instruction", "status", "closest ROUGE-L"], tb["rows"], numeric=(3,), total=tb["total"], search=True, what="tasks"))
    return "".join(out) + "</section>"

"""The dataset card (``OUTDIR/README.md``): what is in the export, how it was made, and how to load it.

The card starts with Hugging Face Hub front matter (one config per mode and
target, so the folder can be pushed to the Hub as is), then gives the counts at
every step, token-length statistics, category or cluster coverage of the LFT
subset against the full set, how the subset was chosen (``--lft-select``) and,
when by scores, their distribution in the subset against the whole, the lineage of the data (sources, formats and the
rewrite steps recorded in provenance) and the exact command that reproduces it.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from itkit.export.targets import MODE_TITLES, TRAIN_FILE, VAL_FILE, get_targets

if TYPE_CHECKING:
    from itkit.export.result import ExportResult, ModeResult

COVERAGE_ROWS = 30
"""Strata listed in the coverage table (the rest are summed in one row)."""


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _front_matter(result: "ExportResult") -> list[str]:
    configs = []
    for mode, m in result.modes.items():
        for target in get_targets(list(result.settings.targets)):
            files = [{"split": "train", "path": str(PurePosixPath(mode, target.name, TRAIN_FILE))}]
            if m.val:
                files.append({"split": "validation", "path": str(PurePosixPath(mode, target.name, VAL_FILE))})
            configs.append({"config_name": f"{mode}-{target.name}", "data_files": files})
    data = {"tags": ["itkit", "instruction-tuning"], "configs": configs}
    return ["---", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]


def _steps(result: "ExportResult", mode: str, m: "ModeResult") -> list[str]:
    s = result.settings
    lines = [f"- {m.candidates} usable records enter this set."]
    if s.max_tokens is not None:
        text = f"- Length budget {s.max_tokens} tokens: {m.length_dropped} records over it dropped"
        if s.split_long:
            text += (
                f"; {m.split_records} multi-turn records split at exchanges into {m.split_pieces} pieces"
                f" ({m.split_pairs_dropped} single exchanges over the budget left out)"
            )
        lines.append(text + f"; {m.after_length} kept.")
    else:
        lines.append("- No length budget (--max-length not given): nothing dropped for length.")
    if m.unrenderable:
        examples = "; ".join(f"`{rid}`: {why}" for rid, why in m.render_errors.items())
        lines.append(f"- The model's chat template cannot render {m.unrenderable} records, left out ({examples}).")
    if m.tool_records:
        lines.append(f"- {m.tool_records} records use tools (tool calls, results or schemas).")
    if m.weighted_records:
        lines.append(f"- {m.weighted_records} records carry per-turn weights that leave some assistant turns untrained.")
    if m.quality is not None:
        removed = sum(m.quality.removed.values())
        by_rule = ", ".join(f"{name} {n}" for name, n in m.quality.removed.items()) or "no rules"
        lines.append(f"- Quality filters removed {removed} ({by_rule}); {m.after_quality} remain.")
        lines += _subset_steps(result, m)
    lines.append(
        f"- Split: {m.train} train / {m.val} validation (requested {m.split.requested}); "
        f"{m.split.moved} validation records had an exact or near duplicate in train and were moved there, "
        f"{m.split.refilled} records without duplicates took their place."
    )
    if m.responses:
        lines.append("- Responses: " + ", ".join(f"{n} {kind}" for kind, n in sorted(m.responses.items())) + ".")
    return lines


def _subset_steps(result: "ExportResult", m: "ModeResult") -> list[str]:
    s = result.settings
    kind = m.coverage.kind if m.coverage else "random"
    head = f"- Subset: {m.records} of {m.after_quality} records (--lft-size {s.lft_size}), --lft-select {s.lft_select}: "
    sel = m.selection
    if sel is None or sel.method == "diverse":
        return [head + f"spread evenly over {kind} strata in an order drawn from seed {s.seed}."]
    score = f"`{sel.score_name}` score" + (" (the product of the scores)" if len(sel.score) > 1 else "")
    if sel.method == "quality":
        lines = [
            head + f"the records with the highest {score} of each {kind} stratum, the strata as even as the "
            f"data allows; equal scores in an order drawn from seed {s.seed}."
        ]
    else:
        lines = [
            head + f"Deita's score-first, diversity-aware selection (Liu et al. 2023): records by descending {score}, "
            f"each taken only if its prompt's Jaccard similarity (word bigrams) to every record taken before it is "
            f"under {sel.similarity:g}; {sel.skipped} records skipped as too similar; spread over {kind} strata; "
            f"equal scores in an order drawn from seed {s.seed}."
        ]
        if sel.filled:
            lines.append(f"- Too few records passed the similarity guard: {sel.filled} skipped ones were taken to reach the size.")
        if sel.examples:
            shown = "; ".join(f"`{e['id']}` like `{e['like']}` ({e['jaccard']:.2f})" for e in sel.examples)
            lines.append(f"- Skipped as too similar, e.g.: {shown}.")
    if sel.unscored:
        have = "record has" if sel.unscored == 1 else "records have"
        lines.append(f"- {sel.unscored} {have} no {score}: ranked below every scored record (--lft-unscored last).")
    return lines


def _scores(m: "ModeResult") -> list[str]:
    sel = m.selection
    if sel is None or not sel.distributions:
        return []
    lines = [
        "",
        "## Scores",
        "",
        f"The `{sel.score_name}` score (`metadata.scores`, written by `itkit score`) of the LFT subset against the "
        "records it was chosen from:",
        "",
    ]
    rows = []
    for name, d in sel.distributions.items():
        known = d.records - d.unscored
        stats = [f"{v:g}" for v in (d.min, d.p25, d.median)] + [f"{d.mean:.2f}"] + [f"{v:g}" for v in (d.p75, d.max)]
        rows.append([name, d.records, d.unscored] + (stats if known else ["-"] * 6))
    lines += _table(["records", "count", "unscored", "min", "p25", "median", "mean", "p75", "max"], rows)
    whole, subset = sel.distributions["candidates"], sel.distributions["subset"]
    if whole.values is not None and subset.values is not None:
        values = sorted({*whole.values, *subset.values}, key=float, reverse=True)
        known_whole = whole.records - whole.unscored
        known_subset = subset.records - subset.unscored
        lines += [""] + _table(
            ["score", "candidates", "share", "LFT subset", "share"],
            [
                [v, whole.values.get(v, 0), _pct(whole.values.get(v, 0), known_whole),
                 subset.values.get(v, 0), _pct(subset.values.get(v, 0), known_subset)]
                for v in values
            ],
        )
    return lines


def render_card(result: "ExportResult") -> str:
    s = result.settings
    name = PurePosixPath(result.out_dir).name
    lines = _front_matter(result)
    lines += [
        f"# {name}",
        "",
        f"Instruction-tuning data exported by itkit from `{result.as_dict()['source']['path']}` "
        f"({result.source_format}), for " + " and ".join(MODE_TITLES[m] for m in result.modes) + ".",
        "",
        "- **LFT** (LoRA fine-tuning): a small, diverse, quality-filtered subset; LoRA learns response style "
        "from about 1,000 examples (LIMA; Ghosh et al. 2024).",
        "- **SFT** (full-parameter fine-tuning): the full cleaned set.",
        "",
        "## Files",
        "",
    ]
    rows = []
    for mode, m in result.modes.items():
        for target in get_targets(list(s.targets)):
            rows.append([f"`{mode}/{target.name}/`", target.description, m.train, m.val])
    lines += _table(["folder", "format", "train", "validation"], rows)
    lines += [
        "",
        "Every row of a data file has the same keys with the same types (string ids, string contents); "
        "JSON is UTF-8 without escapes. `<mode>/lineage.jsonl` maps every exported id to its source record, "
        "split, response kind and provenance; `manifest.json` lists every file with its sha256.",
        "",
    ]
    linked = [p for m in result.modes.values() for p in m.linked]
    if linked:
        lines += [
            "Data files identical for several targets are stored once: "
            + ", ".join(f"`{p}`" for p in linked)
            + " are hard links to the first copy (copy the folder with `cp -a` or `rsync -H` to keep one copy).",
            "",
        ]
    lines += [
        "## How it was built",
        "",
        f"- Source: {result.rows} rows read, {result.loaded} loaded, {result.rejected} rejected"
        + (f" (written with reasons to `rejected.jsonl`)" if result.rejected else "")
        + f"; {result.trimmed_trailing_user} conversations ended with a user turn, which was removed; "
        f"{result.no_exchange} records with no complete exchange dropped; "
        + (f"{result.no_trained_turn} records whose every assistant turn has weight 0 dropped (nothing to train on); " if result.no_trained_turn else "")
        + f"{result.usable} usable.",
    ]
    if result.source_sha256:
        lines.append(f"- Source sha256: `{result.source_sha256}`.")
    if result.with_both_responses:
        lines.append(
            f"- {result.with_both_responses} records have a simplified response and the original "
            f"(`itkit simplify --keep-original`): SFT uses the simplified one; LFT uses the "
            + ("simplified one (--prefer-simplified)." if s.prefer_simplified else "original (no --prefer-simplified).")
        )
    for mode, m in result.modes.items():
        lines += ["", f"### {MODE_TITLES[mode]}", ""] + _steps(result, mode, m)

    warnings = result.warnings
    notes = [n for m in result.modes.values() for n in m.notes]
    if warnings or notes:
        lines += ["", "## Warnings and limits", ""]
        lines += [f"- {w}" for w in warnings] + [f"- {n}" for n in dict.fromkeys(notes)]

    lines += ["", "## Token lengths", ""]
    cutoffs = ", ".join(f"{mode.upper()} {m.cutoff_len}" for mode, m in result.modes.items())
    if result.exact_lengths:
        lines.append(
            f"Exact tokens per record with `{result.token_counter}`: each record rendered with the model's own chat "
            f"template and encoded, generation markers and end-of-turn tokens included. The configs' sequence length "
            f"({cutoffs}) holds every record, so a trainer using that template drops none for length."
        )
    else:
        lines.append(
            f"Estimated tokens per record with `{result.token_counter}`: the content of every message plus "
            f"{s.as_dict()['message_overhead_tokens']} per message for the chat template's markup. The model's own "
            f"tokenizer and template count differently, so the configs' sequence length ({cutoffs}) leaves a margin "
            f"of {s.training.estimate_margin:.0%} over the longest record; pass `--tokenizer` with the model's folder "
            "for exact lengths."
        )
    lines.append("")
    rows = []
    for mode, m in result.modes.items():
        for split in ("train", "val"):
            d = m.tokens[split]
            if d.count:
                rows.append([f"{mode} {split}", d.count, d.min, f"{d.median:g}", f"{d.p95:.1f}", d.max, f"{d.mean:.1f}"])
    lines += _table(["set", "records", "min", "median", "p95", "max", "mean"], rows)

    lines += ["", "## Coverage", ""]
    lft = result.modes.get("lft")
    if lft is not None and lft.coverage is not None:
        c = lft.coverage
        full_total = sum(r.full for r in c.rows)
        sub_total = sum(r.subset for r in c.rows)
        what = {"category": "categories", "cluster": "topic clusters of the prompts", "random": "one stratum (random sample)"}
        lines.append(
            f"The LFT subset against the full set, by {what.get(c.kind, c.kind)}: it covers {c.covered_strata} of "
            f"{c.full_strata} strata; entropy {c.subset_entropy:.2f} bits against {c.full_entropy:.2f} for the full set "
            "(higher is more even)."
        )
        lines.append("")
        rows = [[r.stratum, r.full, _pct(r.full, full_total), r.subset, _pct(r.subset, sub_total)] for r in c.rows[:COVERAGE_ROWS]]
        rest = c.rows[COVERAGE_ROWS:]
        if rest:
            f, sb = sum(r.full for r in rest), sum(r.subset for r in rest)
            rows.append([f"({len(rest)} more)", f, _pct(f, full_total), sb, _pct(sb, sub_total)])
        lines += _table([c.kind, "full", "share", "LFT subset", "share"], rows)
    sft = result.modes.get("sft")
    if sft is not None and any(k != "(none)" for k in sft.categories):
        lines += ["", "Categories of the SFT set:", ""]
        total = sum(sft.categories.values())
        lines += _table(["category", "records", "share"], [[k, n, _pct(n, total)] for k, n in sft.categories.items()])
    elif lft is None:
        lines.append("The records have no category field.")
    if lft is not None:
        lines += _scores(lft)

    lines += ["", "## Lineage", ""]
    for mode, m in result.modes.items():
        lin = m.lineage
        lines.append(f"**{mode.upper()}**: sources " + ", ".join(f"`{k}` ({v})" for k, v in lin["sources"].items())
                     + "; formats " + ", ".join(f"{k} ({v})" for k, v in lin["source_formats"].items())
                     + f"; {lin['rewritten_records']} records carry rewrite steps.")
        if lin["steps"]:
            lines.append("")
            lines += _table(
                ["method", "operation", "model", "records"],
                [[st["method"], st["operation"] or "-", st["model"] or "-", st["records"]] for st in lin["steps"]],
            )
        lines.append("")

    lines += ["## How to use", ""]
    lines += _usage(result)
    lines += ["", "## Reproduce", ""]
    if s.invoked_as:
        lines += ["Command as run:", "", "```bash", s.invoked_as, "```", "", "With every setting explicit:", ""]
    lines += ["```bash", s.command_line(), "```", ""]
    return "\n".join(lines)


def _usage(result: "ExportResult") -> list[str]:
    names = [t.name for t in get_targets(list(result.settings.targets))]
    mode = next(iter(result.modes))
    m = result.modes[mode]
    out: list[str] = []
    if "trl" in names:
        files = f'{{"train": "{mode}/trl/{TRAIN_FILE}"' + (f', "validation": "{mode}/trl/{VAL_FILE}"' if m.val else "") + "}"
        out += [
            "TRL (conversational rows; no registration file):",
            "",
            "```python",
            "from datasets import load_dataset",
            f'ds = load_dataset("json", data_files={files})',
            "# TRL truncates at max_length (default 1024): give it the exported set's length",
            f"# SFTTrainer(model=..., train_dataset=ds[\"train\"], args=SFTConfig(max_length={m.cutoff_len}, ...))",
            "```",
            "",
        ]
    if "llama-factory" in names:
        out += [
            "LLaMA-Factory: `dataset_info.json` registers `itkit_<mode>_train` (and `_val`); the config "
            "points `dataset_dir` at its folder"
            + (" (`.`: run from that folder)" if result.settings.relative_paths else "")
            + ". Set the model (or pass --base-model) in "
            "`lft/llama-factory/train_lora.yaml` or `sft/llama-factory/train_full.yaml`, then "
            "`llamafactory-cli train <that file>`.",
            "",
        ]
    if "axolotl" in names:
        out += [
            "Axolotl: merge `lft/axolotl/axolotl_lora.yaml` or `sft/axolotl/axolotl_full.yaml` into your config "
            "(`type: chat_template`, `field_messages: messages`; "
            + ("data paths relative to the fragment's folder: run from there)." if result.settings.relative_paths else "absolute data paths)."),
            "",
        ]
    if "alpaca" in names or "sharegpt" in names:
        out += ["`alpaca/` and `sharegpt/` hold the same records in those plain layouts for other tools.", ""]
    return out

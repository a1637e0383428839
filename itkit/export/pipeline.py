"""``itkit export`` as a library call: one cleaned dataset in, the LFT and SFT sets for every target out.

Steps, for each mode (``lft``: LoRA fine-tuning, ``sft``: full fine-tuning):

1. read the source (records ending with a user turn lose that turn, as
   FastChat does; records with no exchange left, or whose every assistant turn
   has weight 0, are dropped and counted);
2. pick the response (:mod:`itkit.export.responses`, ``--prefer-simplified``);
3. the length policy (:mod:`itkit.export.length`): drop records over
   ``--max-length`` (exact with the model's chat template, ``--tokenizer``), or split
   multi-turn ones at exchanges (``--split-long``);
4. LFT only: quality rules (:mod:`itkit.export.quality`), then a subset of
   ``--lft-size`` records spread over categories or topic clusters
   (:mod:`itkit.export.subset`), chosen at random (``--lft-select diverse``)
   or by the scores of ``itkit score`` (``quality``: :mod:`itkit.export.scored`;
   ``deita``: :mod:`itkit.export.deita`);
5. the train/validation split without leakage (:mod:`itkit.export.split`);
6. refuse a target that cannot hold a record (before writing anything); the
   files of every target (identical data files hard-linked), a lineage file,
   the dataset card and the manifest,
   built in a temporary folder renamed to OUTDIR at the end
   (:mod:`itkit.export.outdir`).

The settings are :class:`~itkit.export.settings.ExportSettings`; what an
export did is an :class:`~itkit.export.result.ExportResult`; where each
exported record comes from, :mod:`itkit.export.lineage`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable

from itkit.dataset import RecordReader, RejectLog
from itkit.dedup import text_getter
from itkit.errors import InputError, Location
from itkit.export import responses
from itkit.export.card import render_card
from itkit.export.duplicates import duplicate_index, prompt_keys
from itkit.export.length import Counter as TokenCounterLike, LengthOutcome, apply_length, is_exact, make_counter
from itkit.export.lineage import lineage_row, lineage_summary, usable
from itkit.export.outdir import MANIFEST, StagedDir, check_target
from itkit.export.quality import apply_quality, lft_rules, rule_settings
from itkit.export.result import ExportResult, FileEntry, ModeResult
from itkit.export.deita import GUARD_TEXT, SIMILAR_EXAMPLES, select_deita
from itkit.export.scored import SCORED_METHODS, ScoreSummary, Selection, Unscored, score_of, select_quality
from itkit.export.settings import DEFAULT_LFT_SIZE, DEFAULT_SEED, ExportSettings
from itkit.export.split import split_records, val_count
from itkit.export.subset import Coverage, Strata, category_of, select, strata_for
from itkit.export.targets import TRAIN_FILE, VAL_FILE, TargetContext, get_targets, trained_pattern
from itkit.export.written import check_targets, cutoff_len, file_sha256, link_if_same, validation_warnings
from itkit.io.paths import check_paths
from itkit.io.rows import display_name, is_hub
from itkit.io.sinks import RowWriter, write_file_atomic
from itkit.records import Record
from itkit.stats import Distribution

LINEAGE_FILE = "lineage.jsonl"
CARD_FILE = "README.md"
REJECTED_FILE = "rejected.jsonl"

Progress = Callable[[str], None]


def _report(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def run_export(settings: ExportSettings, progress: Progress | None = None) -> ExportResult:
    """Run the export; raises ItkitError subclasses on bad input or settings, writing nothing then."""
    settings.check()
    targets = get_targets(list(settings.targets))
    check_paths({"SRC": settings.source, "--tokenizer": settings.tokenizer}, {}, folders={"-o": settings.out_dir})
    out_dir = Path(settings.out_dir).resolve()
    check_target(out_dir, settings.overwrite)
    # tokens are essential only for a length budget or a tokenizer the user chose; else the card's
    # token table may be estimated offline
    tokens_required = settings.max_tokens is not None or bool(settings.encoding or settings.model)
    counter = make_counter(settings.encoding, settings.model, settings.tokenizer, required=tokens_required)
    result = ExportResult(settings=settings, out_dir=str(out_dir), token_counter=counter.name, exact_lengths=is_exact(counter))

    with StagedDir(out_dir, settings.overwrite) as staged:
        # 1. read
        _report(progress, f"reading {display_name(settings.source)}")
        rejects = RejectLog(str(staged.path / REJECTED_FILE) if settings.on_error == "skip" else None)
        reader = RecordReader(settings.source, settings.from_format, on_error=settings.on_error, rejects=rejects)
        records: list[Record] = []
        unscored = Unscored()
        try:
            for record in reader:
                fixed = usable(record)
                if fixed is None:
                    result.no_exchange += 1
                    continue
                if fixed is not record:
                    result.trimmed_trailing_user += 1
                if not any(t.trained for t in fixed.turns):
                    result.no_trained_turn += 1
                    continue
                if settings.scored:
                    unscored.check(fixed, settings.score_names, reader.location)
                records.append(fixed)
            if settings.scored and settings.unscored == "error":
                unscored.refuse(len(records), Location(display_name(settings.source)))
        except BaseException:
            rejects.abort()
            raise
        rejects.close()
        result.source_format = reader.format.name
        result.rows = reader.counts.rows
        result.loaded = reader.counts.loaded
        result.rejected = reader.counts.rejected
        result.reject_reasons = dict(reader.counts.reasons)
        result.usable = len(records)
        result.with_both_responses = sum(1 for r in records if responses.has_both(r))
        if not is_hub(settings.source) and settings.source != "-" and Path(settings.source).is_file():
            result.source_sha256 = file_sha256(Path(settings.source))
        plain_file = not is_hub(settings.source) and settings.source != "-"
        source_name = Path(settings.source).name if plain_file else display_name(settings.source)

        # 2-5. each mode
        mode_sets: dict[str, tuple[list[Record], list[str]]] = {}
        length_cache: dict[bool, tuple[list[str], LengthOutcome]] = {}
        for mode in settings.modes:
            mode_result, chosen, kinds = _build_mode(mode, records, settings, counter, progress, length_cache)
            mode_result.lineage = lineage_summary(chosen, source_name)
            result.modes[mode] = mode_result
            mode_sets[mode] = (chosen, kinds)

        check_targets(targets, [chosen for chosen, _ in mode_sets.values()])

        # 6. files
        for mode, (chosen, kinds) in mode_sets.items():
            _report(progress, f"writing {mode}")
            mode_result = result.modes[mode]
            split = mode_result.split
            patterns = [trained_pattern(r) for r in chosen]
            mode_result.tool_records = sum(1 for r in chosen if r.uses_tools)
            mode_result.weighted_records = sum(1 for _, partial in patterns if partial)
            mode_result.cutoff_len = cutoff_len(
                settings.max_tokens, settings.training, result.exact_lengths, mode_result.tokens.get("all")
            )
            mode_result.warnings += validation_warnings(
                mode, mode_result.train, mode_result.val, mode_result.split, mode_result.unrenderable, mode_result.render_errors
            )
            written: dict[str, Path] = {}
            for target in targets:
                folder = Path(mode) / target.name
                ctx = TargetContext(
                    mode=mode,
                    folder=out_dir / folder,
                    has_val=bool(split.val),
                    cutoff_len=mode_result.cutoff_len,
                    base_model=settings.base_model,
                    trl_format=settings.trl_format,
                    training=settings.training,
                    train_rows=len(split.train),
                    exact_lengths=result.exact_lengths,
                    relative_paths=settings.relative_paths,
                    uses_tools=mode_result.tool_records > 0,
                    has_weights=any(r.has_weights for r in chosen),
                    last_turn_only=all(last for last, _ in patterns),
                    weighted_records=mode_result.weighted_records,
                )
                for name, indices in ((TRAIN_FILE, split.train), (VAL_FILE, split.val)):
                    if not indices:
                        continue
                    path = staged.path / folder / name
                    with RowWriter(str(path), "jsonl") as writer:
                        for i in indices:
                            writer.write(target.row(chosen[i], ctx))
                    if link_if_same(path, written):
                        mode_result.linked.append((folder / name).as_posix())
                for name, text in target.extra_files(ctx).items():
                    write_file_atomic(staged.path / folder / name, text.encode("utf-8"))
                mode_result.notes += ctx.notes
            in_val = set(split.val)
            with RowWriter(str(staged.path / mode / LINEAGE_FILE), "jsonl") as writer:
                for i, record in enumerate(chosen):
                    writer.write(lineage_row(record, "val" if i in in_val else "train", kinds[i], source_name))

        result.files = _file_entries(staged.path)
        write_file_atomic(staged.path / CARD_FILE, render_card(result).encode("utf-8"))
        card = staged.path / CARD_FILE
        result.files.append(FileEntry(CARD_FILE, card.stat().st_size, file_sha256(card)))
        result.files.sort(key=lambda f: f.path)
        write_file_atomic(
            staged.path / MANIFEST, (json.dumps(result.manifest(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        )
        _report(progress, f"moving the export into {out_dir}")
    return result


def _file_entries(root: Path) -> list[FileEntry]:
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        rows = None
        if path.suffix == ".jsonl":
            with open(path, "rb") as fh:
                rows = sum(1 for line in fh if line.strip())
        entries.append(FileEntry(rel, path.stat().st_size, file_sha256(path), rows))
    return entries


def _none(i: int) -> set[int]:
    return set()


def _build_mode(
    mode: str,
    records: list[Record],
    settings: ExportSettings,
    counter: TokenCounterLike,
    progress: Progress | None,
    length_cache: dict[bool, tuple[list[str], LengthOutcome]],
) -> tuple[ModeResult, list[Record], list[str]]:
    """The counts of one mode, its records (in input order) and their response kinds."""
    out = ModeResult(mode=mode, candidates=len(records))
    picked = [responses.choose(r, mode, settings.prefer_simplified) for r in records]
    # the modes share the length step when they train on the same responses
    originals = any(kind == responses.ORIGINAL for _, kind in picked)
    if originals not in length_cache:
        _report(progress, f"{mode}: counting tokens")
        length = apply_length([r for r, _ in picked], counter, settings.max_tokens, settings.split_long)
        length_cache[originals] = ([kind for _, kind in picked], length)
    record_kinds, length = length_cache[originals]
    kinds = [record_kinds[i] for i in length.origins]  # a piece has the response kind of its record
    out.length_dropped = length.dropped
    out.split_records = length.split
    out.split_pieces = length.pieces
    out.split_pairs_dropped = length.pairs_dropped
    out.unrenderable = length.unrenderable
    out.render_errors = dict(length.render_errors)
    out.after_length = len(length.records)
    chosen, tokens = length.records, length.tokens

    if mode == "lft":
        _report(progress, "lft: grouping records for diversity")
        strata = strata_for(chosen, settings.diversity, settings.seed, settings.lft_size, settings.clusters)
        rules = lft_rules(settings.lft_rules, settings.lft_min_response, settings.lft_max_response)
        _report(progress, "lft: quality filters")
        out.quality = apply_quality(chosen, rules)
        out.rules = rule_settings(rules)
        kept = out.quality.kept
        out.after_quality = len(kept)
        _report(progress, "lft: choosing the subset")
        out.selection, picks = _select(chosen, kept, strata, settings)
        selected = [kept[j] for j in picks]
        out.not_selected = len(kept) - len(selected)
        out.coverage = Coverage.of(strata.kind, strata.labels, [strata.labels[i] for i in selected])
        chosen = [chosen[i] for i in selected]
        tokens = [tokens[i] for i in selected]
        kinds = [kinds[i] for i in selected]

    if not chosen:
        raise InputError(
            f"no record is left for the {mode.upper()} set ({out.candidates} usable, {out.length_dropped} over "
            f"--max-length" + (f", {out.unrenderable} the chat template cannot render" if out.unrenderable else "") + (f", {sum(out.quality.removed.values())} removed by the quality rules" if out.quality else "")
            + "); nothing was written",
            Location(display_name(settings.source)),
        )
    _report(progress, f"{mode}: finding duplicates for the split")
    n_val = val_count(len(chosen), settings.val_ratio, settings.val_size)
    index = duplicate_index(chosen) if n_val else None
    out.split = split_records([r.id for r in chosen], n_val, settings.seed, index.neighbours if index else _none)
    out.records = len(chosen)
    out.responses = dict(Counter(kinds))
    out.tokens = {
        "train": Distribution.of([tokens[i] for i in out.split.train]),
        "val": Distribution.of([tokens[i] for i in out.split.val]),
        "all": Distribution.of(tokens),
    }
    out.categories = dict(Counter(category_of(r) or "(none)" for r in chosen).most_common())
    if out.selection is not None and out.selection.filled:
        out.warnings.append(
            f"--lft-select deita: only {out.records - out.selection.filled} records are less similar than "
            f"--lft-similarity {settings.similarity:g} to every record taken before them; {out.selection.filled} "
            "records similar to a taken one were added to reach --lft-size (lower the size, or raise the threshold)"
        )
    return out, chosen, kinds


def _select(
    chosen: list[Record], kept: list[int], strata: Strata, settings: ExportSettings
) -> tuple[Selection, list[int]]:
    """The LFT subset among the records ``kept`` by the quality rules: positions in ``kept``, and what was done."""
    pool = [chosen[i] for i in kept]
    labels = [strata.labels[i] for i in kept]
    selection = Selection(settings.lft_select)
    if settings.lft_select not in SCORED_METHODS:
        sub = [strata.sublabels[i] for i in kept] if strata.sublabels is not None else None
        return selection, select(labels, settings.lft_size, settings.seed, prompt_keys(pool), sub)
    selection.score = settings.score_names
    scores = [score_of(r, settings.score_names) for r in chosen]
    pool_scores = [scores[i] for i in kept]
    if settings.lft_select == "quality":
        picks = select_quality(labels, pool_scores, settings.lft_size, settings.seed)
    else:
        get = text_getter(GUARD_TEXT)
        found = select_deita(
            labels, pool_scores, [get(r) for r in pool], settings.lft_size, settings.seed, settings.similarity
        )
        picks = found.chosen
        selection.similarity = settings.similarity
        selection.skipped = len(found.skipped)
        selection.filled = found.filled
        selection.examples = [
            {"id": pool[s.index].id, "like": pool[s.like].id, "jaccard": round(s.jaccard, 3)}
            for s in found.skipped[:SIMILAR_EXAMPLES]
        ]
    selection.unscored = sum(1 for s in scores if s is None)
    selection.distributions = {
        "candidates": ScoreSummary.of(scores),
        "after quality rules": ScoreSummary.of(pool_scores),
        "subset": ScoreSummary.of([pool_scores[j] for j in picks]),
    }
    return selection, picks


__all__ = ["DEFAULT_LFT_SIZE", "DEFAULT_SEED", "ExportResult", "ExportSettings", "ModeResult", "run_export"]

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
   or by the scores of ``itkit score`` (``quality``, ``deita``:
   :mod:`itkit.export.scored`);
5. the train/validation split without leakage (:mod:`itkit.export.split`);
6. refuse a target that cannot hold a record (before writing anything); the
   files of every target (identical data files hard-linked), a lineage file,
   the dataset card and the manifest,
   built in a temporary folder renamed to OUTDIR at the end
   (:mod:`itkit.export.outdir`).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import itkit
from itkit.dataset import AUTO, RecordReader, RejectLog
from itkit.errors import InputError, Location, UsageError
from itkit.export import responses
from itkit.export.card import render_card
from itkit.export.duplicates import duplicate_index, prompt_keys
from itkit.export.length import (
    MESSAGE_OVERHEAD_TOKENS,
    SPLIT_OPERATION,
    Counter as TokenCounterLike,
    LengthOutcome,
    apply_length,
    is_exact,
    make_counter,
)
from itkit.export.outdir import MANIFEST, MANIFEST_FORMAT, StagedDir, check_target
from itkit.export.written import check_targets, cutoff_len, file_sha256, link_if_same, validation_warnings
from itkit.export.quality import (
    DEFAULT_LFT_RULES,
    DEFAULT_MAX_RESPONSE_WORDS,
    DEFAULT_MIN_RESPONSE_WORDS,
    QualityOutcome,
    apply_quality,
    lft_rules,
    rule_settings,
)
from itkit.export.scored import (
    DEFAULT_SCORE,
    DEFAULT_SIMILARITY,
    GUARD_TEXT,
    SCORED_METHODS,
    SELECT_METHODS,
    SIMILAR_EXAMPLES,
    UNSCORED_CHOICES,
    BadScore,
    ScoreSummary,
    Selection,
    missing_score,
    score_field,
    score_of,
    select_deita,
    select_quality,
)
from itkit.export.split import Split, split_records, val_count
from itkit.export.subset import DIVERSITY_MODES, Coverage, Strata, category_of, select, strata_for
from itkit.export.targets import (
    MODES,
    TARGET_NAMES,
    TRAIN_FILE,
    TRL_FORMATS,
    VAL_FILE,
    TargetContext,
    TrainingDefaults,
    get_targets,
    trained_pattern,
)
from itkit.dedup import text_getter
from itkit.io.paths import check_paths
from itkit.io.rows import display_name, is_hub
from itkit.io.sinks import RowWriter, write_file_atomic
from itkit.records import META_EXTRA, META_PROVENANCE, META_SOURCE, META_SOURCE_FORMAT, Record
from itkit.stats import Distribution

DEFAULT_LFT_SIZE = 1000
"""LIMA and Ghosh et al. (2024): about 1,000 diverse examples are what LoRA fine-tuning needs."""
DEFAULT_SEED = 0
LINEAGE_FILE = "lineage.jsonl"
CARD_FILE = "README.md"
REJECTED_FILE = "rejected.jsonl"

Progress = Callable[[str], None]


@dataclass
class ExportSettings:
    source: str
    out_dir: str
    from_format: str = AUTO
    on_error: str = "fail"
    modes: tuple[str, ...] = MODES
    targets: tuple[str, ...] = TARGET_NAMES
    lft_size: int = DEFAULT_LFT_SIZE
    seed: int = DEFAULT_SEED
    prefer_simplified: bool = False
    val_ratio: float | None = None
    val_size: int | None = None
    max_tokens: int | None = None
    encoding: str | None = None
    model: str | None = None
    tokenizer: str | None = None
    split_long: bool = False
    trl_format: str = "messages"
    diversity: str = "auto"
    clusters: int | None = None
    lft_select: str = SELECT_METHODS[0]
    lft_score: tuple[str, ...] | None = None
    """Scorer names whose product ranks the records (None: :data:`~itkit.export.scored.DEFAULT_SCORE`)."""
    lft_similarity: float | None = None
    """deita: the guard's Jaccard threshold (None: :data:`~itkit.export.scored.DEFAULT_SIMILARITY`)."""
    lft_unscored: str | None = None
    """error or last (None: error)."""
    lft_rules: tuple[str, ...] = DEFAULT_LFT_RULES
    lft_min_response: int | None = DEFAULT_MIN_RESPONSE_WORDS
    lft_max_response: int | None = DEFAULT_MAX_RESPONSE_WORDS
    base_model: str | None = None
    relative_paths: bool = False
    overwrite: bool = False
    training: TrainingDefaults = field(default_factory=TrainingDefaults)
    invoked_as: str | None = None
    """The command line as the user typed it (the CLI sets it), recorded in the card and manifest."""

    @classmethod
    def from_options(
        cls,
        source: str,
        out_dir: str,
        *,
        mode: str = "both",
        target: Sequence[str] | None = None,
        lft_rules: Iterable[str] = DEFAULT_LFT_RULES,
        lft_min_response: int = DEFAULT_MIN_RESPONSE_WORDS,
        lft_max_response: int = DEFAULT_MAX_RESPONSE_WORDS,
        lft_score: Iterable[str] | None = None,
        **settings: Any,
    ) -> "ExportSettings":
        """The settings of ``itkit export``'s options (and a recipe's export block).

        ``mode`` both: both modes; no ``target``: every target; ``lft_rules``:
        rule names, trimmed, ``none`` for no rules; 0 for a response bound: no
        bound. The other settings pass through as they are.
        """
        rules = tuple(r.strip() for r in lft_rules if r.strip() and r.strip().lower() != "none")
        return cls(
            source=source,
            out_dir=out_dir,
            modes=MODES if mode == "both" else (mode,),
            targets=tuple(target) if target else TARGET_NAMES,
            lft_rules=rules,
            lft_min_response=lft_min_response or None,
            lft_max_response=lft_max_response or None,
            lft_score=None if lft_score is None else tuple(name.strip() for name in lft_score),
            **settings,
        )

    def check(self) -> None:
        for mode in self.modes:
            if mode not in MODES:
                raise UsageError(f"unknown mode '{mode}'; choose lft, sft or both")
        if self.seed < 0:
            raise UsageError(f"--seed must be 0 or more, got {self.seed}")
        if self.lft_size < 1:
            raise UsageError(f"--lft-size must be at least 1, got {self.lft_size}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"--max-length must be at least 1, got {self.max_tokens}")
        if self.split_long and self.max_tokens is None:
            raise UsageError("--split-long needs --max-length (the budget each piece must fit)")
        if self.trl_format not in TRL_FORMATS:
            raise UsageError(f"--trl-format must be one of {', '.join(TRL_FORMATS)}, not '{self.trl_format}'")
        if self.diversity not in DIVERSITY_MODES:
            raise UsageError(f"--diversity must be one of {', '.join(DIVERSITY_MODES)}, not '{self.diversity}'")
        if self.clusters is not None and self.clusters < 2:
            raise UsageError(f"--clusters must be at least 2, got {self.clusters}")
        self._check_selection()
        if self.on_error not in ("fail", "skip"):
            raise UsageError(f"--on-error must be fail or skip, not '{self.on_error}'")
        if self.tokenizer and (self.encoding or self.model):
            raise UsageError("give --tokenizer or --encoding/--tokenizer-model, not both")
        if self.encoding and self.model:
            raise UsageError("give --encoding or --tokenizer-model, not both")
        val_count(10, self.val_ratio, self.val_size)  # validates the split options
        get_targets(list(self.targets))
        if "lft" in self.modes:
            lft_rules(self.lft_rules, self.lft_min_response, self.lft_max_response)  # unknown rules, bad bounds

    def _check_selection(self) -> None:
        if self.lft_select not in SELECT_METHODS:
            raise UsageError(f"--lft-select must be one of {', '.join(SELECT_METHODS)}, not '{self.lft_select}'")
        scored = " or ".join(SCORED_METHODS)
        if self.lft_select not in SCORED_METHODS:
            for name, value in (("--lft-score", self.lft_score), ("--lft-unscored", self.lft_unscored)):
                if value is not None:
                    raise UsageError(f"{name} applies to --lft-select {scored}, not {self.lft_select}")
        if self.lft_similarity is not None:
            if self.lft_select != "deita":
                raise UsageError(f"--lft-similarity applies to --lft-select deita, not {self.lft_select}")
            if not 0 < self.lft_similarity <= 1:
                raise UsageError(f"--lft-similarity must be above 0 and at most 1, got {self.lft_similarity:g}")
        if self.lft_score is not None:
            if not self.lft_score or not all(self.lft_score):
                raise UsageError("--lft-score needs scorer names (e.g. quality, or quality,complexity)")
            twice = sorted({n for n in self.lft_score if self.lft_score.count(n) > 1})
            if twice:
                raise UsageError(f"--lft-score names {twice[0]} twice")
        if self.lft_unscored is not None and self.lft_unscored not in UNSCORED_CHOICES:
            raise UsageError(f"--lft-unscored must be one of {', '.join(UNSCORED_CHOICES)}, not '{self.lft_unscored}'")

    @property
    def scored(self) -> bool:
        """The LFT subset is chosen by scores (so every LFT candidate needs one)."""
        return "lft" in self.modes and self.lft_select in SCORED_METHODS

    @property
    def score_names(self) -> tuple[str, ...]:
        return self.lft_score or DEFAULT_SCORE

    @property
    def similarity(self) -> float:
        return DEFAULT_SIMILARITY if self.lft_similarity is None else self.lft_similarity

    @property
    def unscored(self) -> str:
        return self.lft_unscored or UNSCORED_CHOICES[0]

    @property
    def mode_option(self) -> str:
        return "both" if set(self.modes) == set(MODES) else self.modes[0]

    def command_line(self) -> str:
        """An ``itkit export`` command with every setting explicit: it reproduces this export."""
        args = ["itkit", "export", self.source, "-o", self.out_dir, "--mode", self.mode_option]
        args += ["--target", ",".join(t.name for t in get_targets(list(self.targets)))]
        if self.from_format != AUTO:
            args += ["--from", self.from_format]
        if self.on_error != "fail":
            args += ["--on-error", self.on_error]
        if "lft" in self.modes:
            args += ["--lft-size", str(self.lft_size), "--diversity", self.diversity]
            if self.clusters:
                args += ["--clusters", str(self.clusters)]
            args += ["--lft-select", self.lft_select]
            if self.lft_select in SCORED_METHODS:
                args += ["--lft-score", ",".join(self.score_names), "--lft-unscored", self.unscored]
            if self.lft_select == "deita":
                args += ["--lft-similarity", f"{self.similarity:g}"]
            args += ["--lft-rules", ",".join(self.lft_rules) or "none"]
            args += ["--lft-min-response", _opt(self.lft_min_response), "--lft-max-response", _opt(self.lft_max_response)]
            if self.prefer_simplified:
                args.append("--prefer-simplified")
        args += ["--seed", str(self.seed)]
        if self.val_size is not None:
            args += ["--val-size", str(self.val_size)]
        else:
            args += ["--val-ratio", f"{self.val_ratio if self.val_ratio is not None else 0.1:g}"]
        if self.max_tokens is not None:
            args += ["--max-length", str(self.max_tokens)]
            if self.split_long:
                args.append("--split-long")
        if self.tokenizer:
            args += ["--tokenizer", self.tokenizer]
        elif self.model:
            args += ["--tokenizer-model", self.model]
        elif self.encoding:
            args += ["--encoding", self.encoding]
        if any(t.name == "trl" for t in get_targets(list(self.targets))):
            args += ["--trl-format", self.trl_format]
        if self.base_model:
            args += ["--base-model", self.base_model]
        if self.relative_paths:
            args.append("--relative-paths")
        if self.overwrite:
            args.append("--overwrite")
        return shlex.join(args)

    def as_dict(self) -> dict[str, Any]:
        return {
            "modes": list(self.modes),
            "targets": [t.name for t in get_targets(list(self.targets))],
            "from_format": self.from_format,
            "on_error": self.on_error,
            "lft_size": self.lft_size,
            "seed": self.seed,
            "prefer_simplified": self.prefer_simplified,
            "val_ratio": self.val_ratio,
            "val_size": self.val_size,
            "max_tokens": self.max_tokens,
            "split_long": self.split_long,
            "message_overhead_tokens": MESSAGE_OVERHEAD_TOKENS,
            "trl_format": self.trl_format,
            "diversity": self.diversity,
            "clusters": self.clusters,
            "lft_select": self.lft_select,
            "lft_score": list(self.score_names) if self.lft_select in SCORED_METHODS else None,
            "lft_similarity": self.similarity if self.lft_select == "deita" else None,
            "lft_unscored": self.unscored if self.lft_select in SCORED_METHODS else None,
            "lft_rules": list(self.lft_rules),
            "lft_min_response_words": self.lft_min_response,
            "lft_max_response_words": self.lft_max_response,
            "base_model": self.base_model,
            "relative_paths": self.relative_paths,
        }


def _opt(value: int | None) -> str:
    return "0" if value is None else str(value)


@dataclass
class FileEntry:
    path: str
    bytes: int
    sha256: str
    rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.rows is not None:
            out["rows"] = self.rows
        return out


@dataclass
class ModeResult:
    mode: str
    candidates: int = 0
    """Usable records entering this mode."""
    length_dropped: int = 0
    split_records: int = 0
    split_pieces: int = 0
    split_pairs_dropped: int = 0
    unrenderable: int = 0
    """Records the model's chat template refuses, left out."""
    render_errors: dict[str, str] = field(default_factory=dict)
    after_length: int = 0
    quality: QualityOutcome | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    """The LFT quality rules with every parameter (for the manifest)."""
    after_quality: int = 0
    not_selected: int = 0
    coverage: Coverage | None = None
    selection: Selection | None = None
    records: int = 0
    split: Split = field(default_factory=Split)
    responses: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, Distribution] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    cutoff_len: int = 0
    """The sequence length written into the configs."""
    tool_records: int = 0
    weighted_records: int = 0
    """Records whose weights leave some assistant turn untrained."""
    notes: list[str] = field(default_factory=list)
    """What a target cannot honour (per-turn weights...), for the card."""
    warnings: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    """Data files that are hard links to an identical file of another target."""

    @property
    def train(self) -> int:
        return len(self.split.train)

    @property
    def val(self) -> int:
        return len(self.split.val)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidates": self.candidates,
            "length": {
                "dropped": self.length_dropped,
                "split_records": self.split_records,
                "split_pieces": self.split_pieces,
                "split_pairs_dropped": self.split_pairs_dropped,
                "not_rendered": self.unrenderable,
                "not_rendered_examples": dict(self.render_errors),
                "kept": self.after_length,
            },
        }
        if self.quality is not None:
            out["quality"] = {
                "removed": sum(self.quality.removed.values()),
                "removed_by_rule": dict(self.quality.removed),
                "examples": dict(self.quality.examples),
                "kept": self.after_quality,
                "rules": self.rules,
            }
            out["not_selected"] = self.not_selected
        if self.coverage is not None:
            out["coverage"] = self.coverage.as_dict()
        if self.selection is not None:
            out["selection"] = self.selection.as_dict()
        out.update(
            records=self.records,
            train=self.train,
            val=self.val,
            split={
                "requested_val": self.split.requested,
                "moved_to_train": self.split.moved,
                "refilled": self.split.refilled,
            },
            responses=dict(self.responses),
            tokens={name: d.__dict__ for name, d in self.tokens.items()},
            categories=dict(self.categories),
            lineage=self.lineage,
            cutoff_len=self.cutoff_len,
            tool_records=self.tool_records,
            weighted_records=self.weighted_records,
            notes=list(self.notes),
            warnings=list(self.warnings),
        )
        return out


@dataclass
class ExportResult:
    settings: ExportSettings
    out_dir: str
    source_format: str = ""
    source_sha256: str | None = None
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    trimmed_trailing_user: int = 0
    no_exchange: int = 0
    no_trained_turn: int = 0
    """Records whose every assistant turn has weight 0: nothing to train on."""
    usable: int = 0
    with_both_responses: int = 0
    token_counter: str = ""
    exact_lengths: bool = False
    modes: dict[str, ModeResult] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "itkit_version": itkit.__version__,
            "command": self.settings.command_line(),
            "invoked_as": self.settings.invoked_as,
            "out_dir": self.out_dir,
            "source": {
                "path": display_name(self.settings.source),
                "format": self.source_format,
                "sha256": self.source_sha256,
                "rows": self.rows,
                "loaded": self.loaded,
                "rejected": self.rejected,
                "rejected_reasons": dict(self.reject_reasons),
                "trimmed_trailing_user_turn": self.trimmed_trailing_user,
                "dropped_no_exchange": self.no_exchange,
                "dropped_no_trained_turn": self.no_trained_turn,
                "usable": self.usable,
                "with_simplified_and_original": self.with_both_responses,
            },
            "settings": self.settings.as_dict(),
            "seed": self.settings.seed,
            "token_counter": self.token_counter,
            "exact_lengths": self.exact_lengths,
            "modes": {mode: r.as_dict() for mode, r in self.modes.items()},
        }

    @property
    def warnings(self) -> list[str]:
        return [w for m in self.modes.values() for w in m.warnings]

    def manifest(self) -> dict[str, Any]:
        out = {"format": MANIFEST_FORMAT, **self.as_dict()}
        out.pop("out_dir")  # the manifest does not depend on where OUTDIR is
        out["files"] = [f.as_dict() for f in self.files]
        return out


# ---------------------------------------------------------------------------


def usable(record: Record) -> Record | None:
    """The record ending with an assistant turn (a trailing user turn removed), or None if nothing is left."""
    if record.has_output:
        return record
    turns = list(record.turns)
    while turns and turns[-1].role != "assistant":
        turns.pop()
    if not turns:
        return None
    return record.model_copy(update={"turns": turns, "input": "", "metadata": dict(record.metadata)})


def provenance_of(record: Record) -> list[dict[str, Any]]:
    """The record's rewrite steps: a ``provenance`` field its format kept as extra, then its own provenance."""
    extra = record.metadata.get(META_EXTRA)
    steps: list[Any] = []
    for found in (extra.get(META_PROVENANCE) if isinstance(extra, dict) else None, record.metadata.get(META_PROVENANCE)):
        if isinstance(found, list):
            steps.extend(found)
    return [p for p in steps if isinstance(p, dict)]


def lineage_summary(records: Sequence[Record], default_source: str) -> dict[str, Any]:
    """Sources, source formats and rewrite steps (from provenance) of a set of records."""
    sources: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    steps: Counter[tuple[str, str, str]] = Counter()
    rewritten = 0
    for r in records:
        sources[str(r.metadata.get(META_SOURCE) or default_source)] += 1
        formats[str(r.metadata.get(META_SOURCE_FORMAT) or "unknown")] += 1
        prov = provenance_of(r)
        if any(p.get("operation") != SPLIT_OPERATION for p in prov):
            rewritten += 1
        for p in prov:
            steps[(str(p.get("method") or "?"), str(p.get("operation") or ""), str(p.get("model") or ""))] += 1
    return {
        "sources": dict(sources.most_common()),
        "source_formats": dict(formats.most_common()),
        "rewritten_records": rewritten,
        "steps": [
            {"method": m, "operation": o, "model": model, "records": n}
            for (m, o, model), n in sorted(steps.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def _lineage_row(record: Record, split: str, response: str, default_source: str) -> dict[str, Any]:
    parent = record.id
    part = 0
    for p in provenance_of(record):
        if isinstance(p, dict) and p.get("operation") == SPLIT_OPERATION:
            parent = str(p.get("parent_id", parent))
            part = int(p.get("part", 0))
    return {
        "id": record.id,
        "split": split,
        "source_id": parent,
        "part": part,
        "response": response,
        "category": category_of(record) or "",
        "source": str(record.metadata.get(META_SOURCE) or default_source),
        "provenance": provenance_of(record),
    }


class Unscored:
    """LFT candidates without the score used for the selection: how many, and where the first one is."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[Location | None, str, str] | None = None

    def check(self, record: Record, names: Sequence[str], location: Location | None) -> None:
        """Count ``record`` if it lacks a score; a score that is not a number is a located error."""
        try:
            value = score_of(record, names)
        except BadScore as err:
            raise InputError(err.reason, location, err.field) from None
        if value is None:
            self.count += 1
            if self.first is None:
                self.first = (location, record.id, missing_score(record, names))

    def refuse(self, total: int, names: Sequence[str], source: Location) -> None:
        """Stop the export (``--lft-unscored error``) when a candidate has no score."""
        if self.first is None:
            return
        location, rid, name = self.first
        how = f"itkit score SRC -o OUT --scorer {name}"
        if self.count == total:
            raise InputError(
                f"no record has a '{name}' score ({score_field(name)}): score them first ({how}), or choose "
                "--lft-select diverse; nothing was written",
                source,
            )
        raise InputError(
            f"record '{rid}' has no '{name}' score; {self.count} of {total} records "
            f"{'has' if self.count == 1 else 'have'} none: score them ({how}), "
            "or pass --lft-unscored last to rank them below every scored record; nothing was written",
            location,
            score_field(name),
        )


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
                unscored.refuse(len(records), settings.score_names, Location(display_name(settings.source)))
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
                    writer.write(_lineage_row(record, "val" if i in in_val else "train", kinds[i], source_name))

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

"""What an export did: the counts of each mode, the files written, the manifest (:class:`ExportResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import itkit
from itkit.export.outdir import MANIFEST_FORMAT
from itkit.export.quality import QualityOutcome
from itkit.export.scored import Selection
from itkit.export.settings import ExportSettings
from itkit.export.split import Split
from itkit.export.subset import Coverage
from itkit.io.rows import display_name
from itkit.stats import Distribution

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

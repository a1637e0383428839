"""The settings of an export (``itkit export``'s options, a recipe's ``export:`` block), checked before it runs.

:meth:`ExportSettings.check` raises :class:`~itkit.errors.UsageError` for a bad
combination; :meth:`ExportSettings.command_line` gives an ``itkit export``
command with every setting explicit (the card and the manifest record it).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from itkit.dataset import AUTO
from itkit.errors import UsageError
from itkit.export.length import MESSAGE_OVERHEAD_TOKENS
from itkit.export.quality import DEFAULT_LFT_RULES, DEFAULT_MAX_RESPONSE_WORDS, DEFAULT_MIN_RESPONSE_WORDS, lft_rules
from itkit.export.deita import DEFAULT_SIMILARITY
from itkit.export.scored import DEFAULT_SCORE, SCORED_METHODS, SELECT_METHODS, UNSCORED_CHOICES
from itkit.export.split import val_count
from itkit.export.subset import DIVERSITY_MODES
from itkit.export.targets import MODES, TARGET_NAMES, TRL_FORMATS, TrainingDefaults, get_targets

DEFAULT_LFT_SIZE = 1000
"""LIMA and Ghosh et al. (2024): about 1,000 diverse examples are what LoRA fine-tuning needs."""
DEFAULT_SEED = 0


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
    """deita: the guard's Jaccard threshold (None: :data:`~itkit.export.deita.DEFAULT_SIMILARITY`)."""
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

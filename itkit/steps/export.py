"""The export (``itkit export``, a recipe's ``export:`` block): the LoRA (LFT) and full fine-tuning (SFT) sets."""

from __future__ import annotations

from typing import Any, Callable

from itkit.export.settings import DEFAULT_LFT_SIZE, DEFAULT_SEED
from itkit.export.deita import DEFAULT_SIMILARITY
from itkit.export.scored import DEFAULT_SCORE, SELECT_METHODS, UNSCORED_CHOICES
from itkit.export.quality import DEFAULT_LFT_RULES, DEFAULT_MAX_RESPONSE_WORDS, DEFAULT_MIN_RESPONSE_WORDS
from itkit.export.subset import DIVERSITY_MODES
from itkit.export.targets import MODES, TARGET_NAMES, TRL_FORMATS
from itkit.steps import headlines
from itkit.steps.io import EXPORT_FOLDER, INTERMEDIATE_FORMAT, SUMMARY_FILE, StepIO, StepOutcome, write_json
from itkit.steps.spec import COMMA, Context, Opt, Step

PANEL = "Export"
LENGTH_PANEL = "Export length"
LFT_PANEL = "Export LFT subset"

OPTS = (
    Opt("mode", str, "both", "lft: the LoRA subset; sft: the full set; both.", choices=(*MODES, "both")),
    Opt("target", str, short="-t", many=COMMA, metavar="TARGETS", default_text="all",
        help=f"Targets (comma-separated or repeated): {', '.join(TARGET_NAMES)}."),
    Opt("lft_size", int, DEFAULT_LFT_SIZE, "Records in the LFT subset (all if fewer pass the filters).", panel=LFT_PANEL),
    Opt("seed", int, DEFAULT_SEED, "Seed of the subset, the clusters and the split."),
    Opt("prefer_simplified", bool, False, "LFT takes the simplified response, not the original.", panel=LFT_PANEL),
    Opt("val_ratio", float, default_text="0.1", help="Share of each set held out for validation."),
    Opt("val_size", int, ge=0, help="Validation records per set (instead of --val-ratio)."),
    Opt("max_length", int, old="max_tokens", panel=LENGTH_PANEL,
        help="Token budget per record: longer ones are dropped (or split)."),
    Opt("encoding", str, default_text="cl100k_base", metavar="NAME", panel=LENGTH_PANEL, help="tiktoken encoding for token counts."),
    Opt("tokenizer_model", str, old="model", metavar="MODEL", panel=LENGTH_PANEL, help="Count tokens with this model's encoding (e.g. gpt-4o)."),
    Opt("tokenizer", str, metavar="PATH", panel=LENGTH_PANEL,
        help="The model's tokenizer folder (or its tokenizer.json): exact lengths from its chat template."),
    Opt("split_long", bool, False, "Split over-long conversations at exchanges instead of dropping them.",
        panel=LENGTH_PANEL),
    Opt("trl_format", str, TRL_FORMATS[0], "TRL rows: messages, or conversational prompt-completion.",
        choices=TRL_FORMATS, metavar="FORMAT"),
    Opt("diversity", str, "auto", "Spread the LFT subset over categories, topic clusters or at random.",
        choices=DIVERSITY_MODES, panel=LFT_PANEL),
    Opt("clusters", int, default_text="about sqrt(records), at most 50", panel=LFT_PANEL,
        help="Number of topic clusters."),
    Opt("lft_select", str, SELECT_METHODS[0], "diverse: seeded, per stratum; quality: highest scores per stratum; "
        "deita: score-first, skipping similar prompts.", choices=SELECT_METHODS, metavar="METHOD", panel=LFT_PANEL),
    Opt("lft_score", str, many=COMMA, metavar="SCORERS", default_text=",".join(DEFAULT_SCORE), panel=LFT_PANEL,
        help="quality/deita: the itkit score scorer(s) to rank by (several: their product)."),
    Opt("lft_similarity", float, default_text=str(DEFAULT_SIMILARITY), ge=0.0, le=1.0, panel=LFT_PANEL,
        help="deita: skip a record whose prompt is this similar (Jaccard) to a taken one."),
    Opt("lft_unscored", str, default_text=UNSCORED_CHOICES[0], choices=UNSCORED_CHOICES, panel=LFT_PANEL,
        help="quality/deita: a record without the score is an error, or ranks last."),
    Opt("lft_rules", str, tuple(DEFAULT_LFT_RULES), "Quality rules of the LFT subset (see itkit filter; none: no rules).",
        many=COMMA, metavar="RULES", panel=LFT_PANEL),
    Opt("lft_min_response", int, DEFAULT_MIN_RESPONSE_WORDS, "LFT: fewest words in a response (0: no minimum).", ge=0,
        panel=LFT_PANEL),
    Opt("lft_max_response", int, DEFAULT_MAX_RESPONSE_WORDS, "LFT: most words in a response (0: no maximum).", ge=0,
        panel=LFT_PANEL),
    Opt("base_model", str, metavar="MODEL", help="Model to fine-tune, written into the configs (LLaMA-Factory's template: too)."),
    Opt("relative_paths", bool, False, "Configs name their data relative to their own folder (OUTDIR can move)."),
)
PATH_OPTIONS = ("tokenizer",)
"""Options that name a file: relative to the recipe's folder in a recipe."""
SETTING_FOR_OPTION = {"max_length": "max_tokens", "tokenizer_model": "model"}
"""Options whose :class:`~itkit.export.settings.ExportSettings` field has another name."""


def settings_for(o: Any, source: str, out_dir: str, ctx: Context, **plumbing: Any):
    """The :class:`~itkit.export.settings.ExportSettings` of these options."""
    from itkit.export import ExportSettings

    return ExportSettings.from_options(
        source,
        out_dir,
        **{SETTING_FOR_OPTION.get(k, k): v for k, v in o.model_dump(exclude=set(PATH_OPTIONS)).items()},
        **{name: ctx.resolve(getattr(o, name)) if getattr(o, name) else None for name in PATH_OPTIONS},
        **plumbing,
    )


def prepare(o: Any, ctx: Context) -> None:
    """Check the settings (targets, rules, split and length options) before anything runs."""
    settings_for(o, "-", "-", ctx, from_format=INTERMEDIATE_FORMAT, on_error="fail", overwrite=True).check()


def execute(settings: Any, progress: Callable[[str], None] | None = None):
    """``run_export``: an :class:`~itkit.export.result.ExportResult`."""
    from itkit.export import run_export

    return run_export(settings, progress=progress) if progress is not None else run_export(settings)


def run(o: Any, io: StepIO, ctx: Context) -> StepOutcome:
    """The export of a run: into the stage folder's output/ (``overwrite``: the run owns that folder)."""
    settings = settings_for(
        o, str(io.input), str(io.folder / EXPORT_FOLDER), ctx, from_format=INTERMEDIATE_FORMAT, on_error="fail",
        overwrite=True,
    )
    result = execute(settings)
    write_json(io.folder / SUMMARY_FILE, result.as_dict())
    removed: dict[str, int] = {}
    if result.no_exchange:
        removed["no exchange"] = result.no_exchange
    if result.no_trained_turn:
        removed["every assistant turn weighted 0"] = result.no_trained_turn
    for mode, m in result.modes.items():
        if m.length_dropped:
            removed[f"{mode}: over max_length"] = m.length_dropped
        if m.unrenderable:
            removed[f"{mode}: the chat template cannot render"] = m.unrenderable
        if m.quality is not None:
            for rule, n in m.quality.removed.items():
                if n:
                    removed[f"{mode}: {rule}"] = n
    return StepOutcome(
        records_in=result.rows,
        records_out=None,
        removed=removed,
        rejected=result.rejected,
        partial=bool(result.rejected),
        outputs={mode: m.records for mode, m in result.modes.items()},
    ).headed(headlines.export_headline({mode: m.records for mode, m in result.modes.items()}))


STEP = Step(
    "export",
    "write the LFT and SFT sets for every target",
    OPTS,
    panel=PANEL,
    prepare=prepare,
    execute=execute,
    plumbing=("src", "output", "from", "on_error", "overwrite", "quiet", "json"),
)

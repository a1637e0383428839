"""Export one cleaned dataset as LoRA (LFT) and full fine-tuning (SFT) sets for TRL, LLaMA-Factory, Axolotl,
and plain Alpaca/ShareGPT.

    from itkit.export import ExportSettings, run_export
    result = run_export(ExportSettings("clean.jsonl", "out", targets=("trl", "llama-factory")))
    result.modes["lft"].train, result.modes["lft"].coverage

See :mod:`itkit.export.pipeline` for the steps, :mod:`itkit.export.settings` for the settings and
:mod:`itkit.export.result` for what an export reports.
"""

from itkit.export.pipeline import run_export
from itkit.export.result import ExportResult, ModeResult
from itkit.export.settings import DEFAULT_LFT_SIZE, DEFAULT_SEED, ExportSettings
from itkit.export.targets import MODES, TARGET_NAMES, TRL_FORMATS, TrainingDefaults

__all__ = [
    "DEFAULT_LFT_SIZE",
    "DEFAULT_SEED",
    "ExportResult",
    "ExportSettings",
    "MODES",
    "ModeResult",
    "TARGET_NAMES",
    "TRL_FORMATS",
    "TrainingDefaults",
    "run_export",
]

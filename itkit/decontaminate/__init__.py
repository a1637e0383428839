"""Benchmark decontamination (``itkit decontaminate``): see :mod:`.pipeline`."""

from itkit.decontaminate.benchmarks import BUILTIN, Benchmark, Item, load_benchmark, load_benchmarks
from itkit.decontaminate.pipeline import (
    DEFAULT_N,
    DEFAULT_THRESHOLD,
    MODES,
    DecontaminateOptions,
    DecontaminateSummary,
    Decontaminator,
    decontaminate_file,
)

__all__ = [
    "BUILTIN",
    "DEFAULT_N",
    "DEFAULT_THRESHOLD",
    "MODES",
    "Benchmark",
    "DecontaminateOptions",
    "DecontaminateSummary",
    "Decontaminator",
    "Item",
    "decontaminate_file",
    "load_benchmark",
    "load_benchmarks",
]

"""The command line: a thin layer over the library. Each module registers its commands on ``app``.

The import order is the order of ``itkit --help``: load and check, clean, rewrite, export, pipelines.
"""

from __future__ import annotations

from itkit.cli.app import app
from itkit.cli import data  # noqa: F401  (convert, validate, stats)
from itkit.cli import filter as _filter  # noqa: F401  (filter; aliased: not the builtin)
from itkit.cli import dedup as _dedup  # noqa: F401  (dedup)
from itkit.cli import decontaminate as _decontaminate  # noqa: F401  (decontaminate)
from itkit.cli import simplify as _simplify  # noqa: F401  (simplify)
from itkit.cli import self_instruct as _self_instruct  # noqa: F401  (self-instruct)
from itkit.cli import evol_instruct as _evol_instruct  # noqa: F401  (evol-instruct)
from itkit.cli import orca as _orca  # noqa: F401  (orca)
from itkit.cli import score as _score  # noqa: F401  (score)
from itkit.cli import export as _export  # noqa: F401  (export)
from itkit.cli import run as _run  # noqa: F401  (run)
from itkit.cli import report as _report  # noqa: F401  (report)


def main() -> None:
    app()


__all__ = ["app", "main"]

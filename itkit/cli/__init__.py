"""The command line: a thin layer over the library. Each module registers its commands on ``app``."""

from __future__ import annotations

from itkit.cli.app import app
from itkit.cli import data  # noqa: F401  (registers convert, validate, stats)
from itkit.cli import filter as _filter  # noqa: F401  (registers filter; aliased: not the builtin)
from itkit.cli import simplify as _simplify  # noqa: F401  (registers simplify)
from itkit.cli import orca as _orca  # noqa: F401  (registers orca)
from itkit.cli import evol_instruct as _evol_instruct  # noqa: F401  (registers evol-instruct)


def main() -> None:
    app()


__all__ = ["app", "main"]

"""The command line: a thin layer over the library. Each module of :data:`itkit.cli.launch.MODULES` registers
its commands on the root app (:mod:`itkit.cli.root`).

``from itkit.cli import app`` gives the app with every command registered. The console script
(:func:`main`) registers only the command it runs, so that ``itkit --help`` and ``itkit convert --help``
start fast (see :mod:`itkit.cli.launch`).
"""

from __future__ import annotations

from typing import Any


def main() -> None:
    from itkit.cli.launch import main as launch

    launch()


def __getattr__(name: str) -> Any:
    if name == "app":
        from itkit.cli.launch import load_all

        return load_all()
    raise AttributeError(f"module 'itkit.cli' has no attribute {name!r}")


__all__ = ["app", "main"]

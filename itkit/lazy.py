"""Third-party modules imported on first use, so that ``itkit --help`` does not pay for numpy & co.

``np = lazy_module("numpy")`` at the top of a module reads like an import; numpy is imported the first
time an attribute is looked up (a function runs), and from then on the attributes are plain lookups.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name`` until an attribute is needed, then holds that module's attributes."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__.update(module.__dict__)  # later lookups never come back here
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_target']!r}>"


def lazy_module(name: str) -> Any:
    """The module ``name``, imported when first used (typed ``Any``: use it as the module)."""
    return LazyModule(name)


__all__ = ["LazyModule", "lazy_module"]

"""itkit: turn instruction datasets into better fine-tuning data."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # slow to import: only when asked

    try:
        return version("itkit")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'itkit' has no attribute {name!r}")

"""itkit: turn instruction datasets into better fine-tuning data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("itkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

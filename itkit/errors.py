"""Typed errors of the library.

The library raises these; the CLI translates them once, at its edge, into a
one-line message and an exit code (see ``itkit.cli.root.handle_errors``).
Messages are complete sentences that name the file, line/record and field, and
say what to do next where there is something to do.
"""

from __future__ import annotations

# Exit codes (DEVELOPERS.md)
EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


class ItkitError(Exception):
    """Base class: a fatal, expected error with a user-facing message."""

    exit_code = EXIT_FATAL


class UsageError(ItkitError):
    """The command line or a setting is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class Location:
    """Where in an input a problem is: a source name plus line / record index."""

    __slots__ = ("source", "line", "column", "index")

    def __init__(
        self,
        source: str,
        line: int | None = None,
        column: int | None = None,
        index: int | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.index = index

    def __str__(self) -> str:
        where = self.position()
        return f"{self.source}, {where}" if where else self.source

    def position(self) -> str:
        """The line/column or index part alone ("line 3, column 7")."""
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
            if self.column is not None:
                parts.append(f"column {self.column}")
        elif self.index is not None:
            parts.append(f"index {self.index}")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        out: dict = {"source": self.source}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        if self.index is not None:
            out["index"] = self.index
        return out


class InputError(ItkitError):
    """A problem with input data. ``location`` says where; ``field`` which field."""

    def __init__(self, message: str, location: Location | None = None, field: str | None = None):
        self.reason = message
        self.location = location
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.location}: " if self.location is not None else ""
        field = f"field '{self.field}': " if self.field else ""
        return f"{where}{field}{self.reason}"


class ParseError(InputError):
    """The bytes are not valid JSON / UTF-8 / CSV etc."""


class SchemaError(InputError):
    """A record parsed but does not fit its format (missing or mistyped field)."""


class ConversionError(SchemaError):
    """A record cannot be written in the requested format without losing data."""


class FormatDetectionError(InputError):
    """No format, or more than one, matches the input; or formats are mixed."""


class SourceError(ItkitError):
    """A source or sink cannot be opened (missing file, offline Hub, bad extension)."""


class TokenizerError(ItkitError):
    """A tokenizer / tiktoken encoding cannot be loaded."""


class OutputError(ItkitError):
    """An output cannot be written."""

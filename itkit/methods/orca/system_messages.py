"""The Orca system messages, loaded as validated data from ``prompts/orca/system_messages.yaml``.

Each message has a number (1..16 as in the Orca paper), a one-line intent and
its text; message #1 is empty (no system message). ``--prompts-dir DIR``
overrides the file with ``DIR/orca/system_messages.yaml``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from itkit.templates import HASH_LENGTH, PromptError, parse_prompt_file, template_path

METHOD = "orca"
FILE_NAME = "system_messages"


class SystemMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int = Field(ge=1)
    intent: str
    text: str


class _SystemMessagesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int | str
    description: str = ""
    messages: list[SystemMessage] = Field(min_length=1)


@dataclass(frozen=True)
class SystemMessages:
    """The numbered system messages of one file, with the file's identity for provenance."""

    by_number: dict[int, SystemMessage]
    name: str
    version: int | str
    path: str
    hash: str

    @property
    def ref(self) -> str:
        """``name@version#hash`` for provenance."""
        return f"{self.name}@{self.version}#{self.hash}"

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(sorted(self.by_number))

    def text(self, number: int) -> str:
        return self.by_number[number].text

    def __len__(self) -> int:
        return len(self.by_number)

    def __getitem__(self, number: int) -> SystemMessage:
        return self.by_number[number]


def parse_system_messages(raw: bytes, path: str) -> SystemMessages:
    """Validate the bytes of a system-messages file; errors name the file and the field."""
    parsed = parse_prompt_file(raw, path, _SystemMessagesFile, "a system-messages file")
    by_number: dict[int, SystemMessage] = {}
    for message in parsed.messages:
        if message.number in by_number:
            raise PromptError(f"{path}: system message #{message.number} is defined twice")
        by_number[message.number] = message
    expected = list(range(1, len(by_number) + 1))
    if sorted(by_number) != expected:
        raise PromptError(
            f"{path}: system messages must be numbered 1..{len(by_number)} without gaps "
            f"(found {', '.join(map(str, sorted(by_number)))})"
        )
    return SystemMessages(
        by_number=dict(sorted(by_number.items())),
        name=parsed.name,
        version=parsed.version,
        path=path,
        hash=hashlib.sha256(raw).hexdigest()[:HASH_LENGTH],
    )


def load_system_messages(prompts_dir: str | Path | None = None) -> SystemMessages:
    """The validated Orca system messages (``prompts_dir`` overrides the built-in file)."""
    path = template_path(METHOD, FILE_NAME, prompts_dir)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_system_messages(raw, str(path))

"""Pure text-to-candidates parsing of Self-Instruct responses.

- :func:`parse_instruction_list`: the continuation of a numbered list (Self-Instruct style).
- :func:`parse_alpaca_tasks`: ``N. Instruction: / N. Input: / N. Output:`` blocks separated
  by ``###`` (Alpaca style).
- :func:`parse_yes_no`: the answer of the classification question.

They never raise anything but :class:`~itkit.llm.base.ResponseRejected` (which makes the
engine retry, then record the failure with the raw text), and only when a response holds
nothing usable. Whatever text is skipped is counted, never silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from itkit.llm.base import ResponseRejected

MAX_NEW_PER_PROMPT = 7
"""At most this many instructions are taken from one Self-Instruct response."""

NO_INPUT_MARKERS = frozenset({"<noinput>", "<no input>", "no input", "noinput", "<no_input>", "none", "n/a"})
"""Input values that mean "this task has no input" (Alpaca's ``<noinput>`` and variants)."""

_WS = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LETTER = re.compile(r"[^\W\d_]")

# A list marker at the start of a line: "9.", "9 .", "9)", "9:", "9 -", "Task 9:", "Instruction 9.",
# "(9)", "**9.**"; the punctuation must be followed by a space (or the line's end) so "3.14" or
# "5-star" are not markers.
_MARKER = re.compile(
    r"^[ \t]*(?:[*_]{1,2})?(?:(?:task|instruction)[ \t]*#?[ \t]*)?\(?(\d{1,3})[ \t]*(?:[.):]|[ \t]-|-(?=[ \t]))(?:[*_]{1,2})?(?=[ \t]|$)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)


def normalise_instruction(text: str) -> str:
    """Whitespace collapsed, ends stripped, first letter upper-cased (the rest untouched)."""
    text = _WS.sub(" ", text).strip()
    return text[:1].upper() + text[1:]


def demo_instruction(text: str) -> str:
    """An instruction as it is shown in a prompt: one line, no trailing colon."""
    return _WS.sub(" ", text).strip().rstrip(":")


def has_letter(text: str) -> bool:
    return _LETTER.search(text) is not None


@dataclass
class ParsedList:
    """The candidates of one response, and how much of it was skipped."""

    items: list[str] = field(default_factory=list)
    skipped_prose: int = 0
    """Chunks that are not list items (a preamble, a closing remark, noise without letters)."""
    over_limit: int = 0
    """Items past ``max_items``."""


def _is_prose(chunk: str) -> bool:
    """A line introducing or closing a list rather than an item of it."""
    return chunk.rstrip().endswith(":")


def parse_instruction_list(text: str, first_number: int, max_items: int = MAX_NEW_PER_PROMPT) -> ParsedList:
    """The instructions continuing a numbered list whose prompt ended at ``first_number.``.

    The model may continue item ``first_number`` directly ("Explain...\\n10. ..."), or
    repeat its number ("9. Explain...\\n10. ..."); numbering may be "9)", "9 -",
    "Task 9:"...; a preamble ("Here are more tasks:"), text after a blank line and
    chunks without a letter are skipped. Raises ResponseRejected when the response holds
    no numbered item at all (prose, garbage) or nothing is left.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    result = ParsedList()
    markers = list(_MARKER.finditer(text))
    if not markers:
        raise ResponseRejected("no numbered list in the response", text)
    chunks: list[str] = []
    lead = text[: markers[0].start()]
    if lead.strip():
        continues_item = int(markers[0].group(1)) == first_number + 1
        # only the first paragraph can continue the open item; anything after a blank line is prose
        head, *rest = _BLANK_LINE.split(lead.strip(), maxsplit=1)
        if continues_item and not _is_prose(head):
            chunks.append(head)
        else:
            result.skipped_prose += 1
        result.skipped_prose += len(rest)
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        body = text[marker.end() : end].strip()
        head, *rest = _BLANK_LINE.split(body, maxsplit=1)
        chunks.append(head)
        result.skipped_prose += len(rest)
    for chunk in chunks:
        item = normalise_instruction(chunk)
        if not item or not has_letter(item):
            result.skipped_prose += 1
            continue
        if len(result.items) >= max_items:
            result.over_limit += 1
            continue
        result.items.append(item)
    if not result.items:
        raise ResponseRejected("no numbered instructions found in the response", text)
    return result


# ---- Alpaca style ---------------------------------------------------------
_BLOCK_SPLIT = re.compile(r"#{3,}")
_FIELD = re.compile(
    r"^[ \t]*(?:[*_]{1,2})?(?:\d{1,3}[ \t]*[.)][ \t]*)?(instruction|input|output)(?:[ \t]*\d{1,3})?(?:[*_]{1,2})?[ \t]*:(?:[*_]{1,2})?",
    re.IGNORECASE | re.MULTILINE,
)
_STARTS_WITH_INSTRUCTION = re.compile(r"\s*(?:[*_]{1,2})?(?:\d{1,3}[ \t]*[.)][ \t]*)?instruction\b", re.IGNORECASE)


@dataclass
class AlpacaTask:
    instruction: str
    input: str
    output: str


@dataclass
class ParsedTasks:
    tasks: list[AlpacaTask] = field(default_factory=list)
    malformed: int = 0
    """Blocks without an instruction and an output."""
    truncated: int = 0
    """The last block, dropped because the response hit the length limit."""


def normalise_input(value: str) -> str:
    value = value.strip()
    return "" if value.lower() in NO_INPUT_MARKERS else value


def parse_alpaca_tasks(text: str, first_number: int, truncated: bool = False) -> ParsedTasks:
    """Tasks from an Alpaca-style response that continues after ``{first_number}. Instruction:``.

    Blocks are separated by ``###``; each needs an Instruction and an Output (the Input
    may be missing or a "<noinput>" marker: empty input). When the response was cut by
    the length limit its last block is dropped. Raises ResponseRejected when no task is left.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not _STARTS_WITH_INSTRUCTION.match(text):
        text = f"{first_number}. Instruction:{'' if text[:1].isspace() else ' '}{text}"
    blocks = [b for b in _BLOCK_SPLIT.split(text) if b.strip()]
    result = ParsedTasks()
    if truncated and blocks:
        blocks.pop()
        result.truncated = 1
    for block in blocks:
        fields: dict[str, str] = {}
        found = list(_FIELD.finditer(block))
        for i, m in enumerate(found):
            name = m.group(1).lower()
            end = found[i + 1].start() if i + 1 < len(found) else len(block)
            if name not in fields:  # a repeated field belongs to a run-on block: keep the first
                fields[name] = block[m.end() : end].strip()
        instruction = fields.get("instruction", "").strip()
        output = fields.get("output", "").strip()
        if not instruction or not output or not has_letter(instruction):
            result.malformed += 1
            continue
        result.tasks.append(AlpacaTask(instruction, normalise_input(fields.get("input", "")), output))
    if not result.tasks:
        raise ResponseRejected(
            "no complete Instruction/Input/Output task found in the response"
            + (" (its last block was cut off by the length limit)" if result.truncated else ""),
            text,
        )
    return result


# ---- classification question ------------------------------------------------
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_YES = re.compile(r"\byes\b", re.IGNORECASE)
_NO = re.compile(r"\bno\b", re.IGNORECASE)


def parse_yes_no(text: str) -> bool:
    """True for Yes, False for No; ResponseRejected otherwise.

    The first word decides; when it is neither ("Answer: Yes"), a reply that holds
    exactly one of the two words as a whole word is read as that word.
    """
    found = _FIRST_WORD.search(text)
    word = found.group(0).lower() if found else ""
    if word in ("yes", "no"):
        return word == "yes"
    yes, no = bool(_YES.search(text)), bool(_NO.search(text))
    if yes != no:
        return yes
    raise ResponseRejected("the classification answer is neither Yes nor No", text)

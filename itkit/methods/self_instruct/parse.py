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
_BLOCK_SPLIT = re.compile(r"###")
_ANY_FIELD = re.compile(r"\d+\.\s+(?:Instruction|Input|Output):")
FIELDS = ("Instruction", "Input", "Output")

# why a block was rejected (summary keys), in the order they are tested
CUT_OFF = "cut_off"
"""The last block of a response that hit the length limit (as the original)."""
WRONG_NUMBER = "wrong_number"
"""Its fields are not numbered as the block's position says (the original's ``{idx}. Field:`` split finds none)."""
MISSING_FIELD = "missing_field"
"""One of Instruction / Input / Output is missing."""
REPEATED_FIELD = "repeated_field"
"""A field appears twice (two tasks run together)."""
WRONG_ORDER = "wrong_order"
"""The three fields are there but not in the order Instruction, Input, Output."""
NO_FIELDS = "no_fields"
"""Text without any ``N. Instruction:`` / ``N. Input:`` / ``N. Output:`` field."""
EMPTY_FIELD = "empty_instruction_or_output"
"""An empty instruction or output (the original keeps an empty output; itkit does not)."""
REJECT_REASONS = (CUT_OFF, WRONG_NUMBER, MISSING_FIELD, REPEATED_FIELD, WRONG_ORDER, NO_FIELDS, EMPTY_FIELD)


@dataclass
class AlpacaTask:
    instruction: str
    input: str
    output: str


@dataclass
class ParsedTasks:
    tasks: list[AlpacaTask] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    """Blocks rejected, per reason (:data:`REJECT_REASONS`)."""

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def normalise_input(value: str) -> str:
    value = value.strip()
    return "" if value.lower() in NO_INPUT_MARKERS else value


def _block_reason(labels: list[str], block: str) -> str:
    if not labels:
        return WRONG_NUMBER if _ANY_FIELD.search(block) else NO_FIELDS
    if len(set(labels)) < len(labels):
        return REPEATED_FIELD
    if len(labels) < len(FIELDS):
        return MISSING_FIELD
    return WRONG_ORDER


def parse_alpaca_tasks(text: str, first_number: int, truncated: bool = False) -> ParsedTasks:
    """Tasks from an Alpaca-style response that continues after ``{first_number}. Instruction:``.

    As strict as the original (``post_process_gpt3_response``): the response is
    prefixed with ``{first_number}. Instruction:`` and split at ``###``; the k-th
    block must hold exactly ``N. Instruction:``, ``N. Input:`` and ``N. Output:``
    with N = first_number + k, in that order; anything else is rejected and counted
    by reason (:data:`REJECT_REASONS`). A "<noinput>" input becomes empty; the
    last block of a response cut by the length limit is dropped. Two deliberate
    differences: a response that restates ``{first_number}. Instruction:`` itself is
    not prefixed twice (chat models do that), and an empty instruction or output is
    rejected. Raises ResponseRejected when no task is left.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    opening = f"{first_number}. Instruction:"
    if not re.match(rf"\s*{first_number}\.\s+Instruction:", text):
        text = opening + text
    blocks = _BLOCK_SPLIT.split(text)
    result = ParsedTasks()
    for k, block in enumerate(blocks):
        if not block.strip():
            continue  # the empty text after a closing "###": nothing was there
        if truncated and k == len(blocks) - 1:
            result.reject(CUT_OFF)
            continue
        number = first_number + k
        parts = re.split(rf"{number}\.\s+(Instruction|Input|Output):", block)
        labels = parts[1::2]
        if labels != list(FIELDS):
            result.reject(_block_reason(labels, block))
            continue
        instruction, input_text, output = (parts[i].strip() for i in (2, 4, 6))
        if not instruction or not output or not has_letter(instruction):
            result.reject(EMPTY_FIELD)
            continue
        result.tasks.append(AlpacaTask(instruction, normalise_input(input_text), output))
    if not result.tasks:
        reasons = ", ".join(f"{n} {r}" for r, n in result.rejected.items()) or "no blocks"
        raise ResponseRejected(f"no complete Instruction/Input/Output task found in the response ({reasons})", text)
    return result


# ---- classification question ------------------------------------------------
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_YES = re.compile(r"\byes\b", re.IGNORECASE)
_NO = re.compile(r"\bno\b", re.IGNORECASE)


YES, NO, UNCLEAR = "yes", "no", "unclear"


def parse_yes_no(text: str) -> str:
    """``"yes"``, ``"no"`` or ``"unclear"`` (which the method reads as No, as the original does).

    The first word decides; when it is neither ("Answer: Yes"), a reply that holds
    exactly one of the two words as a whole word is read as that word. Anything else
    (empty, "Maybe", both words) is unclear: never retried, counted apart.
    """
    found = _FIRST_WORD.search(text)
    word = found.group(0).lower() if found else ""
    if word in (YES, NO):
        return word
    yes, no = bool(_YES.search(text)), bool(_NO.search(text))
    if yes != no:
        return YES if yes else NO
    return UNCLEAR

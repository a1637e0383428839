"""Reading the model's answers: the evolved instruction and the equality verdict.

By default (:func:`read_rewrite` with ``salvage=False``) the reply is the
instruction, as written: elimination rule 4 then judges it whole, so a reply
that opens with a label such as ``#Rewritten Prompt#:`` copies a marker and
fails, as in the paper.

Models dress their answers up: they repeat the answer header
(``#Rewritten Prompt#:``), echo the given prompt first, open with "Here is the
rewritten prompt:", or wrap the answer in quotes. :func:`parse_evolved` strips
that dressing (``--salvage-labels``, a salvage the paper does not do); it does
not judge the text. A copy of a marker *inside* the instruction is left in
place for elimination rule 4 to catch. An answer with nothing left raises
:class:`ResponseRejected` so the engine retries it.
"""

from __future__ import annotations

import re

from itkit.llm.base import ResponseRejected

PREAMBLE_MAX_WORDS = 12
"""A first line ending with ":" that names the rewrite ("Here is the rewritten prompt:") is dropped up to this length."""

_PREAMBLE = re.compile(r"\b(?:rewritten|created|revised|new|evolved)\s+(?:prompt|instruction|version)\b", re.IGNORECASE)
_QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'", "\u00ab": "\u00bb"}
_DECORATION = r"[ \t*_>#`\"'\u201c\u201d]*"


def _header_pattern(headers: tuple[str, ...]) -> re.Pattern[str]:
    """A line that is only an answer header: ``#Rewritten Prompt#:``, ``**Rewritten Prompt:**``, ``The rewritten prompt:``."""
    names = set()
    for header in headers:
        core = header.strip().strip("#").strip()
        if core:
            names.add(r"\s+".join(re.escape(w) for w in core.split()))
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(
        rf"^{_DECORATION}(?:(?:the|your|my|a)\s+)?(?:{alternatives}){_DECORATION}(?::|$)[ \t*_]*",
        re.IGNORECASE | re.MULTILINE,
    )


def parse_evolved(text: str, headers: tuple[str, ...] = ("#Rewritten Prompt#", "#Created Prompt#")) -> str:
    """The instruction in a rewrite answer, with headers, preambles and wrapping quotes removed."""
    body = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if headers:
        matches = list(_header_pattern(headers).finditer(body))
        if matches:
            # the answer follows the last header (earlier text echoes the given prompt)
            last = matches[-1]
            after = body[last.end() :].strip()
            body = after if after else body[: last.start()].strip()
    body = _drop_preamble(body)
    body = _unquote(body).strip()
    if not body:
        raise ResponseRejected("the rewrite is empty once its headers are removed", text)
    return body


def read_rewrite(text: str, headers: tuple[str, ...], salvage: bool = False) -> tuple[str, bool]:
    """The instruction of a rewrite reply and whether a label was salvaged (stripped) from it.

    ``salvage=False``: the reply as written (ends stripped), for rule 4 to judge whole.
    """
    written = text.strip()
    if not salvage:
        if not written:
            raise ResponseRejected("the rewrite is empty", text)
        return written, False
    parsed = parse_evolved(text, headers)
    return parsed, parsed != written


def _drop_preamble(body: str) -> str:
    first, sep, rest = body.partition("\n")
    line = first.strip().strip("*_").strip()
    if sep and rest.strip() and line.endswith(":") and len(line.split()) <= PREAMBLE_MAX_WORDS and _PREAMBLE.search(line):
        return rest.strip()
    return body


def _unquote(body: str) -> str:
    """Remove one pair of quotes around the whole text when no other such quote occurs inside."""
    if len(body) >= 2 and body[0] in _QUOTES and body[-1] == _QUOTES[body[0]]:
        inner = body[1:-1]
        if body[0] not in inner and body[-1] not in inner:
            return inner
    return body


_VERDICT = re.compile(r"\b(not[\s_-]*equal|unequal|equal)\b", re.IGNORECASE)


def parse_equality(text: str) -> bool:
    """True for "Equal", False for "Not Equal" (first verdict in the text); anything else is rejected."""
    match = _VERDICT.search(text.replace("*", " "))
    if match is None:
        raise ResponseRejected("the equality check answered neither 'Equal' nor 'Not Equal'", text)
    return match.group(1).lower() == "equal"

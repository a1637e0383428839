"""Deterministic checks that a simplified response adds no facts and keeps the answer.

A simplification must only remove: every fact-like item of the rewrite has to be
in the original, and the original's final answer has to survive with the same
value. Each check is a named pure function ``(original, rewrite) -> problems``,
where a problem is one short sentence naming what is wrong (it is shown to the
model when the rewrite is retried, and counted per check in the run summary):

- ``numbers``: every number of the rewrite occurs in the original, compared after
  normalisation ("1,000" = "1000", "36.80" = "36.8", "007" = "7"); the sign and
  the unit are not compared, and list markers at a line's start ("1. ") are not
  numbers;
- ``dates``: every date of the rewrite ("2021-03-05", "5/3/2021", "March 5, 2021",
  "5 March 2021", "March 2021") is a date of the original, compared as (year,
  month, day);
- ``urls``: every URL of the rewrite (``http(s)://...``, ``www....``) is in the original;
- ``code_blocks``: every fenced code block of the original is in the rewrite
  verbatim (trailing spaces aside), and the rewrite has no other (skipped with
  ``allow_code_edits``);
- ``quotes``: every quoted string of the rewrite ("...", “...”) is in the original;
- ``names``: every capitalised multi-word name of the rewrite ("Vasco da Gama
  Bridge") is in the original (case-insensitively; a capitalised word that only
  opens the sentence is dropped first); headings are not names;
- ``final_answer``: a final-answer marker of the original (GSM8K's ``#### N``,
  ``\\boxed{...}``, "The answer is N", a final multiple-choice letter) is in the
  rewrite, with the same value.

None of them calls a model or needs a tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Callable, Iterable

NUMBERS = "numbers"
DATES = "dates"
URLS = "urls"
CODE_BLOCKS = "code_blocks"
QUOTES = "quotes"
NAMES = "names"
FINAL_ANSWER = "final_answer"
CHECK_NAMES: tuple[str, ...] = (NUMBERS, DATES, URLS, CODE_BLOCKS, QUOTES, NAMES, FINAL_ANSWER)
"""Every check, in the order they run (and the order of the summary)."""

MAX_SHOWN = 3
"""A problem sentence names at most this many offending items."""

# ---- numbers -------------------------------------------------------------------------------------
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+][ \t]+)?\(?\d{1,3}[.)][ \t]+", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:[,\u00a0\u202f]\d{3})+(?:\.\d+)?(?![\d])|(?<![\w.])\d+(?:\.\d+)?")


def normalise_number(text: str) -> str:
    """``"1,000"`` -> ``"1000"``, ``"36.80"`` -> ``"36.8"``, ``"007"`` -> ``"7"``, ``"2.0"`` -> ``"2"``."""
    plain = re.sub(r"[,\u00a0\u202f]", "", text)
    try:
        value = Decimal(plain)
    except InvalidOperation:
        return plain
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def numbers_in(text: str, skip_list_markers: bool = False) -> list[str]:
    if skip_list_markers:
        text = _LIST_MARKER.sub(" ", text)
    return [normalise_number(m.group(0)) for m in _NUMBER.finditer(text)]


def check_numbers(original: str, rewrite: str) -> list[str]:
    known = set(numbers_in(original))
    new = _unique(n for n in numbers_in(rewrite, skip_list_markers=True) if n not in known)
    return [f"it states the number{_s(new)} {_show(new)}, which the original answer does not contain"] if new else []


# ---- dates ---------------------------------------------------------------------------------------
MONTHS = {
    name: i
    for i, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
            ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
            ("october", "oct"), ("november", "nov"), ("december", "dec"),
        ),
        1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS = (
    re.compile(r"\b(?P<year>\d{4})-(?P<mon>\d{1,2})-(?P<day>\d{1,2})\b"),
    re.compile(r"\b(?P<day>\d{1,2})[/.](?P<mon>\d{1,2})[/.](?P<year>\d{2,4})\b"),
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE),
    re.compile(rf"\b{_MONTH}\s+(?P<year>\d{{4}})\b", re.IGNORECASE),
)
Date = tuple[int | None, int | None, int | None]


def dates_in(text: str) -> list[tuple[str, Date]]:
    """``(as written, (year, month, day))`` for each date; a day/month pair ``5/3`` counts both readings."""
    found: list[tuple[str, Date]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append((m.start(), m.end()))
            groups = m.groupdict()
            year = int(groups["year"]) if groups.get("year") else None
            day = int(groups["day"]) if groups.get("day") else None
            if groups.get("month"):
                month = MONTHS[groups["month"].lower().rstrip(".")]
            else:
                month = int(groups["mon"])
            found.append((m.group(0), (year, month, day)))
    return found


def _same_date(a: Date, b: Date) -> bool:
    return all(x == y or x is None or y is None for x, y in zip(a, b)) and a[1] == b[1]


def check_dates(original: str, rewrite: str) -> list[str]:
    known = [d for _, d in dates_in(original)]
    swapped = [(y, d, m) for y, m, d in known if m is not None and d is not None]  # 5/3 read the other way
    new = _unique(
        written for written, date in dates_in(rewrite) if not any(_same_date(date, k) for k in (*known, *swapped))
    )
    return [f"it states the date{_s(new)} {_show(new)}, which the original answer does not contain"] if new else []


# ---- URLs ----------------------------------------------------------------------------------------
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`)\]]+", re.IGNORECASE)


def urls_in(text: str) -> list[str]:
    return [m.group(0).rstrip(".,;:!?") for m in _URL.finditer(text)]


def check_urls(original: str, rewrite: str) -> list[str]:
    known = {u.lower() for u in urls_in(original)}
    new = _unique(u for u in urls_in(rewrite) if u.lower() not in known)
    return [f"it gives the URL{_s(new)} {_show(new)}, which the original answer does not contain"] if new else []


# ---- code blocks ---------------------------------------------------------------------------------
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks_in(text: str) -> list[str]:
    """The body of each fenced code block, each line's trailing spaces removed."""
    return ["\n".join(line.rstrip() for line in m.group(2).rstrip("\n").split("\n")) for m in _FENCE.finditer(text)]


def check_code_blocks(original: str, rewrite: str) -> list[str]:
    before, after = code_blocks_in(original), code_blocks_in(rewrite)
    problems = []
    changed = [i for i, block in enumerate(before, 1) if block not in after]
    if changed:
        which = ", ".join(f"#{i}" for i in changed[:MAX_SHOWN])
        problems.append(f"it does not keep code block{_s(changed)} {which} of the original answer exactly as written")
    added = [block for block in after if block not in before]
    if added and not changed:
        problems.append(f"it has {len(added)} code block{_s(added)} that the original answer does not contain")
    return problems


# ---- quoted strings ------------------------------------------------------------------------------
_QUOTED = re.compile(r"\"([^\"\n]{2,200})\"|\u201c([^\u201d\n]{2,200})\u201d")
_SPACE = re.compile(r"\s+")


def quotes_in(text: str) -> list[str]:
    return [_SPACE.sub(" ", (m.group(1) or m.group(2)).strip()) for m in _QUOTED.finditer(text)]


def check_quotes(original: str, rewrite: str) -> list[str]:
    flat = _SPACE.sub(" ", original).replace("\u201c", '"').replace("\u201d", '"').casefold()
    new = _unique(q for q in quotes_in(rewrite) if q.casefold() not in flat)
    shown = [f'"{q}"' for q in new]
    return [f"it quotes {_show(shown, quote=False)}, which the original answer does not contain"] if new else []


# ---- capitalised multi-word names ----------------------------------------------------------------
_CONNECTORS = r"(?:of|the|de|da|del|della|di|du|des|la|le|van|von|der|den|al|bin|y|and|&)"
_CAP_WORD = r"[A-Z][\w'\u2019.-]*\w"
_NAME = re.compile(rf"\b{_CAP_WORD}(?:[ \t]+(?:{_CONNECTORS}[ \t]+)*{_CAP_WORD})+")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t].*$", re.MULTILINE)


def names_in(text: str) -> list[str]:
    return [m.group(0) for m in _NAME.finditer(_HEADING.sub(" ", text))]


def _name_known(name: str, flat_original: str) -> bool:
    words = name.split()
    while len(words) >= 2:
        if re.search(rf"(?<!\w){re.escape(' '.join(words).casefold())}(?!\w)", flat_original):
            return True
        words = words[1:]  # a capitalised word that only opens the sentence ("Then Jo Lee")
    return False


def check_names(original: str, rewrite: str) -> list[str]:
    flat = _SPACE.sub(" ", original).casefold()
    new = _unique(n for n in names_in(rewrite) if not _name_known(_SPACE.sub(" ", n), flat))
    return [f"it names {_show(new)}, which the original answer does not mention"] if new else []


# ---- final-answer markers ------------------------------------------------------------------------
@dataclass(frozen=True)
class FinalAnswer:
    kind: str
    """``####``, ``boxed``, ``the answer is`` or ``choice``."""
    value: str
    """Normalised (numbers as :func:`normalise_number`, letters upper-case, spaces collapsed)."""
    written: str
    """How the original writes it, to quote in a retry."""


_GSM8K = re.compile(r"^[ \t]*####[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_LETTER = r"(?:\((?i:[a-h])\)|(?-i:[A-H]))(?![\w'])"
_ANSWER_IS = re.compile(
    rf"\b(?:the\s+)?(?:final\s+|correct\s+)?answer\s+is\s*:?\s*\**\s*({_LETTER}|-?\$?\d[\d,]*(?:\.\d+)?%?)",
    re.IGNORECASE,
)
_CHOICE = re.compile(
    rf"(?:\b(?:answer|option|choice)\s*(?:is)?\s*:?\s*\**\s*({_LETTER})|^\s*((?-i:\(?[A-H]\)?))[.:]?\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
_LETTER_ONLY = re.compile(r"^\(?([A-Ha-h])\)?$")


def _answer_value(text: str) -> str:
    value = _SPACE.sub(" ", text.strip().strip("*").strip()).rstrip(".")
    letter = _LETTER_ONLY.match(value)
    if letter:
        return letter.group(1).upper()
    number = re.fullmatch(r"-?\$?(\d[\d,]*(?:\.\d+)?)%?", value)
    if number:
        return normalise_number(number.group(1))
    return value.casefold()


def final_answers(text: str) -> list[FinalAnswer]:
    """The final-answer markers of a response: the last of each kind."""
    found: list[FinalAnswer] = []
    for kind, pattern in (("####", _GSM8K), ("boxed", _BOXED), ("the answer is", _ANSWER_IS)):
        matches = list(pattern.finditer(text))
        if matches:
            last = matches[-1]
            found.append(FinalAnswer(kind, _answer_value(last.group(1)), last.group(0).strip()))
    tail = text.strip()[-200:]
    choices = list(_CHOICE.finditer(tail))
    if choices:
        last = choices[-1]
        letter = (last.group(1) or last.group(2)).strip("()").upper()
        found.append(FinalAnswer("choice", letter, last.group(0).strip()))
    return found


def check_final_answer(original: str, rewrite: str) -> list[str]:
    kept = {(a.kind, a.value) for a in final_answers(rewrite)}
    values = {a.value for a in final_answers(rewrite)}
    problems = []
    for answer in final_answers(original):
        if (answer.kind, answer.value) in kept:
            continue
        if answer.kind in ("the answer is", "choice") and answer.value in values:
            continue  # "The answer is B" may become "Answer: B"
        problems.append(f"it drops or changes the final answer '{answer.written}' of the original answer")
    return problems


# ---- running them --------------------------------------------------------------------------------
Check = Callable[[str, str], list[str]]
CHECKS: dict[str, Check] = {
    NUMBERS: check_numbers,
    DATES: check_dates,
    URLS: check_urls,
    CODE_BLOCKS: check_code_blocks,
    QUOTES: check_quotes,
    NAMES: check_names,
    FINAL_ANSWER: check_final_answer,
}


def run_checks(original: str, rewrite: str, allow_code_edits: bool = False) -> dict[str, list[str]]:
    """The problems of a rewrite, per check name (only checks that found something)."""
    out: dict[str, list[str]] = {}
    for name, check in CHECKS.items():
        if name == CODE_BLOCKS and allow_code_edits:
            continue
        problems = check(original, rewrite)
        if problems:
            out[name] = problems
    return out


def problem_lines(problems: dict[str, list[str]]) -> str:
    """The follow-up's list of what was wrong: one line per problem, naming its check."""
    return "\n".join(f"- {text} ({name})" for name, texts in problems.items() for text in texts)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _s(items: list) -> str:
    return "s" if len(items) > 1 else ""


def _show(items: list[str], quote: bool = True) -> str:
    shown = [f"'{i}'" if quote else i for i in items[:MAX_SHOWN]]
    more = len(items) - MAX_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")

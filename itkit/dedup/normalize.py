"""Text normalisation shared by the exact and near-duplicate stages.

:func:`normalize_text` is the form exact deduplication compares: Unicode NFKC,
case-folded, whitespace runs collapsed to one space and trimmed. So "Hello
World" and "  hello\\u00a0WORLD " are exact duplicates; punctuation still counts.

:func:`words` splits a normalised text into the words near-duplicate detection
shingles: runs of letters/digits (punctuation and underscores dropped), with
each Chinese/Japanese character a word of its own, since those scripts do not
separate words with spaces. :func:`segments` first cuts the text at sentence
ends, so shingles never span two sentences.

:func:`number_key` identifies the numbers written in digits in a text (as a multiset): with
``--numbers significant`` the near and ROUGE-L stages only compare texts whose keys
are equal (two math problems with different numbers are different problems).
"""

from __future__ import annotations

import re
import unicodedata

from itkit.lazy import lazy_module

xxhash = lazy_module("xxhash")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
SENTENCE_BREAKS = ".!?\u3002"
"""Characters that end a sentence segment (NFKC already maps the full-width forms to ASCII)."""
_SENTENCE_RE = re.compile(f"[{re.escape(SENTENCE_BREAKS)}]")
_DIGIT_RE = re.compile(r"\d")
_NUMBER_RE = re.compile(r"(?<!\w)\d+(?!\w)")
"""A run of digits that is not part of a word ("12th", "x2" and "w12" are words; "1,200.5" is 1, 200 and 5)."""


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed (the key of exact deduplication)."""
    if text.isascii():
        return " ".join(text.lower().split())
    # casefold can leave a string that is no longer NFKC ("\u1e9e" -> "ss" is fine, but some
    # folds produce decomposable sequences), so normalise again after folding
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def numbers(normalized: str) -> list[str]:
    """The digit runs of a normalised text, sorted (so reordered sentences keep their numbers)."""
    return sorted(n.lstrip("0") or "0" for n in _NUMBER_RE.findall(normalized))


_NOT_DIGITS = bytes(c for c in range(128) if not 0x30 <= c <= 0x39)


def number_key(normalized: str) -> int:
    """A 64-bit key of :func:`numbers`: equal for texts with the same numbers (0 for none)."""
    # most texts have no digits: skip the findall and sort (an ASCII text's digits are the ASCII ones)
    if normalized.isascii():
        if not normalized.encode().translate(None, _NOT_DIGITS):
            return 0
    elif not _DIGIT_RE.search(normalized):
        return 0
    found = numbers(normalized)
    return xxhash.xxh3_64_intdigest(" ".join(found).encode()) if found else 0


def words(normalized: str) -> list[str]:
    """The words of a normalised text (see the module docstring)."""
    return _WORD_RE.findall(normalized)


def segments(normalized: str) -> list[list[str]]:
    """The words of each sentence segment (split at ``.``, ``!``, ``?``, ``。``), empty segments left out."""
    return [ws for part in _SENTENCE_RE.split(normalized) if (ws := _WORD_RE.findall(part))]

"""The Self-Instruct candidate filters, named and tunable, applied in the method's order.

1. ``word_count``: <= ``min_words`` or > ``max_words`` whitespace-separated words;
2. ``blacklist``: a whole-word, case-insensitive keyword (tasks a text model cannot do);
3. ``prefix``: starts with "Write a program" (the model over-produces it, and it is unclear
   whether a program or its result is wanted);
4. ``first_character``: starts with punctuation or a non-ASCII character;
5. ``rouge_l``: ROUGE-L F1 above ``rouge_threshold`` against any seed or already kept
   instruction (see :mod:`itkit.methods.self_instruct.novelty`).

The first four are pure text checks (:class:`TextFilters`); the last one depends on
everything kept so far and runs last, in submission order.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace

SELF_INSTRUCT_BLACKLIST: tuple[str, ...] = (
    "image", "images", "graph", "graphs", "picture", "pictures",
    "file", "files", "map", "maps", "draw", "plot", "go to",
)
"""Keywords of tasks a text-only model cannot do (Self-Instruct)."""
ALPACA_EXTRA_BLACKLIST: tuple[str, ...] = ("video", "audio", "music", "flowchart", "diagram")
"""Alpaca's additions to the blacklist."""
MIN_WORDS = 3
"""A candidate with this many words or fewer is dropped."""
MAX_WORDS = 150
"""A candidate with more words than this is dropped."""
BANNED_PREFIXES: tuple[str, ...] = ("Write a program",)
"""Candidates starting with one of these (case-insensitively) are dropped."""
ROUGE_THRESHOLD = 0.7
"""A candidate whose ROUGE-L F1 against a seed or kept instruction is above this is dropped."""
MOST_SIMILAR = 10
"""How many most similar instructions a kept record lists."""

# filter names: the keys of the summary's per-filter counts, in order
WORD_COUNT = "word_count"
BLACKLIST = "blacklist"
PREFIX = "prefix"
FIRST_CHARACTER = "first_character"
ROUGE_L = "rouge_l"
FILTER_NAMES: tuple[str, ...] = (WORD_COUNT, BLACKLIST, PREFIX, FIRST_CHARACTER, ROUGE_L)

FILTER_DESCRIPTIONS = {
    WORD_COUNT: "too short or too long",
    BLACKLIST: "mentions a blacklisted keyword",
    PREFIX: "starts with a banned prefix",
    FIRST_CHARACTER: "starts with punctuation or a non-ASCII character",
    ROUGE_L: "too similar (ROUGE-L) to a seed or kept instruction",
}


@dataclass(frozen=True)
class FilterConfig:
    """The thresholds and word lists of the filters (defaults: the Self-Instruct paper's)."""

    min_words: int = MIN_WORDS
    max_words: int = MAX_WORDS
    blacklist: tuple[str, ...] = SELF_INSTRUCT_BLACKLIST
    banned_prefixes: tuple[str, ...] = BANNED_PREFIXES
    rouge_threshold: float = ROUGE_THRESHOLD
    most_similar: int = MOST_SIMILAR

    @classmethod
    def for_style(cls, style: str, extra_blacklist: tuple[str, ...] = (), **overrides) -> "FilterConfig":
        """The defaults of a style (Alpaca extends the blacklist) plus ``extra_blacklist`` and overrides."""
        blacklist = SELF_INSTRUCT_BLACKLIST + (ALPACA_EXTRA_BLACKLIST if style == "alpaca" else ())
        words = tuple(dict.fromkeys(w.strip() for w in (*blacklist, *extra_blacklist) if w.strip()))
        return replace(cls(blacklist=words), **overrides)


def word_count(text: str) -> int:
    return len(text.split())


@dataclass
class TextFilters:
    """The four text filters of a :class:`FilterConfig`, compiled once."""

    config: FilterConfig = field(default_factory=FilterConfig)

    def __post_init__(self) -> None:
        words = [w for w in self.config.blacklist if w]
        self._blacklist = (
            re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE) if words else None
        )
        self._prefixes = tuple(p.lower() for p in self.config.banned_prefixes if p)

    def too_short_or_long(self, text: str) -> bool:
        n = word_count(text)
        return n <= self.config.min_words or n > self.config.max_words

    def blacklisted_word(self, text: str) -> str | None:
        """The first blacklisted keyword in ``text`` (as written there), or None."""
        if self._blacklist is None:
            return None
        found = self._blacklist.search(text)
        return found.group(0) if found else None

    def banned_prefix(self, text: str) -> bool:
        low = text.lower()
        return any(low.startswith(p) for p in self._prefixes)

    @staticmethod
    def bad_first_character(text: str) -> bool:
        return not text or text[0] in string.punctuation or not text[0].isascii()

    def first_failure(self, text: str) -> str | None:
        """The name of the first filter that removes ``text``, or None when it passes all four."""
        if self.too_short_or_long(text):
            return WORD_COUNT
        if self.blacklisted_word(text) is not None:
            return BLACKLIST
        if self.banned_prefix(text):
            return PREFIX
        if self.bad_first_character(text):
            return FIRST_CHARACTER
        return None

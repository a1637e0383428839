"""The ``language`` rule: a writing-system (script) check, done offline with Unicode ranges.

This is NOT language identification: it cannot tell English from French or
German (all Latin), nor Russian from Ukrainian (both Cyrillic). What it does
reliably, with no model to download, is catch records whose letters are
mostly in another writing system than the dataset's: a Chinese answer in an
English set, a Russian conversation in a ShareGPT dump meant to be English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from itkit.errors import UsageError
from itkit.filters.base import Rule, iter_fields, text_tuple
from itkit.records import Record

SCRIPT_RANGES: dict[str, str] = {
    "latin": "A-Za-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0250-\u02af\u1d00-\u1d7f\u1e00-\u1eff"
    "\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f\uff21-\uff3a\uff41-\uff5a",
    "cyrillic": "\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "armenian": "\u0530-\u058f\ufb13-\ufb17",
    "hebrew": "\u0590-\u05ff\ufb1d-\ufb4f",
    "arabic": "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff",
    "devanagari": "\u0900-\u097f\ua8e0-\ua8ff",
    "bengali": "\u0980-\u09ff",
    "tamil": "\u0b80-\u0bff",
    "thai": "\u0e00-\u0e7f",
    "georgian": "\u10a0-\u10ff\u1c90-\u1cbf\u2d00-\u2d2f",
    "hangul": "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff",
    "kana": "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f",
    "han": "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef",
}
"""Unicode ranges of each script's letters."""

SCRIPT_GROUPS: dict[str, tuple[str, ...]] = {
    "cjk": ("han", "kana", "hangul"),
    "chinese": ("han",),
    "japanese": ("han", "kana"),
    "korean": ("hangul", "han"),
}
"""Names for scripts that are written together."""

SCRIPT_NAMES: tuple[str, ...] = (*SCRIPT_RANGES, *SCRIPT_GROUPS)

_NON_LETTERS = re.compile(r"[\W\d_]+")
_CODE_AND_URLS = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`|(?:https?|ftp)://\S+|www\.\S+", re.DOTALL)
"""Fenced code blocks, inline code spans and URLs: Latin letters whatever the language of the text."""


def _outside(scripts: tuple[str, ...]) -> re.Pattern[str]:
    """Matches runs of characters NOT in these scripts (so ``sub`` keeps only theirs)."""
    return re.compile("[^" + "".join(SCRIPT_RANGES[s] for s in scripts) + "]+")


_OUTSIDE_ONE = {name: _outside((name,)) for name in SCRIPT_RANGES}


def letters_of(text: str) -> str:
    """Only the letters of ``text`` (no spaces, digits, punctuation, symbols or emoji)."""
    return _NON_LETTERS.sub("", text)


def script_counts(letters: str) -> dict[str, int]:
    """How many of these letters each known script holds (scripts with none left out)."""
    counts = {name: len(pattern.sub("", letters)) for name, pattern in _OUTSIDE_ONE.items()}
    return {name: n for name, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}


@dataclass
class LanguageRule(Rule):
    """Too few of the record's letters are in the expected script(s) (``scripts``).

    Letters of every user turn, the input and every assistant turn are pooled
    (spaces, digits, punctuation, emoji and code symbols do not count); the
    share of them in ``scripts`` must be at least ``min_script_share``.
    With ``ignore_code`` (the default) markdown code blocks, inline code and
    URLs are left out first: they are Latin whatever language the text is
    in. Records with fewer than ``min_letters`` letters (numbers, short
    answers) are not judged. Scripts: latin, cyrillic, greek, armenian, hebrew, arabic,
    devanagari, bengali, tamil, thai, georgian, hangul, kana, han, and the
    groups cjk (han+kana+hangul), chinese, japanese, korean. Translation
    tasks mix scripts on purpose: lower ``min_script_share`` or leave the rule
    out for such data.
    """

    name = "language"
    description = "letters mostly outside the expected script(s) (a script check, not language identification)"

    scripts: tuple[str, ...] = ("latin",)
    min_script_share: float = 0.5
    min_letters: int = 20
    ignore_code: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.scripts, str):
            self.scripts = tuple(s.strip() for s in self.scripts.split(",") if s.strip())
        self.scripts = tuple(s.lower() for s in text_tuple(self.name, "scripts", self.scripts))
        if not self.scripts:
            raise UsageError(f"rule 'language': scripts is empty; choose from: {', '.join(SCRIPT_NAMES)}")
        unknown = [s for s in self.scripts if s not in SCRIPT_NAMES]
        if unknown:
            raise UsageError(f"rule 'language': unknown script '{unknown[0]}'; choose from: {', '.join(SCRIPT_NAMES)}")
        share = self.min_script_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise UsageError(f"rule 'language': min_script_share must be a number from 0 to 1, got {share!r}")
        letters = self.min_letters
        if isinstance(letters, bool) or not isinstance(letters, int) or letters < 0:
            raise UsageError(f"rule 'language': min_letters must be a whole number >= 0, got {letters!r}")
        base: list[str] = []
        for s in self.scripts:
            for part in SCRIPT_GROUPS.get(s, (s,)):
                if part not in base:
                    base.append(part)
        self._base = tuple(base)
        self._outside = _outside(self._base)

    def check(self, record: Record) -> str | None:
        text = "\n".join(text for _, _, text in iter_fields(record))
        if self.ignore_code:
            text = _CODE_AND_URLS.sub(" ", text)
        letters = letters_of(text)
        total = len(letters)
        if total < self.min_letters or total == 0:
            return None
        inside = len(self._outside.sub("", letters))
        share = inside / total
        if share >= self.min_script_share:
            return None
        counts = script_counts(letters)
        others = [name for name in counts if name not in self._base]
        mostly = f"mostly {others[0]}" if others and counts[others[0]] > total / 2 else "mixed or other scripts"
        expected = "/".join(self.scripts)
        return (
            f"{share:.0%} of its {total} letters are {expected} ({mostly}); "
            f"min_script_share is {self.min_script_share:.0%}"
        )


__all__ = ["LanguageRule", "SCRIPT_GROUPS", "SCRIPT_NAMES", "SCRIPT_RANGES", "letters_of", "script_counts"]

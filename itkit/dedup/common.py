"""Boilerplate shared by many records (``--ignore-common auto``): found once, left out of the comparison.

Prompts built from one template share a long preamble ("You have access to these tools:
... Question:") and differ in a few words; compared whole, every pair looks like a near
duplicate. :func:`detect` looks at a sample of the distinct normalised texts for

- a common *prefix* and *suffix*: a run of whole words (:data:`MIN_WORDS` or more) that
  starts (ends) the most texts: all of them, else 90%, 80% ... down to :data:`COMMON_SHARE`
  (the longest such run at the first share that has one);
- common *sentences*: sentence segments (:func:`~itkit.dedup.normalize.segments`) found,
  after the prefix and suffix are cut, in that share of the texts (a repeated preamble
  paragraph anywhere in the text).

:meth:`Boilerplate.strip` gives what remains of a text; a text that is nothing but
boilerplate is compared whole. Only the near and ROUGE-L stages compare what remains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from itkit.dedup.normalize import segments

IGNORE_COMMON_CHOICES = ("auto", "off")
COMMON_SHARE = 0.2
"""Share of the sampled texts a prefix, suffix or sentence must occur in to be boilerplate."""
COMMON_MIN_TEXTS = 20
"""Fewer distinct texts than this: no detection (a share of a handful of texts means nothing)."""
MIN_WORDS = 5
"""Words a prefix, suffix or sentence needs to count as boilerplate (a shared "Write a" is not)."""
COMMON_SAMPLE = 5000
"""Distinct texts (the first ones) the detection looks at."""


@dataclass(frozen=True)
class Boilerplate:
    """The detected common text: a prefix, a suffix and whole sentences (normalised)."""

    prefix: str = ""
    suffix: str = ""
    sentences: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.prefix or self.suffix or self.sentences)

    def describe(self) -> list[str]:
        """One line per piece, for the summary."""
        lines = [f"prefix: {self.prefix}"] if self.prefix else []
        lines += [f"sentence: {s}" for s in sorted(self.sentences)]
        lines += [f"suffix: {self.suffix}"] if self.suffix else []
        return lines

    def strip(self, normalized: str) -> str:
        """The text without its boilerplate (the whole text when nothing else remains)."""
        if not self:
            return normalized
        rest = normalized
        if self.prefix and _starts_with_words(rest, self.prefix):
            rest = rest[len(self.prefix) :]
        if self.suffix and _ends_with_words(rest, self.suffix):
            rest = rest[: len(rest) - len(self.suffix)]
        if self.sentences:
            kept = [ws for ws in segments(rest) if " ".join(ws) not in self.sentences]
            rest = ". ".join(" ".join(ws) for ws in kept)
        rest = rest.strip()
        return rest if any(c.isalnum() for c in rest) else normalized


def _starts_with_words(text: str, prefix: str) -> bool:
    return text.startswith(prefix) and (
        len(text) == len(prefix) or not prefix[-1].isalnum() or not text[len(prefix)].isalnum()
    )


def _ends_with_words(text: str, suffix: str) -> bool:
    return text.endswith(suffix) and (
        len(text) == len(suffix) or not suffix[0].isalnum() or not text[-len(suffix) - 1].isalnum()
    )


def _lcp_at(texts: list[str], need: int) -> str:
    """The longest start (cut at a word boundary) shared by ``need`` of the sorted ``texts``, or ""."""
    best = ""
    for a, b in zip(texts, texts[need - 1 :]):  # in sorted order a window's common start is its ends'
        n, limit = 0, min(len(a), len(b))
        while n < limit and a[n] == b[n]:
            n += 1
        if n <= len(best):
            continue
        if n < len(a) and a[n].isalnum():  # cut back to the last word boundary
            while n > 0 and a[n - 1].isalnum():
                n -= 1
        if n > len(best) and len(a[:n].split()) >= MIN_WORDS:
            best = a[:n]
    return best


def _common_start(texts: list[str], share: float) -> str:
    """The start shared by the most texts (all, 90%, 80%, ... down to ``share``) with MIN_WORDS words."""
    ordered = sorted(texts)
    levels = sorted({max(2, int(len(texts) * f / 10 + 0.999999)) for f in range(10, 0, -1) if f / 10 >= share}
                    | {max(2, int(len(texts) * share + 0.999999))}, reverse=True)
    for need in levels:
        found = _lcp_at(ordered, need)
        if found:
            return found
    return ""


def detect(normalized: list[str], share: float = COMMON_SHARE) -> Boilerplate:
    """Boilerplate of these distinct normalised texts (see the module docstring)."""
    if len(normalized) < COMMON_MIN_TEXTS:
        return Boilerplate()
    need = max(2, int(share * len(normalized) + 0.999999))
    prefix = _common_start(normalized, share)
    suffix = _common_start([t[::-1] for t in normalized], share)[::-1]
    cut = Boilerplate(prefix, suffix)
    counts: Counter[str] = Counter()
    for text in normalized:
        counts.update({" ".join(ws) for ws in segments(cut.strip(text)) if len(ws) >= MIN_WORDS})
    sentences = frozenset(s for s, n in counts.items() if n >= need)
    return Boilerplate(prefix, suffix, sentences)

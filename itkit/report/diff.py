"""Word-level comparisons for the page: what a rewrite changed, and what two duplicates share.

Texts are split into words, whitespace and punctuation (so a diff never cuts
a word and keeps the original spacing); :class:`difflib.SequenceMatcher`
aligns them. A segment is ``[kind, text]`` with kind ``same``, ``del`` (only
in the first text) or ``ins`` (only in the second).
"""

from __future__ import annotations

import difflib
import re

TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
MAX_DIFF_TOKENS = 3000
"""Tokens compared per text; beyond that the rest is shown unaligned (a diff of long texts is slow and unreadable)."""
MIN_SHARED_WORDS = 3
"""A run of shared text is highlighted in a duplicate pair only from this many words (or when it is all of a text)."""

Segment = list[str]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text or "")


def _matcher(a: list[str], b: list[str]) -> difflib.SequenceMatcher:
    return difflib.SequenceMatcher(None, a[:MAX_DIFF_TOKENS], b[:MAX_DIFF_TOKENS], autojunk=False)


def _merge(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for kind, text in segments:
        if not text:
            continue
        if out and out[-1][0] == kind:
            out[-1][1] += text
        else:
            out.append([kind, text])
    return out


def word_diff(before: str, after: str) -> tuple[list[Segment], list[Segment]]:
    """The two texts as segments: ``before`` with its deleted words, ``after`` with its inserted ones."""
    a, b = tokens(before), tokens(after)
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in _matcher(a, b).get_opcodes():
        if op == "equal":
            left.append(["same", "".join(a[i1:i2])])
            right.append(["same", "".join(b[j1:j2])])
        else:
            left.append(["del", "".join(a[i1:i2])])
            right.append(["ins", "".join(b[j1:j2])])
    left.append(["del", "".join(a[MAX_DIFF_TOKENS:])])
    right.append(["ins", "".join(b[MAX_DIFF_TOKENS:])])
    return _merge(left), _merge(right)


def _words(toks: list[str]) -> int:
    return sum(1 for t in toks if not t.isspace())


def shared_text(first: str, second: str) -> tuple[list[Segment], list[Segment], float]:
    """Both texts with their shared runs as ``same`` (others ``del``/``ins``) and the share of words in common."""
    a, b = tokens(first), tokens(second)
    matcher = _matcher(a, b)
    marks_a = [False] * len(a)
    marks_b = [False] * len(b)
    shared = 0
    for block in matcher.get_matching_blocks():
        run = a[block.a : block.a + block.size]
        n = _words(run)
        if not block.size or (n < MIN_SHARED_WORDS and block.size not in (len(a), len(b))):
            continue
        shared += n
        for k in range(block.size):
            marks_a[block.a + k] = True
            marks_b[block.b + k] = True
    total = max(_words(a), _words(b), 1)
    left = _merge([["same" if m else "del", t] for t, m in zip(a, marks_a)])
    right = _merge([["same" if m else "ins", t] for t, m in zip(b, marks_b)])
    return left, right, round(shared / total, 3)


def word_count(text: str) -> int:
    return len((text or "").split())

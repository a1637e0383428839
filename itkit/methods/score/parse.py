"""Reading a judge's answer: the one score it gives, and its one-line reason; never a made-up score.

:func:`parse_score` accepts what judges write in practice, in this order of trust:

1. a JSON object with a ``score`` (or ``rating``) key, and ``reason``/``explanation``;
2. a labelled score: ``Score: 4``, ``**Rating:** 4/5``, ``Rating: 4 out of 5``, ``Score: [[4]]``,
   ``my rating is 4.5``;
3. a bold or double-bracketed number: ``**4**``, ``[[4]]``;
4. a first line that is only a number (Alpagasus' format: ``4.5`` then the explanation);
5. prose with exactly one number in it (``I would give it a 4 because...``).

The scale itself (``1-5``, ``1 to 5``, ``(1-5)``) is not a score and is ignored. An answer is rejected
(:class:`~itkit.llm.base.ResponseRejected`, which makes the engine ask again with another seed and a
higher temperature) when it gives no score, gives different scores (``Score: 3 ... Final score: 4``),
gives a score outside the scale, or on another scale (``8/10`` for a 1-5 scorer: it is never rescaled).
A reasoning model's ``<think>...</think>`` block is left out before reading.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from itkit.llm.base import ResponseRejected
from itkit.llm.responses import CUT_OFF_REASON, LENGTH_FINISH

REASON_MAX_CHARS = 300
"""A reason longer than this is cut (with an ellipsis): it is a note, not a review."""

_NUM = r"[-\u2212]?\d+(?:\.\d+)?"
_OF = r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?"
_LABEL = re.compile(
    r"\b(?:score|rating|grade)\W{0,8}?(?:(?:is|of|would\s+be|be|:)\s*)?[\W_]{0,6}?"
    rf"(?<![\d.])({_NUM}){_OF}",
    re.I,
)
_BOLD = re.compile(rf"(?:\*\*|\[\[)\s*({_NUM}){_OF}\s*(?:\*\*|\]\])")
_ALONE = re.compile(rf"^\W{{0,4}}?({_NUM}){_OF}\W{{0,4}}$")
_ANY = re.compile(rf"(?<![\w.\-\u2212])({_NUM}){_OF}(?![\w]|\.\d)")
_ANY_SCALE = re.compile(r"\bscale\b|\d\s*(?:-|\u2013|to)\s*\d", re.I)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_REASON = re.compile(r"^\W*(?:reason|explanation|justification|rationale)\W*?[:\-]\s*(.*)$", re.I | re.M)
_MARKUP = re.compile(r"[*_`#>]+")


class Rejected(ResponseRejected):
    """An answer that gives no usable score (the reason says why)."""


@dataclass(frozen=True)
class Judgement:
    """One score read from one answer."""

    score: float
    reason: str | None
    """The judge's one-line reason, when it gave one."""


def _scale_pattern(low: float, high: float) -> re.Pattern[str]:
    lo, hi = (re.escape(_plain(v)) for v in (low, high))
    return re.compile(rf"\(?\s*(?<![\d.]){lo}\s*(?:-|\u2013|\u2014|to)\s*{hi}(?![\d.])\s*\)?", re.I)


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def _values(matches: list[re.Match[str]]) -> list[tuple[float, float | None]]:
    return [(_number(m.group(1)), float(m.group(2)) if m.group(2) else None) for m in matches]


def _json_answer(text: str) -> tuple[list[tuple[float, float | None]], str | None] | None:
    body = text.strip()
    fenced = re.match(r"^```(?:json)?\s*\n?(.*?)\n?```$", body, re.S | re.I)
    if fenced:
        body = fenced.group(1).strip()
    if not body.startswith("{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    keys = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
    value = keys.get("score", keys.get("rating"))
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        found = _ANY.findall(value)
        if len(found) != 1:
            return None
        value = found[0][0]
    reason = next((keys[k] for k in ("reason", "explanation", "justification") if isinstance(keys.get(k), str)), None)
    return [(_number(str(value)), None)], reason


def _reason(text: str, score_span: tuple[int, int] | None) -> str | None:
    labelled = _REASON.search(text)
    if labelled:
        line = labelled.group(1).strip()
        if not line:  # "Reason:" then the text on the next line
            rest = text[labelled.end():].strip().splitlines()
            line = rest[0] if rest else ""
    else:
        same_line = ""
        if score_span is not None:  # what is left once the score's line is taken out
            start = text.rfind("\n", 0, score_span[0]) + 1
            end = text.find("\n", score_span[1])
            end = end if end >= 0 else len(text)
            after, before = text[score_span[1]:end], text[start:score_span[0]]
            same_line = next((p for p in (_bare(after), _bare(before)) if _says_more(p)), "")
            text = text[:start] + text[end:]
        lines = [ln for ln in (_bare(ln) for ln in text.splitlines()) if ln]
        line = lines[0] if lines else same_line
    return _short(_MARKUP.sub("", line))


def _says_more(text: str) -> bool:
    """Text beside the score that can be its reason: a few words that are not another score or the scale."""
    return len(text.split()) > 1 and not _LABEL.search(text) and not _ANY_SCALE.search(text)


def _bare(text: str) -> str:
    """A line without markdown markup and the punctuation around it."""
    return _MARKUP.sub("", text).lstrip(" -:;,.\t\u2013\u2014").rstrip(" -:;,\t\u2013\u2014")


def _short(line: str) -> str | None:
    """One line of at most :data:`REASON_MAX_CHARS` (None when empty)."""
    line = " ".join(line.split())
    if not line:
        return None
    if len(line) > REASON_MAX_CHARS:
        line = line[: REASON_MAX_CHARS - 1].rstrip() + "\u2026"
    return line


def _one(values: list[tuple[float, float | None]], raw: str, where: str) -> tuple[float, float | None]:
    distinct = sorted({v for v, _ in values})
    if len(distinct) > 1:
        shown = ", ".join(_plain(v) for v in distinct)
        raise Rejected(f"the answer gives more than one {where} ({shown}): no single score", raw)
    return next((v, d) for v, d in values if v == distinct[0])


def parse_score(text: str, low: float = 1, high: float = 5, finish_reason: str | None = None) -> Judgement:
    """The score (``low`` to ``high``) and reason in a judge's answer; :class:`Rejected` when there is none."""
    raw = text
    body = _THINK.sub("", text)
    scale = _scale_pattern(low, high)
    values: list[tuple[float, float | None]] = []
    reason: str | None = None
    span: tuple[int, int] | None = None
    as_json = _json_answer(body)
    if as_json is not None:
        values, reason = as_json
        found = _one(values, raw, "score")
    else:
        cleaned = scale.sub(lambda m: " " * len(m.group(0)), body)
        for pattern, where, whole in ((_LABEL, "labelled score", False), (_BOLD, "highlighted number", False),
                                      (_ALONE, "first line", True), (_ANY, "number", False)):
            if whole:
                lines = [(i, ln) for i, ln in _lines(cleaned) if ln.strip()]
                matches = [m for m in [pattern.match(lines[0][1])] if m] if lines else []
                offset = lines[0][0] if lines else 0
            else:
                matches = list(pattern.finditer(cleaned))
                offset = 0
            if matches:
                values = _values(matches)
                found = _one(values, raw, where)
                first = next(m for m, (v, _) in zip(matches, values) if v == found[0])
                span = (offset + first.start(), offset + first.end())
                break
        else:
            if finish_reason == LENGTH_FINISH:  # cut off before the score: the retry asks for more tokens
                raise Rejected(CUT_OFF_REASON, raw)
            raise Rejected("the answer gives no score", raw)
        reason = _reason(body, span)
    score, denominator = found
    if denominator is not None and denominator != high:
        raise Rejected(
            f"the answer scores on another scale ({_plain(score)}/{_plain(denominator)}); "
            f"the scale is {_plain(low)}-{_plain(high)}",
            raw,
        )
    if not low <= score <= high:
        raise Rejected(f"the score {_plain(score)} is outside the scale {_plain(low)}-{_plain(high)}", raw)
    if reason is not None and as_json is not None:
        reason = _short(reason)
    return Judgement(float(score), reason)


def _lines(text: str) -> list[tuple[int, str]]:
    out, at = [], 0
    for line in text.splitlines(keepends=True):
        out.append((at, line.rstrip("\r\n")))
        at += len(line)
    return out


__all__ = ["REASON_MAX_CHARS", "Judgement", "Rejected", "parse_score"]

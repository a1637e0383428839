"""Why a record was removed (``itkit dedup --explain N``): the pair, the stage, the scores, the shared shingles.

:func:`explain_file` runs :func:`~itkit.dedup.files.dedup_file` with the same options (so the
decisions are the very ones of the run being explained), writes nothing, and describes
one record or a pair (:class:`Explanation`): which stage removed it as a duplicate of which
record, the true Jaccard of the shingle sets and the MinHash estimate, the ROUGE-L F1, the
numbers of both texts, and per word of each text whether it is in a shingle both texts share
or in the boilerplate left out of the comparison (:class:`Piece`, for highlighting).

A target is an input row index (``index`` in a ``--report`` line), ``id:ID`` or an id that is
not an integer (``id`` in the report), or two of them separated by a comma (a pair).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

from itkit.dedup.common import Boilerplate, _ends_with_words, _starts_with_words
from itkit.dedup.files import DedupRun, dedup_file
from itkit.dedup.minhash import MinHasher, estimated_jaccard
from itkit.dedup.normalize import _CJK, SENTENCE_BREAKS, normalize_text, numbers, words
from itkit.dedup.pipeline import DedupOptions, Removal
from itkit.dedup.rouge import rouge_l_f1
from itkit.errors import UsageError

ID_PREFIX = "id:"
MAX_SURVIVOR_LIST = 10
"""Records named when a kept record is the survivor of several removals."""
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|[{re.escape(SENTENCE_BREAKS)}\uff0e\uff01\uff1f]")
"""Words and sentence breaks of a text as written (the full-width breaks NFKC maps to ASCII included)."""

PLAIN, SHARED, COMMON = "plain", "shared", "common"
"""What a piece of a shown text is: compared but not shared, in a shingle both texts share, boilerplate."""


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str


@dataclass
class Side:
    """One record of the pair."""

    row: int
    id: str
    text: str
    """The compared text (after ``--on`` and ``--on-regex``), as written."""
    fate: str
    """``kept``, or ``removed by STAGE as a duplicate of record N``."""
    pieces: list[Piece] = field(default_factory=list)
    shingles: set[tuple[str, ...]] = field(default_factory=set)


@dataclass
class Explanation:
    """One record (or pair) explained; ``removal`` is set when ``a`` was removed as a duplicate of ``b``."""

    a: Side
    b: Side
    removal: Removal | None
    options: DedupOptions
    exact: bool
    jaccard: float
    estimate: float
    rouge: float
    numbers_a: list[str]
    numbers_b: list[str]
    boilerplate: Boilerplate

    @property
    def shared(self) -> set[tuple[str, ...]]:
        return self.a.shingles & self.b.shingles


@dataclass
class Note:
    """A target with no pair to show (kept, or never compared): one line."""

    message: str


def _compared_words(text: str, boilerplate: Boilerplate) -> tuple[list[tuple[str, int, int, bool]], list[int]]:
    """The words of ``text`` as ``(key, start, end, common)`` and the indices where a compared segment starts.

    Mirrors what the near stage hashes: the normalised text, the boilerplate cut off
    (:meth:`Boilerplate.strip`), sentence segments; ``key`` is the normalised word.
    """
    word_list: list[tuple[str, int, int]] = []  # (key, start, end)
    starts = {0}  # words that start a sentence segment
    for m in _TOKEN_RE.finditer(text):
        piece = m.group()
        if len(piece) == 1 and unicodedata.normalize("NFKC", piece) in SENTENCE_BREAKS:
            starts.add(len(word_list))
        else:
            word_list.append((normalize_text(piece), m.start(), m.end()))
    common = [False] * len(word_list)
    normalized = normalize_text(text)
    rest = boilerplate.strip(normalized)
    if boilerplate and rest != normalized:
        first, last = 0, len(word_list)
        if boilerplate.prefix and _starts_with_words(normalized, boilerplate.prefix):
            first = min(last, len(words(boilerplate.prefix)))
            common[:first] = [True] * first
            starts.add(first)
        cut = normalized[len(boilerplate.prefix):] if first else normalized
        if boilerplate.suffix and _ends_with_words(cut, boilerplate.suffix):
            n = len(words(boilerplate.suffix))
            last = max(first, last - n)
            common[last:] = [True] * (len(word_list) - last)
        if boilerplate.sentences:
            bounds = sorted(s for s in starts if first <= s < last) + [last]
            for lo, hi in zip(bounds, bounds[1:]):
                if " ".join(w[0] for w in word_list[lo:hi]) in boilerplate.sentences:
                    common[lo:hi] = [True] * (hi - lo)
    out = [(key, start, end, common[i]) for i, (key, start, end) in enumerate(word_list)]
    return out, sorted(starts)


def shingles_of(text: str, boilerplate: Boilerplate, ngram: int) -> tuple[set[tuple[str, ...]], list[tuple[int, int, bool, list[tuple[str, ...]]]]]:
    """The shingle set the near stage compares, and per word (start, end, common, the shingles it is in)."""
    found, starts = _compared_words(text, boilerplate)
    per_word: list[tuple[int, int, bool, list[tuple[str, ...]]]] = [(s, e, c, []) for _, s, e, c in found]
    compared = [i for i, w in enumerate(found) if not w[3]]
    start_set = set(starts)
    segments_: list[list[int]] = []
    previous = None
    for i in compared:
        if not segments_ or i in start_set or previous is None or i != previous + 1:
            segments_.append([])
        segments_[-1].append(i)
        previous = i
    result: set[tuple[str, ...]] = set()
    for seg in segments_:
        windows = [seg[j : j + ngram] for j in range(len(seg) - ngram + 1)] if len(seg) >= ngram else [seg]
        for window in windows:
            key = tuple(found[i][0] for i in window)
            result.add(key)
            for i in window:
                per_word[i][3].append(key)
    if not result:
        result.add(("",))  # a text without words: one fixed shingle (as the near stage does)
    return result, per_word


def _pieces(text: str, per_word, shared: set[tuple[str, ...]]) -> list[Piece]:
    pieces: list[Piece] = []
    at = 0
    for start, end, common, keys in per_word:
        if start > at:
            pieces.append(Piece(text[at:start], PLAIN))
        kind = COMMON if common else SHARED if any(k in shared for k in keys) else PLAIN
        pieces.append(Piece(text[start:end], kind))
        at = end
    if at < len(text):
        pieces.append(Piece(text[at:], PLAIN))
    out: list[Piece] = []
    for i, p in enumerate(pieces):  # a gap between two pieces of one kind takes that kind: one highlighted run
        if p.kind == PLAIN and not any(c.isalnum() for c in p.text) and 0 < i < len(pieces) - 1:
            if pieces[i - 1].kind == pieces[i + 1].kind:
                p = Piece(p.text, pieces[i - 1].kind)
        if out and out[-1].kind == p.kind:
            out[-1] = Piece(out[-1].text + p.text, p.kind)
        else:
            out.append(p)
    return out


def _rouge_text(text: str, boilerplate: Boilerplate) -> str:
    """What the ROUGE-L stage compares (the pipeline's rule: without the boilerplate, if it has some)."""
    if not boilerplate:
        return text
    normalized = normalize_text(text)
    rest = boilerplate.strip(normalized)
    return text if rest == normalized else rest


class _Finder:
    """Lookups in a finished run: row -> compared index, removal of a record, survivors of a record."""

    def __init__(self, run: DedupRun):
        self.run = run
        self.removed = {r.index: r for r in run.decisions.removals}

    def compared_index(self, row: int) -> int | None:
        rows = self.run.rows_of
        i = bisect.bisect_left(rows, row)
        return i if i < len(rows) and rows[i] == row else None

    def fate(self, i: int) -> str:
        r = self.removed.get(i)
        if r is None:
            return "kept"
        kept = self.run.rows_of[r.kept_index]
        return f"removed by {r.stage} as a duplicate of record {kept}"

    def survivors_of(self, i: int) -> list[Removal]:
        return [r for r in self.run.decisions.removals if r.kept_index == i]


def _resolve(value: str, run: DedupRun, source: str) -> int:
    """An input row from ``N``, ``id:ID`` or ``ID`` (an id that is not an integer)."""
    text = value.strip()
    if text.startswith(ID_PREFIX) or not re.fullmatch(r"\d+", text):
        wanted = text[len(ID_PREFIX):] if text.startswith(ID_PREFIX) else text
        for i, record_id in enumerate(run.ids):
            if record_id == wanted:
                return run.rows_of[i]
        for row, record_id in run.not_compared_ids.items():
            if record_id == wanted:
                return row
        raise UsageError(f"--explain {value}: no record of {source} has the id '{wanted}'")
    return int(text)


def _targets(value: str, run: DedupRun, source: str) -> list[int]:
    text = value.strip()
    if not text:
        raise UsageError("--explain takes N or N,M (an index or an id; two for a pair), not ''")
    bare = text[len(ID_PREFIX):] if text.startswith(ID_PREFIX) else text
    if "," in text and bare not in run.ids and bare not in run.not_compared_ids.values():
        parts = [p for p in text.split(",")]
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise UsageError(f"--explain takes N or N,M (an index or an id; two for a pair), not '{value}'")
        return [_resolve(p, run, source) for p in parts]
    return [_resolve(text, run, source)]


def explain_file(
    source: str,
    target: str,
    *,
    options: DedupOptions = DedupOptions(),
    on: str = "auto",
    on_regex: str | None = None,
    from_format: str = "auto",
    on_error: str = "fail",
) -> Explanation | Note:
    """Run the deduplication of ``source`` as configured, write nothing, and explain ``target`` (see above)."""
    found: list[Explanation | Note] = []

    def inspect(run: DedupRun) -> None:
        found.append(_explain(run, target, options, source))

    dedup_file(source, "-", options=options, on=on, on_regex=on_regex, from_format=from_format,
               on_error=on_error, inspect=inspect)
    return found[0]


def _explain(run: DedupRun, target: str, options: DedupOptions, source: str) -> Explanation | Note:
    finder = _Finder(run)
    rows = _targets(target, run, source)
    indices = []
    for row in rows:
        i = finder.compared_index(row)
        if i is None:
            why = run.not_compared.get(row)
            if why is not None:
                return Note(f"record {row} was kept without being compared ({why})")
            last = run.rows_of[-1] if len(run.rows_of) else -1
            raise UsageError(f"--explain {target}: {source} has no compared record {row} (its last is record {last})")
        indices.append(i)
    if len(indices) == 1:
        i = indices[0]
        removal = finder.removed.get(i)
        if removal is None:
            survivors = finder.survivors_of(i)
            if not survivors:
                return Note(f"record {rows[0]} (id {run.ids[i]}) was kept, and no record was removed as its duplicate")
            named = ", ".join(f"{run.rows_of[r.index]} ({r.stage})" for r in survivors[:MAX_SURVIVOR_LIST])
            more = f" and {len(survivors) - MAX_SURVIVOR_LIST:,} more" if len(survivors) > MAX_SURVIVOR_LIST else ""
            return Note(
                f"record {rows[0]} (id {run.ids[i]}) was kept; {len(survivors):,} record(s) were removed as its "
                f"duplicates: {named}{more}; --explain one of them to see the pair"
            )
        indices.append(removal.kept_index)
    i, j = indices
    removal = finder.removed.get(i)
    if removal is not None and removal.kept_index != j:
        removal = None
    return describe(run, i, j, finder.fate(i), finder.fate(j), removal, options)


def describe(run: DedupRun, i: int, j: int, fate_a: str, fate_b: str, removal: Removal | None,
             options: DedupOptions) -> Explanation:
    """The :class:`Explanation` of compared records ``i`` and ``j`` of a finished run."""
    boilerplate = run.decisions.boilerplate
    ta, tb = run.texts.get(i), run.texts.get(j)
    sa, wa = shingles_of(ta, boilerplate, options.ngram)
    sb, wb = shingles_of(tb, boilerplate, options.ngram)
    shared = sa & sb
    a = Side(run.rows_of[i], run.ids[i], ta, fate_a, _pieces(ta, wa, shared), sa)
    b = Side(run.rows_of[j], run.ids[j], tb, fate_b, _pieces(tb, wb, shared), sb)
    na, nb = normalize_text(ta), normalize_text(tb)
    if removal is not None and removal.estimate is not None:
        estimate = removal.estimate
    else:
        hasher = MinHasher(options.num_perm, options.ngram, options.seed)
        sig = hasher.signatures_of_texts([boilerplate.strip(na), boilerplate.strip(nb)])
        estimate = float(estimated_jaccard(sig[0], sig[1]))
    return Explanation(
        a=a,
        b=b,
        removal=removal,
        options=options,
        exact=na == nb,
        jaccard=len(shared) / len(sa | sb),
        estimate=estimate,
        rouge=rouge_l_f1(_rouge_text(ta, boilerplate), _rouge_text(tb, boilerplate)),
        numbers_a=numbers(na),
        numbers_b=numbers(nb),
        boilerplate=boilerplate,
    )


__all__ = ["Explanation", "Note", "Piece", "Side", "describe", "explain_file", "shingles_of"]

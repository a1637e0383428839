"""ROUGE-L exactly as ``rouge_score`` computes it, and a fast greedy novelty filter.

Self-Instruct keeps a generated instruction only when its ROUGE-L F1 against
every seed and every instruction kept so far is at most 0.7, using
``rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)``. This
module makes the same decisions, bit for bit, without the quadratic pure-Python
dynamic programme:

- :func:`rouge_tokenize` is ``rouge_score``'s default tokenizer (``str.lower``,
  then runs of ``[a-z0-9]``: every other character, non-ASCII included, is a
  separator).
- :func:`rouge_l_f1` evaluates the reference's own float expression
  (precision ``lcs/len(prediction)``, recall ``lcs/len(target)``,
  ``2*p*r/(p+r)``; 0 when either side has no tokens), so scores that sit exactly
  on the threshold round the same way.
- :class:`RougeNoveltyFilter` indexes kept texts with *prefix filtering*: a text
  of ``a`` tokens can only score above ``t`` against a text of ``b`` tokens when
  ``2*min(a,b)/(a+b) > t`` (length bound) and when the two share at least
  ``t*a/(2-t)`` tokens counted with multiplicity (the bag-of-tokens overlap
  bounds the LCS); so, with token occurrences sorted rarest first, they must
  share one of their first ``a - overlap + 1`` occurrences. Only texts found
  that way are compared, with rapidfuzz's bit-parallel LCS on token-id strings,
  and the bounds are applied with a safety margin so they never drop a pair the
  reference would drop: the final decision is always the exact float F1.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")
process = lazy_module("rapidfuzz.process")
_distance = lazy_module("rapidfuzz.distance")

DEFAULT_ROUGE_THRESHOLD = 0.7
"""Self-Instruct's threshold: a text is a near copy when its ROUGE-L F1 is *above* it."""

BOUND_MARGIN = 1e-9
"""Pruning bounds use ``threshold - BOUND_MARGIN`` so float rounding can never prune a pair the
reference would count (the F1 float differs from the exact ratio by ~1e-16)."""

SCALAR_CANDIDATES = 16
"""Up to this many candidates are compared one by one; more go through one vectorised rapidfuzz call."""

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def rouge_tokenize(text: str) -> list[str]:
    """``rouge_score.tokenize.tokenize(text, None)``: lower-case, then runs of ASCII letters/digits.

    The reference replaces ``[^a-z0-9]+`` with spaces after ``str.lower()`` and
    splits on whitespace; finding the runs directly gives the same tokens
    (``"Ünïcode"`` -> ``["n", "code"]``; ``"\\u212a"`` (Kelvin sign) lowers to ``"k"``).
    """
    return _TOKEN_RE.findall(text.lower())


def rouge_l_f1_from_lcs(lcs: int, len_target: int, len_prediction: int) -> float:
    """The reference's F-measure for an LCS length, evaluated with the same float operations."""
    if not len_target or not len_prediction:
        return 0.0
    precision = lcs / len_prediction
    recall = lcs / len_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f1(target: str, prediction: str) -> float:
    """ROUGE-L F1 of two texts, equal to ``RougeScorer(["rougeL"]).score(target, prediction)["rougeL"].fmeasure``.

    The F1 is symmetric (the float expression too), so the argument order does not matter.
    """
    a, b = rouge_tokenize(target), rouge_tokenize(prediction)
    if not a or not b:
        return 0.0
    return rouge_l_f1_from_lcs(_distance.LCSseq.similarity(a, b), len(a), len(b))


def f1_array(lcs: np.ndarray, len_target: int, len_predictions: np.ndarray) -> np.ndarray:
    """Vectorised :func:`rouge_l_f1_from_lcs` (IEEE float64 gives the very same values)."""
    lcs = lcs.astype(np.float64)
    lens = len_predictions.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / lens
        recall = lcs / float(len_target)
        f1 = 2 * precision * recall / (precision + recall)
    f1[~np.isfinite(f1)] = 0.0
    if len_target == 0:
        f1[:] = 0.0
    return f1


def length_window(length: int, threshold: float) -> tuple[int, int]:
    """Token counts a partner may have and still score above ``threshold`` (with the safety margin)."""
    t = threshold - BOUND_MARGIN
    if t <= 0:
        return 0, 2**62
    low = math.floor(t * length / (2 - t))
    high = math.ceil(length * (2 - t) / t)
    return low, high


def min_overlap(length: int, threshold: float) -> int:
    """A lower bound on the tokens (with multiplicity) a text must share with any partner scoring above ``threshold``."""
    t = threshold - BOUND_MARGIN
    if t <= 0:
        return 1
    return max(1, min(length, math.floor(t * length / (2 - t)) + 1))


def min_lcs(len_a: int, len_b: int, threshold: float) -> int:
    """A lower bound on the LCS two texts need to score above ``threshold`` (rapidfuzz's ``score_cutoff``)."""
    t = threshold - BOUND_MARGIN
    if t <= 0:
        return 1
    return max(1, math.floor(t * (len_a + len_b) / 2))


# ---------------------------------------------------------------- encoding


class TokenCodec:
    """Token strings -> one symbol per token, so rapidfuzz computes the LCS of token sequences.

    Each distinct token gets a Unicode code point (surrogates skipped); a text
    becomes a ``str`` whose characters are its tokens. Past the 1,112,064
    distinct tokens that fit, every sequence switches to a list of ints (the
    same symbols as numbers), which rapidfuzz also accepts.
    """

    CODE_POINTS = 0x110000 - 0x800

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.as_lists = False

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        ids = self.ids
        out = []
        for token in tokens:
            tid = ids.get(token)
            if tid is None:
                tid = ids[token] = len(ids)
            out.append(tid)
        return out

    @staticmethod
    def symbol(tid: int) -> int:
        return tid if tid < 0xD800 else tid + 0x800

    def encode(self, ids: Sequence[int]) -> str | list[int]:
        symbol = self.symbol
        if not self.as_lists and len(self.ids) > self.CODE_POINTS:
            self.as_lists = True
        if self.as_lists:
            return [symbol(i) for i in ids]
        return "".join([chr(symbol(i)) for i in ids])

    @staticmethod
    def widen(seq: str | list[int]) -> list[int]:
        return list(map(ord, seq)) if isinstance(seq, str) else seq


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Match:
    """A text a candidate was compared with, and their ROUGE-L F1.

    ``index``: the seed number when ``is_seed``; otherwise the kept number (texts are
    numbered from 0 in the order they were kept) or, in :class:`FilterResult`, the index
    in the filtered list unless ``earlier`` (kept before that ``filter`` call).
    """

    index: int
    score: float
    is_seed: bool = False
    text: str | None = None
    earlier: bool = False


class NoveltyCheck(NamedTuple):
    """``is_novel``: no seed or kept text scores above the threshold.

    ``matches``: with ``top_k``, the most similar texts, best first; without, the best
    match above the threshold when the text is not novel (else empty).
    """

    is_novel: bool
    matches: list[Match]


@dataclass
class FilterResult:
    """Outcome of :meth:`RougeNoveltyFilter.filter` over a list of texts.

    ``kept``: indices of kept texts, in processing order; ``dropped``: for each dropped
    index, the best match and its F1: an index of the same list, a seed
    (``is_seed``), or a text kept before this call (``earlier``, by kept number).
    """

    kept: list[int] = field(default_factory=list)
    dropped: dict[int, Match] = field(default_factory=dict)


# ---------------------------------------------------------------- the filter


class _Doc:
    """A text prepared for comparison: its token symbols, length, occurrence elements and prefix."""

    __slots__ = ("seq", "length", "elements", "prefix")

    def __init__(self, seq: str | list[int], elements: list[int]):
        self.seq = seq
        self.length = len(elements)
        self.elements = elements
        self.prefix: list[int] | None = None


class RougeNoveltyFilter:
    """Greedy ROUGE-L novelty filter with exactly the reference's decisions.

    A text is novel when its ROUGE-L F1 against every seed and every kept text
    is at most ``threshold``. ``check`` answers without changing anything,
    ``add`` keeps a text unconditionally, ``offer`` keeps it when novel, and
    ``filter`` runs the greedy loop over a list.

    Seeds are compared against but never reported as kept (Self-Instruct's
    seed tasks). Kept texts are numbered from 0 in the order they were kept.
    """

    def __init__(self, threshold: float = DEFAULT_ROUGE_THRESHOLD, seeds: Iterable[str] = ()):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"the ROUGE-L threshold must be between 0 and 1, not {threshold}")
        self.threshold = threshold
        self._codec = TokenCodec()
        self._docs: list[_Doc] = []
        self._seqs: list[str | list[int]] = []  # doc.seq by position, for fast gathering
        self._texts: list[str] = []
        self._n_seeds = 0
        # an element is one occurrence of a token: (token id, occurrence number), numbered first-seen
        self._elements: dict[int, int] = {}
        self._postings: dict[int, list[int]] = {}
        self._rank: np.ndarray | None = None
        self._lens = np.zeros(0, dtype=np.int64)  # token counts by position (grown by doubling)
        for text in seeds:
            self._insert(text, self._prepare(text))
            self._n_seeds += 1

    # -- public API
    @property
    def num_seeds(self) -> int:
        return self._n_seeds

    @property
    def num_kept(self) -> int:
        return len(self._docs) - self._n_seeds

    @property
    def kept_texts(self) -> list[str]:
        return self._texts[self._n_seeds:]

    def check(self, text: str, top_k: int | None = None) -> NoveltyCheck:
        """Is ``text`` novel against the seeds and kept texts? See :class:`NoveltyCheck`."""
        return self._check(self._prepare(text), top_k)

    def add(self, text: str) -> int:
        """Keep ``text`` (novel or not); returns its kept index."""
        self._insert(text, self._prepare(text))
        return self.num_kept - 1

    def offer(self, text: str, top_k: int | None = None) -> NoveltyCheck:
        """``check`` and, when novel, ``add``."""
        doc = self._prepare(text)
        result = self._check(doc, top_k)
        if result.is_novel:
            self._insert(text, doc)
        return result

    def similar(self, text: str, k: int = 10) -> list[Match]:
        """The ``k`` seeds/kept texts most similar to ``text``, best first (ties: earlier first)."""
        return self._scan(self._prepare(text), k).matches

    def filter(self, texts: Sequence[str], order: Iterable[int] | None = None) -> FilterResult:
        """Greedy filter: visit ``texts`` in ``order`` (a permutation; default: input order), keep each novel one.

        A text is dropped when it scores above the threshold against a seed, a
        text kept before by this filter, or one kept earlier in this same loop.
        Kept texts stay in the filter. Indices in the result refer to ``texts``.
        """
        visit = range(len(texts)) if order is None else list(order)
        if order is not None and sorted(visit) != list(range(len(texts))):
            raise ValueError("order must be a permutation of the text indices")
        docs = [self._prepare(t) for t in texts]
        self._rank_rarest_first(docs)
        result = FilterResult()
        local: dict[int, int] = {}  # position in the filter -> index in texts
        for i in visit:
            best = self._probe(docs[i])
            if best is None:
                local[len(self._docs)] = i
                self._insert(texts[i], docs[i])
                result.kept.append(i)
                continue
            pos, score = best
            if pos in local:
                result.dropped[i] = Match(local[pos], score, False, self._texts[pos])
            else:
                match = self._match(pos, score)
                result.dropped[i] = match if match.is_seed else dataclasses.replace(match, earlier=True)
        return result

    # -- preparing texts
    def _prepare(self, text: str) -> _Doc:
        ids = self._codec.token_ids(rouge_tokenize(text))
        seen: dict[int, int] = {}
        elements = []
        table = self._elements
        for tid in ids:
            k = seen.get(tid, 0)
            seen[tid] = k + 1
            key = (tid << 32) | k
            eid = table.get(key)
            if eid is None:
                eid = table[key] = len(table)
            elements.append(eid)
        return _Doc(self._codec.encode(ids), elements)

    # -- the global order of elements (prefix filtering needs one fixed order)
    def _rank_rarest_first(self, batch: list[_Doc]) -> None:
        """Re-rank all known elements rarest first (document frequency over the index and ``batch``).

        Without a batch the order is "newest element first": elements seen late tend to
        be rare, and new ones join at the front without disturbing indexed texts.
        After re-ranking, the index is rebuilt; elements first seen later still
        rank before all ranked ones, so the order stays fixed between batches.
        """
        if not batch:
            return
        df = np.zeros(len(self._elements), dtype=np.int64)
        for doc in itertools.chain(self._docs, batch):
            if doc.elements:
                df[np.asarray(doc.elements, dtype=np.int64)] += 1
        order = np.lexsort((-np.arange(len(df)), df))  # rarest first; ties: newest first
        rank = np.empty(len(df), dtype=np.int64)
        rank[order] = np.arange(-len(df), 0)
        self._rank = rank
        self._postings = {}
        for doc in itertools.chain(self._docs, batch):
            doc.prefix = None
        for pos, doc in enumerate(self._docs):
            self._index(pos, doc)

    def _prefix(self, doc: _Doc) -> list[int]:
        if doc.prefix is None:
            rank = self._rank
            if rank is None:
                ordered = sorted(doc.elements, reverse=True)
            else:
                n = len(rank)
                ordered = sorted(doc.elements, key=lambda e: rank[e] if e < n else -e - 1)
            doc.prefix = ordered[: doc.length - min_overlap(doc.length, self.threshold) + 1]
        return doc.prefix

    # -- the index
    def _insert(self, text: str, doc: _Doc) -> None:
        pos = len(self._docs)
        self._docs.append(doc)
        self._seqs.append(doc.seq)
        self._texts.append(text)
        if pos >= len(self._lens):
            self._lens = np.concatenate([self._lens, np.zeros(max(1024, pos), dtype=np.int64)])
        self._lens[pos] = doc.length
        self._index(pos, doc)

    def _index(self, pos: int, doc: _Doc) -> None:
        if doc.length == 0 or self.threshold >= 1.0:
            return  # scores 0 against everything / nothing scores above 1
        postings = self._postings
        for e in self._prefix(doc):
            lst = postings.get(e)
            if lst is None:
                postings[e] = [pos]
            else:
                lst.append(pos)

    def _check(self, doc: _Doc, top_k: int | None) -> NoveltyCheck:
        if top_k:
            return self._scan(doc, top_k)
        best = self._probe(doc)
        if best is None:
            return NoveltyCheck(True, [])
        return NoveltyCheck(False, [self._match(*best)])

    def _probe(self, doc: _Doc) -> tuple[int, float] | None:
        """The best (position, F1) above the threshold (ties: earliest position), or None."""
        a = doc.length
        if a == 0 or self.threshold >= 1.0 or not self._docs:
            return None
        postings = self._postings
        lists = [lst for e in self._prefix(doc) if (lst := postings.get(e)) is not None]
        total = sum(map(len, lists))
        if not total:
            return None
        docs = self._docs
        threshold = self.threshold
        low, high = length_window(a, threshold)
        seq = doc.seq
        if total > SCALAR_CANDIDATES:
            positions = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=total)
            positions.sort()
            lens = self._lens[positions]
            keep = (lens >= low) & (lens <= high)
            keep[1:] &= positions[1:] != positions[:-1]  # a text reached through several elements: once
            positions = positions[keep]
            if not len(positions):
                return None
            chosen = positions.tolist()
            seqs = [self._seqs[chosen[0]]] if len(chosen) == 1 else list(operator.itemgetter(*chosen)(self._seqs))
            if self._codec.as_lists:  # past the code points: compare lists of ints throughout
                seq, seqs = TokenCodec.widen(seq), [TokenCodec.widen(s) for s in seqs]
            # 2*LCS/(a+b) (Indel's normalized similarity) >= threshold - margin: a superset of the pairs above it
            ratio = process.cdist(
                [seq], seqs, scorer=_distance.Indel.normalized_similarity, score_cutoff=threshold - BOUND_MARGIN, dtype=np.float64
            )[0]
            candidates_left = [(chosen[h], seqs[h]) for h in np.flatnonzero(ratio).tolist()]
        else:
            candidates_left = []
            for pos in sorted(set(itertools.chain.from_iterable(lists))):
                b = docs[pos].length
                if low <= b <= high:
                    candidates_left.append((pos, docs[pos].seq))
        best: tuple[int, float] | None = None
        for pos, oseq in candidates_left:
            b = docs[pos].length
            if type(oseq) is not type(seq):  # the codec switched to int lists meanwhile
                seq, oseq = TokenCodec.widen(seq), TokenCodec.widen(oseq)
            lcs = _distance.LCSseq.similarity(seq, oseq, score_cutoff=min_lcs(a, b, threshold))
            if not lcs:
                continue
            f1 = rouge_l_f1_from_lcs(lcs, a, b)
            if f1 > threshold and (best is None or f1 > best[1]):
                best = (pos, f1)
        return best

    def _scan(self, doc: _Doc, top_k: int) -> NoveltyCheck:
        """Exact F1 against every seed and kept text; the ``top_k`` best (ties: earliest)."""
        n = len(self._docs)
        if n == 0:
            return NoveltyCheck(True, [])
        lens = self._lens[:n]
        if doc.length == 0:
            scores = np.zeros(n)
        else:
            query = doc.seq
            seqs = [d.seq for d in self._docs]
            if self._codec.as_lists:
                query = TokenCodec.widen(query)
                seqs = [TokenCodec.widen(s) for s in seqs]
            lcs = process.cdist([query], seqs, scorer=_distance.LCSseq.similarity, dtype=np.int32)[0]
            scores = f1_array(lcs, doc.length, lens)
        order = np.lexsort((np.arange(n), -scores))
        is_novel = not bool(scores[order[0]] > self.threshold)
        return NoveltyCheck(is_novel, [self._match(int(p), float(scores[p])) for p in order[:top_k]])

    def _match(self, pos: int, score: float) -> Match:
        if pos < self._n_seeds:
            return Match(pos, score, True, self._texts[pos])
        return Match(pos - self._n_seeds, score, False, self._texts[pos])

"""Topic clusters of prompts: TF-IDF vectors (feature-hashed), spherical k-means and topic groups, numpy only.

Used to spread the LoRA subset over the topics of a dataset that has no
category field. Vectors are TF-IDF over words, hashed with a stable hash into
:data:`DIMENSIONS` signed buckets and L2-normalised (a random projection of the
TF-IDF space, so memory stays ``n x DIMENSIONS`` floats per batch). k-means is
fit on at most :data:`FIT_SAMPLE` records and then assigns every record.

k-means cuts a dense, dominant topic into many clusters and gives a small
topic one, so balancing over raw clusters would still favour the big topic.
Clusters whose centroids are close (average-linkage cosine similarity at least
:data:`MERGE_SIMILARITY`) are therefore merged into topic groups: the subset is
balanced over groups first and over the clusters inside each group second.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from itkit.lazy import lazy_module

np = lazy_module("numpy")

DIMENSIONS = 256
FIT_SAMPLE = 20_000
MAX_ITER = 30
MAX_DF = 0.5
"""Words in more than this share of the texts carry no topic and are ignored."""
MIN_DF = 2
"""Words in fewer texts than this are ignored (when there are at least 50 texts)."""
BATCH = 8192
NO_TERMS = -1
"""The cluster of a text with no usable word."""
LABEL_TERMS = 3
LABEL_SKIP = frozenset(
    "a an the of in on at to for from by with and or but if is are was were be been it its this that these those "
    "i me my we our you your he she they them his her their what which who whom how why when where do does did "
    "can could should would will shall may might must not no so as than then there here about into out up".split()
)
"""Words left out of cluster labels (they still count for the clustering)."""
MERGE_SIMILARITY = 0.5
"""Clusters whose centroids have at least this average cosine similarity form one topic group."""

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(term: str) -> tuple[int, float]:
    h = zlib.crc32(term.encode("utf-8"))
    return h % DIMENSIONS, (1.0 if (h >> 16) & 1 else -1.0)


@dataclass
class Vectorizer:
    """Word -> (bucket, signed idf), fit on a list of texts."""

    terms: dict[str, tuple[int, float]] = field(default_factory=dict)
    bucket_terms: list[str] = field(default_factory=list)
    """For each bucket, its most frequent term (to label clusters)."""

    @classmethod
    def fit(cls, tokenised: Sequence[list[str]]) -> "Vectorizer":
        n = len(tokenised)
        df: Counter[str] = Counter()
        for toks in tokenised:
            df.update(set(toks))
        min_df = MIN_DF if n >= 50 else 1
        max_df = max(1, int(MAX_DF * n)) if n >= 10 else n
        terms: dict[str, tuple[int, float]] = {}
        best: list[tuple[int, str]] = [(0, "")] * DIMENSIONS
        for term, d in df.items():
            if d < min_df or d > max_df:
                continue
            bucket, sign = _bucket(term)
            terms[term] = (bucket, sign * (math.log((1 + n) / (1 + d)) + 1.0))
            if (d, term) > best[bucket]:
                best[bucket] = (d, term)
        return cls(terms, [t for _, t in best])

    def transform(self, tokenised: Sequence[list[str]]) -> np.ndarray:
        """L2-normalised rows; a text without known words is a zero row."""
        out = np.zeros((len(tokenised), DIMENSIONS), dtype=np.float32)
        terms = self.terms
        for row, toks in enumerate(tokenised):
            for term, tf in Counter(toks).items():
                hit = terms.get(term)
                if hit is not None:
                    out[row, hit[0]] += hit[1] * (1.0 + math.log(tf))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on unit vectors (distance = 1 - cosine)."""
    centers = [x[int(rng.integers(len(x)))]]
    dist = np.maximum(1.0 - x @ centers[0], 0.0)
    for _ in range(1, k):
        total = float(dist.sum())
        if total <= 1e-12:
            break  # fewer distinct points than k
        idx = int(rng.choice(len(x), p=dist / total))
        centers.append(x[idx])
        dist = np.minimum(dist, np.maximum(1.0 - x @ x[idx], 0.0))
    return np.stack(centers)


def spherical_kmeans(x: np.ndarray, k: int, seed: int, max_iter: int = MAX_ITER) -> np.ndarray:
    """Unit-norm centroids of ``x`` (rows unit-norm, no zero rows)."""
    rng = np.random.default_rng(seed)
    centers = _kmeans_pp(x, min(k, len(x)), rng)
    labels = np.full(len(x), -1)
    for _ in range(max_iter):
        new = np.argmax(x @ centers.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(len(centers)):
            members = x[labels == c]
            if len(members):
                mean = members.sum(axis=0)
                norm = np.linalg.norm(mean)
                if norm > 0:
                    centers[c] = mean / norm
    return centers


def merge_clusters(centers: np.ndarray, threshold: float = MERGE_SIMILARITY) -> list[int]:
    """Topic group of each centroid: average-linkage agglomeration while groups are at least ``threshold`` similar."""
    sim = centers @ centers.T
    groups: list[list[int]] = [[i] for i in range(len(centers))]
    while len(groups) > 1:
        best, pair = threshold, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                s = float(sim[np.ix_(groups[a], groups[b])].mean())
                if s >= best:
                    best, pair = s, (a, b)
        if pair is None:
            break
        a, b = pair
        groups[a] = sorted(groups[a] + groups[b])
        del groups[b]
    out = [0] * len(centers)
    for g, members in enumerate(sorted(groups)):
        for c in members:
            out[c] = g
    return out


def _top_terms(vector: np.ndarray, bucket_terms: list[str]) -> str:
    terms = [bucket_terms[i] for i in np.argsort(-np.abs(vector), kind="stable")]
    return ", ".join([t for t in terms if t and t not in LABEL_SKIP][:LABEL_TERMS])


@dataclass
class Clustering:
    labels: list[int]
    """Cluster of each text (``NO_TERMS`` for texts without usable words)."""
    groups: list[int]
    """Topic group of each text (``NO_TERMS`` for texts without usable words)."""
    names: dict[int, str]
    """A short label per topic group: its top words."""
    clusters: int = 0


def auto_clusters(n_texts: int, subset_size: int, max_clusters: int = 50) -> int:
    """Default number of clusters: about sqrt(n), at most ``max_clusters`` and the subset size."""
    return max(2, min(max_clusters, subset_size, int(math.sqrt(max(n_texts, 1)))))


def cluster_texts(texts: Sequence[str], k: int, seed: int) -> Clustering:
    tokenised = [words(t) for t in texts]
    vectorizer = Vectorizer.fit(tokenised)
    order = np.random.default_rng(seed).permutation(len(texts))[:FIT_SAMPLE]
    sample = vectorizer.transform([tokenised[i] for i in sorted(order.tolist())])
    sample = sample[np.linalg.norm(sample, axis=1) > 0]
    if len(sample) == 0:
        return Clustering([NO_TERMS] * len(texts), [NO_TERMS] * len(texts), {NO_TERMS: "(no words)"})
    centers = spherical_kmeans(sample, k, seed)
    group_of = merge_clusters(centers)
    labels: list[int] = []
    for start in range(0, len(texts), BATCH):
        x = vectorizer.transform(tokenised[start : start + BATCH])
        best = np.argmax(x @ centers.T, axis=1)
        empty = np.linalg.norm(x, axis=1) == 0
        labels.extend(NO_TERMS if e else int(b) for b, e in zip(best, empty))
    groups = [NO_TERMS if c == NO_TERMS else group_of[c] for c in labels]
    sizes = Counter(labels)
    names = {NO_TERMS: "(no words)"}
    for g in sorted(set(group_of)):
        members = [c for c in range(len(centers)) if group_of[c] == g]
        mean = sum(centers[c] * sizes.get(c, 0) for c in members)
        names[g] = _top_terms(np.asarray(mean), vectorizer.bucket_terms)
    return Clustering(labels, groups, names, len(centers))

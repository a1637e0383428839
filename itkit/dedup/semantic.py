"""Semantic near-duplicates (``--semantic``): cosine similarity of sentence embeddings.

Paraphrases ("How do I reverse a string in Python?" / "What is the way to reverse a
string using Python?") share few word n-grams, so MinHash misses them; their embeddings
are close. This stage embeds each distinct compared text once (after normalisation and
without the boilerplate of ``--ignore-common``) and removes, greedily in the keep
policy's order, a text whose cosine similarity with a text kept before it is
``>= threshold``, matched to the most similar one (ties: the one visited first), like
the near stage.

- **Embeddings** (:func:`load_embedder`): by default WordLlama's ``l2_supercat`` 256-d
  static token embeddings, shipped inside the ``wordllama`` wheel (16 MB, no torch),
  loaded from the package folder with downloads off: it never touches the network.
  Token vectors are mean-pooled without padding (memory bounded by
  :data:`POOL_TOKENS`, whatever the text length), as ``WordLlamaInference.embed`` does.
  ``--embedding-model PATH`` takes a local model2vec or sentence-transformers folder.
- **Nearest neighbours** (:func:`find_semantic_duplicates`): texts are decided in
  blocks of :data:`BLOCK` in visiting order. A block is compared with itself exactly
  and with the texts kept so far through a faiss index of the kept vectors (exact
  inner product up to :data:`FLAT_LIMIT` texts, an IVF index above: not all pairs);
  every candidate's cosine is recomputed exactly (float64) before it can remove a text.
  Only kept texts enter the index, so the neighbours found are always possible matches.

The packages are optional (``pip install 'itkit[semantic]'``) and imported on first use.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from itkit.errors import UsageError
from itkit.lazy import lazy_module

np = lazy_module("numpy")

DEFAULT_SEMANTIC = 0.85
"""Cosine at or above which two texts are semantic duplicates. With WordLlama, paraphrased
instructions score 0.8-0.95; different tasks in one template ("... capital of Australia?" /
"... of Canada?", "Translate ... into French." / "... German.") 0.65-0.75."""
BLOCK = 1024
"""Texts decided together: compared with each other exactly, and with the kept ones through the index."""
NEIGHBORS = 8
"""Kept texts the index returns per text (the best match is the nearest; the rest is slack)."""
FLAT_LIMIT = 50_000
"""Up to this many texts the index is exact (faiss IndexFlatIP); above, an IVF index."""
IVF_LISTS = 2.0
"""IVF lists per square root of the number of texts."""
IVF_PROBE = 16
"""IVF lists searched per text."""
IVF_TRAIN_PER_LIST = 40
"""Training vectors per IVF list (an evenly spaced sample of the texts)."""
POOL_TOKENS = 65_536
"""Token vectors gathered at once while mean-pooling (64 MB at 256 dimensions)."""
EMBED_CHUNK = 4096
"""Texts embedded together."""
PACKAGES = {"wordllama": "wordllama", "faiss": "faiss-cpu"}
"""Module -> PyPI package the stage needs (the ``semantic`` extra)."""
WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIM = 256


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows (a text without tokens: a zero row)."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def missing_packages(model: str | None = None) -> list[str]:
    """PyPI names of the packages the stage needs and this Python lacks."""
    needed = dict(PACKAGES)
    if model is not None:
        needed.pop("wordllama")
    return [pkg for mod, pkg in needed.items() if importlib.util.find_spec(mod) is None]


def check_available(model: str | None, option: str = "--semantic") -> None:
    """A usage error naming the install command when the stage's packages are missing."""
    missing = missing_packages(model)
    if missing:
        raise UsageError(
            f"{option} needs {', '.join(missing)}: pip install 'itkit[semantic]'"
        )
    if model is not None:
        model_kind(model)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


def _quiet_import(name: str):
    """Import ``name`` without letting it configure the root logger (wordllama calls basicConfig)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    module = importlib.import_module(name)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return module


class WordLlamaEmbedder:
    """WordLlama's static embeddings, loaded from the wheel's own folder (offline)."""

    name = f"wordllama {WORDLLAMA_CONFIG} {WORDLLAMA_DIM}d"

    def __init__(self) -> None:
        wordllama = _quiet_import("wordllama")
        folder = Path(wordllama.__file__).parent
        # the wheel ships weights/ and tokenizers/; as a cache dir it is found without a download
        model = wordllama.WordLlama.load(
            WORDLLAMA_CONFIG, cache_dir=folder, dim=WORDLLAMA_DIM, disable_download=True
        )
        self._table = np.ascontiguousarray(model.embedding, dtype=np.float32)
        self._tokenizer = model.tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        if not texts:
            return out
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
        if not lengths.sum():
            return out
        ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encoded])
        np.clip(ids, 0, len(self._table) - 1, out=ids)
        owner = np.repeat(np.arange(len(texts)), lengths)
        for lo in range(0, len(ids), POOL_TOKENS):
            hi = min(lo + POOL_TOKENS, len(ids))
            mine = owner[lo:hi]
            starts = np.flatnonzero(np.r_[True, mine[1:] != mine[:-1]])
            out[mine[starts]] += np.add.reduceat(self._table[ids[lo:hi]], starts, axis=0)
        out /= np.maximum(lengths, 1)[:, None].astype(np.float32)
        return _normalised(out)


class Model2VecEmbedder:
    """A local model2vec folder (``StaticModel.save_pretrained``)."""

    def __init__(self, path: str):
        model2vec = importlib.import_module("model2vec")
        self.name = f"model2vec {path}"
        self._model = model2vec.StaticModel.from_pretrained(path)

    def embed(self, texts: list[str]) -> np.ndarray:
        return _normalised(self._model.encode(texts, use_multiprocessing=False))


class SentenceTransformerEmbedder:
    """A local sentence-transformers folder (``SentenceTransformer.save``), on the CPU."""

    def __init__(self, path: str):
        st = importlib.import_module("sentence_transformers")
        self.name = f"sentence-transformers {path}"
        self._model = st.SentenceTransformer(path, device="cpu", local_files_only=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        return _normalised(self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True))


def _is_static(folder: Path) -> bool:
    """A model2vec folder: its weights and tokenizer at the top, and (if any) a StaticEmbedding module."""
    if not ((folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()):
        return False
    if (folder / "config_sentence_transformers.json").is_file():
        return False
    modules = folder / "modules.json"
    if not modules.is_file():
        return True
    try:
        listed = json.loads(modules.read_text(encoding="utf-8"))
        return any("StaticEmbedding" in str(m.get("type", "")) for m in listed)
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def model_kind(path: str) -> str:
    """``model2vec`` or ``sentence-transformers``: what the folder holds (a usage error otherwise)."""
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"--embedding-model {path}: not a folder (a local model2vec or sentence-transformers model)")
    if _is_static(folder):
        kind, module = "model2vec", "model2vec"
    elif (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file():
        kind, module = "sentence-transformers", "sentence_transformers"
    else:
        raise UsageError(
            f"--embedding-model {path}: neither a model2vec folder (model.safetensors and tokenizer.json) nor a "
            "sentence-transformers folder (modules.json)"
        )
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"--embedding-model {path} is a {kind} model: pip install 'itkit[{kind}]'")
    return kind


def load_embedder(model: str | None = None) -> Embedder:
    """WordLlama (``model`` None) or the local model folder ``model``; never downloads."""
    if model is None:
        return WordLlamaEmbedder()
    kind = model_kind(model)  # a local folder: model2vec reads it as it is; sentence-transformers with local_files_only
    return SentenceTransformerEmbedder(model) if kind == "sentence-transformers" else Model2VecEmbedder(model)


class VectorStore:
    """Embedding rows appended in blocks; :meth:`matrix` joins them once."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def append(self, block: np.ndarray) -> None:
        self._blocks.append(block)
        self._rows += len(block)

    def matrix(self) -> np.ndarray:
        if len(self._blocks) != 1:
            dim = self._blocks[0].shape[1] if self._blocks else 0
            self._blocks = [np.concatenate(self._blocks) if self._blocks else np.zeros((0, dim), dtype=np.float32)]
        return self._blocks[0]


@dataclass
class SemanticResult:
    """Items removed, the kept item each matched, and the cosine similarity."""

    removed: np.ndarray
    matched: np.ndarray
    score: np.ndarray
    compared: int = 0
    """Candidate pairs whose cosine was computed."""


class _KeptIndex:
    """The vectors of the kept items of one group, searchable (faiss)."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray, flat_limit: int):
        """An index for the vectors ``rows`` of ``vectors`` (an IVF one is trained on a sample of them)."""
        faiss = _quiet_import("faiss")
        dim = vectors.shape[1]
        if len(rows) <= flat_limit:
            self._index = faiss.IndexFlatIP(dim)
        else:
            lists = max(1, int(IVF_LISTS * math.sqrt(len(rows))))
            sample = vectors[rows[:: max(1, len(rows) // (lists * IVF_TRAIN_PER_LIST))]]
            self._quantizer = faiss.IndexFlatIP(dim)
            self._index = faiss.IndexIVFFlat(self._quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = 1234
            self._index.train(np.ascontiguousarray(sample))
            self._index.nprobe = min(IVF_PROBE, lists)

    @property
    def size(self) -> int:
        return self._index.ntotal

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors))

    def search(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Positions (in adding order) of up to ``k`` nearest kept vectors per row; -1 pads."""
        _, found = self._index.search(np.ascontiguousarray(vectors), min(k, self.size))
        return found


def find_semantic_duplicates(
    vectors: np.ndarray,
    threshold: float = DEFAULT_SEMANTIC,
    priority: np.ndarray | None = None,
    items: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    block: int = BLOCK,
    neighbors: int = NEIGHBORS,
    flat_limit: int = FLAT_LIMIT,
) -> SemanticResult:
    """Greedy semantic-duplicate removal (see the module docstring).

    Item ``i`` is the vector ``vectors[items[i]]`` (default: row ``i``); items are visited by
    ``priority`` (a permutation of item numbers, earlier preferred). With ``labels`` (one
    per vector row) only items of equal labels are compared (``--numbers significant``).
    """
    row_of = np.arange(len(vectors)) if items is None else np.asarray(items, dtype=np.int64)
    n = len(row_of)
    visit = np.arange(n) if priority is None else np.asarray(priority, dtype=np.int64)
    if labels is None:
        groups = [visit] if n > 1 else []
    else:
        own = np.asarray(labels)[row_of[visit]]
        order = visit[np.argsort(own, kind="stable")]
        bounds = np.flatnonzero(np.diff(own[np.argsort(own, kind="stable")])) + 1
        groups = [g for g in np.split(order, bounds) if len(g) > 1]
    removed: list[np.ndarray] = []
    matched: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    compared = 0
    for group in groups:
        r, m, s, c = _greedy(vectors, row_of, group, threshold, block, neighbors, flat_limit)
        removed.append(r)
        matched.append(m)
        scores.append(s)
        compared += c
    if not removed:
        empty = np.zeros(0, dtype=np.int64)
        return SemanticResult(empty, empty, np.zeros(0), 0)
    return SemanticResult(np.concatenate(removed), np.concatenate(matched), np.concatenate(scores), compared)


def _greedy(vectors, row_of, group, threshold, block, neighbors, flat_limit):
    """Decide one group (items in visiting order): (removed, matched, scores, pairs compared)."""
    index: _KeptIndex | None = None
    kept_items: list[int] = []  # index position -> item
    removed: list[int] = []
    matched: list[int] = []
    scores: list[float] = []
    compared = 0
    for lo in range(0, len(group), block):
        part = group[lo : lo + block]
        own = vectors[row_of[part]].astype(np.float64)
        m = len(part)
        best = np.full(m, -np.inf)
        best_item = np.full(m, -1, dtype=np.int64)
        if index is not None and index.size:
            found = index.search(own.astype(np.float32), neighbors)
            valid = found >= 0
            kept_arr = np.asarray(kept_items, dtype=np.int64)
            cand = np.where(valid, kept_arr[np.where(valid, found, 0)], -1)
            # exact cosine of every candidate (float64), not the index's own arithmetic
            sims = np.einsum("ij,ikj->ik", own, vectors[row_of[np.where(valid, cand, 0)]].astype(np.float64))
            sims[~valid] = -np.inf
            compared += int(valid.sum())
            # the most similar; ties: the earliest kept (lowest index position)
            pos = np.where(valid, found, np.iinfo(np.int64).max)
            pick = np.lexsort((pos, -sims), axis=1)[:, 0] if m else np.zeros(0, dtype=np.int64)
            best = sims[np.arange(m), pick]
            best_item = cand[np.arange(m), pick]
        inner = own @ own.T
        close = np.triu(inner >= threshold, 1)
        compared += m * (m - 1) // 2
        gone = np.zeros(m, dtype=bool)
        for j in np.flatnonzero((best >= threshold) | close.any(axis=0)).tolist():
            score, match = best[j], best_item[j]
            earlier = np.flatnonzero(close[:j, j] & ~gone[:j])
            if len(earlier):
                k = earlier[np.argmax(inner[earlier, j])]  # argmax: the first of equal ones
                if inner[k, j] > score:  # a tie goes to the earlier block's text (visited first)
                    score, match = inner[k, j], part[k]
            if score >= threshold:
                gone[j] = True
                removed.append(int(part[j]))
                matched.append(int(match))
                scores.append(float(score))
        keep = part[~gone]
        if lo + block < len(group):  # a later block will search these
            if index is None:
                index = _KeptIndex(vectors, row_of[group], flat_limit)
            index.add(vectors[row_of[keep]])
            kept_items.extend(keep.tolist())
    return (
        np.asarray(removed, dtype=np.int64),
        np.asarray(matched, dtype=np.int64),
        np.asarray(scores, dtype=np.float64),
        compared,
    )


__all__ = [
    "BLOCK",
    "DEFAULT_SEMANTIC",
    "Embedder",
    "FLAT_LIMIT",
    "SemanticResult",
    "VectorStore",
    "check_available",
    "find_semantic_duplicates",
    "load_embedder",
    "missing_packages",
    "model_kind",
]

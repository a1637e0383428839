"""Deduplication: exact, MinHash near-duplicates and Self-Instruct's ROUGE-L novelty filter.

- :mod:`itkit.dedup.normalize`: the normal form exact dedup compares, and the words near dedup shingles;
- :mod:`itkit.dedup.exact`: groups of equal normalised texts (128-bit hashes, O(unique) memory);
- :mod:`itkit.dedup.minhash`: vectorised MinHash signatures, LSH banding, greedy near-duplicate removal;
- :mod:`itkit.dedup.rouge`: rouge_score-exact ROUGE-L and :class:`RougeNoveltyFilter`;
- :mod:`itkit.dedup.texts`: which text of a record is compared (``--on``);
- :mod:`itkit.dedup.verify`: true Jaccard of shingle sets (every near candidate is checked);
- :mod:`itkit.dedup.common`: boilerplate shared by many records (``--ignore-common``);
- :mod:`itkit.dedup.pipeline`: the stages in order and the keep policy;
- :mod:`itkit.dedup.report`: report texts and stage warnings;
- :mod:`itkit.dedup.files`: :func:`dedup_file`, the file runner;
- :mod:`itkit.dedup.ray_executor`: the exact and near stages on Ray Data (``--executor ray``).
"""

from itkit.dedup.exact import ExactGroups, text_key
from itkit.dedup.minhash import (
    DEFAULT_JACCARD,
    DEFAULT_NGRAM,
    DEFAULT_NUM_PERM,
    MinHasher,
    find_near_duplicates,
    lsh_params,
)
from itkit.dedup.normalize import normalize_text, words
from itkit.dedup.pipeline import (
    KEEP_CHOICES,
    STAGES,
    Decisions,
    DedupOptions,
    Deduplicator,
    Removal,
    dedup_texts,
)
from itkit.dedup.files import DedupSummary, dedup_file
from itkit.dedup.rouge import (
    DEFAULT_ROUGE_THRESHOLD,
    FilterResult,
    Match,
    NoveltyCheck,
    RougeNoveltyFilter,
    rouge_l_f1,
    rouge_tokenize,
)
from itkit.dedup.texts import ON_CHOICES, response_length, text_getter

__all__ = [
    "DEFAULT_JACCARD",
    "DEFAULT_NGRAM",
    "DEFAULT_NUM_PERM",
    "DEFAULT_ROUGE_THRESHOLD",
    "KEEP_CHOICES",
    "ON_CHOICES",
    "STAGES",
    "Decisions",
    "DedupOptions",
    "DedupSummary",
    "Deduplicator",
    "ExactGroups",
    "FilterResult",
    "Match",
    "MinHasher",
    "NoveltyCheck",
    "Removal",
    "RougeNoveltyFilter",
    "dedup_file",
    "dedup_texts",
    "find_near_duplicates",
    "lsh_params",
    "normalize_text",
    "response_length",
    "rouge_l_f1",
    "rouge_tokenize",
    "text_getter",
    "words",
]

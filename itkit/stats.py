"""Dataset statistics: counts, empties, duplicates and token-length distributions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable

from itkit.dedup.normalize import normalize_text
from itkit.methods.score.distribution import describe_scores
from itkit.records import META_SCORES, Record
from itkit.tokens import TokenCounter

FIELDS = ("system", "prompt", "input", "response", "total")
"""prompt = user turns (instruction text), input = Alpaca input / Dolly context, response = assistant turns."""
BATCH = 2048


def _digest(parts: Iterable[str]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(normalize_text(part).encode("utf-8"))  # exact dedup's normal form
        h.update(b"\x00")
    return h.digest()


def percentile(sorted_values: list[int], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of sorted values."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Distribution:
    count: int
    min: int
    median: float
    p95: float
    max: int
    mean: float

    @classmethod
    def of(cls, values: list[int]) -> "Distribution":
        if not values:
            return cls(0, 0, 0.0, 0.0, 0, 0.0)
        s = sorted(values)
        return cls(len(s), s[0], percentile(s, 0.5), percentile(s, 0.95), s[-1], sum(s) / len(s))


@dataclass
class Stats:
    source: str
    format: str
    encoding: str
    records: int = 0
    single_turn: int = 0
    multi_turn: int = 0
    exchanges: int = 0
    max_exchanges: int = 0
    with_system: int = 0
    with_input: int = 0
    empty_prompt: int = 0
    empty_response: int = 0
    no_response: int = 0
    duplicate_records: int = 0
    duplicate_prompts: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, Distribution] = field(default_factory=dict)
    scores: dict[str, dict] = field(default_factory=dict)
    """Per scorer (``itkit score``): count, missing, mean, median, min, max and the histogram."""
    rejected: int = 0

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "tokens"}
        out["tokens"] = {name: dist.__dict__ for name, dist in self.tokens.items()}
        return out


def compute_stats(records: Iterable[Record], counter: TokenCounter, source: str = "", fmt: str = "") -> Stats:
    stats = Stats(source=source, format=fmt, encoding=counter.name)
    lengths: dict[str, list[int]] = {name: [] for name in FIELDS}
    seen_records: set[bytes] = set()
    seen_prompts: set[bytes] = set()
    pending: list[Record] = []
    scores: dict[str, list[float]] = {}

    def flush() -> None:
        texts: list[str] = []
        for r in pending:
            texts.append(r.system or "")
            texts.append("\n".join(t.content for t in r.turns if t.role == "user"))
            texts.append(r.input)
            texts.append("\n".join(r.assistant_texts()))
        counts = counter.count_many(texts)
        for i in range(len(pending)):
            system, prompt, inp, response = counts[4 * i : 4 * i + 4]
            lengths["system"].append(system)
            lengths["prompt"].append(prompt)
            lengths["input"].append(inp)
            lengths["response"].append(response)
            lengths["total"].append(system + prompt + inp + response)
        pending.clear()

    for record in records:
        stats.records += 1
        n = record.num_exchanges
        stats.exchanges += n
        stats.max_exchanges = max(stats.max_exchanges, n)
        if n > 1:
            stats.multi_turn += 1
        else:
            stats.single_turn += 1
        stats.with_system += bool(record.system)
        stats.with_input += bool(record.input)
        stats.empty_prompt += not record.prompt.strip()
        if not record.has_output:
            stats.no_response += 1
        elif not record.output.strip():
            stats.empty_response += 1
        judged = record.metadata.get(META_SCORES)
        if isinstance(judged, dict):
            for name, value in judged.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                    scores.setdefault(str(name), []).append(float(value))
        if record.category:
            stats.categories[record.category] = stats.categories.get(record.category, 0) + 1
        users = record.user_texts()
        key = _digest([record.system or "", *(m["content"] for m in record.to_messages(include_system=False))])
        if key in seen_records:
            stats.duplicate_records += 1
        else:
            seen_records.add(key)
        prompt_key = _digest(users)
        if prompt_key in seen_prompts:
            stats.duplicate_prompts += 1
        else:
            seen_prompts.add(prompt_key)
        pending.append(record)
        if len(pending) >= BATCH:
            flush()
    flush()
    stats.tokens = {name: Distribution.of(values) for name, values in lengths.items()}
    stats.scores = {
        name: {**describe_scores(values), "missing": stats.records - len(values)} for name, values in sorted(scores.items())
    }
    stats.categories = dict(sorted(stats.categories.items(), key=lambda kv: (-kv[1], kv[0])))
    return stats

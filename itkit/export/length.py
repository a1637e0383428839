"""Token lengths of records, and the length policy: drop over-long records or split them at turn pairs.

A record's length is the sum of the tokens of every message it would be
trained on (system, user turns with their input, assistant turns) plus a small
per-message allowance for the chat template's markup
(:data:`MESSAGE_OVERHEAD_TOKENS`). Tokens are counted with tiktoken
(:mod:`itkit.tokens`) or with a local Hugging Face tokenizer
(:class:`HFTokenCounter`, needs the optional ``tokenizers`` library).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from itkit.errors import TokenizerError, UsageError
from itkit.records import Record, Turn
from itkit.tokens import TokenCounter, counter_for

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens allowed per message for the chat template's role markers and separators (an estimate)."""
COUNT_BATCH = 4096
SPLIT_OPERATION = "split_long"
PART_SUFFIX = "-part"
"""Pieces of a split conversation get ids ``<id>-part1``, ``<id>-part2``..."""

HF_TOKENIZER_HINT = "pip install 'itkit[hf-tokenizer]' (the small 'tokenizers' library) or install transformers"


class Counter(Protocol):
    name: str

    def count_many(self, texts: list[str]) -> list[int]: ...


class HFTokenCounter:
    """Counts tokens with a local Hugging Face tokenizer (a tokenizer.json file or a folder holding one).

    Uses the ``tokenizers`` library when installed, else ``transformers.AutoTokenizer``
    (local files only); neither is a dependency of itkit.
    """

    def __init__(self, path: str):
        self.path = path
        self.name = f"hf:{Path(path).name or path}"
        where = Path(path)
        if not where.exists():
            raise UsageError(f"--tokenizer {path}: no such file or folder")
        file = where / "tokenizer.json" if where.is_dir() else where
        self._tokenizer = None
        self._auto = None
        try:
            import tokenizers  # type: ignore[import-not-found]
        except ImportError:
            tokenizers = None
        if tokenizers is not None and file.is_file():
            try:
                self._tokenizer = tokenizers.Tokenizer.from_file(str(file))
            except Exception as exc:  # the library raises plain Exceptions on bad files
                raise TokenizerError(f"--tokenizer {path}: cannot load {file.name}: {exc}") from None
            return
        try:
            from transformers import AutoTokenizer  # type: ignore[import-not-found]
        except ImportError:
            if tokenizers is None:
                raise TokenizerError(
                    f"--tokenizer {path}: loading a Hugging Face tokenizer needs the 'tokenizers' library; {HF_TOKENIZER_HINT}"
                ) from None
            raise TokenizerError(
                f"--tokenizer {path}: no tokenizer.json there; give the tokenizer.json file or its folder "
                "(other tokenizer files need transformers)"
            ) from None
        try:
            self._auto = AutoTokenizer.from_pretrained(str(where if where.is_dir() else where.parent), local_files_only=True)
        except Exception as exc:
            raise TokenizerError(f"--tokenizer {path}: transformers cannot load it: {exc}") from None

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._tokenizer is not None:
            return [len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
        assert self._auto is not None
        return [len(ids) for ids in self._auto(texts, add_special_tokens=False)["input_ids"]]


def make_counter(
    encoding: str | None = None, model: str | None = None, tokenizer: str | None = None, *, required: bool = True
) -> Counter:
    """The counter for ``--encoding`` / ``--model`` (tiktoken) or ``--tokenizer`` (Hugging Face).

    ``required=False`` (no token budget, no tokenizer chosen): offline without the tiktoken encoding,
    warn once and estimate (see :func:`itkit.tokens.counter_for`).
    """
    if tokenizer:
        if encoding or model:
            raise UsageError("give --tokenizer or --encoding/--model, not both")
        return HFTokenCounter(tokenizer)
    return counter_for(model, encoding, required=required)


def message_token_counts(records: Sequence[Record], counter: Counter) -> list[list[int]]:
    """Tokens of each message of each record, in ``Record.to_messages()`` order (system first)."""
    out: list[list[int]] = []
    texts: list[str] = []
    shapes: list[int] = []

    def flush() -> None:
        counts = counter.count_many(texts)
        pos = 0
        for n in shapes:
            out.append(counts[pos : pos + n])
            pos += n
        texts.clear()
        shapes.clear()

    for record in records:
        messages = record.to_messages()
        texts.extend(m["content"] for m in messages)
        shapes.append(len(messages))
        if len(texts) >= COUNT_BATCH:
            flush()
    flush()
    return out


def total_tokens(counts: Sequence[int], overhead: int = MESSAGE_OVERHEAD_TOKENS) -> int:
    return sum(counts) + overhead * len(counts)


def record_tokens(records: Sequence[Record], counter: Counter, overhead: int = MESSAGE_OVERHEAD_TOKENS) -> list[int]:
    return [total_tokens(c, overhead) for c in message_token_counts(records, counter)]


@dataclass
class LengthOutcome:
    """Records within the budget (with their token counts) and what happened to the others."""

    records: list[Record] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    """For each kept record or piece, the index of the record it comes from."""
    dropped: int = 0
    """Records over the budget that were dropped (single-turn, or no piece fits)."""
    split: int = 0
    """Multi-turn records split into pieces (``--split-long``)."""
    pieces: int = 0
    """Pieces written for the split records."""
    pairs_dropped: int = 0
    """Turn pairs of split records that alone exceed the budget, left out."""


def apply_length(
    records: Sequence[Record],
    counter: Counter,
    max_tokens: int | None,
    split_long: bool = False,
    overhead: int = MESSAGE_OVERHEAD_TOKENS,
) -> LengthOutcome:
    """Keep records within ``max_tokens``; drop the others, or split multi-turn ones at turn-pair boundaries."""
    out = LengthOutcome()
    for index, (record, counts) in enumerate(zip(records, message_token_counts(records, counter))):
        total = total_tokens(counts, overhead)
        if max_tokens is None or total <= max_tokens:
            out.records.append(record)
            out.tokens.append(total)
            out.origins.append(index)
            continue
        if split_long and record.is_multi_turn:
            pieces, pairs_dropped = split_conversation(record, counts, max_tokens, overhead)
            out.pairs_dropped += pairs_dropped
            if pieces:
                out.split += 1
                out.pieces += len(pieces)
                for piece, tokens in pieces:
                    out.records.append(piece)
                    out.tokens.append(tokens)
                    out.origins.append(index)
                continue
        out.dropped += 1
    return out


def split_conversation(
    record: Record, counts: Sequence[int], max_tokens: int, overhead: int = MESSAGE_OVERHEAD_TOKENS
) -> tuple[list[tuple[Record, int]], int]:
    """Pieces of a conversation, each a run of whole (user, assistant) pairs within ``max_tokens``.

    The system prompt is repeated in every piece; the input stays with the last
    user turn. A pair that alone exceeds the budget is left out (and counted).
    Returns ``[(piece, tokens)]`` and the number of pairs left out.
    """
    offset = 1 if record.system else 0
    system_cost = (counts[0] + overhead) if record.system else 0
    turns = record.turns
    pairs: list[tuple[int, int]] = []  # (index of the user turn, tokens of the pair)
    for i in range(0, len(turns) - 1, 2):
        cost = counts[offset + i] + counts[offset + i + 1] + 2 * overhead
        pairs.append((i, cost))
    last_user = len(turns) - 2
    groups: list[list[int]] = []
    current: list[int] = []
    used = system_cost
    dropped = 0
    for i, cost in pairs:
        if system_cost + cost > max_tokens:
            dropped += 1
            if current:
                groups.append(current)
            current, used = [], system_cost
            continue
        if current and used + cost > max_tokens:
            groups.append(current)
            current, used = [], system_cost
        current.append(i)
        used += cost
    if current:
        groups.append(current)
    pieces: list[tuple[Record, int]] = []
    cost_of = dict(pairs)
    for k, group in enumerate(groups, start=1):
        piece_turns: list[Turn] = []
        for i in group:
            piece_turns.extend((turns[i], turns[i + 1]))
        step = {
            "method": "export",
            "operation": SPLIT_OPERATION,
            "parent_id": record.id,
            "part": k,
            "parts": len(groups),
            "max_tokens": max_tokens,
        }
        piece = record.with_provenance(
            step,
            id=f"{record.id}{PART_SUFFIX}{k}",
            turns=piece_turns,
            input=record.input if group[-1] == last_user else "",
        )
        pieces.append((piece, system_cost + sum(cost_of[i] for i in group)))
    return pieces, dropped

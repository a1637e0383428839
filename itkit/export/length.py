"""Token lengths of records, and the length policy: drop over-long records or split them at exchanges.

With ``--tokenizer`` pointing at a model's folder that has a chat template, a
record's length is exact: the record rendered with the model's own template
(:mod:`itkit.export.chat_template`) and encoded with its tokenizer, as the
trainer will see it; a record the template refuses is reported and left out.
Otherwise it is an estimate: the sum of the tokens of every message (system,
user turns with their input, assistant turns, tool calls and results) plus a
per-message allowance for the template's markup (:data:`MESSAGE_OVERHEAD_TOKENS`),
counted with tiktoken (:mod:`itkit.tokens`) or with the tokenizer alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from itkit.errors import TokenizerError, UsageError
from itkit.export.chat_template import ChatTemplate, TemplateCounter, find_template
from itkit.records import Record, Turn
from itkit.tokens import TokenCounter, counter_for

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens allowed per message for the chat template's role markers and separators (an estimate)."""
COUNT_BATCH = 4096
SPLIT_OPERATION = "split_long"
PART_SUFFIX = "-part"
"""Pieces of a split conversation get ids ``<id>-part1``, ``<id>-part2``..."""

HF_TOKENIZER_HINT = "pip install tokenizers (a dependency of itkit: reinstall it) or install transformers"


class Counter(Protocol):
    name: str

    def count_many(self, texts: list[str]) -> list[int]: ...


def is_exact(counter: Counter) -> bool:
    """Whether the counter renders whole records with the model's chat template (exact lengths)."""
    return bool(getattr(counter, "exact", False))


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

    @property
    def raw_tokenizer(self) -> object | None:
        """The ``tokenizers.Tokenizer``, when it is the one in use (not transformers)."""
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        """Token ids of a text, special-token markup matched, nothing added (as transformers encodes a chat)."""
        if self._tokenizer is not None:
            return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        assert self._auto is not None
        return list(self._auto(text, add_special_tokens=False)["input_ids"])

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._tokenizer is not None:
            return [len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
        assert self._auto is not None
        return [len(ids) for ids in self._auto(texts, add_special_tokens=False)["input_ids"]]


def make_counter(encoding: str | None = None, model: str | None = None, tokenizer: str | None = None) -> Counter:
    """The counter for ``--encoding`` / ``--tokenizer-model`` (tiktoken) or ``--tokenizer`` (Hugging Face).

    A tokenizer folder with a chat template (``tokenizer_config.json`` or
    ``chat_template.jinja``) gives exact counts of rendered records.
    """
    if tokenizer:
        if encoding or model:
            raise UsageError("give --tokenizer or --encoding/--tokenizer-model, not both")
        base = HFTokenCounter(tokenizer)
        where = Path(tokenizer)
        template, variables = find_template(where if where.is_dir() else where.parent)
        if template is None:
            return base
        try:
            compiled = ChatTemplate(template, variables)
        except TokenizerError as exc:
            raise TokenizerError(f"--tokenizer {tokenizer}: {exc}") from None
        return TemplateCounter(tokenizer, compiled, base.encode, base.count_many, base.raw_tokenizer)
    return counter_for(model, encoding)


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
        texts.extend(message_text(m) for m in messages)
        shapes.append(len(messages))
        if len(texts) >= COUNT_BATCH:
            flush()
    flush()
    return out


def message_text(message: dict) -> str:
    """What a message costs: its content, and the JSON of its tool calls."""
    calls = message.get("tool_calls")
    if not calls:
        return message["content"]
    return message["content"] + "".join(json.dumps(c["function"], ensure_ascii=False) for c in calls)


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
    """Exchanges of split records that alone exceed the budget, left out."""
    unrenderable: int = 0
    """Records the model's chat template refuses (a role it does not accept, a system prompt...), left out."""
    render_errors: dict[str, str] = field(default_factory=dict)
    """A few of them: record id -> the template's message."""


RENDER_EXAMPLES = 5


def apply_length(
    records: Sequence[Record],
    counter: Counter,
    max_tokens: int | None,
    split_long: bool = False,
    overhead: int = MESSAGE_OVERHEAD_TOKENS,
) -> LengthOutcome:
    """Keep records within ``max_tokens``; drop the others, or split multi-turn ones at exchange boundaries."""
    out = LengthOutcome()
    exact = is_exact(counter)
    totals: list[int | str]
    per_message: list[list[int]] | None = None
    if exact:
        totals = counter.count_records(records)  # type: ignore[attr-defined]
    else:
        per_message = message_token_counts(records, counter)
        totals = [total_tokens(c, overhead) for c in per_message]
    for index, (record, total) in enumerate(zip(records, totals)):
        if isinstance(total, str):
            out.unrenderable += 1
            if len(out.render_errors) < RENDER_EXAMPLES:
                out.render_errors[record.id] = total
            continue
        if max_tokens is None or total <= max_tokens:
            out.records.append(record)
            out.tokens.append(total)
            out.origins.append(index)
            continue
        if split_long and record.is_multi_turn:
            counts = per_message[index] if per_message is not None else message_token_counts([record], counter)[0]
            pieces, pairs_dropped = split_conversation(record, counts, max_tokens, overhead)
            if exact:
                pieces, pairs_dropped = _recount(pieces, pairs_dropped, counter, max_tokens)
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


def _recount(
    pieces: list[tuple[Record, int]], pairs_dropped: int, counter: Counter, max_tokens: int
) -> tuple[list[tuple[Record, int]], int]:
    """Pieces counted exactly with the chat template; a piece still over the budget (or refused) is left out."""
    kept = []
    for piece, _ in pieces:
        total = counter.count_records([piece])[0]  # type: ignore[attr-defined]
        if isinstance(total, int) and total <= max_tokens:
            kept.append((piece, total))
        else:
            pairs_dropped += piece.num_exchanges
    return kept, pairs_dropped


def exchanges(record: Record) -> list[list[int]]:
    """Turn indices of each exchange: a user turn and everything up to the next user turn."""
    groups: list[list[int]] = []
    for i, turn in enumerate(record.turns):
        if turn.role == "user" or not groups:
            groups.append([])
        groups[-1].append(i)
    return groups


def split_conversation(
    record: Record, counts: Sequence[int], max_tokens: int, overhead: int = MESSAGE_OVERHEAD_TOKENS
) -> tuple[list[tuple[Record, int]], int]:
    """Pieces of a conversation, each a run of whole exchanges within ``max_tokens``.

    An exchange is a user turn with the assistant's answer (and its tool calls
    and results). The system prompt (and the tools) are repeated in every piece;
    the input stays with the last user turn. An exchange that alone exceeds the
    budget is left out (and counted). Returns ``[(piece, tokens)]`` and the
    number of exchanges left out.
    """
    offset = 1 if record.system else 0
    system_cost = (counts[0] + overhead) if record.system else 0
    turns = record.turns
    pairs: list[tuple[int, int]] = []  # (index of the exchange, tokens of the exchange)
    spans = exchanges(record)
    for k, span in enumerate(spans):
        pairs.append((k, sum(counts[offset + i] for i in span) + overhead * len(span)))
    last_user = record.last_user_index
    groups: list[list[int]] = []
    current: list[int] = []
    used = system_cost
    dropped = 0
    for k, cost in pairs:
        if system_cost + cost > max_tokens:
            dropped += 1
            if current:
                groups.append(current)
            current, used = [], system_cost
            continue
        if current and used + cost > max_tokens:
            groups.append(current)
            current, used = [], system_cost
        current.append(k)
        used += cost
    if current:
        groups.append(current)
    pieces: list[tuple[Record, int]] = []
    cost_of = dict(pairs)
    for n, group in enumerate(groups, start=1):
        piece_turns: list[Turn] = [turns[i] for k in group for i in spans[k]]
        step = {
            "method": "export",
            "operation": SPLIT_OPERATION,
            "parent_id": record.id,
            "part": n,
            "parts": len(groups),
            "max_tokens": max_tokens,
        }
        piece = record.with_provenance(
            step,
            id=f"{record.id}{PART_SUFFIX}{n}",
            turns=piece_turns,
            input=record.input if last_user in spans[group[-1]] else "",
        )
        pieces.append((piece, system_cost + sum(cost_of[k] for k in group)))
    return pieces, dropped

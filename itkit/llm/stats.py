"""Accounting of an LLM run: requests, retries, cache hits, tokens, cost, errors, time."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from itkit.llm.pricing import Price


@dataclass
class EngineStats:
    requests: int = 0
    """HTTP requests sent (every attempt counts)."""
    responses: int = 0
    """Responses received (HTTP 200), usable or not."""
    retries: int = 0
    """Attempts after the first, for transient errors and rejected responses."""
    cache_hits: int = 0
    coalesced: int = 0
    """Requests not sent because the identical request was in flight (its answer served both)."""
    prompt_tokens: int = 0
    """Prompt tokens of the responses received (rejected ones too: they are billed)."""
    completion_tokens: int = 0
    tokens_estimated: int = 0
    """Responses without a usage block whose tokens were counted with tiktoken instead."""
    rate_limited: int = 0
    """HTTP 429 responses."""
    errors: Counter = field(default_factory=Counter)
    """Transient errors and rejected responses, by reason."""
    failures: int = 0
    """Records given up on (they go to the failures file)."""
    failure_reasons: Counter = field(default_factory=Counter)
    price: Price | None = None
    run_started: float = 0.0
    """Monotonic start of the current run (for rates)."""
    seconds: float = 0.0
    """Wall time spent in runs."""
    started_at: float | None = None
    """Wall-clock time of the first run (epoch seconds)."""
    batched: bool = False
    """The run goes through batches (--batch, --batch-file, --batch-results)."""
    batch_price: Price | None = None
    """--batch: what a batch line costs per token (None: unknown)."""
    batch_lines: int = 0
    """--batch: answers from batch output files this run used (each line once, rejected ones too)."""
    batch_errors: int = 0
    """--batch: lines of error files (or of failed batches) this run retried or failed."""
    batch_prompt_tokens: int = 0
    """--batch: prompt tokens billed for those lines (at the batch price)."""
    batch_completion_tokens: int = 0
    batches: int = 0
    """--batch: batches submitted by this run."""
    batch_remote_calls: int = 0
    """--batch: calls to the files and batches API (uploads, creates, polls, downloads)."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def cost(self) -> float | None:
        """What was billed: online requests at the online price, batch lines at the batch price."""
        if self.price is None:
            return None
        cost = self.price.cost(self.prompt_tokens, self.completion_tokens)
        if self.batch_price is not None:
            cost += self.batch_price.cost(self.batch_prompt_tokens, self.batch_completion_tokens)
        return cost

    def batch_dict(self) -> dict[str, Any]:
        price = self.batch_price
        return {
            "lines_used": self.batch_lines,
            "error_lines": self.batch_errors,
            "batches_submitted": self.batches,
            "remote_calls": self.batch_remote_calls,
            "tokens": {"prompt": self.batch_prompt_tokens, "completion": self.batch_completion_tokens},
            "cost_usd": None if price is None else round(price.cost(self.batch_prompt_tokens, self.batch_completion_tokens), 6),
            "price": None if price is None else {"input_per_1m": price.input, "output_per_1m": price.output, "source": price.source},
        }

    def begin(self) -> None:
        self.run_started = time.monotonic()
        if self.started_at is None:
            self.started_at = time.time()

    def end(self) -> None:
        if self.run_started:
            self.seconds += time.monotonic() - self.run_started

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "responses": self.responses,
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "coalesced": self.coalesced,
            "rate_limited": self.rate_limited,
            "errors": dict(sorted(self.errors.items())),
            "failed_records": self.failures,
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "tokens": {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
                "estimated_responses": self.tokens_estimated,
            },
            "cost_usd": None if self.cost is None else round(self.cost, 6),
            "price": None
            if self.price is None
            else {"input_per_1m": self.price.input, "output_per_1m": self.price.output, "source": self.price.source},
            "seconds": round(self.seconds, 3),
            **({"batch": self.batch_dict()} if self.batched else {}),
        }

    def describe(self) -> list[str]:
        """Plain-text lines for the end of a run."""
        tokens = self.prompt_tokens + self.completion_tokens
        cost = self.cost
        lines = [
            f"requests: {self.requests} sent, {self.retries} retries, {self.cache_hits} from cache"
            + (f", {self.coalesced} identical requests shared" if self.coalesced else "")
            + (f", {self.rate_limited} rate-limited (429)" if self.rate_limited else ""),
            f"tokens: {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion = {tokens:,}"
            + (f" ({self.tokens_estimated} responses counted with tiktoken)" if self.tokens_estimated else ""),
            "cost: unknown (give --price-in and --price-out per 1M tokens)"
            if cost is None
            else f"cost: ${cost:,.4f} ({self.price.source})",  # type: ignore[union-attr]
        ]
        if self.batched:
            lines.append(
                f"batch: {self.batch_lines} answers from batches ({self.batch_errors} error lines), "
                f"{self.batch_prompt_tokens:,} + {self.batch_completion_tokens:,} tokens billed at the batch price, "
                f"{self.batches} batches submitted"
            )
        if self.errors:
            top = ", ".join(f"{reason} x{n}" for reason, n in self.errors.most_common(5))
            lines.append(f"errors retried: {top}")
        lines.append(f"time: {self.seconds:.1f} s")
        return lines

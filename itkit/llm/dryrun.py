"""What a run would send, without sending it: request and token counts, estimated cost, sample prompts.

In dry-run mode the engine records each request it would send in a
:class:`DryRunPlan` (prompt tokens counted with tiktoken) instead of sending
it; requests already in the cache are counted apart, as they cost nothing.
Any method gets a dry run by calling ``engine.complete`` as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from itkit.llm.base import ChatRequest
from itkit.llm.pricing import Price

DEFAULT_SAMPLES = 3
"""How many rendered prompts a dry run shows."""


@dataclass
class DryRunPlan:
    samples_wanted: int = DEFAULT_SAMPLES
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Estimated: the caller's expectation, capped by max_tokens; else max_tokens; else the prompt's size."""
    completion_basis: set[str] = field(default_factory=set)
    samples: list[ChatRequest] = field(default_factory=list)
    by_stage: dict[str, int] = field(default_factory=dict)
    """Requests per stage, for methods with several (Self-Instruct: generate, is_classification, instances)."""
    token_basis: str = "tiktoken"
    """How prompt tokens were counted ("estimated" offline without the tiktoken encoding)."""

    def add(self, request: ChatRequest, prompt_tokens: int, expected_tokens: int | None = None) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        cap = request.sampling.max_tokens
        if expected_tokens is not None:
            guess = min(expected_tokens, cap) if cap else expected_tokens
            self.completion_basis.add("expected length")
        elif cap:
            guess = cap
            self.completion_basis.add("max_tokens")
        else:
            guess = prompt_tokens
            self.completion_basis.add("prompt length")
        self.completion_tokens += guess
        if len(self.samples) < self.samples_wanted:
            self.samples.append(request)

    def cost(self, price: Price | None) -> float | None:
        return price.cost(self.prompt_tokens, self.completion_tokens) if price is not None else None

    def as_dict(self, price: Price | None) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens_estimated": self.completion_tokens,
            "completion_estimate_basis": sorted(self.completion_basis),
            **({"requests_by_stage": dict(self.by_stage)} if self.by_stage else {}),
            "estimated_cost_usd": self.cost(price),
            "price": None if price is None else {"input": price.input, "output": price.output, "source": price.source},
        }

    def describe(self, price: Price | None, model: str) -> list[str]:
        """Plain-text lines: the sample prompts, then the counts and the estimate."""
        lines: list[str] = []
        for i, request in enumerate(self.samples, 1):
            lines.append(f"--- request {i} of {self.requests} ({model}) ---")
            for message in request.messages:
                lines.append(f"[{message['role']}]")
                lines.append(message["content"])
            params = request.sampling.as_dict()
            if request.json_mode:
                params["response_format"] = "json_object"
            if params:
                lines.append(f"[parameters] {params}")
        lines.append("--- estimate ---")
        stages = ", ".join(f"{stage} {n:,}" for stage, n in self.by_stage.items())
        lines.append(
            f"requests to send: {self.requests:,}"
            + (f" ({stages})" if stages else "")
            + (f" ({self.cached} more already cached)" if self.cached else "")
        )
        basis = ", ".join(sorted(self.completion_basis)) or "nothing to send"
        lines.append(f"prompt tokens: {self.prompt_tokens:,} ({self.token_basis})")
        lines.append(f"completion tokens: ~{self.completion_tokens:,} (estimated from {basis})")
        cost = self.cost(price)
        if cost is None:
            lines.append(f"estimated cost: unknown for model '{model}' (give --price-in and --price-out per 1M tokens)")
        else:
            lines.append(f"estimated cost: ${cost:,.4f} (at ${price.input:g} / ${price.output:g} per 1M tokens, {price.source})")
        lines.append("dry run: nothing was sent")
        return lines

"""Estimated cost: a small built-in price table, overridable per run.

Prices are US dollars per million tokens (input, output), as OpenAI listed them
for standard (non-batch, non-cached) requests. They change: pass
``--price-in`` / ``--price-out`` for anything else, or for a local model (where
the cost is 0 unless you say otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class Price:
    input: float
    """Dollars per million prompt tokens."""
    output: float
    """Dollars per million completion tokens."""
    source: str = "built-in table"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_TOKENS


PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
}


def lookup(model: str, table: dict[str, tuple[float, float]] | None = None) -> Price | None:
    """The table price of ``model``; dated or suffixed names (``gpt-4o-2024-08-06``) match their base name."""
    prices = PRICES if table is None else table
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" -> "gpt-4o"
    best = None
    for base in prices:
        if (name == base or name.startswith(base + "-")) and (best is None or len(base) > len(best)):
            best = base
    if best is None:
        return None
    return Price(*prices[best], source=f"built-in table ({best})")


def price_for(
    model: str, price_in: float | None = None, price_out: float | None = None, *, use_table: bool = True
) -> Price | None:
    """``--price-in/--price-out`` where given, else the table; None when the cost cannot be estimated.

    ``use_table=False`` (any endpoint but OpenAI's): a model of the same name
    elsewhere is not billed at OpenAI's prices, so only the given prices count.
    """
    table = lookup(model) if use_table else None
    if price_in is None and price_out is None:
        return table
    if table is None and (price_in is None or price_out is None):
        # one side given for an unknown model: the other side counts as free
        return Price(price_in or 0.0, price_out or 0.0, source="--price-in/--price-out")
    base = table or Price(0.0, 0.0)
    return Price(
        price_in if price_in is not None else base.input,
        price_out if price_out is not None else base.output,
        source="--price-in/--price-out" if table is None else f"{table.source} with overrides",
    )


def batch_price(price: Price | None, discount: float) -> Price | None:
    """The batch API's price: ``discount`` times ``price`` (OpenAI bills batches at half the online price)."""
    if price is None:
        return None
    return Price(price.input * discount, price.output * discount, source=f"{price.source}, batch price x{discount:g}")

"""Token counting with tiktoken, with a clear message when an encoding cannot be loaded."""

from __future__ import annotations

import functools
import os

from itkit.errors import TokenizerError, UsageError

DEFAULT_ENCODING = "cl100k_base"
FALLBACK_MODEL_ENCODING = "o200k_base"
"""Used for a model tiktoken does not know (most OpenAI-compatible servers' models)."""


def _load_hint(name: str) -> str:
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    where = f"TIKTOKEN_CACHE_DIR={cache} does not hold it" if cache else "it is not in tiktoken's cache"
    return (
        f"cannot load the tiktoken encoding '{name}': {where} and it could not be downloaded "
        "(offline?). Run once with network access, or set TIKTOKEN_CACHE_DIR to a folder that holds the "
        "encoding file"
    )


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = DEFAULT_ENCODING):
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except ValueError as exc:
        if "Unknown encoding" in str(exc):
            known = ", ".join(tiktoken.list_encoding_names())
            raise UsageError(f"unknown tiktoken encoding '{name}' (known: {known})") from None
        raise TokenizerError(_load_hint(name)) from None
    except Exception:  # network errors, broken cache files
        raise TokenizerError(_load_hint(name)) from None


def encoding_name_for(model: str | None = None, encoding: str | None = None) -> str:
    """The encoding name for ``--encoding`` or ``--tokenizer-model`` (unknown models get o200k_base)."""
    if model and encoding:
        raise UsageError("give --encoding or --tokenizer-model, not both")
    if encoding:
        return encoding
    if model:
        import tiktoken.model

        try:
            return tiktoken.model.encoding_name_for_model(model)
        except KeyError:
            return FALLBACK_MODEL_ENCODING
    return DEFAULT_ENCODING


class TokenCounter:
    """Counts tokens of texts with one encoding; special-token text is counted as plain text."""

    def __init__(self, encoding: str = DEFAULT_ENCODING):
        self.name = encoding
        self._enc = get_encoding(encoding)

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._enc.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        # a plain loop: tiktoken's batch API spins up a thread pool that is slower on small machines
        encode = self._enc.encode_ordinary
        return [len(encode(t)) if t else 0 for t in texts]

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens of a chat request, with OpenAI's per-message overhead (3 + 3 for the reply)."""
        return sum(3 + self.count(m.get("content") or "") for m in messages) + 3


def counter_for(model: str | None = None, encoding: str | None = None) -> TokenCounter:
    return TokenCounter(encoding_name_for(model, encoding))

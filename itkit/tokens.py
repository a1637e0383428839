"""Token counting with tiktoken, with a clear message when an encoding cannot be loaded.

tiktoken downloads an encoding once and keeps it in ``TIKTOKEN_CACHE_DIR`` under the sha1 of its
URL. Offline and without that file, :func:`counter_for` either fails with a message naming the file
to download and the name to save it under (``required=True``: the user asked for tokens, e.g. a token
budget), or warns once and counts with :class:`EstimatedTokenCounter` (token figures are only
reported, e.g. the dataset card's table).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import math
import os
import re
import sys
import threading

from itkit import notices
from itkit.errors import TokenizerError, UsageError

DEFAULT_ENCODING = "cl100k_base"
FALLBACK_MODEL_ENCODING = "o200k_base"
"""Used for a model tiktoken does not know (most OpenAI-compatible servers' models)."""


TIKTOKEN_BLOB = "https://openaipublic.blob.core.windows.net/"
ENCODING_FILES: dict[str, tuple[str, ...]] = {
    "gpt2": ("gpt-2/encodings/main/vocab.bpe", "gpt-2/encodings/main/encoder.json"),
    "r50k_base": ("encodings/r50k_base.tiktoken",),
    "p50k_base": ("encodings/p50k_base.tiktoken",),
    "p50k_edit": ("encodings/p50k_base.tiktoken",),
    "cl100k_base": ("encodings/cl100k_base.tiktoken",),
    "o200k_base": ("encodings/o200k_base.tiktoken",),
    "o200k_harmony": ("encodings/o200k_base.tiktoken",),
}
"""The files tiktoken downloads for each encoding (from tiktoken_ext/openai_public.py), under TIKTOKEN_BLOB."""


def encoding_files(name: str) -> list[tuple[str, str]]:
    """(URL, cache file name) of each file encoding ``name`` needs: tiktoken names a cached file by the
    sha1 of its URL (tiktoken/load.py, ``read_file_cached``)."""
    urls = [TIKTOKEN_BLOB + path for path in ENCODING_FILES.get(name, ())]
    return [(url, hashlib.sha1(url.encode()).hexdigest()) for url in urls]


def _cache_dir() -> str | None:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or None


def _missing(name: str) -> str:
    """Why encoding ``name`` could not be loaded."""
    cache = _cache_dir()
    where = f"TIKTOKEN_CACHE_DIR={cache} does not hold it" if cache else "it is not in tiktoken's cache"
    return f"cannot load the tiktoken encoding '{name}': {where} and it could not be downloaded (offline?)"


def _fix(name: str) -> str:
    """Which file to download and the name tiktoken looks for it under."""
    files = encoding_files(name)
    if not files:
        return "run once with network access, or set TIKTOKEN_CACHE_DIR to a folder that holds its file"
    cache = _cache_dir()
    folder = cache or "DIR"
    todo = " and ".join(f"{url} as {os.path.join(folder, key)}" for url, key in files)
    extra = "" if cache else " and set TIKTOKEN_CACHE_DIR=DIR"
    return f"download {todo}{extra} (tiktoken names a cached file by the sha1 of its URL)"


def _load_hint(name: str) -> str:
    return f"{_missing(name)}; {_fix(name)}"


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

    estimated = False

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


class EstimatedTokenCounter:
    """Token counts estimated without the encoding: one per word, number group or run of punctuation,
    more for long words (one per ``CHARS_PER_TOKEN`` letters), one per character of scripts written
    without spaces. Within about 10% of cl100k_base on English prose.

    Used only where token figures are reported, never for a budget; ``estimated`` says so.
    """

    estimated = True
    CHARS_PER_TOKEN = 6
    _PIECES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_]+|\d{1,3}|[^\w\s]+|\s+(?=\S)|\s+", re.UNICODE)

    def __init__(self, encoding: str = DEFAULT_ENCODING):
        self.name = f"{encoding} (estimated)"
        self.encoding = encoding

    def count(self, text: str) -> int:
        if not text:
            return 0
        per = self.CHARS_PER_TOKEN
        return sum(math.ceil(len(piece) / per) for piece in self._PIECES.findall(text) if not piece.isspace())

    def count_many(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        return sum(3 + self.count(m.get("content") or "") for m in messages) + 3


def estimates_notice(name: str) -> str:
    return f"token figures are estimates: {_missing(name)}; for exact figures, {_fix(name)}"


def counter_for(
    model: str | None = None, encoding: str | None = None, *, required: bool = True
) -> "TokenCounter | EstimatedTokenCounter":
    """The tiktoken counter for ``--encoding`` / ``--model``.

    ``required=False``: where the encoding cannot be loaded, warn once that token figures are
    estimates (and how to get exact ones) and return an :class:`EstimatedTokenCounter`.
    """
    name = encoding_name_for(model, encoding)
    try:
        return TokenCounter(name)
    except TokenizerError:
        if required:
            raise
        notices.warn(estimates_notice(name))
        return EstimatedTokenCounter(name)


LOAD_SWITCH_INTERVAL = 0.0005
"""sys.setswitchinterval while an encoding loads in a thread (Python's default is 0.005)."""


def preload(model: str | None = None, encoding: str | None = None) -> "concurrent.futures.Future[TokenCounter | None]":
    """Start loading the encoding for ``model`` in a thread; the future holds the :class:`TokenCounter`, or None
    where it cannot be loaded (then :func:`counter_for`, in the caller's thread, warns or fails as it does).

    Loading o200k_base takes 0.3-0.5 s of CPU: an LLM command starts it here so that its first requests are
    out meanwhile instead of waiting for it. While it loads, the interpreter hands the other threads (the
    event loop) their turn every :data:`LOAD_SWITCH_INTERVAL` seconds instead of 5 ms, so the loop's answers and
    sends are not held up 5 ms at each turn.
    """
    future: concurrent.futures.Future[TokenCounter | None] = concurrent.futures.Future()
    name = encoding_name_for(model, encoding)

    def load() -> None:
        before = sys.getswitchinterval()
        sys.setswitchinterval(min(before, LOAD_SWITCH_INTERVAL))
        try:
            future.set_result(TokenCounter(name))
        except Exception:  # TokenizerError, UsageError: the caller's counter_for says so in its own thread
            future.set_result(None)
        finally:
            sys.setswitchinterval(before)

    threading.Thread(target=load, name=f"itkit-load-{name}", daemon=True).start()
    return future

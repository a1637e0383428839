"""Text a server sent, made safe to show: one sanitiser for every place itkit quotes a server.

A server's error body is untrusted: it may hold terminal escape codes
(``\\x1b[2J`` clears the screen), other control characters, megabytes of HTML,
or the API key it was sent. :func:`sanitize` strips control characters
(ANSI/VT escape sequences whole, then any remaining C0/C1 character; tabs and
newlines become spaces), collapses whitespace and cuts the text at a length;
:func:`server_message` finds the human message in any of the body shapes
OpenAI-compatible servers send and sanitises it:

- OpenAI, vLLM, llama.cpp: ``{"error": {"message": "...", "type": ..., "code": ...}}``;
- Ollama, some gateways: ``{"error": "..."}``;
- FastAPI servers (``transformers serve``, ``llama-cpp-python``): ``{"detail": "..."}``
  or ``{"detail": [{"msg": "...", "loc": [...]}]}``;
- TGI: ``{"error": "...", "error_type": "..."}``; others: ``{"message": "..."}``;
- a plain-text or HTML body: its text.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_SERVER_MESSAGE = 300
"""Characters of a server's message quoted in ours."""

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_TAGS = re.compile(r"<[^>]{0,200}>")


def sanitize(text: Any, limit: int | None = MAX_SERVER_MESSAGE) -> str:
    """``text`` safe for a terminal and a one-line message: no escape codes or control characters, one line, cut.

    Control characters become spaces (a newline or tab separates words), runs of
    whitespace collapse to one space, and beyond ``limit`` characters the text
    ends in ``...``.
    """
    out = _ANSI.sub("", str(text))
    out = _CONTROL.sub(" ", out)
    out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)].rstrip() + "..."
    return out


def _from_json(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        parts = [_from_json(item) for item in data[:3]]
        return "; ".join(p for p in parts if p)
    if not isinstance(data, dict):
        return ""
    for name in ("error", "detail", "message", "msg", "error_message"):
        found = _from_json(data.get(name))
        if found:
            return found
    return ""


def message_of(body: Any) -> str:
    """The raw human message in a server's error body (bytes, text or parsed JSON); "" when none."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8", errors="replace")
        except Exception:  # pragma: no cover - decode with replace does not fail
            return ""
    if isinstance(body, str):
        stripped = body.strip()
        if stripped[:1] in ("{", "["):
            try:
                return _from_json(orjson.loads(stripped)) or stripped
            except orjson.JSONDecodeError:
                return stripped
        if stripped[:1] == "<":  # an HTML error page: its text
            return _TAGS.sub(" ", stripped)
        return stripped
    return _from_json(body)


def server_message(body: Any, limit: int | None = MAX_SERVER_MESSAGE) -> str:
    """The server's own message from ``body``, sanitised and cut at ``limit``."""
    return sanitize(message_of(body), limit)


__all__ = ["MAX_SERVER_MESSAGE", "message_of", "sanitize", "server_message"]

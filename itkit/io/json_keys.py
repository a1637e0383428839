"""Duplicate keys in JSON objects: found without slowing the orjson fast path.

JSON parsers (orjson, ``json``) keep the last of two equal keys, so
``{"output": "a", "output": "b"}`` silently loses ``"a"``. itkit treats a
duplicate key as a located error. orjson cannot report one, so each parsed
value is checked against its text, cheapest test first:

1. every string (key or value) of the parsed value accounts for two ``"``
   bytes of the text; when the text holds exactly that many, no key was
   dropped (a dropped key would add two more) and none is escaped: done.
   This is one C-level byte count and a walk over the parsed value.
2. otherwise (escaped quotes in the text), every key ends with ``"`` and
   optional whitespace before ``:``; when the text has no more such endings
   than the parsed value has keys, none was dropped.
3. only when both are inconclusive is the text parsed again with the
   standard library's duplicate-checking ``object_pairs_hook``.

Both quick tests can only be inconclusive, never wrong: a dropped key always
adds to the counts of the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

DUPLICATE_KEY_REASON = "duplicate key '{key}' in one JSON object (JSON would keep only the last value); remove or rename one"
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _quotes(value: Any) -> int:
    """The ``"`` bytes the strings of a parsed JSON value account for (two per key and per string).

    Iterative: a value may nest deeper than Python's recursion limit (orjson accepts 1,024 levels)."""
    n = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            n += 2
        elif kind is dict:
            n += 2 * len(item)
            for v in item.values():
                kind = type(v)
                if kind is str:
                    n += 2
                elif kind is dict or kind is list:
                    push(v)
        elif kind is list:
            for v in item:
                kind = type(v)
                if kind is str:
                    n += 2
                elif kind is dict or kind is list:
                    push(v)
    return n


def _keys(value: Any) -> int:
    n = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            n += len(item)
            stack.extend(v for v in item.values() if type(v) is dict or type(v) is list)
        elif type(item) is list:
            stack.extend(v for v in item if type(v) is dict or type(v) is list)
    return n


def _count(pattern: re.Pattern[bytes], text: bytes) -> int:
    return sum(1 for _ in pattern.finditer(text))


def may_have_duplicates(text: bytes, parsed: Any) -> bool:
    """False when ``text`` (whose parse is ``parsed``) provably holds no duplicate key; True when unsure."""
    if text.count(b'"') == _quotes(parsed):
        return False
    return _count(_KEY_END, text) != _keys(parsed)


def duplicate_key(text: bytes, parsed: Any) -> str | None:
    """The first duplicate key of the JSON ``text`` already parsed as ``parsed`` (None when there is none)."""
    if not may_have_duplicates(text, parsed):
        return None
    try:
        json.loads(text, object_pairs_hook=_unique_pairs)
    except DuplicateKey as dup:
        return dup.key
    except (ValueError, RecursionError):  # orjson took it and json does not (or nests past Python's stack)
        return None  # (a value nested that deep cannot be written anyway: the writer refuses it, located)
    return None


def duplicates_in_array(data: bytes) -> dict[int, tuple[int, str, str]]:
    """Every element of the JSON array text ``data`` with a duplicate key: index -> (line, key, element text).

    The slow path, for an array :func:`may_have_duplicates` could not clear.
    """
    text = data.decode("utf-8")
    decoder = json.JSONDecoder(object_pairs_hook=_unique_pairs)
    pos = text.index("[") + 1
    index = 0
    end = len(text)
    found: dict[int, tuple[int, str, str]] = {}
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end or text[pos] == "]":
            return found
        start = pos
        try:
            _value, pos = decoder.raw_decode(text, start)
        except DuplicateKey as dup:
            _value, pos = json.JSONDecoder().raw_decode(text, start)
            found[index] = (_key_line(text, start, dup.key), dup.key, text[start:pos])
        except (ValueError, RecursionError):
            return found
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        index += 1


def _key_line(text: str, start: int, key: str) -> int:
    """The line of the second ``"key":`` after ``start`` (the element's first line when it cannot be found)."""
    quoted = re.escape(json.dumps(key, ensure_ascii=False))
    hits = [m.start() for m in re.finditer(quoted + r"\s*:", text[start:])][:2]
    at = start + hits[1] if len(hits) == 2 else start
    return text.count("\n", 0, at) + 1


__all__ = ["DUPLICATE_KEY_REASON", "duplicate_key", "duplicates_in_array", "may_have_duplicates"]

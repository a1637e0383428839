"""Fingerprints: when may a finished step be skipped?

A step's fingerprint is the sha256 of everything its output depends on:

- the step type and its resolved options (defaults filled in, so writing a
  default out does not change it);
- for an LLM step, the settings that shape the requests or the result
  (:data:`FINGERPRINT_LLM_FIELDS`: model, endpoint, sampling, seed, limit),
  never the API key, and the sha256 of every prompt file of its method as it
  will be loaded (``prompts_dir`` overrides included);
- the itkit version;
- the fingerprint of the step before it (so a changed step re-runs every step
  after it) and the sha256 of its input file.

The fingerprint file (``fingerprint.json``) is written last, atomically, once
the step's output is in place, so a step killed at any point has none and
runs again. It also records the output's sha256 (the next step's input hash),
size and mtime (to notice an output changed by hand) and the step's figures
for the run summary.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import orjson

import itkit
from itkit.io.sinks import write_file_atomic
from itkit.templates import list_templates, template_path

FINGERPRINT_FILE = "fingerprint.json"
FORMAT_VERSION = 1
"""Bump when the meaning of a fingerprint changes: every step runs again."""
HASH_CHUNK = 1 << 20
FINGERPRINT_LLM_FIELDS = ("model", "base_url", "temperature", "top_p", "max_tokens", "seed", "limit")
"""LLM settings that change what is asked or what comes back. The others (key, timeout, retries,
concurrency, rate limits, cache, prices) only change how requests are sent: changing them does not
re-run a finished step."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def prompt_hashes(method: str, prompts_dir: str | None) -> dict[str, str]:
    """sha256 of every prompt file of ``method`` as it would be loaded (an override in ``prompts_dir`` wins)."""
    return {name: sha256_file(template_path(method, name, prompts_dir)) for name in list_templates(method, prompts_dir)}


FINGERPRINT_LLM_FIELDS_IF_SET = ("drop_params", "rename_params")
"""Also part of the identity, but only when given (so fingerprints made before they existed stay valid)."""


def llm_identity(settings: dict[str, Any] | None) -> dict[str, Any] | None:
    if settings is None:
        return None
    identity = {name: settings.get(name) for name in FINGERPRINT_LLM_FIELDS}
    identity.update({name: settings[name] for name in FINGERPRINT_LLM_FIELDS_IF_SET if settings.get(name)})
    return identity


def step_fingerprint(
    step_type: str,
    options: dict[str, Any],
    *,
    previous: str,
    input_sha256: str | None,
    llm: dict[str, Any] | None = None,
    prompts: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The fingerprint and the parts it was computed from (kept in the fingerprint file for inspection)."""
    parts = {
        "format": FORMAT_VERSION,
        "itkit": itkit.__version__,
        "type": step_type,
        "options": options,
        "llm": llm_identity(llm),
        "prompts": prompts,
        "previous": previous,
        "input_sha256": input_sha256,
    }
    return sha256_json(parts), parts


def output_state(path: Path) -> dict[str, Any]:
    """sha256, size and mtime of a step's output file."""
    stat = path.stat()
    return {"sha256": sha256_file(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def output_intact(path: Path, recorded: dict[str, Any]) -> bool:
    """Is the output still the one the fingerprint file describes? (rehashed only when size or mtime moved)"""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != recorded.get("size"):
        return False
    if stat.st_mtime_ns == recorded.get("mtime_ns"):
        return True
    return sha256_file(path) == recorded.get("sha256")


def read_fingerprint(folder: Path) -> dict[str, Any] | None:
    """The fingerprint file of a step folder, or None when it is missing or unreadable (the step then runs)."""
    try:
        data = orjson.loads((folder / FINGERPRINT_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("fingerprint"), str) else None


def write_fingerprint(folder: Path, data: dict[str, Any]) -> None:
    """Write the fingerprint file atomically (the last write of a step)."""
    write_file_atomic(
        folder / FINGERPRINT_FILE,
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_SORT_KEYS),
    )


def remove_fingerprint(folder: Path) -> None:
    """Forget that a step finished (done first when it runs again, before anything else changes)."""
    try:
        (folder / FINGERPRINT_FILE).unlink()
    except FileNotFoundError:
        pass


__all__ = [
    "FINGERPRINT_FILE",
    "FINGERPRINT_LLM_FIELDS",
    "llm_identity",
    "output_intact",
    "output_state",
    "prompt_hashes",
    "read_fingerprint",
    "remove_fingerprint",
    "sha256_file",
    "sha256_json",
    "step_fingerprint",
    "write_fingerprint",
]

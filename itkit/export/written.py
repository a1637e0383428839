"""What export checks and decides about the files it writes: targets that cannot hold a record, the sequence
length of the configs, warnings about the validation set, and one copy of identical data files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

from itkit.errors import UsageError
from itkit.export.split import Split
from itkit.export.targets import Target, TrainingDefaults
from itkit.records import Record

HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_targets(targets: Sequence[Target], record_sets: Sequence[Sequence[Record]]) -> None:
    """Refuse, before writing anything, a target that cannot hold an exported record."""
    for target in targets:
        for records in record_sets:
            for record in records:
                reason = target.refuses(record)
                if reason:
                    raise UsageError(
                        f"--target {target.name} cannot hold record '{record.id}': {reason}; "
                        "leave that target out (--target ...) or change the record; nothing was written"
                    )


def cutoff_len(max_tokens: int | None, training: TrainingDefaults, exact: bool, tokens: Any) -> int:
    """The sequence length the configs get: every exported record fits, with a margin when lengths are estimates.

    ``tokens``: the distribution of the set's record lengths (a ``Distribution``, or None)."""
    longest = int(tokens.max) if tokens is not None and tokens.count else 0
    if exact:
        return max_tokens if max_tokens is not None else max(training.cutoff_len, longest)
    base = max_tokens if max_tokens is not None else training.cutoff_len
    return max(base, training.with_margin(longest))


def validation_warnings(
    mode: str, train: int, val: int, split: Split, unrenderable: int = 0, render_errors: dict[str, str] | None = None
) -> list[str]:
    """A validation set far below what was asked, or larger than the training set; records the template refused."""
    out = []
    if split.requested and val < split.requested / 2:
        why = f", {split.moved} moved to train as duplicates of training records" if split.moved else ""
        out.append(f"{mode}: the validation set has {val} records, under half of the {split.requested} asked{why}")
    if val > train:
        out.append(f"{mode}: the validation set ({val}) is larger than the training set ({train}); lower --val-size or --val-ratio")
    if unrenderable:
        example = next(iter((render_errors or {}).items()), None)
        out.append(
            f"{mode}: {unrenderable} records left out: the chat template cannot render them"
            + (f" (e.g. '{example[0]}': {example[1]})" if example else "")
        )
    return out


def link_if_same(path: Path, written: dict[str, Path]) -> bool:
    """Make ``path`` a hard link to an identical data file written before (one copy on disk), where links work."""
    digest = file_sha256(path)
    first = written.get(digest)
    if first is None:
        written[digest] = path
        return False
    temp = path.with_name(path.name + ".link")
    try:
        os.link(first, temp)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
        return False
    return True

"""Measure: which Orca task type ``itkit orca --assign by-type`` gives the records of real datasets.

    python benchmarks/orca_task_types.py                  # the default files below
    python benchmarks/orca_task_types.py FILE [FILE...]   # any files itkit reads

Defaults: the real data under ``../shared/realdata/`` (when present) and our own
GSM8K-shaped math word problems (``data_samples/gsm8k_style.jsonl``). Prints one
markdown table per file: task type, records, share, how the type was found; the
README's Orca section shows this table. Nothing is sent to any model.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itkit.dataset import read_records  # noqa: E402
from itkit.methods.orca.system_messages import load_system_messages  # noqa: E402
from itkit.methods.orca.task_types import load_task_table  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata"
DEFAULT_FILES = [
    REALDATA / "self_instruct_seed_tasks.jsonl",
    REALDATA / "sharegpt_fastchat_sample.json",
    ROOT / "data_samples" / "gsm8k_style.jsonl",
    ROOT / "data_samples" / "dolly.jsonl",
]


def table_for(path: Path) -> str:
    table = load_task_table(load_system_messages().numbers)
    records = read_records(str(path))
    types: Counter = Counter()
    found: dict[str, Counter] = {}
    for record in records:
        detected = table.detect(record)
        types[detected.name] += 1
        how = detected.found_by.split(":", 1)[0] + (":" + detected.found_by.split(":", 1)[1] if detected.found_by.startswith("rule:") else "")
        found.setdefault(detected.name, Counter())[how] += 1
    lines = [f"{path.name} ({len(records)} records)", "", "| task type | records | share | found by |", "|---|---:|---:|---|"]
    for name, n in types.most_common():
        how = ", ".join(f"{k} x{v}" for k, v in found[name].most_common())
        lines.append(f"| `{name}` | {n} | {n / len(records):.0%} | {how} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [p for p in DEFAULT_FILES if p.is_file()]
    for path in files:
        print(table_for(path))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Shared fixtures. User state (cache, logs) goes to a temp dir for every test."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
SHARED = ROOT.parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("itkit_home")
    monkeypatch.setenv("ITKIT_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return home


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA


def invoke(runner: CliRunner, *args: str, input: str | bytes | None = None):
    """Run the itkit CLI in-process; stdout and stderr are kept apart."""
    from itkit.cli import app

    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def without_added_ids(rows: list[dict], originals: list[dict]) -> list[dict]:
    """``rows`` as written, minus the ``id`` itkit gives a row that had none (it is written so that every later
    command and pipe keeps it): what is left must be the original row."""
    assert len(rows) == len(originals)
    return [
        {k: v for k, v in row.items() if k != "id"} if "id" not in original and "id" in row else row
        for row, original in zip(rows, originals)
    ]


def id_blind(records: list) -> list:
    """Records as comparable data, blind to how their ids came about: a record read back from a file itkit
    wrote has its made-up id as a written one (no ``id_generated`` mark, ``id`` among the fields present)."""
    out = []
    for record in records:
        data = record.model_dump(mode="json")
        meta = {k: v for k, v in data["metadata"].items() if k != "id_generated"}
        layout = meta.get("layout")
        if isinstance(layout, dict) and "present" in layout:
            meta["layout"] = {**layout, "present": [p for p in layout["present"] if p != "id"]}
        out.append({**data, "metadata": meta})


def read_failures(path) -> list[dict]:
    """The rows of a failures file, flattened for assertions: the ``_itkit_failure`` fields, the failed input
    row as ``record`` (and its ``id``, when it has one)."""
    import json

    from itkit.failures import FAILURE_KEY

    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        failure = row.pop(FAILURE_KEY)
        out.append({**failure, "record": row, **({"id": row["id"]} if "id" in row else {})})
    return out

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

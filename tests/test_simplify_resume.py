"""Resume: a real ``python -m itkit simplify`` process killed (SIGKILL) or interrupted (SIGINT) mid-run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from llm_server import TEST_API_KEY, FakeLLMServer
from test_simplify import make_alpaca, simplify_reply

RECORDS = 80
LATENCY = 0.05
CONCURRENCY = 4


@pytest.fixture
def server():
    with FakeLLMServer(api_key=TEST_API_KEY, reply=simplify_reply, latency=LATENCY) as fake:
        yield fake


def command(source: Path, out: Path, server: FakeLLMServer) -> list[str]:
    return [
        sys.executable, "-m", "itkit", "simplify", str(source), "-o", str(out),
        "--base-url", server.base_url, "--concurrency", str(CONCURRENCY),
    ]


def environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ITKIT_HOME": str(home), "OPENAI_API_KEY": TEST_API_KEY})
    env.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
    return env


def start(source: Path, out: Path, server: FakeLLMServer, home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command(source, out, server), cwd=ROOT, env=environment(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(source: Path, out: Path, server: FakeLLMServer, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(source, out, server), cwd=ROOT, env=environment(home), capture_output=True, text=True, timeout=120
    )


def wait_for_completed(server: FakeLLMServer, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(server.completed) < n:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the run did not progress"
        time.sleep(0.01)


def cached_responses(home: Path) -> int:
    db = sqlite3.connect(home / "llm-cache.sqlite3")
    try:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def reference(tmp_path_factory, server) -> tuple[Path, bytes]:
    """The input file and the output of an uninterrupted run (its own fresh cache)."""
    folder = tmp_path_factory.mktemp("reference")
    source = folder / "in.jsonl"
    make_alpaca(source, RECORDS)
    out = folder / "out.jsonl"
    done = finish(source, out, server, folder / "home")
    assert done.returncode == 0, done.stderr
    assert len(server.chat_requests()) == RECORDS
    server.reset()
    return source, out.read_bytes()


def test_kill_9_then_rerun_sends_only_the_missing_requests_and_gives_the_same_output(reference, server, tmp_path):
    source, expected = reference
    home = tmp_path / "home"
    out = tmp_path / "out.jsonl"
    proc = start(source, out, server, home)
    wait_for_completed(server, RECORDS // 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # no partial output
    kept = cached_responses(home)
    assert 0 < kept < RECORDS
    server.reset()
    done = finish(source, out, server, home)
    assert done.returncode == 0, done.stderr
    assert len(server.chat_requests()) == RECORDS - kept
    assert out.read_bytes() == expected


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_resumes(reference, server, tmp_path):
    source, expected = reference
    home = tmp_path / "home"
    out = tmp_path / "out.jsonl"
    proc = start(source, out, server, home)
    wait_for_completed(server, RECORDS // 4, proc)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("itkit: error: interrupted after ")
    assert "re-run the same command to resume" in lines[0]
    assert not out.exists()
    kept = cached_responses(home)
    assert 0 < kept < RECORDS
    server.reset()
    done = finish(source, out, server, home)
    assert done.returncode == 0, done.stderr
    assert len(server.chat_requests()) == RECORDS - kept
    assert out.read_bytes() == expected

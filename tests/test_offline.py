"""Offline: the README's main job runs with no tiktoken cache and no network; where tokens are
essential (a token budget) the command fails with one line naming the file to download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, invoke

CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"

# Imported at start-up of every Python process that has this folder on PYTHONPATH: any connection or name
# lookup outside 127.0.0.1 fails at once, as on a machine without network.
NO_NETWORK = textwrap.dedent(
    """
    import socket

    _LOCAL = ("127.0.0.1", "::1", "localhost")
    _connect = socket.socket.connect
    _getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in _LOCAL and not host.startswith("/"):
            raise OSError(101, "Network is unreachable (blocked by the test)")
        return _connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, *_LOCAL):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (blocked by the test)")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.getaddrinfo = getaddrinfo
    """
)


@pytest.fixture
def offline_env(tmp_path) -> dict[str, str]:
    site = tmp_path / "no_network"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK)
    empty = tmp_path / "empty_tiktoken_cache"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OPENAI_", "TIKTOKEN", "DATA_GYM"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
        TIKTOKEN_CACHE_DIR=str(empty),
        ITKIT_HOME=str(tmp_path / "home"),
        COLUMNS="80",
    )
    return env


def run_itkit(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "itkit", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_main_job_succeeds_offline_with_no_tiktoken_cache(tmp_path, offline_env):
    run_dir = tmp_path / "run"
    result = run_itkit(["run", str(SAMPLES / "recipes" / "quickstart.yaml"), "--run-dir", str(run_dir)], offline_env, tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("itkit: warning: token figures are estimates")]
    assert len(warnings) == 1, result.stderr  # said once
    empty = offline_env["TIKTOKEN_CACHE_DIR"]
    assert f"download https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken as {empty}/{CL100K_FILE}" in warnings[0]
    assert "Traceback" not in result.stderr
    summary = json.loads((run_dir / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["exit_code"] == 0
    assert any("token figures are estimates" in w for w in summary["warnings"])
    export = run_dir / "03-export" / "output"
    card = next(export.rglob("README.md")).read_text(encoding="utf-8")
    assert "cl100k_base (estimated)" in card
    assert os.listdir(empty) == []


def test_a_token_budget_offline_fails_with_the_file_to_download(tmp_path, offline_env):
    out = tmp_path / "out"
    result = run_itkit(
        ["export", str(SAMPLES / "alpaca.json"), "-o", str(out), "--target", "trl", "--max-length", "100"], offline_env, tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("itkit: error: cannot load the tiktoken encoding 'cl100k_base'")
    assert f"{offline_env['TIKTOKEN_CACHE_DIR']}/{CL100K_FILE}" in lines[0]
    assert not out.exists()


def test_a_filter_token_length_bound_offline_fails(tmp_path, offline_env):
    result = run_itkit(
        ["filter", str(SAMPLES / "alpaca.json"), "-o", str(tmp_path / "o.jsonl"), "--max-response", "50", "--length-unit", "tokens"],
        offline_env,
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("itkit: error: ") and CL100K_FILE in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


@pytest.mark.parametrize("how", ["no network", "endpoint refuses"])
def test_a_hub_source_without_network_fails_at_once_with_one_line(tmp_path, offline_env, how):
    env = {**offline_env, "HF_HOME": str(tmp_path / "hf_home")}
    if how == "endpoint refuses":
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    out = tmp_path / "out.jsonl"
    result = run_itkit(["convert", "hf://tatsu-lab/alpaca", "-o", str(out)], env, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no retries ("Retrying in 8s [Retry 5/5]"), no traceback
    assert lines[0].startswith("itkit: error: hf://tatsu-lab/alpaca: the Hugging Face Hub is unreachable (")
    assert "and the dataset is not in the local cache; check your network" in lines[0]
    assert not out.exists()


def test_the_hub_check_goes_through_the_proxy(monkeypatch):
    """Behind a proxy the Hub itself is not reachable directly: the check connects to the proxy."""
    import socket

    from itkit.io import rows

    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert rows.hub_unreachable("https://huggingface.co") == f"127.0.0.1:{port}: Connection refused"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert rows.hub_unreachable("https://huggingface.co") is None

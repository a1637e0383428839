"""An interrupted or failed run leaves nothing behind (README: "What itkit never does to your files").

Signals are sent to the installed ``itkit`` console script running as a real process; a full disk
is a real 256 KiB tmpfs where the tests may mount one (root), and a write failing with ENOSPC at the
file-descriptor level everywhere else; a closed stdout is a real pipe.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from conftest import invoke
from llm_server import FakeLLMServer

TEST_KEY = "sk-interrupt-test-key"


def rows(n: int, width: int = 40) -> list[dict]:
    return [
        {"instruction": f"Explain topic number {i} in detail.", "input": "", "output": f"Answer {i}: " + os.urandom(width).hex()}
        for i in range(n)
    ]


def jsonl(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def debris(folder: Path) -> list[str]:
    """Temporary files and folders a writer could leave (hidden *.tmp / *.old), at any depth."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name.endswith((".tmp", ".old")))


def itkit_command() -> list[str]:
    """The installed console script (as users run it), else the module."""
    script = Path(sys.executable).with_name("itkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "itkit"]


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["ITKIT_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "80"
    return env


# ---------------------------------------------------------------- 8. SIGTERM and SIGHUP like Ctrl-C

# (command, arguments after the input "-"): each opens its output's temporary file or folder before it has read
# all of stdin, so a signal while it waits for more input is a signal in the middle of writing
STREAMING = [
    ("convert", ["-o", "out/c.jsonl", "--to", "sharegpt"]),
    ("filter", ["-o", "out/f.jsonl", "--report", "out/removed.jsonl"]),
    ("dedup", ["-o", "out/d.parquet", "--near"]),
    ("export", ["-o", "out/e", "--target", "trl"]),
]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("command,args", STREAMING, ids=[c for c, _ in STREAMING])
def test_a_signal_mid_run_leaves_nothing_and_exits_128_plus_signal(tmp_path, command, args, sig):
    (tmp_path / "out").mkdir()
    proc = subprocess.Popen(
        [*itkit_command(), command, "-", *args],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, env=subprocess_env(tmp_path),
    )
    # 2 MB through a 64 KB pipe: when write() returns, itkit has read most of it (it is mid-run, handlers installed)
    proc.stdin.write(jsonl(rows(6000)))
    proc.stdin.flush()
    time.sleep(0.3)
    proc.send_signal(sig)
    proc.stdin.close()
    proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 128 + sig, stderr
    by = "" if sig == signal.SIGINT else f" by {signal.Signals(sig).name}"
    assert stderr.strip().splitlines()[-1].startswith(f"itkit: error: interrupted{by}: nothing half-written was left; re-run")
    assert "Traceback" not in stderr
    assert list((tmp_path / "out").iterdir()) == [] and debris(tmp_path) == []


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_an_llm_command_stopped_by_a_signal_keeps_its_cache_and_says_how_to_resume(tmp_path, sig):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(40)))
    with FakeLLMServer(api_key=TEST_KEY, latency=0.2) as server:
        cmd = [*itkit_command(), "simplify", str(data), "-o", "out.jsonl", "--base-url", server.base_url, "-j", "2", "--max-retries", "0"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=tmp_path, env={**subprocess_env(tmp_path), "OPENAI_API_KEY": TEST_KEY})
        _wait_for(lambda: len(server.completed) >= 4)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        answered = len(server.completed)
    assert proc.returncode == 128 + sig, stderr
    assert f"interrupted by {signal.Signals(sig).name} after" in stderr
    assert "re-run the same command to resume; only the missing requests will be sent" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "home"], "no output, summary or temp file"
    cache = tmp_path / "home" / "llm-cache.sqlite3"
    with sqlite3.connect(cache) as db:
        # (the last answers sent may not have reached the client before it stopped)
        assert 1 <= db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] <= answered


def test_a_run_stopped_by_sigterm_resumes_where_it_stopped(tmp_path):
    (tmp_path / "data.jsonl").write_bytes(jsonl(rows(30)))
    (tmp_path / "r.yaml").write_text(
        "name: r\nsources:\n  - path: data.jsonl\nllm:\n  concurrency: 2\n  max_retries: 0\n"
        "steps:\n  - filter: {}\n  - simplify: {}\n"
    )
    env = {**subprocess_env(tmp_path), "OPENAI_API_KEY": TEST_KEY}
    # 30 records, 2 at a time, 0.5 s each: the signal after the 4th answer comes long before the end, even
    # on a loaded machine (at 0.2 s a run there once finished first)
    with FakeLLMServer(api_key=TEST_KEY, latency=0.5) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        proc = subprocess.Popen([*itkit_command(), "run", "r.yaml", "-q"], stderr=subprocess.PIPE, cwd=tmp_path, env=env)
        _wait_for(lambda: len(server.completed) >= 4)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stderr.close()
        assert proc.returncode == 143
        run_dir = tmp_path / "runs" / "r"
        assert (run_dir / "01-filter" / "fingerprint.json").is_file()
        assert not (run_dir / "02-simplify" / "fingerprint.json").exists()
        assert debris(tmp_path) == []
        again = subprocess.run([*itkit_command(), "run", "r.yaml", "-q"], capture_output=True, cwd=tmp_path, env=env, timeout=120)
        assert again.returncode == 0, again.stderr.decode()
    totals = orjson.loads((run_dir / "run_summary.json").read_bytes())["totals"]
    assert totals["cache_hits"] >= 1, "the answers received before SIGTERM came from the cache"
    assert len((run_dir / "02-simplify" / "output.jsonl").read_text().splitlines()) == 30


# ---------------------------------------------------------------- 9. a full disk, a failing close()


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system (tmpfs); skipped where mounting is not allowed (not root)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if not shutil.which("mount") or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    ).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


DISK_FULL = [
    ("convert", "out.jsonl", []),
    ("convert", "out.json", []),
    ("convert", "out.csv", []),
    ("convert", "out.parquet", []),
    ("convert", "out.jsonl.gz", []),
    ("filter", "out.jsonl", ["--report", "{disk}/removed.jsonl"]),
    ("dedup", "out.jsonl", ["--report", "{disk}/removed.jsonl"]),
    ("export", "out", ["--target", "trl", "-q"]),
]


@pytest.mark.parametrize("command,name,extra", DISK_FULL, ids=[f"{c}-{n}" for c, n, _ in DISK_FULL])
def test_a_full_disk_names_the_file_and_leaves_nothing(runner, tmp_path, small_disk, command, name, extra):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(4000, width=60)))  # ~1.3 MB of incompressible text: more than the disk holds
    result = invoke(runner, command, data, "-o", small_disk / name, *[e.format(disk=small_disk) for e in extra])
    assert result.exit_code == 1
    named = f"{small_disk / name}" + ("/" if command == "export" else ": ")  # an export names the file in OUTDIR
    assert result.stderr.startswith(f"itkit: error: {named}")
    assert result.stderr.endswith(": cannot write: No space left on device\n") and result.stderr.count("\n") == 1
    assert list(small_disk.iterdir()) == []


class _FullDisk(io.FileIO):
    """A file whose writes fail with ENOSPC once ``room`` bytes are used (the OS-level failure of a full disk)."""

    room = 4096

    def write(self, data) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch):
    """Every file itkit's atomic writer opens fails with ENOSPC after 4 KiB."""
    import itkit.io.sinks as sinks

    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", buffering=-1, *args, **kwargs):
        if mode != "wb":
            return real_fdopen(fd, mode, buffering, *args, **kwargs)
        raw = _FullDisk(fd, "wb")
        return io.BufferedWriter(raw, buffer_size=max(buffering, 1)) if buffering else raw

    monkeypatch.setattr(sinks.os, "fdopen", fdopen)


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv", "out.parquet", "out.jsonl.gz"])
def test_enospc_while_writing_or_closing_any_container(runner, tmp_path, full_disk, name):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(300)))
    out = tmp_path / "out"
    result = invoke(runner, "convert", data, "-o", out / name, "--on-error", "skip")
    assert result.exit_code == 1
    assert result.stderr == f"itkit: error: {out / name}: cannot write: No space left on device\n"
    assert not out.exists(), "the folder made for the output is removed again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_enospc_in_an_export_names_the_file_in_outdir(runner, tmp_path, full_disk):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(300)))
    result = invoke(runner, "export", data, "-o", tmp_path / "e", "--target", "trl", "-q")
    assert result.exit_code == 1 and result.stderr.startswith(f"itkit: error: {tmp_path / 'e'}/")
    assert result.stderr.endswith(": cannot write: No space left on device\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_a_full_stdout_is_a_clear_error(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(3000)))
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([*itkit_command(), "convert", str(data)], stdout=full, stderr=subprocess.PIPE, env=subprocess_env(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.decode() == "itkit: error: stdout: cannot write: No space left on device\n"


@pytest.mark.parametrize("second", [{"extra": "text"}, {"extra": {"nested": 1}}])
def test_rows_parquet_cannot_hold_leave_no_temp_file(runner, tmp_path, second):
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(jsonl([{"instruction": "a", "output": "b", "extra": 1}, {"instruction": "c", "output": "d", **second}]))
    for command in ("convert", "filter", "dedup"):
        result = invoke(runner, command, data, "-o", tmp_path / "out.parquet", "--report" if command != "convert" else "-q",
                        *([tmp_path / "r.jsonl"] if command != "convert" else []))
        assert result.exit_code == 1 and "rows do not share one Parquet schema" in result.stderr, result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.jsonl"], "neither the output nor the report"


# ---------------------------------------------------------------- 17. a closed stdout


@pytest.mark.parametrize(
    "command",
    [["convert", "{data}"], ["filter", "{data}"], ["dedup", "{data}"], ["convert", "{data}", "--to", "messages"],
     ["run", "{recipe}", "--dry-run", "--samples", "300"]],  # the dry-run plan: printed by rich, not a writer
    ids=["convert", "filter", "dedup", "convert-messages", "run-dry-run"],
)
def test_a_closed_stdout_ends_quietly_with_141(tmp_path, command):
    data = tmp_path / "big.jsonl"
    data.write_bytes(jsonl(rows(4000)))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsources:\n  - path: big.jsonl\nsteps:\n  - simplify: {}\n")
    argv = [a.format(data=data, recipe=recipe) for a in command]
    proc = subprocess.Popen([*itkit_command(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=subprocess_env(tmp_path))
    proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 141, stderr
    if command[0] != "run":  # (the run prints its progress on stderr)
        assert stderr == ""
    assert debris(tmp_path) == [] and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- 10. --dry-run writes nothing


def test_a_dry_run_creates_no_cache(runner, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("ITKIT_HOME", str(home))
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(5)))
    for command in (["simplify"], ["orca"], ["evol-instruct"], ["score", "--scorer", "quality,complexity"]):
        result = invoke(runner, *command, data, "-o", tmp_path / "out.jsonl", "--dry-run")
        assert result.exit_code == 0, result.stderr
    result = invoke(runner, "simplify", data, "-o", tmp_path / "out.jsonl", "--dry-run", "--cache-dir", tmp_path / "c")
    assert result.exit_code == 0
    (tmp_path / "r.yaml").write_text(
        "name: r\nsources:\n  - path: data.jsonl\nllm:\n  cache_dir: rcache\nsteps:\n  - simplify: {}\n"
    )
    result = invoke(runner, "run", tmp_path / "r.yaml", "--dry-run", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "r.yaml"]


def test_a_dry_run_reads_an_existing_cache_without_touching_it(runner, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(5)))
    cache = tmp_path / "cache"
    with FakeLLMServer(api_key=TEST_KEY) as server:
        args = ["--base-url", server.base_url, "--api-key", TEST_KEY, "--cache-dir", cache]
        assert invoke(runner, "simplify", data, "-o", tmp_path / "out.jsonl", *args).exit_code == 0
        before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.iterdir()}
        # the same endpoint (the cache is keyed on it), as a dry run
        result = invoke(runner, "simplify", data, "-o", tmp_path / "out2.jsonl", "--dry-run", *args)
    assert result.exit_code == 0 and re.search(r"requests to send: 0 \(\d+ more already cached\)", result.stdout), result.stdout
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.iterdir()} == before
    assert not (tmp_path / "out2.jsonl").exists()


# ---------------------------------------------------------------- 11. -o through a symlink


@pytest.mark.parametrize("name", ["link.jsonl", "link.parquet"])
def test_output_through_a_symlink_replaces_its_target(runner, tmp_path, name):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(5)))
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / ("target" + Path(name).suffix)
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / name
    link.symlink_to(target)
    result = invoke(runner, "convert", data, "-o", link)
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.stat().st_size > 3 and target.stat().st_mode & 0o777 == 0o640
    assert debris(tmp_path) == []
    dangling = tmp_path / ("dangling" + Path(name).suffix)
    dangling.symlink_to(tmp_path / "real" / ("new" + Path(name).suffix))
    assert invoke(runner, "convert", data, "-o", dangling).exit_code == 0
    assert dangling.is_symlink() and (tmp_path / "real" / ("new" + Path(name).suffix)).is_file()


# ---------------------------------------------------------------- 16. clear messages, not "internal error"


@pytest.mark.parametrize("column,kind", [("decimal", "decimals"), ("bytes", "bytes"), ("nested", "bytes")])
def test_parquet_columns_without_a_json_form_are_a_located_error(runner, tmp_path, column, kind):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    values = {
        "decimal": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.25")]),
        "bytes": pa.array([b"x", b"\xff"]),
        "nested": pa.array([[{"b": b"x"}], [{"b": b"y"}]]),
    }[column]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b"], "output": ["x", "y"], "extra": values}), src)
    for args in ([], ["--on-error", "skip"]):
        result = invoke(runner, "convert", src, "-o", tmp_path / "out.jsonl", *args)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"itkit: error: {src}: field 'extra': is a Parquet column of {kind}")
        assert "internal error" not in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


@pytest.mark.parametrize("command", [["simplify"], ["orca"], ["evol-instruct"], ["score"], ["self-instruct", "-n", "2"]])
def test_a_seed_beyond_64_bits_is_a_usage_error(runner, tmp_path, command):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(3)))
    result = invoke(runner, command[0], data, *command[1:], "-o", tmp_path / "o.jsonl", "--seed", str(2**70), "--dry-run")
    assert result.exit_code == 2 and result.stderr.startswith("itkit: error: --seed: ")
    result = invoke(runner, "export", data, "-o", tmp_path / "e", "--seed", "-1")
    assert result.exit_code == 2 and "--seed must be 0 or more" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


@pytest.mark.parametrize(
    "args",
    [["simplify", "--limit"], ["simplify", "--max-tokens"], ["orca", "--concurrency"], ["dedup", "--near", "--num-perm"],
     ["filter", "--max-response"], ["export", "--seed"], ["export", "--lft-size"]],
    ids=lambda a: " ".join(a),
)
def test_any_integer_beyond_64_bits_is_a_usage_error(runner, tmp_path, args):
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(3)))
    out = tmp_path / ("e" if args[0] == "export" else "o.jsonl")
    extra = ["--dry-run"] if args[0] in ("simplify", "orca") else []
    result = invoke(runner, args[0], data, "-o", out, *args[1:], str(2**70), *extra)
    assert result.exit_code == 2 and result.stderr.startswith(f"itkit: error: {args[-1]}: "), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_the_file_behind_stdin_is_an_input_too(tmp_path):
    """``itkit convert - --errors data.jsonl < data.jsonl``: refused (exit 2), the file untouched."""
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(rows(20)) + b"{broken\n")
    before = data.read_bytes()
    with open(data, "rb") as stdin:
        proc = subprocess.run([*itkit_command(), "convert", "-", "-o", "out.jsonl", "--on-error", "skip", "--errors", "data.jsonl"],
                              stdin=stdin, capture_output=True, cwd=tmp_path, env=subprocess_env(tmp_path))
    assert proc.returncode == 2 and "--errors names the file read on stdin" in proc.stderr.decode()
    assert data.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]

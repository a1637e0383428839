"""The near stage's hashing in a child process (itkit.dedup.hashproc): same decisions as hashing here,
a fallback when the child cannot start or dies, and no child left behind by a run, an error or a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from test_dedup_spill import planted
from test_interruptions import itkit_command, subprocess_env

import itkit.dedup.hashproc as hashproc
import itkit.dedup.pipeline as pipeline
import itkit.dedup.signing as signing
from itkit.dedup import DedupOptions, Deduplicator, dedup_texts


def decisions(texts, lengths=None, **settings):
    result = dedup_texts(texts, DedupOptions(**settings), lengths)
    return result.keep.tolist(), [(r.stage, r.index, r.kept_index, r.score, r.estimate) for r in result.removals]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(signing, "SIGNATURE_CHUNK", 200)
    monkeypatch.setattr(pipeline, "EXACT_BATCH", 150)


@pytest.fixture
def children(monkeypatch):
    """Every HashingProcess started, and how many batches each signed."""
    started: list[hashproc.HashingProcess] = []
    signed: list[int] = []
    original_init, original_sign = hashproc.HashingProcess.__init__, hashproc.HashingProcess.sign

    def init(self, *args):
        original_init(self, *args)
        started.append(self)

    def sign(self, data, count):
        result = original_sign(self, data, count)
        signed.append(count)
        return result

    monkeypatch.setattr(hashproc.HashingProcess, "__init__", init)
    monkeypatch.setattr(hashproc.HashingProcess, "sign", sign)
    return started, signed


@pytest.mark.parametrize("settings", [dict(near=0.7), dict(near=0.7, keep="longest"), dict(near=0.8, ngram=3, num_perm=64)])
def test_the_child_makes_the_same_decisions_as_hashing_here(small_batches, children, monkeypatch, settings):
    texts, lengths = planted(3000)
    texts += ["crème brûlée à la minute, vite", "日本語のテキスト。もう一つ", "", "   "] * 3
    lengths += [1] * 12
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", None)
    here = decisions(texts, lengths, **settings)
    assert not children[0]
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", 0)
    assert decisions(texts, lengths, **settings) == here
    started, signed = children
    assert len(started) == 1 and sum(signed) > 2000  # (the distinct texts, all signed by the child)
    assert started[0]._proc is None  # closed with the run


def test_a_child_that_dies_or_cannot_start_is_replaced_by_hashing_here(small_batches, children, monkeypatch):
    texts, _ = planted(3000)
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", None)
    here = decisions(texts, near=0.7)
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", 0)
    started, signed = children
    original_sign = hashproc.HashingProcess.sign

    def dies_after_two(self, data, count):
        if len(signed) == 2:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        return original_sign(self, data, count)

    monkeypatch.setattr(hashproc.HashingProcess, "sign", dies_after_two)
    assert decisions(texts, near=0.7) == here
    assert len(signed) == 2 and started[0]._proc is None
    monkeypatch.setattr(hashproc.HashingProcess, "sign", original_sign)
    monkeypatch.setattr(hashproc.sys, "executable", "/nonexistent/python")
    assert decisions(texts, near=0.7) == here


def test_an_interrupted_run_stops_its_child(small_batches, children, monkeypatch):
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", 0)
    texts, _ = planted(2000)

    def interrupted():
        yield from texts
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with Deduplicator(DedupOptions(near=0.7, ignore_common="off")) as dedup:  # (hashing from the first text)
            dedup.add_all(interrupted())
    started, signed = children
    assert started and signed and all(child._proc is None for child in started)


def _hashing_children(parent: int) -> list[int]:
    """Processes running itkit.dedup.hashproc whose parent is ``parent`` (or that outlived it: parent 1)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"itkit.dedup.hashproc" in cmdline and ppid in (parent, 1):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_at_the_terminal_stops_itkit_cleanly_and_its_child_with_it(tmp_path):
    """Ctrl-C goes to the terminal's whole foreground process group: itkit reports the interruption
    as always (no traceback, no output), and the child, in its own session, ends with it."""
    data = tmp_path / "big.jsonl"
    texts, _ = planted(60_000, seed=11)
    data.write_bytes(b"".join(orjson.dumps({"instruction": t, "input": "", "output": "o"}) + b"\n" for t in texts))
    (tmp_path / "out").mkdir()
    proc = subprocess.Popen(
        [*itkit_command(), "dedup", str(data), "-o", "out/d.jsonl", "--near"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, env=subprocess_env(tmp_path),
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    deadline = time.time() + 60
    while not _hashing_children(proc.pid):
        assert proc.poll() is None and time.time() < deadline, "the run ended before it started a child"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    proc.wait(timeout=60)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr.strip().splitlines()[-1]
    assert list((tmp_path / "out").iterdir()) == []
    deadline = time.time() + 10
    while _hashing_children(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert _hashing_children(proc.pid) == []


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")
def test_a_child_that_stops_answering_does_not_hold_up_the_end_of_a_run(small_batches, children, monkeypatch):
    """Closing while the hashing thread waits on a child that no longer answers (stopped) returns at once."""
    monkeypatch.setattr(signing, "HASH_PROCESS_AFTER", 0)
    texts, _ = planted(600)
    started, signed = children

    def stalled():
        yield from texts[:300]
        while not signed:  # the child has answered once
            time.sleep(0.01)
        os.kill(started[0]._proc.pid, signal.SIGSTOP)
        yield from texts[300:]  # its next batch goes to the stopped child
        time.sleep(0.3)
        raise KeyboardInterrupt

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with Deduplicator(DedupOptions(near=0.7, ignore_common="off")) as dedup:
            dedup.add_all(stalled())
    assert time.monotonic() - began < 10
    assert started[0]._proc is None

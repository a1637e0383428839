"""MinHash signatures computed in a child process, beside the process that reads the records.

The near stage hashes batches of texts while the records are still being read. In a thread, the
hashing shares the interpreter lock with the reading (and numpy gives it back between operations),
so the two barely overlap; a child process runs truly beside it. :class:`HashingProcess` starts
``python -m itkit.dedup.hashproc`` with the hasher's parameters and sends it batches over a pipe:

- request: ``count`` and ``length`` (two little-endian uint64), then the batch's token string
  (:class:`~itkit.dedup.minhash.WordBatch`);
- answer: the number of set values (uint64), the ``(count, num_perm)`` uint32 signatures, the
  sorted shingle-set values (uint32) and their ``count + 1`` offsets (int64)
  (:func:`~itkit.dedup.verify.sorted_sets`).

The child is the same :class:`~itkit.dedup.minhash.MinHasher` (same parameters: the same
signatures, bit for bit). It runs in its own session, so a Ctrl-C or a hang-up at the terminal goes
to itkit alone, which cleans up and kills it (it holds nothing worth keeping: also when it does not
answer); if itkit itself is killed, the child ends when its input ends. If the child cannot start or
dies, :meth:`HashingProcess.sign` raises :class:`HashingStopped` and the caller hashes in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import IO

from itkit.lazy import lazy_module

np = lazy_module("numpy")

_HEADER = 16


class HashingStopped(Exception):
    """The child process is gone (or never started); hash in this process."""


def _read_exactly(fh: IO[bytes], n: int) -> bytes:
    data = fh.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


class HashingProcess:
    """A child process that computes signatures and shingle sets of word batches, one at a time."""

    def __init__(self, num_perm: int, ngram: int, seed: int):
        self.num_perm = num_perm
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "itkit.dedup.hashproc", str(num_perm), str(ngram), str(seed)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # the terminal's Ctrl-C and hang-up are itkit's to handle
            )
        except OSError:
            self._proc = None

    def sign(self, data: bytes, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(signatures, set values, set offsets) of a batch's token string of ``count`` texts."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise HashingStopped
        try:
            proc.stdin.write(np.array([count, len(data)], dtype="<u8").tobytes())
            proc.stdin.write(data)
            proc.stdin.flush()
            (values,) = np.frombuffer(_read_exactly(proc.stdout, 8), dtype="<u8").tolist()
            signatures = np.frombuffer(_read_exactly(proc.stdout, count * self.num_perm * 4), dtype="<u4")
            set_values = np.frombuffer(_read_exactly(proc.stdout, values * 4), dtype="<u4")
            offsets = np.frombuffer(_read_exactly(proc.stdout, (count + 1) * 8), dtype="<i8")
        except (OSError, EOFError, ValueError):
            self.close()
            raise HashingStopped from None
        return signatures.reshape(count, self.num_perm), set_values, offsets

    def close(self) -> None:
        """Stop the child at once (it holds nothing worth keeping), also while another thread waits on it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for fh in (proc.stdin, proc.stdout):
            try:
                if fh is not None:
                    fh.close()
            except OSError:  # (unsent bytes to a child that is gone)
                pass


class _Collector:
    """Stands for the shingle sets in the child: keeps the last batch's sorted sets."""

    def __init__(self) -> None:
        self.values = np.zeros(0, dtype=np.uint32)
        self.offsets = np.zeros(1, dtype=np.int64)

    def append(self, shingles: np.ndarray, per_row: np.ndarray) -> None:
        from itkit.dedup.verify import sorted_sets

        self.values, self.offsets = sorted_sets(shingles, per_row)


def serve(num_perm: int, ngram: int, seed: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's loop: a batch in, its signatures and sets out, until the input ends."""
    from itkit.dedup.minhash import MinHasher, WordBatch

    hasher = MinHasher(num_perm, ngram, seed)
    while True:
        header = stdin.read(_HEADER)
        if len(header) < _HEADER:
            return
        count, length = np.frombuffer(header, dtype="<u8").tolist()
        data = _read_exactly(stdin, length)
        sets = _Collector()
        signatures = hasher.signatures(WordBatch(parts=[data], count=count), sets)
        stdout.write(np.array([len(sets.values)], dtype="<u8").tobytes())
        stdout.write(np.ascontiguousarray(signatures, dtype="<u4").tobytes())
        stdout.write(np.ascontiguousarray(sets.values, dtype="<u4").tobytes())
        stdout.write(np.ascontiguousarray(sets.offsets, dtype="<i8").tobytes())
        stdout.flush()


if __name__ == "__main__":
    import signal

    for name in ("SIGINT", "SIGPIPE"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN if name == "SIGINT" else signal.SIG_DFL)
    try:
        serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.stdin.buffer, sys.stdout.buffer)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass

"""The near stage's signatures as texts arrive: :class:`Signer` hashes batches beside the reading.

Texts are collected into batches of :data:`SIGNATURE_CHUNK`; each batch is handed to one hashing
thread, which sends it to a child process (:mod:`itkit.dedup.hashproc`, from the second batch on)
or hashes it itself, and appends its signatures and shingle sets in input order. Past
``spill_after`` signatures (:data:`itkit.dedup.spill.SPILL_AFTER`) both move to disk
(:mod:`itkit.dedup.spill`) and the next ones go there too.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from itkit.dedup.hashproc import HashingProcess, HashingStopped
from itkit.dedup.lsh import SignatureStore, lsh_params
from itkit.dedup.minhash import MinHasher, WordBatch
from itkit.dedup.spill import Spill, SpilledSets, SpilledSignatures, release_free_memory, spill_sets
from itkit.dedup.verify import ShingleSets

SIGNATURE_CHUNK = 8192
"""Distinct texts whose MinHash signatures are computed together (one vectorised batch)."""
HASHING_AHEAD = 2
"""Batches handed to the hashing thread and not finished yet, at most (bounds their memory)."""
HASH_PROCESS_AFTER: int | None = 1
"""Batches hashed in this process before a child process (:mod:`itkit.dedup.hashproc`) hashes the rest
beside the reading (None: never; small runs never start one)."""


class Signer:
    """Signatures and shingle sets of the texts given to :meth:`add`, one row each, in order."""

    def __init__(self, num_perm: int, ngram: int, seed: int, threshold: float, spill_where: str | None, spill_after: int):
        self._params = (num_perm, ngram, seed)
        self._bands = lsh_params(threshold, num_perm)  # fail early on impossible settings
        self._hasher = MinHasher(num_perm, ngram, seed)
        self._store: SignatureStore | SpilledSignatures = SignatureStore(num_perm)
        self._sets: ShingleSets | SpilledSets = ShingleSets()
        self._spill: Spill | None = None
        self._spill_where = spill_where
        self._spill_after = spill_after
        self._pending = WordBatch()
        self._worker: ThreadPoolExecutor | None = None
        self._inflight: deque[Future] = deque()
        self._batches = 0
        self._child: HashingProcess | None = None

    def add(self, compared: str) -> None:
        """The next text (normalised, without its boilerplate)."""
        self._hasher.add(compared, self._pending)
        if len(self._pending) >= SIGNATURE_CHUNK:
            self._submit()

    def finish(self) -> tuple[SignatureStore | SpilledSignatures, ShingleSets | SpilledSets]:
        """Every signature and shingle set (the hashing thread and process are stopped)."""
        self._submit()
        while self._inflight:
            self._inflight.popleft().result()
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._stop_child()
        return self._store, self._sets

    def close(self) -> None:
        """Stop hashing (the child first: a thread waiting on its answer then returns at once); free the spill."""
        self._stop_child()
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        self._stop_child()  # (one the thread may have started meanwhile)
        self._inflight.clear()
        for part in (self._store, self._sets):
            if isinstance(part, (SpilledSignatures, SpilledSets)):
                part.close()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._pending = WordBatch()

    def _submit(self) -> None:
        """Hand the pending texts to the hashing thread (numpy runs there while the next texts are read)."""
        if len(self._pending):
            batch, self._pending = self._pending, WordBatch()
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="itkit-minhash")
            self._batches += 1
            if HASH_PROCESS_AFTER is not None and self._batches == HASH_PROCESS_AFTER + 1:
                self._child = HashingProcess(*self._params)
            self._inflight.append(self._worker.submit(self._sign, batch))
            while len(self._inflight) > HASHING_AHEAD:
                self._inflight.popleft().result()

    def _sign(self, batch: WordBatch) -> None:
        """In the hashing thread (one: it alone uses the hasher, the store and the sets until they are drained)."""
        signatures = None
        if self._child is not None:
            try:
                signatures, values, offsets = self._child.sign(self._hasher.token_string(batch), len(batch))
            except HashingStopped:  # (it could not start, or died): hash here
                self._child = None
            else:
                self._sets.append_sorted(values, offsets)
        if signatures is None:
            signatures = self._hasher.signatures(batch, self._sets)
        self._store.append(signatures)
        if self._spill is None and len(self._store) >= self._spill_after:
            self._start_spilling()

    def _start_spilling(self) -> None:
        """Move the signatures and shingle sets held so far to disk; the next ones go there too."""
        assert isinstance(self._store, SignatureStore) and isinstance(self._sets, ShingleSets)
        spill = self._spill = Spill(self._spill_where)
        bands, rows = self._bands
        spilled = SpilledSignatures(spill, self._params[0], bands, rows)
        for block in self._store.blocks:
            spilled.append(block)
        self._sets = spill_sets(self._sets, spill)
        self._store = spilled
        release_free_memory()

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close()


__all__ = ["HASHING_AHEAD", "HASH_PROCESS_AFTER", "SIGNATURE_CHUNK", "Signer"]

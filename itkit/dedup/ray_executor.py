"""Deduplication on Ray Data (``itkit dedup --executor ray``): the local stages, run past one machine.

:class:`RayDeduplicator` takes texts like :class:`~itkit.dedup.pipeline.Deduplicator` (so the file
runner, its spools, report and atomic writers are the same) and returns the same
:class:`~itkit.dedup.pipeline.Decisions` on the same input:

1. *Shards.* The driver reads the records (it parses, validates and spools them as the local run
   does) and puts their compared texts in the object store in shards of :data:`SHARD_ROWS`.
   ``--ignore-common auto`` detects the boilerplate on the driver from the first distinct texts,
   as the local run does.
2. *Hashing* is a ``map_batches`` over the shards: normalised text, its 128-bit exact key, its
   number key (``--numbers significant``) and, for ``near``, the MinHash signature, the shingle set
   and the LSH band keys, all from the library's own :class:`~itkit.dedup.minhash.MinHasher` and
   :func:`~itkit.dedup.minhash.band_keys`.
3. *Exact*: a shuffle ``groupby`` on the exact key; the group's first record in keep order survives.
4. *Near*: one row per (record, band) grouped by (band, band key, number key) in a shuffle; each
   bucket verifies its pairs (the true Jaccard of the shingle sets,
   :meth:`~itkit.dedup.verify.ShingleSets.jaccard`, for pairs whose MinHash estimate clears the
   local run's floor), and emits each verified pair once (from the first band it shares).
5. *Decision* on the driver: the greedy keep order of :func:`~itkit.dedup.minhash.find_near_duplicates`
   over the verified pairs (a record goes when a record kept before it is a verified duplicate; it
   is matched to the most similar one, ties to the earliest). Only pairs, never texts, come back.

The ROUGE-L stage is not distributed: asking for it with ``--executor ray`` is a usage error.
Ray is imported only here, on first use (``pip install 'itkit[ray]'``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from array import array
from typing import Any, Callable

from itkit.lazy import lazy_module

np = lazy_module("numpy")

from itkit.dedup.common import COMMON_SAMPLE, Boilerplate, detect
from itkit.dedup.exact import ExactGroups, text_key
from itkit.dedup.minhash import MinHasher, WordBatch, band_keys, lsh_params
from itkit.dedup.normalize import normalize_text, number_key
from itkit.dedup.pipeline import Decisions, DedupOptions, Removal
from itkit.dedup.verify import VERIFY_MARGIN, ShingleSets
from itkit.errors import ItkitError, UsageError
from itkit.interrupts import SIGNALS, Terminated

EXECUTORS = ("local", "ray")
RAY_STAGES = ("exact", "near")
"""The stages the Ray executor runs (ROUGE-L's greedy filter compares every kept text: not distributed)."""
SHARD_ROWS = 20_000
"""Records per shard: one object-store block and one hashing task."""
SHUFFLE_STRATEGY = "sort_shuffle_pull_based"
"""Ray Data's shuffle for the groupby stages: plain tasks (the hash shuffle's aggregator actors take
seconds to start and hold CPUs, ~10x slower on small runs)."""
CONNECT_TIMEOUT = 10.0
"""Seconds a cluster address (HOST:PORT) has to accept a connection before the run fails."""
_MASK64 = (1 << 64) - 1
_KEY_MIX = 0x9E3779B97F4A7C15
GROUP_ROWS = 100_000
"""Rows per shuffle partition the exact and near stages aim at (a partition is sorted and scanned in one task)."""
_ENCODING = ("utf-8", "surrogatepass")  # texts travel as bytes: a lone surrogate is not valid Arrow UTF-8


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a usage error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("the ray executor needs Ray Data, which is not installed: pip install 'itkit[ray]'") from None
    return ray


def _cli_name(option: str) -> str:
    return "--" + option.replace("_", "-")


def _cli_setting(option: str, value: Any = True) -> str:
    return _cli_name(option) if value is True else f"{_cli_name(option)} {value}"


def check_executor(
    executor: str,
    options: DedupOptions,
    ray_address: str | None = None,
    name: Callable[[str], str] = _cli_name,
    setting: Callable[..., str] = _cli_setting,
) -> None:
    """Usage errors of an executor choice, before any record is read (``name``/``setting``: how options are spelt)."""
    if executor not in EXECUTORS:
        raise UsageError(f"{name('executor')} must be local or ray, not '{executor}'")
    if executor == "local":
        if ray_address:
            raise UsageError(f"{name('ray_address')} needs {setting('executor', 'ray')}")
        return
    unsupported = [s for s in options.stages if s not in RAY_STAGES]
    if unsupported:
        raise UsageError(
            f"{setting('executor', 'ray')} runs the {' and '.join(RAY_STAGES)} stages, not "
            f"{', '.join(unsupported)}: leave out {', '.join(setting(s) for s in unsupported)} "
            f"or use {setting('executor', 'local')}"
        )
    require_ray()


def make_deduplicator(options: DedupOptions, executor: str = "local", ray_address: str | None = None):
    """A :class:`~itkit.dedup.pipeline.Deduplicator` or a :class:`RayDeduplicator` (same interface)."""
    check_executor(executor, options, ray_address)
    if executor == "ray":
        return RayDeduplicator(options, ray_address)
    from itkit.dedup.pipeline import Deduplicator

    return Deduplicator(options)


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address must accept a connection (Ray itself retries for minutes)."""
    target = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" and other names are Ray's to resolve
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ItkitError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (None: RAY_ADDRESS, else a local Ray); True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}  # ray.init puts its own SIGTERM handler in place
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"at {address}" if address else "(RAY_ADDRESS or a local one)"
        raise ItkitError(f"cannot start or join Ray {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except SystemExit as exc:  # Ray's own handler, while ray.init runs: sys.exit(SIGTERM)
        if exc.code != signal.SIGTERM:
            raise
        ray.shutdown()
        raise Terminated(signal.SIGTERM) from None
    finally:
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)  # itkit's: SIGTERM and SIGHUP end the run like Ctrl-C (exit 143, 129)
    return True


def _quiet(ray: Any) -> None:
    """No Ray Data progress bars or INFO logs on stderr (itkit shows its own progress)."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


# ---------------------------------------------------------------- tasks (run on the Ray workers)


def _hash_shard(batch: dict, options: DedupOptions, boilerplate: Boilerplate, bands: int, rows: int) -> dict:
    """Per record: exact key, number key and, for ``near``, signature, shingle set and band keys."""
    texts = [normalize_text(t.decode(*_ENCODING)) for t in batch["text"].tolist()]
    keys = [text_key(t) for t in texts]
    out = {
        "index": batch["index"],
        "length": batch["length"],
        "k_hi": np.fromiter((k >> 64 for k in keys), dtype=np.uint64, count=len(keys)),
        "k_lo": np.fromiter((k & _MASK64 for k in keys), dtype=np.uint64, count=len(keys)),
    }
    significant = options.numbers == "significant"
    out["label"] = np.fromiter((number_key(t) if significant else 0 for t in texts), dtype=np.uint64, count=len(texts))
    if options.near is not None:
        hasher = MinHasher(options.num_perm, options.ngram, options.seed)
        words = WordBatch()
        for text in texts:
            hasher.add(boilerplate.strip(text), words)
        sets = ShingleSets()
        signatures = hasher.signatures(words, sets)
        out["sig"] = signatures
        out["bands"] = band_keys(signatures, bands, rows)
        out["sh"] = np.array([sets.row(i).tobytes() for i in range(len(texts))], dtype=object)
    return out


def _runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops of the runs of equal ``keys`` (arrays already sorted together)."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    if n:
        new[0] = True
        for k in keys:
            new[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    return starts, np.append(starts[1:], n)


def _part(values: np.ndarray, parts: int) -> np.ndarray:
    """A shuffle partition per (well mixed) 64-bit value."""
    mixed = values * np.uint64(_KEY_MIX)
    return ((mixed >> np.uint64(32)) % np.uint64(parts)).astype(np.int64)


def _exact_part(batch: dict, parts: int) -> dict:
    return {"part": _part(batch["k_lo"] ^ batch["k_hi"], parts), **batch}


def _exact_survivors(group: dict) -> dict:
    """Within one shuffle partition: each exact group's members but its first in keep order, with that first."""
    order = np.lexsort((group["index"], -group["length"], group["k_lo"], group["k_hi"]))
    index = group["index"][order]
    starts, stops = _runs(group["k_hi"][order], group["k_lo"][order])
    first = np.repeat(index[starts], stops - starts)
    gone = index != first
    return {"index": index[gone], "kept": first[gone]}


def _drop(batch: dict, removed: np.ndarray) -> dict:
    """The records of a batch that the previous stage kept (``removed``: sorted indices)."""
    keep = ~np.isin(batch["index"], removed)
    return {name: column[keep] for name, column in batch.items()}


def _band_rows(batch: dict, bands: int, parts: int) -> dict:
    """One row per (record, band): its bucket (band, key, number key), shuffle partition and what verification needs."""
    n = len(batch["index"])
    repeat = np.repeat(np.arange(n), bands)
    band = np.tile(np.arange(bands, dtype=np.int64), n)
    key = batch["bands"].reshape(-1)
    label = batch["label"][repeat]
    return {
        "part": _part(key ^ label ^ band.astype(np.uint64), parts),
        "band": band,
        "key": key,
        "label": label,
        "index": batch["index"][repeat],
        "length": batch["length"][repeat],
        "sig": batch["sig"][repeat],
        "bands": batch["bands"][repeat],
        "sh": batch["sh"][repeat],
    }


_PAIR_COLUMNS = ("later", "earlier", "equal", "jaccard")


def _verify_part(group: dict, threshold: float, floor: float) -> dict:
    """Within one shuffle partition: the verified pairs of every LSH bucket of two or more records."""
    order = np.lexsort((group["index"], -group["length"], group["label"], group["key"], group["band"]))
    starts, stops = _runs(group["band"][order], group["key"][order], group["label"][order])
    shared = stops - starts > 1
    out: dict[str, list] = {c: [] for c in _PAIR_COLUMNS}
    sig, keys, sh = np.asarray(group["sig"]), np.asarray(group["bands"]), group["sh"]
    for lo, hi in zip(starts[shared].tolist(), stops[shared].tolist()):
        members = order[lo:hi]  # in keep order: earlier members are preferred
        _verify_bucket(group["index"][members], sig[members], keys[members], [sh[i] for i in members.tolist()],
                       int(group["band"][members[0]]), threshold, floor, out)
    return {
        "later": np.asarray(out["later"], dtype=np.int64),
        "earlier": np.asarray(out["earlier"], dtype=np.int64),
        "equal": np.asarray(out["equal"], dtype=np.int64),
        "jaccard": np.asarray(out["jaccard"], dtype=np.float64),
    }


def _verify_bucket(index, sig, keys, shingles, band: int, threshold: float, floor: float, out: dict) -> None:
    """Pairs of one bucket (members in keep order) with estimate >= floor and true Jaccard >= threshold.

    A pair that shares an earlier band is left to that band's bucket, so each pair comes out once.
    """
    sets = ShingleSets()
    values = [np.frombuffer(v, dtype=np.uint32) for v in shingles]
    sets.append(np.concatenate(values).astype(np.uint64) << np.uint64(32), np.array([len(v) for v in values]))
    for i in range(len(index) - 1):
        counts = np.count_nonzero(sig[i + 1 :] == sig[i], axis=1)
        fresh = ~(keys[i + 1 :, :band] == keys[i, :band]).any(axis=1)
        for j in (np.flatnonzero(fresh & (counts >= floor)) + i + 1).tolist():
            similarity = sets.jaccard(i, j)
            if similarity >= threshold:
                out["later"].append(int(index[j]))
                out["earlier"].append(int(index[i]))
                out["equal"].append(int(counts[j - i - 1]))
                out["jaccard"].append(similarity)


def _collect(ds: Any, columns: tuple[str, ...]) -> dict:
    """The columns of a (small) result dataset as numpy arrays on the driver."""
    parts: dict[str, list] = {c: [] for c in columns}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for c in columns:
            parts[c].append(np.asarray(batch[c]))
    return {c: np.concatenate(p) if p else np.zeros(0) for c, p in parts.items()}


# ---------------------------------------------------------------- the driver


class RayDeduplicator:
    """:class:`~itkit.dedup.pipeline.Deduplicator`'s interface (add, count, finish, close) on Ray Data.

    ``address``: a Ray cluster (``ray://host:10001``, ``auto``); None: ``RAY_ADDRESS``, else a local
    Ray on this machine. An already initialised Ray (``ray.init`` by the caller) is used as it is.
    """

    def __init__(self, options: DedupOptions = DedupOptions(), address: str | None = None, shard_rows: int = SHARD_ROWS):
        options.validate()
        check_executor("ray", options, address)
        self.options = options
        self.count = 0
        self._ray = require_ray()
        self._started = _connect(self._ray, address)
        _quiet(self._ray)
        self._shard_rows = shard_rows
        self._shards: list[Any] = []
        self._texts: list[bytes] = []
        self._shard_lengths = array("q")
        self._lengths = array("q")
        fuzzy = options.near is not None
        self._sample: list[str] | None = [] if fuzzy and options.ignore_common == "auto" else None
        self._seen = ExactGroups()
        self.boilerplate = Boilerplate()
        if options.near is not None:
            lsh_params(options.near, options.num_perm)  # fail early on impossible settings
        self._finished = False
        self.timings: dict[str, float] = {}
        """Seconds per stage of :meth:`finish` (hash, exact, near: shuffle and verification, decide on the
        driver), the hashed dataset's bytes and the verified pairs (``benchmarks/dedup_ray.py``)."""

    def add(self, text: str, response_length: int = 0) -> int:
        """Add the next text; returns its index."""
        if self._finished:
            raise RuntimeError("cannot add texts after RayDeduplicator.finish()")
        if self._sample is not None:  # the first distinct texts, for the boilerplate detection
            normalized = normalize_text(text)
            if self._seen.add_normalized(normalized)[1]:
                self._sample.append(normalized)
                if len(self._sample) >= COMMON_SAMPLE:
                    self._detect()
        self._texts.append(text.encode(*_ENCODING))
        self._shard_lengths.append(response_length)
        self._lengths.append(response_length if self.options.keep == "longest" else 0)
        self.count += 1
        if len(self._texts) >= self._shard_rows:
            self._put_shard()
        return self.count - 1

    def add_all(self, texts, response_lengths=None) -> None:
        if response_lengths is None:
            for text in texts:
                self.add(text)
        else:
            for text, length in zip(texts, response_lengths, strict=True):
                self.add(text, length)

    def _detect(self) -> None:
        sample, self._sample = self._sample, None
        self._seen = ExactGroups()
        assert sample is not None
        self.boilerplate = detect(sample)

    def _put_shard(self) -> None:
        import pyarrow as pa

        if not self._texts:
            return
        first = self.count - len(self._texts)
        longest = self.options.keep == "longest"
        table = pa.table(
            {
                "index": pa.array(np.arange(first, self.count, dtype=np.int64)),
                "length": pa.array(np.frombuffer(self._shard_lengths, dtype=np.int64) if longest else np.zeros(len(self._texts), dtype=np.int64)),
                "text": pa.array(self._texts, type=pa.binary()),
            }
        )
        self._shards.append(self._ray.put(table))
        self._texts = []
        self._shard_lengths = array("q")

    # -- deciding
    def finish(self) -> Decisions:
        """Run the stages on Ray; the same decisions as the local executor."""
        if self._finished:
            raise RuntimeError("RayDeduplicator.finish() was already called")
        self._finished = True
        if self._sample is not None:
            self._detect()
        self._put_shard()
        opts = self.options
        n = self.count
        alive = np.ones(n, dtype=bool)
        parts: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        removed: dict[str, int] = {}
        entered: dict[str, int] = {}

        def record(stage: str, gone: np.ndarray, kept: np.ndarray, scores: np.ndarray, estimates: np.ndarray | None = None) -> None:
            entered[stage] = int(alive.sum())
            alive[gone] = False
            removed[stage] = len(gone)
            parts.append((stage, gone, kept, scores, estimates))

        if n:
            self._run(record, alive)
        else:
            for stage in opts.stages:
                record(stage, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        self._shards = []
        removals: list[Removal] = []
        for stage, gone, kept, scores, estimates in parts:
            est = [None] * len(gone) if estimates is None else estimates.tolist()
            removals += [Removal(stage, i, k, s, e) for i, k, s, e in zip(gone.tolist(), kept.tolist(), scores.tolist(), est)]
        removals.sort(key=lambda r: r.index)
        return Decisions(alive, removals, removed, entered, self.boilerplate)

    def _run(self, record, alive: np.ndarray) -> None:
        from ray.data.context import ShuffleStrategy

        ctx = self._ray.data.DataContext.get_current()
        strategy, ctx.shuffle_strategy = ctx.shuffle_strategy, ShuffleStrategy(SHUFFLE_STRATEGY)
        try:
            self._stages(record, alive)
        finally:
            ctx.shuffle_strategy = strategy

    def _stages(self, record, alive: np.ndarray) -> None:
        ray, opts = self._ray, self.options
        partitions = max(1, min(len(self._shards) * 4, int(ray.cluster_resources().get("CPU", 1))))
        bands, rows = lsh_params(opts.near, opts.num_perm) if opts.near is not None else (0, 0)
        hashed = ray.data.from_arrow_refs(self._shards).map_batches(
            _hash_shard,
            batch_size=None,
            batch_format="numpy",
            fn_kwargs={"options": opts, "boilerplate": self.boilerplate, "bands": bands, "rows": rows},
        )
        clock = time.perf_counter()
        hashed = hashed.materialize()  # the exact and the near stage both read it
        self.timings["hash"] = time.perf_counter() - clock
        self.timings["hashed_bytes"] = hashed.size_bytes()
        survivors = hashed
        if opts.exact:
            parts = max(partitions, -(-self.count // GROUP_ROWS))
            keyed = hashed.select_columns(["index", "length", "k_hi", "k_lo"]).map_batches(
                _exact_part, batch_size=None, batch_format="numpy", fn_kwargs={"parts": parts}
            )
            groups = keyed.groupby("part", num_partitions=partitions).map_groups(_exact_survivors, batch_format="numpy")
            clock = time.perf_counter()
            found = _collect(groups, ("index", "kept"))
            self.timings["exact"] = time.perf_counter() - clock
            order = np.argsort(found["index"], kind="stable")
            gone = found["index"][order].astype(np.int64)
            record("exact", gone, found["kept"][order].astype(np.int64), np.ones(len(gone)))
            if opts.near is not None and len(gone):
                survivors = hashed.map_batches(_drop, batch_size=None, batch_format="numpy", fn_kwargs={"removed": gone})
        if opts.near is not None:
            floor = round((opts.near - VERIFY_MARGIN) * opts.num_perm, 9)
            parts = max(partitions, -(-int(alive.sum()) * bands // GROUP_ROWS))
            buckets = survivors.map_batches(
                _band_rows, batch_size=None, batch_format="numpy", fn_kwargs={"bands": bands, "parts": parts}
            )
            pairs = buckets.groupby("part", num_partitions=partitions).map_groups(
                _verify_part, batch_format="numpy", fn_kwargs={"threshold": opts.near, "floor": floor}
            )
            clock = time.perf_counter()
            found = _collect(pairs, _PAIR_COLUMNS)
            self.timings["near"] = time.perf_counter() - clock
            clock = time.perf_counter()
            gone, kept, scores, estimates = self._greedy(found, alive)
            self.timings["decide"] = time.perf_counter() - clock
            self.timings["pairs"] = len(found["later"])
            record("near", gone, kept, scores, estimates)

    def _greedy(self, pairs: dict, alive: np.ndarray):
        """The near stage's keep order over the verified pairs (see the module docstring)."""
        n = self.count
        index = np.arange(n, dtype=np.int64)
        lengths = np.frombuffer(self._lengths, dtype=np.int64)
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort((index, -lengths))] = index
        later = pairs["later"].astype(np.int64)
        earlier = pairs["earlier"].astype(np.int64)
        similarity = pairs["jaccard"].astype(np.float64)
        order = np.lexsort((rank[earlier], -similarity, rank[later]))
        near_alive = alive.copy()
        gone: list[int] = []
        kept: list[int] = []
        scores: list[float] = []
        estimates: list[float] = []
        num_perm = self.options.num_perm
        decided = -1
        for k in order.tolist():
            item = int(later[k])
            if item == decided or not near_alive[item]:
                continue
            if near_alive[earlier[k]]:
                decided = item
                near_alive[item] = False
                gone.append(item)
                kept.append(int(earlier[k]))
                scores.append(float(similarity[k]))
                estimates.append(int(pairs["equal"][k]) / num_perm)
        order = np.argsort(np.asarray(gone, dtype=np.int64), kind="stable")
        as_array = lambda values, dtype: np.asarray(values, dtype=dtype)[order]  # noqa: E731
        return as_array(gone, np.int64), as_array(kept, np.int64), as_array(scores, np.float64), as_array(estimates, np.float64)

    def close(self) -> None:
        """Drop the shards; shut down the Ray this object started."""
        self._shards = []
        self._texts = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayDeduplicator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["EXECUTORS", "RAY_STAGES", "RayDeduplicator", "check_executor", "make_deduplicator", "require_ray"]

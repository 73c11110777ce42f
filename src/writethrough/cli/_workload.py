"""The ``bench`` workload: preload, a timed mixed run over threads, a consistency check.

No click or rich here: the command (``bench.py``) parses options and renders;
this module only drives a ``WriteThroughCache`` and measures it.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from array import array
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import writethrough as wt
from writethrough.codecs import encode_key

__all__ = [
    "BenchConfig",
    "BenchResult",
    "Consistency",
    "Distribution",
    "Latency",
    "ProgressHook",
    "check_consistency",
    "key_name",
    "run_bench",
]

#: Keys per ``put_many`` while preloading (one store transaction each where the store can).
PRELOAD_CHUNK = 1000
#: Operations a worker runs between two progress reports (and stop checks).
PROGRESS_EVERY = 1024
#: Mismatching keys named in a failed consistency report.
MISMATCH_EXAMPLES = 10


def key_name(i: int) -> str:
    """The key the benchmark uses for index ``i``."""
    return f"key:{i:08d}"


@dataclass(frozen=True, slots=True)
class Distribution:
    """Which keys the run touches: ``zipf`` with exponent ``s`` (rank r has weight
    1/(r+1)**s over a seeded permutation of the keys), or ``uniform``."""

    name: str
    s: float = 0.0

    def __str__(self) -> str:
        return f"zipf:{self.s:g}" if self.name == "zipf" else "uniform"

    def cum_weights(self, n: int) -> list[float] | None:
        """Cumulative weights over ``n`` ranks for ``random.choices`` (None: uniform)."""
        if self.name == "uniform":
            return None
        s = self.s
        return list(itertools.accumulate((r + 1) ** -s for r in range(n)))


@dataclass(frozen=True, slots=True)
class BenchConfig:
    ops: int
    keys: int
    capacity: int
    policy: str | None
    threads: int
    read_ratio: float
    value_size: int
    distribution: Distribution
    seed: int


class ProgressHook(Protocol):
    """Progress reports, always from the thread that called ``run_bench``."""

    def phase(self, description: str, total: int) -> None: ...

    def advance_to(self, completed: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Latency:
    """One class of operations: how many, and their latency in microseconds."""

    count: int
    mean_us: float | None
    p50_us: float | None
    p99_us: float | None
    max_us: float | None

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        if not samples_ns:
            return cls(0, None, None, None, None)
        ordered = sorted(samples_ns)
        n = len(ordered)

        def rank(p: float) -> float:  # nearest-rank percentile
            return ordered[max(0, math.ceil(p * n) - 1)] / 1000

        return cls(n, sum(ordered) / n / 1000, rank(0.50), rank(0.99), ordered[-1] / 1000)


@dataclass(frozen=True, slots=True)
class Consistency:
    """Every key read through the cache compared with the store read directly."""

    checked: int
    matched: int
    held: int  # keys the cache served from memory during the check
    mismatched: list[str] = field(default_factory=list)  # the first few that differ

    @property
    def ok(self) -> bool:
        return self.matched == self.checked


@dataclass(frozen=True, slots=True)
class BenchResult:
    config: BenchConfig
    policy: str
    preload_seconds: float
    wall_seconds: float
    thread_seconds: float
    ops_done: int
    latency: dict[str, Latency]  # "hit", "miss", "get" (both), "put"
    classified: bool  # hits and misses told apart exactly (one thread; else nearly)
    stats: wt.CacheStats  # the timed run's counters (preload and check excluded)
    entries_held: int
    group_commit: bool = False
    durability: str | None = None  # the store's own words, when a server decides it
    consistency: Consistency | None = None

    @property
    def ops_per_second(self) -> float:
        return self.ops_done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def store_share(self) -> float:
        """Share of the threads' time spent inside store calls (loads and writes)."""
        store = self.stats.load_time + self.stats.write_time
        return store / self.thread_seconds if self.thread_seconds > 0 else 0.0


def stats_delta(after: wt.CacheStats, before: wt.CacheStats) -> wt.CacheStats:
    """The counters of what happened between two snapshots."""
    return after.since(before)


@dataclass(slots=True)
class _Worker:
    """One thread's share of the run, generated before the clock starts."""

    keys: list[str]
    reads: list[bool]
    rng: random.Random
    done: int = 0
    start_ns: int = 0
    end_ns: int = 0
    hit: array[int] = field(default_factory=lambda: array("q"))
    miss: array[int] = field(default_factory=lambda: array("q"))
    get: array[int] = field(default_factory=lambda: array("q"))
    put: array[int] = field(default_factory=lambda: array("q"))
    error: BaseException | None = None


def _preload(
    cache: wt.WriteThroughCache, cfg: BenchConfig, rng: random.Random, progress: ProgressHook | None
) -> None:
    if progress is not None:
        progress.phase("preloading", cfg.keys)
    for lo in range(0, cfg.keys, PRELOAD_CHUNK):
        hi = min(cfg.keys, lo + PRELOAD_CHUNK)
        cache.put_many({key_name(i): rng.randbytes(cfg.value_size) for i in range(lo, hi)})
        if progress is not None:
            progress.advance_to(hi)


def _plan(cfg: BenchConfig, rng: random.Random) -> list[_Worker]:
    """Each thread's keys and read/write choices, drawn from the distribution."""
    population = [key_name(i) for i in range(cfg.keys)]
    rng.shuffle(population)  # rank r -> a random key, so hot keys are spread out
    cum = cfg.distribution.cum_weights(cfg.keys)
    share, extra = divmod(cfg.ops, cfg.threads)
    workers = []
    for t in range(cfg.threads):
        n = share + (1 if t < extra else 0)
        trng = random.Random(rng.getrandbits(64))
        keys = trng.choices(population, cum_weights=cum, k=n)
        ratio = cfg.read_ratio
        draw = trng.random
        reads = [draw() < ratio for _ in range(n)]
        workers.append(_Worker(keys, reads, trng))
    return workers


def _run_worker(
    w: _Worker,
    cache: wt.WriteThroughCache,
    value_size: int,
    barrier: threading.Barrier,
    stop: threading.Event,
) -> None:
    get, put = cache.get, cache.put
    # Whether a key is held in memory, read without counting or reordering it:
    # a get of a held key is a hit. The package's own tool may look inside.
    held = cache._core.data.__contains__
    ns = time.perf_counter_ns
    randbytes = w.rng.randbytes
    hit, miss, gets, puts = w.hit.append, w.miss.append, w.get.append, w.put.append
    keys, reads = w.keys, w.reads
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        return
    try:
        w.start_ns = ns()
        for lo in range(0, len(keys), PROGRESS_EVERY):
            hi = lo + PROGRESS_EVERY
            for key, read in zip(keys[lo:hi], reads[lo:hi], strict=True):
                if read:
                    was_held = held(key)
                    t0 = ns()
                    get(key)
                    elapsed = ns() - t0
                    gets(elapsed)
                    (hit if was_held else miss)(elapsed)
                else:
                    value = randbytes(value_size)
                    t0 = ns()
                    put(key, value)
                    puts(ns() - t0)
            w.done = min(hi, len(keys))
            if stop.is_set():
                break
        w.end_ns = ns()
    except BaseException as exc:
        w.end_ns = ns()
        w.error = exc
        stop.set()


def run_bench(
    cache: wt.WriteThroughCache, cfg: BenchConfig, progress: ProgressHook | None = None
) -> BenchResult:
    """Preload every key, drop them from memory (a cold start), then run the timed mix.

    A get is a hit when its key was held in memory just before it: exact with
    one thread; with several, another thread may evict or load the key in
    between, so a few gets can be classed wrongly (the hit ratio is exact).
    Raises the first error a worker met.
    """
    rng = random.Random(cfg.seed)
    started = time.perf_counter()
    _preload(cache, cfg, rng, progress)
    preload_seconds = time.perf_counter() - started
    cache.evict_all()
    workers = _plan(cfg, rng)
    barrier = threading.Barrier(cfg.threads + 1)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_run_worker,
            args=(w, cache, cfg.value_size, barrier, stop),
            name=f"bench-{i}",
            daemon=True,
        )
        for i, w in enumerate(workers)
    ]
    if progress is not None:
        progress.phase("running", cfg.ops)
    before = cache.stats()
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
                if progress is not None:
                    progress.advance_to(sum(w.done for w in workers))
    except BaseException:
        stop.set()
        barrier.abort()
        for thread in threads:
            thread.join()
        raise
    after = cache.stats()
    for w in workers:
        if w.error is not None:
            raise w.error
    return _result(cache, cfg, workers, stats_delta(after, before), preload_seconds)


def _result(
    cache: wt.WriteThroughCache,
    cfg: BenchConfig,
    workers: list[_Worker],
    stats: wt.CacheStats,
    preload_seconds: float,
) -> BenchResult:
    wall_ns = max(w.end_ns for w in workers) - min(w.start_ns for w in workers)
    thread_ns = sum(w.end_ns - w.start_ns for w in workers)

    def merged(name: str) -> list[int]:
        out: list[int] = []
        for w in workers:
            out.extend(getattr(w, name))
        return out

    latency = {
        "hit": Latency.of(merged("hit")),
        "miss": Latency.of(merged("miss")),
        "get": Latency.of(merged("get")),
        "put": Latency.of(merged("put")),
    }
    return BenchResult(
        config=cfg,
        policy=cache.policy.name,
        preload_seconds=preload_seconds,
        wall_seconds=wall_ns / 1e9,
        thread_seconds=thread_ns / 1e9,
        ops_done=sum(len(w.get) + len(w.put) for w in workers),
        latency=latency,
        classified=cfg.threads == 1,
        stats=stats,
        entries_held=len(cache),
        group_commit=cache.group_commit,
        durability=_durability(cache.backing_store),
    )


def _durability(store: object) -> str | None:
    """What the store says about surviving a crash, when it depends on the server."""
    text = getattr(store, "durability", None)
    return text if isinstance(text, str) else None


def check_consistency(cache: wt.WriteThroughCache, n_keys: int) -> Consistency:
    """Read every key through the cache and straight from its store; all must agree.

    The cache side is one ``get_many``, so every key held in memory is served
    from memory (loads of the others happen after the lookups and cannot evict
    them first); ``held`` counts those. The store side is decoded with the
    cache's codec (byte stores) or compared as it is (``MemoryStore``).
    """
    keys = [key_name(i) for i in range(n_keys)]
    hits_before = cache.stats().cache_hits
    through_cache = cache.get_many(keys)
    held = cache.stats().cache_hits - hits_before
    direct = _read_store(cache, keys)
    missing = object()
    matched = 0
    mismatched: list[str] = []
    for key in keys:
        value = through_cache.get(key, missing)
        if value is not missing and value == direct.get(key, missing):
            matched += 1
        elif len(mismatched) < MISMATCH_EXAMPLES:
            mismatched.append(key)
    return Consistency(checked=len(keys), matched=matched, held=held, mismatched=mismatched)


def _read_store(cache: wt.WriteThroughCache, keys: list[str]) -> dict[str, Any]:
    """``keys`` read directly from the cache's store, decoded like the cache decodes."""
    store = cache.backing_store
    codec = cache.codec
    skeys: list[Hashable] = [encode_key(k) for k in keys] if codec is not None else list(keys)
    load_many = getattr(store, "load_many", None)
    if callable(load_many):
        found: dict[Any, Any] = dict(load_many(skeys))
    else:
        found = {}
        for skey in skeys:
            value = store.load(skey)
            if value is not None:
                found[skey] = value
    out: dict[str, Any] = {}
    for key, skey in zip(keys, skeys, strict=True):
        if skey in found:
            stored = found[skey]
            out[key] = codec.decode(stored) if codec is not None else stored
    return out

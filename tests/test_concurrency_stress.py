"""Rules 10 and 4 under load: exact statistics and the bound, 8 threads hammering a cache
over a store whose writes and loads fail now and then."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Hashable, Iterator
from typing import Any

import pytest
from conftest import FlakyStore, InjectedError

import writethrough as wt

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()


class ChaosStore(FlakyStore):
    """Writes fail before applying when value % 17 == 0, after applying when % 19 == 0;
    about one load in 50 fails."""

    def store(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self.calls["store"] += 1
            if value % 17 == 0:
                raise InjectedError("refused")
            self.data[key] = value
            if value % 19 == 0:
                raise TimeoutError("applied, then timed out")

    def lookup(self, key: Hashable, missing: Any) -> Any:
        if random.random() < 0.02:
            raise InjectedError("load failed")
        return super().lookup(key, missing)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # more interleavings per run
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _hammer(
    cache: wt.WriteThroughCache, n_threads: int, n_ops: int, n_keys: int, spin: bool = False
) -> tuple[dict[str, int], int]:
    """Mixed get/put/invalidate from ``n_threads``; the callers' tallies and the largest
    ``len(cache)`` a monitor thread saw while they ran. A spinning monitor (``spin``)
    is always waiting for the GIL, so it runs whenever a worker is preempted, at any
    bytecode; it also slows the workers a lot, hence fewer operations when spinning."""
    barrier = threading.Barrier(n_threads + 1)
    done = threading.Event()
    tallies: list[dict[str, int]] = []
    seen_len: list[int] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        t = dict.fromkeys(["gets", "load_errors", "puts", "put_errors", "invalidates"], 0)
        barrier.wait()
        for _ in range(n_ops):
            key = rng.randrange(n_keys)
            r = rng.random()
            if r < 0.6:
                t["gets"] += 1
                try:
                    cache.get(key)
                except wt.StoreError:
                    t["load_errors"] += 1
            elif r < 0.9:
                try:
                    cache.put(key, rng.randrange(1, 10_000))
                except wt.StoreError:
                    t["put_errors"] += 1
                else:
                    t["puts"] += 1
            else:
                t["invalidates"] += 1
                cache.invalidate(key)
        tallies.append(t)

    def monitor() -> None:
        barrier.wait()
        biggest = 0
        while not done.is_set():
            biggest = max(biggest, len(cache))
            if not spin:
                time.sleep(0)  # yield the GIL
        seen_len.append(biggest)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    mon = threading.Thread(target=monitor)
    for t in [*threads, mon]:
        t.start()
    for t in threads:
        t.join(100)
    done.set()
    mon.join(10)
    assert len(tallies) == n_threads, "a worker died"
    total = {name: sum(t[name] for t in tallies) for name in tallies[0]}
    return total, seen_len[0]


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fast_switching")
def test_rule10_exact_stats_under_8_threads(driver: str) -> None:
    store = ChaosStore()
    cache = wt.WriteThroughCache(store, capacity=16)
    n_keys = 40
    # each async call crosses to the event loop's thread and back: fewer of them
    n_ops = 20_000 if driver == "sync" else 2_000
    total, _ = _hammer(cache, n_threads=8, n_ops=n_ops, n_keys=n_keys)
    s = cache.stats()
    assert s.requests == total["gets"]
    assert s.cache_hits + s.backing_store_hits + s.misses + s.load_errors == total["gets"]
    assert s.load_errors == total["load_errors"]
    assert s.writes == total["puts"]
    assert s.write_errors == total["put_errors"]
    assert s.invalidations == total["invalidates"]
    assert s.evictions > 0
    assert len(cache) <= 16
    for key in range(n_keys):  # quiescent: memory agrees with the store
        with store.lock:
            stored = store.data.get(key, ABSENT)
        while True:
            try:
                got = cache.get(key, ABSENT)
                break
            except wt.StoreError:  # ChaosStore's random load failures
                continue
        assert got == stored, key


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fast_switching")
def test_rule04_bound_holds_at_every_moment_under_threads() -> None:
    cache = wt.WriteThroughCache(ChaosStore(), capacity=16)
    _, biggest = _hammer(cache, n_threads=8, n_ops=2_500, n_keys=40, spin=True)
    assert len(cache) <= 16
    assert biggest <= 16, f"a monitor thread saw len(cache) == {biggest} > capacity 16"

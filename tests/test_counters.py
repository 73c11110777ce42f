"""The exact counters behind CacheStats, with and without the GIL."""

import threading

import pytest

import writethrough as wt
from writethrough import stats


def _hammer(counter: stats.Counter, threads: int = 8, each: int = 20_000) -> None:
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(each):
            counter.incr()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_counter_is_exact_under_threads() -> None:
    counter = stats.Counter()
    assert counter.value == 0
    _hammer(counter)
    assert counter.value == 8 * 20_000


def test_counter_falls_back_to_a_lock_without_the_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    # A free-threaded interpreter reports no GIL: the counter must not rely on it.
    monkeypatch.setattr(stats, "gil_enabled", lambda: False)
    counter = stats.Counter()
    assert not hasattr(counter, "_count")  # the lock-based path, not itertools.count
    _hammer(counter)
    assert counter.value == 8 * 20_000


def test_cache_stats_without_the_gil_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "gil_enabled", lambda: False)
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    cache.put("k", 1)
    for _ in range(10):
        assert cache.get("k") == 1
    assert cache.get("absent") is None
    s = cache.stats()
    assert (s.cache_hits, s.misses, s.writes, s.requests) == (10, 1, 1, 11)


def test_stats_since_subtracts_field_by_field() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    cache.put("k", 1)
    before = cache.stats()
    cache.get("k")
    cache.get("x")
    delta = cache.stats().since(before)
    assert (delta.cache_hits, delta.misses, delta.writes) == (1, 1, 0)

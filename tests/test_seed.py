"""The seed's ten Rust tests (write_through.rs), ported one for one.

``make_cache(cap)`` is the seed's helper: an unbounded ``MemoryStore`` under a
FIFO cache (the seed evicts in insertion order).
"""

from __future__ import annotations

import pytest

import writethrough as wt


def make_cache(cap: int) -> wt.WriteThroughCache:
    return wt.WriteThroughCache(wt.MemoryStore(), capacity=cap, policy="fifo")


def test_put_and_get_from_cache() -> None:
    cache = make_cache(10)
    cache.put("key1", [1, 2, 3])
    assert cache.get("key1") == [1, 2, 3]
    assert cache.stats().cache_hits == 1


def test_put_persists_to_backing_store() -> None:
    cache = make_cache(10)
    cache.put("k", [9])
    # Peek into the backing store directly.
    assert cache.backing_store.load("k") == [9]


def test_get_fallback_to_backing_store() -> None:
    cache = make_cache(10)
    cache.put("target", 42)

    cache2 = make_cache(2)
    cache2.put("target", 42)
    cache2.put("a", 1)
    cache2.put("b", 2)  # evicts "target" from the cache, not from the store

    assert cache2.get("target") == 42
    assert cache2.stats().backing_store_hits == 1


def test_invalidate_removes_from_both() -> None:
    cache = make_cache(10)
    cache.put("x", [0])
    assert cache.invalidate("x") is True
    assert cache.get("x") is None
    assert cache.backing_store.load("x") is None


def test_invalidate_absent_key_returns_false() -> None:
    cache = make_cache(10)
    assert cache.invalidate("ghost") is False


def test_stats_writes_and_errors() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(max_entries=1), capacity=10, policy="fifo")
    cache.put("first", 1)
    # A second distinct key overflows the store's capacity of 1.
    with pytest.raises(wt.StoreFull):
        cache.put("second", 2)
    s = cache.stats()
    assert s.writes == 1
    assert s.write_errors == 1


def test_miss_when_not_in_either() -> None:
    cache = make_cache(10)
    assert cache.get("nonexistent") is None
    assert cache.stats().misses == 1


def test_capacity_eviction() -> None:
    cache = make_cache(3)
    cache.put("a", [1])
    cache.put("b", [2])
    cache.put("c", [3])
    # "a" is the oldest: evicted from the in-process cache, not from the store.
    cache.put("d", [4])
    assert cache.stats().cache_hits == 0
    assert cache.get("a") == [1]
    assert cache.stats().backing_store_hits == 1


def test_overwrite_existing_key() -> None:
    cache = make_cache(5)
    cache.put("k", [1])
    cache.put("k", [2])  # overwrite
    assert cache.get("k") == [2]
    assert len(cache) == 1


def test_write_failure_does_not_pollute_cache() -> None:
    # max_entries=1: the store accepts exactly one key; the second distinct key fails.
    cache = wt.WriteThroughCache(wt.MemoryStore(max_entries=1), capacity=10, policy="fifo")
    cache.put("key1", 1)
    with pytest.raises(wt.StoreError):
        cache.put("key2", 2)
    # The cache must not hold "key2": the store write failed.
    assert cache.get("key2") is None
    assert len(cache) == 1

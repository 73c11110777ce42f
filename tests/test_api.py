"""Public API beyond the core paths: mapping sugar, evict, get_or_compute, policies, stats."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from conftest import BEFORE, FlakyStore

import writethrough as wt

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()


COUNTERS = (
    "cache_hits",
    "backing_store_hits",
    "misses",
    "writes",
    "write_errors",
    "evictions",
    "invalidations",
    "load_errors",
    "loads_coalesced",
)


def _counters(cache: wt.WriteThroughCache) -> dict[str, int]:
    s = cache.stats()
    return {name: getattr(s, name) for name in COUNTERS}


# ---------------------------------------------------------------- mapping sugar


def test_getitem_setitem_delitem(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache["k"] = "v"
    assert flaky.data == {"k": "v"}
    assert cache["k"] == "v"
    with pytest.raises(KeyError):
        cache["absent"]
    with pytest.raises(wt.KeyNotFound):
        cache["absent"]
    s = cache.stats()
    assert (s.cache_hits, s.misses) == (1, 2)
    del cache["k"]
    assert flaky.data == {}
    assert len(cache) == 0
    with pytest.raises(KeyError):
        del cache["k"]
    assert flaky.calls["remove"] == 2  # the store was asked both times


def test_getitem_of_stored_none_is_not_a_key_error() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    cache["k"] = None
    cache.evict_all()
    assert cache["k"] is None


def test_contains_counts_nothing_and_installs_nothing(flaky: FlakyStore) -> None:
    flaky.data["stored"] = 1
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("cached", 2)
    before = _counters(cache)
    assert "cached" in cache
    assert "stored" in cache
    assert "absent" not in cache
    assert _counters(cache) == before
    assert len(cache) == 1
    assert cache.get("stored") == 1
    assert cache.stats().backing_store_hits == 1  # "in" did not install it
    assert flaky.mutations == 1


# ---------------------------------------------------------------- evict


def test_evict_and_evict_all_touch_memory_only(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put_many({"a": 1, "b": 2, "c": 3})
    mutations = flaky.mutations
    assert cache.evict("a") is True
    assert cache.evict("a") is False
    assert cache.evict("nowhere") is False
    assert len(cache) == 2
    cache.evict_all()
    assert len(cache) == 0
    assert flaky.mutations == mutations
    assert flaky.data == {"a": 1, "b": 2, "c": 3}
    assert cache.stats().invalidations == 0
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    assert cache.stats().backing_store_hits == 3


# ---------------------------------------------------------------- get_or_compute (rule 6)


def test_rule06_get_or_compute_calls_fn_once_and_writes_through(flaky: FlakyStore) -> None:
    calls: list[Hashable] = []

    def fn(key: Hashable) -> str:
        calls.append(key)
        return f"computed-{key}"

    cache = wt.WriteThroughCache(flaky, capacity=4)
    assert cache.get_or_compute("k", fn) == "computed-k"
    assert calls == ["k"]
    assert flaky.data["k"] == "computed-k"
    assert cache.stats().writes == 1
    assert cache.get_or_compute("k", fn) == "computed-k"
    assert cache.get("k") == "computed-k"
    assert calls == ["k"]
    assert cache.stats().cache_hits == 2
    flaky.data["stored"] = "from-store"
    assert cache.get_or_compute("stored", fn) == "from-store"
    assert calls == ["k"]
    assert cache.stats().backing_store_hits == 1


def test_rule06_get_or_compute_fn_error_caches_and_stores_nothing(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)

    def boom(key: Hashable) -> str:
        raise LookupError("fn failed")

    with pytest.raises(LookupError, match="fn failed"):
        cache.get_or_compute("k", boom)
    assert flaky.data == {}
    assert len(cache) == 0
    assert flaky.calls["store"] == 0
    assert cache.get_or_compute("k", lambda k: "second") == "second"  # fn runs again
    assert flaky.data == {"k": "second"}


def test_rule06_get_or_compute_failed_write_caches_nothing(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    flaky.fail_next_store = BEFORE
    with pytest.raises(wt.StoreError):
        cache.get_or_compute("k", lambda k: "v")
    assert len(cache) == 0
    assert flaky.data == {}
    assert cache.stats().write_errors == 1
    assert cache.get("k", ABSENT) is ABSENT


@pytest.mark.timeout(10)
@pytest.mark.parametrize("reenter", ["get", "get_or_compute", "getitem"])
def test_rule06_get_or_compute_reentry_raises(flaky: FlakyStore, reenter: str) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)

    def fn(key: Hashable) -> str:
        if reenter == "get":
            cache.get(key)
        elif reenter == "getitem":
            cache[key]
        else:
            cache.get_or_compute(key, lambda k: "inner")
        return "outer"

    with pytest.raises(wt.ReentrantCompute):
        cache.get_or_compute("k", fn)
    assert flaky.data == {}
    assert len(cache) == 0
    assert cache.get_or_compute("k", lambda k: "after") == "after"  # nothing left locked


@pytest.mark.timeout(10)
def test_rule06_get_or_compute_fn_may_use_other_keys(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("dep", 20)
    assert cache.get_or_compute("k", lambda k: cache.get("dep") + 1) == 21
    assert cache.get_or_compute("k2", lambda k: cache.get_or_compute("k3", lambda _: 5)) == 5
    assert flaky.data == {"dep": 20, "k": 21, "k2": 5, "k3": 5}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("writer", ["put", "invalidate"])
def test_rule06_write_during_compute_stands(flaky: FlakyStore, writer: str) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    entered = threading.Event()
    written = threading.Event()

    def fn(key: Hashable) -> str:
        entered.set()
        assert written.wait(5)
        return "from-fn"

    def write() -> None:
        assert entered.wait(5)
        if writer == "put":
            cache.put("k", "from-put")
        else:
            cache.invalidate("k")
        written.set()

    t = threading.Thread(target=write)
    t.start()
    assert cache.get_or_compute("k", fn) == "from-fn"  # returned to its caller...
    t.join(5)
    expected = "from-put" if writer == "put" else ABSENT
    assert flaky.data.get("k", ABSENT) == expected  # ...but not written
    assert cache.get("k", ABSENT) == expected
    assert cache.stats().writes == (1 if writer == "put" else 0)


# ---------------------------------------------------------------- stats and properties


def test_stats_is_a_frozen_snapshot_with_derived_figures(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("a", 1)
    cache.get("a")
    cache.get("a")
    cache.get("b")
    snap = cache.stats()
    assert isinstance(snap, wt.CacheStats)
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError is one too
        snap.cache_hits = 99  # type: ignore[misc]
    assert set(COUNTERS) <= set(dir(snap))
    cache.get("a")
    assert snap.cache_hits == 2  # a snapshot, not a live view
    assert snap.requests == 3
    assert snap.hit_ratio == pytest.approx(2 / 3)
    assert snap.write_time >= 0.0 and snap.load_time >= 0.0
    assert wt.CacheStats().hit_ratio == 0.0


def test_properties(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=7, max_bytes=1 << 20)
    assert cache.capacity == 7
    assert cache.max_bytes == 1 << 20
    assert cache.backing_store is flaky
    assert wt.WriteThroughCache(wt.MemoryStore()).capacity == 10_000
    assert wt.WriteThroughCache(wt.MemoryStore()).max_bytes is None


def test_write_and_load_time_are_cumulative() -> None:
    class SlowStore(FlakyStore):
        def store(self, key: Hashable, value: Any) -> None:
            time.sleep(0.02)
            super().store(key, value)

        def lookup(self, key: Hashable, missing: Any) -> Any:
            time.sleep(0.02)
            return super().lookup(key, missing)

    cache = wt.WriteThroughCache(SlowStore(), capacity=4)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.evict_all()
    cache.get("a")
    s = cache.stats()
    assert s.write_time >= 0.04
    assert s.load_time >= 0.02


def test_close_closes_the_store_unless_told_not_to() -> None:
    store = wt.MemoryStore()
    wt.WriteThroughCache(store, capacity=4).close()
    with pytest.raises(wt.CacheClosed):
        store.store("k", 1)
    kept = wt.MemoryStore()
    wt.WriteThroughCache(kept, capacity=4, close_store=False).close()
    kept.store("k", 1)
    assert kept.load("k") == 1


def test_the_library_leaves_the_switch_interval_alone() -> None:
    before = sys.getswitchinterval()
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    cache.put("k", 1)
    cache.get("k")
    cache.get_or_compute("x", lambda k: 2)
    assert sys.getswitchinterval() == before


# ---------------------------------------------------------------- ttl (rule 14, no bus)


def test_ttl_bounds_staleness(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4, ttl=0.2)
    assert cache.ttl == 0.2
    cache.put("k", "v1")
    flaky.data["k"] = "v2"  # another process wrote the store directly
    assert cache.get("k") == "v1"  # still fresh: served from memory
    time.sleep(0.3)
    assert cache.get("k") == "v2"  # expired: read from the store
    assert cache.stats().backing_store_hits == 1


@pytest.mark.parametrize("ttl", [0, -1, "5", True])
def test_bad_ttl_is_a_config_error(ttl: Any) -> None:
    with pytest.raises(wt.ConfigError, match="ttl"):
        wt.WriteThroughCache(wt.MemoryStore(), ttl=ttl)


def test_an_empty_cache_is_truthy_and_not_iterable() -> None:
    store = wt.MemoryStore()
    store.store(0, "zero")
    cache = wt.WriteThroughCache(store, capacity=4)
    assert len(cache) == 0
    assert cache  # `cache or default` must not replace an empty cache
    with pytest.raises(TypeError):
        iter(cache)  # never probes cache[0], cache[1], ... against the store
    assert store.read_count == 0

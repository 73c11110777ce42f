"""DESIGN section 3, rules 1-4, 7 and 8, one or more tests each (single-threaded).

Rule 9 (batches) is in test_rules_batches.py; rules 5, 6 and 10 (threads) in
test_concurrency*.py; 11-13 in test_rules_input.py; get_or_compute, mapping
sugar and stats in test_api.py; policies in test_policies.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AFTER, BEFORE, DictBytesStore, FlakyStore, InjectedError, LoadOnlyStore

import writethrough as wt
from writethrough.codecs import encode_key

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()


# ---------------------------------------------------------------- rule 1


def test_rule01_put_is_in_the_store_when_it_returns(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("k", {"v": 1})
    assert flaky.data["k"] == {"v": 1}
    cache.put("k", {"v": 2})
    assert flaky.data["k"] == {"v": 2}
    assert cache.stats().writes == 2


def test_rule01_put_many_is_in_the_store_when_it_returns(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=2)
    cache.put_many({f"k{i}": i for i in range(5)})
    assert flaky.data == {f"k{i}": i for i in range(5)}
    assert len(cache) <= 2


def test_rule01_memory_store_holds_the_callers_objects() -> None:
    store = wt.MemoryStore()
    cache = wt.WriteThroughCache(store, capacity=4)
    value = object()
    cache.put(("a", 1), value)
    assert store.load(("a", 1)) is value
    assert store.write_count == 1


# ---------------------------------------------------------------- rule 2


def test_rule02_failed_write_raises_typed_error_with_cause(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("k", "v1")
    cache.put("other", "o")
    before = cache.stats()
    flaky.fail_next_store = BEFORE
    with pytest.raises(wt.StoreError) as info:
        cache.put("k", "v2")
    assert isinstance(info.value.__cause__, InjectedError)
    after = cache.stats()
    assert after.write_errors == before.write_errors + 1
    assert after.writes == before.writes
    assert flaky.data["k"] == "v1"  # the store refused: unchanged
    assert len(cache) == 1  # "k" dropped locally, "other" kept
    # the next get of "k" reads the store; "other" is still a memory hit
    assert cache.get("k") == "v1"
    assert cache.get("other") == "o"
    s = cache.stats()
    assert s.backing_store_hits == before.backing_store_hits + 1
    assert s.cache_hits == before.cache_hits + 1


def test_rule02_write_applied_then_failed_next_get_reads_the_store(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("k", "v1")
    assert cache.get("k") == "v1"
    flaky.fail_next_store = AFTER  # the store applies v2, then the driver times out
    with pytest.raises(wt.StoreError) as info:
        cache.put("k", "v2")
    assert isinstance(info.value.__cause__, TimeoutError)
    assert flaky.data["k"] == "v2"
    hits = cache.stats().backing_store_hits
    assert cache.get("k") == "v2"
    assert cache.stats().backing_store_hits == hits + 1
    assert cache.stats().writes == 1
    assert cache.stats().write_errors == 1


def test_rule02_failed_write_of_new_key_leaves_nothing(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    flaky.fail_next_store = BEFORE
    with pytest.raises(wt.StoreError):
        cache.put("new", 1)
    assert len(cache) == 0
    assert "new" not in flaky.data
    assert cache.get("new", ABSENT) is ABSENT
    assert cache.stats().misses == 1


def test_rule02_store_full_is_a_store_error() -> None:
    store = wt.MemoryStore(max_entries=1)
    cache = wt.WriteThroughCache(store, capacity=4)
    cache.put("a", 1)
    with pytest.raises(wt.StoreFull) as info:
        cache.put("b", 2)
    assert isinstance(info.value, wt.StoreError)
    assert len(cache) == 1
    assert len(store) == 1
    cache.put("a", 3)  # overwriting a held key is allowed
    assert store.load("a") == 3


# ---------------------------------------------------------------- rule 3


def test_rule03_hit_store_hit_and_miss_are_counted(flaky: FlakyStore) -> None:
    flaky.data["stored"] = "s"
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("cached", "c")

    assert cache.get("cached") == "c"
    s = cache.stats()
    assert (s.cache_hits, s.backing_store_hits, s.misses) == (1, 0, 0)

    assert cache.get("stored") == "s"
    s = cache.stats()
    assert (s.cache_hits, s.backing_store_hits, s.misses) == (1, 1, 0)
    assert len(cache) == 2  # write-allocate
    loads = flaky.calls["lookup"] + flaky.calls["load"]
    assert cache.get("stored") == "s"  # now a memory hit, no store call
    assert flaky.calls["lookup"] + flaky.calls["load"] == loads
    assert cache.stats().cache_hits == 2

    assert cache.get("nowhere", "dflt") == "dflt"
    s = cache.stats()
    assert (s.cache_hits, s.backing_store_hits, s.misses) == (2, 1, 1)
    assert len(cache) == 2  # nothing inserted for a miss
    assert cache.get("nowhere") is None
    assert cache.stats().misses == 2
    assert flaky.calls["lookup"] + flaky.calls["load"] == loads + 2  # asked the store again
    assert cache.stats().requests == 5


def test_rule03_store_with_only_load_none_means_absent() -> None:
    store = LoadOnlyStore()
    store.data["k"] = "v"
    cache = wt.WriteThroughCache(store, capacity=4)
    assert cache.get("k") == "v"
    assert cache.get("absent", "d") == "d"
    s = cache.stats()
    assert (s.backing_store_hits, s.misses) == (1, 1)
    assert len(cache) == 1


# ---------------------------------------------------------------- rule 4


def test_rule04_capacity_bound_and_evicted_keys_served_from_store(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=3)
    for i in range(20):
        cache.put(i, i * 10)
        assert len(cache) <= 3
        assert cache.get(i // 2) == (i // 2) * 10
        assert len(cache) <= 3
    s = cache.stats()
    assert s.evictions > 0
    assert s.invalidations == 0  # evictions are not invalidations
    assert flaky.calls["remove"] == 0  # eviction never touches the store
    for i in range(20):
        assert cache.get(i) == i * 10
        assert len(cache) <= 3


def test_rule04_max_bytes_with_weigher(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=1000, max_bytes=100, weigher=lambda k, v: len(v))
    for i in range(10):
        cache.put(i, "x" * 30)
        assert len(cache) <= 3
        assert cache.bytes_held <= 100
    assert len(cache) == 3
    for i in range(10):
        assert cache.get(i) == "x" * 30
        assert len(cache) <= 3
        assert cache.bytes_held <= 100


def test_rule04_weigher_gets_the_real_key_on_the_load_path(flaky: FlakyStore) -> None:
    seen: list[object] = []

    def weigher(key: Any, value: Any) -> int:
        seen.append(key)
        return len(key) + len(value)

    cache = wt.WriteThroughCache(flaky, capacity=10, max_bytes=100, weigher=weigher)
    cache.put("key", "value")
    cache.evict("key")
    assert cache.get("key") == "value"  # loaded from the store, weighed again
    assert None not in seen, f"weigher called with keys {seen!r}"
    assert set(seen) == {"key"}


def test_rule04_weigher_gets_the_real_key_in_get_or_compute(flaky: FlakyStore) -> None:
    seen: list[object] = []

    def weigher(key: Any, value: Any) -> int:
        seen.append(key)
        return len(key) + len(value)

    cache = wt.WriteThroughCache(flaky, capacity=10, max_bytes=100, weigher=weigher)
    flaky.data["key"] = "value"  # in the store, not cached: get_or_compute loads it
    assert cache.get_or_compute("key", lambda k: "computed") == "value"
    assert None not in seen, f"weigher called with keys {seen!r}"
    assert len(cache) == 1


def test_rule04_weigher_gets_the_real_key_in_get_many_fallback() -> None:
    seen: list[object] = []

    def weigher(key: Any, value: Any) -> int:
        seen.append(key)
        return len(key) + len(value)

    store = LoadOnlyStore()  # no load_many: get_many loads key by key
    store.data.update({"a": "1", "b": "2"})
    cache = wt.WriteThroughCache(store, capacity=10, max_bytes=100, weigher=weigher)
    assert cache.get_many(["a", "b"]) == {"a": "1", "b": "2"}
    assert None not in seen, f"weigher called with keys {seen!r}"
    assert len(cache) == 2


def test_rule04_max_bytes_default_weight_of_bytes_values() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=1000, max_bytes=100)
    for i in range(6):
        cache.put(i, b"y" * 40)
        assert len(cache) <= 2
    assert len(cache) == 2


def test_rule04_max_bytes_weighs_encoded_key_and_value(bytes_store: DictBytesStore) -> None:
    cache = wt.WriteThroughCache(bytes_store, capacity=1000, max_bytes=200)
    cache.put("k00", b"z" * 20)
    ((skey, svalue),) = bytes_store.data.items()
    weight = len(skey) + len(svalue)  # every entry below weighs the same
    per_cache = 200 // weight
    for i in range(1, 30):
        cache.put(f"k{i:02d}", b"z" * 20)
        assert len(cache) <= per_cache
        assert cache.bytes_held <= 200
    assert len(cache) == per_cache
    assert len(bytes_store.data) == 30


def test_rule04_loaded_value_heavier_than_max_bytes_is_returned_not_held(
    flaky: FlakyStore,
) -> None:
    flaky.data["big"] = "x" * 500  # written by someone with a larger budget
    cache = wt.WriteThroughCache(flaky, capacity=10, max_bytes=100, weigher=lambda k, v: len(v))
    cache.put("small", "y" * 10)
    assert cache.get("big") == "x" * 500
    assert cache.bytes_held <= 100
    assert cache.get("small") == "y" * 10
    assert cache.stats().cache_hits == 1


def test_rule04_overwrite_with_heavier_value_stays_within_max_bytes(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=10, max_bytes=100, weigher=lambda k, v: len(v))
    for k in "abcd":
        cache.put(k, "x" * 20)
    assert len(cache) == 4
    cache.put("a", "x" * 70)
    assert cache.bytes_held <= 100
    assert len(cache) <= 2
    assert cache.get("a") == "x" * 70
    for k in "bcd":
        assert cache.get(k) == "x" * 20  # evicted ones come back from the store
        assert cache.bytes_held <= 100


# ---------------------------------------------------------------- rule 7


def test_rule07_invalidate_removes_from_both(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("k", "v")
    assert cache.invalidate("k") is True
    assert "k" not in flaky.data
    assert len(cache) == 0
    assert cache.get("k", ABSENT) is ABSENT
    assert cache.stats().invalidations == 1


def test_rule07_invalidate_asks_the_store_even_when_not_cached(flaky: FlakyStore) -> None:
    flaky.data["only_in_store"] = 1
    cache = wt.WriteThroughCache(flaky, capacity=4)
    assert cache.invalidate("only_in_store") is True
    assert flaky.calls["remove"] == 1
    assert "only_in_store" not in flaky.data
    assert cache.invalidate("nowhere") is False
    assert flaky.calls["remove"] == 2


def test_rule07_failed_removal_raises_and_still_drops_local(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=4)
    cache.put("k", "v")
    cache.put("other", "o")
    flaky.fail_removes.add("k")
    with pytest.raises(wt.StoreError) as info:
        cache.invalidate("k")
    assert isinstance(info.value.__cause__, InjectedError)
    assert len(cache) == 1  # "k" dropped, "other" kept
    assert flaky.data["k"] == "v"  # the store still holds it: the next get reads it
    hits = cache.stats().backing_store_hits
    assert cache.get("k") == "v"
    assert cache.stats().backing_store_hits == hits + 1


# ---------------------------------------------------------------- rule 8


def test_rule08_reads_and_evictions_never_write(flaky: FlakyStore) -> None:
    flaky.data.update({i: i for i in range(10)})
    flaky.data["none"] = None
    cache = wt.WriteThroughCache(flaky, capacity=3)
    for _ in range(2):
        for i in range(12):
            cache.get(i)
        cache.get("none")
    cache.get_many(range(15))
    assert 5 in cache
    assert "nowhere" not in cache
    cache.evict(5)
    cache.evict_all()
    assert flaky.mutations == 0
    assert cache.stats().writes == 0
    assert len(flaky.data) == 11


def test_byte_store_cache_holds_what_the_store_holds(bytes_store: DictBytesStore) -> None:
    """Memory holds the decoded store value, not the caller's object: a hit and a
    store read give the same answer, and mutating the object after put changes
    neither."""
    cache = wt.WriteThroughCache(bytes_store, capacity=4)
    value = {"tags": ("a", "b"), "n": 1}
    cache.put("k", value)
    value["n"] = 2  # the caller keeps using its object
    from_memory = cache.get("k")
    assert from_memory == {"tags": ["a", "b"], "n": 1}  # msgpack: tuples come back as lists
    cache.evict("k")
    assert cache.get("k") == from_memory  # the store's answer is the same
    cache.put_many({"m": ("x",)})
    assert cache.get("m") == ["x"]
    assert cache.get_or_compute("c", lambda k: (k, 1)) == ["c", 1]
    assert cache.get("c") == ["c", 1]
    blob = b"immutable"
    cache.put("b", blob)  # immutable and exact through msgpack: held as given, no decode
    assert cache.get("b") is blob


def test_bytes_codec_holds_the_same_object_without_a_copy(bytes_store: DictBytesStore) -> None:
    cache = wt.WriteThroughCache(bytes_store, capacity=4, codec="bytes")
    blob = b"x" * 1_000_000
    cache.put("media", blob)
    assert cache.get("media") is blob
    assert bytes_store.data[encode_key("media")] is blob

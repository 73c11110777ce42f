"""DESIGN rule 9: batches are per key, not all-or-nothing; get_many loads in one round trip."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AFTER, BEFORE, DictBytesStore, FlakyStore, InjectedError, LoadOnlyStore

import writethrough as wt

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()


def _driver_cause(exc: BaseException) -> BaseException | None:
    """The injected driver exception behind ``exc`` (itself or its ``__cause__``)."""
    if isinstance(exc, OSError):
        return exc
    return exc.__cause__ if isinstance(exc.__cause__, OSError) else None


def test_rule09_put_many_partial_failure_applies_exactly_the_accepted(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=10)
    cache.put("b", "old-b")
    cache.put("d", "old-d")
    flaky.fail_keys.update({"b": BEFORE, "d": AFTER})
    before = cache.stats()
    with pytest.raises(wt.BatchError) as info:
        cache.put_many({k: f"new-{k}" for k in "abcde"})
    err = info.value
    assert isinstance(err, wt.StoreError)
    assert set(err.failed) == {"b", "d"}
    assert all(_driver_cause(e) is not None for e in err.failed.values())
    assert set(err.succeeded) == {"a", "c", "e"}
    s = cache.stats()
    assert s.writes == before.writes + 3
    assert s.write_errors == before.write_errors + 2
    assert len(cache) == 3  # a, c, e held; b and d dropped
    assert flaky.data == {"a": "new-a", "b": "old-b", "c": "new-c", "d": "new-d", "e": "new-e"}
    for key in "ace":
        assert cache.get(key) == f"new-{key}"
    assert cache.stats().cache_hits == before.cache_hits + 3
    assert cache.get("b") == "old-b"
    assert cache.get("d") == "new-d"
    assert cache.stats().backing_store_hits == before.backing_store_hits + 2


class TransactionalStore(FlakyStore):
    """A store whose ``store_many`` is one transaction: all applied, or none and an error."""

    fail_batch = False

    def store_many(self, items: list[tuple[Any, Any]]) -> None:
        with self.lock:
            self.calls["store_many"] += 1
            if self.fail_batch:
                raise InjectedError("transaction rolled back")
            self.data.update(items)


def test_rule09_transactional_batch_failure_reports_every_key() -> None:
    store = TransactionalStore()
    cache = wt.WriteThroughCache(store, capacity=10)
    cache.put("a", 0)
    store.fail_batch = True
    with pytest.raises(wt.BatchError) as info:
        cache.put_many({"a": 1, "b": 2, "c": 3})
    assert set(info.value.failed) == {"a", "b", "c"}
    assert list(info.value.succeeded) == []
    assert store.data == {"a": 0}
    assert len(cache) == 0
    assert cache.get("a") == 0
    store.fail_batch = False
    cache.put_many({"a": 1, "b": 2})
    assert store.calls["store_many"] == 2
    assert store.calls["store"] == 1  # one round trip, not a loop
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}


def test_rule09_invalidate_many_partial_failure(flaky: FlakyStore) -> None:
    cache = wt.WriteThroughCache(flaky, capacity=10)
    cache.put_many({k: k.upper() for k in "abcd"})
    flaky.fail_removes.add("b")
    with pytest.raises(wt.BatchError) as info:
        cache.invalidate_many(["a", "b", "c", "x"])
    assert set(info.value.failed) == {"b"}
    assert set(info.value.succeeded) == {"a", "c", "x"}
    assert flaky.data == {"b": "B", "d": "D"}
    assert len(cache) == 1  # only "d" is held; "b" dropped locally despite the failure
    assert cache.get("b") == "B"
    assert cache.get("a", ABSENT) is ABSENT


def test_rule09_invalidate_many_counts_keys_in_cache_or_store(flaky: FlakyStore) -> None:
    flaky.data["stored"] = 1
    cache = wt.WriteThroughCache(flaky, capacity=10)
    cache.put("cached", 2)
    assert cache.invalidate_many(["cached", "stored", "nowhere"]) == 2
    assert flaky.data == {}
    assert len(cache) == 0


def test_rule09_get_many_returns_found_keys_with_one_bulk_load(flaky: FlakyStore) -> None:
    flaky.data.update({"s1": 1, "s2": 2})
    cache = wt.WriteThroughCache(flaky, capacity=10)
    cache.put("c", 0)
    got = cache.get_many(["c", "s1", "s2", "absent1", "absent2"])
    assert got == {"c": 0, "s1": 1, "s2": 2}
    assert flaky.calls["load_many"] == 1
    assert flaky.calls["lookup"] + flaky.calls["load"] == 0
    s = cache.stats()
    assert (s.cache_hits, s.backing_store_hits, s.misses) == (1, 2, 2)
    assert len(cache) == 3
    assert cache.get_many(["s1", "s2"]) == {"s1": 1, "s2": 2}
    assert flaky.calls["load_many"] == 1  # all memory hits now
    assert cache.stats().cache_hits == 3


def test_rule09_get_many_without_load_many() -> None:
    store = LoadOnlyStore()
    store.data.update({"a": 1, "b": 2})
    cache = wt.WriteThroughCache(store, capacity=10)
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert len(cache) == 2
    assert cache.stats().requests == 3


def test_rule09_get_many_load_failure_is_a_store_error(flaky: FlakyStore) -> None:
    flaky.data["a"] = 1
    cache = wt.WriteThroughCache(flaky, capacity=10)
    flaky.fail_loads = 1
    with pytest.raises(wt.StoreError) as info:
        cache.get_many(["a", "b"])
    assert isinstance(info.value.__cause__, InjectedError)
    assert len(cache) == 0
    assert cache.stats().load_errors == 2
    assert cache.get_many(["a", "b"]) == {"a": 1}


class FailingBytesStore(DictBytesStore):
    """A byte store whose writes and removals fail for the encoded keys in ``bad``."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: set[bytes] = set()

    def store(self, key: bytes, value: bytes) -> None:
        if key in self.bad:
            raise InjectedError("refused")
        super().store(key, value)

    def remove(self, key: bytes) -> bool:
        if key in self.bad:
            raise InjectedError("refused")
        return super().remove(key)


def test_rule09_batch_errors_name_the_callers_keys_for_byte_stores() -> None:
    store = FailingBytesStore()
    cache = wt.WriteThroughCache(store, capacity=10)
    cache.put(("t", 2), "probe")
    (encoded,) = store.data
    store.bad.add(encoded)
    with pytest.raises(wt.BatchError) as info:
        cache.put_many({1: "one", ("t", 2): "two", "s": "three"})
    assert set(info.value.failed) == {("t", 2)}
    assert set(info.value.succeeded) == {1, "s"}
    # the refused key keeps the store's old value
    assert cache.get_many([1, ("t", 2), "s"]) == {1: "one", ("t", 2): "probe", "s": "three"}
    with pytest.raises(wt.BatchError) as info:
        cache.invalidate_many([1, ("t", 2)])
    assert set(info.value.failed) == {("t", 2)}
    assert set(info.value.succeeded) == {1}
    assert cache.get(1) is None

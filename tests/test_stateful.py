"""A hypothesis state machine drives the cache over a store that fails on demand.

Writes fail *before* the store applies them (the store is unchanged) or *after*
(the store changed, then the driver raised); loads fail too. The model is the
exact content the store must hold, plus the statistics the calls must produce.
After every step: the store equals the model, every entry held in memory equals
the store's value, the bound holds and the counters match.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from conftest import AFTER, BEFORE, AsyncFacade, FlakyStore
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import writethrough as wt

KEYS = ["a", "b", "c", "d", "e", "f"]
CAPACITY = 3
ABSENT: Any = object()

keys = st.sampled_from(KEYS)
key_sets = st.lists(keys, min_size=1, max_size=CAPACITY, unique=True)
fail_modes = st.sampled_from([None, None, BEFORE, AFTER])


def _held_entries(cache: wt.WriteThroughCache) -> dict[Any, Any]:
    """The entries held in memory, read without disturbing them (a read-only white-box peek:
    the public API has no way to list entries without counting or reordering them)."""
    return dict(cache._core.data)


class CacheMachine(RuleBasedStateMachine):
    policy: ClassVar[str] = "lru"
    make_cache: ClassVar[Any] = wt.WriteThroughCache

    def __init__(self) -> None:
        super().__init__()
        self.store = FlakyStore()
        self.cache = self.make_cache(self.store, capacity=CAPACITY, policy=self.policy)
        self.model: dict[str, int] = {}
        self.writes = 0
        self.write_errors = 0
        self.requests = 0
        self.fn_calls = 0
        self.counter = 0

    def _value(self) -> int:
        self.counter += 1
        return self.counter

    def _reset_faults(self) -> None:
        self.store.fail_keys.clear()
        self.store.fail_next_store = None
        self.store.fail_loads = 0

    def _write_one(self, key: str, value: int, mode: str | None, call: Any) -> None:
        if mode is not None:
            self.store.fail_keys[key] = mode
        try:
            if mode is None:
                call()
                self.model[key] = value
                self.writes += 1
            else:
                with pytest.raises(wt.StoreError) as info:
                    call()
                assert isinstance(info.value.__cause__, OSError)
                self.write_errors += 1
                if mode == AFTER:
                    self.model[key] = value
        finally:
            self._reset_faults()

    # ------------------------------------------------------------ writes

    @rule(key=keys, mode=fail_modes)
    def put(self, key: str, mode: str | None) -> None:
        value = self._value()
        self._write_one(key, value, mode, lambda: self.cache.put(key, value))

    @rule(batch=key_sets, modes=st.lists(fail_modes, min_size=CAPACITY, max_size=CAPACITY))
    def put_many(self, batch: list[str], modes: list[str | None]) -> None:
        mapping = {k: self._value() for k in batch}
        plan = dict(zip(batch, modes, strict=False))
        for k, mode in plan.items():
            if mode is not None:
                self.store.fail_keys[k] = mode
        failing = {k for k, m in plan.items() if m is not None}
        try:
            if failing:
                with pytest.raises(wt.BatchError) as info:
                    self.cache.put_many(mapping)
                assert set(info.value.failed) == failing
                assert set(info.value.succeeded) == set(batch) - failing
            else:
                self.cache.put_many(mapping)
        finally:
            self._reset_faults()
        held = _held_entries(self.cache)
        for k, v in mapping.items():
            if plan[k] != BEFORE:
                self.model[k] = v
            if plan[k] is None:
                self.writes += 1
                # at most CAPACITY keys, all the newest: FIFO and LRU hold every one
                assert held.get(k, ABSENT) == v, f"accepted key {k!r} not applied"
            else:
                self.write_errors += 1
                assert k not in held, f"failed key {k!r} still held"

    @rule(key=keys)
    def invalidate(self, key: str) -> None:
        was = key in self.model or key in _held_entries(self.cache)
        assert self.cache.invalidate(key) is was
        self.model.pop(key, None)

    @rule(batch=key_sets)
    def invalidate_many(self, batch: list[str]) -> None:
        held = _held_entries(self.cache)
        expected = sum(1 for k in batch if k in self.model or k in held)
        assert self.cache.invalidate_many(batch) == expected
        for k in batch:
            self.model.pop(k, None)

    # ------------------------------------------------------------ reads

    @rule(key=keys, fail_load=st.booleans())
    def get(self, key: str, fail_load: bool) -> None:
        held = key in _held_entries(self.cache)
        self.store.fail_loads = int(fail_load)
        self.requests += 1
        try:
            if fail_load and not held:
                with pytest.raises(wt.StoreError):
                    self.cache.get(key, ABSENT)
            else:
                assert self.cache.get(key, ABSENT) == self.model.get(key, ABSENT)
        finally:
            self._reset_faults()

    @rule(batch=key_sets, fail_load=st.booleans())
    def get_many(self, batch: list[str], fail_load: bool) -> None:
        held = _held_entries(self.cache)
        self.store.fail_loads = int(fail_load)
        self.requests += len(batch)
        try:
            if fail_load and any(k not in held for k in batch):
                with pytest.raises(wt.StoreError):
                    self.cache.get_many(batch)
            else:
                expected = {k: self.model[k] for k in batch if k in self.model}
                assert self.cache.get_many(batch) == expected
        finally:
            self._reset_faults()

    @rule(key=keys)
    def contains(self, key: str) -> None:
        before = self.cache.stats()
        assert (key in self.cache) is (key in self.model)
        after = self.cache.stats()
        assert (after.requests, after.writes) == (before.requests, before.writes)

    @rule(key=keys, mode=fail_modes, fn_fails=st.booleans(), fail_load=st.booleans())
    def get_or_compute(self, key: str, mode: str | None, fn_fails: bool, fail_load: bool) -> None:
        held = key in _held_entries(self.cache)
        value = self._value()
        called: list[str] = []

        def fn(k: str) -> int:
            called.append(k)
            if fn_fails:
                raise ArithmeticError("fn failed")
            return value

        self.requests += 1
        if held or key in self.model:
            self.store.fail_loads = int(fail_load and not held)
            try:
                if fail_load and not held:
                    with pytest.raises(wt.StoreError):
                        self.cache.get_or_compute(key, fn)
                else:
                    assert self.cache.get_or_compute(key, fn) == self.model[key]
            finally:
                self._reset_faults()
            assert called == []
            return
        if fn_fails:
            with pytest.raises(ArithmeticError):
                self.cache.get_or_compute(key, fn)
            assert called == [key]
            return
        self._write_one(key, value, mode, lambda: self.cache.get_or_compute(key, fn))
        assert called == [key]

    # ------------------------------------------------------------ local only

    @rule(key=keys)
    def evict(self, key: str) -> None:
        was = key in _held_entries(self.cache)
        mutations = self.store.mutations
        assert self.cache.evict(key) is was
        assert key not in _held_entries(self.cache)
        assert self.store.mutations == mutations

    @precondition(lambda self: len(self.cache) > 0)
    @rule()
    def evict_all(self) -> None:
        mutations = self.store.mutations
        self.cache.evict_all()
        assert len(self.cache) == 0
        assert self.store.mutations == mutations

    # ------------------------------------------------------------ invariants

    @invariant()
    def store_matches_model(self) -> None:
        assert self.store.data == self.model

    @invariant()
    def held_entries_equal_the_store(self) -> None:
        for key, value in _held_entries(self.cache).items():
            assert key in self.store.data, f"{key!r} held but not stored"
            assert self.store.data[key] == value, f"{key!r} held stale {value!r}"

    @invariant()
    def bounded(self) -> None:
        assert len(self.cache) <= CAPACITY

    @invariant()
    def stats_match(self) -> None:
        s = self.cache.stats()
        assert s.writes == self.writes
        assert s.write_errors == self.write_errors
        assert s.requests == self.requests
        assert s.cache_hits + s.backing_store_hits + s.misses + s.load_errors == self.requests


SETTINGS = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class FifoCacheMachine(CacheMachine):
    policy = "fifo"


class AsyncCacheMachine(CacheMachine):
    """The same machine over the asyncio cache (behind the sync facade)."""

    make_cache = AsyncFacade

    def teardown(self) -> None:
        self.cache.close()  # its worker threads go with it


TestCacheMachineLRU = CacheMachine.TestCase
TestCacheMachineLRU.settings = SETTINGS
TestCacheMachineFIFO = FifoCacheMachine.TestCase
TestCacheMachineFIFO.settings = SETTINGS
TestCacheMachineAsync = AsyncCacheMachine.TestCase
TestCacheMachineAsync.settings = SETTINGS

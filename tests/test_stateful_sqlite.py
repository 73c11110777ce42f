"""A hypothesis state machine over the real SQLite store: the byte-store path.

Keys of several types go through the type-tagged key encoding, values through
msgpack, weights are encoded sizes under a ``max_bytes`` bound. After every step
the store (read back through a second, independent connection) equals the
model, every entry held in memory equals the model, and both bounds hold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import writethrough as wt
from writethrough.codecs import MsgpackCodec, encode_key
from writethrough.stores.sqlite import SQLiteStore

KEYS: list[Any] = ["a", "1", 1, b"1", ("1",), ("t", 2), -7, "ü"]
CAPACITY = 4
MAX_BYTES = 200

keys = st.sampled_from(KEYS)
values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=40),
    st.binary(max_size=60),
    st.lists(st.integers(0, 9), max_size=8),
    st.none(),
)


class SQLiteCacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "m.db"
        self.cache = wt.WriteThroughCache(SQLiteStore(path), capacity=CAPACITY, max_bytes=MAX_BYTES)
        self.reader = SQLiteStore(path)  # an independent connection to the same file
        self.codec = MsgpackCodec()
        self.model: dict[Any, Any] = {}

    def teardown(self) -> None:
        self.cache.close()
        self.reader.close()
        self.dir.cleanup()

    @rule(key=keys, value=values)
    def put(self, key: Any, value: Any) -> None:
        weight = len(encode_key(key)) + len(self.codec.encode(value))
        if weight > MAX_BYTES:
            try:
                self.cache.put(key, value)
            except wt.EntryTooLarge:
                return
            raise AssertionError("an entry heavier than max_bytes was accepted")
        self.cache.put(key, value)
        self.model[key] = value

    @rule(key=keys)
    def get(self, key: Any) -> None:
        assert self.cache.get(key, "<absent>") == self.model.get(key, "<absent>")

    @rule(key=keys)
    def invalidate(self, key: Any) -> None:
        was = key in self.model or key in self.cache._core.data
        assert self.cache.invalidate(key) == was
        self.model.pop(key, None)

    @rule(batch=st.dictionaries(keys, st.integers(0, 1000), max_size=5))
    def put_many(self, batch: dict[Any, int]) -> None:
        self.cache.put_many(batch)
        self.model.update(batch)

    @rule(batch=st.lists(keys, max_size=6))
    def get_many(self, batch: list[Any]) -> None:
        expected = {k: self.model[k] for k in batch if k in self.model}
        assert self.cache.get_many(batch) == expected

    @rule(batch=st.lists(keys, max_size=6))
    def invalidate_many(self, batch: list[Any]) -> None:
        self.cache.invalidate_many(batch)
        for key in batch:
            self.model.pop(key, None)

    @rule(key=keys)
    def evict(self, key: Any) -> None:
        self.cache.evict(key)

    @invariant()
    def store_equals_model(self) -> None:
        stored = self.reader.load_many([encode_key(k) for k in KEYS])
        decoded = {
            k: self.codec.decode(stored[encode_key(k)]) for k in KEYS if encode_key(k) in stored
        }
        assert decoded == self.model

    @invariant()
    def held_entries_equal_the_model(self) -> None:
        for key, value in dict(self.cache._core.data).items():
            assert key in self.model and value == self.model[key], key

    @invariant()
    def bounded(self) -> None:
        assert len(self.cache) <= CAPACITY
        assert self.cache.bytes_held <= MAX_BYTES


SQLiteCacheMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSQLiteCacheMachine = SQLiteCacheMachine.TestCase

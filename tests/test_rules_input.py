"""DESIGN section 3, rules 11-13 and section 3a: bad input, key types, safe codecs."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import DictBytesStore, FlakyStore, LoadOnlyStore

import writethrough as wt

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()


# ---------------------------------------------------------------- rule 11: settings


@pytest.mark.parametrize("capacity", [0, -1, "10", True, 1.5, None])
def test_rule11_bad_capacity_is_a_config_error(capacity: Any) -> None:
    store = wt.MemoryStore()
    with pytest.raises(wt.ConfigError) as info:
        wt.WriteThroughCache(store, capacity=capacity)
    assert isinstance(info.value, ValueError)
    assert "capacity" in str(info.value)
    assert store.write_count == 0


@pytest.mark.parametrize("max_bytes", [0, -1, "1k", True])
def test_rule11_bad_max_bytes_is_a_config_error(max_bytes: Any) -> None:
    with pytest.raises(wt.ConfigError, match="max_bytes"):
        wt.WriteThroughCache(wt.MemoryStore(), max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: wt.WriteThroughCache(wt.MemoryStore(), policy="nope"), "nope"),
        (lambda: wt.WriteThroughCache(DictBytesStore(), codec="nope"), "nope"),
        (lambda: wt.WriteThroughCache(wt.MemoryStore(), codec="json"), "codec"),
        (lambda: wt.WriteThroughCache(DictBytesStore(), codec="pickle"), "secret"),
        (lambda: wt.WriteThroughCache(object()), "store"),
    ],
    ids=[
        "unknown-policy",
        "unknown-codec",
        "codec-on-memory-store",
        "pickle-no-secret",
        "no-store",
    ],
)
def test_rule11_bad_settings_name_the_problem(make: Callable[[], Any], needle: str) -> None:
    with pytest.raises(wt.ConfigError) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert needle in str(info.value)


# ---------------------------------------------------------------- rule 11: calls


@pytest.fixture
def loaded() -> Iterator[tuple[wt.WriteThroughCache, wt.MemoryStore]]:
    store = wt.MemoryStore()
    cache = wt.WriteThroughCache(store, capacity=8, max_bytes=1000)
    cache.put(1, "one")
    cache.put(("t", 1), "tuple")
    yield cache, store


BAD_KEYS = [["list"], 1.5, object(), ("a", 1.5), ("a", ["x"]), {"k": 1}, None, frozenset()]
BAD_KEY_IDS = ["list", "float", "object", "tuple-float", "tuple-list", "dict", "None", "frozenset"]


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _untouched(cache: wt.WriteThroughCache, store: wt.MemoryStore) -> None:
    assert store.write_count == 2
    assert len(store) == 2
    assert len(cache) == 2
    assert cache.stats().writes == 2


CALLS: dict[str, Callable[[wt.WriteThroughCache, Any], object]] = {
    "put": lambda c, k: c.put(k, "v"),
    "get": lambda c, k: c.get(k),
    "getitem": lambda c, k: c[k],
    "invalidate": lambda c, k: c.invalidate(k),
    "get_many": lambda c, k: c.get_many([1, k]),
    "invalidate_many": lambda c, k: c.invalidate_many([1, k]),
    "contains": lambda c, k: k in c,
    "get_or_compute": lambda c, k: c.get_or_compute(k, lambda _: pytest.fail("fn called")),
    "put_many": lambda c, k: c.put_many(_PairMapping([(1, "changed"), (k, "v")])),
}


class _PairMapping(Mapping[Any, Any]):
    """A mapping that can hold unhashable keys (a list of pairs), as a caller might pass."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self._pairs = pairs

    def __getitem__(self, key: Any) -> Any:
        for k, v in self._pairs:
            if k is key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([k for k, _ in self._pairs])

    def __len__(self) -> int:
        return len(self._pairs)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("key", BAD_KEYS, ids=BAD_KEY_IDS)
def test_rule11_bad_key_refused(
    loaded: tuple[wt.WriteThroughCache, wt.MemoryStore], key: Any, call: str
) -> None:
    cache, store = loaded
    with pytest.raises(wt.CodecError):
        CALLS[call](cache, key)
    _untouched(cache, store)
    assert store.read_count == 0  # not even a load reached the store
    assert store.load(1) == "one"


def test_rule11_float_key_equal_to_a_cached_int_key_is_that_key_on_a_hit(
    loaded: tuple[wt.WriteThroughCache, wt.MemoryStore],
) -> None:
    """Settled in docs/design.md: on a hit, a key Python holds equal to a cached key
    is that key (as in any dict; the hit path does no type check). Whenever the
    store would be read or written, a float key is refused before any I/O."""
    cache, store = loaded
    assert cache.get(1.0) == "one"  # 1.0 == 1: the entry of 1, served from memory
    cache.evict(1)
    with pytest.raises(wt.CodecError):
        cache.get(1.0)  # not held: the store is not asked for a float key
    with pytest.raises(wt.CodecError):
        cache[1.0]
    for key in (1.0, ("t", 1.0)):
        with pytest.raises(wt.CodecError):
            cache.put(key, "x")
        with pytest.raises(wt.CodecError):
            cache.invalidate(key)
    assert store.read_count == 0
    assert (store.write_count, len(store)) == (2, 2)


def test_rule11_value_larger_than_max_bytes(
    loaded: tuple[wt.WriteThroughCache, wt.MemoryStore],
) -> None:
    cache, store = loaded
    hits = cache.stats().cache_hits
    with pytest.raises(wt.EntryTooLarge) as info:
        cache.put(1, "x" * 5000)
    assert isinstance(info.value, wt.ConfigError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(wt.EntryTooLarge):
        cache.put_many({"small": "s", "big": "x" * 5000})
    with pytest.raises(wt.EntryTooLarge):
        cache.get_or_compute("big", lambda k: "x" * 5000)
    _untouched(cache, store)
    assert cache.get(1) == "one"  # the old entry is still held
    assert cache.stats().cache_hits == hits + 1


def test_rule11_value_the_codec_cannot_encode(bytes_store: DictBytesStore) -> None:
    cache = wt.WriteThroughCache(bytes_store, capacity=8)
    cache.put("k", "old")
    for bad in (object(), {1, 2}, lambda: None):
        with pytest.raises(wt.CodecError):
            cache.put("k", bad)
        with pytest.raises(wt.CodecError):
            cache.put_many({"other": 1, "k": bad})
        with pytest.raises(wt.CodecError):
            cache.get_or_compute("new", lambda k, bad=bad: bad)
    assert bytes_store.writes == 1
    assert len(bytes_store.data) == 1
    assert cache.get("k") == "old"
    assert cache.stats().cache_hits == 1


def test_rule11_closed_cache_refuses_every_call() -> None:
    store = wt.MemoryStore()
    with wt.WriteThroughCache(store, capacity=8) as cache:
        cache.put("k", "v")
    assert cache.closed
    cache.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lambda: cache.get("k"),
        lambda: cache.get("absent"),
        lambda: cache.put("k", "v2"),
        lambda: cache.invalidate("k"),
        lambda: cache.get_many(["k"]),
        lambda: cache.put_many({"k": "v3"}),
        lambda: cache.invalidate_many(["k"]),
        lambda: cache.get_or_compute("x", lambda k: 1),
        lambda: cache.evict("k"),
        lambda: cache.evict_all(),
        lambda: "k" in cache,
        lambda: cache["k"],
        lambda: cache.__setitem__("k", 1),
        lambda: cache.__delitem__("k"),
    ]
    for call in calls:
        with pytest.raises(wt.CacheClosed):
            call()
    assert store.write_count == 1
    assert len(store) == 1
    assert len(cache) == 0


def test_rule11_config_error_is_a_value_error_and_key_not_found_a_key_error() -> None:
    assert issubclass(wt.ConfigError, ValueError)
    assert issubclass(wt.EntryTooLarge, wt.ConfigError)
    assert issubclass(wt.KeyNotFound, KeyError)
    assert issubclass(wt.BatchError, wt.StoreError)
    assert issubclass(wt.StoreFull, wt.StoreError)
    for exc in (wt.StoreError, wt.CodecError, wt.ConfigError, wt.CacheClosed):
        assert issubclass(exc, wt.WriteThroughError)


# ---------------------------------------------------------------- rule 12 and keys


def _byte_stores(tmp_path: Path) -> list[Any]:
    stores: list[Any] = [DictBytesStore()]
    try:
        from writethrough.stores.sqlite import SQLiteStore
    except ImportError:  # pragma: no cover - the SQLite store is optional here
        return stores
    stores.append(SQLiteStore(tmp_path / "keys.db"))
    return stores


DISTINCT_KEYS: list[Any] = [
    1,
    "1",
    b"1",
    ("1",),
    (1,),
    (b"1",),
    ((1,),),
    ("1", "2"),
    ("12",),
    0,
    -1,
]


def test_rule12_keys_of_different_types_never_collide(tmp_path: Path) -> None:
    for store in _byte_stores(tmp_path):
        cache = wt.WriteThroughCache(store, capacity=100)
        for i, key in enumerate(DISTINCT_KEYS):
            cache.put(key, i)
        cache.evict_all()
        for i, key in enumerate(DISTINCT_KEYS):
            assert cache.get(key) == i, (store, key)
        assert cache.stats().backing_store_hits == len(DISTINCT_KEYS)
        cache.evict_all()
        got = cache.get_many(DISTINCT_KEYS)
        assert got == {key: i for i, key in enumerate(DISTINCT_KEYS)}
        assert all(type(k) is type(key) for k, key in zip(got, DISTINCT_KEYS, strict=True))
        for i, key in enumerate(DISTINCT_KEYS):
            assert cache.invalidate(key) is True
            for later in DISTINCT_KEYS[i + 1 :]:
                assert later in cache, (store, key, later)
        cache.close()


def test_rule12_true_and_1_are_one_key(tmp_path: Path) -> None:
    for store in [wt.MemoryStore(), *_byte_stores(tmp_path)]:
        cache = wt.WriteThroughCache(store, capacity=10)
        cache.put(True, "t")
        cache.evict_all()
        assert cache.get(1) == "t"
        cache.put(1, "one")
        cache.evict_all()
        assert cache.get(True) == "one"
        assert cache.get((True, 0)) is None
        cache.put((1, False), "tuple")
        assert cache.get((True, 0)) == "tuple"
        assert cache.invalidate(True) is True
        assert cache.get(1) is None
        cache.close()


def test_rule12_memory_store_receives_keys_and_values_as_given() -> None:
    store = FlakyStore()
    cache = wt.WriteThroughCache(store, capacity=10)
    value = [1, 2]
    cache.put(("a", b"b", 3), value)
    assert store.data == {("a", b"b", 3): value}
    assert store.data[("a", b"b", 3)] is value


def test_none_value_round_trips(tmp_path: Path) -> None:
    for store in [wt.MemoryStore(), *_byte_stores(tmp_path)]:
        cache = wt.WriteThroughCache(store, capacity=10)
        cache.put("k", None)
        cache.evict_all()
        assert cache.get("k", "dflt") is None
        s = cache.stats()
        assert (s.backing_store_hits, s.misses) == (1, 0)
        assert cache.get("k", "dflt") is None
        assert cache.stats().cache_hits == 1
        assert "k" in cache
        assert cache["k"] is None
        cache.close()


def test_store_with_only_load_treats_none_as_absent() -> None:
    store = LoadOnlyStore()
    store.data["k"] = None
    cache = wt.WriteThroughCache(store, capacity=10)
    assert cache.get("k", "dflt") == "dflt"
    assert cache.stats().misses == 1
    assert len(cache) == 0


# ---------------------------------------------------------------- rule 13


class _Evil:
    """Unpickling this creates a directory: the side effect must never happen."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def _plant(store: DictBytesStore, cache: wt.WriteThroughCache, key: str, raw: bytes) -> None:
    """Overwrite the bytes the store holds for ``key`` (another writer of a shared store)."""
    cache.put(key, "placeholder")
    ((skey, _),) = [(k, v) for k, v in store.data.items()]
    store.data[skey] = raw
    cache.evict_all()


@pytest.mark.parametrize("codec", [None, "json", "msgpack"])
def test_rule13_default_and_safe_codecs_never_unpickle(tmp_path: Path, codec: Any) -> None:
    target = tmp_path / "pwned"
    store = DictBytesStore()
    cache = wt.WriteThroughCache(store, capacity=10, codec=codec)
    _plant(store, cache, "k", pickle.dumps(_Evil(str(target))))
    with pytest.raises(wt.CodecError):
        cache.get("k")
    assert not target.exists()
    assert len(cache) == 0
    assert cache.stats().load_errors == 1


def test_rule13_default_codec_is_not_pickle() -> None:
    cache = wt.WriteThroughCache(DictBytesStore(), capacity=10)
    assert cache.codec is not None
    assert cache.codec.name != "pickle"


@pytest.mark.parametrize("signer", [b"other-secret", None], ids=["wrong-secret", "unsigned"])
def test_rule13_signed_pickle_refuses_foreign_bytes(tmp_path: Path, signer: bytes | None) -> None:
    target = tmp_path / "pwned"
    store = DictBytesStore()
    cache = wt.WriteThroughCache(store, capacity=10, codec="pickle", secret=b"our-secret")
    body = pickle.dumps(_Evil(str(target)))
    raw = body if signer is None else hmac.new(signer, body, hashlib.sha256).digest() + body
    _plant(store, cache, "k", raw)
    with pytest.raises(wt.CodecError):
        cache.get("k")
    assert not target.exists()
    assert len(cache) == 0


def test_rule13_signed_pickle_round_trips_exact_types() -> None:
    store = DictBytesStore()
    cache = wt.WriteThroughCache(store, capacity=10, codec="pickle", secret="s3cret")
    value = {"t": (1, 2), "s": {3}, "b": b"x"}
    cache.put("k", value)
    other = wt.WriteThroughCache(store, capacity=10, codec="pickle", secret="s3cret")
    assert other.get("k") == value
    assert isinstance(other.get("k")["t"], tuple)
    stranger = wt.WriteThroughCache(store, capacity=10, codec="pickle", secret="another")
    with pytest.raises(wt.CodecError):
        stranger.get("k")


@pytest.mark.parametrize(
    ("codec", "raw"),
    [
        (None, b"\xc1"),
        (None, b"\x92\x01"),
        ("msgpack", b"\xda\x00\xffabc"),
        ("json", b"{not json"),
        ("json", b"\xff\xfe"),
        ("str", b"\xff\xfe\xfd"),
    ],
)
def test_rule13_corrupt_bytes_raise_codec_error(codec: Any, raw: bytes) -> None:
    store = DictBytesStore()
    cache = wt.WriteThroughCache(store, capacity=10, codec=codec)
    value = "text" if codec == "str" else "fine"
    _plant(store, cache, "k", raw)
    with pytest.raises(wt.CodecError):
        cache.get("k")
    with pytest.raises(wt.CodecError):
        cache.get_many(["k"])
    assert len(cache) == 0
    cache.put("k", value)  # a good value replaces the corrupt bytes
    cache.evict_all()
    assert cache.get("k") == value


def test_rule13_msgpack_gives_lists_for_tuples(bytes_store: DictBytesStore) -> None:
    cache = wt.WriteThroughCache(bytes_store, capacity=10)
    cache.put("k", {"t": (1, 2), "b": b"\x00"})
    cache.evict_all()
    assert cache.get("k") == {"t": [1, 2], "b": b"\x00"}

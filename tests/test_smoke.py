"""The seed's behaviour in a few lines: a put is stored, a get is served from memory."""

import writethrough as wt


def test_put_then_get_is_a_hit_and_stored() -> None:
    store = wt.MemoryStore()
    cache = wt.WriteThroughCache(store, capacity=4)
    cache.put("k", b"v")
    assert store.load("k") == b"v"
    assert cache.get("k") == b"v"
    assert cache.stats().cache_hits == 1


def test_sqlite_store_is_a_public_name() -> None:
    from writethrough.stores.sqlite import SQLiteStore

    assert wt.SQLiteStore is SQLiteStore
    assert "SQLiteStore" in wt.__all__

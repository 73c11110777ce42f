"""The asyncio cache over the real stores: memory, SQLite, PostgreSQL and Redis.

PostgreSQL and Redis run on their async drivers (``AsyncPostgresStore``,
``AsyncRedisStore``); SQLite runs in worker threads; memory inline. Each test
writes through the async cache and checks the data with a plain sync store over
the same table or prefix, so what the async path wrote is what any reader sees.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (
    PG_PORT,
    PG_URL,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_prefix,
    drop_pg_table,
    require_module,
    require_server,
    unique_name,
)
from test_aio import give_up_on_get_and_put
from test_redis_store import ServerFactory, own_server  # noqa: F401  (a fixture, reused)

import writethrough as wt
from writethrough.aio import SyncStoreAdapter
from writethrough.url import open_store

pytestmark = pytest.mark.timeout(60)

BACKENDS = ["memory", "sqlite", "postgres", "redis"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of its own for each backend; removes what the test made."""
    name = unique_name("wt_aio")
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/aio.db"
    elif request.param == "postgres":
        require_module("psycopg")
        require_server("PostgreSQL", PG_PORT)
        try:
            yield f"{PG_URL}?table={name}"
        finally:
            drop_pg_table(name)
    else:
        require_module("redis")
        require_server("Redis", REDIS_PORT)
        try:
            yield f"{REDIS_URL}?prefix={name}:"
        finally:
            delete_redis_prefix(f"{name}:")


_EXPECTED_STORE = {
    "memory": "SyncStoreAdapter",
    "sqlite": "SyncStoreAdapter",
    "postgres": "AsyncPostgresStore",
    "redis": "AsyncRedisStore",
}


async def test_every_operation_reaches_the_store(url: str) -> None:
    async with await wt.open_async(url, capacity=100) as cache:
        kind = url.split(":")[0].replace("postgresql", "postgres")
        assert type(cache.async_store).__name__ == _EXPECTED_STORE[kind]
        await cache.put("a", {"x": [1, 2]})
        await cache.put_many({"b": "bee", ("t", 1): 3.5, 7: b"\x00bytes"})
        sync = cache.async_store.sync
        if kind != "memory":  # a byte store: read back what the async driver wrote
            assert sync.load(b"sa") is not None and sync.load(b"sb") is not None
        await cache.evict_all()
        got = await cache.get_many(["a", "b", ("t", 1), 7, "missing"])
        assert got == {"a": {"x": [1, 2]}, "b": "bee", ("t", 1): 3.5, 7: b"\x00bytes"}
        assert await cache.get("a") == {"x": [1, 2]}  # now a hit
        assert await cache.contains("b") and not await cache.contains("missing")
        assert await cache.invalidate("a") is True
        assert await cache.invalidate("a") is False
        assert await cache.invalidate_many(["b", ("t", 1), "missing"]) == 2
        await cache.evict_all()
        assert await cache.get_many(["a", "b", ("t", 1), 7]) == {7: b"\x00bytes"}
        assert await cache.get_or_compute("c", lambda k: f"computed-{k}") == "computed-c"
        assert await cache.invalidate("c") and await cache.invalidate(7)
        s = cache.stats()
        assert s.writes == 5 and s.write_errors == 0 and s.load_errors == 0
        assert (s.cache_hits, s.backing_store_hits) == (1, 4 + 1)


async def test_a_write_by_another_client_is_read_after_evict(url: str) -> None:
    async with await wt.open_async(url) as cache:
        if url == "memory://":  # private to the process: the other client shares the object
            other = wt.WriteThroughCache(cache.async_store.sync, close_store=False)
        else:
            other = await asyncio.to_thread(wt.open, url)
        try:
            await asyncio.to_thread(other.put, "k", "from-sync")
            assert await cache.get("k") == "from-sync"
            await cache.put("k", "from-async")
            other.evict("k")
            assert await asyncio.to_thread(other.get, "k") == "from-async"
            await cache.invalidate("k")
        finally:
            await asyncio.to_thread(other.close)


async def test_concurrent_misses_share_loads_and_run_together(url: str) -> None:
    async with await wt.open_async(url, capacity=1000) as cache:
        await cache.put_many({f"k{i}": i for i in range(100)})
        await cache.evict_all()
        same = await asyncio.gather(*(cache.get("k0") for _ in range(100)))
        distinct = await asyncio.gather(*(cache.get(f"k{i}") for i in range(100)))
        assert same == [0] * 100 and distinct == list(range(100))
        s = cache.stats()
        assert s.backing_store_hits + s.cache_hits == 200 and s.misses == 0
        assert s.loads_coalesced + s.cache_hits >= 99 - 1  # k0's 100 callers: about one load
        await cache.invalidate_many([f"k{i}" for i in range(100)])


@pytest.mark.parametrize("kind", ["postgres", "redis"])
async def test_an_unreachable_server_is_store_unavailable(kind: str) -> None:
    require_module("psycopg" if kind == "postgres" else "redis")
    dead = (
        "postgresql://postgres@127.0.0.1:1/test" if kind == "postgres" else "redis://127.0.0.1:1/0"
    )
    with pytest.raises(wt.StoreUnavailable):
        await wt.open_async(dead, connect_timeout=2)


async def test_postgres_errors_map_into_the_store_error_tree(tmp_path: Path) -> None:
    require_module("psycopg")
    require_server("PostgreSQL", PG_PORT)
    name = unique_name("wt_aio")
    try:
        async with await wt.open_async(f"{PG_URL}?table={name}", codec="bytes") as cache:
            with pytest.raises(wt.StoreWriteError):
                # longer than a btree index row allows, even compressed
                await cache.put(secrets.token_hex(8000), b"x")
            await cache.put("k", b"ok")
            assert cache.stats().write_errors == 1 and await cache.get("k") == b"ok"
    finally:
        drop_pg_table(name)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_group_commit_from_one_loop(kind: str, tmp_path: Path) -> None:
    """Puts from many tasks join the sync store's writer queue (threads) and share commits."""
    name = unique_name("wt_aio")
    if kind == "redis":
        require_module("redis")
        require_server("Redis", REDIS_PORT)
        url = f"{REDIS_URL}?prefix={name}:"
    else:
        url = f"sqlite:///{tmp_path}/g.db"
    try:
        async with await wt.open_async(url, group_commit=True) as cache:
            await asyncio.gather(*(cache.put(f"k{i}", i) for i in range(300)))
            s = cache.stats()
            assert s.writes == s.group_commit_members == 300 and s.commits < 300
            await cache.evict_all()
            assert await cache.get_many([f"k{i}" for i in range(300)]) == {
                f"k{i}": i for i in range(300)
            }
    finally:
        if kind == "redis":
            delete_redis_prefix(f"{name}:")


def test_sync_store_adapter_for_a_user_store() -> None:
    """Any object with load/store/remove is adapted (in threads); the rest is refused."""
    adapter = SyncStoreAdapter(wt.MemoryStore(), threads=1)
    assert adapter.supports_group_commit is False
    with pytest.raises(wt.ConfigError, match="not a store"):
        SyncStoreAdapter(object())

    async def main() -> Any:
        cache = wt.AsyncWriteThroughCache(adapter)
        await cache.put("k", 1)
        value = await cache.get("k")
        await cache.aclose()
        return value

    assert asyncio.run(main()) == 1


async def test_close_store_false_leaves_the_given_store_open(url: str) -> None:
    """The async side the cache made is closed with it; the store given stays usable."""
    store = await asyncio.to_thread(open_store, url) if url != "memory://" else wt.MemoryStore()
    try:
        cache = wt.AsyncWriteThroughCache(store, close_store=False)
        await cache.put("k", "v")
        await cache.aclose()
        assert cache.async_store.closed
        other = wt.WriteThroughCache(store, close_store=False)
        assert other.get("k") == "v" and other.invalidate("k")
    finally:
        await asyncio.to_thread(store.close)


async def test_a_timeout_around_a_paused_redis_leaves_a_consistent_cache(
    request: pytest.FixtureRequest,
) -> None:
    """``asyncio.timeout`` around calls to a server that stopped answering (CLIENT PAUSE on
    a redis-server this test owns): the callers get TimeoutError at once, the loop stays
    free, and once the server answers the read (handed over) and the put complete."""
    make: ServerFactory = request.getfixturevalue("own_server")
    server = make()
    async with await wt.open_async(f"{server.url}?prefix=t:") as cache:
        await cache.put("k", "v")
        await cache.evict("k")
        admin = server.client()
        try:
            admin.execute_command("CLIENT", "PAUSE", "500", "ALL")
            started = time.monotonic()
            await give_up_on_get_and_put(cache, 0.1)
            assert time.monotonic() - started < 0.4  # not held until the pause ended
            ticks = 0
            while cache._core.flights or cache._core._gates:  # served when the pause ends
                assert time.monotonic() - started < 10, "never completed"
                await asyncio.sleep(0.005)
                ticks += 1
            assert ticks > 10  # the loop ran meanwhile
            assert admin.get(b"t:sw") is not None  # the put reached the server
            assert cache._core.data == {"k": "v", "w": 1}
            assert await cache.get("k") == "v" and await cache.get("w") == 1
        finally:
            admin.close()


async def test_a_timeout_around_a_blocked_postgres_write_keeps_order() -> None:
    """A put blocked by a row lock another connection holds: ``asyncio.timeout`` gives up
    on it, but the write still runs, in order before a later put of the same key."""
    psycopg = require_module("psycopg")
    require_server("PostgreSQL", PG_PORT)
    name = unique_name("wt_aio")
    try:
        async with await wt.open_async(f"{PG_URL}?table={name}") as cache:
            await cache.put("k", "first")
            locker = await psycopg.AsyncConnection.connect(PG_URL)
            try:
                await locker.execute(f"SELECT * FROM {name} WHERE key = %s FOR UPDATE", (b"sk",))
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await cache.put("k", "second")
                third = asyncio.create_task(cache.put("k", "third"))
                await asyncio.sleep(0.1)
                assert not third.done()  # behind the second put's gate
                assert await cache.get("other") is None  # the loop serves other calls
            finally:
                await locker.rollback()
                await locker.close()
            await asyncio.wait_for(third, 10)
            assert await cache.get("k") == "third"
            await cache.evict("k")
            assert await cache.get("k") == "third"  # the store agrees: "second" came first
            assert cache.stats().writes == 3
    finally:
        drop_pg_table(name)

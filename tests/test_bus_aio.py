"""The asyncio cache on an invalidation bus: the same driver thread, the same messages.

The bus receives on a thread of its own and drops keys under the core's lock, so
an ``AsyncWriteThroughCache`` takes ``bus=`` like the threaded cache. A peer in
another process writes; the async cache here stops serving its old copy.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from servers import REDIS_PORT, REDIS_URL, require_module, require_server, unique_name
from test_bus_peer import Peer

import writethrough as wt
from writethrough.errors import ConfigError


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_server("Redis", REDIS_PORT)
    require_module("redis")


async def _until_received(cache: wt.AsyncWriteThroughCache, count: int) -> None:
    start = time.monotonic()
    while cache.stats().bus_received < count:
        assert time.monotonic() - start < 5.0, cache.stats()
        await asyncio.sleep(0.001)


async def _until_value(cache: wt.AsyncWriteThroughCache, key: str, want: object) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 5.0:
        if await cache.get(key) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.001)
    raise AssertionError(f"{key!r} never became {want!r}: {cache.stats()}")


def test_async_cache_follows_a_peer_and_publishes_its_own_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    channel = unique_name("aio").replace("_", "-")
    # heartbeats of 0.5 s: a bus thread starved on a loaded machine would flush
    peer = Peer(url, bus=REDIS_URL, channel=channel, bus_heartbeat=0.5)

    async def main() -> None:
        async with await wt.open_async(
            url, bus=REDIS_URL, channel=channel, bus_heartbeat=0.5
        ) as cache:
            peer("put", "k", 1)
            await _until_received(cache, 1)  # so the read below is not dropped by it
            assert await cache.get("k") == 1 and cache.stats().cache_hits == 0
            assert await cache.get("k") == 1 and cache.stats().cache_hits == 1  # held now
            peer("put", "k", 2)  # the peer's message drops our copy
            await _until_value(cache, "k", 2)
            assert cache.stats().bus_received >= 2
            await cache.put("k", 3)  # our message drops the peer's copy
            assert peer("wait_for", "k", 3, 5.0) is not None
            await cache.invalidate("k")
            assert peer("wait_for", "k", None, 5.0) is not None
            await cache.put_many({"a": 1, "b": 2})
            assert peer("wait_for", "b", 2, 5.0) is not None
            # each of the three writes was seen by the peer before the next began, so each
            # went in a message of its own (counted once the send returned)
            start = time.monotonic()
            while cache.stats().bus_published < 3 and time.monotonic() - start < 5.0:
                await asyncio.sleep(0.001)
            stats = cache.stats()
            assert stats.bus_published == 3 and stats.bus_flushes == 0, stats

    try:
        asyncio.run(main())
    finally:
        peer.close()


def test_async_cache_refuses_a_bus_over_memory() -> None:
    async def main() -> None:
        with pytest.raises(ConfigError, match="lives in this process only"):
            await wt.open_async("memory://", bus=REDIS_URL)

    asyncio.run(main())

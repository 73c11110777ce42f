"""The asyncio cache: the rules across tasks, cancellation, timeouts, a free event loop.

The sync contract suites (test_rules*.py, test_api.py, test_concurrency.py) run
against ``AsyncWriteThroughCache`` too, through ``conftest.AsyncFacade``; this
file covers what only exists with tasks. Stores here are real (an async store
over a dict, or sync stores run in worker threads); the servers are in
test_aio_servers.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import pytest
from conftest import FlakyStore

import writethrough as wt
from writethrough.aio import AsyncStoreBase, AsyncWriteThroughCache, SyncStoreAdapter

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0


class GatedAsyncStore(AsyncStoreBase):
    """An async object store over a dict whose loads and writes of ``gated`` keys wait
    for ``release`` (an ``asyncio.Event``); counts every call; ``fail_loads`` makes
    the next loads raise."""

    def __init__(self) -> None:
        self.sync = wt.MemoryStore()  # only its flags and name are used
        self.data: dict[Hashable, Any] = {}
        self.calls: Counter[str] = Counter()
        self.gated: set[Hashable] = set()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.fail_loads = 0
        self.gate_batches = False  # load_many waits for release too

    async def _gate(self, key: Hashable) -> None:
        if key in self.gated:
            self.entered.set()
            await self.release.wait()

    async def lookup(self, key: Hashable, missing: Any) -> Any:
        self.calls["load"] += 1
        value = self.data.get(key, missing)  # read, then answer late (a slow reply)
        await self._gate(key)
        if self.fail_loads:
            self.fail_loads -= 1
            raise OSError("injected load failure")
        return value

    async def load(self, key: Hashable) -> Any:
        return await self.lookup(key, None)

    async def store(self, key: Hashable, value: Any) -> None:
        self.calls["store"] += 1
        await self._gate(key)
        self.data[key] = value

    async def remove(self, key: Hashable) -> bool:
        self.calls["remove"] += 1
        await self._gate(key)
        return self.data.pop(key, None) is not None

    async def load_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        self.calls["load_many"] += 1
        keys = list(keys)
        if self.gate_batches:
            await self.release.wait()
        return {k: self.data[k] for k in keys if k in self.data}

    async def store_many(self, items: Sequence[tuple[Hashable, Any]]) -> None:
        self.calls["store_many"] += 1
        self.data.update(items)

    async def remove_many(self, keys: Sequence[Hashable]) -> list[bool]:
        return [self.data.pop(k, None) is not None for k in keys]


async def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


async def _waiting(cache: AsyncWriteThroughCache, key: Hashable, n: int) -> None:
    """Until ``n`` tasks wait on the load of ``key`` (the leader not counted)."""
    await _until(lambda: len(cache._core._waiting_on) >= n, f"{n} waiters on {key!r}")


async def _blocked_read(
    value: Any = "v",
) -> tuple[GatedAsyncStore, AsyncWriteThroughCache, asyncio.Task[Any]]:
    """A cache over a store holding k -> ``value`` whose read of k is in flight, blocked."""
    store = GatedAsyncStore()
    store.data["k"] = value
    store.gated.add("k")
    cache = AsyncWriteThroughCache(store, capacity=8)
    reader = asyncio.create_task(cache.get("k"))
    await asyncio.wait_for(store.entered.wait(), WAIT)
    return store, cache, reader


# ---------------------------------------------------------------- single flight


async def test_single_flight_across_tasks_and_exact_stats() -> None:
    store, cache, first = await _blocked_read()
    tasks = [first, *(asyncio.create_task(cache.get("k")) for _ in range(49))]
    await _waiting(cache, "k", 49)
    store.release.set()
    assert await asyncio.gather(*tasks) == ["v"] * 50
    assert store.calls["load"] == 1
    s = cache.stats()
    assert (s.backing_store_hits, s.loads_coalesced, s.misses, s.cache_hits) == (50, 49, 0, 0)
    assert await cache.get("k") == "v"
    assert cache.stats().cache_hits == 1
    await cache.aclose()


async def test_failed_load_reaches_every_waiter_and_caches_nothing() -> None:
    store, cache, first = await _blocked_read()
    store.fail_loads = 1
    tasks = [first, *(asyncio.create_task(cache.get("k")) for _ in range(9))]
    await _waiting(cache, "k", 9)
    store.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, wt.StoreError) for r in results), results
    assert all(isinstance(r.__cause__, OSError) for r in results)
    assert len(cache) == 0 and cache._core.flights == {}
    s = cache.stats()
    assert (s.load_errors, s.loads_coalesced) == (10, 9)
    assert await cache.get("k") == "v"  # the next load is a fresh one
    await cache.aclose()


async def test_concurrent_misses_of_different_keys_share_batched_reads() -> None:
    store = GatedAsyncStore()
    store.data.update({f"k{i}": i for i in range(100)})
    store.data["gate"] = "g"
    store.gated.add("gate")
    store.gate_batches = True
    cache = AsyncWriteThroughCache(store, capacity=200)
    first = asyncio.create_task(cache.get("gate"))  # a read in flight: later misses batch up
    await asyncio.wait_for(store.entered.wait(), WAIT)
    tasks = [asyncio.create_task(cache.get(f"k{i}")) for i in range(100)]
    await _until(lambda: store.calls["load_many"] >= 1, "the batch read")
    tasks[7].cancel()  # a batched caller that leaves changes nothing for the others
    store.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[7], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(100) if i != 7]
    assert await first == "g"
    assert (store.calls["load"], store.calls["load_many"]) == (1, 1)
    s = cache.stats()
    assert (s.backing_store_hits, s.misses, s.loads_coalesced) == (101, 0, 0)
    assert len(cache) == 101 and cache._core.flights == {}
    await cache.aclose()


# ---------------------------------------------------------------- cancellation


@pytest.mark.parametrize("cancelled", ["waiter", "leader"])
async def test_cancelling_a_caller_never_fails_the_shared_load(cancelled: str) -> None:
    store, cache, leader = await _blocked_read()
    waiters = [asyncio.create_task(cache.get("k")) for _ in range(3)]
    await _waiting(cache, "k", 3)
    victim = leader if cancelled == "leader" else waiters[0]
    victim.cancel()
    await asyncio.sleep(0.01)
    assert victim.cancelled()
    store.release.set()
    others = [t for t in [leader, *waiters] if t is not victim]
    assert await asyncio.gather(*others) == ["v"] * 3
    # a cancelled leader hands the read over: a task of its own loads again for the waiters
    assert store.calls["load"] == (2 if cancelled == "leader" else 1)
    assert cache._core.data == {"k": "v"}  # the load finished and installed
    assert cache._core._waiting_on == {}
    await cache.aclose()


async def test_cancelled_get_many_leader_hands_its_loads_over() -> None:
    store = GatedAsyncStore()
    store.data.update(a=1, b=2)
    cache = AsyncWriteThroughCache(store, capacity=8)
    gate = asyncio.Event()
    original = store.load_many

    async def slow_load_many(keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        await gate.wait()
        return await original(keys)

    store.load_many = slow_load_many  # type: ignore[method-assign]
    leader = asyncio.create_task(cache.get_many(["a", "b"]))
    await _until(lambda: len(cache._core.flights) == 2, "the batch load")
    waiters = [asyncio.create_task(cache.get(k)) for k in ("a", "b")]
    await _waiting(cache, "a/b", 2)
    leader.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*waiters) == [1, 2]
    assert leader.cancelled() and cache._core.flights == {}
    assert cache._core.data == {"a": 1, "b": 2}
    await cache.aclose()


async def test_cancelled_put_still_completes_in_order_and_releases_its_gate() -> None:
    store = GatedAsyncStore()
    store.gated.add("k")
    cache = AsyncWriteThroughCache(store, capacity=8)
    first = asyncio.create_task(cache.put("k", 1))
    await asyncio.wait_for(store.entered.wait(), WAIT)
    second = asyncio.create_task(cache.put("k", 2))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    assert first.cancelled()
    assert not second.done()  # still behind the first write's gate
    store.release.set()
    await asyncio.wait_for(second, WAIT)
    assert store.data["k"] == 2 and await cache.get("k") == 2
    assert cache.stats().writes == 2
    assert cache._core._gates == {}
    await cache.aclose()


async def test_cancelled_get_or_compute_leader_still_computes_for_the_others() -> None:
    store = GatedAsyncStore()
    cache = AsyncWriteThroughCache(store, capacity=8)
    started = asyncio.Event()
    go = asyncio.Event()
    calls = 0

    async def fn(key: Hashable) -> str:
        nonlocal calls
        calls += 1
        started.set()
        await go.wait()
        return f"computed-{key}"

    leader = asyncio.create_task(cache.get_or_compute("k", fn))
    await asyncio.wait_for(started.wait(), WAIT)
    waiter = asyncio.create_task(cache.get_or_compute("k", fn))
    await _waiting(cache, "k", 1)
    leader.cancel()
    go.set()
    assert await waiter == "computed-k"
    assert leader.cancelled() and calls == 1
    assert store.data == {"k": "computed-k"}
    await cache.aclose()


# ---------------------------------------------------------------- races with writes


@pytest.mark.parametrize("writer", ["put", "invalidate"])
async def test_no_stale_install_when_a_write_races_a_load(writer: str) -> None:
    store, cache, reader = await _blocked_read("old")
    store.gated.discard("k")  # the write goes through at once; the load stays blocked
    if writer == "put":
        await cache.put("k", "new")
    else:
        assert await cache.invalidate("k") is True
    store.release.set()
    assert await reader == "old"  # the read began before the write: either value is fair...
    expected = "new" if writer == "put" else None
    assert cache._core.data.get("k") == expected  # ...but the older one is never installed
    assert await cache.get("k") == expected
    await cache.aclose()


# ---------------------------------------------------------------- timeouts, a free loop


class _BlockingStore(FlakyStore):
    """A sync store whose calls block the calling *thread* until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def lookup(self, key: Hashable, missing: Any) -> Any:
        self.entered.set()
        assert self.release.wait(WAIT)
        return super().lookup(key, missing)

    def store(self, key: Hashable, value: Any) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)
        super().store(key, value)


async def give_up_on_get_and_put(cache: AsyncWriteThroughCache, seconds: float) -> None:
    """``get("k")`` and ``put("w", 1)``, each under ``asyncio.timeout``: both must time out."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await cache.get("k")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await cache.put("w", 1)


async def test_timeout_around_a_slow_store_leaves_a_consistent_cache() -> None:
    store = _BlockingStore()
    store.data["k"] = "v"
    cache = AsyncWriteThroughCache(store, capacity=8)
    await give_up_on_get_and_put(cache, 0.05)
    store.release.set()
    await _until(lambda: cache._core.flights == {} and cache._core._gates == {}, "settle")
    assert store.data["w"] == 1  # the put ran to its end, though its caller gave up
    assert cache._core.data == {"k": "v", "w": 1}  # both outcomes reported to the core
    before = cache.stats()
    assert await cache.get("k") == "v" and await cache.get("w") == 1
    assert cache.stats().cache_hits == before.cache_hits + 2
    await cache.aclose()


async def test_a_blocked_store_never_stalls_the_event_loop() -> None:
    store = _BlockingStore()
    store.data["slow"] = "s"
    cache = AsyncWriteThroughCache(store, capacity=8)
    cache._core.install("hot", "h", 0)  # held: a hit needs no store call
    slow = asyncio.create_task(cache.get("slow"))
    await asyncio.to_thread(store.entered.wait, WAIT)
    ticks = 0
    start = time.monotonic()
    while time.monotonic() - start < 0.2:  # the store is blocked all this time...
        assert await cache.get("hot") == "h"  # ...and hits, and other tasks, still run
        await asyncio.sleep(0.001)
        ticks += 1
    assert not slow.done()
    assert ticks > 50, ticks
    store.release.set()
    assert await slow == "s"
    await cache.aclose()


async def test_sqlite_runs_in_worker_threads(tmp_path: Any) -> None:
    loop_thread = threading.get_ident()
    seen: set[int] = set()
    sqlite = wt.SQLiteStore(tmp_path / "a.db")
    original = sqlite.store

    def spy(key: bytes, value: bytes) -> None:
        seen.add(threading.get_ident())
        original(key, value)

    sqlite.store = spy  # type: ignore[method-assign]
    async with AsyncWriteThroughCache(sqlite) as cache:
        assert isinstance(cache.async_store, SyncStoreAdapter)
        await asyncio.gather(*(cache.put(f"k{i}", i) for i in range(20)))
        assert seen and loop_thread not in seen
        await cache.evict_all()
        assert await cache.get_many([f"k{i}" for i in range(20)]) == {f"k{i}": i for i in range(20)}


# ---------------------------------------------------------------- compute


async def test_get_or_compute_with_async_and_sync_functions() -> None:
    store = GatedAsyncStore()
    cache = AsyncWriteThroughCache(store, capacity=8)
    calls = 0

    async def slow_double(key: Hashable) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        assert isinstance(key, int)
        return key * 2

    assert (
        await asyncio.gather(*(cache.get_or_compute(21, slow_double) for _ in range(20)))
        == [42] * 20
    )
    assert calls == 1
    assert await cache.get_or_compute("s", lambda k: f"{k}!") == "s!"
    assert store.data == {21: 42, "s": "s!"}
    s = cache.stats()
    assert (s.misses, s.writes, s.loads_coalesced) == (20 + 1, 2, 19)
    await cache.aclose()


async def test_compute_failure_reaches_every_caller() -> None:
    cache = AsyncWriteThroughCache(GatedAsyncStore(), capacity=8)

    async def boom(key: Hashable) -> Any:
        await asyncio.sleep(0.01)
        raise ValueError("no value")

    results = await asyncio.gather(
        *(cache.get_or_compute("k", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results), results
    assert len(cache) == 0 and cache._core.flights == {}
    await cache.aclose()


async def test_async_compute_reentering_its_key_raises() -> None:
    cache = AsyncWriteThroughCache(GatedAsyncStore(), capacity=8)

    async def reenter(key: Hashable) -> str:
        await cache.get(key)
        return "never"

    with pytest.raises(wt.ReentrantCompute):
        await asyncio.wait_for(cache.get_or_compute("k", reenter), WAIT)
    assert await cache.get_or_compute("k", lambda k: "after") == "after"
    await cache.aclose()


# ---------------------------------------------------------------- group commit, lifecycle


async def test_concurrent_puts_in_one_loop_share_commits(tmp_path: Any) -> None:
    cache = AsyncWriteThroughCache(wt.SQLiteStore(tmp_path / "g.db"), group_commit=True)
    assert cache.group_commit
    await asyncio.gather(*(cache.put(f"k{i}", i) for i in range(200)))
    s = cache.stats()
    assert s.writes == s.group_commit_members == 200
    assert s.commits < 200  # some commits carried several puts
    await cache.evict_all()
    assert await cache.get_many([f"k{i}" for i in range(200)]) == {f"k{i}": i for i in range(200)}
    await cache.aclose()
    check = wt.SQLiteStore(tmp_path / "g.db")
    assert len(check.load_many([b"sk0", b"sk199"])) == 2  # durable, as another reader sees it
    check.close()


async def test_open_async_and_aclose(tmp_path: Any) -> None:
    async with await wt.open_async(f"sqlite:///{tmp_path}/o.db?capacity=5&threads=2") as cache:
        assert isinstance(cache, wt.AsyncWriteThroughCache) and cache.capacity == 5
        await cache.put("k", [1, 2])
        assert await cache.contains("k") and not await cache.contains("nope")
    assert cache.closed
    with pytest.raises(wt.CacheClosed):
        await cache.get("k")
    with pytest.raises(wt.CacheClosed):
        await cache.put("k", 1)
    with pytest.raises(wt.ConfigError, match="capacity"):
        await wt.open_async(f"sqlite:///{tmp_path}/bad.db?capacity=0")
    assert not (tmp_path / "bad.db").exists()  # refused before the store was made
    with pytest.raises(wt.ConfigError, match="threads"):
        await wt.open_async("memory://", threads=-1)
    with pytest.raises(wt.ConfigError, match="unknown option"):
        await wt.open_async("memory://?bogus=1")
    with pytest.raises(wt.ConfigError, match="unknown option"):
        wt.open("memory://", threads=2)  # an asyncio-only option


def test_readme_async_example_runs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    import runpy
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    (example,) = [b for b in blocks if "open_async" in b]
    script = tmp_path / "async_example.py"
    script.write_text(example, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "app.db").exists()

"""The asyncio cache: the hit path against the sync cache, and concurrent misses on servers.

- hit: ``await cache.get(k)`` of ``AsyncWriteThroughCache`` against ``cache.get(k)``
  of ``WriteThroughCache`` over the same keys (10,000 str keys, all held, read in a
  precomputed Zipf(0.99) order of 100,000), each in a loop compiled for it (a
  coroutine's ``for k in keys: await f(k)`` / a function's ``for k in keys: f(k)``).
  Target: async <= 2x sync, as the median of the per-round ratios (each round
  times both back to back, so a load spike on this shared machine hits a pair,
  not one side).
- misses: ``get`` of keys held in the store but not in memory (``evict_all``
  before each measurement), one after another in one task, against 100 tasks
  each reading its share at once (``asyncio.gather``), on PostgreSQL
  (``AsyncPostgresStore``, pool_size=20) and Redis (``AsyncRedisStore``).
  Target: concurrent >= 5x the throughput of sequential.

- puts (group commit, info): 100 tasks each writing its share of 1,000 keys
  to SQLite (``synchronous=full``), with ``group_commit`` off (each put its own
  transaction, in the store's worker threads) and on (puts from the loop join
  the store's writer queue in threads and share commits). No target: what
  grouping gains depends on the disk's fsync time (see the group commit section).

Interleaved rounds (each runs every candidate, alternating which goes first);
the table shows medians of the rounds, and ratios are medians of the per-round
ratios. Servers that do not answer are left out.

    python benchmarks/aio.py [--rounds 15] [--misses 2000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import _util
from hit_path import access_patterns, make_loop

import writethrough as wt

N_KEYS = 10_000
ACCESSES = 100_000
TASKS = 100
TARGET_HIT = 2.0
TARGET_CONCURRENT = 5.0

_ASYNC_LOOP = """
async def loop(f, keys, ns):
    t0 = ns()
    for k in keys:
        await f(k)
    return ns() - t0
"""


async def hit_rounds(rounds: int, seed: int) -> dict[str, list[float]]:
    keys = [f"key:{i}" for i in range(N_KEYS)]
    order = access_patterns(keys, ACCESSES, seed)["zipf:0.99"]
    sync_cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=2 * N_KEYS)
    async_cache = wt.AsyncWriteThroughCache(wt.MemoryStore(), capacity=2 * N_KEYS)
    for k in keys:
        sync_cache.put(k, k)
        await async_cache.put(k, k)
    sync_loop = make_loop()  # the hit-path benchmark's loop
    async_loop: Any = make_loop(_ASYNC_LOOP)  # the same, as a coroutine
    sync_get, async_get = sync_cache.get, async_cache.get
    ns = time.perf_counter_ns
    times: dict[str, list[float]] = {"sync": [], "async": []}
    sync_loop(sync_get, order[:10_000], ns)  # warm both
    await async_loop(async_get, order[:10_000], ns)
    for r in range(rounds):
        gc.collect()
        gc.disable()
        try:
            for name in ("sync", "async") if r % 2 == 0 else ("async", "sync"):
                if name == "sync":
                    elapsed = sync_loop(sync_get, order, ns)
                else:
                    elapsed = await async_loop(async_get, order, ns)
                times[name].append(elapsed / len(order))
        finally:
            gc.enable()
    assert sync_cache.stats().misses == 0 and async_cache.stats().misses == 0
    sync_cache.close()
    await async_cache.aclose()
    return times


async def miss_rounds(url: str, n: int, rounds: int) -> dict[str, list[float]]:
    """Gets per second, sequential vs 100 tasks, over keys evicted from memory."""
    cache = await wt.open_async(url, capacity=2 * n)
    keys = [f"m{i}" for i in range(n)]
    rates: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    try:
        await cache.put_many({k: "x" * 100 for k in keys})

        async def sequential() -> None:
            for k in keys:
                await cache.get(k)

        async def share(part: list[str]) -> None:
            for k in part:
                await cache.get(k)

        async def concurrent() -> None:
            await asyncio.gather(*(share(keys[i::TASKS]) for i in range(TASKS)))

        runs: dict[str, Callable[[], Any]] = {"sequential": sequential, "concurrent": concurrent}
        for r in range(rounds):
            for name in (
                ("sequential", "concurrent") if r % 2 == 0 else ("concurrent", "sequential")
            ):
                await cache.evict_all()
                before = cache.stats()
                t0 = time.perf_counter()
                await runs[name]()
                elapsed = time.perf_counter() - t0
                after = cache.stats()
                loaded = after.backing_store_hits - before.backing_store_hits
                assert loaded + (after.loads_coalesced - before.loads_coalesced) == n, "not misses"
                rates[name].append(n / elapsed)
        await cache.invalidate_many(keys)
    finally:
        await cache.aclose()
    return rates


async def put_rounds(directory: str, n: int, rounds: int) -> dict[str, Any]:
    """Puts per second from 100 tasks into SQLite, group commit off vs on."""
    caches = {
        "off": await wt.open_async(f"sqlite:///{directory}/off.db", group_commit=False),
        "on": await wt.open_async(f"sqlite:///{directory}/on.db", group_commit=True),
    }
    rates: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for r in range(rounds):
            for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
                cache = caches[name]

                async def share(part: list[int], cache: Any = cache, r: int = r) -> None:
                    for i in part:
                        await cache.put(f"p{i}", r)

                t0 = time.perf_counter()
                await asyncio.gather(*(share(list(range(n))[i::TASKS]) for i in range(TASKS)))
                rates[name].append(n / (time.perf_counter() - t0))
        on = caches["on"].stats()
        commits_per_put = on.commits / max(on.group_commit_members, 1)
    finally:
        for cache in caches.values():
            await cache.aclose()
    return {
        "off": _util.median(rates["off"]),
        "on": _util.median(rates["on"]),
        "gain": _util.median([a / b for a, b in zip(rates["on"], rates["off"], strict=True)]),
        "commits_per_put": commits_per_put,
    }


def servers() -> dict[str, str]:
    """Server URLs that answer (a unique table / prefix each)."""
    found: dict[str, str] = {}
    name = f"wt_bench_aio_{uuid.uuid4().hex[:8]}"
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2).close()
        found["PostgreSQL"] = f"postgresql://postgres@127.0.0.1:5432/test?table={name}&pool_size=20"
    except Exception:
        pass
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
        found["Redis"] = f"redis://127.0.0.1:6379/0?prefix={name}:"
    except Exception:
        pass
    return found


def drop_table(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg
        from psycopg import sql

        table = url.split("table=")[1].split("&")[0]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


async def run(rounds: int, misses: int, seed: int) -> dict[str, Any]:
    hits = await hit_rounds(rounds, seed)
    result: dict[str, Any] = {
        "hit_ns": {k: _util.median(v) for k, v in hits.items()},
        "hit_ratio": _util.median(
            [a / s for a, s in zip(hits["async"], hits["sync"], strict=True)]
        ),
        "misses": {},
        "rounds": rounds,
        "miss_count": misses,
    }
    with tempfile.TemporaryDirectory(dir=os.environ.get("WT_BENCH_DIR")) as tmp:
        result["puts"] = await put_rounds(tmp, 1000, max(3, rounds // 3))
    for name, url in servers().items():
        try:
            rates = await miss_rounds(url, misses, rounds)
        finally:
            drop_table(url)
        result["misses"][name] = {k: _util.median(v) for k, v in rates.items()}
        result["misses"][name]["gain"] = _util.median(
            [c / q for c, q in zip(rates["concurrent"], rates["sequential"], strict=True)]
        )
    return result


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(
        f"hits: {N_KEYS:,} keys, {ACCESSES:,} Zipf(0.99) gets per round; misses: "
        f"{result['miss_count']:,} keys per round, {TASKS} tasks; "
        f"median of {result['rounds']} interleaved rounds\n"
    )
    hit = result["hit_ns"]
    rows = [
        ["get hit: WriteThroughCache.get", f"{hit['sync']:.1f} ns", "1.00x"],
        [
            "get hit: await AsyncWriteThroughCache.get",
            f"{hit['async']:.1f} ns",
            f"{result['hit_ratio']:.2f}x",
        ],
    ]
    for name, rates in result["misses"].items():
        rows.append([f"{name} get-miss: one task", f"{rates['sequential']:,.0f}/s", "1.00x"])
        rows.append(
            [
                f"{name} get-miss: {TASKS} tasks",
                f"{rates['concurrent']:,.0f}/s",
                f"{rates['gain']:.2f}x",
            ]
        )
    puts = result["puts"]
    rows.append(["SQLite put, 100 tasks: group commit off", f"{puts['off']:,.0f}/s", "1.00x"])
    rows.append(
        [
            "SQLite put, 100 tasks: group commit on (info)",
            f"{puts['on']:,.0f}/s",
            f"{puts['gain']:.2f}x",
        ]
    )
    print(_util.table(["measurement", "median", "ratio"], rows))
    print(f"group commit on: {puts['commits_per_put']:.3f} commits per put")
    print()
    hit_ratio = result["hit_ratio"]
    met = "met" if hit_ratio <= TARGET_HIT else "NOT met"
    print(f"target hit: async get {hit_ratio:.2f}x sync get (target <= {TARGET_HIT:g}x: {met})")
    for name, rates in result["misses"].items():
        gain = rates["gain"]
        met = "met" if gain >= TARGET_CONCURRENT else "NOT met"
        print(
            f"target {name}: {TASKS} tasks {gain:.2f}x one task "
            f"(target >= {TARGET_CONCURRENT:g}x: {met})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--misses", type=int, default=2000, help="keys per miss round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    env = _util.environment(["writethrough", "psycopg", "psycopg-pool", "redis", "hiredis"])
    result = asyncio.run(run(args.rounds, args.misses, args.seed))
    _util.emit(args.json, env, result, report)


if __name__ == "__main__":
    main()

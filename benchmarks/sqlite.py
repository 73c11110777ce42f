"""The store path over SQLite: the cache's put and get-miss against the raw sqlite3 calls.

The baseline is what a program would do without the cache (DESIGN P2): the same
table (``key BLOB PRIMARY KEY, value BLOB NOT NULL`` WITHOUT ROWID), the same
pragmas (WAL, synchronous=FULL, busy_timeout), autocommit, the same upsert, the
key encoded with ``writethrough.codecs.encode_key`` and the value with msgpack
exactly as the cache's codec calls it. Both sides use their own database file in
one temporary directory (same disk).

- put: ``cache.put(k, v)`` vs ``INSERT .. ON CONFLICT(key) DO UPDATE`` (each its
  own committed, fsynced transaction) of ``encode_key(k)``, ``packb(v)``.
- get-miss: a cache of capacity 1 reading keys in a cycle, so every get misses,
  loads from the store and evicts the previous key; vs ``SELECT value .. WHERE
  key = ?`` + ``fetchone`` + msgpack decode.

100-byte values; interleaved rounds (each runs both sides, alternating which
goes first), median of the per-round means. Targets: put <= 1.10x raw,
get-miss <= 1.15x raw. Rows marked "info" are not part of a target.

    python benchmarks/sqlite.py [--rounds 7] [--puts 2000] [--gets 5000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from typing import Any

import _util
import msgpack  # type: ignore[import-untyped]

import writethrough as wt
from writethrough.codecs import encode_key
from writethrough.stores.sqlite import SQLiteStore

VALUE_SIZE = 100
N_KEYS = 5_000
TARGETS = {"put": 1.10, "get-miss": 1.15}
TABLE = "writethrough"
UPSERT = (
    f"INSERT INTO {TABLE} (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
SELECT = f"SELECT value FROM {TABLE} WHERE key = ?"

Op = Callable[[list[bytes]], int]  # one round over fresh put values; returns the elapsed ns


def raw_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        "(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
    )
    return conn


def build(tmp: str, keys: list[str], values: list[bytes]) -> dict[str, Any]:
    """Both databases preloaded with the same keys and values, and the timed operations."""
    put_cache = wt.WriteThroughCache(SQLiteStore(os.path.join(tmp, "cache.db")))
    # a second cache over the same file, capacity 1: every get in a key cycle misses
    miss_cache = wt.WriteThroughCache(SQLiteStore(os.path.join(tmp, "cache.db")), capacity=1)
    # the same with the LRU policy (info: what the default policy's install costs a miss)
    miss_lru = wt.WriteThroughCache(
        SQLiteStore(os.path.join(tmp, "cache.db")), capacity=1, policy="lru"
    )
    for lo in range(0, len(keys), 1000):
        put_cache.put_many(dict(zip(keys[lo : lo + 1000], values[lo : lo + 1000], strict=True)))
    put_cache.evict_all()

    conn = raw_connection(os.path.join(tmp, "raw.db"))
    packb = msgpack.Packer(use_bin_type=True, strict_types=False).pack  # as MsgpackCodec
    unpackb = msgpack.unpackb
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(UPSERT, [(encode_key(k), packb(v)) for k, v in zip(keys, values, strict=True)])
    conn.execute("COMMIT")
    return {
        "put_cache": put_cache,
        "miss_cache": miss_cache,
        "miss_lru": miss_lru,
        "conn": conn,
        "packb": packb,
        "unpackb": unpackb,
    }


def make_ops(
    parts: dict[str, Any], keys: list[str], n_puts: int, n_gets: int
) -> dict[str, dict[str, Op]]:
    put_keys = [keys[i % len(keys)] for i in range(n_puts)]
    get_keys = [keys[i % len(keys)] for i in range(n_gets)]
    ns = time.perf_counter_ns
    conn: sqlite3.Connection = parts["conn"]
    execute = conn.execute
    packb, unpackb = parts["packb"], parts["unpackb"]
    cache_put = parts["put_cache"].put
    cache_get = parts["miss_cache"].get
    lru_get = parts["miss_lru"].get

    def wt_put(put_values: list[bytes]) -> int:
        t0 = ns()
        for k, v in zip(put_keys, put_values, strict=True):
            cache_put(k, v)
        return ns() - t0

    def raw_put(put_values: list[bytes]) -> int:
        t0 = ns()
        for k, v in zip(put_keys, put_values, strict=True):
            execute(UPSERT, (encode_key(k), packb(v)))
        return ns() - t0

    def raw_put_bare(
        put_values: list[bytes],
    ) -> int:  # info: the same write with the encoding done beforehand
        pairs = [(encode_key(k), packb(v)) for k, v in zip(put_keys, put_values, strict=True)]
        t0 = ns()
        for pair in pairs:
            execute(UPSERT, pair)
        return ns() - t0

    def wt_get(_values: list[bytes]) -> int:
        t0 = ns()
        for k in get_keys:
            cache_get(k)
        return ns() - t0

    def wt_get_lru(_values: list[bytes]) -> int:
        t0 = ns()
        for k in get_keys:
            lru_get(k)
        return ns() - t0

    def raw_get(_values: list[bytes]) -> int:
        t0 = ns()
        for k in get_keys:
            row = execute(SELECT, (encode_key(k),)).fetchone()
            unpackb(row[0], raw=False, strict_map_key=False)
        return ns() - t0

    def raw_get_bare(
        _values: list[bytes],
    ) -> int:  # info: the SELECT alone, keys encoded beforehand
        skeys = [(encode_key(k),) for k in get_keys]
        t0 = ns()
        for skey in skeys:
            execute(SELECT, skey).fetchone()
        return ns() - t0

    return {
        "put": {
            "writethrough cache.put": wt_put,
            "raw upsert + msgpack": raw_put,
            "raw upsert, pre-encoded (info)": raw_put_bare,
        },
        "get-miss": {
            "writethrough cache.get (miss)": wt_get,
            "writethrough cache.get (miss), policy lru (info)": wt_get_lru,
            "raw SELECT + msgpack": raw_get,
            "raw SELECT, pre-encoded (info)": raw_get_bare,
        },
    }


def measure(rounds: int, n_puts: int, n_gets: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    keys = [f"key:{i:08d}" for i in range(N_KEYS)]
    values = [rng.randbytes(VALUE_SIZE) for _ in keys]
    with tempfile.TemporaryDirectory(prefix="wt-bench-sqlite-") as tmp:
        parts = build(tmp, keys, values)
        try:
            ops = make_ops(parts, keys, n_puts, n_gets)
            counts = {"put": n_puts, "get-miss": n_gets}

            def fresh() -> list[bytes]:
                # New values every time: SQLite skips writing a row whose content is
                # unchanged, and such a "put" would never reach the disk.
                return [rng.randbytes(VALUE_SIZE) for _ in range(n_puts)]

            for per in ops.values():  # warm up: connections, statement cache, pages
                for op in per.values():
                    op(fresh())
            before = parts["miss_cache"].stats()
            samples: dict[str, dict[str, list[float]]] = {
                name: {label: [] for label in per} for name, per in ops.items()
            }
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                for r in range(rounds):
                    for name, per in ops.items():
                        order = list(per.items())
                        if r % 2:
                            order.reverse()
                        for label, op in order:
                            values = fresh() if name == "put" else []
                            samples[name][label].append(op(values) / counts[name] / 1000)
            finally:
                if gc_was_enabled:
                    gc.enable()
            after = parts["miss_cache"].stats()
            all_missed = after.cache_hits == before.cache_hits and (
                after.backing_store_hits - before.backing_store_hits == rounds * n_gets
            )
        finally:
            parts["put_cache"].close()
            parts["miss_cache"].close()
            parts["miss_lru"].close()
            parts["conn"].close()
    return {
        "rounds": rounds,
        "puts_per_round": n_puts,
        "gets_per_round": n_gets,
        "value_size": VALUE_SIZE,
        "keys": N_KEYS,
        "sqlite": sqlite3.sqlite_version,
        "us_per_op": {
            name: {label: _util.median(v) for label, v in per.items()}
            for name, per in samples.items()
        },
        "us_per_op_min": {
            name: {label: min(v) for label, v in per.items()} for name, per in samples.items()
        },
        "every_get_missed": all_missed,
    }


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, per in result["us_per_op"].items():
        ours = next(v for label, v in per.items() if label.startswith("writethrough"))
        base = next(
            v for label, v in per.items() if label.startswith("raw") and "info" not in label
        )
        ratio = ours / base
        out[name] = {"ratio": ratio, "target": TARGETS[name], "met": ratio <= TARGETS[name]}
    return out


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(
        f"SQLite {result['sqlite']}, WAL, synchronous=FULL; {result['value_size']}-byte values, "
        f"{result['keys']:,} keys; {result['puts_per_round']:,} puts and "
        f"{result['gets_per_round']:,} gets per round; median of {result['rounds']} "
        "interleaved rounds"
    )
    targets = verdicts(result)
    rows = []
    for name, per in result["us_per_op"].items():
        base = next(
            v for label, v in per.items() if label.startswith("raw") and "info" not in label
        )
        for label, v in per.items():
            rows.append(
                [
                    f"{name}: {label}",
                    f"{v:.2f}",
                    f"{result['us_per_op_min'][name][label]:.2f}",
                    _util.ratio(v, base),
                ]
            )
    print()
    print(_util.table(["operation", "us/op", "best", "vs raw"], rows))
    print()
    for name, v in targets.items():
        state = "met" if v["met"] else "NOT met"
        print(f"target {name}: {v['ratio']:.2f}x raw (target <= {v['target']:.2f}x: {state})")
    print(f"check: every cache get missed and loaded from the store: {result['every_get_missed']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--puts", type=int, default=2000, help="puts per round (default 2000)")
    parser.add_argument("--gets", type=int, default=5000, help="gets per round (default 5000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if min(args.rounds, args.puts, args.gets) < 1:
        parser.error("--rounds, --puts and --gets must be >= 1")
    env = _util.environment(["writethrough", "msgpack"])
    result = measure(args.rounds, args.puts, args.gets, args.seed)
    _util.emit(args.json, env, result, report, verdicts(result))


if __name__ == "__main__":
    main()

"""Every store's path through the cache against the raw driver doing the same thing.

The baseline is what a program would do without the cache (DESIGN P2): the same
statement or command on the same table / prefix / directory, with the key
encoded by ``writethrough.codecs.encode_key`` and the value by msgpack exactly
as the cache's default codec does it, and the same durability:

- SQLite: the same upsert and select, WAL, ``synchronous=FULL``, autocommit;
- PostgreSQL: one psycopg connection, autocommit, the store's upsert and select;
- MariaDB: one PyMySQL connection, autocommit, the store's upsert and select;
- Redis: ``redis.Redis.set`` / ``get`` on one client;
- files: the store's own files with bare ``os`` calls: a temporary file, ``fsync``,
  ``rename``, folder ``fsync``; reads open and read the file and slice the value.

Figures per store:

- put: ``cache.put(k, v)`` vs raw write of ``encode_key(k)``, ``packb(v)``;
- get-miss: a cache of capacity 1 reading keys in a cycle (every get misses, loads
  and evicts) vs raw read + ``unpackb``;
- put_many: throughput of ``cache.put_many`` of 100 entries vs 100 ``cache.put``.

The sides run in short alternating runs (ours, raw, raw, ours, ...: 20 puts,
200 gets or one batch each; ``--rounds`` x 10 pairs), and each ratio is the
median of the pairs' ratios: a shared disk's fsync time drifts by several times
within seconds, and neighbouring runs see the same disk. Targets: put <= 1.10x, get-miss <= 1.15x,
put_many(100) >= 5x. A store whose server is not reachable is reported, not measured.

    python benchmarks/stores.py [--stores sqlite,files,postgres,redis,mysql] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import _util
import msgpack  # type: ignore[import-untyped]

import writethrough as wt
from writethrough.codecs import encode_key

TARGETS = {"put": 1.10, "get-miss": 1.15, "put_many(100)": 5.0}
PAIRS_PER_ROUND = 10
VALUE_SIZE = 100
N_KEYS = 2000
PG = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql://root@127.0.0.1:3306/test"
REDIS = "redis://127.0.0.1:6379/0"

RawPut = Callable[[bytes, bytes], None]
RawGet = Callable[[bytes], Any]


class Backend:
    """One store: its URL for the cache, the raw write and read, and cleanup."""

    name = ""
    puts_per_round = 20  # one side's run; runs alternate with the other side's
    gets_per_round = 200

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.table = f"wt_bench_{uuid.uuid4().hex[:10]}"

    def url(self) -> str:
        raise NotImplementedError

    def raw(self) -> tuple[RawPut, RawGet]:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove the benchmark's table / keys."""


class SQLite(Backend):
    name = "sqlite"

    def url(self) -> str:
        return f"sqlite:///{self.tmp}/bench.db?table={self.table}"

    def raw(self) -> tuple[RawPut, RawGet]:
        import sqlite3

        conn = sqlite3.connect(f"{self.tmp}/bench.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        upsert = (
            f'INSERT INTO "{self.table}" (key, value) VALUES (?, ?) '
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        select = f'SELECT value FROM "{self.table}" WHERE key = ?'
        execute = conn.execute

        def put(k: bytes, v: bytes) -> None:
            execute(upsert, (k, v))

        def get(k: bytes) -> Any:
            row = execute(select, (k,)).fetchone()
            return None if row is None else row[0]

        return put, get


class Files(Backend):
    name = "files"
    puts_per_round = 20

    def url(self) -> str:
        return f"file://{self.tmp}/files"

    def raw(self) -> tuple[RawPut, RawGet]:
        """The store's own files, written and read with bare ``os`` calls.

        Same layout (``<dir>/<ab>/<blake2b-256 of the key>``), same 16-byte header and
        key before the value, same temp file, fsync, rename and folder fsync; a read
        opens the file, reads it and slices the value out.
        """
        root = f"{self.tmp}/files"
        head = struct.Struct(">4sIQ")
        counter = iter(range(1 << 62))

        def path(k: bytes) -> str:
            name = hashlib.blake2b(k, digest_size=32).hexdigest()
            return f"{root}/{name[:2]}/{name}"

        def put(k: bytes, v: bytes) -> None:
            final = path(k)
            shard = final[:-64]
            tmp = f"{shard}.tmp-raw-{next(counter)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.writev(fd, (head.pack(b"WTK1", len(k), len(v)) + k, v))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            dir_fd = os.open(shard, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

        def get(k: bytes) -> Any:
            try:
                fd = os.open(path(k), os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                return os.read(fd, 65536)[head.size + len(k) :]
            finally:
                os.close(fd)

        return put, get


class Postgres(Backend):
    name = "postgres"

    def url(self) -> str:
        return f"{PG}?table={self.table}"

    def raw(self) -> tuple[RawPut, RawGet]:
        import psycopg
        from psycopg import sql

        conn = psycopg.connect(PG, autocommit=True)
        q = sql.Identifier(self.table)
        upsert = (
            sql.SQL(
                "INSERT INTO {} (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            )
            .format(q)
            .as_bytes(conn)
        )
        select = sql.SQL("SELECT value FROM {} WHERE key = %s").format(q).as_bytes(conn)
        execute = conn.execute

        def put(k: bytes, v: bytes) -> None:
            execute(upsert, (k, v), prepare=True)

        def get(k: bytes) -> Any:
            row = execute(select, (k,), prepare=True).fetchone()
            return None if row is None else row[0]

        return put, get

    def cleanup(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table)))


class MySQL(Backend):
    name = "mysql"

    def url(self) -> str:
        return f"{MYSQL}?table={self.table}"

    def raw(self) -> tuple[RawPut, RawGet]:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
        cur = conn.cursor()
        upsert = (
            f"INSERT INTO `{self.table}` (k, n, parts, v) VALUES (%s, 0, 1, %s) "
            "ON DUPLICATE KEY UPDATE parts = 1, v = VALUES(v)"
        )
        select = f"SELECT parts, v FROM `{self.table}` WHERE k = %s AND n = 0"
        execute = cur.execute

        def put(k: bytes, v: bytes) -> None:
            execute(upsert, (k, v))

        def get(k: bytes) -> Any:
            execute(select, (k,))
            row = cur.fetchone()
            return None if row is None else row[1]

        return put, get

    def cleanup(self) -> None:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", database="test")
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{self.table}`")
        conn.close()


class Redis(Backend):
    name = "redis"
    puts_per_round = 200

    def url(self) -> str:
        return f"{REDIS}?prefix={self.table}:"

    def raw(self) -> tuple[RawPut, RawGet]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        prefix = f"{self.table}:".encode()

        def put(k: bytes, v: bytes) -> None:
            client.set(prefix + k, v)

        def get(k: bytes) -> Any:
            return client.get(prefix + k)

        return put, get

    def cleanup(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        for key in client.scan_iter(match=f"{self.table}:*", count=1000):
            client.delete(key)
        client.close()


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (SQLite, Files, Postgres, Redis, MySQL)}


def measure(backend: Backend, rounds: int) -> dict[str, Any]:
    """Per-op µs of ours and raw for put and get-miss, and the put_many speed-up."""
    keys = [f"key:{i:06d}" for i in range(N_KEYS)]
    values = [os.urandom(VALUE_SIZE) for _ in range(N_KEYS)]
    cache = wt.open(backend.url(), capacity=N_KEYS)
    miss_cache = wt.open(backend.url(), capacity=1)
    try:
        for lo in range(0, N_KEYS, 500):
            cache.put_many(dict(zip(keys[lo : lo + 500], values[lo : lo + 500], strict=True)))
        cache.evict_all()
        raw_put, raw_get = backend.raw()
        packb = msgpack.Packer(use_bin_type=True, strict_types=False).pack  # as MsgpackCodec
        unpackb = msgpack.unpackb
        n_put, n_get = backend.puts_per_round, backend.gets_per_round
        put_keys = [keys[i % N_KEYS] for i in range(n_put)]
        get_keys = [keys[(i * 7) % N_KEYS] for i in range(n_get)]
        ns = time.perf_counter_ns
        # Every write changes the stored value (a rewrite of identical bytes is a no-op
        # commit for SQLite and InnoDB): each call takes the next offset into ``values``.
        turn = iter(range(1, 1 << 62))

        def put_values() -> list[bytes]:
            o = next(turn)
            return [values[(o + j) % N_KEYS] for j in range(n_put)]

        def batch() -> dict[str, bytes]:
            o = next(turn)
            return {keys[j]: values[(o + j) % N_KEYS] for j in range(100)}

        def ours_put() -> float:
            put, vs = cache.put, put_values()
            t0 = ns()
            for k, v in zip(put_keys, vs, strict=True):
                put(k, v)
            return (ns() - t0) / n_put / 1e3

        def raw_put_op() -> float:
            vs = put_values()
            t0 = ns()
            for k, v in zip(put_keys, vs, strict=True):
                raw_put(encode_key(k), packb(v))
            return (ns() - t0) / n_put / 1e3

        def ours_get() -> float:
            get = miss_cache.get
            t0 = ns()
            for k in get_keys:
                get(k)
            return (ns() - t0) / n_get / 1e3

        def raw_get_op() -> float:
            t0 = ns()
            for k in get_keys:
                raw = raw_get(encode_key(k))
                if raw is not None:
                    unpackb(raw)
            return (ns() - t0) / n_get / 1e3

        def singles_100() -> float:
            put, items = cache.put, batch()
            t0 = ns()
            for k, v in items.items():
                put(k, v)
            return (ns() - t0) / 1e3

        def many_100() -> float:
            items = batch()
            t0 = ns()
            cache.put_many(items)
            return (ns() - t0) / 1e3

        pairs = {
            "put": (ours_put, raw_put_op),
            "get-miss": (ours_get, raw_get_op),
            "put_many(100)": (many_100, singles_100),
        }
        for ours, raw in pairs.values():  # warm up: connections, prepared statements
            ours(), raw()
        samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in pairs}
        # Short runs, side by side, order alternating: a shared disk's fsync time drifts
        # by several times within seconds, so each ratio compares neighbours only.
        for r in range(rounds * PAIRS_PER_ROUND):
            for name, (ours, raw) in pairs.items():
                first, second = (ours, raw) if r % 2 == 0 else (raw, ours)
                a, b = first(), second()
                o, w = (a, b) if r % 2 == 0 else (b, a)
                samples[name][0].append(o)
                samples[name][1].append(w)
        durability = getattr(cache.backing_store, "durability", None)
    finally:
        cache.close()
        miss_cache.close()
        backend.cleanup()
    out: dict[str, Any] = {"durability": durability}
    for name, (o, w) in samples.items():
        out[name] = {
            "ours_us": statistics.median(o),
            "raw_us": statistics.median(w),
            # ours / raw for put and get-miss; raw / ours (the speed-up) for put_many
            "ratio": statistics.median(
                (b / a if name == "put_many(100)" else a / b) for a, b in zip(o, w, strict=True)
            ),
            "pairs": len(o),
        }
    return out


def run(stores: list[str], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("WT_BENCH_DIR")) as tmp:
        for name in stores:
            backend = BACKENDS[name](tmp)
            try:
                results[name] = measure(backend, rounds)
            except (wt.WriteThroughError, ImportError, OSError) as exc:
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return {"stores": results}


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(
        f"\n{VALUE_SIZE}-byte values, msgpack on both sides; µs per op (put_many: µs per "
        "100 entries), medians; ratios: median of side-by-side pairs of short runs\n"
    )
    rows = []
    for store, figures in result["stores"].items():
        if "error" in figures:
            rows.append([store, "not measured", figures["error"][:60], "", "", "", ""])
            continue
        put, miss, many = figures["put"], figures["get-miss"], figures["put_many(100)"]
        rows.append(
            [
                store,
                f"{put['ours_us']:.1f} / {put['raw_us']:.1f}",
                f"{put['ratio']:.2f}x",
                f"{miss['ours_us']:.1f} / {miss['raw_us']:.1f}",
                f"{miss['ratio']:.2f}x",
                f"{many['ours_us']:.0f} / {many['raw_us']:.0f}",
                f"{many['ratio']:.1f}x",
            ]
        )
    headers = [
        "store",
        "put ours/raw",
        "put (<=1.10x)",
        "get-miss ours/raw",
        "miss (<=1.15x)",
        "many(100)/100 puts",
        "speed-up (>=5x)",
    ]
    print(_util.table(headers, rows))
    for store, figures in result["stores"].items():
        if figures.get("durability"):
            print(f"\n{store} durability: {figures['durability']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default=",".join(BACKENDS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = [s for s in stores if s not in BACKENDS]
    if unknown:
        parser.error(f"unknown store(s) {unknown}; choose from {', '.join(BACKENDS)}")
    env = _util.environment(["msgpack", "psycopg", "redis", "hiredis", "PyMySQL"])
    _util.emit(args.json, env, run(stores, args.rounds), report, TARGETS)


if __name__ == "__main__":
    main()

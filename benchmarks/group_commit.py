"""Group commit: throughput of 8 writer threads, and a lone writer's latency, on and off.

What grouping can gain depends on the disk's fsync, so the run measures the
limit beside us: a raw ``sqlite3`` group commit written here (a condition
variable, a pending list, one leader at a time running ``executemany`` in one
transaction), and the same 8 threads doing one commit per put on raw
``sqlite3`` (one connection each, queued on a lock as SQLiteStore does). It
prints the fsync median it saw on the same disk.

- SQLite, 8 threads: ours (group commit on) vs the raw group commit (target
  >= 0.9x) and vs raw one-commit-per-put (target >= 2x); ours with group commit
  off is shown for reference.
- PostgreSQL and MariaDB, 8 threads (when their stores are installed and the
  servers answer): ours on vs ours off over the same pool (``--pool-size``,
  default 4 as the stores' own default; with 8 connections for 8 threads each
  put has a connection and the server overlaps the commits itself) (target >= 2x).
- One thread, per store (SQLite, and PostgreSQL and MariaDB when they answer):
  put latency with group commit on vs off (target <= 1.05x).

Each side runs for ``--seconds`` per round; rounds interleave the sides
(alternating order) and the table shows the median of the rounds.

    python benchmarks/group_commit.py [--rounds 3] [--seconds 1.5] [--pool-size 4] [--sqlite-only]
                                      [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import _util
import msgpack  # type: ignore[import-untyped]

import writethrough as wt
from writethrough.codecs import encode_key

THREADS = 8
LONE_RUN = 20  # puts per alternating run of the lone-writer comparison
TABLE = "writethrough"
UPSERT = (
    f"INSERT INTO {TABLE} (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
PAD = "x" * 80
_SEQ = itertools.count()


def value() -> dict[str, Any]:
    """A value no put has written before: rewriting identical bytes is a no-op commit
    for SQLite and InnoDB (nothing to flush), which would flatter every side."""
    return {"payload": PAD, "n": next(_SEQ)}


Put = Callable[[str, Any], None]


def raw_connection(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (key BLOB PRIMARY KEY, value BLOB NOT NULL) "
        "WITHOUT ROWID"
    )
    return conn


class RawPerPut:
    """Every put is its own autocommit transaction; threads take turns on a lock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        self.lock = threading.Lock()

    def put(self, key: str, value: Any) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = raw_connection(self.path)
        item = (encode_key(key), msgpack.packb(value))
        with self.lock:
            conn.execute(UPSERT, item)


class RawGroupCommit:
    """The textbook client-side group commit, straight on sqlite3."""

    def __init__(self, path: str) -> None:
        self.conn = raw_connection(path)
        self.cond = threading.Condition()
        self.pending: list[tuple[bytes, bytes]] = []
        self.next_batch = 1  # the batch that pending items will belong to
        self.done_batch = 0  # every batch up to this one is committed
        self.committing = False

    def put(self, key: str, value: Any) -> None:
        item = (encode_key(key), msgpack.packb(value))
        with self.cond:
            self.pending.append(item)
            mine = self.next_batch
            while self.done_batch < mine:
                if not self.committing:
                    self.committing = True
                    batch, self.pending = self.pending, []
                    number = self.next_batch
                    self.next_batch += 1
                    break
                self.cond.wait()
            else:
                return
        try:
            if len(batch) == 1:
                self.conn.execute(UPSERT, batch[0])
            else:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(UPSERT, batch)
                self.conn.execute("COMMIT")
        finally:
            with self.cond:
                self.committing = False
                self.done_batch = number
                self.cond.notify_all()


def throughput(put: Put, threads: int, seconds: float) -> float:
    """Puts per second from ``threads`` threads writing their own keys for ``seconds``."""
    counts = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        start.wait()
        i = 0
        while not stop.is_set():
            put(f"t{t}:{i % 5000}", value())
            i += 1
        counts[t] = i

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in pool:
        th.join()
    return sum(counts) / (time.perf_counter() - t0)


def lone_latency(on: Put, off: Put, seconds: float) -> list[tuple[float, float]]:
    """One thread, µs per put, on and off in short alternating runs for about ``seconds``.

    Short runs side by side (order alternating) keep a loaded machine's drift out
    of the ratio; each run writes its own keys.
    """
    pairs: list[tuple[float, float]] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline or len(pairs) < 4:
        timed: dict[int, float] = {}
        for which in (0, 1) if len(pairs) % 2 == 0 else (1, 0):
            put = on if which == 0 else off
            t0 = time.perf_counter()
            for _ in range(LONE_RUN):
                put(f"lone:{i % 5000}", value())
                i += 1
            timed[which] = (time.perf_counter() - t0) / LONE_RUN * 1e6
        pairs.append((timed[0], timed[1]))
    return pairs


def fsync_median(directory: str, n: int = 50) -> float:
    """Median seconds of write + fsync of 100 bytes on this disk."""
    path = os.path.join(directory, "fsync.probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 100)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return statistics.median(times)


def server_caches() -> dict[str, tuple[str, Callable[[str], None]]]:
    """Server stores that are installed and answering: name -> (URL, cleanup of a table)."""
    found: dict[str, tuple[str, Callable[[str], None]]] = {}
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2).close()

        def drop_pg(table: str) -> None:
            from psycopg import sql

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))

        found["PostgreSQL"] = ("postgresql://postgres@127.0.0.1:5432/test", drop_pg)
    except Exception:
        pass
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", user="root", database="test", connect_timeout=2).close()

        def drop_my(table: str) -> None:
            conn = pymysql.connect(host="127.0.0.1", user="root", database="test")
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            conn.close()

        found["MariaDB"] = ("mysql://root@127.0.0.1:3306/test", drop_my)
    except Exception:
        pass
    return found


def run(rounds: int, seconds: float, servers: bool, pool_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("WT_BENCH_DIR")) as tmp:
        fsync = fsync_median(tmp)
        sides: dict[str, Callable[[], Put]] = {}
        closers: list[Callable[[], None]] = []

        def cache_side(url: str, **options: Any) -> Callable[[], Put]:
            def make() -> Put:
                cache = wt.open(url, **options)
                closers.append(cache.close)
                return cache.put

            return make

        sides["sqlite ours, group commit"] = cache_side(
            f"sqlite:///{tmp}/ours_on.db", group_commit=True
        )
        sides["sqlite ours, one commit per put"] = cache_side(
            f"sqlite:///{tmp}/ours_off.db", group_commit=False
        )
        sides["sqlite raw group commit"] = lambda: RawGroupCommit(f"{tmp}/raw_group.db").put
        sides["sqlite raw one commit per put"] = lambda: RawPerPut(f"{tmp}/raw_put.db").put
        lone_sides: dict[str, dict[str, Callable[[], Put]]] = {
            "sqlite": {
                "on": cache_side(f"sqlite:///{tmp}/lone_on.db", group_commit=True),
                "off": cache_side(f"sqlite:///{tmp}/lone_off.db", group_commit=False),
            }
        }
        tables: list[tuple[Callable[[str], None], str]] = []
        for name, (url, drop) in (server_caches() if servers else {}).items():
            table = f"wt_bench_gc_{os.getpid()}"
            store = name.lower()
            for suffix in ("on", "off", "lone_on", "lone_off"):
                tables.append((drop, f"{table}_{suffix}"))
            # both sides: the same pool (pool_size connections), one table each
            sides[f"{store} ours, group commit"] = cache_side(
                f"{url}?table={table}_on&pool_size={pool_size}", group_commit=True
            )
            sides[f"{store} ours, one commit per put"] = cache_side(
                f"{url}?table={table}_off&pool_size={pool_size}", group_commit=False
            )
            lone_sides[store] = {
                mode: cache_side(f"{url}?table={table}_lone_{mode}", group_commit=mode == "on")
                for mode in ("on", "off")
            }
        puts = {name: make() for name, make in sides.items()}
        results: dict[str, list[float]] = {name: [] for name in sides}
        lone_puts = {
            store: {mode: make() for mode, make in modes.items()}
            for store, modes in lone_sides.items()
        }
        lone: dict[str, dict[str, list[float]]] = {
            store: {"on": [], "off": []} for store in lone_puts
        }
        names = list(sides)
        try:
            for r in range(rounds):
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    results[name].append(throughput(puts[name], THREADS, seconds))
                for store, modes in lone_puts.items():
                    for on_us, off_us in lone_latency(modes["on"], modes["off"], seconds):
                        lone[store]["on"].append(on_us)
                        lone[store]["off"].append(off_us)
        finally:
            for close in closers:
                close()
            for drop, table in tables:
                with contextlib.suppress(Exception):
                    drop(table)
    return {
        "fsync_median_ms": fsync * 1e3,
        "threads": THREADS,
        "pool_size": pool_size,
        "puts_per_second": {name: statistics.median(v) for name, v in results.items()},
        "puts_per_second_by_round": results,
        "lone_put_us": {
            store: {
                "on": statistics.median(modes["on"]),
                "off": statistics.median(modes["off"]),
                # the median of side-by-side ratios: drift between runs cancels out
                "ratio": statistics.median(
                    a / b for a, b in zip(modes["on"], modes["off"], strict=True)
                ),
                "runs": len(modes["on"]),
            }
            for store, modes in lone.items()
        },
    }


TARGETS = {
    "sqlite vs raw group commit": ">= 0.90x",
    "sqlite vs raw one commit per put": ">= 2x",
    "servers vs one commit per put": ">= 2x",
    "lone writer on vs off": "<= 1.05x",
}


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(f"fsync median on this disk: {result['fsync_median_ms']:.3f} ms")
    rates = result["puts_per_second"]
    by_round = result["puts_per_second_by_round"]

    def ratio(a: str, b: str) -> float:
        """Median over rounds of a / b: the sides of one round ran back to back."""
        return statistics.median(x / y for x, y in zip(by_round[a], by_round[b], strict=True))

    print(
        f"\n{result['threads']} threads writing for the same time (puts/s, median of rounds; "
        f"ratios: median of per-round ratios; server stores: pool_size={result['pool_size']} "
        "on both sides)\n"
    )
    rows = []
    for name, rate in rates.items():
        store = name.split()[0]
        cells = [name, f"{rate:,.0f}"]
        if name == "sqlite ours, group commit":
            cells.append(
                f"{ratio(name, 'sqlite raw group commit'):.2f}x raw group (>= 0.90x), "
                f"{ratio(name, 'sqlite raw one commit per put'):.2f}x raw per put (>= 2x)"
            )
        elif name.endswith("ours, group commit"):
            off = f"{store} ours, one commit per put"
            cells.append(
                f"{ratio(name, off):.2f}x one commit per put (>= 2x)" if off in rates else ""
            )
        else:
            cells.append("")
        rows.append(cells)
    print(_util.table(["side", "puts/s", "ratio (target)"], rows))
    print(
        f"\none thread: put latency with group commit on vs off (µs per put, runs of "
        f"{LONE_RUN} puts alternating; target <= 1.05x)\n"
    )
    rows = [
        [store, f"{t['on']:.1f}", f"{t['off']:.1f}", f"{t['ratio']:.3f}x", str(t["runs"])]
        for store, t in result["lone_put_us"].items()
    ]
    print(_util.table(["store", "on", "off", "on / off (median of pairs)", "pairs"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--sqlite-only", action="store_true", help="leave out the servers")
    parser.add_argument(
        "--pool-size", type=int, default=4, help="server stores' pool, the same on both sides"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = _util.environment(["msgpack", "psycopg", "PyMySQL"])
    result = run(args.rounds, args.seconds, servers=not args.sqlite_only, pool_size=args.pool_size)
    _util.emit(args.json, env, result, report, TARGETS)


if __name__ == "__main__":
    main()

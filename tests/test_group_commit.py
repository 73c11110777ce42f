"""Group commit: concurrent puts share a transaction, and each is durable when it returns.

Against real SQLite files, and the PostgreSQL and MariaDB servers on loopback:
grouping happens, a poisoned member fails alone, order per key holds, close
fails the waiting and keeps the commit in flight, and SIGKILL never loses an
acknowledged put (SQLite and PostgreSQL).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import (
    MYSQL_PORT,
    MYSQL_URL,
    PG_PORT,
    PG_URL,
    drop_mysql_table,
    drop_pg_table,
    require_module,
    require_server,
    unique_name,
)

import writethrough as wt
from writethrough._group import GroupCommit
from writethrough.errors import CacheClosed, ConfigError, StoreWriteError
from writethrough.stores.sqlite import SQLiteStore

SRC = Path(wt.__file__).resolve().parents[1]


def _poison(path: Path, table: str = "writethrough") -> bytes:
    """A trigger that makes SQLite refuse one value (the store itself is untouched)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            f'CREATE TRIGGER poison BEFORE INSERT ON "{table}" '
            "WHEN NEW.value = x'deadbeef' BEGIN SELECT RAISE(ABORT, 'poisoned value'); END"
        )
    conn.close()
    return b"\xde\xad\xbe\xef"  # the bytes codec stores it as it is


class Gated:
    """Mixed into a real store: its writes wait on a gate first, so a group can build up."""

    gate: threading.Event
    entered: threading.Event

    def store(self, key: bytes, value: bytes) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().store(key, value)  # type: ignore[misc]

    def store_many(self, items: Any) -> None:
        self.entered.set()
        self.gate.wait(10)
        super().store_many(items)  # type: ignore[misc]


class SlowStore(Gated, SQLiteStore):
    """A real SQLiteStore whose writes wait on a gate."""


def _slow(tmp_path: Path) -> SlowStore:
    store: SlowStore = _gate(SlowStore(tmp_path / "slow.db"))
    return store


def _gate(store: Any) -> Any:
    store.gate = threading.Event()
    store.entered = threading.Event()
    return store


def _wait_queued(group: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._queue) < n:
        assert time.monotonic() < deadline, f"{len(group._queue)} of {n} queued"
        time.sleep(0.001)


# -- options
@pytest.mark.parametrize(
    "options",
    [
        {"group_commit_max_wait": -1},
        {"group_commit_max_wait": float("nan")},
        {"group_commit_max_wait": "1"},
        {"group_commit_max_size": 0},
        {"group_commit_max_size": 2.5},
        {"group_commit": "yes"},
    ],
)
def test_bad_options_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        wt.open(f"sqlite:///{tmp_path}/a.db", **options)
    assert not (tmp_path / "a.db").exists()  # refused before the store was opened


def test_store_without_transactions_refuses_group_commit() -> None:
    with pytest.raises(ConfigError, match="group commit"):
        wt.WriteThroughCache(wt.MemoryStore(), group_commit=True)
    assert wt.WriteThroughCache(wt.MemoryStore()).group_commit is False


def test_url_option(tmp_path: Path) -> None:
    with wt.open(f"sqlite:///{tmp_path}/a.db?group_commit=true&group_commit_max_size=8") as c:
        assert c.group_commit is True
        c.put("k", "v")
        assert c.stats().commits == 1 and c.stats().group_commit_members == 1
    with wt.open(f"sqlite:///{tmp_path}/a.db?group_commit=false") as c:
        assert c.group_commit is False
        c.put("k", "v")
        assert c.stats().commits == 0


# -- grouping
def _eight_writers_share_commits(url: str, puts: int) -> None:
    """8 threads put ``puts`` keys each with group commit on; check stats and the store."""
    cache = wt.open(url, group_commit=True)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(puts):
                cache.put(f"t{t}:{i}", [t, i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    stats = cache.stats()
    assert stats.writes == 8 * puts and stats.group_commit_members == 8 * puts
    assert stats.commits < 8 * puts  # some puts shared a transaction
    assert stats.mean_group_size > 1.0
    cache.close()
    with wt.open(url, group_commit=False) as fresh:  # what the store holds
        expected = {f"t{t}:{i}": [t, i] for t in range(8) for i in range(puts)}
        assert fresh.get_many(list(expected)) == expected


def _poisoned_member_fails_alone(store: Any, poisoned: bytes) -> None:
    """A group of 50 behind a gated commit, member 17 refused: only its caller fails."""
    cache = wt.WriteThroughCache(store, group_commit=True, codec="bytes")
    results: dict[int, BaseException | None] = {}

    def put(i: int) -> None:
        try:
            cache.put(f"k{i}", poisoned if i == 17 else f"v{i}".encode())
            results[i] = None
        except BaseException as exc:
            results[i] = exc

    first = threading.Thread(target=put, args=(0,))
    first.start()
    assert store.entered.wait(5)
    threads = [threading.Thread(target=put, args=(i,)) for i in range(1, 51)]
    for th in threads:
        th.start()
    assert cache._group is not None
    _wait_queued(cache._group, 50)
    store.gate.set()
    for th in [first, *threads]:
        th.join()
    assert isinstance(results.pop(17), StoreWriteError)
    assert results == {i: None for i in range(51) if i != 17}  # every other caller succeeded
    assert "k17" not in cache
    assert cache.get("k17") is None
    cache.evict_all()
    assert cache.get_many([f"k{i}" for i in range(51) if i != 17]) == {
        f"k{i}": f"v{i}".encode() for i in range(51) if i != 17
    }
    cache.close()


def test_concurrent_puts_share_commits(tmp_path: Path) -> None:
    _eight_writers_share_commits(f"sqlite:///{tmp_path}/a.db", 40)


def test_a_group_is_one_transaction_and_everyone_waits_for_it(tmp_path: Path) -> None:
    store = _slow(tmp_path)
    cache = wt.WriteThroughCache(store, group_commit=True, codec="bytes")
    done: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: (cache.put(f"k{i}", b"v"), done.append(f"k{i}")))
        for i in range(6)
    ]
    threads[0].start()
    assert store.entered.wait(5)  # the first put is committing alone
    for th in threads[1:]:
        th.start()
    assert cache._group is not None
    _wait_queued(cache._group, 5)
    time.sleep(0.05)
    assert done == []  # nobody returned before its commit
    store.gate.set()
    for th in threads:
        th.join()
    assert sorted(done) == [f"k{i}" for i in range(6)]
    stats = cache.stats()
    assert (stats.commits, stats.group_commit_members) == (2, 6)  # alone, then five at once
    cache.close()


def test_poisoned_member_fails_alone_in_a_group_of_50(tmp_path: Path) -> None:
    store = _slow(tmp_path)
    _poisoned_member_fails_alone(store, _poison(tmp_path / "slow.db"))


def test_two_writes_of_one_key_in_a_group_keep_acceptance_order(tmp_path: Path) -> None:
    store = _slow(tmp_path)
    group = GroupCommit(store)
    first = threading.Thread(target=group.store, args=(b"other", b"x"))
    first.start()
    assert store.entered.wait(5)
    a = threading.Thread(target=group.store, args=(b"k", b"old"))
    a.start()
    _wait_queued(group, 1)
    b = threading.Thread(target=group.store, args=(b"k", b"new"))
    b.start()
    _wait_queued(group, 2)
    store.gate.set()
    for th in (first, a, b):
        th.join()
    assert store.load(b"k") == b"new"
    assert (group.commits, group.members) == (2, 3)
    store.close()


def _close_while_waiting(store: Any, in_flight: int) -> None:
    """``in_flight`` gated commits, three queued puts, then close: the commits end, the
    queued fail with CacheClosed and are not written, later puts are refused."""
    cache = wt.WriteThroughCache(store, group_commit=True, codec="bytes", close_store=False)
    results: dict[str, BaseException | None] = {}

    def put(key: str) -> None:
        try:
            cache.put(key, b"v")
            results[key] = None
        except BaseException as exc:
            results[key] = exc

    leaders = [threading.Thread(target=put, args=(f"inflight{i}",)) for i in range(in_flight)]
    for th in leaders:
        th.start()
    assert store.entered.wait(5)
    group = cache._group
    assert group is not None
    deadline = time.monotonic() + 10
    while group._active < in_flight:  # every slot taken by a leader before the others come
        assert time.monotonic() < deadline
        time.sleep(0.001)
    waiting = [threading.Thread(target=put, args=(f"w{i}",)) for i in range(3)]
    for th in waiting:
        th.start()
    _wait_queued(group, 3)
    closer = threading.Thread(target=cache.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # close waits for the commits in flight
    store.gate.set()
    for th in [closer, *leaders, *waiting]:
        th.join(5)
    for i in range(in_flight):
        assert results.pop(f"inflight{i}") is None
        assert store.load(wt.codecs.encode_key(f"inflight{i}")) == b"v"  # reported done: stored
    assert len(results) == 3
    for error in results.values():
        assert isinstance(error, CacheClosed), repr(error)
    for i in range(3):
        assert store.load(wt.codecs.encode_key(f"w{i}")) is None
    with pytest.raises(CacheClosed):
        cache.put("late", b"v")
    store.close()


def test_close_fails_the_waiting_and_keeps_the_commit_in_flight(tmp_path: Path) -> None:
    _close_while_waiting(_slow(tmp_path), 1)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["put", "get", "evict"]), st.integers(0, 3), st.integers(0, 99)
            ),
            min_size=1,
            max_size=12,
        ),
        min_size=2,
        max_size=5,
    )
)
def test_memory_agrees_with_the_store_under_interleavings(
    tmp_path: Path, plans: list[list[tuple[str, int, int]]]
) -> None:
    """Whatever the interleaving, a key held in memory holds what the store holds (rule 5)."""
    path = tmp_path / f"h{random.getrandbits(40)}.db"
    cache = wt.open(f"sqlite:///{path}?synchronous=off", group_commit=True, capacity=3)
    barrier = threading.Barrier(len(plans))
    errors: list[BaseException] = []

    def run(plan: list[tuple[str, int, int]]) -> None:
        barrier.wait()
        try:
            for op, k, v in plan:
                if op == "put":
                    cache.put(k, v)
                elif op == "get":
                    cache.get(k)
                else:
                    cache.evict(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in plans]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    store = cache.backing_store
    for k in range(4):
        raw = store.load(wt.codecs.encode_key(k))
        if k in cache._core.data:
            assert raw is not None and cache._core.data[k] == wt.MsgpackCodec().decode(raw)
    cache.close()


# -- the promise under a crash
_CRASH_CHILD = r"""
import sys, threading, os
import writethrough as wt
cache = wt.open(sys.argv[1], group_commit=True)
out = os.fdopen(1, "w", buffering=1)
lock = threading.Lock()
def work(t):
    i = 0
    while True:
        key = f"t{t}:{i}"
        cache.put(key, key * 3)
        with lock:
            out.write(key + "\n")
        i += 1
out.write("ready\n")
for t in range(8):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def _crash_rounds(url: str, rounds: int, read_back: Any) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for _ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CRASH_CHILD, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline() != b"ready\n":
                pytest.fail(
                    f"the child did not start: {proc.communicate(timeout=30)[1].decode()[-2000:]}"
                )
            first = proc.stdout.readline()  # writing has begun (a loaded machine may take a while)
            time.sleep(rng.uniform(0.0, 0.25))
            proc.send_signal(signal.SIGKILL)
            acked = (first + proc.stdout.read()).decode().split()
        finally:
            proc.kill()  # never leave a writer behind, whatever failed
            proc.wait()
        acked = [k for k in acked if k.count(":") == 1]  # the last line may be cut short
        assert acked, "no put was acknowledged before the kill"
        found = read_back(acked)
        missing = [k for k in acked if found.get(k) != k * 3]
        assert not missing, f"{len(missing)} acknowledged puts lost, e.g. {missing[:3]}"


def test_sigkill_never_loses_an_acknowledged_put_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"

    def read_back(keys: list[str]) -> dict[str, Any]:
        with wt.open(url, group_commit=False) as cache:
            return cache.get_many(keys)

    _crash_rounds(url, 20, read_back)


# -- the server stores: PostgreSQL and MariaDB, over the servers on loopback
class Server:
    """One SQL server's side of these tests: a gated store, its URL, a poison trigger."""

    def __init__(self, kind: str, table: str) -> None:
        self.kind = kind
        self.table = table
        self.url = f"{PG_URL if kind == 'postgres' else MYSQL_URL}?table={table}"

    def gated(self, pool_size: int = 1) -> Any:
        """A real store over the table whose writes wait on ``gate``.

        One connection by default: one commit in flight, so the next writes queue.
        """
        if self.kind == "postgres":
            from writethrough.stores.postgres import PostgresStore

            class SlowPostgres(Gated, PostgresStore):
                pass

            return _gate(SlowPostgres(PG_URL, table=self.table, pool_size=pool_size))
        from writethrough.stores.mysql import MySQLStore

        class SlowMySQL(Gated, MySQLStore):
            pass

        return _gate(SlowMySQL(MYSQL_URL, table=self.table, pool_size=pool_size))

    def poison(self) -> bytes:
        """Make the server refuse one value (a CHECK constraint / a trigger); return it."""
        if self.kind == "postgres":
            import psycopg
            from psycopg import sql

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (value <> {})").format(
                        sql.Identifier(self.table),
                        sql.Identifier(f"{self.table}_poison"),
                        sql.Literal(b"\xde\xad\xbe\xef"),
                    )
                )
        else:
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
            try:
                with conn.cursor() as cur:  # the table name is a unique_name(): [a-z0-9_]
                    cur.execute(
                        f"CREATE TRIGGER `{self.table}_poison` BEFORE INSERT ON `{self.table}` "
                        "FOR EACH ROW IF NEW.v = x'deadbeef' THEN SIGNAL SQLSTATE '45000' "
                        "SET MESSAGE_TEXT = 'poisoned value'; END IF"
                    )
                conn.commit()
            finally:
                conn.close()
        return b"\xde\xad\xbe\xef"


@pytest.fixture(params=["postgres", "mysql"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind: str = request.param
    if kind == "postgres":
        require_module("psycopg")
        require_server("PostgreSQL", PG_PORT)
    else:
        require_module("pymysql")
        require_server("MariaDB", MYSQL_PORT)
    table = unique_name("wt_gc")
    yield Server(kind, table)
    (drop_pg_table if kind == "postgres" else drop_mysql_table)(table)


def test_server_puts_share_commits(server: Server) -> None:
    _eight_writers_share_commits(f"{server.url}&pool_size=2", 30)


def test_server_commits_in_flight_up_to_the_pool_size(server: Server) -> None:
    store = server.gated(pool_size=3)
    group = GroupCommit(store)
    assert group.concurrency == 3
    writers = [threading.Thread(target=group.store, args=(b"k%d" % i, b"v")) for i in range(7)]
    for th in writers[:3]:  # three slots: each commits alone, at once
        th.start()
    for th in writers[3:]:
        th.start()
    _wait_queued(group, 4)  # only when all three are busy do the others queue
    store.gate.set()
    for th in writers:
        th.join()
    assert group.members == 7 and group.commits == 4  # three alone, then four in one group
    assert store.load_many([b"k%d" % i for i in range(7)]) == {b"k%d" % i: b"v" for i in range(7)}
    store.close()


def test_server_group_is_one_transaction_in_acceptance_order(server: Server) -> None:
    store = server.gated()
    group = GroupCommit(store)
    first = threading.Thread(target=group.store, args=(b"first", b"x"))
    first.start()
    assert store.entered.wait(5)  # committing alone; the others queue behind it
    queued = [threading.Thread(target=group.store, args=(b"k", b"old"))]
    queued += [threading.Thread(target=group.store, args=(b"k%d" % i, b"v")) for i in range(5)]
    queued += [threading.Thread(target=group.store, args=(b"k", b"new"))]
    for n, th in enumerate(queued, 1):  # one at a time: the queue's order is known
        th.start()
        _wait_queued(group, n)
    store.gate.set()
    for th in [first, *queued]:
        th.join()
    assert (group.commits, group.members) == (2, 8)  # alone, then seven in one transaction
    assert store.load(b"k") == b"new"  # the later write of the key won
    assert store.load_many([b"k%d" % i for i in range(5)]) == {b"k%d" % i: b"v" for i in range(5)}
    store.close()


def test_server_poisoned_member_fails_alone_in_a_group_of_50(server: Server) -> None:
    store = server.gated()
    _poisoned_member_fails_alone(store, server.poison())


def test_sigkill_never_loses_an_acknowledged_put_postgres() -> None:
    require_module("psycopg")
    require_server("PostgreSQL", PG_PORT)
    table = unique_name("wt_gc_crash")
    url = f"{PG_URL}?table={table}"
    try:
        wt.open(url).close()  # the table exists before the first child starts

        def read_back(keys: list[str]) -> dict[str, Any]:
            with wt.open(url, group_commit=False) as cache:
                return cache.get_many(keys)

        _crash_rounds(url, 20, read_back)
    finally:
        drop_pg_table(table)


def test_server_close_fails_the_waiting_and_keeps_every_commit_in_flight(server: Server) -> None:
    _close_while_waiting(server.gated(pool_size=2), 2)


def test_lost_connection_fails_the_whole_group_with_store_unavailable() -> None:
    """A PostgreSQL backend killed mid-group: every member gets StoreUnavailable, drops its key."""
    require_module("psycopg")
    require_server("PostgreSQL", PG_PORT)
    import psycopg
    from psycopg import sql

    from writethrough.stores.postgres import PostgresStore

    table, app = unique_name("wt_gc_lost"), unique_name("wt_app")
    slow = sql.Identifier(f"{table}_slow")

    class SlowPostgres(Gated, PostgresStore):
        pass

    store = _gate(SlowPostgres(f"{PG_URL}?application_name={app}", table=table, pool_size=1))
    admin = psycopg.connect(PG_URL, autocommit=True)
    try:  # the server sleeps on one value, so the group's statement is in flight when killed
        admin.execute(
            sql.SQL(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.value = '\\x5107'::bytea THEN PERFORM pg_sleep(30); END IF; "
                "RETURN NEW; END $$"
            ).format(slow)
        )
        admin.execute(
            sql.SQL(
                "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(slow, sql.Identifier(table), slow)
        )
        cache = wt.WriteThroughCache(store, group_commit=True, codec="bytes")
        store.gate.set()
        for i in range(5):
            cache.put(f"k{i}", b"old")  # held in memory before the group
        store.gate.clear()
        store.entered.clear()
        results: dict[str, BaseException | None] = {}

        def put(key: str, value: bytes) -> None:
            try:
                cache.put(key, value)
                results[key] = None
            except BaseException as exc:
                results[key] = exc

        first = threading.Thread(target=put, args=("first", b"x"))
        first.start()
        assert store.entered.wait(5)
        members = [threading.Thread(target=put, args=(f"k{i}", b"new")) for i in range(5)]
        members.append(threading.Thread(target=put, args=("sleeper", b"\x51\x07")))
        for th in members:
            th.start()
        assert cache._group is not None
        _wait_queued(cache._group, 6)
        store.gate.set()
        deadline = time.monotonic() + 20
        while not admin.execute(  # the group's statement sleeping in the trigger
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event = 'PgSleep'",
            (app,),
        ).fetchone():
            assert time.monotonic() < deadline, "the group's statement never started"
            time.sleep(0.01)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        )
        for th in [first, *members]:
            th.join(30)
        assert results.pop("first") is None  # committed alone, before the group
        assert set(results) == {*(f"k{i}" for i in range(5)), "sleeper"}
        assert all(isinstance(e, wt.StoreUnavailable) for e in results.values()), results
        assert not any(f"k{i}" in cache._core.data for i in range(5))  # each dropped its key
        cache.put("after", b"works")  # the same cache works again on a new connection
        cache.evict_all()
        assert cache.get("after") == b"works"
        cache.close()
    finally:
        store.close()
        drop_pg_table(table)
        admin.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(slow))
        admin.close()


@pytest.mark.parametrize("url", ["file://{tmp}/files", "memory://"])
def test_group_commit_refused_where_a_batch_is_not_atomic(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="group commit"):
        wt.open(url.format(tmp=tmp_path) + "?group_commit=true")
    with wt.open(url.format(tmp=tmp_path)) as cache:  # off by default there
        assert cache.group_commit is False


def test_server_defaults_and_url_options(server: Server) -> None:
    with wt.open(server.url) as cache:  # on by default: a lone writer is not slowed
        assert cache.group_commit is True
        cache.put("k", "v")
        assert (cache.stats().commits, cache.stats().group_commit_members) == (1, 1)
    with wt.open(f"{server.url}&group_commit=false") as cache:
        assert cache.group_commit is False
    for bad in ("group_commit_max_size=0", "group_commit_max_wait=-1"):
        with pytest.raises(ConfigError):
            wt.open(f"{server.url}&{bad}")

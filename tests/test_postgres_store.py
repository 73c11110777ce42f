"""PostgresStore against the real PostgreSQL on loopback: URLs, tables, errors, recovery, fork."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from servers import PG_PORT, PG_URL, drop_pg_table, require_module, require_server, unique_name

import writethrough as wt
import writethrough.url
from writethrough.errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
)

PASSWORD = "s3cr3t-Pa55word"  # trust auth ignores it; it must never be shown


@pytest.fixture(autouse=True)
def _server() -> None:
    require_module("psycopg")
    require_module("psycopg_pool")
    require_server("PostgreSQL", PG_PORT)


@pytest.fixture
def table() -> Iterator[str]:
    name = unique_name("wt_pg")
    yield name
    drop_pg_table(name)


@pytest.fixture
def app() -> str:
    """An application_name of this test's own, so terminating backends only hits ours."""
    return unique_name("wt_app")


@pytest.fixture
def store(table: str, app: str) -> Iterator[Any]:
    from writethrough.stores.postgres import PostgresStore

    with PostgresStore(f"{PG_URL}?application_name={app}", table=table) as s:
        yield s


def admin() -> Any:
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True)


def sql_run(query: str, *params: Any) -> list[tuple[Any, ...]]:
    with admin() as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def raw_rows(table: str) -> dict[bytes, bytes]:
    from psycopg import sql

    with admin() as conn:
        q = sql.SQL("SELECT key, value FROM {}").format(sql.Identifier(table))
        return {bytes(k): bytes(v) for k, v in conn.execute(q)}


def backends(app: str) -> list[int]:
    rows = sql_run(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'test' AND application_name = %s", app
    )
    return sorted(r[0] for r in rows)


def terminate(app: str, wait: bool = True) -> int:
    """Kill every backend of ``app`` (and wait until they are gone); how many there were.

    A backend flushing WAL ends only after the flush, which a busy disk can hold up
    for seconds: tests that kill busy backends do not wait.
    """
    killed = {
        pid
        for pid, done in sql_run(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'test' AND application_name = %s",
            app,
        )
        if done
    }
    if wait:  # the pool may already be connecting new ones: wait for the killed only
        eventually(lambda: not killed.intersection(backends(app)), seconds=10)
    return len(killed)


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``check`` until it holds (a closed connection's backend exits asynchronously)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("writethrough:")}


def open_pg(conninfo: str = PG_URL, **kwargs: Any) -> Any:
    from writethrough.stores.postgres import PostgresStore

    return PostgresStore(conninfo, **kwargs)


# -- values


def test_store_load_remove(store: Any, table: str) -> None:
    store.store(b"k", b"v")
    assert store.load(b"k") == b"v"
    assert raw_rows(table) == {b"k": b"v"}  # committed: another connection sees it
    store.store(b"k", b"v2")
    assert raw_rows(table) == {b"k": b"v2"}
    assert store.remove(b"k") is True
    assert store.remove(b"k") is False
    assert store.load(b"k") is None
    assert raw_rows(table) == {}


def test_empty_values_binary_keys_and_16_mib(store: Any, table: str) -> None:
    store.store(b"empty", b"")
    assert store.load(b"empty") == b""
    store.store(b"", b"empty key")
    assert store.load(b"") == b"empty key"
    keys = [bytes([i]) for i in range(256)] + [bytes(range(256)), "ключ ✓".encode()]
    store.store_many([(k, k[::-1]) for k in keys])
    assert store.load_many(keys) == {k: k[::-1] for k in keys}
    assert all(store.load(k) == k[::-1] for k in keys[::37])
    big = os.urandom(16 << 20)
    store.store(b"big", big)
    loaded = store.load(b"big")
    assert type(loaded) is bytes and loaded == big
    assert raw_rows(table)[b"big"] == big


# -- batches


def test_batches(store: Any, table: str) -> None:
    assert store.load_many([]) == {}
    store.store_many([])
    assert store.remove_many([]) == []
    store.store(b"a", b"old")
    store.store_many([(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"b", b"last")])
    assert raw_rows(table) == {b"a": b"1", b"b": b"last", b"c": b"3"}  # repeated key: last wins
    assert store.load_many(iter([b"a", b"x", b"a", b"c"])) == {b"a": b"1", b"c": b"3"}
    assert store.remove_many([b"a", b"x", b"a", b"c"]) == [True, False, False, True]
    assert raw_rows(table) == {b"b": b"last"}


def test_failed_store_many_applies_nothing_and_reports_every_key(store: Any, table: str) -> None:
    import psycopg

    store.store(b"a", b"before")
    items = [(b"a", b"after"), (b"b", b"2"), (b"c", None), (b"d", b"4")]
    with pytest.raises(BatchError) as info:
        store.store_many(items)
    assert set(info.value.failed) == {b"a", b"b", b"c", b"d"}
    assert info.value.succeeded == []
    assert all(isinstance(e, StoreWriteError) for e in info.value.failed.values())
    assert isinstance(info.value.__cause__, psycopg.errors.NotNullViolation)
    assert table in str(info.value)
    assert raw_rows(table) == {b"a": b"before"}
    store.store(b"e", b"5")  # the connection is usable afterwards
    assert raw_rows(table) == {b"a": b"before", b"e": b"5"}


def test_huge_batch_is_chunked_in_one_transaction(
    store: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import writethrough.stores.postgres as pg

    monkeypatch.setattr(pg, "_CHUNK_BYTES", 10)  # several statements, one transaction
    items = [(b"k%02d" % i, b"value-%d" % i) for i in range(30)]
    store.store_many(items)
    assert raw_rows(table) == dict(items)
    with pytest.raises(BatchError) as info:
        store.store_many([(b"k00", b"new"), (b"k01", b"new"), (b"k99", None)])
    assert info.value.succeeded == []
    assert raw_rows(table) == dict(items)  # the first chunk was rolled back too


def test_url_forms_and_options(table: str, app: str) -> None:
    url = (
        f"postgres://postgres:{PASSWORD}@127.0.0.1:{PG_PORT}/test?table={table}&pool_size=3"
        f"&pool_min=2&timeout=2.5&connect_timeout=3&prepare=false&application_name={app}"
    )
    store = wt.url.open_store(url)
    try:
        assert store.identity == f"postgresql://postgres@127.0.0.1:{PG_PORT}/test#public.{table}"
        assert store.table == f"public.{table}"
        assert repr(store) == (
            f"PostgresStore('postgresql://postgres@127.0.0.1:{PG_PORT}/test', "
            f"table='public.{table}', pool_size=3, pool_min=2, timeout=2.5)"
        )
        assert store._prepare is False and store._connect_timeout == 3.0
        assert eventually(lambda: len(backends(app)) == 2)  # pool_min, with our application_name
        store.store(b"k", b"v")
    finally:
        store.close()
    assert eventually(lambda: backends(app) == [])
    with wt.open(f"postgresql://127.0.0.1/test?table={table}&user=postgres", capacity=5) as cache:
        assert cache.backing_store.identity == store.identity  # same table, same identity
        assert cache.capacity == 5
        cache.put("x", [1, 2])
        assert cache.get("x") == [1, 2]
    with wt.url.open_store(PG_URL, table=table, pool_size=2, timeout=1) as kw:
        assert kw._pool_size == 2 and kw._timeout == 1.0


def test_unknown_option_is_refused_and_the_store_closed(table: str) -> None:
    before = pool_threads()
    with pytest.raises(ConfigError, match="bogus"):
        wt.url.open_store(f"{PG_URL}?table={table}&bogus=1")
    with pytest.raises(ConfigError, match="bogus"):
        wt.open(f"{PG_URL}?table={table}", bogus=1)
    assert pool_threads() == before


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("pool_size=abc", "pool_size"),
        ("pool_size=0", "pool_size"),
        ("pool_size=1.5", "pool_size"),
        ("pool_size=2&pool_min=3", "pool_min"),
        ("pool_min=-1", "pool_min"),
        ("timeout=soon", "timeout"),
        ("timeout=0", "timeout"),
        ("timeout=nan", "timeout"),
        ("connect_timeout=-1", "connect_timeout"),
        ("connect_timeout=inf", "connect_timeout"),
        ("prepare=maybe", "prepare"),
        ("table=", "table name"),
    ],
)
def test_bad_option_values_are_refused_before_connecting(query: str, name: str) -> None:
    # an unreachable port: ConfigError (not StoreUnavailable) shows nothing was tried
    with pytest.raises(ConfigError, match=name):
        wt.url.open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/test?{query}")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool_size": True},
        {"pool_size": "4"},
        {"pool_min": 1.0},
        {"timeout": True},
        {"timeout": float("inf")},
        {"connect_timeout": 0},
        {"prepare": "yes"},
    ],
)
def test_bad_constructor_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        open_pg(f"postgresql://postgres@127.0.0.1:{free_port()}/test", **kwargs)


def test_bad_conninfo_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as info:
        open_pg(f"host=127.0.0.1 password {PASSWORD}")
    assert PASSWORD not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ConfigError) as info:
        open_pg(f"postgresql://u:{PASSWORD}%zz@127.0.0.1/test")
    assert PASSWORD not in str(info.value)
    with pytest.raises(ConfigError):
        open_pg(b"host=127.0.0.1")  # type: ignore[arg-type]


def test_hostile_table_names_are_refused_and_nothing_is_created(table: str) -> None:
    sql_run(f"CREATE TABLE {table} (x int)")  # a victim the hostile names try to drop
    hostile = [
        f'x"; DROP TABLE {table}; --',
        f"x; DROP TABLE {table}",
        "",
        ".",
        "a.",
        ".a",
        "a.b.c",
        "1abc",
        "a" * 64,
        "has space",
        "dash-ed",
        "tablé",
        "x\x00y",
        "pg_catalog.t",
        "information_schema.t",
        None,
        42,
    ]
    for name in hostile:
        with pytest.raises(ConfigError, match="table name"):
            open_pg(table=name)
    assert sql_run("SELECT to_regclass(%s) IS NOT NULL", table) == [(True,)]
    hits = sql_run("SELECT relname FROM pg_class WHERE relname LIKE '%DROP%' OR relname = 'x'")
    assert hits == []


def test_longest_name_and_schema_qualified_table() -> None:
    schema = unique_name("wt_schema")
    long_name = "t" + "x" * 62
    sql_run(f"CREATE SCHEMA {schema}")
    try:
        with open_pg(table=f"{schema}.{long_name}") as store:
            store.store(b"k", b"v")
            assert store.identity.endswith(f"#{schema}.{long_name}")
        rows = sql_run(f"SELECT key, value FROM {schema}.{long_name}")
        assert rows == [(b"k", b"v")]
        with pytest.raises(ConfigError, match="schema"):  # a schema that does not exist
            open_pg(table=f"{schema}_missing.t")
    finally:
        sql_run(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize(
    ("ddl", "problem"),
    [
        ("(id int PRIMARY KEY, name text)", "no column 'key'"),
        ("(key text PRIMARY KEY, value bytea)", "'key' is not bytea"),
        ("(key bytea PRIMARY KEY, value text)", "'value' is not bytea"),
        ("(key bytea, value bytea)", "not its primary key"),
        ("(key bytea PRIMARY KEY, value bytea, owner text NOT NULL)", "owner require"),
    ],
)
def test_existing_table_of_another_shape_is_refused(table: str, ddl: str, problem: str) -> None:
    sql_run(f"CREATE TABLE {table} {ddl}")
    before = pool_threads()
    with pytest.raises(ConfigError, match=problem) as info:
        open_pg(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{PG_PORT}/test", table=table)
    assert table in str(info.value) and PASSWORD not in str(info.value)
    assert pool_threads() == before


def test_view_is_refused_and_extra_optional_columns_are_fine(table: str) -> None:
    sql_run(f"CREATE TABLE {table} (key bytea PRIMARY KEY, value bytea, at timestamptz)")
    sql_run(f"CREATE VIEW {table}_v AS SELECT key, value FROM {table}")
    try:
        with pytest.raises(ConfigError, match="not a table"):
            open_pg(table=f"{table}_v")
        with open_pg(table=table) as store:
            store.store(b"k", b"v")
            assert store.load(b"k") == b"v"
    finally:
        sql_run(f"DROP VIEW {table}_v")


def test_concurrent_creation_of_one_table(table: str) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[Any] = []

    def create() -> None:
        barrier.wait()
        try:
            outcomes.append(open_pg(table=table, pool_min=0))
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        outcomes[0].store(b"k", b"from one")
        assert all(s.load(b"k") == b"from one" for s in outcomes)
    finally:
        for s in outcomes:
            if not isinstance(s, BaseException):
                s.close()


def test_password_is_never_shown(table: str) -> None:
    for conninfo in (
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{PG_PORT}/test",
        f"host=127.0.0.1 port={PG_PORT} dbname=test user=postgres password={PASSWORD}",
    ):
        with open_pg(conninfo, table=table) as store:
            assert (
                store.identity == f"postgresql://postgres@127.0.0.1:{PG_PORT}/test#public.{table}"
            )
            assert PASSWORD not in repr(store) + store.identity
            sql_run(f"DROP TABLE {table}")  # an error with the password in the URL
            with pytest.raises(StoreError) as info:
                store.load(b"k")
            assert PASSWORD not in str(info.value)
        assert PASSWORD not in repr(store)
    with pytest.raises(StoreUnavailable) as info:
        open_pg(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test")
    assert PASSWORD not in str(info.value)


# -- closing


def test_closed_store_refuses_every_call_and_stops_its_threads(table: str) -> None:
    before = pool_threads()
    store = open_pg(table=table)
    assert len(pool_threads()) > len(before)
    store.store(b"k", b"v")
    store.close()
    store.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lambda: store.load(b"k"),
        lambda: store.store(b"k", b"v"),
        lambda: store.remove(b"k"),
        lambda: store.load_many([]),
        lambda: store.store_many([]),
        lambda: store.remove_many([]),
        lambda: store.load_many([b"k"]),
    ]
    for call in calls:
        with pytest.raises(CacheClosed):
            call()
    assert pool_threads() == before
    assert raw_rows(table) == {b"k": b"v"}
    assert repr(store).endswith(", closed)")


# -- error mapping


def test_unreachable_server_fails_fast_at_construction_with_no_threads_left() -> None:
    import psycopg

    before = set(threading.enumerate())
    port = free_port()
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        open_pg(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=3)
    assert time.monotonic() - start < 2.5
    assert f"127.0.0.1:{port}" in str(info.value) and "running" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert set(threading.enumerate()) == before
    with pytest.raises(StoreUnavailable):
        wt.open(f"postgresql://postgres@127.0.0.1:{port}/test")
    assert set(threading.enumerate()) == before


def test_failing_pool_open_leaves_no_threads(store: Any) -> None:
    from psycopg.conninfo import make_conninfo

    before = pool_threads()
    store._conninfo = make_conninfo(store._conninfo, port=str(free_port()))
    store._connect_timeout = 0.3
    with pytest.raises(StoreUnavailable, match="pooled connection"):
        store._new_pool()
    assert pool_threads() == before


def test_write_refusals_map_to_store_write_error_and_store_full(store: Any, table: str) -> None:
    import psycopg

    with pytest.raises(StoreWriteError) as info:  # too long for the primary-key index
        store.store(os.urandom(4000), b"v")
    assert isinstance(info.value.__cause__, psycopg.errors.ProgramLimitExceeded)
    sql_run(
        f"""
        CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.key = 'full' THEN RAISE EXCEPTION 'no space left' USING ERRCODE = 'disk_full';
          END IF;
          IF NEW.key = 'bad' THEN RAISE EXCEPTION 'bad key refused'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {table}
          FOR EACH ROW EXECUTE FUNCTION {table}_refuse();
        """
    )
    try:
        with pytest.raises(StoreWriteError, match="bad key refused") as info:
            store.store(b"bad", b"v")
        assert isinstance(info.value.__cause__, psycopg.errors.RaiseException)
        with pytest.raises(StoreFull, match="no space left") as full:
            store.store(b"full", b"v")
        assert isinstance(full.value.__cause__, psycopg.errors.DiskFull)
        with pytest.raises(BatchError) as batch:
            store.store_many([(b"ok", b"1"), (b"full", b"2")])
        assert all(isinstance(e, StoreFull) for e in batch.value.failed.values())
        store.store(b"ok", b"1")
        assert raw_rows(table) == {b"ok": b"1"}
    finally:
        sql_run(f"DROP FUNCTION {table}_refuse() CASCADE")


def test_dropped_table_maps_reads_to_store_error_and_writes_to_store_write_error(
    store: Any, table: str
) -> None:
    import psycopg

    store.store(b"k", b"v")
    sql_run(f"DROP TABLE {table}")
    with pytest.raises(StoreError) as info:
        store.load(b"k")
    assert type(info.value) is StoreError  # a refused read, not "unavailable"
    assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)
    with pytest.raises(StoreError) as info:
        store.load_many([b"k"])
    assert type(info.value) is StoreError
    with pytest.raises(StoreWriteError):
        store.store(b"k", b"v")
    with pytest.raises(StoreWriteError):
        store.remove(b"k")
    with pytest.raises(BatchError) as batch:
        store.remove_many([b"k", b"j"])
    assert list(batch.value.failed) == [b"k", b"j"]


def test_statement_timeout_and_pool_timeout_map_to_store_unavailable(table: str) -> None:
    import psycopg

    conninfo = f"{PG_URL}?options=-c%20statement_timeout%3D200"
    with open_pg(conninfo, table=table, pool_size=1, timeout=0.3) as store:
        store.store(b"k", b"v")
        with admin() as locker:
            locker.execute("BEGIN")
            locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailable) as info:
                store.load(b"k")
            assert isinstance(info.value.__cause__, psycopg.errors.QueryCanceled)
            with pytest.raises(StoreUnavailable):
                store.store(b"k", b"new")
            locker.execute("ROLLBACK")
        assert store.load(b"k") == b"v"
        held = store._pool.getconn()  # the only pooled connection is busy
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"no connection within 0\.3 s"):
                store.load(b"k")
            assert 0.25 < time.monotonic() - start < 2
            with pytest.raises(StoreUnavailable):
                store.store(b"k", b"x")
        finally:
            store._pool.putconn(held)
        assert store.load(b"k") == b"v"


# -- recovery


def test_terminated_backends_are_replaced_transparently(table: str, app: str) -> None:
    with open_pg(f"{PG_URL}?application_name={app}", table=table, pool_min=2) as store:
        store.store(b"k", b"1")
        before = backends(app)
        assert terminate(app) >= 2
        assert store.load(b"k") == b"1"  # a read is retried once on a tested connection
        assert terminate(app) >= 1
        store.store(b"k", b"2")  # nothing was sent on the dead connection: swapped first
        assert terminate(app) >= 1
        assert store.remove_many([b"k", b"x"]) == [True, False]
        assert terminate(app) >= 1
        store.store_many([(b"a", b"1")])
        assert terminate(app) >= 1
        assert store.load_many([b"a"]) == {b"a": b"1"}
        assert terminate(app) >= 1
        assert store.remove(b"a") is True
        assert set(backends(app)).isdisjoint(before)


def test_write_cut_off_mid_statement_raises_store_unavailable(table: str, app: str) -> None:
    with open_pg(f"{PG_URL}?application_name={app}", table=table) as store:
        store.store(b"k", b"old")
        with admin() as locker:
            locker.execute("BEGIN")
            locker.execute(f"SELECT * FROM {table} WHERE key = 'k' FOR UPDATE")
            outcome: list[BaseException | None] = []

            def write() -> None:
                try:
                    store.store(b"k", b"new")
                    outcome.append(None)
                except BaseException as exc:
                    outcome.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not sql_run(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'",
                app,
            ):
                time.sleep(0.005)
            terminate(app)  # the write is on the wire, waiting for the row lock
            writer.join(5)
            locker.execute("ROLLBACK")
        assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome
        assert raw_rows(table) == {b"k": b"old"}  # not retried behind the caller's back
        store.store(b"k", b"new")  # the same store works again
        assert store.load(b"k") == b"new"


def test_threads_survive_repeated_terminations(table: str, app: str) -> None:
    with open_pg(f"{PG_URL}?application_name={app}", table=table, pool_size=3) as store:
        stop = threading.Event()
        unexpected: list[BaseException] = []
        acked: dict[bytes, bytes] = {}
        unavailable = [0]

        def worker(t: int) -> None:
            i = 0
            while not stop.is_set():
                key, value = b"t%d-%d" % (t, i % 50), b"%d" % i
                try:
                    store.store(key, value)
                    acked[key] = value
                    got = store.load(key)
                    assert got is not None
                except StoreUnavailable:
                    unavailable[0] += 1
                    acked.pop(key, None)  # the store may or may not hold it now
                except BaseException as exc:
                    unexpected.append(exc)
                    return
                i += 1

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for _ in range(5):
            time.sleep(0.1)
            terminate(app, wait=False)
        time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(10)
        assert unexpected == []
        rows = raw_rows(table)
        assert all(rows[k] == v for k, v in acked.items())
        deadline = time.monotonic() + 10  # the same store works again within bounded time
        while True:
            try:
                store.store(b"after", b"1")
                assert store.load(b"after") == b"1"
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_cache_over_the_store_survives_terminate(table: str, app: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/test?table={table}&application_name={app}"
    with wt.open(url, capacity=10) as cache:
        cache.put("a", 1)
        terminate(app)
        try:
            cache.put("b", 2)
        except StoreUnavailable:
            cache.put("b", 2)
        cache.evict_all()
        terminate(app)
        assert cache.get("a") == 1
        assert cache.get("b") == 2
    with wt.WriteThroughCache(open_pg(f"{PG_URL}?application_name={app}", table=table)) as cache:
        assert cache.get("a") == 1
        terminate(app)
        cache.put("a", 3)
        cache.evict("a")
        assert cache.get("a") == 3


# -- processes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_uses_its_own_connections(table: str, app: str) -> None:
    import writethrough.stores.postgres as pg

    with open_pg(f"{PG_URL}?application_name={app}", table=table, pool_min=2) as store:
        store.store(b"parent", b"1")
        parent_pool = store._pool
        assert eventually(lambda: len(backends(app)) == 2)
        parent_pids = backends(app)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: must never use (or close) the parent's connections
            code = 1
            try:
                os.close(read_end)
                ok = store.load(b"parent") == b"1"
                store.store(b"child", b"2")
                with store._pool.connection() as conn:
                    child_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                ok = ok and store._pool is not parent_pool and child_pid not in parent_pids
                ok = ok and store.identity.endswith(f"#public.{table}")
                del parent_pool
                pg._INHERITED.clear()  # the parent's pool and connections are collected...
                gc.collect()  # ...without sending Terminate on the parent's sockets
                os.write(write_end, b"ok" if ok else b"no")
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.read(read_end, 2) == b"ok"
        os.close(read_end)
        assert store._pool is parent_pool
        # the child's own backends end when it exits; the parent's were left alone
        assert eventually(lambda: backends(app) == parent_pids)
        assert store.load(b"child") == b"2"
        store.store(b"parent", b"3")
        stats = store._pool.get_stats()
        assert stats.get("connections_lost", 0) == 0 and stats.get("returns_bad", 0) == 0
        assert raw_rows(table) == {b"parent": b"3", b"child": b"2"}


def test_two_stores_over_one_table_see_each_others_writes(table: str) -> None:
    with open_pg(table=table) as one, open_pg(f"{PG_URL}?application_name=x", table=table) as two:
        assert one.identity == two.identity
        one.store(b"k", b"from one")
        assert two.load(b"k") == b"from one"
        two.store_many([(b"k", b"from two"), (b"j", b"2")])
        assert one.load_many([b"k", b"j"]) == {b"k": b"from two", b"j": b"2"}
        assert one.remove_many([b"j"]) == [True]
        assert two.load(b"j") is None


def test_many_threads_share_a_small_pool(table: str) -> None:
    with open_pg(table=table, pool_size=2) as store:
        errors: list[BaseException] = []

        def worker(t: int) -> None:
            try:
                for i in range(60):
                    store.store(b"t%d-%d" % (t, i), b"%d" % i)
                    assert store.load(b"t%d-%d" % (t, i)) == b"%d" % i
                    if i % 20 == 0:
                        batch = [(b"t%d-b%d-%d" % (t, i, j), b"b") for j in range(10)]
                        store.store_many(batch)
                        assert store.remove_many([k for k, _ in batch]) == [True] * 10
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(raw_rows(table)) == 8 * 60
        assert store._pool.get_stats()["pool_size"] <= 2


def test_statements_are_prepared_unless_disabled(table: str) -> None:
    for prepare, expected in ((True, True), (False, False)):
        with open_pg(table=table, pool_size=1, prepare=prepare) as store:
            store.store(b"k", b"v")
            store.load(b"k")
            with store._pool.connection() as conn:
                names = conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()
            assert any(table in text for (text,) in names) is expected


def test_durability_is_read_from_the_server(table: str) -> None:
    """The session's synchronous_commit decides what an acknowledged write survives."""
    from writethrough.stores.postgres import PostgresStore

    with PostgresStore(PG_URL, table=table) as s:  # the server's default
        assert s.durability.startswith("synchronous_commit=on: durable")
    off = f"{PG_URL}?options=-csynchronous_commit%3Doff"  # as a role or database setting would
    with PostgresStore(off, table=table) as s:
        assert s.durability.startswith("synchronous_commit=off:")
        assert "lost on a server crash" in s.durability

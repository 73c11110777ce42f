"""The PostgreSQL bus: NOTIFY in the store's transaction, the trigger, payload limits, faults."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import PG_PORT, PG_URL, drop_pg_table, require_module, require_server, unique_name
from test_bus_peer import Peer, assert_recovers, prime, two_peers, until


@pytest.fixture(autouse=True)
def _needs_postgres() -> None:
    require_server("PostgreSQL", PG_PORT)
    require_module("psycopg")


@pytest.fixture
def table() -> Iterator[str]:
    name = unique_name("wt_bus")
    yield name
    drop_pg_table(name)


def _sql(statement: str, *args: object) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(statement, args or None)  # type: ignore[arg-type]


def test_postgres_store_notifies_in_its_own_transaction(table: str) -> None:
    # heartbeats of 0.5 s: a bus thread starved on a loaded machine would flush
    with two_peers(f"{PG_URL}?table={table}", bus=PG_URL, bus_heartbeat=0.5) as (a, b):
        prime(a, b, "k", 1)
        a("put", "k", 2)
        assert b("wait_for", "k", 2, 5.0) is not None
        received = b("stats")["bus_received"]
        # a write the database refuses (a key too long for the primary-key index) rolls
        # back, and with it its NOTIFY: nobody hears of it
        with pytest.raises(RuntimeError, match="StoreWriteError"):
            a("put", "x" * 9000, 1)
        a("sleep", 0.3)
        assert b("stats")["bus_received"] == received
        assert b("stats")["bus_flushes"] == 0
        # a batch too large for one NOTIFY payload (8000 bytes) sends a flush instead
        b("get", "k")
        assert until(lambda: b("held", "k"))
        a("put_many", {f"key-{i:04d}": i for i in range(1000)})
        assert until(lambda: b("stats")["bus_flushes"] >= 1)
        assert not b("held", "k")
        assert b("get", "key-0999") == 999
        assert a("stats")["bus_published"] >= 3  # the store's notifies are counted


def test_sqlite_store_with_postgres_bus_large_batch_flushes(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    channel = unique_name("pg").replace("_", "-")
    with two_peers(store, bus=PG_URL, channel=channel) as (a, b):
        prime(a, b, "k", 1)
        a("put_many", {f"key-{i:04d}": i for i in range(1000)})  # > 8000 bytes of keys
        assert until(lambda: b("stats")["bus_flushes"] >= 1)
        assert not b("held", "k")


def test_trigger_makes_plain_sql_writes_notify(table: str) -> None:
    store = f"{PG_URL}?table={table}"
    # a long heartbeat: this test is about the trigger, and on a loaded machine a
    # starved bus thread may count as cut off (a flush) within a short one
    b = Peer(store, bus=PG_URL, bus_heartbeat=1.0)
    try:
        b("put", "k", 1)
        b("put", "other", 1)
        assert b("held", "k")
        command = [sys.executable, "-m", "writethrough.cli", "bus", "install-trigger", store]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "installed on" in done.stdout
        # another program rewrites the row with plain SQL (msgpack of 2 is b"\x02")
        _sql(f'UPDATE "{table}" SET value = %s WHERE key = %s', b"\x02", b"sk")
        assert b("wait_for", "k", 2, 5.0) is not None
        assert b("held", "other")  # only the named key was dropped
        _sql(f'DELETE FROM "{table}" WHERE key = %s', b"sother")
        assert b("wait_for", "other", None, 5.0) is not None
        b("put", "k", 3)
        _sql(f'TRUNCATE "{table}"')
        assert b("wait_for", "k", None, 5.0) is not None  # TRUNCATE flushes
        removed = subprocess.run([*command, "--remove"], capture_output=True, text=True)
        assert removed.returncode == 0, removed.stderr
    finally:
        b.close()


def test_terminated_listener_flushes_and_recovers(tmp_path: Path) -> None:
    with two_peers(f"sqlite:///{tmp_path}/s.db", bus=PG_URL) as (a, b):
        prime(a, b, "k", 1)
        _sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            f"writethrough-bus-{b.pid}-sub",
        )
        assert_recovers(a, b)

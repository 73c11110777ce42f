"""The servers on loopback that the store tests use, and how tests claim and clean up space there.

In CI (``CI`` set) a server that does not answer fails the test; elsewhere the
test is skipped with the reason, so a laptop without PostgreSQL still runs the rest.
Every test works under a name of its own (``unique_name``) and removes only that.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import pytest

PG_PORT = 5432
REDIS_PORT = 6379
MYSQL_PORT = 3306
NATS_PORT = 4222

PG_URL = f"postgresql://postgres@127.0.0.1:{PG_PORT}/test"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
MYSQL_URL = f"mysql://root@127.0.0.1:{MYSQL_PORT}/test"
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"

IN_CI = bool(os.environ.get("CI"))


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str, port: int) -> None:
    """Fail (in CI) or skip (elsewhere, saying why) when nothing listens on ``port``."""
    if port_open(port):
        return
    message = f"{name} is not reachable on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI needs it (.ci/run starts it)")
    pytest.skip(f"{message} (outside CI the test is skipped; start the server to run it)")


def require_module(name: str) -> Any:
    """Import a driver; missing in CI is a failure, elsewhere a skip."""
    try:
        return __import__(name)
    except ImportError as exc:
        if IN_CI:
            pytest.fail(f"driver {name!r} is not installed ({exc}); CI installs .[dev,all]")
        pytest.skip(f"driver {name!r} is not installed; pip install -e '.[dev,all]'")


def unique_name(prefix: str = "wt_test") -> str:
    """A table name / key prefix no other test (or run) uses."""
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def drop_pg_table(table: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def drop_mysql_table(table: str) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")  # a unique_name(): [a-z0-9_] only
        conn.commit()
    finally:
        conn.close()


def delete_redis_prefix(prefix: str, port: int = REDIS_PORT) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        pattern = prefix.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    finally:
        client.close()

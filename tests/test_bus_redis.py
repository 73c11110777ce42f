"""The Redis bus under faults: its connection killed, its server stopped and restarted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from servers import (
    REDIS_PORT,
    REDIS_URL,
    delete_redis_prefix,
    require_module,
    require_server,
    unique_name,
)
from test_bus_peer import (
    Peer,
    assert_outage_handled,
    assert_recovers,
    prime,
    redis_server,
    two_peers,
    until,
)


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_server("Redis", REDIS_PORT)
    require_module("redis")


def test_client_kill_of_the_listener_flushes_and_recovers(tmp_path: Path) -> None:
    import redis

    store = f"sqlite:///{tmp_path}/s.db"
    channel = unique_name("kill").replace("_", "-")
    a = Peer(store, bus=REDIS_URL, channel=channel)
    b = Peer(store, bus=REDIS_URL, channel=channel)
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        prime(a, b, "k", 1)
        name = f"writethrough-bus-{b.pid}-sub"
        ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
        assert len(ids) == 1, admin.client_list()
        admin.execute_command("CLIENT", "KILL", "ID", ids[0])
        assert_recovers(a, b)
    finally:
        admin.close()
        a.close()
        b.close()


def test_message_larger_than_one_socket_read_arrives_whole(tmp_path: Path) -> None:
    """The listener reads its socket itself (64 KiB at a time): a batch message of
    about 400 KB, and small messages queued behind it, all arrive intact."""
    channel = unique_name("big").replace("_", "-")
    # heartbeats of 0.5 s: this test counts flushes, and a bus thread starved on a
    # loaded machine would flush within a short one
    with two_peers(
        f"sqlite:///{tmp_path}/s.db", bus=REDIS_URL, channel=channel, bus_heartbeat=0.5
    ) as (a, b):
        prime(a, b, "k", 1)
        b("get", "key-4999-" + "x" * 30)
        b("get", "k2")
        received = b("stats")["bus_received"]
        a("put_many", {f"key-{i:04d}-" + "x" * 30: i for i in range(5000)})
        a("put", "k2", 2)
        assert until(lambda: b("stats")["bus_received"] >= received + 2)
        assert b("get", "key-4999-" + "x" * 30) == 4999
        assert b("get", "k2") == 2
        assert b("held", "k")  # the batch named its keys: nothing else was dropped
        assert b("stats")["bus_flushes"] == 0


def test_bus_server_down_serves_from_the_store_then_recovers(tmp_path: Path) -> None:
    server = redis_server(tmp_path)
    assert_outage_handled(server, f"redis://127.0.0.1:{server.port}/0", tmp_path)


def test_tracking_follows_plain_redis_cli_writes() -> None:
    prefix = unique_name("wtbus") + ":"
    store = f"{REDIS_URL}?prefix={prefix}"
    # a long heartbeat: this test is about tracking, and on a loaded machine a
    # starved bus thread may count as cut off (a flush) within a short one
    b = Peer(store, bus=f"{REDIS_URL}?tracking=true", bus_heartbeat=1.0)
    try:
        b("put", "k", 1)
        b("put", "other", 1)
        assert b("get", "k") == 1
        b("sleep", 0.2)  # the echoes of its own writes (tracking reports them too) are in
        assert b("get", "k") == 1 and b("held", "k") and b("get", "other") == 1
        # another program writes the key with a plain SET (msgpack of 5 is b"\x05")
        key = (prefix + "sk").encode()
        done = subprocess.run(
            ["redis-cli", "-p", str(REDIS_PORT), "SET", key, b"\x05"], capture_output=True
        )
        assert done.returncode == 0 and done.stdout.strip() == b"OK", done
        assert b("wait_for", "k", 5, 5.0) is not None
        assert b("held", "other")  # only that key was dropped
        subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "DEL", key], check=True)
        assert b("wait_for", "k", None, 5.0) is not None
        assert b("stats")["bus_flushes"] == 0
    finally:
        b.close()
        delete_redis_prefix(prefix)


def test_tracking_needs_a_redis_store(tmp_path: Path) -> None:
    import writethrough as wt

    with pytest.raises(wt.ConfigError, match="tracking=true"):
        wt.open(f"sqlite:///{tmp_path}/s.db", bus=f"{REDIS_URL}?tracking=true")

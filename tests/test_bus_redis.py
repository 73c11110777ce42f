"""The Redis bus under faults: its connection killed, its server stopped and restarted."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import REDIS_PORT, REDIS_URL, require_module, require_server, unique_name
from test_bus_peer import Peer, assert_recovers, prime, redis_server, until


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


def test_bus_server_down_serves_from_the_store_then_recovers(tmp_path: Path) -> None:
    server = redis_server(tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    store = f"sqlite:///{tmp_path}/s.db"
    a = b = None
    try:
        a = Peer(store, bus=url)  # the default channel: derived from the store, the same in both
        b = Peer(store, bus=url)
        prime(a, b, "k", 1)
        server.stop()
        assert until(lambda: not b("installing"), 2.0)  # noticed within a few heartbeats
        assert not b("held", "k")
        flushes = b("stats")["bus_flushes"]
        for value in (2, 3):
            a("put", "k", value)  # durable: the store does not need the bus
            assert b("get", "k") == value  # served from the store, never stale
            assert not b("held", "k")  # and nothing installed while disconnected
        server.start()  # the same port
        assert until(lambda: b("installing") and b("connected"), 10.0)
        assert b("stats")["bus_flushes"] > flushes  # flushed again on resubscribing
        assert until(lambda: a("connected") and a("installing"), 10.0)
        a("put", "k", 4)
        assert b("wait_for", "k", 4, 5.0) is not None
        assert until(lambda: b("stats")["bus_received"] >= 2)
        assert b("get", "k") == 4 and b("held", "k")  # caching again, same cache object
        assert a("stats")["bus_publish_errors"] >= 1  # its heartbeats failed while down
    finally:
        for peer in (a, b):
            if peer is not None:
                peer.close()
        server.stop()

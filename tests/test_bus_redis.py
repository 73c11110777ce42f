"""The Redis bus under faults: its connection killed, its server stopped and restarted."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import REDIS_PORT, REDIS_URL, require_module, require_server, unique_name
from test_bus_peer import Peer, assert_outage_handled, assert_recovers, prime, redis_server


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
    assert_outage_handled(server, f"redis://127.0.0.1:{server.port}/0", tmp_path)

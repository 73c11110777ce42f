"""Several real processes over one store, kept coherent by each bus against the real servers.

Each test spawns processes (multiprocessing, spawn) that each open a cache on
the same SQLite file with the bus under test. The buses run against the
loopback servers (``tests/servers.py``); a missing server fails in CI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import (
    NATS_PORT,
    NATS_URL,
    PG_PORT,
    PG_URL,
    REDIS_PORT,
    REDIS_URL,
    require_module,
    require_server,
    unique_name,
)
from test_bus_peer import Peer, two_peers

BUSES = {
    "redis": (REDIS_URL, "Redis", REDIS_PORT, "redis"),
    "postgresql": (PG_URL, "PostgreSQL", PG_PORT, "psycopg"),
    "nats": (NATS_URL, "NATS", NATS_PORT, "nats"),
}


def _bus_url(name: str) -> str:
    url, server, port, module = BUSES[name]
    require_server(server, port)
    require_module(module)
    return url


@pytest.fixture(params=list(BUSES))
def bus_url(request: pytest.FixtureRequest) -> str:
    return _bus_url(request.param)


@pytest.fixture
def pair(tmp_path: Path, bus_url: str) -> Iterator[tuple[Peer, Peer]]:
    """Two processes, A and B, each with a cache over one SQLite file and the bus."""
    channel = unique_name("t").replace("_", "-")
    # heartbeats of 0.5 s: on a loaded machine a bus thread starved for a short interval
    # counts as cut off and flushes (safe, but these tests count flushes)
    with two_peers(
        f"sqlite:///{tmp_path}/shared.db", bus=bus_url, channel=channel, bus_heartbeat=0.5
    ) as peers:
        yield peers


def _settle(peer: Peer, field: str, at_least: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value: int = peer("stats")[field]
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def test_write_in_a_becomes_visible_in_b(pair: tuple[Peer, Peer]) -> None:
    a, b = pair
    a("put", "k", 1)
    _settle(b, "bus_received", 1)  # A's message is in: what B loads now stays
    assert b("get", "k") == 1
    assert b("get", "k") == 1 and b("held", "k")  # B now serves it from memory
    a("put", "k", 2)
    assert b("wait_for", "k", 2, 5.0) is not None
    assert _settle(b, "bus_received", 1) >= 1
    a("invalidate", "k")
    assert b("wait_for", "k", None, 5.0) is not None
    assert b("stats")["bus_flushes"] == 0  # nothing was lost on the way


def test_own_messages_are_ignored(pair: tuple[Peer, Peer]) -> None:
    a, _ = pair
    a("put", "mine", "v")
    a("sleep", 0.3)  # our own message (and heartbeats) came back meanwhile
    assert a("held", "mine")  # not dropped by its own echo
    hits = a("stats")["cache_hits"]
    assert a("get", "mine") == "v"
    stats = a("stats")
    assert stats["cache_hits"] == hits + 1
    assert stats["bus_received"] == 0 and stats["bus_published"] == 1


def test_batches_publish_one_message(pair: tuple[Peer, Peer]) -> None:
    a, b = pair
    keys = ["x", 7, ("t", 1), b"raw"]
    a("put_many", dict.fromkeys(keys, 1))
    _settle(b, "bus_received", 1)
    assert b("get_many", keys) == dict.fromkeys(keys, 1)
    assert all(b("held", k) for k in keys)
    before = _settle(a, "bus_published", 1)
    a("put_many", dict.fromkeys(keys, 2))
    for key in keys:
        assert b("wait_for", key, 2, 5.0) is not None
    assert _settle(a, "bus_published", before + 1) == before + 1
    a("invalidate_many", keys[:2])
    for key in keys[:2]:
        assert b("wait_for", key, None, 5.0) is not None
    assert b("get", keys[2]) == 2


def test_a_dropped_message_is_detected_and_flushes(pair: tuple[Peer, Peer]) -> None:
    a, b = pair
    a("put", "k", 1)
    a("put", "other", 1)
    _settle(b, "bus_received", 2)
    assert b("get", "k") == 1 and b("get", "other") == 1
    assert b("held", "k")
    a("drop_next", 1)  # the next message is numbered but never sent
    a("put", "k", 2)
    seconds = b("wait_for", "k", 2, 5.0)
    assert seconds is not None
    assert seconds < 1.0  # the next heartbeat (100 ms) carried the missing number
    assert _settle(b, "bus_flushes", 1) >= 1
    assert not b("held", "other")  # the whole cache was dropped, not just the key
    a("put", "k", 3)  # and it keeps working
    assert b("wait_for", "k", 3, 5.0) is not None


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 1), st.integers(0, 2)),
        st.tuples(st.just("get"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("many"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("pause"), st.integers(0, 2), st.integers(0, 3)),
    ),
    min_size=5,
    max_size=40,
)


@pytest.fixture(scope="module", params=list(BUSES))
def trio(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[list[Peer]]:
    """Three processes over one SQLite file with the bus (one trio per bus, reused)."""
    url = _bus_url(request.param)
    store = f"sqlite:///{tmp_path_factory.mktemp('mono')}/shared.db"
    channel = unique_name("mono").replace("_", "-")
    peers: list[Peer] = []
    try:
        for _ in range(3):
            peers.append(Peer(store, bus=url, channel=channel))
        yield peers
    finally:
        for peer in peers:
            peer.close()


_round = [0]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=_steps)
def test_monotonic_reads_under_interleaved_writers_and_readers(
    trio: list[Peer], steps: list[tuple[str, int, int]]
) -> None:
    """Writers 0 and 1 put increasing versions; nobody ever reads a version go backwards.

    Within one process a key's versions only grow (DESIGN rule 14), whatever the
    interleaving of puts, gets, batch reads and the bus messages racing them; a
    thread in each process reads the same keys all the while, so its loads race
    the messages too.
    """
    _round[0] += 1
    keys = [f"r{_round[0]}-{i}" for i in range(3)]
    for peer in trio:  # each process also reads these keys on a thread of its own
        assert peer("watch_keys", keys) == 0  # (and the previous example left no violation)
    version = 0
    last_seen: dict[tuple[int, str], int] = {}

    def seen(peer: int, key: str, value: Any) -> None:
        got = -1 if value is None else value
        before = last_seen.get((peer, key), -1)
        assert got >= before, f"peer {peer} read {key} going back from {before} to {got}"
        last_seen[(peer, key)] = got

    for op, peer, arg in steps:
        if op == "put":
            version += 1
            trio[peer]("put", keys[arg], version)
            seen(peer, keys[arg], version)
        elif op == "get":
            seen(peer, keys[arg], trio[peer]("get", keys[arg]))
        elif op == "many":
            found = trio[peer]("get_many", keys)
            for key in keys:
                seen(peer, key, found.get(key))
        else:
            time.sleep(arg / 1000)
    # once the bus delivered everything, every process returns the last version of each key
    for key in keys:
        final = max((v for (_, k), v in last_seen.items() if k == key), default=-1)
        for peer in trio:
            assert peer("wait_for", key, None if final == -1 else final, 2.0) is not None
    for peer in trio:
        assert peer("watch_keys", keys) == 0, "a background reader saw a key go back"

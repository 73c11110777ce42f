"""Two hosts in miniature: processes in separate network namespaces, the bus over a veth link.

The test makes two namespaces joined by a veth pair (``ip netns``, ``ip link``),
runs a Redis server of its own in the first, one cache process in each, and
cuts the link mid-run: the far process must stop caching (and serve from the
shared store) within a few heartbeats, and recover on the same cache object
once the link is back. Everything it made is removed afterwards. It needs root
(``CAP_NET_ADMIN``): skipped outside CI when not root, a failure in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import IN_CI, require_module
from test_bus_peer import OwnServer, free_port, prime, two_peers, until

pytestmark = pytest.mark.timeout(120)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def link() -> Iterator[tuple[str, str, str]]:
    """Namespaces (a, b) joined by a veth pair, a at 10.213.x.1 and b at 10.213.x.2."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if IN_CI:
            pytest.fail("the network namespace test needs root and iproute2 in CI")
        pytest.skip("needs root (ip netns, veth); runs in CI")
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"wt-{tag}-a", f"wt-{tag}-b"
    veth_a, veth_b = f"wt{tag}a", f"wt{tag}b"
    subnet = f"10.213.{int(tag[:2], 16)}"
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", ns_a)
        _ip("link", "set", veth_b, "netns", ns_b)
        for ns, dev, host in ((ns_a, veth_a, 1), (ns_b, veth_b, 2)):
            _ip("-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, subnet
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth, and so the pair
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)


def test_processes_in_two_namespaces_with_the_link_cut(
    link: tuple[str, str, str], tmp_path: Path
) -> None:
    require_module("redis")
    ns_a, ns_b, subnet = link
    port = free_port()
    host = f"{subnet}.1"
    argv = ["ip", "netns", "exec", ns_a, "redis-server", "--port", str(port), "--bind", host]
    argv += ["--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    ping = ["ip", "netns", "exec", ns_a, "redis-cli", "-h", host, "-p", str(port), "PING"]

    def ready() -> bool:
        return subprocess.run(ping, capture_output=True, timeout=5).stdout.strip() == b"PONG"

    server = OwnServer(argv, port, tmp_path, ready=ready)
    server.start()
    bus = f"redis://{subnet}.1:{port}/0"
    store = f"sqlite:///{tmp_path}/shared.db"  # one file both namespaces see
    try:
        with two_peers(store, bus=bus, netns=[ns_a, ns_b], bus_heartbeat=0.1) as (a, b):
            prime(a, b, "k", 1)
            a("put", "k", 2)
            assert b("wait_for", "k", 2, 5.0) is not None  # over the veth link
            prime(a, b, "k", 3)
            _ip("-n", ns_b, "link", "set", f"wt{ns_b[3:9]}b", "down")  # cut mid-run
            cut = time.monotonic()
            assert until(lambda: not b("installing"), 3.0)  # B noticed: silence on its bus
            noticed = time.monotonic() - cut
            assert noticed < 1.5, noticed
            a("put", "k", 4)  # A still writes through to the store
            assert b("get", "k") == 4 and not b("held", "k")  # B reads the store, never stale
            _ip("-n", ns_b, "link", "set", f"wt{ns_b[3:9]}b", "up")
            assert until(lambda: b("installing") and b("connected"), 20.0)
            prime(a, b, "k", 5)  # the same cache object follows the bus again
            a("put", "k", 6)
            assert b("wait_for", "k", 6, 5.0) is not None
            assert b("stats")["bus_flushes"] >= 2
    finally:
        server.stop()

"""The NATS bus under faults: a test-owned nats-server stopped and restarted on its port."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from servers import IN_CI, require_module
from test_bus_peer import assert_outage_handled, nats_server


def test_nats_server_down_serves_from_the_store_then_recovers(tmp_path: Path) -> None:
    require_module("nats")
    if not shutil.which("/usr/sbin/nats-server"):
        if IN_CI:
            pytest.fail("/usr/sbin/nats-server is missing; CI needs it")
        pytest.skip("/usr/sbin/nats-server is not installed")
    server = nats_server(tmp_path)
    assert_outage_handled(server, f"nats://127.0.0.1:{server.port}", tmp_path)

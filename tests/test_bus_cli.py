"""``writethrough bench --processes N --bus URL`` end to end, in real processes."""

from __future__ import annotations

import json
import subprocess
import sys

from servers import REDIS_PORT, REDIS_URL, require_module, require_server

BENCH = [sys.executable, "-m", "writethrough.cli", "bench"]


def test_bench_processes_with_a_bus_reports_coherence() -> None:
    require_server("Redis", REDIS_PORT)
    require_module("redis")
    args = ["--processes", "2", "--bus", REDIS_URL, "--ops", "4000", "--keys", "300", "--json"]
    done = subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["processes"] == 2 and result["ops"] == 4000
    assert result["checked"] == 600 and result["mismatched"] == 0
    assert result["monotonic_violations"] == 0 and result["stale_after_window"] == 0
    assert result["probe_writes"] > 0 and result["published"] > 0 and result["received"] > 0
    assert 0 <= result["window_p50"] <= result["window_p99"] <= result["window_max"]


def test_bench_with_an_unknown_bus_is_refused() -> None:
    done = subprocess.run(
        [*BENCH, "--processes", "2", "--bus", "amqp://x", "--ops", "10", "--keys", "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown bus scheme" in done.stderr

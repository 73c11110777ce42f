"""The hit log: one lock-free append per hit, exact counts, bounded by the maintenance thread."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import pytest

import writethrough as wt
from writethrough import _core
from writethrough.policies import LRUPolicy


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_hits_only_workload_keeps_the_log_bounded_and_the_count_exact() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=16)
    cache.put("k", 1)
    for _ in range(200_000):
        cache.get("k")
    # nothing but hits: only the maintenance thread drains the log
    assert _wait_until(lambda: len(cache._core.hit_log) < _core.DRAIN_AT)
    assert cache.stats().cache_hits == 200_000


def test_hits_from_many_threads_are_counted_exactly() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=16)
    cache.put("k", 1)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(50_000):
            cache.get("k")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats().cache_hits == 400_000


class _FailingHits(LRUPolicy):
    def record_hits(self, keys: Sequence[Hashable]) -> None:
        raise RuntimeError("policy bug")


def test_a_policy_failing_on_hits_does_not_stop_the_maintenance_of_others() -> None:
    broken = wt.WriteThroughCache(wt.MemoryStore(), capacity=4, policy=_FailingHits())
    healthy = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    broken.put("k", 1)
    healthy.put("k", 1)
    for _ in range(3 * _core.DRAIN_AT):
        broken.get("k")
        healthy.get("k")
    assert _wait_until(lambda: len(healthy._core.hit_log) < _core.DRAIN_AT)
    assert _wait_until(lambda: len(broken._core.hit_log) < _core.DRAIN_AT)  # counted anyway
    assert broken.stats().cache_hits == healthy.stats().cache_hits == 3 * _core.DRAIN_AT


def test_lru_learns_recency_from_hits_drained_by_the_maintenance_thread() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=3, policy="lru")
    for key in ("a", "b", "c"):
        cache.put(key, key)
    for _ in range(_core.DRAIN_AT):
        cache.get("a")  # "a" becomes the most recent
    assert _wait_until(lambda: not cache._core.hit_log)
    cache.put("d", "d")  # evicts the least recent: "b"
    assert set(cache._core.data) == {"a", "c", "d"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_has_its_own_maintenance_thread() -> None:
    cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)
    cache.put("k", 1)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)
            for _ in range(100_000):
                cache.get("k")
            ok = _wait_until(lambda: len(cache._core.hit_log) < _core.DRAIN_AT)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_making_a_cache_starts_no_thread() -> None:
    """A process that makes its caches and then forks (a pre-loading server) must
    not carry an extra thread into the fork: the thread starts with the first
    install. Checked in a fresh interpreter."""
    code = (
        "import threading, writethrough as wt\n"
        "cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=4)\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "cache.put('k', 1)\n"
        "assert threading.active_count() == 2, threading.enumerate()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=False
    )
    assert result.returncode == 0, result.stderr


def _env() -> dict[str, str]:
    src = str(Path(wt.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}

"""Rules 4, 5, 6 and 10 under threads: no stale install, single flight, exact stats, bounds.

The stores here block a load on an ``Event`` the test controls, so a ``get`` can
be held mid-load while another thread writes the same key.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import pytest
from conftest import AFTER, FlakyStore, InjectedError

import writethrough as wt
from writethrough.policies import LRUPolicy

#: every test here runs against the threaded and the asyncio cache
pytestmark = pytest.mark.usefixtures("driver")

ABSENT: Any = object()
WAIT = 10.0  # seconds; generous, only reached when something hangs


class GatedStore(FlakyStore):
    """Loads of keys in ``gated`` read the value, announce it, then wait for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: set[Hashable] = set()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_gated = False
        self.delay: Callable[[], float] | None = None

    def _gate(self, keys: Iterable[Hashable]) -> None:
        if self.delay is not None:
            time.sleep(self.delay())
        if self.gated.intersection(keys):
            self.entered.set()
            assert self.release.wait(WAIT), "the test never released the load"
            if self.fail_gated:
                raise InjectedError("injected load failure")

    def lookup(self, key: Hashable, missing: Any) -> Any:
        value = super().lookup(key, missing)  # read first: the value may be old by return
        self._gate([key])
        return value

    def load(self, key: Hashable) -> Any:
        value = super().load(key)
        self._gate([key])
        return value

    def load_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        keys = list(keys)
        found = super().load_many(keys)
        self._gate(keys)
        return found


def _start(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; the list receives its result or exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(target())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _join(t: threading.Thread) -> None:
    t.join(WAIT)
    assert not t.is_alive(), "thread hung"


# ---------------------------------------------------------------- rule 5


READERS: dict[str, Callable[[wt.WriteThroughCache], Any]] = {
    "get": lambda c: c.get("k"),
    "get_many": lambda c: c.get_many(["k"]),
    "get_or_compute": lambda c: c.get_or_compute("k", lambda _: "computed"),
}
WRITERS: dict[str, Callable[[wt.WriteThroughCache], Any]] = {
    "put": lambda c: c.put("k", "v2"),
    "invalidate": lambda c: c.invalidate("k"),
    "put_many": lambda c: c.put_many({"k": "v2"}),
    "invalidate_many": lambda c: c.invalidate_many(["k"]),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("writer", list(WRITERS))
def test_rule05_write_during_load_is_never_overwritten(reader: str, writer: str) -> None:
    store = GatedStore()
    store.data["k"] = "v1"
    store.gated.add("k")
    cache = wt.WriteThroughCache(store, capacity=8)
    t, out = _start(lambda: READERS[reader](cache))
    assert store.entered.wait(WAIT)
    WRITERS[writer](cache)  # completes while the load still holds "v1"
    store.gated.clear()
    store.release.set()
    _join(t)
    assert not isinstance(out[0], BaseException), out[0]
    expected = "v2" if writer.startswith("put") else ABSENT
    assert store.data.get("k", ABSENT) == expected
    assert cache.get("k", ABSENT) == expected
    assert cache.get("k", ABSENT) == expected


@pytest.mark.timeout(30)
def test_rule05_failed_write_during_load_is_never_overwritten() -> None:
    store = GatedStore()
    store.data["k"] = "v1"
    store.gated.add("k")
    cache = wt.WriteThroughCache(store, capacity=8)
    t, _ = _start(lambda: cache.get("k"))
    assert store.entered.wait(WAIT)
    store.fail_next_store = AFTER  # the store holds v2, the put raises
    with pytest.raises(wt.StoreError):
        cache.put("k", "v2")
    store.gated.clear()
    store.release.set()
    _join(t)
    assert cache.get("k") == "v2"


@pytest.mark.timeout(60)
def test_rule05_random_timing_rounds() -> None:
    rng = random.Random(1234)
    store = GatedStore()
    store.delay = lambda: rng.random() * 0.0005
    cache = wt.WriteThroughCache(store, capacity=1000)
    for rnd in range(150):
        key = ("k", rnd)
        store.data[key] = ("old", rnd)
        op = rnd % 3
        barrier = threading.Barrier(4)

        def read(key: Hashable = key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            cache.get(key)

        def write(key: Hashable = key, barrier: threading.Barrier = barrier, op: int = op) -> None:
            barrier.wait()
            time.sleep(rng.random() * 0.0005)
            if op == 0:
                cache.put(key, ("new", 1))
            elif op == 1:
                cache.invalidate(key)
            else:
                cache.put_many({key: ("new", 2)})

        threads = [threading.Thread(target=read) for _ in range(3)]
        threads.append(threading.Thread(target=write))
        for t in threads:
            t.start()
        for t in threads:
            _join(t)
        assert cache.get(key, ABSENT) == store.data.get(key, ABSENT), f"round {rnd}"


# ---------------------------------------------------------------- rule 6


class _PileUp:
    """``n`` threads released at once on ``call``; ``results`` gets each result or exception."""

    def __init__(self, n: int, call: Callable[[], Any]) -> None:
        barrier = threading.Barrier(n)
        self.results: list[Any] = [None] * n

        def run(i: int) -> None:
            barrier.wait()
            try:
                self.results[i] = call()
            except BaseException as exc:
                self.results[i] = exc

        self.threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def join(self) -> list[Any]:
        for t in self.threads:
            _join(t)
        return self.results


@pytest.mark.timeout(30)
def test_rule06_single_flight_one_load_same_object() -> None:
    store = GatedStore()
    value = {"big": list(range(10))}
    store.data["k"] = value
    store.gated.add("k")
    cache = wt.WriteThroughCache(store, capacity=8)
    pile = _PileUp(16, lambda: cache.get("k"))
    assert store.entered.wait(WAIT)
    time.sleep(0.3)  # let the 15 others reach the flight
    store.release.set()
    results = pile.join()
    assert store.calls["lookup"] + store.calls["load"] == 1
    assert all(r is value for r in results), results
    s = cache.stats()
    assert s.loads_coalesced == 15
    assert s.backing_store_hits == 16
    assert s.requests == 16
    assert len(cache) == 1


@pytest.mark.timeout(30)
def test_rule06_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    store = GatedStore()
    store.data["k"] = "v"
    store.gated.add("k")
    store.fail_gated = True
    cache = wt.WriteThroughCache(store, capacity=8)
    pile = _PileUp(16, lambda: cache.get("k"))
    assert store.entered.wait(WAIT)
    time.sleep(0.3)
    store.release.set()
    results = pile.join()
    for r in results:
        assert isinstance(r, wt.StoreError), r
        assert isinstance(r.__cause__, InjectedError), r.__cause__
    assert store.calls["lookup"] + store.calls["load"] == 1
    s = cache.stats()
    assert (s.load_errors, s.loads_coalesced, s.requests) == (16, 15, 16)
    assert len(cache) == 0
    store.gated.clear()
    assert cache.get("k") == "v"  # the next call loads again
    assert store.calls["lookup"] + store.calls["load"] == 2


@pytest.mark.timeout(30)
def test_rule06_slow_load_never_blocks_other_keys() -> None:
    store = GatedStore()
    store.data.update({"a": "A", "c": "C"})
    store.gated.add("a")
    cache = wt.WriteThroughCache(store, capacity=8)
    t, out = _start(lambda: cache.get("a"))
    assert store.entered.wait(WAIT)

    def others() -> None:
        cache.put("b", "B")
        assert cache.get("b") == "B"
        assert cache.get("c") == "C"
        assert cache.get_many(["b", "c", "x"]) == {"b": "B", "c": "C"}
        assert cache.get_or_compute("d", lambda _: "D") == "D"
        assert cache.invalidate("b") is True
        cache.put_many({"e": 1, "f": 2})
        cache.evict("c")

    t2, out2 = _start(others)
    t2.join(5)
    blocked = t2.is_alive()
    store.release.set()
    _join(t)
    _join(t2)
    assert not blocked, "operations on other keys waited for the slow load of 'a'"
    assert out2 == [None]
    assert out == ["A"]


@pytest.mark.timeout(30)
def test_rule06_get_or_compute_from_16_threads_calls_fn_once() -> None:
    store = FlakyStore()
    cache = wt.WriteThroughCache(store, capacity=8)
    calls: list[Hashable] = []
    value = ["computed"]

    def fn(key: Hashable) -> list[str]:
        calls.append(key)
        time.sleep(0.3)
        return value

    results = _PileUp(16, lambda: cache.get_or_compute("k", fn)).join()
    assert calls == ["k"]
    assert all(r is value for r in results), results
    assert store.data == {"k": value}
    assert store.calls["store"] == 1
    s = cache.stats()
    assert s.requests == 16
    assert s.loads_coalesced == 15


@pytest.mark.timeout(30)
def test_rule06_get_or_compute_fn_error_reaches_every_caller_once_counted() -> None:
    store = FlakyStore()
    cache = wt.WriteThroughCache(store, capacity=8)
    calls: list[Hashable] = []

    def fn(key: Hashable) -> str:
        calls.append(key)
        time.sleep(0.3)
        raise LookupError("compute failed")

    results = _PileUp(16, lambda: cache.get_or_compute("k", fn)).join()
    assert calls == ["k"]
    assert all(isinstance(r, LookupError) for r in results), results
    assert store.data == {}
    assert len(cache) == 0
    s = cache.stats()
    # every get-like call counts exactly once, waiters included
    assert (s.requests, s.loads_coalesced) == (16, 15), s


# ---------------------------------------------------------------- close while busy


@pytest.mark.timeout(30)
def test_close_during_a_load_installs_nothing() -> None:
    store = GatedStore()
    store.data["k"] = "v"
    store.gated.add("k")
    cache = wt.WriteThroughCache(store, capacity=8, close_store=False)
    t, out = _start(lambda: cache.get("k"))
    assert store.entered.wait(WAIT)
    cache.close()
    store.release.set()
    _join(t)
    assert out[0] == "v" or isinstance(out[0], wt.CacheClosed), out
    assert len(cache) == 0
    with pytest.raises(wt.CacheClosed):
        cache.get("k")


class _BlockingWrites(FlakyStore):
    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def store(self, key: Hashable, value: Any) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)
        super().store(key, value)


@pytest.mark.timeout(30)
def test_close_during_a_put_leaves_nothing_held() -> None:
    store = _BlockingWrites()
    cache = wt.WriteThroughCache(store, capacity=8, close_store=False)
    t, out = _start(lambda: cache.put("k", "v"))
    assert store.entered.wait(WAIT)
    cache.close()
    store.release.set()
    _join(t)
    assert out[0] is None or isinstance(out[0], wt.WriteThroughError), out
    assert store.data == {"k": "v"}  # the write itself went through
    assert len(cache) == 0, "a closed cache still holds an entry"


class _RendezvousStore(wt.MemoryStore):
    """load_many waits until two callers are inside it at once, so each holds its
    own keys in flight while the other's get_many joins them."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Barrier(2, timeout=WAIT)

    def load_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        self.inside.wait()
        return super().load_many(keys)


@pytest.mark.timeout(30)
@pytest.mark.sync_only("paces start_load with a thread barrier: one event loop cannot meet it")
def test_crossing_get_many_calls_are_not_a_cycle() -> None:
    """A leads k1 and waits for k2; B leads k2 and waits for k1. Each loads its own
    keys before it waits, so neither may be refused as a deadlock, and none occurs."""
    store = _RendezvousStore()
    store.store("k1", 1)
    store.store("k2", 2)
    cache = wt.WriteThroughCache(store, capacity=8)
    order = threading.Barrier(2, timeout=WAIT)
    results: dict[str, Any] = {}

    def a() -> None:
        results["a"] = cache.get_many(["k1", "k2"])

    def b() -> None:
        results["b"] = cache.get_many(["k2", "k1"])

    # Start them so each registers its first key before the other reaches it.
    original = cache._core.start_load

    def paced(key: Hashable, compute: bool = False) -> Any:
        out = original(key, compute)
        if key in ("k1", "k2") and out[1]:  # a leader: let the other lead its key too
            order.wait()
        return out

    cache._core.start_load = paced  # type: ignore[method-assign]
    ta, out_a = _start(a)
    tb, out_b = _start(b)
    _join(ta)
    _join(tb)
    assert out_a == [None] and out_b == [None], (out_a, out_b)
    assert results == {"a": {"k1": 1, "k2": 2}, "b": {"k2": 2, "k1": 1}}
    s = cache.stats()
    assert (s.backing_store_hits, s.loads_coalesced) == (4, 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.sync_only("forks while other threads hold the core; asyncio is not fork-safe")
def test_fork_during_a_load_and_a_write_leaves_the_child_a_working_cache() -> None:
    """Another thread leads a load of k (and holds k2's write gate) when the process
    forks: that thread does not exist in the child, so the child must neither wait
    for its load nor for its gate."""
    store = GatedStore()
    store.store("k", "v")
    store.gated.add("k")
    cache = wt.WriteThroughCache(store, capacity=8)
    t, out = _start(lambda: cache.get("k"))
    assert store.entered.wait(WAIT)  # the load of k is in flight, its flight registered
    gate = cache._core.acquire_gate("k2")
    gate.acquire()  # as if a put of k2 were in progress
    try:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                signal.alarm(5)  # a hang ends the child with a non-zero status
                store.gated.clear()  # the child's own load of k is not held
                ok = cache.get("k") == "v"
                cache.put("k2", "child")
                ok = ok and cache.get("k2") == "child"
                code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        gate.release()
        cache._core.release_gate("k2")
        store.release.set()
    _join(t)
    assert out == ["v"]
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.timeout(30)
def test_get_many_refused_midway_settles_the_loads_it_already_leads() -> None:
    """Inside get_or_compute("k"), get_many(["k2", "k"]) leads k2's load, then meets
    its own compute of k and is refused. k2's load must not stay registered: a
    get of k2 from another thread would wait for it forever."""
    store = wt.MemoryStore()
    store.store("k2", "v2")
    cache = wt.WriteThroughCache(store, capacity=8)
    seen: list[BaseException] = []

    def fn(key: Hashable) -> str:
        try:
            cache.get_many(["k2", "k"])
        except wt.ReentrantCompute as exc:
            seen.append(exc)
        return "computed"

    assert cache.get_or_compute("k", fn) == "computed"
    assert len(seen) == 1
    t, out = _start(lambda: cache.get("k2"))
    _join(t)
    assert out == ["v2"]


def test_get_many_with_a_failing_weigher_settles_every_key() -> None:
    def weigher(key: Any, value: Any) -> int:
        if key == "bad":
            raise ValueError("cannot weigh")
        return 1

    store = wt.MemoryStore()
    for key in ("a", "bad", "c"):
        store.store(key, key.upper())
    cache = wt.WriteThroughCache(store, capacity=8, max_bytes=100, weigher=weigher)
    with pytest.raises(wt.StoreError) as info:
        cache.get_many(["a", "bad", "c"])
    assert isinstance(info.value.__cause__, ValueError)
    assert cache._core.flights == {}
    t, out = _start(lambda: cache.get_many(["a", "c"]))
    _join(t)
    assert out == [{"a": "A", "c": "C"}]


class _BrokenPolicy(LRUPolicy):
    """A policy with a bug: it fails to take the key "boom"."""

    def on_insert(self, key: Hashable, weight: int) -> None:
        if key == "boom":
            raise RuntimeError("policy bug")
        super().on_insert(key, weight)


@pytest.mark.timeout(30)
def test_a_failing_policy_never_strands_waiters() -> None:
    store = GatedStore()
    store.store("boom", "v")
    store.gated.add("boom")
    cache = wt.WriteThroughCache(store, capacity=8, policy=_BrokenPolicy())
    leader, out_leader = _start(lambda: cache.get("boom"))
    assert store.entered.wait(WAIT)
    waiter, out_waiter = _start(lambda: cache.get("boom"))
    deadline = time.monotonic() + WAIT
    while cache._core.flights["boom"].signal is None:  # the second get has joined
        assert time.monotonic() < deadline, "the second get never joined the load"
        time.sleep(0.001)
    store.release.set()
    _join(leader)
    _join(waiter)
    assert isinstance(out_leader[0], RuntimeError)  # the leader sees the policy's error
    assert out_waiter == ["v"]  # the waiter gets the value that was loaded
    assert cache._core.flights == {}
    store.gated.clear()
    with pytest.raises(RuntimeError):
        cache.get_many(["boom"])  # the batch path surfaces the error too...
    assert cache._core.flights == {}  # ...and leaves nothing in flight

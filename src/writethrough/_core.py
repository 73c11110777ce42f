"""The sans-I/O core: every decision the sync and async caches share, and no I/O.

The core owns the in-memory entries, the policy, the statistics, the in-flight
loads (single flight) and the per-key write gates. A cache driver (``cache.py``
for threads, ``aio`` for asyncio) asks the core what to do, performs the store
call itself, and reports the outcome back. Methods here never block on I/O:
they hold ``self.lock`` only for a few dictionary operations.

Staleness (DESIGN rules 5 and 14) has one mechanism: a load in flight is a
``Flight``; any completed write, failed write, invalidation or bus message for
its key marks it stale and detaches it, so it never installs what it read and
later callers start a fresh load. A whole-cache flush does the same to every
flight. That is the per-key generation: a flight remembers whether the key's
generation moved while it ran.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from .errors import ReentrantCompute
from .policies import Policy
from .policies.base import DEFAULT_HIT_SAMPLE
from .stats import CacheStats, Counter

__all__ = ["Core", "Flight"]

Key = Hashable
_Gate = TypeVar("_Gate")

MISSING: Any = object()


class Flight:
    """One store load (or compute) in progress for a key; waiters share its outcome.

    Class-level defaults and no ``__init__``: a flight is made on every miss, and
    setting three attributes on a bare instance costs half of calling an
    ``__init__`` (measured: 94 ns vs 176 ns).
    """

    key: Key
    owner: object  # thread (or task) that runs the load
    epoch: int  # the core's epoch when the load started; a flush bumps it
    compute = False  # the leader computes the value when the store has none
    stale = False  # a write or invalidation of the key completed during the load
    done = False  # settled: the outcome is final
    signal: Any = None  # made for the first waiter (sync: Event; async: Future)
    # the outcome, written when a waiter exists to read it
    found = False
    value: Any = None
    error: BaseException | None = None


class Core(Generic[_Gate]):
    """State and decisions of one cache. ``new_gate`` makes a per-key write lock."""

    def __init__(
        self,
        *,
        capacity: int,
        max_bytes: int | None,
        policy: Policy,
        ttl: float | None,
        new_gate: Callable[[], _Gate],
        new_signal: Callable[[], Any],
        owner_id: Callable[[], object],
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.policy = policy
        # Every hit appends its key here, without a lock: one C call that both
        # counts the hit exactly (hits = drained + len) and feeds the policy.
        self.hit_log: list[Key] = []
        self._hits_drained = 0
        self._hit_sample = max(0, int(getattr(policy, "hit_sample", DEFAULT_HIT_SAMPLE)))
        self.ttl = ttl
        self.lock = threading.Lock()
        self.data: dict[Key, Any] = {}
        self.weights: dict[Key, int] = {}
        self.expires: dict[Key, float] = {}
        self.total_weight = 0
        self.flights: dict[Key, Flight] = {}
        self._gates: dict[Key, list[Any]] = {}  # key -> [gate, users]
        self._free_gates: list[Any] = []  # unlocked gates to reuse
        self._new_gate = new_gate
        self._new_signal = new_signal
        self.owner_id = owner_id
        self._waiting_on: dict[object, Flight] = {}
        self.installing = True
        self.closed = False
        #: the invalidation bus's publish (store keys of one acknowledged write), or None;
        #: it only queues the message, so a writer never waits for the bus
        self.publish: Callable[[tuple[Any, ...]], None] | None = None
        self.epoch = 0  # bumped by every whole-cache flush
        # counters: lock-free and exact (hits: the hit log)
        self.store_hits = Counter()
        self.misses = Counter()
        self.writes = Counter()
        self.write_errors = Counter()
        self.evictions = Counter()
        self.invalidations = Counter()
        self.load_errors = Counter()
        self.coalesced = Counter()
        self.load_time = 0.0
        self.write_time = 0.0
        self._count_store_hit = self.store_hits.incr
        self._count_miss = self.misses.incr
        policy.bind(capacity, max_bytes)
        with _live_lock:
            _LIVE_CORES.add(self)

    def _after_fork_in_child(self) -> None:
        """A forked child has only the forking thread: forget every other thread's state.

        The parent's other threads may have held the lock or a key's gate, or led
        a load, at the moment of the fork; in the child they never will finish,
        so their locks, gates and flights are replaced, not waited for.
        """
        self.lock = threading.Lock()
        for flight in self.flights.values():
            flight.stale = True
        self.flights.clear()
        self._gates.clear()
        self._free_gates.clear()  # a parent thread may have held one
        self._waiting_on.clear()
        self.epoch += 1
        for counter in self.counters():
            counter.after_fork_in_child()

    def counters(self) -> tuple[Counter, ...]:
        return (
            self.store_hits,
            self.misses,
            self.writes,
            self.write_errors,
            self.evictions,
            self.invalidations,
            self.load_errors,
            self.coalesced,
        )

    # ------------------------------------------------------------ entries

    def install(self, key: Key, value: Any, weight: int) -> None:
        """Hold ``key`` -> ``value`` within bounds. Caller holds the lock.

        Room is made *before* the entry goes in, so lock-free readers never see
        more than ``capacity`` entries (or ``max_bytes``), not even for an instant.
        """
        data = self.data
        policy = self.policy
        if not _maintenance_running:  # hits need a drainer once the cache holds anything
            _ensure_maintenance()
        if self.hit_log:
            self.drain_hits()  # past hits first, in order, so the new entry is the newest
        new = key not in data
        if new:
            policy.on_insert(key, weight)
        else:
            policy.on_update(key, weight)
        max_bytes = self.max_bytes
        if max_bytes is None:
            if new and len(data) >= self.capacity:
                # the common case, inlined: one newcomer, one victim
                victim = policy.victim()
                self.evictions.incr()
                if victim == key:  # admission refused
                    return
                data.pop(victim, None)
                if self.ttl is not None:
                    self.expires.pop(victim, None)
                if len(data) >= self.capacity and not self._make_room(key, new):
                    return
        else:
            self.total_weight += weight - self.weights.get(key, 0)
            self.weights[key] = weight
            if (
                len(data) + new > self.capacity or self.total_weight > max_bytes
            ) and not self._make_room(key, new):
                return
        if self.ttl is not None:
            self.expires[key] = time.monotonic() + self.ttl
        data[key] = value

    def drain_hits(self) -> None:
        """Count the logged hits and tell the policy the most recent ones. Caller holds the lock.

        Appends may land while this runs: they go to the end of the log, so
        deleting the first ``n`` removes exactly the hits counted here.
        """
        log = self.hit_log
        n = len(log)
        if not n:
            return
        sample = self._hit_sample
        recent = log[n - sample if n > sample else 0 : n] if sample else None
        del log[:n]
        self._hits_drained += n
        if recent:
            self.policy.record_hits(recent)

    def _make_room(self, key: Key, new: bool) -> bool:
        """Evict until ``key`` fits; False if the policy evicted ``key`` itself."""
        data = self.data
        policy = self.policy
        max_bytes = self.max_bytes
        while len(data) + (new and key not in data) > self.capacity or (
            max_bytes is not None and self.total_weight > max_bytes
        ):
            victim = policy.victim()
            self.evictions.incr()
            if victim == key:  # admission refused, or the overwritten entry itself
                self.total_weight -= self.weights.pop(key, 0)
                self.expires.pop(key, None)
                data.pop(key, None)
                return False
            self._forget(victim)
        return True

    def _forget(self, key: Key) -> bool:
        """Drop ``key`` from memory (not from the policy). Caller holds the lock."""
        if self.data.pop(key, MISSING) is MISSING:
            return False
        self.total_weight -= self.weights.pop(key, 0)
        self.expires.pop(key, None)
        return True

    def drop(self, key: Key) -> bool:
        """Remove ``key`` locally and mark its in-flight load stale. Caller holds the lock."""
        flight = self.flights.pop(key, None)
        if flight is not None:
            flight.stale = True
        if self._forget(key):
            self.policy.on_remove(key)
            return True
        return False

    def drop_all(self) -> None:
        """Remove every entry and mark every in-flight load stale. Caller holds the lock."""
        self.epoch += 1
        for flight in self.flights.values():
            flight.stale = True
        self.flights.clear()
        self.drain_hits()  # the hits happened: count them before the policy forgets
        self.data.clear()
        self.weights.clear()
        self.expires.clear()
        self.total_weight = 0
        self.policy.clear()

    def evict(self, key: Key) -> bool:
        """Local-only removal (``cache.evict``): the store and in-flight loads are untouched."""
        with self.lock:
            if self._forget(key):
                self.policy.on_remove(key)
                return True
            return False

    def evict_all(self) -> None:
        with self.lock:
            self.drain_hits()
            self.data.clear()
            self.weights.clear()
            self.expires.clear()
            self.total_weight = 0
            self.policy.clear()

    def expire(self, key: Key) -> None:
        """Drop ``key`` if its ttl has passed (the hit path saw it expired)."""
        with self.lock:
            deadline = self.expires.get(key)
            if deadline is not None and deadline <= time.monotonic() and self._forget(key):
                self.policy.on_remove(key)
                self.evictions.incr()

    # ------------------------------------------------------------ loads

    def start_load(self, key: Key, compute: bool = False) -> tuple[Flight | None, bool, Any]:
        """Begin a read of ``key`` after a hit-path miss.

        Returns ``(None, False, value)`` when another thread installed the key
        meanwhile (counted as a hit), ``(flight, True, _)`` when the caller
        must load, and ``(flight, False, _)`` when it must wait for ``flight``.
        """
        value = self.data.get(key, MISSING)
        if value is not MISSING and (
            self.ttl is None or self.expires.get(key, 0.0) > time.monotonic()
        ):
            self.hit_log.append(key)
            return None, False, value
        flight = Flight()
        flight.key = key
        flight.owner = self.owner_id()
        flight.epoch = self.epoch
        if compute:
            flight.compute = True
        if not self.installing:
            flight.stale = True  # not registered: nothing to coalesce with, nothing to install
            return flight, True, None
        # The leader registers without the lock: setdefault is atomic, and a
        # flush that races it is caught by the epoch.
        existing = self.flights.setdefault(key, flight)
        if existing is flight:
            return flight, True, None
        # acquire/release rather than ``with``: half the cost (measured 95 vs 215 ns)
        self.lock.acquire()
        try:
            # setdefault again, not get-then-set: a leader that registers without
            # the lock at this moment must not be overwritten (its flight would
            # then be live but unregistered).
            current = self.flights.setdefault(key, flight)
            if current is flight:  # the leader finished meanwhile: load anew
                return flight, True, None
            if current.owner == flight.owner:
                self._check_cycle(current, flight.owner)  # raises: our own flight
            if current.signal is None:
                current.signal = self._new_signal()
            return current, False, None
        finally:
            self.lock.release()

    def _check_cycle(self, flight: Flight, me: object) -> None:
        """Refuse to wait on a flight that (transitively) waits on the caller.

        Only callers blocked right now count (``begin_wait``), and settled flights
        are skipped: a ``get_many`` that will load its own keys before it waits
        is not a cycle.
        """
        owner: object = flight.owner
        seen = 0
        while True:
            if owner == me:
                raise ReentrantCompute(
                    f"key {flight.key!r} is being loaded or computed by this caller "
                    "(get_or_compute's function re-entered the cache on its own key, "
                    "or two computes wait on each other)"
                )
            nxt = self._waiting_on.get(owner)
            seen += 1
            if nxt is None or nxt.done or seen > 10_000:
                return
            owner = nxt.owner

    def begin_wait(self, flight: Flight) -> bool:
        """The caller is about to block on ``flight``: False if it is settled already.

        Raises ``ReentrantCompute`` instead of letting a cycle of waiters deadlock.
        """
        with self.lock:
            if flight.done:
                return False
            me = self.owner_id()
            self._check_cycle(flight, me)
            self._waiting_on[me] = flight
            return True

    def stop_waiting(self) -> None:
        """The caller is done waiting on a flight."""
        with self.lock:
            self._waiting_on.pop(self.owner_id(), None)

    def finish_load(
        self, flight: Flight, found: bool, value: Any, weight: int, seconds: float
    ) -> Any:
        """Record a leader's successful load; install it unless stale. Returns the signal."""
        self.lock.acquire()
        try:
            self.load_time += seconds
            key = flight.key
            flights = self.flights
            if flights.get(key) is flight:
                del flights[key]
            # a stale flight was detached by the write or flush that made it stale
            fresh = not flight.stale and flight.epoch == self.epoch and self.installing
            if flight.compute:  # the value (or its absence) came from the store
                flight.compute = False
            # settled before the install, so a failing policy cannot strand waiters
            # (the driver wakes them from flight.signal if this raises)
            flight.done = True
            signal = flight.signal
            if signal is not None:
                flight.found = found
                flight.value = value
                flight.error = None
            if found:
                self._count_store_hit()
                if fresh and (self.max_bytes is None or weight <= self.max_bytes):
                    self.install(key, value, weight)
            else:
                self._count_miss()
            return signal
        finally:
            self.lock.release()

    def fail_load(self, flight: Flight, error: BaseException, seconds: float) -> Any:
        """Record a leader's failed load or compute: every waiter gets ``error``."""
        with self.lock:
            self.load_time += seconds
            self.load_errors.incr()
            return self._settle(flight, False, None, error)

    def settle(
        self, flight: Flight, found: bool, value: Any, error: BaseException | None = None
    ) -> Any:
        """Complete a flight without counting (the caller counted already)."""
        with self.lock:
            return self._settle(flight, found, value, error)

    def _settle(self, flight: Flight, found: bool, value: Any, error: BaseException | None) -> Any:
        flight.found = found
        flight.value = value
        flight.error = error
        flight.done = True
        if self.flights.get(flight.key) is flight:
            del self.flights[flight.key]
        return flight.signal

    def note_absent(self, flight: Flight, seconds: float) -> None:
        """A compute leader found nothing in the store: count the miss, keep the flight open."""
        with self.lock:
            self.load_time += seconds
            self.misses.incr()

    def count_waiter(self, flight: Flight) -> None:
        """Count a caller that waited for ``flight`` by what it got."""
        self.coalesced.incr()
        if flight.error is not None:
            self.load_errors.incr()
        elif flight.found and not flight.compute:
            self.store_hits.incr()
        else:
            self.misses.incr()

    # ------------------------------------------------------------ writes

    def acquire_gate(self, key: Key) -> _Gate:
        """The per-key write gate; the driver locks it so writes of one key run in order.

        Gates are recycled through a small free list: a put then allocates
        nothing here (it matters after a commit's fsync, when every object the
        write path touches is cold).
        """
        self.lock.acquire()
        try:
            slot = self._gates.get(key)
            if slot is None:
                free = self._free_gates
                slot = self._gates[key] = [free.pop() if free else self._new_gate(), 0]
            slot[1] += 1
            gate: _Gate = slot[0]
            return gate
        finally:
            self.lock.release()

    def release_gate(self, key: Key) -> None:
        """Forget the gate of ``key`` once no writer uses it (the driver unlocked it)."""
        self.lock.acquire()
        try:
            slot = self._gates[key]
            slot[1] -= 1
            if slot[1] == 0:
                del self._gates[key]
                if len(self._free_gates) < 64:
                    self._free_gates.append(slot[0])
        finally:
            self.lock.release()

    def finish_write(self, key: Key, value: Any, weight: int, seconds: float) -> None:
        """The store accepted ``value``: hold it, and stale any older load of the key."""
        self.lock.acquire()
        try:
            self.write_time += seconds
            self.writes.incr()
            flight = self.flights.pop(key, None)
            if flight is not None:
                flight.stale = True
            if self.installing:
                self.install(key, value, weight)
            else:
                self.drop(key)
        finally:
            self.lock.release()

    def fail_write(self, key: Key, seconds: float) -> None:
        """The store refused or may not have applied the write: forget the key locally."""
        with self.lock:
            self.write_time += seconds
            self.write_errors.incr()
            self.drop(key)

    def finish_remove(self, key: Key, seconds: float, ok: bool = True) -> bool:
        """An invalidation reached the store (or failed): drop locally; was it held?"""
        with self.lock:
            self.write_time += seconds
            (self.invalidations if ok else self.write_errors).incr()
            return self.drop(key)

    def add_write_time(self, seconds: float) -> None:
        with self.lock:
            self.write_time += seconds

    # ------------------------------------------------------------ stats

    def snapshot(self, commits: int = 0, group_commit_members: int = 0) -> CacheStats:
        with self.lock:
            load_time, write_time = self.load_time, self.write_time
            hits = self._hits_drained + len(self.hit_log)
        return CacheStats(
            cache_hits=hits,
            backing_store_hits=self.store_hits.value,
            misses=self.misses.value,
            writes=self.writes.value,
            write_errors=self.write_errors.value,
            evictions=self.evictions.value,
            invalidations=self.invalidations.value,
            load_errors=self.load_errors.value,
            loads_coalesced=self.coalesced.value,
            load_time=load_time,
            write_time=write_time,
            commits=commits,
            group_commit_members=group_commit_members,
        )


_LIVE_CORES: weakref.WeakSet[Core[Any]] = weakref.WeakSet()
_live_lock = threading.Lock()


#: How often the maintenance thread looks at the hit logs, and the length it drains at.
MAINTENANCE_INTERVAL = 0.02
DRAIN_AT = 4096

_maintenance_lock = threading.Lock()
_maintenance_running = False


def _ensure_maintenance() -> None:
    """Start this process's maintenance thread, once.

    Started by the first install of any cache, not when a cache is made: a
    process that makes its caches and then forks workers (a pre-loading server)
    forks without an extra thread, and each worker starts its own.
    """
    global _maintenance_running
    with _maintenance_lock:
        if _maintenance_running:
            return
        thread = threading.Thread(target=_maintain, name="writethrough-maintenance", daemon=True)
        thread.start()
        _maintenance_running = True


def _maintain() -> None:
    """Bound every cache's hit log when nothing else drains it (a workload of hits only).

    One daemon thread per process, whatever the number of caches: it wakes every
    ``MAINTENANCE_INTERVAL`` seconds and drains the logs longer than ``DRAIN_AT``,
    so a log holds at most a few milliseconds of hits.
    """
    while True:
        time.sleep(MAINTENANCE_INTERVAL)
        with contextlib.suppress(Exception):  # whatever one pass meets, the next one runs
            _drain_long_logs()


def _drain_long_logs() -> None:
    with _live_lock:  # a WeakSet must not grow while it is being listed
        cores = list(_LIVE_CORES)
    for core in cores:
        if len(core.hit_log) >= DRAIN_AT:
            core.lock.acquire()
            try:
                core.drain_hits()
            except Exception:  # a failing policy must not keep the other caches waiting
                pass
            finally:
                core.lock.release()


def _reset_cores_after_fork() -> None:
    global _live_lock, _maintenance_lock, _maintenance_running
    _live_lock = threading.Lock()
    _maintenance_lock = threading.Lock()
    _maintenance_running = False  # the parent's thread does not exist here
    cores = list(_LIVE_CORES)
    for core in cores:
        core._after_fork_in_child()
    if any(core.data for core in cores):
        _ensure_maintenance()  # a child that only reads what it inherited still drains


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_cores_after_fork)

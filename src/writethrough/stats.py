"""``CacheStats`` (a frozen snapshot) and the exact, lock-free counters behind it."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable

__all__ = ["CacheStats", "Counter", "gil_enabled"]


def gil_enabled() -> bool:
    """False on a free-threaded interpreter running without the GIL (3.13t and later)."""
    check: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


class Counter:
    """An exact event counter whose ``incr()`` is safe from any thread without a lock.

    With the GIL, ``incr`` is ``itertools.count().__next__``: one C call, atomic
    because the interpreter never switches threads inside it. Without the GIL
    it falls back to a lock, so counts stay exact (never traded for speed).
    """

    __slots__ = ("_count", "_lock", "_value", "incr")

    def __init__(self) -> None:
        self.incr: Callable[[], object]
        if gil_enabled():
            self._count = itertools.count()
            self.incr = self._count.__next__
        else:
            self._lock = threading.Lock()
            self._value = 0
            self.incr = self._locked_incr

    def after_fork_in_child(self) -> None:
        """A parent thread may have held the lock at the fork: the child gets a new one."""
        if not hasattr(self, "_count"):
            self._lock = threading.Lock()

    def _locked_incr(self) -> None:
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        if hasattr(self, "_count"):
            # repr is "count(N)": the only way to read a count without advancing it.
            return int(repr(self._count)[6:-1])
        return self._value


_FIELDS = (
    "cache_hits",
    "backing_store_hits",
    "misses",
    "writes",
    "write_errors",
    "evictions",
    "invalidations",
    "load_errors",
    "loads_coalesced",
    "load_time",
    "write_time",
    "commits",
    "group_commit_members",
    "bus_published",
    "bus_received",
    "bus_flushes",
    "bus_publish_errors",
)


class CacheStats:
    """A frozen snapshot of a cache's statistics; the seed's fields first.

    Every ``get`` counts exactly once as ``cache_hits``, ``backing_store_hits``,
    ``misses`` or ``load_errors``; ``requests`` is their sum. ``loads_coalesced``
    counts callers that waited for another caller's load. Times are cumulative
    seconds spent in store calls. With group commit, ``commits`` counts the
    store transactions the writer queue made and ``group_commit_members`` the
    puts they carried (their ratio is the mean group size); both stay 0 without
    it. With an invalidation bus, ``bus_published`` counts the messages this
    cache sent, ``bus_received`` the messages from other processes it applied,
    ``bus_flushes`` the whole-cache drops (a sequence gap, a silent peer, a lost
    or regained connection) and ``bus_publish_errors`` the failed sends (each
    retried in order). (A hand-written value class rather than a dataclass: ``dataclasses``
    imports ``inspect`` and would double the cost of ``import writethrough``.)
    """

    __slots__ = _FIELDS

    cache_hits: int
    backing_store_hits: int
    misses: int
    writes: int
    write_errors: int
    evictions: int
    invalidations: int
    load_errors: int
    loads_coalesced: int
    load_time: float
    write_time: float
    commits: int
    group_commit_members: int
    bus_published: int
    bus_received: int
    bus_flushes: int
    bus_publish_errors: int

    def __init__(
        self,
        cache_hits: int = 0,
        backing_store_hits: int = 0,
        misses: int = 0,
        writes: int = 0,
        write_errors: int = 0,
        evictions: int = 0,
        invalidations: int = 0,
        load_errors: int = 0,
        loads_coalesced: int = 0,
        load_time: float = 0.0,
        write_time: float = 0.0,
        commits: int = 0,
        group_commit_members: int = 0,
        bus_published: int = 0,
        bus_received: int = 0,
        bus_flushes: int = 0,
        bus_publish_errors: int = 0,
    ) -> None:
        values = (
            cache_hits,
            backing_store_hits,
            misses,
            writes,
            write_errors,
            evictions,
            invalidations,
            load_errors,
            loads_coalesced,
            load_time,
            write_time,
            commits,
            group_commit_members,
            bus_published,
            bus_received,
            bus_flushes,
            bus_publish_errors,
        )
        for name, value in zip(_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CacheStats is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CacheStats is frozen: cannot delete {name!r}")

    def _values(self) -> tuple[int | float, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CacheStats):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"CacheStats({inner})"

    def __reduce__(self) -> tuple[type[CacheStats], tuple[int | float, ...]]:
        return CacheStats, self._values()

    @property
    def requests(self) -> int:
        """Every counted read: hits, store hits, misses and load errors."""
        return self.cache_hits + self.backing_store_hits + self.misses + self.load_errors

    @property
    def hit_ratio(self) -> float:
        """Share of requests served from memory (0.0 before the first request)."""
        requests = self.requests
        return self.cache_hits / requests if requests else 0.0

    def replace(self, **changes: int | float) -> CacheStats:
        """A copy with the named fields changed."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return CacheStats(**values)

    def since(self, earlier: CacheStats) -> CacheStats:
        """The activity between ``earlier`` and this snapshot (field by field)."""
        diff = [a - b for a, b in zip(self._values(), earlier._values(), strict=True)]
        return CacheStats(*diff)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, float | int]:
        """All fields and derived figures, for JSON output."""
        out: dict[str, float | int] = {name: getattr(self, name) for name in _FIELDS}
        out["requests"] = self.requests
        out["hit_ratio"] = self.hit_ratio
        out["mean_group_size"] = self.mean_group_size
        return out

    @property
    def mean_group_size(self) -> float:
        """Puts per group commit (0.0 without group commit)."""
        return self.group_commit_members / self.commits if self.commits else 0.0

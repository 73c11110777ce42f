"""``CacheStats`` (a frozen snapshot) and the exact, lock-free counters behind it."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields

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

    def _locked_incr(self) -> None:
        with self._lock:
            self._value += 1

    def add(self, n: int) -> None:
        """Count ``n`` events at once (batch paths)."""
        incr = self.incr
        for _ in range(n):
            incr()

    @property
    def value(self) -> int:
        if hasattr(self, "_count"):
            # repr is "count(N)": the only way to read a count without advancing it.
            return int(repr(self._count)[6:-1])
        return self._value


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's statistics; the seed's fields first.

    Every ``get`` counts exactly once as ``cache_hits``, ``backing_store_hits``,
    ``misses`` or ``load_errors``; ``requests`` is their sum. ``loads_coalesced``
    counts callers that waited for another caller's load. Times are cumulative
    seconds spent in store calls.
    """

    cache_hits: int = 0
    backing_store_hits: int = 0
    misses: int = 0
    writes: int = 0
    write_errors: int = 0
    evictions: int = 0
    invalidations: int = 0
    load_errors: int = 0
    loads_coalesced: int = 0
    load_time: float = 0.0
    write_time: float = 0.0

    @property
    def requests(self) -> int:
        """Every counted read: hits, store hits, misses and load errors."""
        return self.cache_hits + self.backing_store_hits + self.misses + self.load_errors

    @property
    def hit_ratio(self) -> float:
        """Share of requests served from memory (0.0 before the first request)."""
        requests = self.requests
        return self.cache_hits / requests if requests else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """All fields and derived figures, for JSON output."""
        out: dict[str, float | int] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["requests"] = self.requests
        out["hit_ratio"] = self.hit_ratio
        return out

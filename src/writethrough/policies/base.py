"""The eviction policy interface: the policy decides *what* to evict, the cache *when*.

A policy tracks exactly the keys the cache holds. Every method except the hit
recorder is called with the cache's lock held, so policies need no locking of
their own. Hits are the exception: the cache's hit path takes no lock, so it
calls ``hit_recorder()`` — a C-level callable such as ``deque.append`` that is
safe without a lock — and the cache replays the buffer into ``on_hit`` via
``drain()`` under the lock before it picks a victim (Caffeine's read buffer).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = ["BufferedHitsPolicy", "Policy"]

#: How many hits are kept between two drains; older ones are dropped (lossy by design).
HIT_BUFFER_SIZE = 1024


@runtime_checkable
class Policy(Protocol):
    """What a cache needs from an eviction policy."""

    name: str

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        """Called once by the cache that owns this policy, before any other call."""

    def hit_recorder(self) -> Callable[[Hashable], object] | None:
        """A lock-free callable the hit path calls with the key, or None if hits are ignored."""

    def drain(self) -> None:
        """Replay recorded hits into ``on_hit`` (called under the cache lock)."""

    def on_hit(self, key: Hashable) -> None:
        """A hit on a held key (keys no longer held must be ignored)."""

    def on_insert(self, key: Hashable, weight: int) -> None:
        """A new key entered the cache."""

    def on_update(self, key: Hashable, weight: int) -> None:
        """A held key was overwritten."""

    def on_remove(self, key: Hashable) -> None:
        """A held key left the cache for a reason other than ``victim()``."""

    def victim(self) -> Hashable:
        """Choose a held key to evict and forget it (it may be the newest: admission)."""

    def clear(self) -> None:
        """Forget every key."""


class BufferedHitsPolicy:
    """Shared plumbing: binding once and a lossy, lock-free hit buffer."""

    name = "base"
    records_hits = True

    def __init__(self) -> None:
        self._bound = False
        self.capacity = 0
        self.max_bytes: int | None = None
        self._hits: deque[Hashable] = deque(maxlen=HIT_BUFFER_SIZE)
        #: read by the cache: drain() is only called when this is non-empty
        self.hit_buffer = self._hits

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        if self._bound:
            raise ConfigError(
                f"this {self.name!r} policy object already serves another cache; "
                "give each cache its own policy (or pass the policy's name)"
            )
        self._bound = True
        self.capacity = capacity
        self.max_bytes = max_bytes

    def hit_recorder(self) -> Callable[[Hashable], object] | None:
        return self._hits.append if self.records_hits else None

    def drain(self) -> None:
        hits = self._hits
        if not hits:
            return
        popleft = hits.popleft
        on_hit = self.on_hit
        for _ in range(len(hits)):
            on_hit(popleft())

    def on_hit(self, key: Hashable) -> None:
        """Default: hits do not matter."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

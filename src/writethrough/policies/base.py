"""The eviction policy interface: the policy decides *what* to evict, the cache *when*.

A policy tracks exactly the keys the cache holds, and every method is called
with the cache's lock held, so policies need no locking of their own. Hits are
the one thing a policy does not see as they happen: the hit path takes no lock
and only appends the key to the cache's hit log. Before the policy must choose a
victim (and every few milliseconds in between) the cache hands it the most
recent ``hit_sample`` hits, oldest first, through ``record_hits`` — Caffeine's
read buffer: bounded feedback, never a lock on a hit.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = ["DEFAULT_HIT_SAMPLE", "BasePolicy", "Policy"]

#: How many of the most recent hits a policy is told about per drain.
DEFAULT_HIT_SAMPLE = 1024


@runtime_checkable
class Policy(Protocol):
    """What a cache needs from an eviction policy."""

    name: str
    #: the most recent hits ``record_hits`` receives per drain (0: hits are ignored)
    hit_sample: int

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        """Called once by the cache that owns this policy, before any other call."""

    def record_hits(self, keys: Sequence[Hashable]) -> None:
        """Recent hits, oldest first; keys no longer held must be ignored."""

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


class BasePolicy:
    """Shared plumbing: binding once, and hits replayed one by one into ``on_hit``."""

    name = "base"
    hit_sample = DEFAULT_HIT_SAMPLE

    def __init__(self) -> None:
        self._bound = False
        self.capacity = 0
        self.max_bytes: int | None = None

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        if self._bound:
            raise ConfigError(
                f"this {self.name!r} policy object already serves another cache; "
                "give each cache its own policy (or pass the policy's name)"
            )
        self._bound = True
        self.capacity = capacity
        self.max_bytes = max_bytes

    def record_hits(self, keys: Sequence[Hashable]) -> None:
        on_hit = self.on_hit
        for key in keys:
            on_hit(key)

    def on_hit(self, key: Hashable) -> None:
        """One hit on ``key`` (default: hits do not matter)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

"""S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23).

Three FIFO queues: a small one (10 % of the entries) that new keys enter, a
main one (the rest), and a ghost queue of keys recently evicted from the small
queue (90 % of the entries, keys only). Each held key counts its hits (2 bits).
Eviction takes from the main queue when it holds more than its share, else
from the small one: a key hit at least twice there moves to the main queue, any
other leaves and is remembered by the ghost. From the main queue, a hit key goes
back in at the front with its count lowered, an unhit one leaves. A new key
that the ghost remembers goes straight to the main queue. Most one-hit wonders
thus leave after a short stay in the small queue without disturbing the main
queue (quick demotion). As in libCacheSim (whose defaults these are), while the
cache first fills up, keys the full small queue cannot take go to the main one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence

from .base import BasePolicy

__all__ = ["S3FIFOPolicy"]


class S3FIFOPolicy(BasePolicy):
    """S3-FIFO: small + main FIFO queues with 2-bit counters and a ghost of the small queue.

    Sizes are counted in entries (with ``max_bytes`` the cache keeps calling
    ``victim()`` until the bytes fit too). The key being inserted is not
    evicted to make room for itself unless nothing else is held (the paper
    evicts before inserting).
    """

    name = "s3fifo"
    #: the small queue's share of the entries (the paper's 10 %)
    small_ratio = 0.10
    #: uses in the small queue that move a key to the main queue (libCacheSim's default)
    move_threshold = 2
    #: the ghost's size as a share of the entries
    ghost_ratio = 0.90

    def __init__(self) -> None:
        super().__init__()
        self._small: OrderedDict[Hashable, int] = OrderedDict()  # key -> uses, oldest first
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._ghost: OrderedDict[Hashable, None] = OrderedDict()
        self._ghost_max = 1
        self._small_max = 1
        self._main_max = 1
        self._evicted = False  # no eviction yet: the cache is still filling up
        self._newcomer: Hashable | None = None

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        super().bind(capacity, max_bytes)
        self._small_max = max(1, int(capacity * self.small_ratio))
        self._main_max = capacity - self._small_max
        self._ghost_max = max(1, int(capacity * self.ghost_ratio))

    # ------------------------------------------------------------ feedback

    def record_hits(self, keys: Sequence[Hashable]) -> None:
        small, main = self._small, self._main
        for key in keys:
            uses = small.get(key)
            if uses is not None:
                if uses < 3:
                    small[key] = uses + 1
            else:
                uses = main.get(key)
                if uses is not None and uses < 3:
                    main[key] = uses + 1

    def on_hit(self, key: Hashable) -> None:
        self.record_hits((key,))

    # ------------------------------------------------------------ membership

    def on_insert(self, key: Hashable, weight: int) -> None:
        if self._ghost.pop(key, 0) is None:  # remembered: straight to the main queue
            self._main[key] = 0
        elif not self._evicted and len(self._small) >= self._small_max:
            self._main[key] = 0  # filling up: the main queue takes what the small one cannot
        else:
            self._small[key] = 0
        self._newcomer = key

    def on_update(self, key: Hashable, weight: int) -> None:
        """An overwrite is a use."""
        self._newcomer = None
        self.record_hits((key,))

    def on_remove(self, key: Hashable) -> None:
        self._newcomer = None
        if self._small.pop(key, None) is None:
            self._main.pop(key, None)

    def victim(self) -> Hashable:
        small, main = self._small, self._main
        newcomer = self._newcomer
        self._evicted = True
        while True:
            in_small = len(small) - (newcomer in small)
            in_main = len(main) - (newcomer in main)
            if in_small > 0 and (in_main <= self._main_max or in_main == 0):
                key, uses = small.popitem(last=False)
                if key == newcomer:  # only at the front when nothing older is left
                    small[key] = uses
                    key, uses = small.popitem(last=False)
                if uses >= self.move_threshold:
                    main[key] = 0
                    continue
                self._remember(key)
                return key
            if in_main > 0:
                key, uses = main.popitem(last=False)
                if key == newcomer:
                    main[key] = uses
                    key, uses = main.popitem(last=False)
                if uses:
                    main[key] = uses - 1
                    continue
                return key
            if newcomer is not None and (newcomer in small or newcomer in main):
                self._newcomer = None  # nothing else is held: refuse the newcomer
                if small.pop(newcomer, None) is None:
                    main.pop(newcomer)
                return newcomer
            raise LookupError("victim() on an empty S3-FIFO policy")

    def _remember(self, key: Hashable) -> None:
        ghost = self._ghost
        ghost[key] = None
        if len(ghost) > self._ghost_max:
            ghost.popitem(last=False)

    def clear(self) -> None:
        self._small.clear()
        self._main.clear()
        self._ghost.clear()
        self._newcomer = None
        self._evicted = False

    # ------------------------------------------------------------ introspection

    def keys(self) -> Iterator[Hashable]:
        """The tracked keys: the small queue, then the main queue, oldest first."""
        yield from self._small
        yield from self._main

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    def __bool__(self) -> bool:
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._small or key in self._main

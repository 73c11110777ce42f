"""SIEVE (Zhang et al., "SIEVE is Simpler than LRU", NSDI'24).

One FIFO queue, one visited bit per entry and a hand. A hit sets the bit; an
eviction moves the hand from the oldest entry toward the newest, clearing set
bits, and evicts the first entry whose bit is clear; the hand stays there for
the next eviction and wraps to the oldest entry past the newest. Entries never
move, so the queue is a list in insertion order with tombstones for the
departed (compacted when they outnumber the living) and the hand is an index.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Final

from .base import BasePolicy

__all__ = ["SievePolicy"]


class _Tombstone:
    """A departed entry's slot in the queue."""

    __slots__ = ()


_GONE: Final = _Tombstone()


class SievePolicy(BasePolicy):
    """SIEVE: lazy promotion (a bit per hit) and quick demotion of new, unvisited keys.

    ``record_hits`` is one C call (``set.update``): the visited bits are a set.
    Keys hit after they left the cache may linger there; they are pruned when the
    set outgrows the cache, and a key's bit is cleared whenever it (re)enters.
    The newest key is outside the hand's reach while the cache makes room for it,
    as in the paper, where eviction precedes insertion.
    """

    name = "sieve"
    #: 4096 recent hits per drain, not 1024: a drain costs ~8 ns a key here, and with
    #: 1024 long runs of hits lose bits (cache2k_orm_night 5 %: 1.35 pp below libCacheSim)
    hit_sample = 4096

    def __init__(self) -> None:
        super().__init__()
        self._queue: list[Hashable | _Tombstone] = []  # oldest first
        self._pos: dict[Hashable, int] = {}  # held key -> index in _queue
        self._visited: set[Hashable] = set()
        self._hand = 0  # index of the next entry the hand examines
        self._newcomer = False  # the last queue slot holds the key being inserted now

    # ------------------------------------------------------------ feedback

    def record_hits(self, keys: Sequence[Hashable]) -> None:
        self._newcomer = False
        visited = self._visited
        visited.update(keys)
        if len(visited) > 2 * len(self._pos) + 64:  # drop bits of keys no longer held
            visited.intersection_update(self._pos)

    def on_hit(self, key: Hashable) -> None:
        if key in self._pos:
            self._visited.add(key)

    # ------------------------------------------------------------ membership

    def on_insert(self, key: Hashable, weight: int) -> None:
        if len(self._queue) > 2 * len(self._pos) + 32:
            self._compact()
        queue = self._queue
        self._visited.discard(key)
        self._pos[key] = len(queue)
        queue.append(key)
        self._newcomer = True

    def on_update(self, key: Hashable, weight: int) -> None:
        """An overwrite is a use: it sets the key's bit."""
        self._newcomer = False
        if key in self._pos:
            self._visited.add(key)

    def on_remove(self, key: Hashable) -> None:
        self._newcomer = False
        index = self._pos.pop(key, None)
        if index is not None:
            self._queue[index] = _GONE
            self._visited.discard(key)

    def victim(self) -> Hashable:
        queue = self._queue
        pos = self._pos
        visited = self._visited
        # the key being inserted is beyond the hand's end: the paper evicts first
        end = len(queue) - 1 if self._newcomer else len(queue)
        if len(pos) - self._newcomer <= 0:
            if not pos:
                raise LookupError("victim() on an empty SIEVE policy")
            self._newcomer = False  # nothing else to evict: refuse the newcomer
            key = queue.pop()
            assert not isinstance(key, _Tombstone)
            del pos[key]
            return key
        i = self._hand
        while True:
            if i >= end:
                i = 0
            key = queue[i]
            if key is _GONE:
                i += 1
            elif key in visited:
                visited.discard(key)
                i += 1
            else:
                break
        assert not isinstance(key, _Tombstone)
        queue[i] = _GONE
        del pos[key]
        i += 1
        self._hand = i if i < end else 0
        return key

    def clear(self) -> None:
        self._queue.clear()
        self._pos.clear()
        self._visited.clear()
        self._hand = 0
        self._newcomer = False

    def _compact(self) -> None:
        """Drop the tombstones, keeping the order and the hand's place."""
        queue = self._queue
        hand = self._hand
        live: list[Hashable | _Tombstone] = []
        pos = self._pos
        new_hand = 0
        for i, key in enumerate(queue):
            if i == hand:
                new_hand = len(live)
            if key is not _GONE:
                assert not isinstance(key, _Tombstone)
                pos[key] = len(live)
                live.append(key)
        self._queue = live
        self._hand = new_hand if hand < len(queue) else 0

    # ------------------------------------------------------------ introspection

    def keys(self) -> Iterator[Hashable]:
        """The tracked keys, oldest first (for tests and the simulator)."""
        for key in self._queue:
            if not isinstance(key, _Tombstone):
                yield key

    def __len__(self) -> int:
        return len(self._pos)

    def __bool__(self) -> bool:
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._pos

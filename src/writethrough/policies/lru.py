"""LRU: evict the least recently used key; hits are buffered and replayed before eviction."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from .base import BufferedHitsPolicy

__all__ = ["LRUPolicy"]


class LRUPolicy(BufferedHitsPolicy):
    """Least recently used, by an ordered dict; recency from hits, inserts and overwrites."""

    name = "lru"

    def __init__(self) -> None:
        super().__init__()
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def on_hit(self, key: Hashable) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def on_insert(self, key: Hashable, weight: int) -> None:
        self._order[key] = None

    def on_update(self, key: Hashable, weight: int) -> None:
        self._order.move_to_end(key)

    def on_remove(self, key: Hashable) -> None:
        self._order.pop(key, None)

    def victim(self) -> Hashable:
        return self._order.popitem(last=False)[0]

    def clear(self) -> None:
        self._order.clear()
        self._hits.clear()

"""LRU: evict the least recently used key; hits are buffered and replayed before eviction."""

from __future__ import annotations

from collections.abc import Hashable

from .fifo import OrderedPolicy

__all__ = ["LRUPolicy"]


class LRUPolicy(OrderedPolicy):
    """Least recently used: hits, inserts and overwrites move a key to the back."""

    name = "lru"

    def on_hit(self, key: Hashable) -> None:
        if key in self._order:
            self._order.move_to_end(key)

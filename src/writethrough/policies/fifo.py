"""FIFO, exactly the seed's order: first in, first out; an overwrite moves the key to the back."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from .base import BasePolicy

__all__ = ["FIFOPolicy", "OrderedPolicy"]


class OrderedPolicy(BasePolicy):
    """Keys in one ordered dict; the victim is the front. Subclasses say what moves a key."""

    def __init__(self) -> None:
        super().__init__()
        self._order: OrderedDict[Hashable, None] = OrderedDict()

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


class FIFOPolicy(OrderedPolicy):
    """O(1) FIFO: an ordered dict instead of the seed's ``Vec::remove(0)``. Hits cost nothing."""

    name = "fifo"
    hit_sample = 0

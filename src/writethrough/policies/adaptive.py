"""The default policy: W-TinyLFU whose window is sized by ghost hits, ARC's way.

W-TinyLFU (``tinylfu.py``) is strong where frequency matters and weak in two
places, both because its window adapts slowly (one hill-climbing step per ten
accesses per entry): recency-friendly patterns, where a key's second use comes
soon after its first but after it left a small window, and loops longer than
the sketch's memory, where every candidate looks fresher than main's victim.
This policy changes three things:

* **Two ghosts size the window** (ARC, Megiddo & Modha, FAST'03): hashes of
  candidates refused admission (with the window, at most a cache's worth, as
  ARC bounds T1 + B1), and of keys evicted from main (a cache's worth). A
  request for a refused key says the window was too small to catch its reuse:
  the window grows. A request for a key main evicted says main was too small:
  the window shrinks. Each step is ARC's, the ratio of the two ghosts' sizes
  (at least one entry). Only *near* ghost hits count: the key must have been
  remembered no more than the segment's own size ago (in refusals for the
  window, in evictions for main), so that a segment twice as large would have
  held it. A far hit is the mark of a loop longer than the cache, which no
  window size serves; ARC, which counts those, loses every loop.
* **A refused key that comes back soon is admitted** to main's probation
  segment (S3-FIFO's ghost rule, for the near hits only): its reuse is proven.
  Admitting far returns too would let a loop longer than the cache replace
  main's keys one by one (measured: a 1,000-key loop with room for 700 kept 20 %
  of OPT's hits that way, 99 % without).
* **Admission needs a second access**: a candidate seen only once in the
  sketch's current period (its doorkeeper bit alone) never displaces a resident,
  and otherwise it must out-count main's victim (TinyLFU's duel), so neither a
  scan nor a loop, shorter or longer than the sketch's memory, flushes main.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from .tinylfu import TinyLFUPolicy

__all__ = ["AdaptivePolicy"]


class AdaptivePolicy(TinyLFUPolicy):
    """W-TinyLFU with a ghost-sized window, ghost readmission and second-access admission."""

    name = "adaptive"

    def __init__(self) -> None:
        super().__init__()
        # hash -> the ghost's count when it was remembered, oldest first
        self._refused: OrderedDict[int, int] = OrderedDict()
        self._evicted: OrderedDict[int, int] = OrderedDict()
        self._refusals = 0
        self._evictions = 0

    def on_insert(self, key: Hashable, weight: int) -> None:
        h = hash(key)
        self.sketch.increment(key)
        refused, evicted = self._refused, self._evicted
        seq = refused.pop(h, None)
        if seq is not None and self._refusals - seq <= max(1.0, self.window_max):
            # back soon after its refusal: a larger window would have kept it
            self._adjust(max(1.0, len(evicted) / (len(refused) + 1)))
            self._probation[key] = None  # and its reuse is proven: admitted
            self._newcomer = None
            return
        seq = evicted.pop(h, None)
        if seq is not None and self._evictions - seq <= max(1.0, self.capacity - self.window_max):
            self._adjust(-max(1.0, len(refused) / (len(evicted) + 1)))
        self._enter_window(key)

    def _climb(self) -> None:
        """No hill climbing: the ghosts move the window."""

    def _adjust(self, amount: float) -> None:
        self.resize_window(self.window_max + amount)

    def admit(self, candidate: Hashable, victim: Hashable) -> bool:
        """A second access, and more accesses than the victim, within the sketch's memory."""
        frequency = self.sketch.frequency
        wanted = frequency(candidate)
        if wanted > 1 and wanted > frequency(victim):
            self._remember_evicted(victim)
            return True
        self._refusals += 1
        self._remember(self._refused, candidate, self._refusals)
        return False

    def _evict_main_or_window(self) -> Hashable:
        from_main = bool(self._probation or self._protected)
        key = super()._evict_main_or_window()
        if from_main:
            self._remember_evicted(key)
        return key

    def _remember_evicted(self, key: Hashable) -> None:
        self._evictions += 1
        self._remember(self._evicted, key, self._evictions)

    def _remember(self, ghost: OrderedDict[int, int], key: Hashable, seq: int) -> None:
        """ARC's bounds: the window and its ghost together, and main's ghost, hold one cache."""
        ghost[hash(key)] = seq
        if ghost is self._refused:
            limit = max(1, self.capacity - int(self.window_max))
        else:
            limit = self.capacity
        while len(ghost) > limit:
            ghost.popitem(last=False)

    def clear(self) -> None:
        super().clear()
        self._refused.clear()
        self._evicted.clear()

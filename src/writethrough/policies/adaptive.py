"""The default policy: W-TinyLFU whose window is sized by ghost hits, after ARC.

W-TinyLFU (``tinylfu.py``) is strong where frequency matters and weak in two
places, both because its window adapts slowly (one hill-climbing step per ten
accesses per entry): recency-friendly patterns, where a key's second use comes
soon after its first but after it left a small window, and loops longer than
the sketch's memory, where every candidate looks fresher than main's victim.
This policy changes three things:

* **Two ghosts size the window** (after ARC, Megiddo & Modha, FAST'03):
  hashes of candidates refused admission (with the window, at most a cache's
  worth, as ARC bounds T1 + B1), and of keys evicted from main (a cache's
  worth). A request for a refused key says a larger window would have caught
  its reuse; a request for a key main evicted says a larger main would have.
  The two are weighed over the same increment: a return counts only if a
  segment larger by ``delta`` entries would have held it (remembered at most
  ``delta`` refusals, or main evictions, ago), ``delta`` being the smaller
  segment's size, and each such return moves the window one entry its way.
  The same increment on both sides matters: measuring each ghost against its
  own segment's size (a window twice as large against a main twice as
  large) favours the larger segment, so a small window could only shrink and
  stayed at nothing on database and web traces where recency pays (arc_oltp
  at 10 %: 61.2 % against LRU's 66.5 %). A *far* return is the mark of a loop
  longer than the cache, which no window size serves; ARC, which counts
  those, loses every loop. ARC's step, the ratio of the two ghosts' sizes,
  is not used either: with the refused ghost bounded by main's size it makes
  a large window's growth steps large and its shrinking steps one entry, so a
  window that once grows large stays there (lirs_sprite at 1 %: 16.6 % hits
  against 23.2 % with one-entry steps).
* **A refused key that comes back soon is admitted** to main's probation
  segment (S3-FIFO's ghost rule, for the near returns only): its reuse is proven.
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

    @property
    def _delta(self) -> float:
        """The increment both ghosts are weighed over: the smaller segment's size."""
        return max(1.0, min(self.window_max, self.capacity - self.window_max))

    def on_insert(self, key: Hashable, weight: int) -> None:
        h = hash(key)
        self.sketch.increment(key)
        delta = self._delta
        seq = self._refused.pop(h, None)
        if seq is not None and self._refusals - seq <= delta:
            # back soon after its refusal: a larger window would have kept it
            self.resize_window(self.window_max + 1.0)
            self._probation[key] = None  # and its reuse is proven: admitted
            self._newcomer = None
            return
        seq = self._evicted.pop(h, None)
        if seq is not None and self._evictions - seq <= delta:
            self.resize_window(self.window_max - 1.0)  # a larger main would have kept it
        self._enter_window(key)

    def _climb(self) -> None:
        """No hill climbing: the ghosts move the window."""

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

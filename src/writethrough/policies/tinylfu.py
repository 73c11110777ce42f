"""W-TinyLFU with an adaptive window (Einziger et al., "Adaptive Software Cache Management",
Middleware'18; the design of Caffeine).

New keys enter a small LRU *window*. A key leaving the window is a candidate
for the *main* space, a segmented LRU (probation, then protected once hit
there): it gets in only if the frequency sketch (``sketch.py``: count-min,
doorkeeper, periodic halving) rates it above main's victim, the probation
queue's least recent key; otherwise the candidate itself leaves. The window's
share of the entries starts at 1 % and is moved by hill climbing as Caffeine
does: after each sample of ten accesses per entry, keep stepping the window in
the same direction while the hit ratio improves, turn back when it drops, and
shrink the step (x0.98) unless the hit ratio jumped by 5 points or more, which
restarts it at 6.25 % of the entries.

Hits reach the policy in batches (``record_hits``, the cache's read buffer),
so all of this costs nothing on the hit path itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence

from .base import BasePolicy
from .sketch import FrequencySketch

__all__ = ["TinyLFUPolicy"]

_STEP = 0.0625  # Caffeine's HILL_CLIMBER_STEP_PERCENT
_DECAY = 0.98  # HILL_CLIMBER_STEP_DECAY_RATE
_RESTART = 0.05  # HILL_CLIMBER_RESTART_THRESHOLD
_PROTECTED = 0.80  # the protected segment's share of main


class TinyLFUPolicy(BasePolicy):
    """W-TinyLFU: LRU window, TinyLFU admission, SLRU main, hill-climbed window size.

    Segment sizes are counted in entries; with ``max_bytes`` the cache keeps
    calling ``victim()`` until the bytes fit too, and each call settles one
    window candidate against main's victim.
    """

    name = "tinylfu"
    #: the window's initial share of the entries
    window_ratio = 0.01

    def __init__(self) -> None:
        super().__init__()
        self._window: OrderedDict[Hashable, None] = OrderedDict()  # least recent first
        self._probation: OrderedDict[Hashable, None] = OrderedDict()
        self._protected: OrderedDict[Hashable, None] = OrderedDict()
        self.sketch = FrequencySketch(1)
        self.window_max = 1.0  # a float: small caches step by fractions of an entry
        self._newcomer: Hashable | None = None
        # hill climbing
        self._hits = 0
        self._misses = 0
        self._previous_ratio = 0.0
        self._step = 0.0

    def bind(self, capacity: int, max_bytes: int | None) -> None:
        super().bind(capacity, max_bytes)
        self.sketch = FrequencySketch(capacity)
        self.window_max = float(capacity - int(capacity * (1 - self.window_ratio)))
        self._step = -_STEP * capacity

    @property
    def _protected_max(self) -> int:
        return int((self.capacity - int(self.window_max)) * _PROTECTED)

    # ------------------------------------------------------------ feedback

    def record_hits(self, keys: Sequence[Hashable]) -> None:
        self.sketch.increment_all(keys)
        window, probation, protected = self._window, self._probation, self._protected
        for key in keys:
            if key in window:
                window.move_to_end(key)
            elif key in protected:
                protected.move_to_end(key)
            elif key in probation:
                del probation[key]
                protected[key] = None
                self._fit_protected()
        self._hits += len(keys)
        self._climb()

    def on_hit(self, key: Hashable) -> None:
        self.record_hits((key,))

    def _fit_protected(self) -> None:
        protected, probation = self._protected, self._probation
        limit = self._protected_max
        while len(protected) > limit:
            probation[protected.popitem(last=False)[0]] = None

    # ------------------------------------------------------------ membership

    def on_insert(self, key: Hashable, weight: int) -> None:
        self.sketch.increment(key)
        self._enter_window(key)
        self._misses += 1
        self._climb()

    def _enter_window(self, key: Hashable) -> None:
        """The newcomer joins the window; while the cache fills up, the window's overflow
        moves to main's probation segment without a duel (there is room for both)."""
        window = self._window
        window[key] = None
        self._newcomer = key
        if len(self) <= self.capacity:  # no victim() follows: the cache has room
            probation = self._probation
            limit = max(0, int(self.window_max))
            while len(window) > limit and window:
                oldest = next(iter(window))
                if oldest == key:
                    break
                del window[oldest]
                probation[oldest] = None

    def on_update(self, key: Hashable, weight: int) -> None:
        """An overwrite is a use."""
        self._newcomer = None
        self.record_hits((key,))

    def on_remove(self, key: Hashable) -> None:
        self._newcomer = None
        # pop(key, 0) is None exactly when the segment held the key
        if self._window.pop(key, 0) is not None and self._probation.pop(key, 0) is not None:
            self._protected.pop(key, None)

    def victim(self) -> Hashable:
        window, probation = self._window, self._probation
        candidate: Hashable | None = None
        limit = max(0, int(self.window_max))
        while len(window) > limit:  # overflow: the window's oldest become main's candidates
            candidate = window.popitem(last=False)[0]
            probation[candidate] = None
        if candidate is None:
            return self._evict_main_or_window()
        victim = self._main_victim(candidate)
        if victim is None:  # main holds only the candidate
            del probation[candidate]
            return candidate
        if self.admit(candidate, victim):
            return self._take(victim)
        del probation[candidate]
        return candidate

    def admit(self, candidate: Hashable, victim: Hashable) -> bool:
        """TinyLFU: the candidate gets in only if it is more frequent than the victim."""
        frequency = self.sketch.frequency
        return frequency(candidate) > frequency(victim)

    def _main_victim(self, candidate: Hashable) -> Hashable | None:
        """Main's least valuable key other than the candidate: probation's, then protected's."""
        for segment in (self._probation, self._protected):
            for key in segment:  # the candidate is probation's newest: at most two steps
                if key != candidate:
                    return key
        return None

    def _take(self, key: Hashable) -> Hashable:
        if self._probation.pop(key, 0) is not None:
            del self._protected[key]
        return key

    def _evict_main_or_window(self) -> Hashable:
        """No candidate: the oldest of probation, protected, then the window."""
        for segment in (self._probation, self._protected, self._window):
            if segment:
                key = segment.popitem(last=False)[0]
                if key == self._newcomer:  # nothing else is held: refuse the newcomer
                    self._newcomer = None
                return key
        raise LookupError("victim() on an empty W-TinyLFU policy")

    # ------------------------------------------------------------ adaptation

    def _climb(self) -> None:
        """Caffeine's hill climber: one window adjustment per sample of accesses."""
        requests = self._hits + self._misses
        if requests < self.sketch.sample:
            return
        ratio = self._hits / requests
        delta = ratio - self._previous_ratio
        amount = self._step if delta >= 0 else -self._step
        if abs(delta) >= _RESTART:
            self._step = _STEP * self.capacity * (1 if amount >= 0 else -1)
        else:
            self._step = _DECAY * amount
        self._previous_ratio = ratio
        self._hits = self._misses = 0
        self.resize_window(self.window_max + amount)

    def resize_window(self, target: float) -> None:
        """Move the window's size to ``target`` entries (main gets the rest)."""
        self.window_max = min(max(target, 0.0), float(self.capacity - 1))
        self._fit_protected()

    def clear(self) -> None:
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self.sketch.clear()
        self._newcomer = None

    # ------------------------------------------------------------ introspection

    def keys(self) -> Iterator[Hashable]:
        """The tracked keys: window, probation, protected, each least recent first."""
        yield from self._window
        yield from self._probation
        yield from self._protected

    def __len__(self) -> int:
        return len(self._window) + len(self._probation) + len(self._protected)

    def __bool__(self) -> bool:
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._window or key in self._probation or key in self._protected

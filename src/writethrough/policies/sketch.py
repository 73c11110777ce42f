"""TinyLFU's frequency estimate: a count-min sketch with a doorkeeper and periodic halving.

Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission
Policy" (ACM ToS 2017). Four rows of 4-bit counters (one byte each here) give
an estimate that never undercounts; before a key reaches them it must pass the
doorkeeper, a Bloom filter (two bits per key, 16 bits per access of a period)
of the keys seen in this period, so one-hit wonders cost no counters. After
``sample`` increments every counter is halved and the doorkeeper cleared: old
popularity fades (the "reset" of the paper).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

__all__ = ["FrequencySketch"]

_MASK64 = (1 << 64) - 1
_HALVE = bytes(i >> 1 for i in range(256))
_MAX_BITS = 22  # at most 4 rows of 4 Mi counters


def _mix(key: Hashable) -> int:
    """A 64-bit mix of ``hash(key)`` (splitmix64's finaliser): small ints spread too."""
    h = hash(key) & _MASK64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
    return h ^ (h >> 31)


class FrequencySketch:
    """Estimated access counts (0-15, plus 1 for the doorkeeper) of recently seen keys."""

    __slots__ = (
        "_additions",
        "_bits",
        "_door",
        "_door_bits",
        "_door_mask",
        "_mask",
        "_table",
        "_width",
        "sample",
    )

    def __init__(self, capacity: int) -> None:
        bits = max(6, min(_MAX_BITS, (4 * max(1, capacity) - 1).bit_length()))
        self._bits = bits
        self._width = 1 << bits
        self._mask = self._width - 1
        self._table = bytearray(4 * self._width)
        self._additions = 0
        #: increments between two halvings: ten per cached entry, as in the paper
        self.sample = 10 * max(1, capacity)
        self._door_bits = max(9, min(_MAX_BITS + 6, (16 * self.sample - 1).bit_length()))
        self._door_mask = (1 << self._door_bits) - 1
        self._door = bytearray(1 << (self._door_bits - 3))

    def _slots(self, h: int) -> tuple[int, int, int, int]:
        """The four counters of a mixed hash, one per row."""
        mask, width = self._mask, self._width
        if self._bits <= 16:
            return (
                h & mask,
                width + ((h >> 16) & mask),
                2 * width + ((h >> 32) & mask),
                3 * width + ((h >> 48) & mask),
            )
        g = (h * 0x9E3779B97F4A7C15) & _MASK64
        return (
            h & mask,
            width + ((h >> 32) & mask),
            2 * width + (g & mask),
            3 * width + ((g >> 40) & mask),
        )

    def _door_slots(self, h: int) -> tuple[int, int]:
        """The doorkeeper's two bits of a mixed hash."""
        g = (h * 0x9E3779B97F4A7C15) & _MASK64
        return g >> (64 - self._door_bits), (g >> 3) & self._door_mask

    def increment(self, key: Hashable) -> None:
        """One access of ``key``: its first in a period only enters the doorkeeper."""
        h = _mix(key)
        door = self._door
        a, b = self._door_slots(h)
        bit_a, bit_b = 1 << (a & 7), 1 << (b & 7)
        if not (door[a >> 3] & bit_a and door[b >> 3] & bit_b):
            door[a >> 3] |= bit_a
            door[b >> 3] |= bit_b
        else:
            table = self._table
            for i in self._slots(h):
                if table[i] < 15:
                    table[i] += 1
        self._additions += 1
        if self._additions >= self.sample:
            self.halve()

    def increment_all(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            self.increment(key)

    def frequency(self, key: Hashable) -> int:
        """The estimate: the least of the key's four counters, plus its doorkeeper bit."""
        h = _mix(key)
        table = self._table
        a, b, c, d = self._slots(h)
        return self._at_door(h) + min(table[a], table[b], table[c], table[d])

    def _at_door(self, h: int) -> bool:
        door = self._door
        a, b = self._door_slots(h)
        return bool(door[a >> 3] & (1 << (a & 7)) and door[b >> 3] & (1 << (b & 7)))

    def halve(self) -> None:
        """Age every count: halve the counters, empty the doorkeeper."""
        self._table = self._table.translate(_HALVE)
        self._door = bytearray(len(self._door))
        self._additions //= 2

    def clear(self) -> None:
        self._table = bytearray(len(self._table))
        self._door = bytearray(len(self._door))
        self._additions = 0

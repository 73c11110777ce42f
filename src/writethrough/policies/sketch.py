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

from collections.abc import Hashable, Sequence

__all__ = ["FrequencySketch"]

_MASK64 = (1 << 64) - 1
_HALVE = bytes(i >> 1 for i in range(256))
_MAX_BITS = 22  # at most 4 rows of 4 Mi counters


_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd
_C3 = 0xD6E8FEB86659FD93  # another odd 64-bit multiplier


class FrequencySketch:
    """Estimated access counts (0-15, plus 1 for the doorkeeper) of recently seen keys.

    Two multiplicative hashes of ``hash(key)`` (Knuth's: the high bits of the
    64-bit product mix every input bit, so small ints spread too) give the four
    counters, from the top three bit ranges of one product and the second range
    of the other, and the doorkeeper's two bits. ``increment_all`` is the batch
    form the policies use at drain time, with the arithmetic inlined.
    """

    __slots__ = (
        "_additions",
        "_bits",
        "_door",
        "_door_bits",
        "_door_mask",
        "_mask",
        "_shifts",
        "_table",
        "_width",
        "sample",
    )

    def __init__(self, capacity: int) -> None:
        bits = max(6, min(_MAX_BITS, (4 * max(1, capacity) - 1).bit_length()))
        self._bits = bits
        self._width = 1 << bits
        self._mask = self._width - 1
        self._shifts = (64 - bits, 64 - 2 * bits, max(0, 64 - 3 * bits))
        self._table = bytearray(4 * self._width)
        self._additions = 0
        #: increments between two halvings: ten per cached entry, as in the paper
        self.sample = 10 * max(1, capacity)
        self._door_bits = max(9, min(_MAX_BITS + 6, (16 * self.sample - 1).bit_length()))
        self._door_mask = (1 << self._door_bits) - 1
        self._door = bytearray(1 << (self._door_bits - 3))

    def increment(self, key: Hashable) -> None:
        """One access of ``key``: its first in a period only enters the doorkeeper."""
        self.increment_all((key,))

    def increment_all(self, keys: Sequence[Hashable]) -> None:
        """One access of each key, in order (halving when a period ends)."""
        start, n = 0, len(keys)
        while start < n:
            room = self.sample - self._additions
            stop = min(n, start + max(1, room))
            self._add(keys, start, stop)
            self._additions += stop - start
            if self._additions >= self.sample:
                self.halve()
            start = stop

    def _add(self, keys: Sequence[Hashable], start: int, stop: int) -> None:
        table, door = self._table, self._door
        m64, mask, door_mask = _MASK64, self._mask, self._door_mask
        w1, w2, w3 = self._width, 2 * self._width, 3 * self._width
        s0, s1, s2 = self._shifts
        door_high = 64 - self._door_bits
        for i in range(start, stop):
            h = hash(keys[i])
            x = (h * _GOLDEN) & m64
            y = (h * _C3) & m64
            a = y >> door_high
            b = x & door_mask
            bit_a = 1 << (a & 7)
            bit_b = 1 << (b & 7)
            a >>= 3
            b >>= 3
            if door[a] & bit_a and door[b] & bit_b:
                for j in (
                    x >> s0,
                    w1 + ((x >> s1) & mask),
                    w2 + ((x >> s2) & mask),
                    w3 + ((y >> s1) & mask),
                ):
                    if table[j] < 15:
                        table[j] += 1
            else:
                door[a] |= bit_a
                door[b] |= bit_b

    def frequency(self, key: Hashable) -> int:
        """The estimate: the least of the key's four counters, plus its doorkeeper bit."""
        h = hash(key)
        x = (h * _GOLDEN) & _MASK64
        y = (h * _C3) & _MASK64
        table, mask, width = self._table, self._mask, self._width
        s0, s1, s2 = self._shifts
        count = min(
            table[x >> s0],
            table[width + ((x >> s1) & mask)],
            table[2 * width + ((x >> s2) & mask)],
            table[3 * width + ((y >> s1) & mask)],
        )
        a = y >> (64 - self._door_bits)
        b = x & self._door_mask
        door = self._door
        return count + bool(door[a >> 3] & (1 << (a & 7)) and door[b >> 3] & (1 << (b & 7)))

    def halve(self) -> None:
        """Age every count: halve the counters, empty the doorkeeper."""
        self._table = self._table.translate(_HALVE)
        self._door = bytearray(len(self._door))
        self._additions //= 2

    def clear(self) -> None:
        self._table = bytearray(len(self._table))
        self._door = bytearray(len(self._door))
        self._additions = 0

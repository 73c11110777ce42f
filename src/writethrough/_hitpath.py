"""The hit path: ``get`` built as a closure over local names, no lock taken.

This is the hottest code in the project; measure before and after touching it
(``benchmarks/hit_path.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from ._core import Core

__all__ = ["make_get"]


def make_get(
    core: Core[Any], slow: Callable[[Hashable, Any], Any]
) -> Callable[[Hashable, Any], Any]:
    """Build ``get`` as a closure over local names: a dict lookup and one append.

    ``data[key]`` under ``try`` rather than ``data.get``: a subscript is a
    specialised opcode, a ``.get`` is a call (about 25 ns a hit here); the
    exception on a miss costs less than the store read that follows.
    Unhashable keys (TypeError) go to the slow path, which refuses them.
    The append to the hit log is the whole of a hit's bookkeeping: it counts
    the hit exactly and is the policy's feedback (``Core.drain_hits``); one C
    call where a counter plus a policy buffer took two (about 20 % of a hit).
    """
    data = core.data
    record = core.hit_log.append

    if core.ttl is not None:
        expires_get = core.expires.get
        monotonic = time.monotonic

        def get_ttl(key: Hashable, default: Any = None) -> Any:
            try:
                value = data[key]
            except (KeyError, TypeError):
                return slow(key, default)
            if expires_get(key, 0.0) > monotonic():
                record(key)
                return value
            return slow(key, default)

        return get_ttl

    def get(key: Hashable, default: Any = None) -> Any:
        try:
            value = data[key]
        except (KeyError, TypeError):
            return slow(key, default)
        record(key)
        return value

    return get

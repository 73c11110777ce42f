"""The hit path: ``get`` built as a closure over local names, no lock taken.

This is the hottest code in the project; measure before and after touching it
(``benchmarks/hit_path.py``). The threaded and the asyncio cache share one
source: ``_SOURCE`` is compiled twice, once plain and once with ``async def`` /
``await`` (the only difference), so the two hit paths cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from ._core import MISSING, Core

__all__ = ["make_async_get", "make_get"]

# Notes on the choices below (measured):
# ``data.get(key, missing)`` rather than ``data[key]`` under ``try``: the
# subscript is about 17 ns faster on a hit, but the KeyError it raises on a
# miss costs 1.5-2 us there (SQLite get-miss: 1.93x raw with the subscript,
# 1.69x with ``get``); for any hit ratio below about 99 % ``get`` is the faster
# choice overall, and both keep the hit-path targets. Unhashable keys
# (TypeError) go to the slow path, which refuses them. The append to the hit
# log is the whole of a hit's bookkeeping: it counts the hit exactly and is the
# policy's feedback (``Core.drain_hits``); one C call where a counter plus a
# policy buffer took two (about 20 % of a hit).
_SOURCE = """
def build(data_get, record, missing, expires_get, monotonic, slow):
    ASYNC def get_ttl(key, default=None):
        try:
            value = data_get(key, missing)
        except TypeError:
            return AWAIT slow(key, default)
        if value is not missing and expires_get(key, 0.0) > monotonic():
            record(key)
            return value
        return AWAIT slow(key, default)

    ASYNC def get(key, default=None):
        try:
            value = data_get(key, missing)
        except TypeError:
            return AWAIT slow(key, default)
        if value is missing:
            return AWAIT slow(key, default)
        record(key)
        return value

    return get, get_ttl
"""


def _compile(is_async: bool) -> Callable[..., tuple[Any, Any]]:
    text = _SOURCE.replace("ASYNC ", "async " if is_async else "")
    text = text.replace("AWAIT ", "await " if is_async else "")
    namespace: dict[str, Any] = {}
    exec(
        compile(text, f"<writethrough hit path{' (async)' if is_async else ''}>", "exec"), namespace
    )
    build: Callable[..., tuple[Any, Any]] = namespace["build"]
    return build


_BUILD = _compile(False)
_BUILD_ASYNC = _compile(True)


def _make(core: Core[Any], slow: Callable[..., Any], build: Callable[..., tuple[Any, Any]]) -> Any:
    get, get_ttl = build(
        core.data.get, core.hit_log.append, MISSING, core.expires.get, time.monotonic, slow
    )
    return get if core.ttl is None else get_ttl


def make_get(
    core: Core[Any], slow: Callable[[Hashable, Any], Any]
) -> Callable[[Hashable, Any], Any]:
    """Build ``get`` as a closure over local names: a dict lookup and one append."""
    get: Callable[[Hashable, Any], Any] = _make(core, slow, _BUILD)
    return get


def make_async_get(core: Core[Any], slow: Callable[[Hashable, Any], Any]) -> Any:
    """``make_get`` for the asyncio cache: the same closure as a coroutine function."""
    return _make(core, slow, _BUILD_ASYNC)

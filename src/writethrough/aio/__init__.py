"""The asyncio twin: ``AsyncWriteThroughCache`` and its async stores.

``cache = await writethrough.open_async(url)`` gives the same cache as
``writethrough.open(url)`` with ``async`` methods of the same names and
meanings, over the same sans-I/O core (see ``docs/async.md``).
"""

from __future__ import annotations

from .cache import AsyncWriteThroughCache
from .stores import AsyncStoreBase, SyncStoreAdapter, is_async_store, to_async_store

__all__ = [
    "AsyncStoreBase",
    "AsyncWriteThroughCache",
    "SyncStoreAdapter",
    "is_async_store",
    "to_async_store",
]

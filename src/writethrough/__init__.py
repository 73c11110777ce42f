"""writethrough: a write-through, read-through cache in front of a durable store.

Every ``put`` reaches the store before it returns; reads are served from memory
when they can; the cache is bounded, thread-safe and never serves a value older
than the last completed write. See ``docs/guarantees.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import WriteThroughCache
from .codecs import BytesCodec, Codec, JsonCodec, MsgpackCodec, PickleCodec, StrCodec
from .errors import (
    BatchError,
    CacheClosed,
    CodecError,
    ConfigError,
    EntryTooLarge,
    KeyNotFound,
    ReentrantCompute,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
    WriteThroughError,
)
from .policies import Policy
from .stats import CacheStats
from .stores.base import BytesStore, Store
from .stores.memory import MemoryStore

if TYPE_CHECKING:  # the lazily imported public names, for type checkers
    from .aio import AsyncWriteThroughCache
    from .stores.sqlite import SQLiteStore
    from .url import URL, parse_url, register_scheme

__version__ = "0.1.0"


def open(url: str, **options: Any) -> WriteThroughCache:
    """Open a cache over the store ``url`` names: ``wt.open("sqlite:///app.db")``.

    Options as keywords or in the URL query (``?capacity=50000&policy=lru``);
    see ``writethrough.url.open``. The URL machinery is imported on first use.
    """
    from .url import open as _open

    return _open(url, **options)


async def open_async(url: str, **options: Any) -> AsyncWriteThroughCache:
    """``open`` for asyncio: ``cache = await wt.open_async("redis://localhost/0")``.

    Returns an ``AsyncWriteThroughCache``; see ``writethrough.url.open_async``.
    asyncio and the async drivers are imported on first use.
    """
    from .url import open_async as _open_async

    return await _open_async(url, **options)


def __getattr__(name: str) -> Any:
    # URL helpers and SQLiteStore are public but imported lazily (import time).
    if name in ("URL", "parse_url", "register_scheme"):
        from . import url

        return getattr(url, name)
    if name == "AsyncWriteThroughCache":  # asyncio is imported only by those who use it
        from .aio import AsyncWriteThroughCache

        return AsyncWriteThroughCache
    if name == "SQLiteStore":  # sqlite3 is imported only by those who use it
        from .stores.sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'writethrough' has no attribute {name!r}")


__all__ = [
    "URL",
    "AsyncWriteThroughCache",
    "BatchError",
    "BytesCodec",
    "BytesStore",
    "CacheClosed",
    "CacheStats",
    "Codec",
    "CodecError",
    "ConfigError",
    "EntryTooLarge",
    "JsonCodec",
    "KeyNotFound",
    "MemoryStore",
    "MsgpackCodec",
    "PickleCodec",
    "Policy",
    "ReentrantCompute",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoreWriteError",
    "StrCodec",
    "WriteThroughCache",
    "WriteThroughError",
    "__version__",
    "open",
    "open_async",
    "parse_url",
    "register_scheme",
]

"""writethrough: a write-through, read-through cache in front of a durable store.

Every ``put`` reaches the store before it returns; reads are served from memory
when they can; the cache is bounded, thread-safe and never serves a value older
than the last completed write. See ``docs/guarantees.md``.
"""

from __future__ import annotations

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
from .url import URL, open, parse_url, register_scheme

__version__ = "0.1.0"

__all__ = [
    "URL",
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
    "parse_url",
    "register_scheme",
]

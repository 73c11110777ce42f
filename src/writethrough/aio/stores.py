"""Async stores: what ``AsyncWriteThroughCache`` awaits.

Every async store is built over a sync store of the same data, which keeps the
configuration, the option checks, the table setup, the SQL text, the key
prefix and the mapping of driver errors into the ``StoreError`` tree; the async
store only performs the I/O with an async driver. So the two never disagree on
what a key, a table or an error is.

- ``AsyncPostgresStore``: psycopg 3 ``AsyncConnection`` from an ``AsyncConnectionPool``.
- ``AsyncRedisStore``: ``redis.asyncio`` with a blocking pool, no retries of writes.
- ``SyncStoreAdapter``: any sync store. Calls run in a small thread pool of their
  own (SQLite, files, MySQL, user stores: the event loop never blocks on disk or
  on the network), or inline for ``MemoryStore``, which never blocks.

``to_async_store(store)`` picks one of these for a sync store.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._core import MISSING
from ..errors import ConfigError
from ..stores.base import run_batch_remove, run_batch_store

__all__ = [
    "AsyncStoreBase",
    "SyncStoreAdapter",
    "is_async_store",
    "to_async_store",
]


class AsyncStoreBase:
    """What every async store shares: its sync twin's description and flags."""

    sync: Any  # the sync store over the same data (configuration, errors, group commit)
    executor: ThreadPoolExecutor | None = None  # threads of its own for blocking calls, if any
    _closed = False

    @property
    def wants_bytes(self) -> bool:
        return bool(getattr(self.sync, "wants_bytes", False))

    @property
    def supports_group_commit(self) -> bool:
        return bool(getattr(self.sync, "supports_group_commit", False))

    @property
    def group_commit_default(self) -> bool:
        return bool(getattr(self.sync, "group_commit_default", False))

    @property
    def identity(self) -> Any:
        return getattr(self.sync, "identity", None) or type(self.sync).__name__

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self, *, close_sync: bool = True) -> None:
        """Release the async connections and threads, then (``close_sync``) the sync twin,
        in a thread: closing a pool may wait for its workers."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._aclose()
        finally:
            close = getattr(self.sync, "close", None)
            try:
                if close_sync and callable(close):
                    await asyncio.to_thread(close)
            finally:
                if self.executor is not None:
                    self.executor.shutdown(wait=False)

    async def _aclose(self) -> None:
        """Release the async driver's connections (subclass hook)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"


class SyncStoreAdapter(AsyncStoreBase):
    """Any sync store as an async one: each call runs in ``threads`` worker threads.

    ``threads=0`` calls the store inline, on the event loop: only for stores that
    never block (``MemoryStore``).
    """

    def __init__(self, store: Any, *, threads: int = 8) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads must be an int >= 0, got {threads!r}")
        for method in ("load", "store", "remove"):
            if not callable(getattr(store, method, None)):
                raise ConfigError(
                    f"{type(store).__name__} is not a store: it has no {method}() method"
                )
        self.sync = store
        if threads:
            self.executor = ThreadPoolExecutor(
                max_workers=threads, thread_name_prefix="writethrough-aio"
            )
        lookup = getattr(store, "lookup", None)
        self._lookup: Callable[[Any, Any], Any] = lookup or self._lookup_by_load
        self._load_many: Callable[[list[Any]], dict[Any, Any]] = (
            getattr(store, "load_many", None) or self._load_each
        )
        self._store_many: Callable[[Sequence[tuple[Any, Any]]], None] = getattr(
            store, "store_many", None
        ) or (lambda items: run_batch_store(store, items))
        self._remove_many: Callable[[Sequence[Any]], list[bool]] = getattr(
            store, "remove_many", None
        ) or (lambda keys: run_batch_remove(store, keys))

    def _lookup_by_load(self, key: Any, missing: Any) -> Any:
        stored = self.sync.load(key)
        return missing if stored is None else stored

    def _load_each(self, keys: list[Any]) -> dict[Any, Any]:
        found = {}
        for key in keys:
            stored = self._lookup(key, MISSING)
            if stored is not MISSING:
                found[key] = stored
        return found

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` of the sync store: on the loop when inline, else in a worker thread."""
        if self.executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def lookup(self, key: Any, missing: Any) -> Any:
        return await self._call(self._lookup, key, missing)

    async def load(self, key: Any) -> Any:
        return await self._call(self.sync.load, key)

    async def store(self, key: Any, value: Any) -> None:
        await self._call(self.sync.store, key, value)

    async def remove(self, key: Any) -> bool:
        return bool(await self._call(self.sync.remove, key))

    async def load_many(self, keys: Iterable[Any]) -> dict[Any, Any]:
        found: dict[Any, Any] = await self._call(self._load_many, list(keys))
        return found

    async def store_many(self, items: Sequence[tuple[Any, Any]]) -> None:
        await self._call(self._store_many, list(items))

    async def remove_many(self, keys: Sequence[Any]) -> list[bool]:
        existed: list[bool] = await self._call(self._remove_many, list(keys))
        return existed


def is_async_store(store: Any) -> bool:
    """Whether ``store`` is an async store (its ``load`` is a coroutine function)."""
    return asyncio.iscoroutinefunction(getattr(store, "load", None)) and callable(
        getattr(store, "aclose", None)
    )


def to_async_store(store: Any, *, threads: int = 8) -> Any:
    """The async store for ``store``: itself if async, else a native or adapted one.

    PostgreSQL and Redis get their async drivers (call ``await s.open()`` before
    use); ``MemoryStore`` is called inline; any other store runs in threads.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an int >= 1, got {threads!r}")
    if is_async_store(store):
        return store
    from ..stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        return SyncStoreAdapter(store, threads=0)
    postgres = sys.modules.get("writethrough.stores.postgres")
    if postgres is not None and isinstance(store, postgres.PostgresStore):
        from ._postgres import AsyncPostgresStore

        return AsyncPostgresStore(store)
    redis_mod = sys.modules.get("writethrough.stores.redis")
    if redis_mod is not None and isinstance(store, redis_mod.RedisStore):
        from ._redis import AsyncRedisStore

        return AsyncRedisStore(store)
    return SyncStoreAdapter(store, threads=threads)


def __getattr__(name: str) -> Any:
    # the server stores import their drivers only when asked for
    if name == "AsyncPostgresStore":
        from ._postgres import AsyncPostgresStore

        return AsyncPostgresStore
    if name == "AsyncRedisStore":
        from ._redis import AsyncRedisStore

        return AsyncRedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

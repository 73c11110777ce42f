"""``AsyncPostgresStore``: PostgreSQL through psycopg 3's ``AsyncConnectionPool``.

Built over a ``PostgresStore`` (the sync twin), which made or checked the table
and composed the statements: this store reuses its statements, its option
values and its error mapping, and only runs the same SQL on async connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ..errors import CacheClosed
from ..stores.postgres import _CHUNK_BYTES, _POOL_ERRORS, PostgresStore, _lost
from .stores import AsyncStoreBase

__all__ = ["AsyncPostgresStore"]

_ERRORS = (psycopg.Error, *_POOL_ERRORS)


class AsyncPostgresStore(AsyncStoreBase):
    """The table of ``sync`` (a ``PostgresStore``), read and written with async connections.

    The pool has the sync store's ``pool_size``, ``pool_min`` and ``timeout``; it
    opens on first use (or ``await store.open()``).
    """

    def __init__(self, sync: PostgresStore) -> None:
        self.sync = sync
        self._prepare = sync._prepare
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            sync._conninfo,
            kwargs={"autocommit": True},
            min_size=sync._pool_min,
            max_size=sync._pool_size,
            open=False,
            name=f"writethrough-async:{sync.table}",
            timeout=sync._timeout,
            reconnect_timeout=10.0,
        )
        self._opened = False
        self._open_lock: asyncio.Lock | None = None

    async def open(self) -> None:
        """Open the pool and wait for its first connections (``StoreUnavailable`` if none)."""
        if self._opened:
            return
        if self._closed:
            raise CacheClosed(f"{self.identity}: store is closed")
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return
            try:
                await self._pool.open(wait=True, timeout=self.sync._connect_timeout)
            except psycopg.Error as exc:
                raise self.sync._error(exc, "connect", write=False) from exc
            self._opened = True

    async def _aclose(self) -> None:
        await self._pool.close()

    async def _query(
        self, sql: bytes, params: Any, action: str, *, write: bool, batch: Any = None
    ) -> Any:
        """Run ``sql`` on a pooled connection: the cursor's rows (reads) or row count."""
        if not self._opened:
            await self.open()
        for attempt in (0, 1):
            try:
                async with self._pool.connection() as conn:
                    cur = await conn.execute(sql, params, prepare=self._prepare, binary=True)
                    return await cur.fetchall() if cur.description else cur.rowcount
            except _ERRORS as exc:
                if self._closed:
                    raise CacheClosed(f"{self.identity}: store is closed") from exc
                if _lost(exc):
                    with contextlib.suppress(Exception):
                        await self._pool.check()  # replace the dead siblings now
                    if not write and not attempt:
                        continue  # a read whose connection died is sent once more
                if batch is not None:
                    raise self.sync._batch_error(exc, action, batch) from exc
                raise self.sync._error(exc, action, write=write) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def lookup(self, key: bytes, missing: Any) -> Any:
        rows = await self._query(self.sync._sql_load, (key,), "load", write=False)
        return rows[0][0] if rows else missing

    async def load(self, key: bytes) -> bytes | None:
        value: bytes | None = await self.lookup(key, None)
        return value

    async def store(self, key: bytes, value: bytes) -> None:
        await self._query(self.sync._sql_store, (key, value), "store", write=True)

    async def remove(self, key: bytes) -> bool:
        count: int = await self._query(self.sync._sql_remove, (key,), "remove", write=True)
        return count > 0

    async def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = list(keys)
        if not keys:
            return {}
        rows = await self._query(self.sync._sql_load_many, (keys,), "load_many", write=False)
        return dict(rows)

    async def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Every pair in one transaction (sorted keys, last value of a repeated key wins)."""
        if not items:
            return
        if not self._opened:
            await self.open()
        try:
            latest = dict(items)
            keys = sorted(latest)
            values = [latest[k] for k in keys]
            async with self._pool.connection() as conn, conn.transaction():
                start = total = 0
                for end, value in enumerate(values, 1):
                    total += len(value)
                    if total >= _CHUNK_BYTES or end == len(values):
                        await conn.execute(
                            self.sync._sql_store_many, (keys[start:end], values[start:end])
                        )
                        start, total = end, 0
        except (*_ERRORS, TypeError, ValueError) as exc:
            raise self.sync._batch_error(exc, "store_many", items) from exc

    async def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """Remove every key in one statement; per key, whether it existed (a repeat: once)."""
        keys = list(keys)
        if not keys:
            return []
        rows = await self._query(
            self.sync._sql_remove_many, (keys,), "remove_many", write=True, batch=keys
        )
        removed = {row[0] for row in rows}
        existed: list[bool] = []
        for key in keys:
            existed.append(key in removed)
            removed.discard(key)
        return existed

"""``AsyncRedisStore``: Redis through ``redis.asyncio``.

Built over a ``RedisStore`` (the sync twin), which checked the URL and options,
pinged the server and read its persistence settings: this store reuses its
address, prefix, timeouts and error mapping, and sends the same commands
(GET, SET, DEL, MGET, MSET, DEL in MULTI/EXEC) on async connections. Writes
are never retried by the driver (a failed write must not be sent twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, OutOfMemoryError

from ..errors import BatchError
from ..stores.base import batch_item_key as _key_of
from ..stores.redis import _ERRORS, RedisStore
from .stores import AsyncStoreBase

__all__ = ["AsyncRedisStore"]


class AsyncRedisStore(AsyncStoreBase):
    """The keys of ``sync`` (a ``RedisStore``), read and written with async connections."""

    def __init__(self, sync: RedisStore) -> None:
        self.sync = sync
        self._prefix = sync.prefix.encode()
        options = sync._pool_options()
        if options.get("connection_class") is redis.SSLConnection:
            options["connection_class"] = aredis.SSLConnection
        make_pool: Any = aredis.BlockingConnectionPool  # untyped in redis-py
        self._pool = make_pool(retry=Retry(NoBackoff(), 0), **options)
        self._client: Any = aredis.Redis(connection_pool=self._pool)

    async def _aclose(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()

    async def _call(self, action: str, *args: Any, write: bool) -> Any:
        """One command; a read whose connection broke is sent once more, a write never."""
        self.sync._check_open()
        for attempt in (0, 1):
            try:
                return await self._client.execute_command(*args)
            except _ERRORS as exc:
                retry = (
                    not write
                    and not attempt
                    and isinstance(exc, redis.ConnectionError)
                    and not isinstance(exc, AuthenticationError | BusyLoadingError)
                )
                if not retry:
                    raise self.sync._error(exc, action, write=write) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def lookup(self, key: bytes, missing: Any) -> Any:
        value = await self._call("load", "GET", self._prefix + key, write=False)
        return missing if value is None else value

    async def load(self, key: bytes) -> bytes | None:
        value: bytes | None = await self._call("load", "GET", self._prefix + key, write=False)
        return value

    async def store(self, key: bytes, value: bytes) -> None:
        await self._call("store", "SET", self._prefix + key, value, write=True)

    async def remove(self, key: bytes) -> bool:
        removed: int = await self._call("remove", "DEL", self._prefix + key, write=True)
        return removed > 0

    async def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = list(keys)
        if not keys:
            return {}
        prefix = self._prefix
        values = await self._call("load_many", "MGET", *[prefix + k for k in keys], write=False)
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    async def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """One MSET: all applied, or none and ``BatchError``."""
        if not items:
            return
        self.sync._check_open()
        flat: list[bytes] = []
        try:
            for key, value in items:
                flat += (self._prefix + key, value)
            await self._client.execute_command("MSET", *flat)
        except _ERRORS as exc:
            raise self.sync._batch_error(exc, "store_many", [_key_of(i) for i in items]) from exc

    async def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """One DEL per key in MULTI/EXEC (a plain pipeline at ``maxmemory``)."""
        keys = list(keys)
        if not keys:
            return []
        self.sync._check_open()
        full = [self._prefix + key for key in keys]
        try:
            try:
                replies = await self._delete(full, transaction=True)
            except OutOfMemoryError:
                replies = await self._delete(full, transaction=False)
        except _ERRORS as exc:
            raise self.sync._batch_error(exc, "remove_many", keys) from exc
        existed: list[bool] = []
        failed: dict[Any, BaseException] = {}
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, Exception):
                error = self.sync._error(reply, "remove_many", write=True)
                error.__cause__ = reply
                failed[key] = error
            existed.append(reply is True or (isinstance(reply, int) and reply > 0))
        if failed:
            first = next(iter(failed.values()))
            raise BatchError(
                f"{len(failed)} of {len(keys)} removals failed: {first}",
                failed,
                [k for k in keys if k not in failed],
            )
        return existed

    async def _delete(self, full_keys: list[bytes], *, transaction: bool) -> list[Any]:
        pipe: Any = self._client.pipeline(transaction=transaction)
        try:
            for key in full_keys:
                pipe.execute_command("DEL", key)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        finally:
            await pipe.reset()
        return replies

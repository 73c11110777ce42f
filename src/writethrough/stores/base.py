"""The store protocol (the seed's ``BackingStore``) and a base class for byte stores.

A store is any object with ``load``, ``store`` and ``remove``. The batch forms,
``lookup`` and ``close`` are optional: the cache falls back to loops and to
``load`` when they are missing. Stores know nothing about caching or eviction.

Byte stores (SQLite and every server store) set ``wants_bytes = True``: the
cache then hands them encoded keys and values (``bytes``) and decodes what they
return. Other stores, like ``MemoryStore``, receive the caller's objects as
they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from ..errors import BatchError, CacheClosed

__all__ = ["BytesStore", "Store", "batch_item_key", "run_batch_remove", "run_batch_store"]

K = TypeVar("K")
V = TypeVar("V")


@runtime_checkable
class Store(Protocol):
    """The minimum a backing store implements.

    ``load`` returns ``None`` when the key is absent; ``remove`` returns whether
    the key existed. Failures raise ``StoreError`` subclasses (any other
    exception is wrapped by the cache).
    """

    def load(self, key: Any) -> Any: ...

    def store(self, key: Any, value: Any) -> None: ...

    def remove(self, key: Any) -> bool: ...


def run_batch_store(store: Any, items: Sequence[tuple[Any, Any]]) -> None:
    """Store ``items`` one at a time; raise ``BatchError`` naming each failed key.

    The default ``store_many`` of every store without a real batch, so a partial
    failure is reported per key (DESIGN rule 9).
    """
    failed: dict[Any, BaseException] = {}
    succeeded: list[Any] = []
    for key, value in items:
        try:
            store.store(key, value)
        except Exception as exc:
            failed[key] = exc
        else:
            succeeded.append(key)
    if failed:
        raise BatchError(f"{len(failed)} of {len(items)} writes failed", failed, succeeded)


def run_batch_remove(store: Any, keys: Sequence[Any]) -> list[bool]:
    """Remove ``keys`` one at a time; the result says, per key, whether it existed."""
    failed: dict[Any, BaseException] = {}
    succeeded: list[Any] = []
    existed: list[bool] = []
    for key in keys:
        try:
            existed.append(bool(store.remove(key)))
        except Exception as exc:
            failed[key] = exc
            existed.append(False)
        else:
            succeeded.append(key)
    if failed:
        raise BatchError(f"{len(failed)} of {len(keys)} removals failed", failed, succeeded)
    return existed


class BytesStore:
    """Base class for stores that hold encoded ``bytes`` keys and values.

    Subclasses implement ``load``, ``store``, ``remove`` and ``_close``; they
    override the batch methods when the backend can do better than a loop.
    """

    wants_bytes: ClassVar[bool] = True
    #: ``store_many`` is one transaction, so a writer queue can group puts into it
    supports_group_commit: ClassVar[bool] = False
    #: whether caches over this store group commits unless told otherwise
    group_commit_default: ClassVar[bool] = False
    _closed: bool = False

    def load(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def store(self, key: bytes, value: bytes) -> None:
        raise NotImplementedError

    def remove(self, key: bytes) -> bool:
        raise NotImplementedError

    def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """Values of the keys found; absent keys are left out."""
        found: dict[bytes, bytes] = {}
        for key in keys:
            value = self.load(key)
            if value is not None:
                found[key] = value
        return found

    def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store every pair; on partial failure raise ``BatchError``."""
        run_batch_store(self, items)

    def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """Remove every key; per key, whether it existed."""
        return run_batch_remove(self, keys)

    @property
    def identity(self) -> str:
        """A stable name for what this store holds (processes over the same data agree)."""
        return f"{type(self).__name__}@{id(self):x}"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release connections and files; later calls raise ``CacheClosed``."""
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        """Release resources (subclass hook, called once)."""

    def _check_open(self) -> None:
        if self._closed:
            raise CacheClosed(f"{type(self).__name__} is closed")

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_S = TypeVar("_S", bound=BytesStore)


def batch_item_key(item: Any) -> Any:
    """The key of a batch item, for error reports (even a malformed item gets an entry)."""
    try:
        key = item[0]
        hash(key)
    except Exception:
        return repr(item)
    return key

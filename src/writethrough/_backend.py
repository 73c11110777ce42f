"""The boundary between the cache and a store: keys, values, weights and error wrapping.

Pure functions only (no I/O), so the sync and the async caches share them.
Byte stores get type-tagged keys and codec-encoded values; other stores get
the caller's objects unchanged, after the same key-type check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Any

from .codecs import Codec, decode_key, encode_key
from .errors import (
    CacheClosed,
    CodecError,
    EntryTooLarge,
    StoreError,
    StoreWriteError,
    WriteThroughError,
)

__all__ = ["Encoding", "wrap_load_error", "wrap_write_error"]

Weigher = Callable[[Any, Any], int]

_SIMPLE_KEYS = (str, int, bytes)


def default_weight(key: Any, value: Any) -> int:
    """Weight of an object-store entry: ``len()`` of bytes/str values, else ``sys.getsizeof``."""
    if isinstance(value, bytes | bytearray | str | memoryview):
        return len(value)
    return sys.getsizeof(value)


class Encoding:
    """How one cache talks to its store: what key and value the store receives."""

    __slots__ = (
        "_codec",
        "_decode",
        "_exact_types",
        "_weigher",
        "_weighs",
        "bytes_store",
        "codec",
        "max_bytes",
    )

    def __init__(
        self, store: Any, codec: Codec, weigher: Weigher | None, max_bytes: int | None
    ) -> None:
        self.bytes_store = bool(getattr(store, "wants_bytes", False))
        self.codec = codec
        self._codec = codec
        self._weigher = weigher or default_weight
        self.max_bytes = max_bytes
        self._weighs = max_bytes is not None
        self._decode = codec.decode if self.bytes_store else None
        # immutable types the codec gives back exactly: held as given, no decode on put
        self._exact_types: frozenset[type] = frozenset(getattr(codec, "exact_types", ()))

    def store_key(self, key: Hashable) -> Any:
        """The key as the store sees it; raises ``CodecError`` for unsupported keys."""
        if self.bytes_store:
            if type(key) is str:  # the common key, inlined (lone surrogates fall through)
                try:
                    return b"s" + key.encode()
                except UnicodeEncodeError:
                    pass
            return encode_key(key)
        if type(key) not in _SIMPLE_KEYS:
            encode_key(key)  # validates tuples and refuses floats, objects, ...
        return key

    def cache_key(self, skey: bytes) -> Hashable:
        """Invert ``store_key`` for a byte store: the cache's key for a key as the store sees it.

        The invalidation bus carries store keys; a subscriber drops the entry of
        the key this returns (``1``, ``"1"``, ``b"1"`` and ``("1",)`` stay apart).
        Raises ``CodecError`` on bytes ``store_key`` never produces.
        """
        if not self.bytes_store:
            raise CodecError("keys of a store that holds objects are not encoded")
        key: Hashable = decode_key(skey)
        return key

    def store_value(self, value: Any) -> Any:
        """The value as the store sees it; raises ``CodecError`` if the codec cannot."""
        if self.bytes_store:
            return self._codec.encode(value)
        return value

    def decode(self, stored: Any) -> Any:
        if self.bytes_store:
            return self._codec.decode(stored)
        return stored

    def prepare(self, key: Hashable, value: Any, skey: Any) -> tuple[Any, Any, int]:
        """(value to hold, value for the store, weight); refuses what cannot be stored.

        For a byte store the cache holds the *decoded* store value, not the
        caller's object: memory then holds exactly what the store holds (a tuple
        comes back as a list from memory as from the store, and mutating the
        object after ``put`` cannot make the two disagree). With the ``bytes``
        codec that is the same object, not a copy.
        """
        decode = self._decode
        if decode is None and not self._weighs:
            return value, value, 0  # an object store without a byte bound: nothing to do
        svalue = self.store_value(value)
        weight = self.weigh(key, value, skey, svalue) if self._weighs else 0
        if self.max_bytes is not None and weight > self.max_bytes:
            raise EntryTooLarge(
                f"entry for key {key!r} weighs {weight} bytes, more than max_bytes="
                f"{self.max_bytes}; raise max_bytes or store smaller values"
            )
        if decode is None or type(value) in self._exact_types:
            return value, svalue, weight  # immutable and unchanged by the round trip
        return decode(svalue), svalue, weight

    def loaded(self, key: Hashable, skey: Any, stored: Any) -> tuple[Any, int]:
        """A stored value as the cache holds it: (decoded value, weight)."""
        value = self.decode(stored)
        return value, (self.weigh(key, value, skey, stored) if self._weighs else 0)

    def weigh(self, key: Hashable, value: Any, skey: Any, svalue: Any) -> int:
        """An entry's weight for ``max_bytes`` (0 when the cache has no byte bound)."""
        if self.max_bytes is None:
            return 0
        if self.bytes_store:
            return len(skey) + len(svalue)
        weight = self._weigher(key, value)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise CodecError(f"weigher returned {weight!r} for key {key!r}; it must be an int >= 0")
        return weight


def wrap_load_error(exc: BaseException, key: Hashable, store: Any) -> WriteThroughError:
    """A load failure as a ``StoreError``; our own errors (store, codec) pass through unchanged."""
    if isinstance(exc, WriteThroughError):
        return exc
    err = StoreError(f"loading key {key!r} from {_name(store)} failed: {exc!r}")
    err.__cause__ = exc
    return err


def wrap_write_error(
    exc: BaseException, key: Hashable, store: Any, op: str = "writing"
) -> StoreError | CacheClosed:
    """A write failure as a ``StoreError`` subclass (``StoreWriteError`` unless already typed).

    ``CacheClosed`` passes as it is: the write was refused because the cache or
    its store was closed, which is what the caller needs to know.
    """
    if isinstance(exc, StoreError | CacheClosed):
        return exc
    err = StoreWriteError(f"{op} key {key!r} to {_name(store)} failed: {exc!r}")
    err.__cause__ = exc
    return err


def _name(store: Any) -> str:
    identity = getattr(store, "identity", None)
    return identity if isinstance(identity, str) else type(store).__name__

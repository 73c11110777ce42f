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
from .errors import CacheClosed, CodecError, StoreError, StoreWriteError, WriteThroughError

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

    __slots__ = ("_codec", "_weigher", "bytes_store", "codec", "max_bytes")

    def __init__(
        self, store: Any, codec: Codec, weigher: Weigher | None, max_bytes: int | None
    ) -> None:
        self.bytes_store = bool(getattr(store, "wants_bytes", False))
        self.codec = codec
        self._codec = codec
        self._weigher = weigher or default_weight
        self.max_bytes = max_bytes

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

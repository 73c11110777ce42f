"""The exception tree: every error the library raises is a ``WriteThroughError``.

Stores map their driver's exceptions into this tree at the boundary and chain
the original as ``__cause__`` (``raise StoreWriteError(...) from exc``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

__all__ = [
    "BatchError",
    "CacheClosed",
    "CodecError",
    "ConfigError",
    "EntryTooLarge",
    "KeyNotFound",
    "ReentrantCompute",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "StoreWriteError",
    "WriteThroughError",
]


class WriteThroughError(Exception):
    """Base class of every error raised by writethrough."""


class StoreError(WriteThroughError):
    """The backing store failed or refused an operation."""


class StoreFull(StoreError):
    """The store has no room for a new key (the seed's ``StoreError::StoreFull``)."""


class KeyNotFound(StoreError, KeyError):
    """The store does not hold the key (the seed's ``StoreError::KeyNotFound``)."""

    def __str__(self) -> str:  # KeyError's str() adds quotes; keep the message readable
        return Exception.__str__(self)


class StoreWriteError(StoreError):
    """The store refused or failed a write (the seed's ``WriteFailure``)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached: cannot connect, or the connection was lost."""


class BatchError(StoreError):
    """Part of a batch failed; the rest was applied.

    ``failed`` maps each failed key to its exception; ``succeeded`` lists the keys
    the store accepted (and that the cache therefore applied), in input order.
    """

    def __init__(
        self,
        message: str,
        failed: Mapping[Hashable, BaseException],
        succeeded: Sequence[Hashable],
    ) -> None:
        super().__init__(message)
        self.failed: dict[Hashable, BaseException] = dict(failed)
        self.succeeded: list[Hashable] = list(succeeded)


class CodecError(WriteThroughError, ValueError):
    """A key or value cannot be encoded, or stored bytes cannot be decoded."""


class ConfigError(WriteThroughError, ValueError):
    """A setting, option or URL is invalid."""


class EntryTooLarge(ConfigError):
    """A value weighs more than the cache's ``max_bytes``; it is refused before any write."""


class CacheClosed(WriteThroughError):
    """The cache (or store) was closed; open a new one."""


class ReentrantCompute(WriteThroughError, RuntimeError):
    """``get_or_compute``'s function asked the cache for the key it is computing."""

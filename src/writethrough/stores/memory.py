"""``MemoryStore``: the seed's ``InMemoryStore``, a dict that holds keys and values as they are."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from ..errors import CacheClosed, ConfigError, StoreFull
from .base import run_batch_remove, run_batch_store

__all__ = ["MemoryStore"]

_ABSENT: Any = object()


class MemoryStore:
    """A thread-safe in-memory store for tests and for caches of computed data.

    ``max_entries`` (0 = unlimited) is a hard limit: storing a new key when the
    store is full raises ``StoreFull`` (overwriting an existing key is allowed).
    ``write_count`` counts ``store`` calls (failed ones too, as in the seed);
    ``read_count`` counts loads. Values are held as given, never encoded, so
    ``None`` is a value like any other (see ``lookup``).
    """

    wants_bytes: ClassVar[bool] = False

    def __init__(self, max_entries: int = 0) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ConfigError(
                f"max_entries must be an int >= 0 (0 = unlimited), got {max_entries!r}"
            )
        self._data: dict[Any, Any] = {}
        self._max_entries = max_entries
        self._write_count = 0
        self._read_count = 0
        self._lock = threading.Lock()
        self._closed = False

    # -- the seed's accessors
    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def write_count(self) -> int:
        """Number of ``store`` calls, failed ones included."""
        return self._write_count

    @property
    def read_count(self) -> int:
        """Number of keys loaded (``load``, ``lookup`` and each key of ``load_many``)."""
        return self._read_count

    def __len__(self) -> int:
        return len(self._data)

    def is_empty(self) -> bool:
        return not self._data

    @property
    def identity(self) -> str:
        return f"memory@{id(self):x}"

    # -- the store protocol
    def lookup(self, key: Any, missing: Any) -> Any:
        """The value for ``key``, or ``missing`` when absent (so ``None`` can be a value)."""
        with self._lock:
            self._check_open()
            self._read_count += 1
            return self._data.get(key, missing)

    def load(self, key: Any) -> Any:
        value = self.lookup(key, None)
        return value

    def load_many(self, keys: Iterable[Any]) -> dict[Any, Any]:
        with self._lock:
            self._check_open()
            found: dict[Any, Any] = {}
            for key in keys:
                self._read_count += 1
                value = self._data.get(key, _ABSENT)
                if value is not _ABSENT:
                    found[key] = value
            return found

    def store(self, key: Any, value: Any) -> None:
        with self._lock:
            self._check_open()
            self._write_count += 1
            if self._max_entries and len(self._data) >= self._max_entries and key not in self._data:
                raise StoreFull(f"memory store is full ({self._max_entries} entries)")
            self._data[key] = value

    def remove(self, key: Any) -> bool:
        with self._lock:
            self._check_open()
            return self._data.pop(key, _ABSENT) is not _ABSENT

    def store_many(self, items: Sequence[tuple[Any, Any]]) -> None:
        """Store each pair in turn (no transactions): ``BatchError`` names the keys refused."""
        self._check_open()
        run_batch_store(self, items)

    def remove_many(self, keys: Sequence[Any]) -> list[bool]:
        """Remove each key in turn; per key, whether it existed."""
        self._check_open()
        return run_batch_remove(self, keys)

    def close(self) -> None:
        """Refuse later calls; the data is kept so a test can still inspect it."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise CacheClosed("MemoryStore is closed")

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._data)}, max_entries={self._max_entries})"


def from_url(url: Any, options: dict[str, Any]) -> MemoryStore:
    """``memory://`` (``?max_entries=N``): a fresh, process-local ``MemoryStore``."""
    if url.host or url.path not in ("", "/"):
        raise ConfigError(f"memory:// takes no host or path, got {url}")
    raw = options.pop("max_entries", 0)
    try:
        max_entries = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"max_entries={raw!r} is not an integer") from None
    return MemoryStore(max_entries)

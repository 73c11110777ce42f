"""Shared test stores: small, real store implementations (the cache is the thing under test).

``FlakyStore`` is an object store (like ``MemoryStore``) whose ``data`` dict is
public, that counts every call and fails on demand: a write can fail *before*
it is applied (the store is unchanged) or *after* (the store changed, then the
driver raised, like a timeout). ``DictBytesStore`` is a minimal byte store.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

import pytest

import writethrough as wt

BEFORE = "before"  # fail without applying the write
AFTER = "after"  # apply the write, then raise (a timeout after commit)
_ABSENT: Any = object()


class InjectedError(OSError):
    """The driver-level exception the test stores raise."""


class FlakyStore:
    """An object store over a plain dict that fails on demand and counts its calls.

    ``fail_keys[key] = BEFORE | AFTER`` makes the next ``store`` of ``key`` fail
    (one shot); ``fail_next_store`` does the same for the next ``store`` of any
    key; ``fail_removes`` names keys whose ``remove`` fails (one shot each);
    ``fail_loads`` is the number of following loads (``lookup``/``load``/
    ``load_many``) that raise.
    """

    wants_bytes = False

    def __init__(self, data: dict[Hashable, Any] | None = None) -> None:
        self.data: dict[Hashable, Any] = dict(data or {})
        self.calls: Counter[str] = Counter()
        self.fail_keys: dict[Hashable, str] = {}
        self.fail_next_store: str | None = None
        self.fail_removes: set[Hashable] = set()
        self.fail_loads = 0
        self.lock = threading.Lock()

    def _maybe_fail_load(self) -> None:
        if self.fail_loads > 0:
            self.fail_loads -= 1
            raise InjectedError("injected load failure")

    def lookup(self, key: Hashable, missing: Any) -> Any:
        with self.lock:
            self.calls["lookup"] += 1
            self._maybe_fail_load()
            return self.data.get(key, missing)

    def load(self, key: Hashable) -> Any:
        with self.lock:
            self.calls["load"] += 1
            self._maybe_fail_load()
            return self.data.get(key)

    def load_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        with self.lock:
            self.calls["load_many"] += 1
            self._maybe_fail_load()
            return {k: self.data[k] for k in keys if k in self.data}

    def store(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self.calls["store"] += 1
            mode = self.fail_keys.pop(key, None)
            if mode is None and self.fail_next_store is not None:
                mode, self.fail_next_store = self.fail_next_store, None
            if mode == BEFORE:
                raise InjectedError(f"injected write failure for {key!r} (not applied)")
            self.data[key] = value
            if mode == AFTER:
                raise TimeoutError(f"injected timeout for {key!r} (applied)")

    def remove(self, key: Hashable) -> bool:
        with self.lock:
            self.calls["remove"] += 1
            if key in self.fail_removes:
                self.fail_removes.discard(key)
                raise InjectedError(f"injected remove failure for {key!r}")
            return self.data.pop(key, _ABSENT) is not _ABSENT

    @property
    def mutations(self) -> int:
        """How many times the cache asked this store to change anything."""
        return self.calls["store"] + self.calls["remove"]


class LoadOnlyStore:
    """The bare seed protocol: ``load`` (None = absent), ``store``, ``remove``; nothing else."""

    def __init__(self) -> None:
        self.data: dict[Hashable, Any] = {}
        self.loads = 0

    def load(self, key: Hashable) -> Any:
        self.loads += 1
        return self.data.get(key)

    def store(self, key: Hashable, value: Any) -> None:
        self.data[key] = value

    def remove(self, key: Hashable) -> bool:
        return self.data.pop(key, None) is not None


class DictBytesStore(wt.BytesStore):
    """A byte store backed by a dict: it receives encoded keys and values."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = data if data is not None else {}
        self.writes = 0

    def load(self, key: bytes) -> bytes | None:
        assert isinstance(key, bytes), f"a byte store got key {key!r}"
        return self.data.get(key)

    def store(self, key: bytes, value: bytes) -> None:
        assert isinstance(key, bytes), f"a byte store got key {key!r}"
        assert isinstance(value, bytes), f"a byte store got value {value!r}"
        self.writes += 1
        self.data[key] = value

    def remove(self, key: bytes) -> bool:
        return self.data.pop(key, None) is not None


@pytest.fixture
def flaky() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def bytes_store() -> DictBytesStore:
    return DictBytesStore()

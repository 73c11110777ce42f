"""Shared test stores: small, real store implementations (the cache is the thing under test).

``FlakyStore`` is an object store (like ``MemoryStore``) whose ``data`` dict is
public, that counts every call and fails on demand: a write can fail *before*
it is applied (the store is unchanged) or *after* (the store changed, then the
driver raised, like a timeout). ``DictBytesStore`` is a minimal byte store.
"""

from __future__ import annotations

import asyncio
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


# ---------------------------------------------------------------- the asyncio driver


class _LoopThread:
    """One event loop, running in a daemon thread, shared by every ``AsyncFacade``."""

    loop: asyncio.AbstractEventLoop | None = None
    lock = threading.Lock()

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls.lock:
            if cls.loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="test-loop", daemon=True).start()
                cls.loop = loop
            return cls.loop


class AsyncFacade:
    """``AsyncWriteThroughCache`` behind the sync API, so the contract tests run on it too.

    Every call runs as a task on one event loop in its own thread (the calling
    thread blocks on the result). A sync ``fn`` of ``get_or_compute`` runs in a
    worker thread (``asyncio.to_thread``), as it would run in the caller's
    thread with the sync cache; re-entering the cache from it is still caught.
    """

    def __init__(self, store: Any, **options: Any) -> None:
        from writethrough.aio import AsyncWriteThroughCache

        options.setdefault("threads", 32)  # tests block stores from many threads at once
        self._cache = AsyncWriteThroughCache(store, **options)
        self._loop = _LoopThread.get()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self._run(self._cache.get(key, default))

    def get_or_compute(self, key: Hashable, fn: Any) -> Any:
        if callable(fn) and not asyncio.iscoroutinefunction(fn):
            sync_fn = fn

            def fn(k: Hashable) -> Any:
                return asyncio.to_thread(sync_fn, k)

        return self._run(self._cache.get_or_compute(key, fn))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._cache, name)
        if asyncio.iscoroutinefunction(attr):
            return lambda *args: self._run(attr(*args))
        return attr

    def close(self) -> None:
        self._run(self._cache.aclose())

    def __enter__(self) -> AsyncFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, key: Hashable) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise wt.KeyNotFound(f"key {key!r} is neither cached nor stored")
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Hashable) -> None:
        if not self.invalidate(key):
            raise wt.KeyNotFound(f"key {key!r} is neither cached nor stored")

    def __contains__(self, key: Hashable) -> bool:
        return bool(self._run(self._cache.contains(key)))

    def __len__(self) -> int:
        return len(self._cache)

    def __bool__(self) -> bool:
        return True

    __iter__ = None

    def __repr__(self) -> str:
        return repr(self._cache)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sync_only(reason): a driver-parametrized test that only the threaded cache runs"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Leave out the async run of tests marked ``sync_only`` (not a skip: never applicable)."""
    items[:] = [
        item
        for item in items
        if not (
            item.get_closest_marker("sync_only")
            and getattr(item, "callspec", None) is not None
            and item.callspec.params.get("driver") == "async"
        )
    ]


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a contract test against both caches: ``wt.WriteThroughCache`` is the async
    cache behind ``AsyncFacade`` in the ``async`` run."""
    if request.param == "async":
        monkeypatch.setattr(wt, "WriteThroughCache", AsyncFacade)
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests, each in a fresh event loop (``asyncio.run``)."""
    if not asyncio.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True

"""Batches (``get_many``, ``put_many``, ``invalidate_many``) and the per-key write gates.

A mixin of ``WriteThroughCache``: the same rules as the single-key paths, one
store round trip (or transaction) where the store can, and per-key outcomes
when it fails part-way (DESIGN rule 9). What each outcome does to the cache is
in ``_outcomes`` (shared with the asyncio cache); this module does the store
calls and the waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from ._backend import Encoding
from ._core import MISSING, Core, Flight
from ._outcomes import (
    Lead,
    Prepared,
    check_keys,
    collect_waits,
    plan_many,
    prepare_many,
    put_many_done,
    put_many_failed,
    removed_many,
    settle_loaded,
    wake,
)
from .codecs import encode_key
from .stores.base import run_batch_remove, run_batch_store

__all__ = ["BatchOps", "KeyGates", "gate_order", "wake"]

_perf = time.perf_counter


class BatchOps:
    """The batch half of ``WriteThroughCache`` (which provides these attributes)."""

    _core: Core[threading.Lock]
    _enc: Encoding
    _store: Any
    _closed: bool
    _load_many: Any
    _store_many: Any
    _remove_many: Any
    _prepare_value: Callable[[Hashable, Any, Any], tuple[Any, Any, int]]

    def _prepare_key(self, key: Hashable) -> Any:
        raise NotImplementedError

    def _load_raw(self, skey: Any) -> Any:
        raise NotImplementedError

    def _settled(self, flight: Flight) -> None:
        raise NotImplementedError

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The values of the keys found (in memory or the store); absent keys are left out.

        Missing keys are loaded in one store round trip where the store can.
        """
        checked = check_keys(keys, self._closed, self._prepare_key)
        result, leads, waits = plan_many(self._core, checked)
        first_error: BaseException | None = None
        if leads:
            first_error = self._lead_many(leads, result)
        for _, flight in waits:
            self._settled(flight)
        return collect_waits(self._core, waits, result, first_error)

    def _lead_many(self, leads: list[Lead], result: dict[Hashable, Any]) -> BaseException | None:
        start = _perf()
        found: dict[Any, Any] | BaseException
        try:
            if self._load_many is not None:
                found = self._load_many([skey for _, skey, _ in leads])
            else:
                found = {}
                for _, skey, _ in leads:
                    stored = self._load_raw(skey)
                    if stored is not MISSING:
                        found[skey] = stored
        except BaseException as exc:
            found = exc
        return settle_loaded(
            self._core, self._enc, self._store, leads, found, _perf() - start, result
        )

    def put_many(self, mapping: Mapping[Hashable, Any]) -> None:
        """Write every pair through, in one store round trip / transaction where possible.

        If the store fails part-way, exactly the keys it accepted are applied and
        ``BatchError`` names each failed key (``.failed``) and the rest (``.succeeded``).
        """
        prepared = prepare_many(mapping, self._closed, self._prepare_key, self._prepare_value)
        if not prepared:
            return
        with self._gates([p[0] for p in prepared], [p[1] for p in prepared]):
            self._put_many_locked(prepared)

    def _put_many_locked(self, prepared: list[Prepared]) -> None:
        pairs = [(p[1], p[3]) for p in prepared]
        start = _perf()
        try:
            if self._store_many is not None:
                self._store_many(pairs)
            else:
                run_batch_store(self._store, pairs)
        except BaseException as exc:
            put_many_failed(self._core, prepared, exc, _perf() - start)
        put_many_done(self._core, prepared, _perf() - start)

    def invalidate_many(self, keys: Iterable[Hashable]) -> int:
        """Invalidate every key; the number that were in memory or in the store.

        Every key is dropped from memory even when its store removal failed
        (then ``BatchError`` names the failed keys).
        """
        checked = check_keys(keys, self._closed, self._prepare_key)
        if not checked:
            return 0
        skeys = [s for _, s in checked]
        with self._gates([k for k, _ in checked], skeys):
            start = _perf()
            existed: list[bool] | BaseException
            try:
                if self._remove_many is not None:
                    existed = list(self._remove_many(skeys))
                else:
                    existed = run_batch_remove(self._store, skeys)
            except BaseException as exc:
                existed = exc
            return removed_many(self._core, checked, existed, _perf() - start)

    def _gates(self, keys: list[Hashable], skeys: list[Any]) -> KeyGates:
        return KeyGates(self._core, keys, skeys, self._enc.bytes_store)


def gate_order(keys: list[Hashable], skeys: list[Any], by_skey: bool) -> list[Hashable]:
    """The keys in the one global order every caller takes gates in (so none deadlock)."""
    if len(keys) <= 1:
        return keys
    pairs = list(zip(keys, skeys, strict=True))
    if by_skey:
        pairs.sort(key=lambda p: p[1])
    else:
        pairs.sort(key=lambda p: encode_key(p[0]))
    return [k for k, _ in pairs]


class KeyGates:
    """Hold the write gates of several keys, taken in one global order (no deadlock)."""

    def __init__(
        self, core: Core[threading.Lock], keys: list[Hashable], skeys: list[Any], by_skey: bool
    ) -> None:
        self._core = core
        self._keys = gate_order(keys, skeys, by_skey)
        self._held: list[tuple[Hashable, threading.Lock]] = []
        self._locked = 0

    def __enter__(self) -> None:
        core = self._core
        try:
            for key in self._keys:
                gate = core.acquire_gate(key)
                self._held.append((key, gate))
                gate.acquire()
                self._locked += 1
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        core = self._core
        for i, (key, gate) in enumerate(self._held):
            if i < self._locked:
                gate.release()
            core.release_gate(key)
        self._held.clear()
        self._locked = 0

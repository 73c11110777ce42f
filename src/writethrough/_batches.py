"""Batches (``get_many``, ``put_many``, ``invalidate_many``) and the per-key write gates.

A mixin of ``WriteThroughCache``: the same rules as the single-key paths, one
store round trip (or transaction) where the store can, and per-key outcomes
when it fails part-way (DESIGN rule 9).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from ._backend import Encoding, wrap_load_error
from ._core import MISSING, Core, Flight
from .codecs import encode_key
from .errors import BatchError, CacheClosed, ConfigError
from .stores.base import run_batch_remove, run_batch_store

__all__ = ["BatchOps", "KeyGates", "split_batch", "wake"]

_perf = time.perf_counter


def wake(signal: Any) -> None:
    """Wake the waiters of a settled flight (a no-op when there were none)."""
    if signal is not None:
        signal.set()


class BatchOps:
    """The batch half of ``WriteThroughCache`` (which provides these attributes)."""

    _core: Core[threading.Lock]
    _enc: Encoding
    _store: Any
    _closed: bool
    _load_many: Any
    _store_many: Any
    _remove_many: Any
    _publish: Any  # publishes one acknowledged write's store keys (None without a bus)

    def _prepare_key(self, key: Hashable) -> Any:
        raise NotImplementedError

    def _prepare_value(self, key: Hashable, value: Any, skey: Any) -> tuple[Any, Any, int]:
        raise NotImplementedError

    def _load_raw(self, skey: Any) -> Any:
        raise NotImplementedError

    def _wait(self, flight: Flight, count: bool = True) -> tuple[bool, Any]:
        raise NotImplementedError

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The values of the keys found (in memory or the store); absent keys are left out.

        Missing keys are loaded in one store round trip where the store can.
        """
        result: dict[Hashable, Any] = {}
        leads: list[tuple[Hashable, Any, Flight]] = []
        waits: list[tuple[Hashable, Flight]] = []
        core = self._core
        data_get = core.data.get
        record = core.hit_log.append
        ttl = core.ttl
        checked = self._check_keys(keys)
        try:
            for key, skey in checked:
                value = data_get(key, MISSING)
                if value is not MISSING and (
                    ttl is None or core.expires.get(key, 0.0) > time.monotonic()
                ):
                    record(key)
                    result[key] = value
                    continue
                if ttl is not None:
                    core.expire(key)
                flight, leader, value = core.start_load(key)
                if flight is None:
                    result[key] = value
                elif leader:
                    leads.append((key, skey, flight))
                else:
                    waits.append((key, flight))
        except BaseException as exc:
            # e.g. ReentrantCompute for one key: the loads this call already leads
            # must still settle, or their waiters in other threads would hang
            for _, _, flight in leads:
                wake(core.fail_load(flight, exc, 0.0))
            raise
        first_error: BaseException | None = None
        if leads:
            first_error = self._lead_many(leads, result)
        for key, flight in waits:
            try:
                found, value = self._wait(flight)
            except BaseException as exc:
                first_error = first_error or exc
                continue
            if found:
                result[key] = value
        if first_error is not None:
            raise first_error
        return result

    def _check_keys(self, keys: Iterable[Hashable]) -> list[tuple[Hashable, Any]]:
        """Distinct keys in order, each with its store key; refuses bad keys before any I/O."""
        if self._closed:
            raise CacheClosed("the cache is closed")
        if isinstance(keys, str | bytes):
            raise ConfigError("pass an iterable of keys, not a single str or bytes key")
        checked = [(key, self._prepare_key(key)) for key in keys]
        return list(dict(checked).items())  # distinct, first-seen order

    def _lead_many(
        self, leads: list[tuple[Hashable, Any, Flight]], result: dict[Hashable, Any]
    ) -> BaseException | None:
        core = self._core
        enc = self._enc
        start = _perf()
        try:
            if self._load_many is not None:
                found_map = self._load_many([skey for _, skey, _ in leads])
            else:
                found_map = {}
                for _, skey, _ in leads:
                    stored = self._load_raw(skey)
                    if stored is not MISSING:
                        found_map[skey] = stored
        except BaseException as exc:
            seconds = (_perf() - start) / len(leads)
            err: BaseException = (
                wrap_load_error(exc, leads[0][0], self._store)
                if isinstance(exc, Exception)
                else exc
            )
            for _, _, flight in leads:
                wake(core.fail_load(flight, err, seconds))
            return err
        seconds = (_perf() - start) / len(leads)
        first_error: BaseException | None = None
        try:
            for i, (key, skey, flight) in enumerate(leads):
                stored = found_map.get(skey, MISSING)
                if stored is MISSING:
                    wake(core.finish_load(flight, False, None, 0, seconds))
                    continue
                try:
                    value = enc.decode(stored)
                    weight = enc.weigh(key, value, skey, stored) if enc.max_bytes else 0
                except BaseException as exc:  # corrupt bytes, a failing weigher, an interrupt
                    failure: BaseException = (
                        wrap_load_error(exc, key, self._store)
                        if isinstance(exc, Exception)
                        else exc
                    )
                    wake(core.fail_load(flight, failure, seconds))
                    if not isinstance(exc, Exception):
                        for _, _, rest in leads[i + 1 :]:
                            wake(core.fail_load(rest, failure, seconds))
                        raise
                    first_error = first_error or failure
                    continue
                wake(core.finish_load(flight, True, value, weight, seconds))
                result[key] = value
        except BaseException as exc:  # e.g. a failing policy: strand no waiter
            for _, _, flight in leads:
                if not flight.done:
                    wake(core.fail_load(flight, exc, 0.0))
                else:
                    wake(flight.signal)
            raise
        return first_error

    def put_many(self, mapping: Mapping[Hashable, Any]) -> None:
        """Write every pair through, in one store round trip / transaction where possible.

        If the store fails part-way, exactly the keys it accepted are applied and
        ``BatchError`` names each failed key (``.failed``) and the rest (``.succeeded``).
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                f"put_many takes a mapping of key -> value, got {type(mapping).__name__}"
            )
        if self._closed:
            raise CacheClosed("the cache is closed")
        prepared: list[tuple[Hashable, Any, Any, Any, int]] = []
        for key, value in mapping.items():
            skey = self._prepare_key(key)
            held, svalue, weight = self._prepare_value(key, value, skey)
            prepared.append((key, skey, held, svalue, weight))
        if not prepared:
            return
        with self._gates([p[0] for p in prepared], [p[1] for p in prepared]):
            self._put_many_locked(prepared)

    def _put_many_locked(self, prepared: list[tuple[Hashable, Any, Any, Any, int]]) -> None:
        core = self._core
        by_skey = {p[1]: p for p in prepared}
        pairs = [(p[1], p[3]) for p in prepared]
        start = _perf()
        try:
            if self._store_many is not None:
                self._store_many(pairs)
            else:
                run_batch_store(self._store, pairs)
        except BaseException as exc:
            core.add_write_time(_perf() - start)
            failed, succeeded = split_batch(exc, list(by_skey))
            for skey in succeeded:
                key, _, value, _, weight = by_skey[skey]
                core.finish_write(key, value, weight, 0.0)
            for skey in failed:
                core.fail_write(by_skey[skey][0], 0.0)
            if succeeded and self._publish is not None:
                self._publish(tuple(succeeded))
            if not isinstance(exc, Exception):
                raise
            raise BatchError(
                f"{len(failed)} of {len(prepared)} writes failed: {exc}",
                {by_skey[s][0]: e for s, e in failed.items()},
                [by_skey[s][0] for s in succeeded],
            ) from exc
        core.add_write_time(_perf() - start)
        for key, _, value, _, weight in prepared:
            core.finish_write(key, value, weight, 0.0)
        if self._publish is not None:
            self._publish(tuple(by_skey))

    def invalidate_many(self, keys: Iterable[Hashable]) -> int:
        """Invalidate every key; the number that were in memory or in the store.

        Every key is dropped from memory even when its store removal failed
        (then ``BatchError`` names the failed keys).
        """
        checked = self._check_keys(keys)
        if not checked:
            return 0
        listed = [k for k, _ in checked]
        skeys = [s for _, s in checked]
        core = self._core
        with self._gates(listed, skeys):
            start = _perf()
            try:
                if self._remove_many is not None:
                    existed = list(self._remove_many(skeys))
                else:
                    existed = run_batch_remove(self._store, skeys)
            except BaseException as exc:
                core.add_write_time(_perf() - start)
                failed, succeeded = split_batch(exc, skeys)
                key_of = dict(zip(skeys, listed, strict=True))
                for skey in skeys:
                    core.finish_remove(key_of[skey], 0.0, ok=skey not in failed)
                if succeeded and self._publish is not None:
                    self._publish(tuple(succeeded))
                if not isinstance(exc, Exception):
                    raise
                raise BatchError(
                    f"{len(failed)} of {len(listed)} removals failed: {exc}",
                    {key_of[s]: e for s, e in failed.items()},
                    [key_of[s] for s in succeeded],
                ) from exc
            core.add_write_time(_perf() - start)
            count = 0
            for key, was_stored in zip(listed, existed, strict=True):
                held = core.finish_remove(key, 0.0)
                count += bool(was_stored) or held
            if self._publish is not None:
                self._publish(tuple(skeys))
        return count

    def _gates(self, keys: list[Hashable], skeys: list[Any]) -> KeyGates:
        return KeyGates(self._core, keys, skeys, self._enc.bytes_store)


def split_batch(exc: BaseException, skeys: list[Any]) -> tuple[dict[Any, BaseException], list[Any]]:
    """Which store keys failed and which succeeded, from a batch's exception.

    A ``BatchError`` says per key; keys it does not mention are treated as
    failed (the store may or may not hold them). Any other exception failed all.
    """
    if isinstance(exc, BatchError):
        succeeded_set = set(exc.succeeded)
        failed = {k: exc.failed.get(k, exc) for k in skeys if k not in succeeded_set}
        return failed, [k for k in skeys if k in succeeded_set and k not in exc.failed]
    return {k: exc for k in skeys}, []


class KeyGates:
    """Hold the write gates of several keys, taken in one global order (no deadlock)."""

    def __init__(
        self, core: Core[threading.Lock], keys: list[Hashable], skeys: list[Any], by_skey: bool
    ) -> None:
        if len(keys) > 1:
            pairs = list(zip(keys, skeys, strict=True))
            if by_skey:
                pairs.sort(key=lambda p: p[1])
            else:
                pairs.sort(key=lambda p: encode_key(p[0]))
            keys = [k for k, _ in pairs]
        self._core = core
        self._keys = keys
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

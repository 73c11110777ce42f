"""``WriteThroughCache``: the threaded driver around the sans-I/O core.

Every ``put`` reaches the store before it returns; a ``get`` is a dictionary
lookup on a hit (no lock), else one store load shared by every concurrent
caller of the key. The decisions live in ``_core.Core``; this module does the
store calls and the waiting. The guarantees are DESIGN section 3, rule by rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NoReturn

from ._backend import Encoding, Weigher, wrap_load_error, wrap_write_error
from ._core import MISSING, Core, Flight
from .codecs import Codec, encode_key, get_codec
from .errors import (
    BatchError,
    CacheClosed,
    CodecError,
    ConfigError,
    EntryTooLarge,
    KeyNotFound,
    WriteThroughError,
)
from .policies import Policy, make_policy
from .stats import CacheStats
from .stores.base import run_batch_remove, run_batch_store

__all__ = ["WriteThroughCache"]

_perf = time.perf_counter


def _check_int(name: str, value: object, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


class WriteThroughCache:
    """A bounded, thread-safe write-through cache in front of ``store``.

    ``capacity`` bounds the entries held in memory and ``max_bytes`` (optional)
    their weight; ``policy`` picks what to evict (a name or a ``Policy``);
    ``codec`` encodes values for byte stores (default msgpack); ``ttl``
    (seconds) bounds how long an entry is served from memory; ``weigher``
    weighs ``MemoryStore`` entries for ``max_bytes``. ``close_store`` says
    whether ``close()`` also closes the store.
    """

    def __init__(
        self,
        store: Any,
        *,
        capacity: int = 10_000,
        max_bytes: int | None = None,
        policy: str | Policy | None = None,
        codec: str | Codec | None = None,
        ttl: float | None = None,
        weigher: Weigher | None = None,
        secret: bytes | str | None = None,
        trusted_pickle: bool = False,
        close_store: bool = True,
    ) -> None:
        cap = _check_int("capacity", capacity, allow_none=False)
        assert cap is not None
        max_b = _check_int("max_bytes", max_bytes, allow_none=True)
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0
        ):
            raise ConfigError(f"ttl must be a number of seconds > 0 (or None), got {ttl!r}")
        for method in ("load", "store", "remove"):
            if not callable(getattr(store, method, None)):
                raise ConfigError(
                    f"{type(store).__name__} is not a store: it has no {method}() method"
                )
        wants_bytes = bool(getattr(store, "wants_bytes", False))
        if not wants_bytes and (codec is not None or secret is not None):
            raise ConfigError(
                f"{type(store).__name__} holds objects as they are; codec= applies to byte stores"
            )
        if weigher is not None and not callable(weigher):
            raise ConfigError(f"weigher must be callable(key, value) -> int, got {weigher!r}")
        value_codec = get_codec(codec, secret=secret, trusted=trusted_pickle)
        self._store = store
        self._close_store = close_store
        self._enc = Encoding(store, value_codec, weigher, max_b)
        self._core: Core[threading.Lock] = Core(
            capacity=cap,
            max_bytes=max_b,
            policy=make_policy(policy),
            ttl=float(ttl) if ttl is not None else None,
            new_gate=threading.Lock,
            new_signal=threading.Event,
            owner_id=threading.get_ident,
        )
        self._closed = False
        self._lookup = getattr(store, "lookup", None)
        self._load_many = getattr(store, "load_many", None)
        self._store_many = getattr(store, "store_many", None)
        self._remove_many = getattr(store, "remove_many", None)
        self._store_key = self._enc.store_key
        self._decode = value_codec.decode if wants_bytes else None
        self._weighs = max_b is not None
        self.__dict__["get"] = self._make_get()

    # ------------------------------------------------------------ the hit path

    def _make_get(self) -> Callable[[Hashable, Any], Any]:
        """Build ``get`` as a closure over local names: a dict lookup, a count, a hit record.

        ``data[key]`` under ``try`` rather than ``data.get``: a subscript is a
        specialised opcode, a ``.get`` is a call (about 25 ns a hit here); the
        exception on a miss costs less than the store read that follows.
        Unhashable keys (TypeError) go to the slow path, which refuses them.
        """
        core = self._core
        data = core.data
        hit = core.hits.incr
        touch = core.policy.hit_recorder()
        slow = self._get_slow

        if core.ttl is not None:
            expires_get = core.expires.get
            monotonic = time.monotonic

            def get_ttl(key: Hashable, default: Any = None) -> Any:
                try:
                    value = data[key]
                except (KeyError, TypeError):
                    return slow(key, default)
                if expires_get(key, 0.0) > monotonic():
                    hit()
                    if touch is not None:
                        touch(key)
                    return value
                return slow(key, default)

            return get_ttl

        if touch is None:

            def get_plain(key: Hashable, default: Any = None) -> Any:
                try:
                    value = data[key]
                except (KeyError, TypeError):
                    return slow(key, default)
                hit()
                return value

            return get_plain

        def get(key: Hashable, default: Any = None) -> Any:
            try:
                value = data[key]
            except (KeyError, TypeError):
                return slow(key, default)
            hit()
            touch(key)
            return value

        return get

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``: from memory on a hit, else from the store (and kept).

        Returns ``default`` when neither holds the key. Concurrent misses of one
        key share a single store load. Raises ``StoreError`` if the load fails.
        """
        # Each instance replaces this method with the closure from _make_get().
        return self.__dict__["get"](key, default)

    def _get_slow(self, key: Hashable, default: Any) -> Any:
        if self._closed:
            raise CacheClosed("the cache is closed")
        skey = self._store_key(key)
        core = self._core
        if core.ttl is not None:
            core.expire(key)
        flight, leader, value = core.start_load(key)
        if flight is None:
            return value
        if not leader:
            found, value = self._wait(flight)
            return value if found else default
        # the leader's load, inlined: this is the miss path of every get
        start = _perf()
        try:
            found, value, weight = self._load(key, skey)
        except BaseException as exc:
            self._fail_flight(flight, exc, start)
        signal = core.finish_load(flight, found, value, weight, _perf() - start)
        if signal is not None:
            signal.set()
        return value if found else default

    def _prepare_key(self, key: Hashable) -> Any:
        """The store's key for ``key``; refuses a closed cache and unsupported keys."""
        if self._closed:
            raise CacheClosed("the cache is closed")
        return self._store_key(key)

    def _load_raw(self, skey: Any) -> Any:
        """One store read, undecoded; ``MISSING`` when absent."""
        lookup = self._lookup
        if lookup is not None:
            return lookup(skey, MISSING)
        stored = self._store.load(skey)
        return MISSING if stored is None else stored

    def _load(self, key: Hashable, skey: Any) -> tuple[bool, Any, int]:
        """One store read: (found, decoded value, weight)."""
        lookup = self._lookup
        if lookup is not None:
            stored = lookup(skey, MISSING)
            if stored is MISSING:
                return False, None, 0
        else:
            stored = self._store.load(skey)
            if stored is None:
                return False, None, 0
        decode = self._decode
        value = stored if decode is None else decode(stored)
        return True, value, (self._enc.weigh(key, value, skey, stored) if self._weighs else 0)

    def _load_for(self, flight: Flight, skey: Any) -> tuple[bool, Any, int, float]:
        """The leader's store read: (found, value, weight, seconds)."""
        start = _perf()
        try:
            found, value, weight = self._load(flight.key, skey)
        except BaseException as exc:
            self._fail_flight(flight, exc, start)
        return found, value, weight, _perf() - start

    def _fail_flight(self, flight: Flight, exc: BaseException, start: float) -> NoReturn:
        """A leader's load failed: every waiter gets the error (wrapped in ``StoreError``
        unless already ours), nothing is cached, and the leader raises it too."""
        err: BaseException = (
            wrap_load_error(exc, flight.key, self._store) if isinstance(exc, Exception) else exc
        )
        _wake(self._core.fail_load(flight, err, _perf() - start))
        if err is exc:
            raise exc
        raise err from exc

    def _wait(self, flight: Flight, count: bool = True) -> tuple[bool, Any]:
        core = self._core
        if core.begin_wait(flight):
            try:
                flight.signal.wait()
            finally:
                core.stop_waiting()
        if count:
            core.count_waiter(flight)
        if flight.error is not None:
            raise flight.error
        return flight.found, flight.value

    # ------------------------------------------------------------ writes

    def put(self, key: Hashable, value: Any) -> None:
        """Write ``value`` to the store, then hold it; durable before this returns.

        On a store failure raises a ``StoreError`` subclass (driver error as
        ``__cause__``) and drops ``key`` from memory, since the store may or may
        not hold the new value.
        """
        skey = self._prepare_key(key)
        svalue, weight = self._prepare_value(key, value, skey)
        with self._gates([key], [skey]):
            self._write_locked(key, skey, value, svalue, weight)

    def _prepare_value(self, key: Hashable, value: Any, skey: Any) -> tuple[Any, int]:
        enc = self._enc
        svalue = enc.store_value(value)
        weight = enc.weigh(key, value, skey, svalue)
        if enc.max_bytes is not None and weight > enc.max_bytes:
            raise EntryTooLarge(
                f"entry for key {key!r} weighs {weight} bytes, more than max_bytes="
                f"{enc.max_bytes}; raise max_bytes or store smaller values"
            )
        return svalue, weight

    def _write_locked(self, key: Hashable, skey: Any, value: Any, svalue: Any, weight: int) -> None:
        """The store write and its outcome; the caller holds the key's gate."""
        core = self._core
        start = _perf()
        try:
            self._store.store(skey, svalue)
        except Exception as exc:
            core.fail_write(key, _perf() - start)
            err = wrap_write_error(exc, key, self._store)
            if err is exc:
                raise
            raise err from exc
        except BaseException:
            core.fail_write(key, _perf() - start)
            raise
        core.finish_write(key, value, weight, _perf() - start)

    def invalidate(self, key: Hashable) -> bool:
        """Remove ``key`` from the store, then from memory; True if either held it.

        A failed store removal raises and still drops the local entry.
        """
        skey = self._prepare_key(key)
        core = self._core
        with self._gates([key], [skey]):
            start = _perf()
            try:
                existed = bool(self._store.remove(skey))
            except BaseException as exc:
                core.finish_remove(key, _perf() - start, ok=False)
                if not isinstance(exc, Exception):
                    raise
                err = wrap_write_error(exc, key, self._store, "removing")
                if err is exc:
                    raise
                raise err from exc
            held = core.finish_remove(key, _perf() - start)
        return existed or held

    # ------------------------------------------------------------ batches

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The values of the keys found (in memory or the store); absent keys are left out.

        Missing keys are loaded in one store round trip where the store can.
        """
        result: dict[Hashable, Any] = {}
        leads: list[tuple[Hashable, Any, Flight]] = []
        waits: list[tuple[Hashable, Flight]] = []
        core = self._core
        data_get = core.data.get
        touch = core.policy.hit_recorder()
        ttl = core.ttl
        for key, skey in self._check_keys(keys):
            value = data_get(key, MISSING)
            if value is not MISSING and (
                ttl is None or core.expires.get(key, 0.0) > time.monotonic()
            ):
                core.hits.incr()
                if touch is not None:
                    touch(key)
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
                _wake(core.fail_load(flight, err, seconds))
            return err
        seconds = (_perf() - start) / len(leads)
        first_error: BaseException | None = None
        for key, skey, flight in leads:
            stored = found_map.get(skey, MISSING)
            if stored is MISSING:
                _wake(core.finish_load(flight, False, None, 0, seconds))
                continue
            try:
                value = enc.decode(stored)
                weight = enc.weigh(key, value, skey, stored) if enc.max_bytes else 0
            except WriteThroughError as exc:
                _wake(core.fail_load(flight, exc, seconds))
                first_error = first_error or exc
                continue
            _wake(core.finish_load(flight, True, value, weight, seconds))
            result[key] = value
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
            svalue, weight = self._prepare_value(key, value, skey)
            prepared.append((key, skey, value, svalue, weight))
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
            failed, succeeded = _split_batch(exc, list(by_skey))
            for skey in succeeded:
                key, _, value, _, weight = by_skey[skey]
                core.finish_write(key, value, weight, 0.0)
            for skey in failed:
                core.fail_write(by_skey[skey][0], 0.0)
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
                failed, succeeded = _split_batch(exc, skeys)
                key_of = dict(zip(skeys, listed, strict=True))
                for skey in skeys:
                    core.finish_remove(key_of[skey], 0.0, ok=skey not in failed)
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
        return count

    def _gates(self, keys: list[Hashable], skeys: list[Any]) -> _Gates:
        return _Gates(self._core, keys, skeys, self._enc.bytes_store)

    # ------------------------------------------------------------ compute

    def get_or_compute(self, key: Hashable, fn: Callable[[Hashable], Any]) -> Any:
        """The cached or stored value, else ``fn(key)`` written through and returned.

        One call per key runs at a time; concurrent callers wait for it and get
        its result (or its exception). If a ``put``/``invalidate`` of the key
        completes while ``fn`` runs, that newer write stands and ``fn``'s result
        is returned but not written. ``fn`` re-entering the cache on the same key
        raises ``ReentrantCompute``.
        """
        if not callable(fn):
            raise ConfigError(f"get_or_compute needs a callable, got {fn!r}")
        skey = self._prepare_key(key)
        core = self._core
        while True:
            if core.ttl is not None:
                core.expire(key)
            flight, leader, value = core.start_load(key, compute=True)
            if flight is None:
                return value
            if leader:
                return self._lead_compute(flight, skey, fn)
            try:
                found, value = self._wait(flight, count=False)
            except BaseException:
                core.count_waiter(flight)  # the shared load or compute failed
                raise
            if found:
                core.count_waiter(flight)
                return value
            # a plain get's load found nothing: this caller computes, in a new flight

    def _lead_compute(self, flight: Flight, skey: Any, fn: Callable[[Hashable], Any]) -> Any:
        core = self._core
        key = flight.key
        found, value, weight, seconds = self._load_for(flight, skey)
        if found:
            _wake(core.finish_load(flight, True, value, weight, seconds))
            return value
        core.note_absent(flight, seconds)
        try:
            value = fn(key)
            svalue, weight = self._prepare_value(key, value, skey)
            with self._gates([key], [skey]):
                if not flight.stale:
                    self._write_locked(key, skey, value, svalue, weight)
        except BaseException as exc:
            _wake(core.settle(flight, False, None, exc))
            raise
        _wake(core.settle(flight, True, value))
        return value

    # ------------------------------------------------------------ local only

    def evict(self, key: Hashable) -> bool:
        """Drop ``key`` from memory only (the store keeps it); True if it was held."""
        if self._closed:
            raise CacheClosed("the cache is closed")
        try:
            return self._core.evict(key)
        except TypeError:
            raise CodecError(f"unhashable key of type {type(key).__name__}") from None

    def evict_all(self) -> None:
        """Drop every entry from memory only."""
        if self._closed:
            raise CacheClosed("the cache is closed")
        self._core.evict_all()

    # ------------------------------------------------------------ mapping sugar

    def __getitem__(self, key: Hashable) -> Any:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyNotFound(f"key {key!r} is neither cached nor stored")
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Hashable) -> None:
        if not self.invalidate(key):
            raise KeyNotFound(f"key {key!r} is neither cached nor stored")

    def __contains__(self, key: object) -> bool:
        """Held in memory or in the store; counts nothing and installs nothing."""
        skey = self._prepare_key(key)
        core = self._core
        if key in core.data and (core.ttl is None or core.expires.get(key, 0.0) > time.monotonic()):
            return True
        try:
            found, _, _ = self._load(key, skey)
        except Exception as exc:
            err = wrap_load_error(exc, key, self._store)
            if err is exc:
                raise
            raise err from exc
        return found

    def __len__(self) -> int:
        """Entries held in memory now (the seed's ``cache_len``)."""
        return len(self._core.data)

    def __bool__(self) -> bool:
        """Always true: an empty cache is still a cache (``len()`` is what it holds)."""
        return True

    # Not iterable: with __getitem__ alone, iter() would probe cache[0], cache[1], ...
    # against the store. Use get_many() with the keys you mean.
    __iter__ = None

    # ------------------------------------------------------------ introspection

    def stats(self) -> CacheStats:
        """A frozen snapshot of the statistics."""
        return self._core.snapshot()

    @property
    def capacity(self) -> int:
        return self._core.capacity

    @property
    def max_bytes(self) -> int | None:
        return self._core.max_bytes

    @property
    def ttl(self) -> float | None:
        return self._core.ttl

    @property
    def policy(self) -> Policy:
        return self._core.policy

    @property
    def codec(self) -> Codec | None:
        """The value codec (None for stores that hold objects as they are)."""
        return self._enc.codec if self._enc.bytes_store else None

    @property
    def backing_store(self) -> Any:
        return self._store

    @property
    def bytes_held(self) -> int:
        """Total weight held (tracked when ``max_bytes`` is set, else 0)."""
        return self._core.total_weight

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Drop everything held and refuse later calls; closes the store if ``close_store``."""
        core = self._core
        with core.lock:
            if self._closed:
                return
            self._closed = True
            core.closed = True
            core.installing = False  # a put or load finishing after this installs nothing
            core.drop_all()
        if self._close_store:
            close = getattr(self._store, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> WriteThroughCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)}/{self.capacity} entries"
        return (
            f"<WriteThroughCache {state} policy={self._core.policy.name!r} "
            f"store={type(self._store).__name__}>"
        )


def _wake(signal: Any) -> None:
    if signal is not None:
        signal.set()


def _split_batch(
    exc: BaseException, skeys: list[Any]
) -> tuple[dict[Any, BaseException], list[Any]]:
    """Which store keys failed and which succeeded, from a batch's exception.

    A ``BatchError`` says per key; keys it does not mention are treated as
    failed (the store may or may not hold them). Any other exception failed all.
    """
    if isinstance(exc, BatchError):
        succeeded_set = set(exc.succeeded)
        failed = {k: exc.failed.get(k, exc) for k in skeys if k not in succeeded_set}
        return failed, [k for k in skeys if k in succeeded_set and k not in exc.failed]
    return {k: exc for k in skeys}, []


class _Gates:
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

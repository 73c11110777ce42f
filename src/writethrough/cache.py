"""``WriteThroughCache``: the threaded driver around the sans-I/O core.

Every ``put`` reaches the store before it returns; a ``get`` is a dictionary
lookup on a hit (no lock), else one store load shared by every concurrent
caller of the key. The decisions live in ``_core.Core``; this module does the
store calls and the waiting. The guarantees are DESIGN section 3, rule by rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypedDict, Unpack

from ._backend import Encoding, Weigher
from ._batches import BatchOps
from ._core import MISSING, Core, Flight
from ._group import GroupCommit
from ._hitpath import make_get
from ._outcomes import (
    compute_waited,
    fail_flight,
    raise_load_error,
    remove_failed,
    start_compute,
    start_read,
    waited,
    wake,
    write_failed,
)
from .codecs import Codec, get_codec
from .errors import CacheClosed, CodecError, ConfigError, KeyNotFound
from .policies import POLICIES, Policy, make_policy
from .stats import CacheStats

__all__ = ["CacheOptions", "CacheView", "WriteThroughCache", "check_options", "check_store"]

_perf = time.perf_counter


def _check_int(name: str, value: object, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def check_options(
    *,
    capacity: object = 10_000,
    max_bytes: object = None,
    policy: object = None,
    codec: object = None,
    ttl: object = None,
    weigher: object = None,
    secret: object = None,
    trusted_pickle: object = False,
    group_commit: object = None,
    group_commit_max_wait: object = 0.0,
    group_commit_max_size: object = 256,
    bus: object = None,
    channel: object = None,
    bus_heartbeat: object = 0.1,
) -> tuple[int, int | None]:
    """Refuse bad cache settings with ``ConfigError``; touches nothing.

    ``wt.open`` calls it before it opens the store, so a bad option never
    leaves a half-made database file behind. Returns (capacity, max_bytes).
    """
    cap = _check_int("capacity", capacity, allow_none=False)
    assert cap is not None
    max_b = _check_int("max_bytes", max_bytes, allow_none=True)
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0
    ):
        raise ConfigError(f"ttl must be a number of seconds > 0 (or None), got {ttl!r}")
    if weigher is not None and not callable(weigher):
        raise ConfigError(f"weigher must be callable(key, value) -> int, got {weigher!r}")
    if isinstance(policy, str) and policy.lower() not in POLICIES:
        make_policy(policy)  # raises, naming the known policies
    elif policy is not None and not isinstance(policy, str | Policy):
        make_policy(policy)  # type: ignore[arg-type]  # raises
    if codec is not None and not isinstance(codec, str | Codec):
        raise ConfigError(f"codec must be a name or an object with encode/decode, got {codec!r}")
    if secret is not None and not isinstance(secret, str | bytes):
        raise ConfigError("secret must be str or bytes")
    get_codec(codec, secret=secret, trusted=bool(trusted_pickle))
    if group_commit is not None and not isinstance(group_commit, bool):
        raise ConfigError(f"group_commit must be True, False or None, got {group_commit!r}")
    if (
        isinstance(group_commit_max_wait, bool)
        or not isinstance(group_commit_max_wait, int | float)
        or not 0 <= group_commit_max_wait < float("inf")
    ):
        raise ConfigError(
            f"group_commit_max_wait must be a number of seconds >= 0, got {group_commit_max_wait!r}"
        )
    _check_int("group_commit_max_size", group_commit_max_size, allow_none=False)
    if bus is not None or channel is not None:
        from .bus import check_options as check_bus_options

        check_bus_options(bus, channel, bus_heartbeat)
    return cap, max_b


def check_store(
    store: Any,
    *,
    codec: str | Codec | None,
    secret: bytes | str | None,
    trusted_pickle: bool,
    group_commit: bool | None,
) -> tuple[Codec, bool]:
    """Refuse a store that cannot serve these options; (the value codec, group commit on?).

    ``store`` is a sync store, or an async one with the same attributes.
    """
    for method in ("load", "store", "remove"):
        if not callable(getattr(store, method, None)):
            raise ConfigError(f"{type(store).__name__} is not a store: it has no {method}() method")
    wants_bytes = bool(getattr(store, "wants_bytes", False))
    if not wants_bytes and (codec is not None or secret is not None):
        raise ConfigError(
            f"{type(store).__name__} holds objects as they are; codec= applies to byte stores"
        )
    value_codec = get_codec(codec, secret=secret, trusted=trusted_pickle)
    can_group = bool(getattr(store, "supports_group_commit", False))
    if group_commit and not can_group:
        raise ConfigError(
            f"{type(store).__name__} cannot do group commit (it needs a store that writes "
            "a batch atomically: SQLite, PostgreSQL, MySQL/MariaDB, Redis)"
        )
    if group_commit is None:
        group_commit = can_group and bool(getattr(store, "group_commit_default", False))
    return value_codec, group_commit


class CacheOptions(TypedDict, total=False):
    """The options both caches take (``WriteThroughCache`` documents each)."""

    capacity: int
    max_bytes: int | None
    policy: str | Policy | None
    codec: str | Codec | None
    ttl: float | None
    weigher: Weigher | None
    secret: bytes | str | None
    trusted_pickle: bool
    close_store: bool
    group_commit: bool | None
    group_commit_max_wait: float
    group_commit_max_size: int
    bus: Any
    channel: str | None
    bus_heartbeat: float


class CacheView:
    """What both caches (threaded and asyncio) share without I/O: setup, size, settings, stats."""

    _core: Core[Any]
    _enc: Encoding
    _store: Any
    _group: GroupCommit | None
    _bus: Any  # the running bus driver (bus/_driver.Coherence), or None
    _closed: bool

    def _configure(
        self,
        store: Any,
        group_store: Any,
        new_gate: Callable[[], Any],
        new_signal: Callable[[], Any],
        owner_id: Callable[[], object],
        **options: Unpack[CacheOptions],
    ) -> None:
        """Check the options against ``store`` and build the core, the encoding and the
        writer queue (over ``group_store``, a sync store) if group commit is on."""
        close_store = options.get("close_store", True)
        cap, max_b = check_options(**{k: v for k, v in options.items() if k != "close_store"})
        codec = options.get("codec")
        secret = options.get("secret")
        value_codec, grouped = check_store(
            store,
            codec=codec,
            secret=secret,
            trusted_pickle=options.get("trusted_pickle", False),
            group_commit=options.get("group_commit"),
        )
        self._group = (
            GroupCommit(
                group_store,
                max_wait=options.get("group_commit_max_wait", 0.0),
                max_size=options.get("group_commit_max_size", 256),
            )
            if grouped
            else None
        )
        self._store = store
        self._close_store = close_store
        self._enc = Encoding(store, value_codec, options.get("weigher"), max_b)
        ttl = options.get("ttl")
        self._core = Core(
            capacity=cap,
            max_bytes=max_b,
            policy=make_policy(options.get("policy")),
            ttl=float(ttl) if ttl is not None else None,
            new_gate=new_gate,
            new_signal=new_signal,
            owner_id=owner_id,
        )
        self._closed = False
        self._store_key = self._enc.store_key
        self._prepare_value = self._enc.prepare
        self._bus = None
        bus = options.get("bus")
        if bus is not None:
            from .bus import attach

            try:
                self._bus = attach(
                    self._core,
                    group_store if group_store is not None else store,
                    bus,
                    options.get("channel"),
                    self._enc.cache_key,
                    options.get("bus_heartbeat", 0.1),
                )
            except BaseException:
                if self._group is not None:
                    self._group.close()
                raise
            self._core.publish = self._bus.publish

    def __len__(self) -> int:
        """Entries held in memory now (the seed's ``cache_len``)."""
        return len(self._core.data)

    def __bool__(self) -> bool:
        """Always true: an empty cache is still a cache (``len()`` is what it holds)."""
        return True

    # Not iterable: with __getitem__ alone, iter() would probe cache[0], cache[1], ...
    # against the store. Use get_many() with the keys you mean.
    __iter__ = None

    def stats(self) -> CacheStats:
        """A frozen snapshot of the statistics."""
        group = self._group
        if group is None:
            stats = self._core.snapshot()
        else:
            stats = self._core.snapshot(commits=group.commits, group_commit_members=group.members)
        bus = self._bus
        if bus is None:
            return stats
        return stats.replace(
            bus_published=bus.published.value,
            bus_received=bus.received.value,
            bus_flushes=bus.flushes.value,
            bus_publish_errors=bus.publish_errors.value,
        )

    @property
    def bus(self) -> Any:
        """The running bus driver (``bus/_driver.Coherence``), or None without a bus."""
        return self._bus

    @property
    def group_commit(self) -> bool:
        """Whether concurrent puts share commits (see ``group_commit=``)."""
        return self._group is not None

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

    def _evict_now(self, key: Hashable) -> bool:
        """``evict``: local only, never blocks."""
        if self._closed:
            raise CacheClosed("the cache is closed")
        try:
            return self._core.evict(key)
        except TypeError:
            raise CodecError(f"unhashable key of type {type(key).__name__}") from None

    def _evict_all_now(self) -> None:
        if self._closed:
            raise CacheClosed("the cache is closed")
        self._core.evict_all()

    def _shut(self) -> bool:
        """Mark the cache closed and drop what it holds; False if it was closed already."""
        core = self._core
        with core.lock:
            if self._closed:
                return False
            self._closed = True
            core.closed = True
            core.installing = False  # a put or load finishing after this installs nothing
            core.drop_all()
        return True

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)}/{self.capacity} entries"
        return (
            f"<{type(self).__name__} {state} policy={self._core.policy.name!r} "
            f"store={type(self._store).__name__}>"
        )


class WriteThroughCache(BatchOps, CacheView):
    """A bounded, thread-safe write-through cache in front of ``store``.

    ``capacity`` bounds the entries held in memory and ``max_bytes`` (optional)
    their weight; ``policy`` picks what to evict (a name or a ``Policy``);
    ``codec`` encodes values for byte stores (default msgpack); ``ttl``
    (seconds) bounds how long an entry is served from memory; ``weigher``
    weighs ``MemoryStore`` entries for ``max_bytes``. ``close_store`` says
    whether ``close()`` also closes the store. ``group_commit`` makes concurrent
    puts share one durable transaction (stores that write a batch in one
    transaction; ``None``: the store's default); ``group_commit_max_wait`` and
    ``group_commit_max_size`` bound how long a group waits and how big it gets.
    ``bus`` (a URL: ``redis://``, ``postgresql://``, ``nats://``) keeps caches in
    other processes over the same store coherent: every acknowledged write is
    published on ``channel`` (default: derived from the store's identity) and
    what others publish is dropped here; ``bus_heartbeat`` (seconds) bounds how
    long a lost message or connection goes unnoticed (docs/coherence.md).
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
        group_commit: bool | None = None,
        group_commit_max_wait: float = 0.0,
        group_commit_max_size: int = 256,
        bus: Any = None,
        channel: str | None = None,
        bus_heartbeat: float = 0.1,
    ) -> None:
        self._configure(
            store,
            store,
            threading.Lock,
            threading.Event,
            threading.get_ident,
            capacity=capacity,
            max_bytes=max_bytes,
            policy=policy,
            codec=codec,
            ttl=ttl,
            weigher=weigher,
            secret=secret,
            trusted_pickle=trusted_pickle,
            close_store=close_store,
            group_commit=group_commit,
            group_commit_max_wait=group_commit_max_wait,
            group_commit_max_size=group_commit_max_size,
            bus=bus,
            channel=channel,
            bus_heartbeat=bus_heartbeat,
        )
        #: one durable write: through the writer queue, or straight to the store
        self._write_one: Callable[[Any, Any], None] = (
            self._group.store if self._group is not None else store.store
        )
        self._lookup = getattr(store, "lookup", None)
        self._load_many = getattr(store, "load_many", None)
        self._store_many = getattr(store, "store_many", None)
        self._remove_many = getattr(store, "remove_many", None)
        self._decode = self._enc.codec.decode if self._enc.bytes_store else None
        self._weighs = self._core.max_bytes is not None
        # The hit path: a closure that shadows the ``get`` method on this instance.
        self.__dict__["get"] = make_get(self._core, self._get_slow)

    # ------------------------------------------------------------ the hit path

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``: from memory on a hit, else from the store (and kept).

        Returns ``default`` when neither holds the key. Concurrent misses of one
        key share a single store load. Raises ``StoreError`` if the load fails.
        """
        # Each instance shadows this method with the closure from _hitpath.make_get().
        return self.__dict__["get"](key, default)

    def _get_slow(self, key: Hashable, default: Any) -> Any:
        if self._closed:
            raise CacheClosed("the cache is closed")
        skey = self._store_key(key)
        core = self._core
        flight, leader, value = start_read(core, key)
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
            fail_flight(core, self._store, flight, exc, start)
        try:
            signal = core.finish_load(flight, found, value, weight, _perf() - start)
        except BaseException:
            wake(flight.signal)  # settled already; only the install failed
            raise
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
            fail_flight(self._core, self._store, flight, exc, start)
        return found, value, weight, _perf() - start

    def _wait(self, flight: Flight) -> tuple[bool, Any]:
        self._settled(flight)
        return waited(self._core, flight, True)

    def _settled(self, flight: Flight) -> None:
        """Block until ``flight`` settles."""
        core = self._core
        if core.begin_wait(flight):
            try:
                flight.signal.wait()
            finally:
                core.stop_waiting()

    # ------------------------------------------------------------ writes

    def put(self, key: Hashable, value: Any) -> None:
        """Write ``value`` to the store, then hold it; durable before this returns.

        On a store failure raises a ``StoreError`` subclass (driver error as
        ``__cause__``) and drops ``key`` from memory, since the store may or may
        not hold the new value.
        """
        # Inlined where the other writes share helpers: everything a put does after
        # the store's commit runs on a cold CPU (the fsync), where each call costs
        # several times what it does warm.
        if self._closed:
            raise CacheClosed("the cache is closed")
        skey = self._store_key(key)
        held, svalue, weight = self._prepare_value(key, value, skey)
        core = self._core
        gate = core.acquire_gate(key)
        try:
            gate.acquire()
        except BaseException:
            core.release_gate(key)
            raise
        try:
            start = _perf()
            try:
                self._write_one(skey, svalue)
            except BaseException as exc:
                write_failed(core, self._store, key, exc, start)
            core.finish_write(key, held, weight, _perf() - start)
            publish = core.publish
            if publish is not None:
                publish((skey,))
        finally:
            gate.release()
            core.release_gate(key)

    def _write_locked(self, key: Hashable, skey: Any, value: Any, svalue: Any, weight: int) -> None:
        """The store write and its outcome; the caller holds the key's gate."""
        start = _perf()
        try:
            self._write_one(skey, svalue)
        except BaseException as exc:
            write_failed(self._core, self._store, key, exc, start)
        self._core.finish_write(key, value, weight, _perf() - start)
        if self._core.publish is not None:
            self._core.publish((skey,))

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
                remove_failed(core, self._store, key, exc, start)
            held = core.finish_remove(key, _perf() - start)
            if core.publish is not None:
                core.publish((skey,))
        return existed or held

    # ------------------------------------------------------------ compute

    def get_or_compute(self, key: Hashable, fn: Callable[[Hashable], Any]) -> Any:
        """The cached or stored value, else ``fn(key)`` written through and returned.

        One call per key runs at a time; concurrent callers wait for it and get
        its result (or its exception). If a ``put``/``invalidate`` of the key
        completes while ``fn`` runs, that newer write stands and ``fn``'s result
        is returned but not written. ``fn`` re-entering the cache on the same key
        raises ``ReentrantCompute``.
        """
        skey = self._prepare_key(key)
        core = self._core
        while True:
            flight, leader, value = start_compute(core, key, fn)
            if flight is None:
                return value
            if leader:
                return self._lead_compute(flight, skey, fn)
            self._settled(flight)
            found, value = compute_waited(core, flight)
            if found:
                return value
            # a plain get's load found nothing: this caller computes, in a new flight

    def _lead_compute(self, flight: Flight, skey: Any, fn: Callable[[Hashable], Any]) -> Any:
        core = self._core
        key = flight.key
        found, value, weight, seconds = self._load_for(flight, skey)
        if found:
            try:
                wake(core.finish_load(flight, True, value, weight, seconds))
            except BaseException:
                wake(flight.signal)  # settled already; only the install failed
                raise
            return value
        core.note_absent(flight, seconds)
        try:
            value = fn(key)
            value, svalue, weight = self._prepare_value(key, value, skey)
            with self._gates([key], [skey]):
                if not flight.stale:
                    self._write_locked(key, skey, value, svalue, weight)
        except BaseException as exc:
            wake(core.settle(flight, False, None, exc))
            raise
        wake(core.settle(flight, True, value))
        return value

    # ------------------------------------------------------------ local only

    def evict(self, key: Hashable) -> bool:
        """Drop ``key`` from memory only (the store keeps it); True if it was held."""
        return self._evict_now(key)

    def evict_all(self) -> None:
        """Drop every entry from memory only."""
        self._evict_all_now()

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
            raise_load_error(exc, key, self._store)
        return found

    def close(self) -> None:
        """Drop everything held and refuse later calls; closes the store if ``close_store``."""
        if not self._shut():
            return
        if self._bus is not None:
            self._bus.close()  # sends what is queued (bounded wait), then stops its threads
        if self._group is not None:
            self._group.close()  # queued puts fail with CacheClosed; the commit in flight ends
        if self._close_store:
            close = getattr(self._store, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> WriteThroughCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

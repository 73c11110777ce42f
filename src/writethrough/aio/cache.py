"""``AsyncWriteThroughCache``: the asyncio driver around the sans-I/O core.

The same ``Core`` as the threaded cache makes every decision (what to count,
when to install, what to evict, what a failure does to the local entry); this
module awaits the store and the waiters. Gates are ``asyncio.Lock``, a flight's
signal an ``asyncio.Event``, and a flight's owner the task that runs its load.

Cancellation never breaks a shared operation. A write or a compute runs in a
task of its own, which the caller awaits through ``asyncio.shield``: a
cancelled caller (or one whose ``asyncio.timeout`` expired) stops waiting, and
the operation finishes anyway, settles its flight, releases its gates and
reports its outcome to the core, so the cache never holds a value the store may
not have and a write's order is never overtaken. A read is led in the caller's
own task (the common miss path stays cheap); if that caller is cancelled while
the store answers, the read is handed over to a new task that loads again and
settles the flight for its waiters.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, Unpack

from .._batches import gate_order
from .._core import MISSING, Flight
from .._hitpath import make_async_get
from .._outcomes import (
    Lead,
    Prepared,
    check_keys,
    collect_waits,
    compute_waited,
    fail_flight,
    plan_many,
    prepare_many,
    put_many_done,
    put_many_failed,
    raise_load_error,
    remove_failed,
    removed_many,
    settle_loaded,
    start_compute,
    start_read,
    waited,
    wake,
    write_failed,
)
from ..cache import CacheOptions, CacheView
from ..errors import CacheClosed
from .stores import to_async_store

__all__ = ["AsyncWriteThroughCache"]

_perf = time.perf_counter
_T = TypeVar("_T")
#: keys per batched read of concurrent misses (one MGET / one ``= ANY`` query)
MAX_READ_BATCH = 256
_Held = tuple[Hashable, asyncio.Lock, bool]  # a key, its gate, whether this caller locked it


#: Who runs a load or compute: set in the task a leader spawns, and inherited by
#: what that task starts (tasks, ``asyncio.to_thread``), so a compute function
#: that re-enters the cache on its own key is recognised wherever it runs.
_OWNER: contextvars.ContextVar[object] = contextvars.ContextVar("writethrough_owner", default=None)


def _owner_id() -> object:
    return _OWNER.get() or asyncio.current_task()


class AsyncWriteThroughCache(CacheView):
    """The asyncio twin of ``WriteThroughCache``: the same options, rules and statistics.

    ``store`` is an async store (``writethrough.aio.stores``) or any sync store:
    PostgreSQL and Redis stores get their async drivers, ``MemoryStore`` is
    called inline, and every other store runs in ``threads`` worker threads so
    the event loop never blocks on it. ``group_commit`` makes concurrent puts
    share commits through the sync store's writer queue, in threads. The other
    options are those of ``WriteThroughCache``.
    """

    def __init__(self, store: Any, *, threads: int = 8, **options: Unpack[CacheOptions]) -> None:
        io = to_async_store(store, threads=threads)
        self._configure(
            io, getattr(io, "sync", None), asyncio.Lock, asyncio.Event, _owner_id, **options
        )
        self._store = store
        self._io = io
        self._group_threads: ThreadPoolExecutor | None = None
        if self._group is not None:
            # each waiting member holds a thread: as many as a group may hold, and one leader
            self._group_threads = ThreadPoolExecutor(
                max_workers=min(options.get("group_commit_max_size", 256), 64) + 1,
                thread_name_prefix="writethrough-aio-group",
            )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reading = 0  # single-key reads in flight, led in their callers' tasks
        self._batch: list[Lead] | None = None  # misses waiting for the next batch read
        self.__dict__["get"] = make_async_get(self._core, self._get_slow)

    # ------------------------------------------------------------ reads

    async def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key``: from memory on a hit, else from the store (and kept).

        Returns ``default`` when neither holds it. Concurrent misses of one key
        share one store load; cancelling a caller never cancels that load.
        """
        # Each instance shadows this method with the coroutine function from
        # _hitpath.make_async_get().
        get: Callable[[Hashable, Any], Awaitable[Any]] = self.__dict__["get"]
        return await get(key, default)

    async def _get_slow(self, key: Hashable, default: Any) -> Any:
        skey = self._prepare_key(key)
        flight, leader, value = start_read(self._core, key)
        if flight is None:
            return value
        if not leader:
            found, value = await self._wait(flight)
        elif self._reading or self._batch is not None:
            found, value = await self._join_batch(key, skey, flight)
        else:
            self._reading += 1
            try:
                found, value = await self._load_one(flight, skey, hand_over=True)
            except asyncio.CancelledError:
                self._hand_over([flight], self._load_one(flight, skey))
                raise
            finally:
                self._reading -= 1
        return value if found else default

    async def _join_batch(self, key: Hashable, skey: Any, flight: Flight) -> tuple[bool, Any]:
        """Lead the load of ``key`` as part of a batch: misses of other keys that arrive
        while a read is in flight share one ``load_many`` round trip.

        The batch is read by a task of its own once the tasks ready now have run (so
        they can join it); this caller waits for its flight like any waiter.
        """
        batch = self._batch
        if batch is None or len(batch) >= MAX_READ_BATCH:
            batch = self._batch = []
            self._spawn(self._read_batch(batch))
        batch.append((key, skey, flight))
        core = self._core
        with core.lock:
            if flight.signal is None:
                flight.signal = asyncio.Event()
        if not flight.done:
            await flight.signal.wait()
        return waited(core, flight, False)

    async def _read_batch(self, batch: list[Lead]) -> None:
        if self._batch is batch:
            self._batch = None  # closed: later misses start the next batch
        await self._load_many(batch, {})

    def _prepare_key(self, key: Hashable) -> Any:
        if self._closed:
            raise CacheClosed("the cache is closed")
        return self._store_key(key)

    async def _fetch(
        self, flight: Flight, skey: Any, hand_over: bool = False
    ) -> tuple[bool, Any, int, float]:
        """The leader's store read: (found, value, weight, seconds); a failure fails the flight.

        With ``hand_over``, a cancelled caller leaves the flight open instead (see
        ``_hand_over``).
        """
        start = _perf()
        try:
            stored = await self._io.lookup(skey, MISSING)
            if stored is MISSING:
                return False, None, 0, _perf() - start
            value, weight = self._enc.loaded(flight.key, skey, stored)
        except BaseException as exc:
            if hand_over and isinstance(exc, asyncio.CancelledError):
                raise
            fail_flight(self._core, self._store, flight, exc, start)
        return True, value, weight, _perf() - start

    async def _load_one(
        self, flight: Flight, skey: Any, hand_over: bool = False
    ) -> tuple[bool, Any]:
        found, value, weight, seconds = await self._fetch(flight, skey, hand_over)
        self._finish_load(flight, found, value, weight, seconds)
        return found, value

    def _finish_load(self, flight: Flight, found: bool, value: Any, weight: int, s: float) -> None:
        try:
            signal = self._core.finish_load(flight, found, value, weight, s)
        except BaseException:
            wake(flight.signal)  # settled already; only the install failed
            raise
        wake(signal)

    def _hand_over(self, flights: list[Flight], work: Coroutine[Any, Any, Any]) -> None:
        """A caller leading a read was cancelled while the store answered: a task of
        its own reads again and settles the flights, so their waiters (present or
        yet to come) are served and never see the cancellation.

        The miss path of every ``get`` awaits the store in the caller's task (a
        task per miss would cost more than the rest of the miss); only a
        cancellation pays for one.
        """
        if all(flight.done for flight in flights):
            work.close()
            return
        self._spawn(work)

    async def _lead(self, flights: list[Flight], work: Coroutine[Any, Any, _T]) -> _T:
        """Run a load or compute the caller leads in a task of its own, and await it shielded.

        The task owns the flights (a compute re-entering its own key is caught:
        ``ReentrantCompute``).
        """
        owner = object()
        context = contextvars.copy_context()
        context.run(_OWNER.set, owner)
        for flight in flights:
            flight.owner = owner
        return await asyncio.shield(self._spawn(work, context))

    def _spawn(
        self, work: Coroutine[Any, Any, _T], context: contextvars.Context | None = None
    ) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(work, context=context)
        self._tasks.add(task)  # a strong reference until done, even if its caller left
        task.add_done_callback(self._tasks.discard)
        return task

    async def _wait(self, flight: Flight) -> tuple[bool, Any]:
        await self._settled(flight)
        return waited(self._core, flight, True)

    async def _settled(self, flight: Flight) -> None:
        """Wait until ``flight`` settles (cancelling this wait leaves the flight alone)."""
        core = self._core
        if core.begin_wait(flight):
            try:
                await flight.signal.wait()
            finally:
                core.stop_waiting()

    async def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The values of the keys found (in memory or the store); absent keys are left out.

        Missing keys are loaded in one store round trip.
        """
        checked = check_keys(keys, self._closed, self._prepare_key)
        result, leads, waits = plan_many(self._core, checked)
        first_error: BaseException | None = None
        if leads:
            try:
                first_error = await self._load_many(leads, result, hand_over=True)
            except asyncio.CancelledError:
                self._hand_over([f for _, _, f in leads], self._load_many(leads, {}))
                raise
        for _, flight in waits:
            await self._settled(flight)
        return collect_waits(self._core, waits, result, first_error)

    async def _load_many(
        self, leads: list[Lead], result: dict[Hashable, Any], hand_over: bool = False
    ) -> BaseException | None:
        start = _perf()
        found: dict[Any, Any] | BaseException
        try:
            found = await self._io.load_many([skey for _, skey, _ in leads])
        except BaseException as exc:
            if hand_over and isinstance(exc, asyncio.CancelledError):
                raise
            found = exc
        return settle_loaded(
            self._core, self._enc, self._store, leads, found, _perf() - start, result
        )

    # ------------------------------------------------------------ writes

    async def _locked(
        self, keys: list[Hashable], skeys: list[Any], work: Coroutine[Any, Any, _T]
    ) -> _T:
        """Take the keys' write gates, then run ``work`` shielded; the gates go with it.

        A caller cancelled while it waits for the gates leaves nothing behind; one
        cancelled later leaves ``work`` to finish and release the gates itself.
        """
        try:
            gates = await self._take_gates(keys, skeys)
        except BaseException:
            work.close()
            raise
        return await asyncio.shield(self._spawn(self._release_after(gates, work)))

    async def _take_gates(self, keys: list[Hashable], skeys: list[Any]) -> list[_Held]:
        """The write gates of ``keys``, locked in the one global order."""
        core = self._core
        held: list[_Held] = []
        try:
            for key in gate_order(keys, skeys, self._enc.bytes_store):
                gate = core.acquire_gate(key)
                held.append((key, gate, False))
                await gate.acquire()
                held[-1] = (key, gate, True)
        except BaseException:
            self._release_gates(held)
            raise
        return held

    def _release_gates(self, held: list[_Held]) -> None:
        core = self._core
        for key, gate, locked in held:
            if locked:
                gate.release()
            core.release_gate(key)

    async def _release_after(self, held: list[_Held], work: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await work
        finally:
            self._release_gates(held)

    async def put(self, key: Hashable, value: Any) -> None:
        """Write ``value`` to the store, then hold it; durable before this returns.

        On a store failure raises a ``StoreError`` subclass and drops ``key``
        from memory. Cancelled, the write still completes (or fails) in order.
        """
        skey = self._prepare_key(key)
        held, svalue, weight = self._prepare_value(key, value, skey)
        await self._locked([key], [skey], self._write(key, skey, held, svalue, weight))

    async def _write(self, key: Hashable, skey: Any, held: Any, svalue: Any, weight: int) -> None:
        start = _perf()
        try:
            if self._group is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._group_threads, self._group.store, skey, svalue)
            else:
                await self._io.store(skey, svalue)
        except BaseException as exc:
            write_failed(self._core, self._store, key, exc, start)
        core = self._core
        core.finish_write(key, held, weight, _perf() - start)
        if core.publish is not None:
            core.publish((skey,))

    async def invalidate(self, key: Hashable) -> bool:
        """Remove ``key`` from the store, then from memory; True if either held it."""
        skey = self._prepare_key(key)
        return await self._locked([key], [skey], self._remove(key, skey))

    async def _remove(self, key: Hashable, skey: Any) -> bool:
        start = _perf()
        try:
            existed = bool(await self._io.remove(skey))
        except BaseException as exc:
            remove_failed(self._core, self._store, key, exc, start)
        core = self._core
        held = core.finish_remove(key, _perf() - start)
        if core.publish is not None:
            core.publish((skey,))
        return existed or held

    async def put_many(self, mapping: Mapping[Hashable, Any]) -> None:
        """Write every pair through, in one store round trip / transaction where possible.

        If the store fails part-way, exactly the keys it accepted are applied and
        ``BatchError`` names each failed key and the rest.
        """
        prepared = prepare_many(mapping, self._closed, self._prepare_key, self._prepare_value)
        if prepared:
            keys, skeys = [p[0] for p in prepared], [p[1] for p in prepared]
            await self._locked(keys, skeys, self._write_many(prepared))

    async def _write_many(self, prepared: list[Prepared]) -> None:
        start = _perf()
        try:
            await self._io.store_many([(p[1], p[3]) for p in prepared])
        except BaseException as exc:
            put_many_failed(self._core, prepared, exc, _perf() - start)
        put_many_done(self._core, prepared, _perf() - start)

    async def invalidate_many(self, keys: Iterable[Hashable]) -> int:
        """Invalidate every key; the number that were in memory or in the store."""
        checked = check_keys(keys, self._closed, self._prepare_key)
        if not checked:
            return 0
        listed, skeys = [k for k, _ in checked], [s for _, s in checked]
        return await self._locked(listed, skeys, self._remove_many(checked, skeys))

    async def _remove_many(self, checked: list[tuple[Hashable, Any]], skeys: list[Any]) -> int:
        start = _perf()
        existed: list[bool] | BaseException
        try:
            existed = list(await self._io.remove_many(skeys))
        except BaseException as exc:
            existed = exc
        return removed_many(self._core, checked, existed, _perf() - start)

    # ------------------------------------------------------------ compute

    async def get_or_compute(self, key: Hashable, fn: Callable[[Hashable], Any]) -> Any:
        """The cached or stored value, else ``fn(key)`` written through and returned.

        ``fn`` may be a plain function (called on the event loop: keep it quick,
        or make it async) or return an awaitable. One call per key runs at a
        time; concurrent callers get its result or its exception, and
        cancelling any of them, the first included, never cancels it.
        """
        skey = self._prepare_key(key)
        while True:
            flight, leader, value = start_compute(self._core, key, fn)
            if flight is None:
                return value
            if leader:  # the compute runs in a task of its own: see _lead
                return await self._lead([flight], self._compute(flight, skey, fn))
            await self._settled(flight)
            found, value = compute_waited(self._core, flight)
            if found:
                return value
            # a plain get's load found nothing: this caller computes, in a new flight

    async def _compute(self, flight: Flight, skey: Any, fn: Callable[[Hashable], Any]) -> Any:
        core = self._core
        key = flight.key
        found, value, weight, seconds = await self._fetch(flight, skey)
        if found:
            self._finish_load(flight, True, value, weight, seconds)
            return value
        core.note_absent(flight, seconds)
        try:
            value = fn(key)
            if inspect.isawaitable(value):
                value = await value
            held, svalue, weight = self._prepare_value(key, value, skey)
            gates = await self._take_gates([key], [skey])
            try:
                if not flight.stale:
                    await self._write(key, skey, held, svalue, weight)
            finally:
                self._release_gates(gates)
        except BaseException as exc:
            wake(core.settle(flight, False, None, exc))
            raise
        wake(core.settle(flight, True, held))
        return held

    # ------------------------------------------------------------ local only

    async def evict(self, key: Hashable) -> bool:
        """Drop ``key`` from memory only (the store keeps it); True if it was held."""
        return self._evict_now(key)

    async def evict_all(self) -> None:
        """Drop every entry from memory only."""
        self._evict_all_now()

    async def contains(self, key: Hashable) -> bool:
        """Held in memory or in the store; counts nothing and installs nothing."""
        skey = self._prepare_key(key)
        core = self._core
        if key in core.data and (core.ttl is None or core.expires.get(key, 0.0) > time.monotonic()):
            return True
        try:
            return await self._io.lookup(skey, MISSING) is not MISSING
        except Exception as exc:
            raise_load_error(exc, key, self._store)

    # ------------------------------------------------------------ lifecycle

    @property
    def backing_store(self) -> Any:
        """The store as given (a sync store stays the sync store)."""
        return self._store

    @property
    def async_store(self) -> Any:
        """The async store the cache awaits (``backing_store`` itself if it was async)."""
        return self._io

    async def aclose(self) -> None:
        """Drop everything held and refuse later calls; closes the store if ``close_store``.

        As with ``close()`` of the threaded cache, operations in flight are not
        waited for: they finish on their own and install nothing.
        """
        if not self._shut():
            return
        if self._bus is not None:  # sends what is queued (bounded wait), off the loop
            await asyncio.to_thread(self._bus.close)
        if self._group is not None:
            # queued puts fail with CacheClosed; the commit in flight ends (in a thread)
            await asyncio.to_thread(self._group.close)
        if self._group_threads is not None:
            self._group_threads.shutdown(wait=False)
        if self._close_store:
            await self._io.aclose()
        elif self._io is not self._store:  # the async side made here is ours to close
            await self._io.aclose(close_sync=False)

    async def __aenter__(self) -> AsyncWriteThroughCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

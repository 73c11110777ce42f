"""What each store outcome does to the core: the non-I/O halves of the operations.

The threaded cache (``cache.py``, ``_batches.py``) and the asyncio cache
(``aio``) differ only in how they call the store and how they wait; everything
before and after a store call lives here, once: refusing bad batches, splitting
a batch into hits, loads and waits, wrapping driver errors, and reporting a
(batch) outcome to the core. Nothing here blocks or awaits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, NoReturn

from ._backend import Encoding, wrap_load_error, wrap_write_error
from ._core import MISSING, Core, Flight
from .errors import BatchError, CacheClosed, ConfigError

__all__ = [
    "Lead",
    "Prepared",
    "check_keys",
    "collect_waits",
    "compute_waited",
    "fail_flight",
    "fail_leads",
    "plan_many",
    "prepare_many",
    "put_many_done",
    "put_many_failed",
    "raise_load_error",
    "remove_failed",
    "removed_many",
    "settle_loaded",
    "split_batch",
    "start_compute",
    "start_read",
    "waited",
    "wake",
    "write_failed",
]

_perf = time.perf_counter

#: (key, store key, flight) of a load this caller leads in a batch
Lead = tuple[Hashable, Any, Flight]
#: (key, store key, value to hold, value for the store, weight) of a write in a batch
Prepared = tuple[Hashable, Any, Any, Any, int]


def wake(signal: Any) -> None:
    """Wake the waiters of a settled flight (a no-op when there were none).

    Both drivers' signals have ``set()``: ``threading.Event`` and ``asyncio.Event``.
    """
    if signal is not None:
        signal.set()


def _raise(err: BaseException, exc: BaseException) -> NoReturn:
    if err is exc:
        raise exc
    raise err from exc


def fail_flight(
    core: Core[Any], store: Any, flight: Flight, exc: BaseException, start: float
) -> NoReturn:
    """A leader's load failed: every waiter gets the error (wrapped in ``StoreError``
    unless already ours), nothing is cached, and the leader raises it too."""
    err: BaseException = (
        wrap_load_error(exc, flight.key, store) if isinstance(exc, Exception) else exc
    )
    wake(core.fail_load(flight, err, _perf() - start))
    _raise(err, exc)


def raise_load_error(exc: Exception, key: Hashable, store: Any) -> NoReturn:
    """Raise a failed read's error as a ``StoreError`` (ours pass unchanged)."""
    _raise(wrap_load_error(exc, key, store), exc)


def write_failed(
    core: Core[Any], store: Any, key: Hashable, exc: BaseException, start: float
) -> NoReturn:
    """The store refused a write (or may not have applied it): drop the key, raise."""
    core.fail_write(key, _perf() - start)
    if not isinstance(exc, Exception):
        raise exc
    _raise(wrap_write_error(exc, key, store), exc)


def remove_failed(
    core: Core[Any], store: Any, key: Hashable, exc: BaseException, start: float
) -> NoReturn:
    """A store removal failed: the local entry is dropped all the same, then raise."""
    core.finish_remove(key, _perf() - start, ok=False)
    if not isinstance(exc, Exception):
        raise exc
    _raise(wrap_write_error(exc, key, store, "removing"), exc)


def check_keys(
    keys: Iterable[Hashable], closed: bool, prepare_key: Callable[[Hashable], Any]
) -> list[tuple[Hashable, Any]]:
    """Distinct keys in order, each with its store key; refuses bad keys before any I/O."""
    if closed:
        raise CacheClosed("the cache is closed")
    if isinstance(keys, str | bytes):
        raise ConfigError("pass an iterable of keys, not a single str or bytes key")
    checked = [(key, prepare_key(key)) for key in keys]
    return list(dict(checked).items())  # distinct, first-seen order


def prepare_many(
    mapping: Mapping[Hashable, Any],
    closed: bool,
    prepare_key: Callable[[Hashable], Any],
    prepare_value: Callable[[Hashable, Any, Any], tuple[Any, Any, int]],
) -> list[Prepared]:
    """Every pair of a ``put_many`` encoded and weighed, or a typed error before any I/O."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"put_many takes a mapping of key -> value, got {type(mapping).__name__}")
    if closed:
        raise CacheClosed("the cache is closed")
    prepared: list[Prepared] = []
    for key, value in mapping.items():
        skey = prepare_key(key)
        held, svalue, weight = prepare_value(key, value, skey)
        prepared.append((key, skey, held, svalue, weight))
    return prepared


def plan_many(
    core: Core[Any], checked: list[tuple[Hashable, Any]]
) -> tuple[dict[Hashable, Any], list[Lead], list[tuple[Hashable, Flight]]]:
    """Split a ``get_many``: hits answered now, loads to lead, flights to wait for."""
    result: dict[Hashable, Any] = {}
    leads: list[Lead] = []
    waits: list[tuple[Hashable, Flight]] = []
    data_get = core.data.get
    record = core.hit_log.append
    ttl = core.ttl
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
        # must still settle, or their waiters elsewhere would hang
        fail_leads(core, leads, exc, 0.0)
        raise
    return result, leads, waits


def fail_leads(core: Core[Any], leads: list[Lead], err: BaseException, seconds: float) -> None:
    """Fail every load of ``leads`` with ``err`` (their waiters get it)."""
    for _, _, flight in leads:
        wake(core.fail_load(flight, err, seconds))


def settle_loaded(
    core: Core[Any],
    enc: Encoding,
    store: Any,
    leads: list[Lead],
    found: Mapping[Any, Any] | BaseException,
    seconds: float,
    result: dict[Hashable, Any],
) -> BaseException | None:
    """Report a batch load (``found``: store key -> stored value, or the batch's error).

    Fills ``result``; returns the first per-key error (a corrupt value) for the
    caller to raise once every key is settled.
    """
    seconds /= len(leads)
    if isinstance(found, BaseException):
        err: BaseException = (
            wrap_load_error(found, leads[0][0], store) if isinstance(found, Exception) else found
        )
        fail_leads(core, leads, err, seconds)
        return err
    first_error: BaseException | None = None
    try:
        for i, (key, skey, flight) in enumerate(leads):
            stored = found.get(skey, MISSING)
            if stored is MISSING:
                wake(core.finish_load(flight, False, None, 0, seconds))
                continue
            try:
                value, weight = enc.loaded(key, skey, stored)
            except BaseException as exc:  # corrupt bytes, a failing weigher, an interrupt
                failure: BaseException = (
                    wrap_load_error(exc, key, store) if isinstance(exc, Exception) else exc
                )
                wake(core.fail_load(flight, failure, seconds))
                if not isinstance(exc, Exception):
                    fail_leads(core, leads[i + 1 :], failure, seconds)
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


def waited(core: Core[Any], flight: Flight, count: bool) -> tuple[bool, Any]:
    """A waiter's outcome once ``flight`` settled: (found, value), or its error raised."""
    if count:
        core.count_waiter(flight)
    if flight.error is not None:
        raise flight.error
    return flight.found, flight.value


def collect_waits(
    core: Core[Any],
    waits: list[tuple[Hashable, Flight]],
    result: dict[Hashable, Any],
    first_error: BaseException | None,
) -> dict[Hashable, Any]:
    """The outcome of a ``get_many`` once every flight it waited for settled."""
    for key, flight in waits:
        try:
            found, value = waited(core, flight, True)
        except BaseException as exc:
            first_error = first_error or exc
            continue
        if found:
            result[key] = value
    if first_error is not None:
        raise first_error
    return result


def start_read(
    core: Core[Any], key: Hashable, compute: bool = False
) -> tuple[Flight | None, bool, Any]:
    """``Core.start_load`` after a hit-path miss, an expired entry dropped first."""
    if core.ttl is not None:
        core.expire(key)
    return core.start_load(key, compute)


def start_compute(core: Core[Any], key: Hashable, fn: object) -> tuple[Flight | None, bool, Any]:
    """``start_read`` for ``get_or_compute``, which needs a callable."""
    if not callable(fn):
        raise ConfigError(f"get_or_compute needs a callable, got {fn!r}")
    return start_read(core, key, True)


def compute_waited(core: Core[Any], flight: Flight) -> tuple[bool, Any]:
    """A ``get_or_compute`` waiter's outcome once ``flight`` settled.

    (True, value) or the shared error, both counted; (False, None) when the
    flight was a plain ``get`` that found nothing: the caller then computes.
    """
    if flight.error is not None:
        core.count_waiter(flight)
        raise flight.error
    if flight.found:
        core.count_waiter(flight)
        return True, flight.value
    return False, None


def put_many_done(core: Core[Any], prepared: list[Prepared], seconds: float) -> None:
    """A batch write was committed: hold every value."""
    core.add_write_time(seconds)
    for key, _, value, _, weight in prepared:
        core.finish_write(key, value, weight, 0.0)
    if core.publish is not None:
        core.publish(tuple(p[1] for p in prepared))


def put_many_failed(
    core: Core[Any], prepared: list[Prepared], exc: BaseException, seconds: float
) -> NoReturn:
    """A batch write failed (maybe part-way): apply exactly what the store accepted, raise."""
    core.add_write_time(seconds)
    by_skey = {p[1]: p for p in prepared}
    failed, succeeded = split_batch(exc, list(by_skey))
    for skey in succeeded:
        key, _, value, _, weight = by_skey[skey]
        core.finish_write(key, value, weight, 0.0)
    for skey in failed:
        core.fail_write(by_skey[skey][0], 0.0)
    if succeeded and core.publish is not None:
        core.publish(tuple(succeeded))
    if not isinstance(exc, Exception):
        raise exc
    raise BatchError(
        f"{len(failed)} of {len(prepared)} writes failed: {exc}",
        {by_skey[s][0]: e for s, e in failed.items()},
        [by_skey[s][0] for s in succeeded],
    ) from exc


def removed_many(
    core: Core[Any],
    checked: list[tuple[Hashable, Any]],
    existed: list[bool] | BaseException,
    seconds: float,
) -> int:
    """Report a batch removal (per key whether it existed, or its error): drop every key.

    Returns how many keys were in memory or in the store; raises ``BatchError``
    naming the failed keys.
    """
    core.add_write_time(seconds)
    if isinstance(existed, BaseException):
        exc = existed
        skeys = [s for _, s in checked]
        failed, succeeded = split_batch(exc, skeys)
        key_of = {s: k for k, s in checked}
        for key, skey in checked:
            core.finish_remove(key, 0.0, ok=skey not in failed)
        if succeeded and core.publish is not None:
            core.publish(tuple(succeeded))
        if not isinstance(exc, Exception):
            raise exc
        raise BatchError(
            f"{len(failed)} of {len(checked)} removals failed: {exc}",
            {key_of[s]: e for s, e in failed.items()},
            [key_of[s] for s in succeeded],
        ) from exc
    count = 0
    for (key, _), was_stored in zip(checked, existed, strict=True):
        held = core.finish_remove(key, 0.0)
        count += bool(was_stored) or held
    if core.publish is not None:
        core.publish(tuple(s for _, s in checked))
    return count


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

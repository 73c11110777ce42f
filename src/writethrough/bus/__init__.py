"""The invalidation bus: keeps caches in several processes (or hosts) over one store coherent.

``WriteThroughCache(store, bus="redis://...")`` or ``wt.open(url, bus=...)``.
Each message system is a module here behind ``base.BusTransport``; the
threaded driver is ``_driver.Coherence``. Drivers are imported only when a bus
of their scheme is opened (the same extras as the stores).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import ConfigError
from .base import BusTransport, BusUnavailable, check_channel, default_channel, mask_password

__all__ = ["BusTransport", "BusUnavailable", "attach", "check_options", "open_transport"]

#: scheme -> ("module:class", extra)
_SCHEMES: dict[str, tuple[str, str]] = {
    "redis": ("writethrough.bus.redis:RedisBus", "redis"),
    "rediss": ("writethrough.bus.redis:RedisBus", "redis"),
    "postgresql": ("writethrough.bus.postgres:PostgresBus", "postgres"),
    "postgres": ("writethrough.bus.postgres:PostgresBus", "postgres"),
    "nats": ("writethrough.bus.nats:NatsBus", "nats"),
}


_TRANSPORT_METHODS = ("check", "publish", "subscribe", "receive", "unsubscribe", "close")


def check_options(bus: object, channel: object, heartbeat: object) -> None:
    """Refuse a bad ``bus=``, ``channel=`` or ``bus_heartbeat=`` before anything is opened."""
    if bus is None:
        raise ConfigError("channel= names the bus topic; it needs bus= too")
    if isinstance(bus, str):
        _scheme(bus)
    elif not all(callable(getattr(bus, m, None)) for m in _TRANSPORT_METHODS):
        raise ConfigError(f"bus must be a URL (redis://, postgresql://, nats://); got {bus!r}")
    if channel is not None:
        check_channel(channel)
    if (
        isinstance(heartbeat, bool)
        or not isinstance(heartbeat, int | float)
        or not 0.001 <= heartbeat <= 60
    ):
        raise ConfigError(f"bus_heartbeat must be seconds from 0.001 to 60; got {heartbeat!r}")


def _scheme(url: str) -> str:
    if "://" not in url:
        raise ConfigError(
            f"bus must be a URL such as redis://localhost:6379/0, postgresql://host/db or "
            f"nats://localhost:4222; got {url!r}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise ConfigError(
            f"unknown bus scheme {scheme!r} in {mask_password(url)!r}; known: {known}"
        )
    return scheme


def open_transport(url: str, channel: str) -> BusTransport:
    """The transport a bus URL names (not connected yet); ``ConfigError`` for a bad URL."""
    scheme = _scheme(url)
    path, extra = _SCHEMES[scheme]
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme}:// bus needs its driver: pip install 'writethrough[{extra}]' ({exc})"
        ) from exc
    factory: Callable[..., BusTransport] = getattr(module, attr)
    return factory(url, channel)


def attach(
    core: Any,
    store: Any,
    bus: Any,
    channel: str | None,
    to_key: Callable[[bytes], Hashable],
    heartbeat: float,
) -> Any:
    """Connect ``core`` to ``bus`` and start its threads; returns the running ``Coherence``.

    Every failure is ``ConfigError`` and leaves nothing running.
    """
    from ._driver import Coherence

    check_options(bus, channel, heartbeat)
    if not getattr(store, "wants_bytes", False) or not isinstance(
        getattr(store, "identity", None), str
    ):
        raise ConfigError(
            f"bus= keeps caches in several processes coherent over one shared store; "
            f"{type(store).__name__} lives in this process only: use a store every process can "
            "open (sqlite://, file://, redis://, postgresql://, mysql://)"
        )
    if channel is None:
        channel = default_channel(store.identity)
    check_channel(channel)
    transport = open_transport(bus, channel) if isinstance(bus, str) else bus
    coherence = Coherence(core, transport, to_key, heartbeat=float(heartbeat))
    hook = getattr(transport, "bind_store", None)
    try:
        if callable(hook) and hook(store, coherence.origin):
            coherence.set_transactional()
        coherence.start()
    except BusUnavailable as exc:
        coherence.close(timeout=0.5)
        raise ConfigError(f"{exc}; check that the bus server is running and reachable") from exc
    except BaseException:
        coherence.close(timeout=0.5)
        raise
    return coherence

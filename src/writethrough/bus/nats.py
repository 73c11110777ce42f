"""The NATS bus: core NATS publish/subscribe on one subject (nats-py, the ``[nats]`` extra).

nats-py is asyncio-only: the transport runs its own event loop on a thread of
its own, and the driver's publisher and subscriber threads hand it coroutines.
nats-py's automatic reconnection is off: the driver reconnects itself, so it
knows when it was cut off and flushes (core NATS, like Redis pub/sub, drops
what is sent while a subscriber is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.errors import Error as NatsError

from .base import BusUnavailable, mask_password

__all__ = ["NatsBus"]

_T = TypeVar("_T")
_LOST: Any = object()
_ERRORS = (NatsError, OSError, asyncio.TimeoutError, TimeoutError)


class NatsBus:
    """Publish on one connection, subscribe on another, both driven by one private event loop."""

    max_payload = 512 << 10  # below the server's default max_payload (1 MB)

    def __init__(self, url: str, channel: str, *, connect_timeout: float = 2.0) -> None:
        self.url = url
        self.channel = channel
        self.name = f"nats bus {mask_password(url)} subject {channel!r}"
        self._connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._publisher: Any = None
        self._listener: Any = None
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._generation = object()  # a new one per subscription
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the loop thread

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float = 5.0) -> _T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="writethrough-bus-nats-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def _connect(self, listener: bool) -> Any:
        inbox = self._inbox
        generation = self._generation

        async def lost(*_: Any) -> None:
            # only the current listener's loss counts: closing an old one is no news
            if listener and self._generation is generation:
                inbox.put(_LOST)

        # nats-py retries a refused server before giving up (max_reconnect_attempts
        # counts those tries even with allow_reconnect off): one quick retry, then fail
        return await asyncio.wait_for(
            nats.connect(
                self.url,
                allow_reconnect=False,
                connect_timeout=self._connect_timeout,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                disconnected_cb=lost,
                closed_cb=lost,
                error_cb=_ignore,
            ),
            self._connect_timeout + 1,
        )

    # ------------------------------------------------------------ BusTransport

    def check(self) -> None:
        async def probe() -> None:
            conn = await self._connect(False)
            await conn.close()

        try:
            self._run(probe(), self._connect_timeout + 3)
        except _ERRORS as exc:
            raise BusUnavailable(f"{self.name}: cannot connect: {exc!r}") from exc

    def publish(self, payload: bytes) -> None:
        async def send() -> None:
            if self._publisher is None or not self._publisher.is_connected:
                old, self._publisher = self._publisher, None
                if old is not None:
                    with contextlib.suppress(Exception):
                        await old.close()
                self._publisher = await self._connect(False)
            await self._publisher.publish(self.channel, payload)

        try:
            self._run(send(), self._connect_timeout + 3)
        except _ERRORS as exc:
            raise BusUnavailable(f"{self.name}: publish failed: {exc!r}") from exc

    def subscribe(self) -> None:
        self.unsubscribe()
        inbox = self._inbox

        async def listen() -> Any:
            conn = await self._connect(True)

            async def deliver(msg: Any) -> None:
                inbox.put(msg.data)

            await conn.subscribe(self.channel, cb=deliver)
            await conn.flush(timeout=self._connect_timeout)  # the server has the subscription
            return conn

        while True:  # forget what a previous connection left in the inbox
            try:
                inbox.get_nowait()
            except queue.Empty:
                break
        try:
            self._listener = self._run(listen(), self._connect_timeout + 3)
        except _ERRORS as exc:
            raise BusUnavailable(f"{self.name}: subscribe failed: {exc!r}") from exc

    def receive(self, timeout: float) -> list[bytes]:
        if self._listener is None:
            raise BusUnavailable(f"{self.name}: not subscribed")
        out: list[bytes] = []
        try:
            item = self._inbox.get(timeout=timeout)
            while True:
                if item is _LOST:
                    raise BusUnavailable(f"{self.name}: connection lost")
                out.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        return out

    def unsubscribe(self) -> None:
        self._generation = object()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                self._run(listener.close(), 2.0)

    def close(self) -> None:
        self.unsubscribe()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                self._run(publisher.close(), 2.0)
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(2.0)
            if not thread.is_alive():
                loop.close()


async def _ignore(*_: Any) -> None:
    """nats-py reports connection errors here too; the driver learns of them from the calls."""

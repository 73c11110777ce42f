"""The threaded bus driver: a publisher thread and a subscriber thread per cache.

The caller's write only appends the written keys to a queue (``publish``);
the publisher thread numbers and sends them in order, retrying while the bus
is down, and sends a heartbeat whenever it has been quiet for one interval.
The subscriber thread applies what other processes publish to the core under
``Core.lock`` (``drop`` / ``drop_all``), watches for sequence gaps, and treats
the bus as lost when its own messages stop coming back: then the cache serves
every read from the store and installs nothing until it has resubscribed.
The hit path is untouched: it never takes a lock and never sees the bus.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from ..stats import Counter
from .base import (
    FLUSH,
    HEARTBEAT,
    KEYS,
    BusTransport,
    BusUnavailable,
    Message,
    SequenceTracker,
    encode_message,
    fits,
    new_origin,
)

__all__ = ["Coherence"]

_STOP: Any = object()
_MAX_BACKOFF = 0.5
_COALESCE = 256  # writes one message may carry at most
_BUSY_RATE = 5000  # writes per second from which the writer counts as busy (busy_linger)
_CALM_RATE = 2500  # writes per second under which a busy writer no longer is


class Coherence:
    """Keeps one cache's core coherent with the other processes on ``transport``.

    ``to_key`` turns a key as it travels (the store's key) back into the
    cache's key. ``silence`` (default three quarters of ``heartbeat``) is how long the bus may
    stay quiet before it counts as lost: our own heartbeat must have come back,
    and every other origin must have been heard within it.
    ``linger``: a message that follows the previous one within this many seconds
    waits out the rest of it, so a fast writer sends one message per few writes
    (at most this much later) instead of one per write; ``busy_linger`` replaces
    it once writes come faster than ``_BUSY_RATE`` a second, until they drop under
    ``_CALM_RATE`` (a writer in a tight loop, where each message is what costs,
    not the wait).
    ``transactional``: the store publishes each write itself, inside its own
    transaction (PostgreSQL store + PostgreSQL bus), so ``publish`` is not used.
    """

    def __init__(
        self,
        core: Any,
        transport: BusTransport,
        to_key: Callable[[bytes], Hashable],
        *,
        heartbeat: float = 0.1,
        silence: float | None = None,
        origin: str | None = None,
        transactional: bool = False,
        linger: float = 0.0002,
        busy_linger: float = 0.0005,
    ) -> None:
        self.core = core
        self.transport = transport
        self.to_key = to_key
        self.heartbeat = heartbeat
        # ``heartbeat`` is the bound on how long a lost message or a cut connection
        # goes unnoticed: a quiet origin beats four times per interval, and three
        # beats missing in a row (three quarters of an interval) is silence, so one
        # late beat on a busy machine is tolerated and detection stays within one.
        self.beat = heartbeat / 4
        self.silence = silence if silence is not None else 0.75 * heartbeat
        self.origin = origin or new_origin()
        self.transactional = transactional
        self.linger = linger
        self.busy_linger = busy_linger
        self.tracker = SequenceTracker(self.origin)
        self.published = Counter()
        self.received = Counter()
        self.flushes = Counter()
        self.publish_errors = Counter()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.publish: Callable[[Any], None] = self._queue.put
        self._seq = 0
        self._drop_next = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connected = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Subscribe (on the caller's thread: a bus that cannot be reached raises here),
        then start both threads. On failure nothing is left running."""
        self.transport.check()
        self.transport.subscribe()
        self.connected = True
        self.tracker.own_seen_at = time.monotonic()
        name = f"writethrough-bus-{self.origin[:6]}"
        self._threads = [
            threading.Thread(target=self._publish_loop, name=name + "-pub", daemon=True),
            threading.Thread(target=self._receive_loop, name=name + "-sub", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        with _live_lock:
            _LIVE.add(self)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (within ``timeout``), stop both threads, close the connections."""
        if self._stopping.is_set():
            return
        self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        if self._threads:
            self._threads[0].join(max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        for thread in self._threads[1:]:
            thread.join(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self.transport.close()

    def set_transactional(self) -> None:
        """The store notifies inside each write's transaction: ``publish`` only counts."""
        self.transactional = True
        count = self.published.incr

        def counted(keys: Any) -> None:
            count()

        self.publish = counted

    def drop_next_publish(self, count: int = 1) -> None:
        """Test hook: the next ``count`` messages are numbered but never sent (lost)."""
        self._drop_next += count

    # ------------------------------------------------------------ publishing

    def _publish_loop(self) -> None:
        get = self._queue.get
        pending: list[Any] = []
        last_sent = time.monotonic()
        linger = self.linger
        stopping = False
        while True:
            if not pending:
                wait = self.beat - (time.monotonic() - last_sent)
                item = None
                if wait > 0:
                    with contextlib.suppress(queue.Empty):
                        item = get(timeout=wait)
                if item is _STOP:
                    self._send_heartbeat()  # the last number, so a lost last message shows
                    return
                if item is None:
                    self._send_heartbeat()
                    last_sent = time.monotonic()
                    continue
                pending.append(item)
                since = time.monotonic() - last_sent
                if since < linger:
                    # writes come fast: let a few more join this message rather than
                    # send (and make every peer process) one message per write
                    time.sleep(linger - since)
            while len(pending) < _COALESCE:  # whatever queued meanwhile goes in the same message
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                pending.append(item)
            if self._send_writes(pending, giving_up=stopping or self._stopping.is_set()):
                now = time.monotonic()
                # writes per second; once busy, it takes half the rate to calm down:
                # a single threshold flipped on a loaded machine (the longer linger
                # fits a few more writes in a message, the shorter only one, and the
                # extra messages slowed the writer back under the threshold)
                rate = len(pending) / max(now - last_sent, 1e-9)
                busy = rate >= (_CALM_RATE if linger == self.busy_linger else _BUSY_RATE)
                linger = self.busy_linger if busy else self.linger
                pending = []
                last_sent = now
                if busy and not stopping:
                    # the writer keeps writing: gather its next writes asleep rather
                    # than be woken by its next put only to sleep out the linger
                    # (measured: fewer thread switches per message, SQLite puts
                    # 1.43-1.71x -> 1.32-1.39x with a bus)
                    time.sleep(linger)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        pass
                    else:
                        if item is _STOP:
                            stopping = True
                        else:
                            pending.append(item)
                            continue
            if stopping:
                self._send_heartbeat()
                return

    def _send_writes(self, batches: list[Any], giving_up: bool) -> bool:
        """Number ``batches`` (each one write's keys) and send them as one message.

        Retries with backoff while the bus is down; the batches stay pending (and
        later writes join them) until the message goes through. True once sent
        (or dropped by the test hook).
        """
        keys = dict.fromkeys(itertools.chain.from_iterable(batches))  # in order, once each
        first = self._seq + 1
        last = self._seq + len(batches)
        kind = KEYS if fits(keys, self.transport.max_payload) else FLUSH
        message = Message(self.origin, first, last, kind, tuple(keys) if kind == KEYS else ())
        if self._drop_next > 0:
            self._drop_next -= 1
            self._seq = last
            return True
        backoff = 0.005
        while True:
            try:
                self.transport.publish(encode_message(message))
            except Exception:  # BusUnavailable, or anything else a driver raises
                self.publish_errors.incr()
                if giving_up:
                    self._seq = last  # never sent: the others see the gap and flush
                    return True
                if self._stopping.wait(backoff):
                    giving_up = True
                backoff = min(backoff * 2, _MAX_BACKOFF)
                if not self._queue.empty():
                    return False  # retry with the writes queued since, in one message
                continue
            self._seq = last
            self.published.incr()
            return True

    def _send_heartbeat(self) -> None:
        message = Message(self.origin, self._seq, self._seq, HEARTBEAT)
        try:
            self.transport.publish(encode_message(message))
        except Exception:
            self.publish_errors.incr()

    # ------------------------------------------------------------ receiving

    def _receive_loop(self) -> None:
        """Receive until closed; whatever goes wrong counts as a lost connection (never
        a dead thread: a cache whose bus thread died would go on caching, unwarned)."""
        while not self._stopping.is_set():
            try:
                self._receive_until_failure()
            except Exception:
                with contextlib.suppress(Exception):
                    self._lost()
                self._stopping.wait(0.05)

    def _receive_until_failure(self) -> None:
        backoff = 0.01
        while not self._stopping.is_set():
            if not self.connected:
                try:
                    self.transport.subscribe()
                except Exception:
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                backoff = 0.01
                self._resubscribed()
                continue
            try:
                payloads = self.transport.receive(self.heartbeat / 8)
            except BusUnavailable:
                self._lost()
                continue
            now = time.monotonic()
            if payloads:
                self._apply(payloads, now)
            if now - self.tracker.own_seen_at > self.silence:
                self._lost()  # our own heartbeats stopped coming back: we are cut off
                continue
            if self.tracker.silent_origins(now, self.silence):
                self._flush()  # another origin went quiet: its messages may be lost

    def _apply(self, payloads: list[bytes], now: float) -> None:
        flush, drops, counted = self.tracker.sort_out(payloads, now)
        for _ in range(counted):
            self.received.incr()
        if flush:
            self._flush()
            return
        if not drops:
            return
        try:
            keys = [self.to_key(k) for k in drops]
        except Exception:  # a key this cache cannot read: drop everything rather than guess
            self._flush()
            return
        core = self.core
        core.lock.acquire()
        try:
            drop = core.drop
            for key in keys:
                drop(key)
        finally:
            core.lock.release()

    def _flush(self) -> None:
        core = self.core
        with core.lock:
            core.drop_all()
        self.flushes.incr()

    def _lost(self) -> None:
        """The bus connection is gone: serve from the store, install nothing, reconnect."""
        core = self.core
        self.connected = False  # first: whatever fails below, the loop resubscribes
        with core.lock:
            core.installing = False
            core.drop_all()
        self.flushes.incr()
        with contextlib.suppress(Exception):
            self.transport.unsubscribe()

    def _resubscribed(self) -> None:
        """Listening again: what was missed meanwhile is unknown, so flush, then cache again."""
        core = self.core
        self.tracker.reset()
        self.tracker.own_seen_at = time.monotonic()
        with core.lock:
            core.drop_all()
            if not core.closed:
                core.installing = True
        self.flushes.incr()
        self.connected = True


_LIVE: weakref.WeakSet[Coherence] = weakref.WeakSet()
_live_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child has no bus threads: its caches serve from the store, install nothing."""
    global _live_lock
    _live_lock = threading.Lock()
    for coherence in list(_LIVE):
        core = coherence.core
        with core.lock:
            core.installing = False
            core.drop_all()
        coherence._stopping.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

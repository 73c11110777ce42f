"""The invalidation bus, sans I/O: messages, sequence tracking, channel names, transports.

Everything a driver needs to keep several processes coherent, without any
socket: the threaded driver (``_driver.py``) and an asyncio driver reuse it.

A message is one line of ASCII (PostgreSQL's ``NOTIFY`` payload is text)::

    W1 <origin> <first> <last> <kind> [<hex key>,<hex key>,...]

``origin`` names the publishing cache (random per cache), ``first``..``last``
the range of that origin's sequence numbers the message carries (several
writes may travel in one message), and ``kind`` is

- ``K``: these keys were written or removed; drop them;
- ``H``: heartbeat; ``last`` is the origin's latest sequence number;
- ``F``: drop everything (a batch too large for one message);
- ``T``: keys written inside the store's own transaction (the PostgreSQL store,
  or a table trigger): not sequenced, since the database delivers them with
  the commit and never without it; with no keys (too many for one payload):
  drop everything.

Keys travel as the store sees them (type-tagged bytes, ``Encoding.wire_key``),
hex-encoded.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError, WriteThroughError

__all__ = [
    "FLUSH",
    "HEARTBEAT",
    "KEYS",
    "TRANSACTIONAL",
    "BusTransport",
    "BusUnavailable",
    "ConnectionPair",
    "Message",
    "SequenceTracker",
    "Verdict",
    "check_channel",
    "close_quietly",
    "decode_message",
    "default_channel",
    "encode_message",
    "fits",
    "mask_password",
    "new_origin",
]

KEYS = "K"
HEARTBEAT = "H"
FLUSH = "F"
TRANSACTIONAL = "T"
_KINDS = frozenset({KEYS, HEARTBEAT, FLUSH, TRANSACTIONAL})
_MAGIC = "W1"
_CHANNEL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
_MAX_CHANNEL = 63  # PostgreSQL identifiers; NATS and Redis accept these too


class BusUnavailable(WriteThroughError):
    """The bus connection could not be made or was lost (the driver reconnects)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One bus message (see the module docstring for the wire format)."""

    origin: str
    first: int
    last: int
    kind: str
    keys: tuple[bytes, ...] = ()


def mask_password(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def close_quietly(*things: Any) -> None:
    """Close each connection given (None skipped), ignoring failures: it is being dropped."""
    for thing in things:
        if thing is not None:
            with contextlib.suppress(Exception):
                thing.close()


def new_origin() -> str:
    """A random origin id: 16 hex digits, distinct per cache and per process."""
    return os.urandom(8).hex()


def encode_message(message: Message) -> bytes:
    """The wire form of ``message`` (ASCII)."""
    head = f"{_MAGIC} {message.origin} {message.first} {message.last} {message.kind}"
    if not message.keys:
        return head.encode("ascii")
    return (head + " " + ",".join(map(bytes.hex, message.keys))).encode("ascii")


def decode_message(payload: bytes | str) -> Message | None:
    """Parse a wire message; ``None`` for anything that is not one (it is ignored)."""
    try:
        text = payload.decode("ascii") if isinstance(payload, bytes) else payload
        parts = text.split(" ")
        if len(parts) not in (5, 6) or parts[0] != _MAGIC or parts[4] not in _KINDS:
            return None
        keys: tuple[bytes, ...] = ()
        if len(parts) == 6 and parts[5]:
            keys = tuple(bytes.fromhex(item) for item in parts[5].split(","))
        return Message(parts[1], int(parts[2]), int(parts[3]), parts[4], keys)
    except (UnicodeDecodeError, ValueError):
        return None


def message_size(keys: Iterable[bytes]) -> int:
    """Bytes the keys take in a message (hex plus separators), for payload limits."""
    keys = keys if isinstance(keys, list | tuple | dict) else list(keys)
    return 2 * sum(map(len, keys)) + len(keys)


#: the fixed part of a message: magic, origin, two 20-digit numbers, kind, spaces
HEADER_BYTES = 2 + 1 + 16 + 1 + 20 + 1 + 20 + 1 + 1 + 1


def fits(keys: Iterable[bytes], max_payload: int) -> bool:
    """Whether one message can carry ``keys`` (else a flush message goes instead)."""
    return HEADER_BYTES + message_size(keys) <= max_payload


def check_channel(channel: object) -> str:
    """Refuse channel names some bus would refuse (one rule for every bus)."""
    if (
        not isinstance(channel, str)
        or len(channel) > _MAX_CHANNEL
        or not _CHANNEL_RE.fullmatch(channel)
    ):
        raise ConfigError(
            f"invalid bus channel {channel!r}: use 1 to {_MAX_CHANNEL} ASCII letters, digits, "
            "'_' or '-', in dot-separated parts (e.g. 'app.users')"
        )
    return channel


def default_channel(identity: str) -> str:
    """The channel for a store: the same for every cache over the same data."""
    import hashlib

    return "writethrough." + hashlib.sha256(identity.encode()).hexdigest()[:20]


class Verdict:
    """What a received message asks of the cache."""

    IGNORE = 0  # own message, a stale duplicate, or nothing to do
    DROP = 1  # drop the message's keys
    FLUSH = 2  # drop everything: a gap, or a flush message


class SequenceTracker:
    """Per-origin sequence numbers: which messages arrived in order, and where a gap is.

    The first message seen from an origin sets its baseline; afterwards each
    sequenced message must continue exactly where the last ended, and a
    heartbeat must not announce a sequence number beyond the last one seen.
    Anything else means a message was lost: the whole cache is flushed.
    """

    def __init__(self, own_origin: str) -> None:
        self.own = own_origin
        self._own_prefix = f"{_MAGIC} {own_origin} ".encode()
        self._last: dict[str, int] = {}
        self._heard: dict[str, float] = {}
        self.own_seen_at = 0.0  # when our own message last came back (the liveness probe)

    def reset(self) -> None:
        """Forget every origin (after a reconnect: the baseline restarts)."""
        self._last.clear()
        self._heard.clear()

    def observe(self, message: Message, now: float) -> int:
        """The verdict for ``message`` received at ``now`` (monotonic seconds)."""
        origin = message.origin
        if origin == self.own:
            self.own_seen_at = now
            return Verdict.IGNORE
        kind = message.kind
        if kind == TRANSACTIONAL:
            return Verdict.DROP if message.keys else Verdict.FLUSH
        self._heard[origin] = now
        last = self._last.get(origin)
        if kind == HEARTBEAT:
            if last is None or message.last > last:
                self._last[origin] = message.last
                return Verdict.IGNORE if last is None else Verdict.FLUSH
            return Verdict.IGNORE
        if last is not None and message.last <= last:
            return Verdict.IGNORE  # already covered (a duplicate)
        self._last[origin] = message.last
        if kind == FLUSH or (last is not None and message.first != last + 1):
            return Verdict.FLUSH
        return Verdict.DROP

    def sort_out(self, payloads: Iterable[bytes], now: float) -> tuple[bool, list[bytes], int]:
        """What a batch of received payloads asks: (flush everything?, keys to drop,
        messages from others that counted). Our own messages only prove the bus works."""
        own = self._own_prefix
        flush = False
        drops: list[bytes] = []
        counted = 0
        for payload in payloads:
            if payload.startswith(own):  # cheap: every message we send comes back
                self.own_seen_at = now
                continue
            message = decode_message(payload)
            if message is None:
                continue
            verdict = self.observe(message, now)
            if verdict == Verdict.IGNORE:
                continue
            counted += 1
            if verdict == Verdict.FLUSH:
                flush = True
            else:
                drops.extend(message.keys)
        return flush, drops, counted

    def silent_origins(self, now: float, silence: float) -> bool:
        """Whether an origin went quiet for ``silence`` seconds (it is then forgotten).

        Every live origin sends a heartbeat each interval; one that stops may have
        lost its bus connection while it kept writing, so its silence flushes
        (a cache that closed costs its peers one flush).
        """
        horizon = now - silence
        quiet = [o for o, t in self._heard.items() if t < horizon]
        for origin in quiet:
            del self._heard[origin]
            self._last.pop(origin, None)
        return bool(quiet)


class ConnectionPair:
    """What the client-library buses share: one publishing and one listening connection."""

    name = "bus"
    _publisher: Any = None
    _listener: Any = None

    def _publish_failed(self, exc: BaseException) -> BusUnavailable:
        """Drop the publishing connection (the next publish reconnects); the error to raise."""
        publisher, self._publisher = self._publisher, None
        close_quietly(publisher)
        return BusUnavailable(f"{self.name}: publish failed: {exc}")

    def unsubscribe(self) -> None:
        listener, self._listener = self._listener, None
        close_quietly(listener)

    def close(self) -> None:
        self.unsubscribe()
        publisher, self._publisher = self._publisher, None
        close_quietly(publisher)


class BusTransport(Protocol):
    """One message system: publish bytes on a channel and receive what is published there.

    ``publish`` is called only from the publishing thread, ``subscribe`` /
    ``receive`` / ``unsubscribe`` only from the receiving thread; each side
    keeps its own connection and (re)connects lazily. Every failure is
    ``BusUnavailable``.
    """

    #: largest message the system carries
    max_payload: int
    #: where it is, for messages (no password)
    name: str

    def check(self) -> None:
        """Connect once to see that the bus is reachable (``BusUnavailable`` if not)."""

    def publish(self, payload: bytes) -> None:
        """Send one message."""

    def subscribe(self) -> None:
        """(Re)connect the listener; return once the subscription is active."""

    def receive(self, timeout: float) -> list[bytes]:
        """Messages received within ``timeout`` seconds (maybe none)."""
        ...

    def unsubscribe(self) -> None:
        """Drop the listening connection (it is broken, or the bus is closing)."""

    def close(self) -> None:
        """Release every connection."""

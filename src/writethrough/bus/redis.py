"""The Redis bus: ``PUBLISH`` / ``SUBSCRIBE`` on one channel (redis-py, the ``[redis]`` extra).

With ``?tracking=true`` on the bus URL and a ``RedisStore`` on the same server
and database, the listening connection also asks Redis itself to report every
change under the store's key prefix (server-assisted invalidation: ``CLIENT
TRACKING ON REDIRECT <itself> BCAST PREFIX <prefix>`` on a RESP2 connection,
delivered on ``__redis__:invalidate``): then writes made by any Redis client,
not only by caches, invalidate. The tracking state lives and dies with that one
connection, which the driver watches anyway.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ConfigError
from .base import (
    TRANSACTIONAL,
    BusUnavailable,
    ConnectionPair,
    Message,
    encode_message,
    mask_password,
)

__all__ = ["RedisBus"]

_ERRORS = (redis.RedisError, OSError)
_MAX_UNREAD = 256  # at this many unread replies, publish reads them
_READ_SIZE = 1 << 16
_INVALIDATE = b"__redis__:invalidate"
_TRUE = ("1", "true", "yes", "on")


class RedisBus(ConnectionPair):
    """Redis pub/sub on ``channel``: one connection publishes, one listens.

    Pub/sub delivers at most once and only to connected listeners: a message
    sent while the listener reconnects is lost, which the driver covers (it
    flushes on every resubscription and on any sequence gap).
    """

    max_payload = 1 << 20  # Redis takes 512 MB; a bigger batch flushes rather than ships MBs
    tracking_prefix: str | None = None

    def __init__(self, url: str, channel: str, *, connect_timeout: float = 2.0) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.tracking = any(k == "tracking" and v.lower() in _TRUE for k, v in query)
        kept = urlencode([(k, v) for k, v in query if k != "tracking"])
        url = parts._replace(query=kept).geturl()
        self.url = url
        self.channel = channel
        self.name = f"redis bus {mask_password(url)} channel {channel!r}"
        self.client_name = f"writethrough-bus-{os.getpid()}"  # CLIENT LIST shows who listens
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": 5.0,
            # no silent reconnection: the driver must know, to flush (and the
            # tracking state of a connection dies with it)
            "retry": Retry(NoBackoff(), 0),
        }
        self._publisher: redis.Redis | None = None
        self._connection: Any = None  # the publisher's one connection
        self._unread = 0  # PUBLISH replies not read yet
        name = channel.encode()
        self._publish_head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(name), name)
        self._connection_sub: Any = None  # the listener's one connection
        self._listener: redis.Redis | None = None
        self._raw: tuple[Any, Any] | None = None  # (socket, hiredis reader) of the listener
        self._timeout: float | None = None  # the listener socket's timeout now

    def _client(self, role: str = "pub") -> redis.Redis:
        name = f"{self.client_name}-{role}"
        options = dict(self._options)
        if role == "sub":
            # RESP2: messages (and invalidations, on __redis__:invalidate) arrive as
            # plain replies, which ``receive`` parses itself (on RESP3, redis-py
            # consumes invalidation pushes itself)
            options["protocol"] = 2
        return redis.Redis.from_url(self.url, client_name=name, **options)

    def check(self) -> None:
        try:
            client = self._client()
            try:
                client.ping()
            finally:
                client.close()
        except _ERRORS as exc:
            raise BusUnavailable(f"{self.name}: cannot connect: {exc}") from exc

    def publish(self, payload: bytes) -> None:
        """Send ``PUBLISH`` without waiting for its reply (read later, when it is there).

        A round trip per message would cost the writing process's threads a
        Redis round trip of GIL hand-offs per put; replies are only counts of
        listeners. A connection that breaks after a send loses that message,
        which the sequence numbers reveal to every listener (they flush).
        """
        try:
            conn = self._connection
            if conn is None:
                self._publisher = self._client()
                conn = self._connection = self._publisher.connection_pool.get_connection()
            unread = self._unread
            if unread >= _MAX_UNREAD:
                # read the replies in bulk, long since there: polling the socket for
                # them on every publish cost a system call (and a GIL hand-off) each
                for _ in range(unread):
                    conn.read_response()
                unread = 0
            # packed here (redis-py's general packing cost twice the whole send)
            head = self._publish_head
            conn.send_packed_command(
                [b"%s$%d\r\n%s\r\n" % (head, len(payload), payload)], check_health=False
            )
            self._unread = unread + 1
        except _ERRORS as exc:
            self._connection = None
            self._unread = 0
            raise self._publish_failed(exc) from exc

    def bind_store(self, store: Any, origin: str) -> bool:
        """With ``tracking``: follow the ``RedisStore``'s key prefix (same server and db)."""
        if not self.tracking:
            return False
        prefix = getattr(store, "prefix", None)
        identity = getattr(store, "identity", "")
        if not isinstance(prefix, str) or _where(identity.split("#", 1)[0]) != _where(self.url):
            raise ConfigError(
                f"{self.name}: tracking=true follows a RedisStore's keys; it needs a redis:// "
                "store on the same Redis server and database as the bus"
            )
        self.tracking_prefix = prefix
        return False  # caches still publish their own writes (and heartbeats)

    def subscribe(self) -> None:
        self.unsubscribe()
        try:
            self._listener = listener = self._client("sub")
            conn: Any = listener.connection_pool.get_connection()
            self._connection_sub = conn
            channels = [self.channel]
            if self.tracking_prefix is not None:
                # tracking goes on the listening connection itself, before it subscribes
                conn.send_command("CLIENT", "ID")
                own_id = conn.read_response()
                conn.send_command(
                    "CLIENT",
                    "TRACKING",
                    "ON",
                    "REDIRECT",
                    own_id,
                    "BCAST",
                    "PREFIX",
                    self.tracking_prefix,
                )
                conn.read_response()
                channels.append(_INVALIDATE.decode())
            conn.send_command("SUBSCRIBE", *channels)
            # from here on the connection is read directly (see ``receive``): redis-py
            # has read every reply it asked for, so nothing sits in its parser
            self._raw = (conn._sock, hiredis.Reader())
            # wait for the confirmations: from then on nothing published is missed
            confirmed = 0
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                for reply in self._replies(0.1):
                    if isinstance(reply, list) and reply and reply[0] == b"subscribe":
                        confirmed += 1
                if confirmed == len(channels):
                    return
        except (*_ERRORS, BusUnavailable) as exc:
            self.unsubscribe()
            raise BusUnavailable(f"{self.name}: subscribe failed: {exc}") from exc
        self.unsubscribe()
        raise BusUnavailable(f"{self.name}: no subscription confirmation within 5 s")

    def _replies(self, timeout: float) -> list[Any]:
        """The replies on the listening connection: those already read, else what one
        ``recv`` (waiting up to ``timeout`` seconds) brings; maybe none."""
        raw = self._raw
        if raw is None:
            raise BusUnavailable(f"{self.name}: not subscribed")
        sock, reader = raw
        try:
            reply = reader.gets()
            if reply is False:
                if self._timeout != timeout:
                    sock.settimeout(timeout)
                    self._timeout = timeout
                try:
                    data = sock.recv(_READ_SIZE)
                except TimeoutError:
                    return []
                if not data:
                    raise BusUnavailable(f"{self.name}: connection closed by the server")
                reader.feed(data)
                reply = reader.gets()
            replies = []
            while reply is not False:
                if isinstance(reply, Exception):
                    raise BusUnavailable(f"{self.name}: error reply on the listener: {reply}")
                replies.append(reply)
                reply = reader.gets()
        except (*_ERRORS, hiredis.ProtocolError) as exc:
            raise BusUnavailable(f"{self.name}: connection lost: {exc}") from exc
        return replies

    def receive(self, timeout: float) -> list[bytes]:
        """Messages within ``timeout`` seconds, read straight from the socket.

        Every message a cache publishes comes back to it (its liveness probe), so a
        writing process receives one per message it sends: redis-py's
        ``PubSub.get_message`` (a poll, then per reply a readiness check, a
        dict) cost the writer's process tens of microseconds of GIL per message;
        this is one ``recv`` and hiredis's C parser.
        """
        out: list[bytes] = []
        for reply in self._replies(timeout):
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                if reply[1] == _INVALIDATE:
                    message = self._invalidated(reply[2])
                    if message is not None:
                        out.append(message)
                else:
                    out.append(reply[2])
        return out

    def _invalidated(self, keys: Any) -> bytes | None:
        """A Redis invalidation as a bus message: the store keys, or (no list: FLUSHDB) all."""
        prefix = (self.tracking_prefix or "").encode()
        if not isinstance(keys, list):
            return encode_message(Message("redis", 0, 0, TRANSACTIONAL))
        n = len(prefix)
        found = tuple(k[n:] for k in keys if isinstance(k, bytes) and k.startswith(prefix))
        return encode_message(Message("redis", 0, 0, TRANSACTIONAL, found)) if found else None

    def unsubscribe(self) -> None:
        self._raw = None
        self._timeout = None
        conn, self._connection_sub = self._connection_sub, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()
        super().unsubscribe()

    def close(self) -> None:
        self._connection = None
        self._unread = 0
        super().close()


def _where(url: str) -> tuple[str, int, int]:
    """(host, port, db) of a redis:// URL or store identity, for "same database" checks."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if host == "localhost":
        host = "127.0.0.1"
    path = parts.path.strip("/")
    return host, parts.port or 6379, int(path) if path.isdigit() else 0

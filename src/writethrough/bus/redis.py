"""The Redis bus: ``PUBLISH`` / ``SUBSCRIBE`` on one channel (redis-py, the ``[redis]`` extra)."""

from __future__ import annotations

import os
from typing import Any

import redis

from .base import BusUnavailable, ConnectionPair, close_quietly, mask_password

__all__ = ["RedisBus"]

_ERRORS = (redis.RedisError, OSError)
_MAX_UNREAD = 256  # past this many unread replies, publish waits for them


class RedisBus(ConnectionPair):
    """Redis pub/sub on ``channel``: one connection publishes, one listens.

    Pub/sub delivers at most once and only to connected listeners: a message
    sent while the listener reconnects is lost, which the driver covers (it
    flushes on every resubscription and on any sequence gap).
    """

    max_payload = 1 << 20  # Redis takes 512 MB; a bigger batch flushes rather than ships MBs
    tracking_prefix: str | None = None

    def __init__(self, url: str, channel: str, *, connect_timeout: float = 2.0) -> None:
        self.url = url
        self.channel = channel
        self.name = f"redis bus {mask_password(url)} channel {channel!r}"
        self.client_name = f"writethrough-bus-{os.getpid()}"  # CLIENT LIST shows who listens
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": 5.0,
        }
        self._publisher: redis.Redis | None = None
        self._connection: Any = None  # the publisher's one connection
        self._unread = 0  # PUBLISH replies not read yet
        self._pubsub: Any = None
        self._listener: redis.Redis | None = None

    def _client(self, role: str = "pub") -> redis.Redis:
        name = f"{self.client_name}-{role}"
        return redis.Redis.from_url(self.url, client_name=name, **self._options)

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
            while unread and (unread > _MAX_UNREAD or conn.can_read(timeout=0)):
                conn.read_response()
                unread -= 1
            conn.send_command("PUBLISH", self.channel, payload)
            self._unread = unread + 1
        except _ERRORS as exc:
            self._connection = None
            self._unread = 0
            raise self._publish_failed(exc) from exc

    def subscribe(self) -> None:
        self.unsubscribe()
        try:
            self._listener = self._client("sub")
            pubsub = self._listener.pubsub()
            self._pubsub = pubsub
            pubsub.subscribe(self.channel)
            # wait for the confirmation: from then on nothing published is missed
            for _ in range(50):
                reply = pubsub.get_message(timeout=0.1)
                if reply is not None and reply.get("type") == "subscribe":
                    return
        except _ERRORS as exc:
            self.unsubscribe()
            raise BusUnavailable(f"{self.name}: subscribe failed: {exc}") from exc
        self.unsubscribe()
        raise BusUnavailable(f"{self.name}: no subscription confirmation within 5 s")

    def receive(self, timeout: float) -> list[bytes]:
        pubsub = self._pubsub
        if pubsub is None:
            raise BusUnavailable(f"{self.name}: not subscribed")
        out: list[bytes] = []
        try:
            reply = pubsub.get_message(timeout=timeout)
            while reply is not None:
                if reply.get("type") == "message":
                    out.append(reply["data"])
                reply = pubsub.get_message(timeout=0.0)
        except _ERRORS as exc:
            raise BusUnavailable(f"{self.name}: connection lost: {exc}") from exc
        return out

    def unsubscribe(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        close_quietly(pubsub)
        super().unsubscribe()

    def close(self) -> None:
        self._connection = None
        self._unread = 0
        super().close()

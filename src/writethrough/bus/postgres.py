"""The PostgreSQL bus: ``LISTEN`` / ``NOTIFY`` on one channel (psycopg 3, the ``[postgres]`` extra).

With a ``PostgresStore`` in the same database, writes notify inside their own
transaction (``PostgresStore.notify_writes``): a committed write always
notifies, a rolled-back one never does, and nothing is published separately.
``writethrough bus install-trigger`` makes writes by other programs notify too.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from .base import BusUnavailable, ConnectionPair, mask_password

__all__ = ["PostgresBus"]


class PostgresBus(ConnectionPair):
    """``NOTIFY`` on a publishing connection, ``LISTEN`` on a listening one (both autocommit).

    The database delivers a notification to every session listening when the
    transaction commits; a session that reconnects misses what was sent
    meanwhile, which the driver covers by flushing on every resubscription.
    """

    max_payload = 7999  # NOTIFY's limit is 8000 bytes

    def __init__(self, url: str, channel: str, *, connect_timeout: float = 2.0) -> None:
        self.url = url
        self.channel = channel
        self.name = f"postgresql bus {mask_password(url)} channel {channel!r}"
        self.app_name = f"writethrough-bus-{os.getpid()}"  # pg_stat_activity shows who listens
        self._connect_timeout = max(2, int(connect_timeout))
        self._publisher: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None

    def _connect(self, role: str) -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(
            self.url,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name=f"{self.app_name}-{role}",
        )

    def check(self) -> None:
        try:
            self._connect("check").close()
        except psycopg.Error as exc:
            raise BusUnavailable(f"{self.name}: cannot connect: {exc}") from exc

    def bind_store(self, store: Any, origin: str) -> bool:
        """Let a ``PostgresStore`` in the same database notify inside its own writes."""
        hook = getattr(store, "notify_writes", None)
        if not callable(hook) or _database(store.identity) != _database(self.url):
            return False
        hook(self.channel, origin)
        return True

    def publish(self, payload: bytes) -> None:
        try:
            if self._publisher is None or self._publisher.closed:
                self._publisher = self._connect("pub")
            self._publisher.execute("SELECT pg_notify(%s, %s)", (self.channel, payload.decode()))
        except psycopg.Error as exc:
            raise self._publish_failed(exc) from exc

    def subscribe(self) -> None:
        self.unsubscribe()
        try:
            conn = self._connect("sub")
            self._listener = conn
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            self.unsubscribe()
            raise BusUnavailable(f"{self.name}: subscribe failed: {exc}") from exc

    def receive(self, timeout: float) -> list[bytes]:
        conn = self._listener
        if conn is None:
            raise BusUnavailable(f"{self.name}: not subscribed")
        out: list[bytes] = []
        try:
            for note in conn.notifies(timeout=timeout, stop_after=1):
                out.append(note.payload.encode())
            if out:  # the rest of what has arrived, without waiting
                for note in conn.notifies(timeout=0.0):
                    out.append(note.payload.encode())
        except psycopg.Error as exc:
            raise BusUnavailable(f"{self.name}: connection lost: {exc}") from exc
        if conn.closed or conn.broken:
            raise BusUnavailable(f"{self.name}: connection lost")
        return out


def _database(url: str) -> tuple[str, int, str]:
    """(host, port, database) a URL or store identity names, for "same database" checks."""
    parts = urlsplit(url.split("#", 1)[0])
    host = parts.hostname or "localhost"
    if host == "localhost":
        host = "127.0.0.1"
    return host, parts.port or 5432, unquote(parts.path.lstrip("/"))


_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,62}"


def trigger_sql(table: str, channel: str, *, remove: bool = False) -> str:
    """SQL that makes every write to ``table`` (``schema.name``) notify ``channel``.

    Row triggers send the bus's ``T`` message for the old and the new key (a key
    too long for NOTIFY's 8000-byte payload sends a flush instead); ``TRUNCATE``
    sends a flush. ``remove=True``: the SQL that takes them away again.
    """
    import re

    from .base import check_channel

    check_channel(channel)
    if not re.fullmatch(rf"{_IDENT}\.{_IDENT}", table):
        from ..errors import ConfigError

        raise ConfigError(f"table must be schema.name (plain identifiers); got {table!r}")
    schema, name = table.split(".")
    target = f'"{schema}"."{name}"'
    function = f'"{schema}"."writethrough_notify"'
    if remove:
        return (
            f"DROP TRIGGER IF EXISTS writethrough_notify ON {target};\n"
            f"DROP TRIGGER IF EXISTS writethrough_notify_truncate ON {target};\n"
        )
    return f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $wt$
DECLARE
  message text := 'W1 sql 0 0 T';
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify(TG_ARGV[0], message);
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify(TG_ARGV[0], CASE WHEN octet_length(OLD.key) > 3900 THEN message
                                       ELSE message || ' ' || encode(OLD.key, 'hex') END);
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.key IS DISTINCT FROM OLD.key) THEN
    PERFORM pg_notify(TG_ARGV[0], CASE WHEN octet_length(NEW.key) > 3900 THEN message
                                       ELSE message || ' ' || encode(NEW.key, 'hex') END);
  END IF;
  RETURN NULL;
END
$wt$;
DROP TRIGGER IF EXISTS writethrough_notify ON {target};
CREATE TRIGGER writethrough_notify AFTER INSERT OR UPDATE OR DELETE ON {target}
  FOR EACH ROW EXECUTE FUNCTION {function}('{channel}');
DROP TRIGGER IF EXISTS writethrough_notify_truncate ON {target};
CREATE TRIGGER writethrough_notify_truncate AFTER TRUNCATE ON {target}
  FOR EACH STATEMENT EXECUTE FUNCTION {function}('{channel}');
"""

"""``PostgresStore``: a byte store in one PostgreSQL table, over a psycopg 3 connection pool.

Durable on return: every single write is one autocommit statement, so it is
committed (and flushed, under the server's default ``synchronous_commit=on``)
before ``store`` returns. Batches are one statement (one transaction) each.
Many threads share a ``psycopg_pool.ConnectionPool``; a forked child opens its
own pool on first use and never touches its parent's sockets.

Lost connections (server restart, ``pg_terminate_backend``, idle timeouts): a
write first checks that the server has not already spoken on its idle
connection (a closed connection is readable) and, if it has, takes another one;
nothing was sent, so nothing can be applied twice. A write cut off after it was
sent raises ``StoreUnavailable`` (the store may or may not hold it) and is never
re-sent. A read cut off is retried once, after the idle connections are tested.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from ..errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
    WriteThroughError,
)
from .base import BytesStore
from .base import batch_item_key as _key_of

__all__ = ["PostgresStore", "from_url"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL would silently truncate longer names
_CHUNK_BYTES = 64 << 20  # values per INSERT statement; one bytea[] datum must stay < 1 GB
_BIG = 1 << 20  # a reused cursor holding a value this large is replaced (frees the memory)
_RECONNECT_TIMEOUT = 10.0  # the pool's reconnect backoff gives up (and restarts on demand) after
_POOL_ERRORS = (PoolTimeout, PoolClosed, TooManyRequests)
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now
_SECRET_KEYS = ("password", "sslpassword", "oauth_client_secret")


class _Connection(psycopg.Connection[tuple[Any, ...]]):
    """A pooled connection with a reusable cursor and a readiness probe (see ``_configure``)."""

    wt_cursor: psycopg.Cursor[tuple[Any, ...]]
    wt_readable: Callable[[], bool]


def _configure(conn: _Connection) -> None:
    """Attach a binary cursor (reused: no cursor per call) and a zero-timeout readability probe."""
    conn.wt_cursor = conn.cursor(binary=True)
    fd = conn.pgconn.socket
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        conn.wt_readable = lambda: bool(poller.poll(0))
    else:  # pragma: no cover - Windows
        conn.wt_readable = lambda: bool(select.select((fd,), (), (), 0)[0])


class PostgresStore(BytesStore):
    """A byte store in one table: ``(key bytea PRIMARY KEY, value bytea NOT NULL)``.

    ``conninfo`` is a libpq URL or ``key=value`` string (a password in it is never
    shown). ``table`` is ``name`` or ``schema.name`` (ASCII letters, digits,
    underscores; case-sensitive); it is created when missing, and an existing
    table without those columns is refused with ``ConfigError``. ``pool_size`` and
    ``pool_min`` bound the pool; ``connect_timeout`` (seconds) bounds opening
    connections; ``timeout`` is how long a call waits for a pooled connection
    before ``StoreUnavailable``. ``prepare=False`` disables server-side prepared
    statements (for poolers such as PgBouncer in transaction mode).

    Keys longer than about 2.7 kB are refused by the primary-key index
    (``StoreWriteError``).
    """

    #: ``store_many`` is one transaction, so a writer queue can group puts into it
    supports_group_commit: ClassVar[bool] = True
    #: on by default: a lone writer measured 1.01-1.03x with it (<= 1.05x), and
    #: concurrent writers share commits (benchmarks/group_commit.py)
    group_commit_default: ClassVar[bool] = True

    def __init__(
        self,
        conninfo: str,
        *,
        table: str = "writethrough",
        pool_size: int = 4,
        pool_min: int | None = None,
        connect_timeout: float | None = None,
        timeout: float = 5.0,
        prepare: bool = True,
    ) -> None:
        self._parts = _table_parts(table)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be an integer >= 1; got {pool_size!r}")
        if pool_min is None:
            pool_min = 1
        if (
            isinstance(pool_min, bool)
            or not isinstance(pool_min, int)
            or not (0 <= pool_min <= pool_size)
        ):
            raise ConfigError(
                f"pool_min must be an integer from 0 to pool_size ({pool_size}); got {pool_min!r}"
            )
        if connect_timeout is not None:
            _check_seconds("connect_timeout", connect_timeout)
        _check_seconds("timeout", timeout)
        if not isinstance(prepare, bool):
            raise ConfigError(f"prepare must be True or False; got {prepare!r}")
        if not isinstance(conninfo, str):
            raise ConfigError(f"conninfo must be a libpq URL or DSN string; got {type(conninfo)}")
        params = _parse_conninfo(conninfo)
        self._secrets = [params[k] for k in _SECRET_KEYS if len(params.get(k) or "") >= 3]
        if connect_timeout is None:
            connect_timeout = _libpq_seconds(params.get("connect_timeout")) or 5.0
        params["connect_timeout"] = str(max(2, math.ceil(connect_timeout)))  # libpq's minimum
        params.setdefault("fallback_application_name", "writethrough")
        self._conninfo = make_conninfo("", **params)
        self._pool_size = pool_size
        self._pool_min = pool_min
        self._connect_timeout = float(connect_timeout)
        self._timeout = float(timeout)
        self._prepare = prepare
        self._server = _server_url(
            params.get("user"), params.get("host"), params.get("port"), params.get("dbname")
        )
        self._table = ".".join(self._parts)
        self._identity = f"{self._server}#{self._table}"

        self._lock = threading.Lock()
        self._pool: ConnectionPool[_Connection] | None = None
        self._setup()  # connect once, create or check the table, compose the statements
        try:
            self._pool = self._new_pool()
        except BaseException:
            self._closed = True
            raise
        _LIVE_STORES.add(self)

    # -- setup
    def _setup(self) -> None:
        """Create the table if missing, check its columns, and fix the statements' text."""
        try:
            conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"{self._identity}: cannot connect to PostgreSQL: {self._scrub(exc)} (check that "
                "the server is running and reachable there, and the user, password and "
                "database name)"
            ) from exc
        try:
            with conn:
                info = conn.info
                self._server = _server_url(info.user, info.host, str(info.port), info.dbname)
                self._identity = f"{self._server}#{self._table}"
                self._durability = _describe_durability(
                    conn.execute("SHOW synchronous_commit").fetchone(),
                    conn.execute("SHOW fsync").fetchone(),
                )
                schema, name = self._ensure_table(conn)
                self._table = f"{schema}.{name}"
                self._identity = f"{self._server}#{self._table}"
                self._compose(conn, sql.Identifier(schema, name))
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None)
            if state in ("42501", "3F000", "25006"):  # no privilege, no schema, read-only server
                raise ConfigError(
                    f"{self._identity}: cannot create table {self._table!r} ({self._scrub(exc)}); "
                    "create it first, or choose a schema where this user may create tables"
                ) from exc
            raise self._error(exc, "setting up the table", write=False) from exc

    def _ensure_table(self, conn: psycopg.Connection[Any]) -> tuple[str, str]:
        found = _find_table(conn, self._parts)
        if found is None:
            ddl = sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, value bytea NOT NULL)"
            ).format(sql.Identifier(*self._parts))
            # Concurrent CREATE TABLE IF NOT EXISTS of one name can still fail on the
            # pg_type row ("type ... already exists"): creators of one name take an
            # advisory lock for the transaction, and a creator outside it is tolerated.
            lock = sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
                sql.Literal(".".join(self._parts))
            )
            with (
                contextlib.suppress(
                    pg_errors.UniqueViolation, pg_errors.DuplicateTable, pg_errors.DuplicateObject
                ),
                conn.transaction(),
            ):
                conn.execute(lock)
                conn.execute(ddl)
            found = _find_table(conn, self._parts)
            if found is None:
                raise StoreError(f"{self._identity}: the table vanished right after creation")
        oid, schema, name, kind = found
        problem = _shape_problem(conn, oid, kind)
        if problem:
            raise ConfigError(
                f"{self._server}#{schema}.{name}: existing table cannot be used ({problem}); it "
                "needs key bytea PRIMARY KEY and value bytea NOT NULL: choose another table"
            )
        return schema, name

    def _compose(self, conn: psycopg.Connection[Any], q: sql.Identifier) -> None:
        def text(template: str) -> bytes:
            return sql.SQL(template).format(q).as_bytes(conn)

        self._sql_load = text("SELECT value FROM {} WHERE key = %s")
        self._sql_store = text(
            "INSERT INTO {} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self._sql_remove = text("DELETE FROM {} WHERE key = %s")
        self._sql_load_many = text("SELECT key, value FROM {} WHERE key = ANY(%s::bytea[])")
        self._sql_store_many = text(
            "INSERT INTO {} (key, value) SELECT * FROM unnest(%s::bytea[], %s::bytea[]) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        self._sql_remove_many = text("DELETE FROM {} WHERE key = ANY(%s::bytea[]) RETURNING key")

    # -- the pool
    def _new_pool(self) -> ConnectionPool[_Connection]:
        """Open a pool and wait for its first connections; failure leaves no thread running."""
        pool: ConnectionPool[_Connection] = ConnectionPool(
            self._conninfo,
            connection_class=_Connection,
            kwargs={"autocommit": True},
            min_size=self._pool_min,
            max_size=self._pool_size,
            open=False,
            configure=_configure,
            name=f"writethrough:{self._table}",
            timeout=self._timeout,
            reconnect_timeout=_RECONNECT_TIMEOUT,
        )
        try:
            pool.open(wait=True, timeout=self._connect_timeout)
        except BaseException as exc:
            pool.close()
            if isinstance(exc, psycopg.Error):
                raise StoreUnavailable(
                    f"{self._identity}: could not open {self._pool_min} pooled connection(s) "
                    f"within {self._connect_timeout:g} s: {self._scrub(exc)}"
                ) from exc
            raise
        return pool

    def _live_pool(self) -> ConnectionPool[_Connection]:
        """The slow path of every call: refuse when closed, else open a pool (after a fork)."""
        with self._lock:
            self._check_open()
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _prune(self, pool: ConnectionPool[_Connection]) -> None:
        """After a lost connection, test the idle ones so dead siblings are replaced now."""
        with contextlib.suppress(Exception):
            pool.check()

    def _fresh(self, pool: ConnectionPool[_Connection], conn: _Connection) -> _Connection:
        """Swap a connection the server already spoke on (it closed it) for a working one.

        Nothing was sent on it, so using another connection cannot apply a write twice.
        On failure nothing is left checked out.
        """
        for attempt in range(self._pool_size + 1):
            with contextlib.suppress(Exception):
                conn.close()
            pool.putconn(conn)  # a closed connection is discarded and replaced by the pool
            if attempt == 0:
                self._prune(pool)
            conn = pool.getconn()
            if not conn.wt_readable():
                return conn
        with contextlib.suppress(Exception):
            conn.close()
        pool.putconn(conn)
        raise psycopg.OperationalError("every pooled connection was closed by the server")

    def _after_fork_in_child(self) -> None:
        """Forget the parent's pool: its threads are gone and its sockets are the parent's.

        The pool is kept referenced and marked closed, never closed: closing would
        send Terminate on the parent's sockets. A new pool opens on first use.
        """
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._closed = True  # its __del__ must not touch the parent's threads' queues
            _INHERITED.append(pool)
        self._lock = threading.Lock()

    def _close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- errors
    def _scrub(self, exc: BaseException | str) -> str:
        """Driver text with the password (and other secrets of the conninfo) masked."""
        text = str(exc).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: BaseException, action: str, *, write: bool) -> WriteThroughError:
        """Map a psycopg or pool exception into the writethrough tree (the caller chains it)."""
        if self._closed:
            return CacheClosed(f"{self._identity}: store is closed")
        if isinstance(exc, PoolTimeout):
            return StoreUnavailable(
                f"{self._identity}: {action} failed: no connection within {self._timeout:g} s "
                f"(is the server up? are all {self._pool_size} pooled connections busy?)"
            )
        message = f"{self._identity}: {action} failed: {self._scrub(exc) or type(exc).__name__}"
        state = getattr(exc, "sqlstate", None) or ""
        if write and state.startswith("53"):  # disk full, out of memory, ...
            return StoreFull(message)
        if state.startswith("54"):  # program limit: e.g. a key too long for the index
            return StoreWriteError(message) if write else StoreError(message)
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(message)
        return StoreWriteError(message) if write else StoreError(message)

    # -- the store protocol (hot paths: keep them short)
    def load(self, key: bytes) -> bytes | None:
        pool = self._pool
        if pool is None:
            pool = self._live_pool()
        try:
            conn = pool.getconn()
            try:
                row = conn.wt_cursor.execute(
                    self._sql_load, (key,), prepare=self._prepare
                ).fetchone()
                if row is not None and len(row[0]) > _BIG:
                    conn.wt_cursor = conn.cursor(binary=True)  # let the big result go
            finally:
                pool.putconn(conn)
        except psycopg.Error as exc:
            return self._load_again(pool, key, exc)
        return None if row is None else row[0]

    def _load_again(
        self, pool: ConnectionPool[_Connection], key: bytes, exc: psycopg.Error
    ) -> bytes | None:
        """A read whose connection was lost is retried once, on a tested connection."""
        if self._closed or not _lost(exc):
            raise self._error(exc, "load", write=False) from exc
        self._prune(pool)
        try:
            with pool.connection() as conn, conn.cursor(binary=True) as cur:
                row = cur.execute(self._sql_load, (key,), prepare=self._prepare).fetchone()
        except psycopg.Error as again:
            raise self._error(again, "load", write=False) from again
        return None if row is None else row[0]

    def store(self, key: bytes, value: bytes) -> None:
        with self._writing("store") as conn:
            conn.wt_cursor.execute(self._sql_store, (key, value), prepare=self._prepare)
            if len(value) > _BIG:
                conn.wt_cursor = conn.cursor(binary=True)  # it holds the value: let it go

    def remove(self, key: bytes) -> bool:
        with self._writing("remove") as conn:
            cur = conn.wt_cursor.execute(self._sql_remove, (key,), prepare=self._prepare)
            return cur.rowcount > 0

    @contextlib.contextmanager
    def _writing(self, action: str, items: Sequence[Any] | None = None) -> Iterator[_Connection]:
        """The block every write runs in: a live pooled connection, driver errors mapped.

        What a write method runs inside it is that write's one transaction: a single
        statement is its own (autocommit), several go in ``conn.transaction()``.
        Anything that must commit together with a write (a notification, say) joins
        that transaction here. ``items``: the batch, for per-key error reports.
        """
        pool = self._pool
        if pool is None:
            pool = self._live_pool()
        try:
            conn = pool.getconn()
            if conn.wt_readable():
                conn = self._fresh(pool, conn)
            try:
                yield conn
            finally:
                pool.putconn(conn)
        except psycopg.Error as exc:
            if _lost(exc):
                self._prune(pool)
            if items is None:
                raise self._error(exc, action, write=True) from exc
            raise self._batch_error(exc, action, items) from exc

    # -- batches: one statement each (one transaction, one round trip)
    def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """Values of the keys found, in one query (one snapshot)."""
        pool = self._pool
        if pool is None:
            pool = self._live_pool()
        keys = list(keys)
        if not keys:
            return {}
        for attempt in (0, 1):
            try:
                # a cursor of its own: the reused one would keep the whole result alive
                with pool.connection() as conn, conn.cursor(binary=True) as cur:
                    cur.execute(self._sql_load_many, (keys,), prepare=self._prepare)
                    return dict(cur.fetchall())
            except psycopg.Error as exc:
                if attempt or self._closed or not _lost(exc):
                    raise self._error(exc, "load_many", write=False) from exc
                self._prune(pool)  # then retry once
        raise AssertionError("unreachable")  # pragma: no cover

    def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store every pair in one transaction: all applied, or none and ``BatchError``.

        One ``INSERT ... SELECT FROM unnest(keys, values)`` statement: one round trip
        and one commit whatever the batch size (batches over 64 MiB of values are
        split into several such statements, pipelined in one transaction). Keys are written in
        sorted order (concurrent batches never deadlock); a key given twice keeps its
        last value. A writer queue (group commit) puts concurrent writes through here.
        """
        if not items:
            self._check_open()
            return
        try:
            latest = dict(items)
            keys = sorted(latest)
        except (TypeError, ValueError) as exc:
            raise self._batch_error(exc, "store_many", items) from exc
        values = [latest[k] for k in keys]
        with self._writing("store_many", items) as conn:
            self._store_chunks(conn, keys, values)

    def _store_chunks(self, conn: _Connection, keys: list[bytes], values: list[bytes]) -> None:
        size = sum(len(v) if v is not None else 0 for v in values)
        if size <= _CHUNK_BYTES:  # the usual case: one autocommit statement
            with conn.cursor(binary=True) as cur:  # not the reused one: it would keep the values
                cur.execute(self._sql_store_many, (keys, values), prepare=self._prepare)
            return
        # huge: several statements in one transaction, pipelined (sent without waiting)
        with conn.pipeline(), conn.transaction(), conn.cursor(binary=True) as cur:
            start = total = 0
            for end, value in enumerate(values, 1):
                total += len(value) if value is not None else 0
                if total >= _CHUNK_BYTES or end == len(values):
                    cur.execute(self._sql_store_many, (keys[start:end], values[start:end]))
                    start, total = end, 0

    def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """Remove every key in one statement; per key, whether it existed.

        A key repeated in ``keys`` counts as existing once, as a loop would report it.
        """
        keys = list(keys)
        if not keys:
            self._check_open()
            return []
        with self._writing("remove_many", keys) as conn, conn.cursor(binary=True) as cur:
            cur.execute(self._sql_remove_many, (keys,), prepare=self._prepare)
            removed = {row[0] for row in cur.fetchall()}
        existed: list[bool] = []
        for key in keys:
            if key in removed:
                removed.discard(key)
                existed.append(True)
            else:
                existed.append(False)
        return existed

    def _batch_error(
        self, exc: BaseException, action: str, items: Sequence[Any]
    ) -> WriteThroughError:
        """One transaction failed: every key failed, none succeeded (DESIGN rule 9)."""
        error = self._error(exc, action, write=True)
        if isinstance(error, CacheClosed):
            return error
        error.__cause__ = exc
        keys = [_key_of(item) for item in items] if action == "store_many" else list(items)
        return BatchError(
            f"{error} (the whole batch of {len(keys)} was rolled back)",
            dict.fromkeys(keys, error),
            [],
        )

    # -- invalidation bus hook (writethrough.bus.postgres): NOTIFY in each write's transaction
    def notify_writes(self, channel: str, origin: str) -> None:
        """Make every write also ``NOTIFY channel`` with its keys, in the write's own statement.

        A committed write then always notifies and a rolled-back one never does.
        ``channel`` and ``origin`` are checked by the bus (``[A-Za-z0-9_.-]``), so
        they are safe as literals. The payload is the bus's ``T`` message; a batch
        whose keys would pass NOTIFY's 8000-byte limit sends a flush (``T`` with no keys).
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", channel) or not re.fullmatch(
            r"[0-9a-z]{1,32}", origin
        ):
            raise ConfigError(f"invalid bus channel {channel!r} or origin {origin!r}")
        head = f"'W1 {origin} 0 0 T'"
        one = f"SELECT pg_notify('{channel}', {head} || ' ' || encode(key, 'hex')) FROM w"
        many = (
            f"SELECT pg_notify('{channel}', CASE WHEN sum(octet_length(key)) * 2 + count(*) > "
            f"7800 THEN {head} ELSE {head} || ' ' || string_agg(encode(key, 'hex'), ',') END) "
            "FROM w HAVING count(*) > 0"
        )

        def wrap(statement: bytes, returning: bool, select: str) -> bytes:
            inner = statement if returning else statement + b" RETURNING key"
            return b"WITH w AS (" + inner + b") " + select.encode()

        self._sql_store = wrap(self._sql_store, False, one)
        self._sql_remove = wrap(self._sql_remove, False, one)
        self._sql_store_many = wrap(self._sql_store_many, False, many)
        self._sql_remove_many = wrap(
            self._sql_remove_many,
            True,
            f", n AS ({many}) SELECT key FROM w WHERE (SELECT count(*) FROM n) >= 0",
        )

    # -- description
    @property
    def durability(self) -> str:
        """What an acknowledged write survives, from the server's settings (read at open)."""
        return self._durability

    @property
    def group_commit_concurrency(self) -> int:
        """Commits a writer queue may have in flight at once: one per pooled connection."""
        return self._pool_size

    @property
    def table(self) -> str:
        """The table as ``schema.name`` (the schema resolved when the store opened)."""
        return self._table

    @property
    def identity(self) -> str:
        return self._identity

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return (
            f"PostgresStore({self._server!r}, table={self._table!r}, pool_size={self._pool_size}, "
            f"pool_min={self._pool_min}, timeout={self._timeout:g}{state})"
        )


# -- helpers


def _describe_durability(synchronous_commit: Any, fsync: Any) -> str:
    """Plain words for what an acknowledged write survives under these settings."""
    sync = str(synchronous_commit[0]) if synchronous_commit else "?"
    if fsync and str(fsync[0]) == "off":
        return (
            "fsync=off: acknowledged writes can be lost (and the database damaged) on a "
            "host crash or power loss"
        )
    if sync == "off":
        return (
            "synchronous_commit=off: the last ~0.6 s of acknowledged writes (3x "
            "wal_writer_delay) can be lost on a server crash"
        )
    if sync in ("on", "local", "remote_write", "remote_apply"):
        return f"synchronous_commit={sync}: durable, each commit is flushed to the WAL first"
    return f"synchronous_commit={sync}: durability unknown"


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself died (not a pool wait, not a statement error)."""
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, _POOL_ERRORS):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _LOST_STATES


def _table_parts(table: object) -> tuple[str, ...]:
    """``"name"`` or ``"schema.name"``, each part a plain identifier; else ``ConfigError``."""
    rule = (
        "use name or schema.name, each 1 to 63 ASCII letters, digits or underscores, "
        "not starting with a digit"
    )
    if not isinstance(table, str):
        raise ConfigError(f"invalid PostgreSQL table name {table!r}: {rule}")
    parts = tuple(table.split("."))
    if len(parts) > 2 or not all(
        _NAME_RE.fullmatch(p) and len(p.encode()) <= _MAX_NAME_BYTES for p in parts
    ):
        raise ConfigError(f"invalid PostgreSQL table name {table!r}: {rule}")
    if len(parts) == 2 and (
        parts[0].lower().startswith("pg_") or parts[0].lower() == "information_schema"
    ):
        raise ConfigError(
            f"invalid PostgreSQL table name {table!r}: schema {parts[0]!r} is reserved"
        )
    return parts


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number of seconds > 0; got {value!r}")


def _libpq_seconds(text: str | None) -> float | None:
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _parse_conninfo(conninfo: str) -> dict[str, str]:
    """libpq's own parse of ``conninfo``; its complaint is kept, the quoted fragment is not."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except psycopg.Error as exc:
        reason = re.sub(r'"[^"]*"', '"…"', str(exc).strip())
        raise ConfigError(
            f"invalid PostgreSQL connection string (not shown: it may hold a password): {reason}"
        ) from None


def _server_url(user: str | None, host: str | None, port: str | None, dbname: str | None) -> str:
    """``postgresql://user@host:port/dbname``, never with a password."""
    auth = f"{quote(user, safe='')}@" if user else ""
    if host and ":" in host and not host.startswith("/"):
        where = f"[{host}]"  # IPv6
    else:
        where = quote(host or "", safe="")
    if port:
        where += f":{port}"
    return f"postgresql://{auth}{where}/{quote(dbname or '', safe='')}"


def _find_table(
    conn: psycopg.Connection[Any], parts: tuple[str, ...]
) -> tuple[int, str, str, str] | None:
    """The table ``parts`` names (via ``search_path`` if unqualified): oid, schema, name, kind."""
    row = conn.execute(
        "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = pg_catalog.to_regclass(%s)",
        (sql.Identifier(*parts).as_string(conn),),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _shape_problem(conn: psycopg.Connection[Any], oid: int, kind: str) -> str | None:
    """Why an existing relation cannot serve as the store's table, or ``None``."""
    if kind not in ("r", "p"):
        return "it is not a table"
    columns = {
        name: (attnum, is_bytea, required)
        for attnum, name, is_bytea, required in conn.execute(
            "SELECT attnum, attname, atttypid = 'pg_catalog.bytea'::pg_catalog.regtype, "
            "attnotnull AND NOT atthasdef AND attgenerated = '' "
            "FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
            (oid,),
        )
    }
    for name in ("key", "value"):
        if name not in columns:
            return f"no column {name!r}"
        if not columns[name][1]:
            return f"column {name!r} is not bytea"
    extra = sorted(
        n for n, (_, _, required) in columns.items() if required and n not in ("key", "value")
    )
    if extra:
        return f"column(s) {', '.join(extra)} require a value"
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = %s AND indisunique "
        "AND indimmediate AND indisvalid AND indnkeyatts = 1 AND indkey[0] = %s "
        "AND indpred IS NULL AND indexprs IS NULL)",
        (oid, columns["key"][0]),
    ).fetchone()
    if not row or not row[0]:
        return "column 'key' is not its primary key"
    return None


_LIVE_STORES: weakref.WeakSet[PostgresStore] = weakref.WeakSet()
_INHERITED: list[ConnectionPool[_Connection]] = []  # a forked child's copies of parent pools


def _forget_parent_pools() -> None:
    for store in list(_LIVE_STORES):
        store._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_pools)


# -- URLs

_LIBPQ_KEYWORDS = frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())


def _option(options: dict[str, Any], name: str, kind: type) -> Any:
    raw = options.pop(name)
    if kind is str:
        return raw  # the constructor checks it
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"option {name}={raw!r} is not a boolean (true/false)")
    if isinstance(raw, bool) or (kind is int and not isinstance(raw, int | str)):
        what = "an integer" if kind is int else "a number of seconds"
        raise ConfigError(f"option {name}={raw!r} is not {what}")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number of seconds"
        raise ConfigError(f"option {name}={raw!r} is not {what}") from None


def from_url(url: Any, options: dict[str, Any]) -> PostgresStore:
    """``postgresql://user:password@host:port/dbname?table=t&pool_size=8`` (or ``postgres://``).

    Store options: ``table``, ``pool_size``, ``pool_min``, ``timeout``,
    ``connect_timeout``, ``prepare``. Other libpq parameters (``sslmode``,
    ``application_name``, ...) go to libpq; anything else is left for ``wt.open``
    to refuse.
    """
    kinds: dict[str, type] = {
        "table": str,
        "pool_size": int,
        "pool_min": int,
        "timeout": float,
        "connect_timeout": float,
        "prepare": bool,
    }
    kwargs = {name: _option(options, name, kind) for name, kind in kinds.items() if name in options}
    libpq = {name: str(options.pop(name)) for name in list(options) if name in _LIBPQ_KEYWORDS}
    base = urlsplit(url.raw)._replace(scheme="postgresql", query="", fragment="").geturl()
    try:
        conninfo = make_conninfo(base, **libpq)
    except psycopg.Error as exc:
        reason = re.sub(r'"[^"]*"', '"…"', str(exc).strip())
        raise ConfigError(f"invalid PostgreSQL URL {url}: {reason}") from None
    return PostgresStore(conninfo, **kwargs)

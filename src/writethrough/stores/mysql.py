"""``MySQLStore``: a byte store in one MariaDB/MySQL InnoDB table, through PyMySQL.

Durable on return as far as the server is: a ``store`` of an ordinary value is
one autocommitted statement, on disk when it returns with InnoDB's default
``innodb_flush_log_at_trx_commit=1``. Values of any size work without changing
server settings: one larger than a chunk (4 MiB, less when the server's
``max_allowed_packet`` is small) is split into numbered rows written in one
transaction, because neither a statement nor a result row may exceed
``max_allowed_packet``. The connection pool is the store's own (PyMySQL has
none): bounded, thread-safe, healed after the server drops connections, and
never shared with a forked child.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import threading
import time
import weakref
from binascii import hexlify
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import quote

import pymysql  # type: ignore[import-untyped,unused-ignore]

from ..errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    EntryTooLarge,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
    WriteThroughError,
)
from ..url import URL, parse_url
from .base import BytesStore

__all__ = ["MySQLStore", "from_url"]

T = TypeVar("T")

_SCHEMES = frozenset({"mysql", "mariadb"})
_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_KEY_LIMIT: Final = 3068  # InnoDB's 3072-byte index limit (DYNAMIC rows) minus the INT n
_MAX_CHUNK: Final = 4 << 20  # bytes of a value per row
_IN_BYTES: Final = 1 << 20  # escaped key bytes per IN (...) statement
_IN_KEYS: Final = 1000  # keys per IN (...) statement
_IDLE_CHECK: Final = 1.0  # seconds idle after which a pooled connection is checked before use
_DEADLOCK: Final = 1213  # ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back
_DEADLOCK_TRIES: Final = 3  # so it is rerun, up to this many times in all
_IN_TRANS: Final = 1  # SERVER_STATUS_IN_TRANS
_TIMED_OUT = "timed out"
_monotonic = time.monotonic

# Error codes (server 1xxx, client 2xxx). The server is gone or cannot be used now:
_GONE = frozenset({1053, 1927, 2006, 2013, 2055, 4031})
_UNAVAILABLE = _GONE | frozenset(
    {1040, 1044, 1045, 1049, 1203, 1205, 1317, 1969, 2002, 2003, 2005, 2014, 3024}
)
# the connection is unusable after these (besides every client error, 2xxx)
_BROKEN = _GONE | frozenset({1040, 1043, 1081, 1152, 1153, 1154, 1155, 1156, 1157, 1158})
_FULL = frozenset({1021, 1114})
_MAYBE_FULL = frozenset({3, 1026, 1030, 1034})  # "error 28" (ENOSPC) or 122 (EDQUOT) inside
_ENOSPC = re.compile(r"(?:errno|error|errcode)\W*(?:28|122)\b", re.IGNORECASE)
_CONNECT_CODES = frozenset({1044, 1045, 1049, 2002, 2003, 2005})


class _Slot:
    """One pooled connection, with its cursor and server thread id (``CONNECTION_ID()``)."""

    __slots__ = ("conn", "cur", "thread_id", "used")

    def __init__(self, conn: Any, cur: Any) -> None:
        self.conn = conn
        self.cur = cur
        self.thread_id: int = conn.thread_id()
        self.used = time.monotonic()


class MySQLStore(BytesStore):
    """A byte store in one InnoDB table: ``(k VARBINARY, n, parts, v LONGBLOB)``, key ``(k, n)``.

    ``url`` is ``mysql://user[:password]@host[:port]/database`` (or ``mariadb://``;
    its query may hold ``unix_socket``); without it, give ``host``, ``port``,
    ``user``, ``password``, ``database`` (or ``unix_socket``) as keywords.
    ``table`` is created if missing (1 to 64 ASCII letters, digits or
    underscores). ``pool_size`` bounds the connections; a call waits up to
    ``pool_timeout`` seconds for a free one. ``read_timeout`` and
    ``write_timeout`` bound each network wait (``None``: no limit).

    A value is row ``n = 0`` holding ``parts`` and the first chunk, plus rows
    ``1 .. parts-1`` when it is larger than a chunk. Overwriting a large value
    with a small one writes row 0 only (one statement): the old chunks stay as
    garbage that reads ignore (they read ``n < parts``) and the next large write
    or remove of the key deletes. Keys are at most ``max_key_size`` bytes (3068):
    a longer one raises ``EntryTooLarge`` before anything is written.

    Nothing is retried behind the caller's back except a read whose connection
    the server dropped (once, on a fresh connection) and a transaction InnoDB
    rolled back as a deadlock victim (it changed nothing, so rerunning it cannot
    apply anything twice).
    """

    #: ``store_many`` is one transaction, so a writer queue may group puts into it
    supports_group_commit: ClassVar[bool] = True
    #: on by default: a lone writer measured 1.01-1.03x with it (<= 1.05x), and
    #: concurrent writers share commits (benchmarks/group_commit.py)
    group_commit_default: ClassVar[bool] = True

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        unix_socket: str | None = None,
        table: str = "writethrough",
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float | None = 60.0,
        write_timeout: float | None = 60.0,
        pool_timeout: float = 10.0,
    ) -> None:
        if not isinstance(table, str) or not _TABLE_RE.fullmatch(table):
            raise ConfigError(
                f"invalid MySQL table name {table!r}: use 1 to 64 ASCII letters, digits or "
                "underscores, not starting with a digit"
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be an int >= 1; got {pool_size!r}")
        _check_seconds("connect_timeout", connect_timeout)
        _check_seconds("pool_timeout", pool_timeout)
        for name, seconds in (("read_timeout", read_timeout), ("write_timeout", write_timeout)):
            if seconds is not None:
                _check_seconds(name, seconds)
        given: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "password": password,
            "database": database,
            "unix_socket": unix_socket,
        }
        if url is not None:
            given = _merge_url(url, given)
        host, user, password, database, unix_socket = (
            given["host"],
            given["user"],
            given["password"],
            given["database"],
            given["unix_socket"],
        )
        port = given["port"]
        if not database or not isinstance(database, str):
            raise ConfigError("name a database: mysql://user@host:3306/database (or database=...)")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ConfigError(f"port must be an int; got {port!r}")
        self._host: str = host or "localhost"
        self._port: int = port or 3306
        self._user: str = user or pymysql.connections.DEFAULT_USER or "root"
        self._database: str = database
        self._unix_socket = unix_socket or None
        self._table = table
        self._pool_size = pool_size
        self._pool_timeout = float(pool_timeout)
        self._connect_kwargs: dict[str, Any] = {
            "host": self._host,
            "port": self._port,
            "user": self._user,
            "password": password or "",
            "database": database,
            "unix_socket": self._unix_socket,
            "connect_timeout": float(connect_timeout),
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
            "autocommit": True,
            "charset": "utf8mb4",
            "binary_prefix": True,  # PyMySQL < 1.2 sends bytes as _binary'...'
            "program_name": "writethrough",
        }

        q = f"`{table}`"  # validated above; quoted anyway
        self._q = q
        self._sql_load = f"SELECT parts, v FROM {q} WHERE k = %s AND n = 0"
        self._sql_load_all = f"SELECT n, parts, v FROM {q} WHERE k = %s ORDER BY n"
        # batches are composed from hex literals (X'00ff'): cheaper than PyMySQL's per-row
        # escaping, and nothing but [0-9a-f] from the caller ever enters the SQL
        self._sql_load_in = f"SELECT k, parts, v FROM {q} WHERE n = 0 AND k IN ".encode()
        self._sql_store = (
            f"INSERT INTO {q} (k, n, parts, v) VALUES (%s, 0, 1, %s) "
            "ON DUPLICATE KEY UPDATE parts = 1, v = VALUES(v)"
        )
        self._sql_insert = f"INSERT INTO {q} (k, n, parts, v) VALUES ".encode()
        self._sql_upsert = b" ON DUPLICATE KEY UPDATE parts = VALUES(parts), v = VALUES(v)"
        self._sql_trim = f"DELETE FROM {q} WHERE k = %s AND n >= %s"
        self._sql_remove = f"DELETE FROM {q} WHERE k = %s"
        self._sql_remove_in = f"DELETE FROM {q} WHERE k IN ".encode()
        self._sql_lock_in = f"SELECT k FROM {q} WHERE n = 0 AND k IN ".encode()
        self._use_returning = False  # DELETE ... RETURNING: MariaDB only, set on connect
        self._durability = "unknown: not connected yet"  # set on connect

        self._max_key = _KEY_LIMIT
        self._packet = 16 << 20
        self._chunk = _MAX_CHUNK
        self._stmt_limit = 1 << 20
        self._new_pool()
        _LIVE_STORES.add(self)
        try:
            slot = self._open_slot()
            self._idle[-1] = slot
            self._init_table(slot)
        except BaseException:
            self.close()
            raise

    # -- the table
    def _init_table(self, slot: _Slot) -> None:
        """Create the table if missing; refuse one of another shape or engine."""
        cur = slot.cur
        try:
            found = self._describe(cur)
            if found is None:
                limit = _KEY_LIMIT
                for _ in range(3):
                    try:
                        cur.execute(
                            f"CREATE TABLE IF NOT EXISTS {self._q} ("
                            f"k VARBINARY({limit}) NOT NULL, n INT UNSIGNED NOT NULL, "
                            "parts INT UNSIGNED NOT NULL, v LONGBLOB NOT NULL, "
                            "PRIMARY KEY (k, n)) ENGINE=InnoDB ROW_FORMAT=DYNAMIC"
                        )
                        break
                    except pymysql.err.OperationalError as exc:
                        # ER_TOO_LONG_KEY: smaller pages (innodb_page_size < 16k) allow less
                        smaller = re.search(r"max key length is (\d+)", str(exc))
                        if exc.args[0] != 1071 or smaller is None:
                            raise
                        limit = int(smaller.group(1)) - 4
                found = self._describe(cur)
        except pymysql.err.Error as exc:
            raise self._error(exc, "creating the table", write=True) from exc
        if found is None:  # pragma: no cover - created above
            raise StoreError(f"{self.identity}: the table was not created")
        engine, columns, primary = found
        shape = {name: ctype for name, (ctype, _) in columns.items()}
        wanted = {"k": "varbinary", "n": "int", "parts": "int", "v": "longblob"}
        if shape != wanted or primary != ["k", "n"]:
            raise ConfigError(
                f"{self.identity}: table {self._table!r} exists with another shape "
                f"(columns {sorted(columns)}, primary key {primary}); this store needs "
                "k VARBINARY, n INT, parts INT, v LONGBLOB, PRIMARY KEY (k, n); choose another "
                "table"
            )
        if (engine or "").lower() != "innodb":
            raise ConfigError(
                f"{self.identity}: table {self._table!r} uses engine {engine!r}; this store "
                "needs InnoDB (transactions keep a value's chunks together): choose another table"
            )
        self._max_key = int(columns["k"][1])
        self._adopt_packet(self._packet)

    def _describe(
        self, cur: Any
    ) -> tuple[str | None, dict[str, tuple[str, int]], list[str]] | None:
        """(engine, {column: (type, max length)}, primary key columns), or None when absent."""
        cur.execute(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (self._table,),
        )
        rows = cur.fetchall()
        # information_schema compares names case-insensitively: keep the exact one
        exact = [r for r in rows if r[0] == self._table] or rows
        if not exact:
            return None
        name, engine = exact[0]
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH FROM "
            "information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (name,),
        )
        columns = {
            str(column).lower(): (str(ctype).lower(), int(length or 0))
            for table, column, ctype, length in cur.fetchall()
            if table == name
        }
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' "
            "ORDER BY SEQ_IN_INDEX",
            (name,),
        )
        primary = [str(column).lower() for table, column in cur.fetchall() if table == name]
        return engine, columns, primary

    # -- connections
    def _new_pool(self) -> None:
        """``pool_size`` slots; ``None`` is a free slot whose connection is opened on use.

        The idle slots are a deque (``pop``/``append`` are atomic): a checkout
        costs no lock unless every slot is in use, when the caller waits on
        ``_cond`` for one to come back.
        """
        self._idle: deque[_Slot | None] = deque([None] * self._pool_size)
        self._cond = threading.Condition(threading.Lock())
        self._waiters = 0

    def _open_slot(self) -> _Slot:
        try:
            conn = pymysql.connect(**self._connect_kwargs)
        except Exception as exc:
            raise self._error(exc, "connecting", write=False) from exc
        try:
            cur = conn.cursor()
            # one snapshot per statement and per read transaction, whatever the server default
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT @@max_allowed_packet, @@innodb_flush_log_at_trx_commit")
            packet, flush = cur.fetchone()
            packet = int(packet)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.close()
            if isinstance(exc, Exception):
                raise self._error(exc, "configuring a connection", write=False) from exc
            raise
        self._use_returning = "mariadb" in str(conn.get_server_info()).lower()
        self._durability = _describe_durability(flush)
        self._adopt_packet(packet)
        return _Slot(conn, cur)

    def _adopt_packet(self, packet: int) -> None:
        """Size chunks and statements so none exceeds the server's ``max_allowed_packet``.

        Bytes travel hex-encoded (twice their size), beside a key of up to
        ``max_key_size`` bytes and a little SQL.
        """
        self._packet = packet = min(self._packet, packet)
        room = packet - 2 * self._max_key - 1024
        self._chunk = max(512, min(_MAX_CHUNK, room // 2))
        self._stmt_limit = max(4096, min(1 << 20, packet - 1024))

    def _checkout(self, idle: deque[_Slot | None]) -> _Slot:
        if self._closed:
            raise CacheClosed(f"{self.identity}: store is closed")
        try:
            slot = idle.pop()
        except IndexError:
            slot = self._wait(idle)
        if slot is None or _monotonic() - slot.used > _IDLE_CHECK:
            return self._ready(idle, slot)
        return slot

    def _wait(self, idle: deque[_Slot | None]) -> _Slot | None:
        """Every slot is in use: wait up to ``pool_timeout`` for one to come back."""
        deadline = _monotonic() + self._pool_timeout
        with self._cond:
            self._waiters += 1  # before looking again: a checkin after this wakes us
            try:
                while True:
                    if self._closed:
                        raise CacheClosed(f"{self.identity}: store is closed")
                    try:
                        return idle.pop()
                    except IndexError:
                        pass
                    left = deadline - _monotonic()
                    if left <= 0:
                        raise StoreUnavailable(
                            f"{self.identity}: no free connection within "
                            f"{self._pool_timeout:g} s (pool_size={self._pool_size}); "
                            "raise pool_size or pool_timeout"
                        )
                    self._cond.wait(min(left, 0.05))
            finally:
                self._waiters -= 1

    def _ready(self, idle: deque[_Slot | None], slot: _Slot | None) -> _Slot:
        """The slow path of a checkout: check a connection left idle, or open one."""
        if slot is not None:
            if not self._closed and _alive(slot.conn):
                return slot
            _drop(slot)  # the server closed it (restart, KILL, wait_timeout)
        try:
            if self._closed:
                raise CacheClosed(f"{self.identity}: store is closed")
            return self._open_slot()
        except BaseException:
            self._give_back(idle, None)
            raise

    def _give_back(self, idle: deque[_Slot | None], slot: _Slot | None) -> None:
        """Check a slot in (the hot paths inline this)."""
        if slot is not None:
            slot.used = _monotonic()
        idle.append(slot)
        if self._waiters or self._closed:
            self._checked_in(idle)

    def _checked_in(self, idle: deque[_Slot | None]) -> None:
        """After a checkin: wake a waiter; on a closed store, close the connection."""
        if self._waiters:
            with self._cond:
                self._cond.notify()
        if self._closed:  # close() ran meanwhile: do not leave this connection open
            self._drain(idle)

    def _failed(self, idle: deque[_Slot | None], slot: _Slot, exc: BaseException) -> bool:
        """Return a slot after a call raised; True when its connection was dropped.

        A connection that only carried a server's refusal is rolled back and
        kept; one broken (or interrupted mid-protocol) is dropped, and when the
        server went away the idle ones are dropped too: they are dead as well.
        """
        conn = slot.conn
        if not _broken(exc) and conn.open:
            try:
                if conn.server_status & _IN_TRANS:
                    conn.rollback()
            except BaseException:
                pass
            else:
                self._give_back(idle, slot)
                return False
        _drop(slot)
        self._give_back(idle, None)
        if _gone(exc):
            self._drain(idle)
        return True

    def _drain(self, idle: deque[_Slot | None]) -> None:
        """Close the idle connections; their slots stay, empty."""
        dropped = 0
        while True:
            try:
                slot = idle.pop()
            except IndexError:
                break
            if slot is not None:
                _drop(slot)
            dropped += 1
        idle.extend([None] * dropped)
        if self._closed:
            with self._cond:
                self._cond.notify_all()  # waiters wake and raise CacheClosed

    def _call(
        self,
        action: str,
        fn: Callable[[_Slot], T],
        *,
        write: bool,
        keys: list[Any] | None = None,
        retry: bool = False,
    ) -> T:
        """Run ``fn`` on a pooled connection, mapping errors (a batch's into ``BatchError``).

        ``fn`` is rerun when InnoDB rolled it back as a deadlock victim (it changed
        nothing), and once more on a fresh connection if ``retry`` (reads) and the
        server dropped the connection.
        """
        idle = self._idle
        deadlocks = 0
        while True:
            slot = self._checkout(idle)
            try:
                result = fn(slot)
            except BaseException as exc:
                dropped = self._failed(idle, slot, exc)
                if not isinstance(exc, Exception):
                    raise
                if _code(exc) == _DEADLOCK and deadlocks < _DEADLOCK_TRIES - 1:
                    deadlocks += 1
                    continue
                if retry and dropped and _gone(exc) and not self._closed:
                    retry = False
                    continue
                error = self._error(exc, action, write=write)
                if keys is None or isinstance(error, CacheClosed):
                    raise error from exc
                error.__cause__ = exc
                raise BatchError(
                    f"{error} (the whole batch of {len(keys)} was rolled back)",
                    dict.fromkeys(keys, error),
                    [],
                ) from exc
            self._give_back(idle, slot)
            return result

    def _in_transaction(self, slot: _Slot, body: Callable[[Any], T]) -> T:
        """``body(cursor)`` in one transaction (a failure rolls back in ``_failed``)."""
        slot.conn.begin()
        result = body(slot.cur)
        slot.conn.commit()
        return result

    def _after_fork_in_child(self) -> None:
        """Forget the parent's connections: a child never uses (nor closes) them.

        Dropping them closes only the child's copies of the sockets, without
        PyMySQL's COM_QUIT, so the parent's connections are untouched. The lock
        is new too: a parent thread may have held the old one at the fork.
        """
        self._new_pool()

    def _close(self) -> None:
        self._drain(self._idle)

    # -- errors
    def _error(self, exc: BaseException, action: str, *, write: bool) -> WriteThroughError:
        """Map a PyMySQL (or socket) exception into the writethrough tree (the caller chains it)."""
        if isinstance(exc, WriteThroughError):
            return exc
        if self._closed:
            return CacheClosed(f"{self.identity}: store is closed")
        code = _code(exc)
        message = f"{self.identity}: {action} failed: {exc}"
        if code in _CONNECT_CODES or action == "connecting":
            message += (
                f"; check that the server is running and reachable at {self._where()}, and the "
                "user, password and database"
            )
        if code in _FULL or (code in _MAYBE_FULL and _ENOSPC.search(str(exc))):
            return StoreFull(message)
        if (
            code in _UNAVAILABLE
            or isinstance(exc, (pymysql.err.InterfaceError, OSError))
            or (code is not None and code >= 2000)
        ):
            return StoreUnavailable(message)
        return StoreWriteError(message) if write else StoreError(message)

    def _too_long(self, key: bytes) -> EntryTooLarge:
        return EntryTooLarge(
            f"{self.identity}: a key of {len(key)} bytes is longer than the "
            f"{self._max_key} bytes this table's keys may hold (InnoDB's index limit); "
            "nothing was written"
        )

    # -- the store protocol (hot paths: keep them short)
    def load(self, key: bytes) -> bytes | None:
        if len(key) > self._max_key:
            self._check_open()
            return None  # no such key can be stored
        if self._closed:
            raise CacheClosed(f"{self.identity}: store is closed")
        idle = self._idle
        try:
            slot = idle.pop()
        except IndexError:
            slot = self._wait(idle)
        if slot is None or _monotonic() - slot.used > _IDLE_CHECK:
            slot = self._ready(idle, slot)
        try:
            cur = slot.cur
            cur.execute(self._sql_load, (key,))
            row = cur.fetchone()
            value = None if row is None else row[1] if row[0] == 1 else _chunks(self, cur, key)
        except BaseException as exc:
            if self._failed(idle, slot, exc) and _gone(exc) and not self._closed:
                # the server dropped the connection: a read may be tried once more
                return self._call("load", lambda s: _read(self, s.cur, key), write=False)
            if isinstance(exc, Exception):
                raise self._error(exc, "load", write=False) from exc
            raise
        slot.used = _monotonic()
        idle.append(slot)
        if self._waiters or self._closed:
            self._checked_in(idle)
        return value

    def store(self, key: bytes, value: bytes) -> None:
        if len(key) > self._max_key:
            self._check_open()
            raise self._too_long(key)
        if type(value) is not bytes:
            value = bytes(value)
        if len(value) > self._chunk:
            self._call(
                "store", lambda s: self._in_transaction(s, self._writer(key, value)), write=True
            )
            return
        if self._closed:
            raise CacheClosed(f"{self.identity}: store is closed")
        idle = self._idle
        try:
            slot = idle.pop()
        except IndexError:
            slot = self._wait(idle)
        if slot is None or _monotonic() - slot.used > _IDLE_CHECK:
            slot = self._ready(idle, slot)
        try:
            slot.cur.execute(self._sql_store, (key, value))
        except BaseException as exc:
            self._failed(idle, slot, exc)
            if _code(exc) == _DEADLOCK:  # rolled back: nothing was applied, run it again
                self._call(
                    "store", lambda s: s.cur.execute(self._sql_store, (key, value)), write=True
                )
                return
            if isinstance(exc, Exception):
                raise self._error(exc, "store", write=True) from exc
            raise
        slot.used = _monotonic()
        idle.append(slot)
        if self._waiters or self._closed:
            self._checked_in(idle)

    def remove(self, key: bytes) -> bool:
        if len(key) > self._max_key:
            self._check_open()
            return False
        count: int = self._call(
            "remove", lambda s: s.cur.execute(self._sql_remove, (key,)), write=True
        )
        return count > 0

    def _writer(self, key: bytes, value: bytes) -> Callable[[Any], None]:
        """Write a large value's chunks and delete the key's rows beyond them."""
        chunk = self._chunk
        parts = -(-len(value) // chunk)

        def write(cur: Any) -> None:
            rows = ((key, i, parts, value[i * chunk : (i + 1) * chunk]) for i in range(parts))
            for statement in self._inserts(rows):  # one per chunk: each under the packet limit
                cur.execute(statement)
            cur.execute(self._sql_trim, (key, parts))

        return write

    def _inserts(self, rows: Iterable[tuple[bytes, int, int, bytes]]) -> Iterator[bytes]:
        """Multi-row upserts of ``rows``, each statement near ``_stmt_limit`` (or one row)."""
        head, tail, limit = self._sql_insert, self._sql_upsert, self._stmt_limit
        values: list[bytes] = []
        size = 0
        for k, n, parts, v in rows:
            row = b"(X'%b',%d,%d,X'%b')" % (hexlify(k), n, parts, hexlify(v))
            if values and size + len(row) > limit:
                yield head + b",".join(values) + tail
                values, size = [], 0
            values.append(row)
            size += len(row) + 1
        if values:
            yield head + b",".join(values) + tail

    # -- batches
    def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """Values of the keys found: one ``SELECT ... IN`` per ~1 MiB of keys, one snapshot."""
        wanted = [k for k in dict.fromkeys(keys) if len(k) <= self._max_key]
        self._check_open()
        if not wanted:
            return {}
        groups = _in_lists(wanted)

        def body(cur: Any) -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            large: list[bytes] = []
            for group in groups:
                cur.execute(self._sql_load_in + group)
                for k, parts, v in cur.fetchall():
                    if parts == 1:
                        found[k] = v
                    else:
                        large.append(k)
            for k in large:
                value = _chunks(self, cur, k)
                if value is not None:
                    found[k] = value
            return found

        def run(slot: _Slot) -> dict[bytes, bytes]:
            if len(groups) == 1:
                return body(slot.cur)  # one statement (and one per large value): each a snapshot
            slot.cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            found = body(slot.cur)
            slot.conn.commit()
            return found

        return self._call("load_many", run, write=False, retry=True)

    def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store every pair in one transaction: all applied, or none and ``BatchError``.

        A batch of small values is one multi-row ``INSERT ... ON DUPLICATE KEY
        UPDATE`` (atomic on its own, so autocommit: one round trip). A key given
        twice ends with its last value.
        """
        self._check_open()
        latest: dict[bytes, bytes] = {}
        for item in items:
            try:
                key, value = item
            except (TypeError, ValueError):
                raise ConfigError(
                    f"store_many takes (key, value) pairs; got {item!r:.80}"
                ) from None
            latest[key] = value if type(value) is bytes else bytes(value)
        if not latest:
            return
        keys = list(latest)
        too_long = [k for k in keys if len(k) > self._max_key]
        if too_long:
            first = self._too_long(too_long[0])
            refused = StoreWriteError(f"{self.identity}: not written: {first}")
            failed: dict[Any, BaseException] = dict.fromkeys(keys, refused)
            failed.update((k, self._too_long(k)) for k in too_long)
            raise BatchError(f"{len(too_long)} of {len(keys)} keys too long: {first}", failed, [])
        chunk = self._chunk
        rows: list[tuple[bytes, int, int, bytes]] = []
        trims: list[tuple[bytes, int]] = []
        size = 0
        for key, value in latest.items():
            if len(value) <= chunk:
                rows.append((key, 0, 1, value))
                size += 2 * (len(key) + len(value)) + 16
            else:
                parts = -(-len(value) // chunk)
                rows.extend(
                    (key, i, parts, value[i * chunk : (i + 1) * chunk]) for i in range(parts)
                )
                trims.append((key, parts))

        def body(cur: Any) -> None:
            for statement in self._inserts(rows):
                cur.execute(statement)
            for trim in trims:
                cur.execute(self._sql_trim, trim)

        def run(slot: _Slot) -> None:
            if not trims and size <= self._stmt_limit:
                body(slot.cur)  # one statement: atomic on its own, no BEGIN/COMMIT round trips
            else:
                self._in_transaction(slot, body)

        self._call("store_many", run, write=True, keys=keys)

    def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """Remove every key in one transaction; per key, whether it existed.

        A key repeated in ``keys`` counts as existing once, as a loop would report it.
        """
        keys = list(keys)
        self._check_open()
        if not keys:
            return []
        unique = [k for k in dict.fromkeys(keys) if len(k) <= self._max_key]
        removed: set[bytes] = set()
        if unique:
            groups = _in_lists(unique)

            def body(cur: Any) -> None:
                removed.clear()  # a rerun after a deadlock starts over
                for group in groups:
                    if self._use_returning:
                        cur.execute(self._sql_remove_in + group + b" RETURNING k")
                        removed.update(row[0] for row in cur.fetchall())
                    else:
                        cur.execute(self._sql_lock_in + group + b" FOR UPDATE")
                        removed.update(row[0] for row in cur.fetchall())
                        cur.execute(self._sql_remove_in + group)

            def run(slot: _Slot) -> None:
                if self._use_returning and len(groups) == 1:
                    body(slot.cur)  # one DELETE ... RETURNING: atomic without BEGIN
                else:
                    self._in_transaction(slot, body)

            self._call("remove_many", run, write=True, keys=keys)
        existed: list[bool] = []
        for key in keys:
            if key in removed:
                removed.discard(key)
                existed.append(True)
            else:
                existed.append(False)
        return existed

    # -- description
    @property
    def table(self) -> str:
        return self._table

    @property
    def database(self) -> str:
        return self._database

    @property
    def max_key_size(self) -> int:
        """The longest key, in bytes, the table can hold."""
        return self._max_key

    @property
    def chunk_size(self) -> int:
        """Values longer than this are stored as several rows."""
        return self._chunk

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def durability(self) -> str:
        """What an acknowledged write survives, from the server's settings (read on connect)."""
        return self._durability

    @property
    def group_commit_concurrency(self) -> int:
        """Commits a writer queue may have in flight at once: one per pooled connection."""
        return self._pool_size

    def _where(self) -> str:
        if self._unix_socket:
            return f"socket {self._unix_socket}"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}"

    @property
    def identity(self) -> str:
        user = quote(self._user, safe="")
        db = quote(self._database, safe="")
        if self._unix_socket:
            sock = quote(self._unix_socket, safe="/")
            return f"mysql://{user}@localhost/{db}?unix_socket={sock}#{self._table}"
        return f"mysql://{user}@{self._where()}/{db}#{self._table}"

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        where = self.identity.partition("#")[0]
        return f"MySQLStore({where!r}, table={self._table!r}, pool_size={self._pool_size}{state})"


def _read(store: MySQLStore, cur: Any, key: bytes) -> bytes | None:
    """One key's value (the body of ``load``, for its retry)."""
    cur.execute(store._sql_load, (key,))
    row = cur.fetchone()
    if row is None:
        return None
    return row[1] if row[0] == 1 else _chunks(store, cur, key)


def _chunks(store: MySQLStore, cur: Any, key: bytes) -> bytes | None:
    """A large value: all its rows in one statement, so from one snapshot (one write)."""
    cur.execute(store._sql_load_all, (key,))
    rows = cur.fetchall()
    if not rows or rows[0][0] != 0:
        return None  # removed since the first read
    parts = rows[0][1]
    if len(rows) < parts or any(rows[i][0] != i for i in range(parts)):
        raise StoreError(
            f"{store.identity}: key {key[:64]!r} is corrupt: row 0 says {parts} parts, "
            f"found rows {[r[0] for r in rows[:parts]]}"
        )
    # rows n >= parts are chunks a small overwrite left behind: not part of the value
    return rows[0][2] if parts == 1 else b"".join(r[2] for r in rows[:parts])


def _in_lists(keys: list[bytes]) -> list[bytes]:
    """``(X'6b31',X'6b32')`` lists of the keys, each keeping its statement near 1 MiB."""
    lists: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for key in keys:
        literal = b"X'%b'" % hexlify(key)
        if group and (size + len(literal) > _IN_BYTES or len(group) >= _IN_KEYS):
            lists.append(b"(" + b",".join(group) + b")")
            group, size = [], 0
        group.append(literal)
        size += len(literal) + 1
    lists.append(b"(" + b",".join(group) + b")")
    return lists


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.Error) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _broken(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` cannot be used again."""
    if isinstance(exc, WriteThroughError):
        return False  # ours (a corrupt row): the connection is fine
    if isinstance(exc, (pymysql.err.InterfaceError, pymysql.err.InternalError)):
        return True
    code = _code(exc)
    if code is None:
        return not isinstance(exc, pymysql.err.Error)  # a socket error, an interrupt mid-read
    return code >= 2000 or code in _BROKEN


def _gone(exc: BaseException) -> bool:
    """The server dropped the connection (not a timeout): idle ones are dead too."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    return _code(exc) in _GONE and _TIMED_OUT not in str(exc)


def _alive(conn: Any) -> bool:
    """A pooled connection is idle: if its socket is readable, the server closed it."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable
    except (OSError, ValueError):
        return False


def _drop(slot: _Slot) -> None:
    with contextlib.suppress(Exception):
        slot.conn.close()


def _check_seconds(name: str, seconds: object) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ConfigError(f"{name} must be a finite number of seconds > 0; got {seconds!r}")


def _merge_url(url: str | URL, given: dict[str, Any]) -> dict[str, Any]:
    """The connection parts of ``url``; a part also given as a keyword must agree."""
    if isinstance(url, str):
        parsed = parse_url(url)
        query = dict(parsed.query)
        socket_path = query.pop("unix_socket", None)
        if query:
            raise ConfigError(
                f"unknown option(s) in MySQLStore URL query: {', '.join(sorted(query))}; the "
                "query takes unix_socket only here, pass the rest as keywords "
                "(wt.open and wt.open_store read every option from the query)"
            )
    elif isinstance(url, URL):
        parsed, socket_path = url, None
    else:
        raise ConfigError(f"MySQLStore url must be a str; got {url!r}")
    if parsed.scheme not in _SCHEMES:
        raise ConfigError(f"MySQLStore takes mysql:// or mariadb:// URLs; got {parsed}")
    database = parsed.path.lstrip("/")
    if "/" in database:
        raise ConfigError(f"malformed MySQL URL {parsed}: the path is one database name")
    from_url_parts = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username or None,
        "password": parsed.password,
        "database": database or None,
        "unix_socket": socket_path or None,
    }
    merged = dict(given)
    for name, value in from_url_parts.items():
        if value is None:
            continue
        if given[name] is not None and given[name] != value:
            shown = "***" if name == "password" else repr(given[name])
            raise ConfigError(
                f"{name} is given twice, in the URL and as {name}={shown}; give it once"
            )
        merged[name] = value
    return merged


def _float_option(options: dict[str, Any], name: str, *, none_ok: bool = False) -> Any:
    raw = options.pop(name)
    if none_ok and (raw is None or (isinstance(raw, str) and raw.lower() in ("none", ""))):
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None


def from_url(url: URL, options: dict[str, Any]) -> MySQLStore:
    """``mysql://user:password@host:3306/db?table=t&pool_size=8`` (also ``mariadb://``).

    Options: ``table``, ``pool_size``, ``connect_timeout``, ``read_timeout``,
    ``write_timeout`` (``none``: no limit), ``pool_timeout``, ``unix_socket``.
    """
    kwargs: dict[str, Any] = {}
    if "table" in options:
        kwargs["table"] = options.pop("table")
    if "unix_socket" in options:
        kwargs["unix_socket"] = str(options.pop("unix_socket")) or None
    if "pool_size" in options:
        raw = options.pop("pool_size")
        try:
            kwargs["pool_size"] = raw if isinstance(raw, int) else int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"pool_size={raw!r} is not an integer") from None
    for name in ("connect_timeout", "pool_timeout"):
        if name in options:
            kwargs[name] = _float_option(options, name)
    for name in ("read_timeout", "write_timeout"):
        if name in options:
            kwargs[name] = _float_option(options, name, none_ok=True)
    return MySQLStore(url, **kwargs)


_LIVE_STORES: weakref.WeakSet[MySQLStore] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for store in list(_LIVE_STORES):
        store._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)


def _describe_durability(flush: Any) -> str:
    """Plain words for what an acknowledged write survives, from the redo log setting."""
    value = str(flush)
    if value == "1":
        return "innodb_flush_log_at_trx_commit=1: durable, the redo log is flushed at each commit"
    if value == "2":
        return (
            "innodb_flush_log_at_trx_commit=2: survives a server crash, but the last ~1 s of "
            "acknowledged writes can be lost on a host crash or power loss"
        )
    if value == "0":
        return (
            "innodb_flush_log_at_trx_commit=0: the last ~1 s of acknowledged writes can be lost "
            "on a server crash"
        )
    return f"innodb_flush_log_at_trx_commit={value}: durability unknown"

"""``RedisStore``: a byte store in Redis, one string key per entry under a key prefix.

Durability is the server's: ``store`` returns once Redis acknowledged the write,
and whether that write survives a server crash depends on ``appendonly`` and
``appendfsync`` (read once at construction; see ``durability``). Safe from many
threads (a bounded, blocking pool of connections) and across ``fork`` (a child
builds a new pool and never touches its parent's sockets).
"""

from __future__ import annotations

import functools
import math
import os
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ChildDeadlockedError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.retry import Retry

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
from ..url import URL, parse_url
from .base import BytesStore
from .base import batch_item_key as _key_of

__all__ = ["DEFAULT_URL", "RedisStore", "from_url"]

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
_SCHEMES = frozenset({"redis", "rediss", "unix"})
_MAX_PREFIX = 256
_GLOB = frozenset("*?[]\\")  # SCAN MATCH / KEYS metacharacters
_CERT_REQS = frozenset({"none", "optional", "required"})
# Errors a call maps into the writethrough tree (anything else is a bug and propagates).
_ERRORS = (RedisError, ChildDeadlockedError, OSError, TypeError, ValueError)


class RedisStore(BytesStore):
    """A byte store in one Redis database: key ``prefix + key`` holds the value (a string).

    ``url`` is ``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS)
    or ``unix://[user:password@]/path/to.sock?db=N``. A string URL's query may
    hold ``db`` and the ``ssl_*`` options; a parsed ``URL`` (as ``wt.open``
    passes it) is used for its address only.

    ``prefix`` keeps this store's keys apart from other data in the database; it
    must be 1 to 256 printable characters without whitespace or the glob
    characters ``* ? [ ] \\`` (an empty prefix mixes with everything else and
    needs ``allow_empty_prefix=True``). ``pool_size`` bounds the connections;
    a call waits up to ``pool_timeout`` seconds for a free one. ``socket_timeout``
    bounds each command, ``connect_timeout`` each connection attempt.

    Nothing is retried behind the caller's back except a read whose connection
    broke (once, on a fresh connection): a write that fails raises, so its outcome
    is never reported twice. The store owns its pool (it does not take a
    ``redis.Redis`` client) because these choices, the timeouts and fork handling
    are what its guarantees rest on.
    """

    #: ``store_many`` is one MSET (atomic), so a writer queue may group puts into it
    supports_group_commit: ClassVar[bool] = True
    group_commit_default: ClassVar[bool] = False

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        prefix: str = "wt:",
        allow_empty_prefix: bool = False,
        pool_size: int = 32,
        socket_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        pool_timeout: float = 5.0,
        db: int | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool = True,
    ) -> None:
        _check_prefix(prefix, allow_empty_prefix)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigError(f"pool_size must be an int >= 1; got {pool_size!r}")
        for name, seconds in (
            ("socket_timeout", socket_timeout),
            ("connect_timeout", connect_timeout),
            ("pool_timeout", pool_timeout),
        ):
            _check_seconds(name, seconds)
        if isinstance(url, str):
            parsed = parse_url(url)
            query = dict(parsed.query)
            db = _pop_db(query, db)
            ssl = {k: query.pop(k) for k in list(query) if k.startswith("ssl_")}
            if query:
                raise ConfigError(
                    f"unknown option(s) in RedisStore URL query: {', '.join(sorted(query))}; "
                    "the query takes db and ssl_* only, pass the rest as keywords "
                    "(wt.open and wt.open_store read every option from the query)"
                )
            if ssl:
                converted = _convert_options(ssl)
                if ssl:
                    raise ConfigError(f"unknown option(s) in Redis URL: {', '.join(sorted(ssl))}")
                ssl_ca_certs = converted.get("ssl_ca_certs", ssl_ca_certs)
                ssl_certfile = converted.get("ssl_certfile", ssl_certfile)
                ssl_keyfile = converted.get("ssl_keyfile", ssl_keyfile)
                ssl_cert_reqs = converted.get("ssl_cert_reqs", ssl_cert_reqs)
                ssl_check_hostname = converted.get("ssl_check_hostname", ssl_check_hostname)
        elif isinstance(url, URL):
            parsed = url
        else:
            raise ConfigError(f"RedisStore url must be a str; got {url!r}")

        self._prefix_text = prefix
        self._prefix = prefix.encode()
        self._pool_size = pool_size
        self._socket_timeout = float(socket_timeout)
        self._connect_timeout = float(connect_timeout)
        self._pool_timeout = float(pool_timeout)
        self._password = parsed.password or None
        self._kwargs = _connection_kwargs(parsed, db)
        tls = parsed.scheme == "rediss"
        ssl_given = (ssl_ca_certs, ssl_certfile, ssl_keyfile) != (None, None, None)
        if not tls and (ssl_given or ssl_cert_reqs != "required" or not ssl_check_hostname):
            raise ConfigError(f"ssl_* options need a rediss:// URL; got {parsed.scheme}://")
        if tls:
            if ssl_cert_reqs not in _CERT_REQS:
                raise ConfigError(
                    f"ssl_cert_reqs must be 'none', 'optional' or 'required'; got {ssl_cert_reqs!r}"
                )
            self._kwargs.update(
                connection_class=redis.SSLConnection,
                ssl_ca_certs=ssl_ca_certs,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
                ssl_cert_reqs=ssl_cert_reqs,
                ssl_check_hostname=bool(ssl_check_hostname),
            )
        self._db: int = self._kwargs["db"]
        self._url = _display_url(parsed, self._db)
        self._identity = _identity(parsed, self._db, prefix)

        self._use_pool(*self._new_pool())
        try:
            self._durability, self._durable = self._handshake()
        except BaseException:
            self._closed = True
            self._pool.disconnect()
            raise
        _LIVE_STORES.add(self)

    # -- connections
    def _new_pool(self) -> tuple[redis.BlockingConnectionPool, redis.Redis]:
        """A pool of at most ``pool_size`` connections, opened on demand (no I/O here)."""
        make_pool: Any = redis.BlockingConnectionPool  # untyped in redis-py
        pool: redis.BlockingConnectionPool = make_pool(
            retry=Retry(NoBackoff(), 0), **self._pool_options()
        )
        return pool, redis.Redis(connection_pool=pool)

    def _pool_options(self) -> dict[str, Any]:
        """The pool's settings (shared with the asyncio store, which adds its own ``retry``)."""
        return dict(
            max_connections=self._pool_size,
            timeout=self._pool_timeout,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._connect_timeout,
            # no retries inside redis-py: a failed write must not be sent twice
            retry_on_timeout=False,
            retry_on_error=[],
            **self._kwargs,
        )

    def _handshake(self) -> tuple[str, bool | None]:
        """PING, and read the persistence settings, in one round trip; fail fast if down."""
        pipe: Any = self._client.pipeline(transaction=False)
        pipe.execute_command("PING")
        for name in ("appendonly", "appendfsync", "save"):
            pipe.execute_command("CONFIG", "GET", name)
        try:
            replies = pipe.execute(raise_on_error=False)
            if isinstance(replies[0], Exception):
                raise replies[0]
        except _ERRORS as exc:
            error = self._error(exc, "connect", write=False)
            if isinstance(error, StoreUnavailable):
                error = StoreUnavailable(f"{error}; is the Redis server running at {self._url}?")
            raise error from exc
        finally:
            pipe.reset()
        settings = [
            _config_value(reply, name)
            for reply, name in zip(replies[1:], _PERSISTENCE, strict=True)
        ]
        return _describe_durability(*settings)

    def _use_pool(self, pool: redis.BlockingConnectionPool, client: redis.Redis) -> None:
        self._pool, self._client = pool, client
        self._get_connection: Callable[[], Any] = _getter(pool)
        self._release: Callable[[Any], None] = pool.release

    def _call(self, *args: Any) -> Any:
        """Send one command on a pooled connection and return its reply (driver errors as is).

        The hot paths' round trip: what ``redis.Redis.execute_command`` does without
        its retries, metrics and callbacks. An error reply leaves the connection
        usable; any other failure leaves it in an unknown state, so it is closed
        before going back to the pool (the pool reconnects it on next use).
        """
        conn = self._get_connection()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except ResponseError:
            self._release(conn)
            raise
        except BaseException:
            conn.disconnect()
            self._release(conn)
            raise
        self._release(conn)
        return reply

    def _read(self, *args: Any) -> Any:
        """``_call`` for a read, sent once more on a fresh connection if its connection broke.

        Only a connection that failed under the command is retried: not a refused
        connect, a timeout (that would double the wait), or an empty pool.
        """
        conn = self._get_connection()
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except ResponseError:
            self._release(conn)
            raise
        except redis.ConnectionError as exc:
            conn.disconnect()
            self._release(conn)
            if isinstance(exc, AuthenticationError | BusyLoadingError):
                raise
            return self._call(*args)
        except BaseException:
            conn.disconnect()
            self._release(conn)
            raise
        self._release(conn)
        return reply

    def _after_fork_in_child(self) -> None:
        """Start a new pool: the child must never write to its parent's sockets.

        The parent's pool is kept referenced, unused and unclosed (closing it could
        shut down sockets the parent still uses).
        """
        if self._closed:
            return
        _INHERITED.append(self._pool)
        self._use_pool(*self._new_pool())

    def _close(self) -> None:
        self._get_connection = self._refuse
        _LIVE_STORES.discard(self)
        self._pool.disconnect()

    def _refuse(self) -> Any:
        raise CacheClosed(f"{self._identity}: store is closed")

    # -- errors
    def _error(self, exc: BaseException, action: str, *, write: bool) -> WriteThroughError:
        """Map a driver exception into the writethrough tree (the caller chains it)."""
        if self._closed:
            return CacheClosed(f"{self._identity}: store is closed")
        detail = str(exc).rstrip(".") or type(exc).__name__
        if self._password and len(self._password) >= 4:
            detail = detail.replace(self._password, "***")
        message = f"{self._identity}: {action} failed: {detail}"
        if isinstance(exc, AuthenticationError):
            return StoreUnavailable(f"{message}; check the user name and password in the URL")
        if isinstance(exc, BusyLoadingError):
            return StoreUnavailable(f"{message} (the server is still loading its data)")
        if isinstance(exc, redis.TimeoutError):
            limit = self._connect_timeout if "connecting" in detail else self._socket_timeout
            return StoreUnavailable(f"{message} (no answer within {limit:g} s)")
        if isinstance(exc, redis.ConnectionError | OSError | ChildDeadlockedError):
            if "No connection available" in detail:
                message += (
                    f" (all {self._pool_size} pooled connections stayed busy for "
                    f"{self._pool_timeout:g} s; raise pool_size)"
                )
            return StoreUnavailable(message)
        if write and isinstance(exc, OutOfMemoryError):
            return StoreFull(f"{message} (the server is at maxmemory and evicts nothing)")
        if write and isinstance(exc, ReadOnlyError):
            return StoreWriteError(f"{message} (the server is a read-only replica)")
        return StoreWriteError(message) if write else StoreError(message)

    def _batch_error(self, exc: BaseException, action: str, keys: Sequence[bytes]) -> BaseException:
        """One transaction failed: every key failed, none succeeded (DESIGN rule 9)."""
        error = self._error(exc, action, write=True)
        if isinstance(error, CacheClosed):
            return error
        error.__cause__ = exc
        return BatchError(
            f"{error} (the whole batch of {len(keys)} was refused)", dict.fromkeys(keys, error), []
        )

    # -- the store protocol (hot paths: keep them short)
    def load(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._read("GET", self._prefix + key)
        except _ERRORS as exc:
            raise self._error(exc, "load", write=False) from exc
        return value

    def store(self, key: bytes, value: bytes) -> None:
        try:
            self._call("SET", self._prefix + key, value)
        except _ERRORS as exc:
            raise self._error(exc, "store", write=True) from exc

    def remove(self, key: bytes) -> bool:
        try:
            removed: int = self._call("DEL", self._prefix + key)
        except _ERRORS as exc:
            raise self._error(exc, "remove", write=True) from exc
        return removed > 0

    # -- batches
    def load_many(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        """Values of the keys found: one MGET (one atomic snapshot), absent keys left out."""
        self._check_open()
        keys = list(keys)
        if not keys:
            return {}
        prefix = self._prefix
        try:
            values: list[bytes | None] = self._read("MGET", *[prefix + key for key in keys])
        except _ERRORS as exc:
            raise self._error(exc, "load_many", write=False) from exc
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store every pair with one MSET (atomic: all applied, or none and ``BatchError``)."""
        self._check_open()
        if not items:
            return
        prefix = self._prefix
        try:
            flat: list[bytes] = []
            for key, value in items:
                flat += (prefix + key, value)
            self._call("MSET", *flat)
        except _ERRORS as exc:
            raise self._batch_error(exc, "store_many", [_key_of(i) for i in items]) from exc

    def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """One DEL per key inside MULTI/EXEC; per key, whether it existed.

        A key repeated in ``keys`` counts as existing once, as a loop would report it.
        At ``maxmemory`` Redis refuses to queue anything after MULTI (nothing is
        applied); DEL alone is allowed there, and frees memory, so the DELs then run
        as a plain pipeline: each key's result is still exact, the batch not atomic.
        """
        self._check_open()
        keys = list(keys)
        if not keys:
            return []
        full = [self._prefix + key for key in keys]
        try:
            try:
                replies = self._delete(full, transaction=True)
            except OutOfMemoryError:
                replies = self._delete(full, transaction=False)
        except _ERRORS as exc:
            raise self._batch_error(exc, "remove_many", keys) from exc
        existed: list[bool] = []
        failed: dict[Hashable, BaseException] = {}
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, Exception):  # refused alone, inside EXEC or the pipeline
                error = self._error(reply, "remove_many", write=True)
                error.__cause__ = reply
                failed[key] = error
            existed.append(reply is True or (isinstance(reply, int) and reply > 0))
        if failed:
            succeeded = [key for key in keys if key not in failed]
            first = next(iter(failed.values()))
            raise BatchError(
                f"{len(failed)} of {len(keys)} removals failed: {first}", failed, succeeded
            )
        return existed

    def _delete(self, full_keys: list[bytes], *, transaction: bool) -> list[Any]:
        """DEL each key in one round trip; the replies (ints, or exceptions per command)."""
        pipe: Any = self._client.pipeline(transaction=transaction)
        try:
            for key in full_keys:
                pipe.execute_command("DEL", key)
            replies: list[Any] = pipe.execute(raise_on_error=False)
        finally:
            pipe.reset()
        return replies

    # -- description
    @property
    def durability(self) -> str:
        """What an acknowledged write survives, in plain words (read at construction)."""
        return self._durability

    @property
    def durable(self) -> bool | None:
        """True with ``appendonly yes`` + ``appendfsync always``; None when unknown."""
        return self._durable

    @property
    def prefix(self) -> str:
        return self._prefix_text

    @property
    def db(self) -> int:
        return self._db

    @property
    def url(self) -> str:
        """The server address, without the password."""
        return self._url

    @property
    def identity(self) -> str:
        return self._identity

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return (
            f"RedisStore({self._url!r}, prefix={self._prefix_text!r}, "
            f"pool_size={self._pool_size}, socket_timeout={self._socket_timeout:g}{state})"
        )


_PERSISTENCE = ("appendonly", "appendfsync", "save")
_REDIS_VERSION = tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())


def _getter(pool: redis.BlockingConnectionPool) -> Callable[[], Any]:
    """``pool.get_connection`` called without arguments (redis-py < 5.3 wants a command name)."""
    if _REDIS_VERSION >= (5, 3):
        get: Callable[[], Any] = pool.get_connection
        return get
    return functools.partial(pool.get_connection, "GET")  # pragma: no cover - old redis-py


# -- settings


def _check_prefix(prefix: object, allow_empty: bool) -> None:
    """Refuse prefixes that could reach other data or break patterns (before any I/O)."""
    if not isinstance(prefix, str):
        raise ConfigError(f"Redis key prefix must be a str; got {prefix!r}")
    if not prefix:
        if allow_empty:
            return
        raise ConfigError(
            "empty Redis key prefix: the store's keys would mix with every other key in the "
            "database; choose a prefix (default 'wt:') or pass allow_empty_prefix=True"
        )
    bad = [ch for ch in prefix if ch in _GLOB or ch.isspace() or not ch.isprintable()]
    if bad or len(prefix) > _MAX_PREFIX:
        raise ConfigError(
            f"invalid Redis key prefix {prefix!r}: use 1 to {_MAX_PREFIX} printable characters "
            "without whitespace or any of * ? [ ] \\"
        )


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number of seconds > 0; got {value!r}")


def _pop_db(query: dict[str, Any], db: int | None) -> int | None:
    if "db" not in query:
        return db
    given = _to_int("db", query.pop("db"))
    if db is not None and db != given:
        raise ConfigError(f"db is given twice with different values: {given} and {db}")
    return given


def _connection_kwargs(url: URL, db: int | None) -> dict[str, Any]:
    """redis-py connection settings for ``url`` (address, credentials, db); validated."""
    if url.scheme not in _SCHEMES:
        raise ConfigError(f"Redis URLs start with redis://, rediss:// or unix://; got {url}")
    kwargs: dict[str, Any] = {"username": url.username or None, "password": url.password or None}
    if url.scheme == "unix":
        if url.host or url.port:
            raise ConfigError(f"unix:// URLs have no host: use unix:///path/to.sock; got {url}")
        if not url.path or url.path == "/":
            raise ConfigError(f"unix:// URL {url} names no socket: use unix:///path/to.sock")
        kwargs.update(connection_class=redis.UnixDomainSocketConnection, path=url.path)
    else:
        kwargs.update(host=url.host or "localhost", port=url.port or 6379)
        path = url.path.strip("/")
        if path:
            if not path.isdigit():
                raise ConfigError(f"the path of a Redis URL is the db number (/0); got {url}")
            if db is not None and db != int(path):
                raise ConfigError(f"db is given twice with different values: {path} and {db}")
            db = int(path)
    if db is None:
        db = 0
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(f"db must be an int >= 0; got {db!r}")
    kwargs["db"] = db
    return kwargs


def _host(url: URL) -> str:
    host = url.host or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{url.port or 6379}"


def _display_url(url: URL, db: int) -> str:
    """The address for messages and repr: user name kept, password masked."""
    auth = ""
    if url.username:
        auth = quote(url.username, safe="")
    if url.password:
        auth += ":***"
    auth = f"{auth}@" if auth else ""
    if url.scheme == "unix":
        return f"unix://{auth}{url.path}?db={db}"
    return f"{url.scheme}://{auth}{_host(url)}/{db}"


def _identity(url: URL, db: int, prefix: str) -> str:
    """Server, database and prefix: what the store holds (no credentials: same data, any user)."""
    if url.scheme == "unix":
        return f"unix://{url.path}?db={db}#{prefix}"
    return f"{url.scheme}://{_host(url)}/{db}#{prefix}"


# -- durability


def _config_value(reply: Any, name: str) -> str | None:
    """One CONFIG GET reply as text; None when CONFIG was refused (renamed, ACL) or empty."""
    if isinstance(reply, Exception) or not isinstance(reply, dict):
        return None
    for key, value in reply.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _describe_durability(
    appendonly: str | None, appendfsync: str | None, save: str | None
) -> tuple[str, bool | None]:
    """Plain words for what an acknowledged write survives, and whether that is durable."""
    if appendonly is None:
        return (
            "unknown: CONFIG GET is not allowed on this server, so whether acknowledged "
            "writes survive a server crash cannot be told",
            None,
        )
    if appendonly.lower() != "yes":
        if not save:
            return (
                "no persistence: acknowledged writes are lost if the Redis server crashes "
                'or restarts (appendonly no, save "")',
                False,
            )
        return (
            f"snapshots only: writes since the last RDB snapshot are lost if the Redis server "
            f'crashes (appendonly no, save "{save}")',
            False,
        )
    fsync = (appendfsync or "").lower()
    if fsync == "always":
        return (
            "appendfsync always: durable, each write is fsynced before it is acknowledged",
            True,
        )
    if fsync == "everysec":
        return (
            "appendfsync everysec: up to ~1 s of acknowledged writes can be lost on a server crash",
            False,
        )
    if fsync == "no":
        return (
            "appendfsync no: acknowledged writes the OS has not flushed yet (often ~30 s) can be "
            "lost on a host crash",
            False,
        )
    return (f"appendonly yes, appendfsync {appendfsync!r}: durability unknown", None)


# -- fork safety

_LIVE_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()
_INHERITED: list[redis.BlockingConnectionPool] = []  # a forked child's copies of parent pools


def _forget_parent_connections() -> None:
    for store in list(_LIVE_STORES):
        store._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)


# -- wt.open


def _to_int(name: str, raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            pass
    raise ConfigError(f"option {name}={raw!r} is not an integer")


def _to_float(name: str, raw: Any) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise ConfigError(f"option {name}={raw!r} is not a number of seconds")


def _to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigError(f"option {name}={raw!r} is not a boolean (true/false)")


def _to_str(name: str, raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    raise ConfigError(f"option {name}={raw!r} is not a string")


_OPTIONS: Final = {
    "prefix": _to_str,
    "allow_empty_prefix": _to_bool,
    "pool_size": _to_int,
    "socket_timeout": _to_float,
    "connect_timeout": _to_float,
    "pool_timeout": _to_float,
    "db": _to_int,
    "ssl_ca_certs": _to_str,
    "ssl_certfile": _to_str,
    "ssl_keyfile": _to_str,
    "ssl_cert_reqs": _to_str,
    "ssl_check_hostname": _to_bool,
}


def _convert_options(options: dict[str, Any]) -> dict[str, Any]:
    """Pop and convert the options ``RedisStore`` takes; the rest stay in ``options``."""
    return {
        name: convert(name, options.pop(name))
        for name, convert in _OPTIONS.items()
        if name in options
    }


def from_url(url: URL, options: dict[str, Any]) -> RedisStore:
    """``redis://[user:password@]host:port/db``, ``rediss://...``, ``unix:///path.sock?db=N``.

    Options: prefix, allow_empty_prefix, pool_size, socket_timeout, connect_timeout,
    pool_timeout, db, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs,
    ssl_check_hostname.
    """
    return RedisStore(url, **_convert_options(options))

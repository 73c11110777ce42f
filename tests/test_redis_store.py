"""RedisStore against real Redis servers: the shared one on loopback and servers the tests own.

The shared server (127.0.0.1:6379) is used under a unique key prefix that each test
deletes afterwards. Tests that stop, restart or misconfigure a server start their
own ``redis-server`` on a free port in a temporary directory and kill it in teardown.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (
    IN_CI,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_prefix,
    require_server,
    unique_name,
)

try:
    import redis
except ImportError:  # CI installs it (.[dev,all]); elsewhere the module is skipped
    if IN_CI:
        raise
    pytest.skip("redis-py is not installed; pip install -e '.[dev,all]'", allow_module_level=True)

import writethrough as wt
import writethrough.stores.redis as redis_module
from writethrough.errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
)
from writethrough.stores.redis import RedisStore
from writethrough.url import open_store

REDIS_SERVER = shutil.which("redis-server")
FAST = {"socket_timeout": 0.5, "connect_timeout": 0.5, "pool_timeout": 0.5}
PASSWORD = "s3cret-Pa55word"


# -- servers this module owns


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnServer:
    """A ``redis-server`` that one test starts, stops and restarts on one port."""

    def __init__(self, directory: Path, config: list[list[str]], tls: tuple[str, str] | None):
        self.port = free_port()
        self.dir = directory
        self.tls = tls
        self.password = next((c[1] for c in config if c[0] == "requirepass"), None)
        ports = ["--port", str(self.port)]
        if tls is not None:
            cert, key = tls
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert]
            ports += ["--tls-key-file", key, "--tls-auth-clients", "no"]
        self.args = [REDIS_SERVER or "redis-server", *ports, "--bind", "127.0.0.1"]
        self.args += ["--daemonize", "no", "--save", "", "--appendonly", "no"]
        self.args += ["--dir", str(directory), "--logfile", str(directory / "redis.log")]
        for option in config:
            self.args += [f"--{option[0]}", *option[1:]]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self._ready():
            if self.proc.poll() is not None:
                log_file = self.dir / "redis.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {err}{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.01)

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        if self.tls:
            return True
        client = self.client()
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return True  # up, and asking for a password
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)


ServerFactory = Callable[..., OwnServer]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """``own_server(("maxmemory", "2mb"), ("rename-command", "CONFIG", ""))``; killed after."""
    if REDIS_SERVER is None:
        if IN_CI:
            pytest.fail("redis-server is not on PATH; CI needs it")
        pytest.skip("redis-server is not on PATH")
    started: list[OwnServer] = []

    def make(*options: tuple[str, ...], tls: tuple[str, str] | None = None) -> OwnServer:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        server = OwnServer(directory, [list(option) for option in options], tls)
        started.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


# -- the shared server


@pytest.fixture
def prefix() -> Iterator[str]:
    require_server("Redis", REDIS_PORT)
    name = unique_name("wt_redis") + ":"
    try:
        yield name
    finally:
        delete_redis_prefix(name)


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """What another program sees on the shared server."""
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def store(prefix: str) -> Iterator[RedisStore]:
    with RedisStore(REDIS_URL, prefix=prefix) as s:
        yield s


def socket_fds() -> int:
    """Sockets this process holds open (Linux), after collecting garbage."""
    gc.collect()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


# -- values


def test_store_load_remove_under_the_prefix(
    store: RedisStore, raw: redis.Redis, prefix: str
) -> None:
    store.store(b"k", b"v")
    assert store.load(b"k") == b"v"
    assert raw.get(prefix.encode() + b"k") == b"v"  # stored as prefix + key, as it is
    assert store.remove(b"k") is True
    assert store.load(b"k") is None
    assert raw.exists(prefix.encode() + b"k") == 0
    assert store.remove(b"k") is False


def test_overwrite_empty_value_and_empty_key(store: RedisStore) -> None:
    store.store(b"k", b"one")
    store.store(b"k", b"two")
    assert store.load(b"k") == b"two"
    store.store(b"empty", b"")
    assert store.load(b"empty") == b""  # a stored empty value is not "absent"
    store.store(b"", b"empty key")
    assert store.load(b"") == b"empty key"
    assert store.remove(b"") is True


def test_binary_keys_and_values(store: RedisStore) -> None:
    keys = [bytes([i]) for i in range(256)] + [bytes(range(256)), b"ab\x00", b"\x00ab", b"\r\n*1"]
    store.store_many([(k, k[::-1] + b"\x00\xff") for k in keys])
    for key in keys:
        assert store.load(key) == key[::-1] + b"\x00\xff"
    assert store.load_many(keys) == {k: k[::-1] + b"\x00\xff" for k in keys}
    assert store.load(b"\x00\x00") is None


def test_16_mib_value(store: RedisStore) -> None:
    value = os.urandom(16 << 20)
    store.store(b"big", value)
    assert store.load(b"big") == value
    assert store.load_many([b"big"]) == {b"big": value}


def test_prefixes_isolate_stores(prefix: str, raw: redis.Redis) -> None:
    other = prefix + "other:"
    try:
        with RedisStore(prefix=prefix) as a, RedisStore(prefix=other) as b:
            a.store(b"k", b"from a")
            assert b.load(b"k") is None
            b.store(b"k", b"from b")
            assert a.load(b"k") == b"from a"
            assert a.load_many([b"k", b"other:k"]) == {b"k": b"from a", b"other:k": b"from b"}
            assert b.remove_many([b"k"]) == [True]
            assert a.load(b"k") == b"from a"
            assert a.identity != b.identity
    finally:
        delete_redis_prefix(other)


def test_unicode_prefix_and_longest_prefix(prefix: str) -> None:
    for extra in ("ключ:", "x" * (256 - len(prefix))):
        with RedisStore(prefix=prefix + extra) as s:
            s.store(b"k", b"v")
            assert s.load(b"k") == b"v"
            assert s.prefix == prefix + extra


# -- batches


def test_batches_with_absent_and_repeated_keys(store: RedisStore) -> None:
    store.store_many([(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])  # the last write of a key wins
    assert store.load_many([b"a", b"b", b"c", b"a"]) == {b"a": b"3", b"b": b"2"}
    assert store.load_many(iter([b"c"])) == {}
    assert store.remove_many([b"a", b"a", b"c", b"b"]) == [True, False, False, True]
    assert store.load_many([b"a", b"b"]) == {}
    assert store.load_many([]) == {}
    store.store_many([])
    assert store.remove_many([]) == []


def test_big_batches(store: RedisStore) -> None:
    items = [(b"k%d" % i, b"v%d" % i) for i in range(20_000)]
    store.store_many(items)
    assert store.load_many([k for k, _ in items] + [b"nope"]) == dict(items)
    keys = [b"k%d" % i for i in range(0, 30_000, 2)]
    assert store.remove_many(keys) == [i < 20_000 for i in range(0, 30_000, 2)]
    assert len(store.load_many([k for k, _ in items])) == 10_000
    assert store.remove_many([k for k, _ in items]).count(True) == 10_000


def test_group_commit_over_mset(prefix: str) -> None:
    with wt.WriteThroughCache(RedisStore(prefix=prefix), group_commit=True) as cache:
        assert cache.group_commit is True
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(50):
                    cache.put((t, i), i)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        cache.evict_all()
        assert cache.get_many([(t, i) for t in range(4) for i in range(50)]) == {
            (t, i): i for t in range(4) for i in range(50)
        }
        assert cache.stats().writes == 200


# -- URLs and options


def test_open_store_reads_options_from_the_query(prefix: str) -> None:
    url = f"{REDIS_URL}?prefix={prefix}&pool_size=4&socket_timeout=1.5&connect_timeout=2"
    with open_store(url, pool_timeout="3") as store:
        assert store.prefix == prefix
        assert store.db == 0
        assert store.url == "redis://127.0.0.1:6379/0"
        assert store.identity == f"redis://127.0.0.1:6379/0#{prefix}"
        assert repr(store) == (
            f"RedisStore('redis://127.0.0.1:6379/0', prefix={prefix!r}, pool_size=4, "
            "socket_timeout=1.5)"
        )
        assert (store._pool.max_connections, store._pool.timeout) == (4, 3.0)
        store.store(b"k", b"v")
    assert repr(store).endswith(", closed)")


def test_wt_open_over_redis(prefix: str, raw: redis.Redis) -> None:
    with wt.open(f"{REDIS_URL}?prefix={prefix}&capacity=10") as cache:
        assert isinstance(cache.backing_store, RedisStore)
        cache.put("k", {"a": 1})
        cache.evict_all()
        assert cache.get("k") == {"a": 1}
        assert cache.stats().backing_store_hits == 1
    assert list(raw.scan_iter(match=prefix + "*", count=1000))  # one SCAN page may be empty


def test_db_from_path_or_query(prefix: str, raw: redis.Redis) -> None:
    other = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=1)
    try:
        for url in (
            "redis://127.0.0.1:6379/1",
            "redis://127.0.0.1:6379?db=1",
            "redis://127.0.0.1:6379/1?db=1",
        ):
            with RedisStore(url, prefix=prefix) as store:
                assert store.db == 1
                assert store.identity == f"redis://127.0.0.1:6379/1#{prefix}"
                store.store(b"k", url.encode())
                assert other.get(prefix.encode() + b"k") == url.encode()
                assert raw.get(prefix.encode() + b"k") is None  # db 0 untouched
        with open_store(f"redis://127.0.0.1:6379?prefix={prefix}&db=1") as store:
            assert store.load(b"k") == b"redis://127.0.0.1:6379/1?db=1"
    finally:
        _delete_in_db(other, prefix)
        other.close()


def _delete_in_db(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("redis://127.0.0.1:1/x", {}, "db number"),
        ("redis://127.0.0.1:1/1/2", {}, "db number"),
        ("redis://127.0.0.1:1/1?db=2", {}, "db is given twice"),
        ("redis://127.0.0.1:1/0?db=x", {}, "db='x' is not an integer"),
        ("redis://127.0.0.1:1", {"db": "-1"}, "db must be"),
        ("redis://127.0.0.1:1/0", {"pool_size": "0"}, "pool_size"),
        ("redis://127.0.0.1:1/0", {"pool_size": "many"}, "pool_size"),
        ("redis://127.0.0.1:1/0", {"pool_size": True}, "pool_size"),
        ("redis://127.0.0.1:1/0", {"socket_timeout": "-1"}, "socket_timeout"),
        ("redis://127.0.0.1:1/0", {"connect_timeout": "nan"}, "connect_timeout"),
        ("redis://127.0.0.1:1/0", {"pool_timeout": "inf"}, "pool_timeout"),
        ("redis://127.0.0.1:1/0", {"socket_timeout": "soon"}, "socket_timeout"),
        ("redis://127.0.0.1:1/0", {"allow_empty_prefix": "maybe"}, "allow_empty_prefix"),
        ("redis://127.0.0.1:1/0", {"ssl_ca_certs": "/ca.pem"}, "rediss://"),
        ("rediss://127.0.0.1:1/0", {"ssl_cert_reqs": "sometimes"}, "ssl_cert_reqs"),
        ("unix://localhost/tmp/r.sock", {}, "no host"),
        ("unix://", {}, "names no socket"),
    ],
)
def test_bad_urls_and_options_are_refused_before_connecting(
    url: str, options: dict[str, Any], match: str
) -> None:
    # port 1 never answers: a ConfigError proves nothing tried to connect first
    with pytest.raises(ConfigError, match=match):
        open_store(url, **options)


def test_unknown_options_are_left_for_wt_open(store: RedisStore) -> None:
    options: dict[str, Any] = {"prefix": "p:", "pool_size": "2", "bogus": "1", "capacity": 3}
    converted = redis_module._convert_options(options)
    assert converted == {"prefix": "p:", "pool_size": 2}
    assert options == {"bogus": "1", "capacity": 3}
    with pytest.raises(ConfigError, match=r"unknown option.*bogus"):
        wt.open(f"{REDIS_URL}?prefix={store.prefix}&bogus=1")


def test_constructor_url_query_takes_connection_options_only() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore("redis://127.0.0.1:1/0?prefix=x:")
    with pytest.raises(ConfigError, match="ssl_bogus"):
        RedisStore("rediss://127.0.0.1:1/0?ssl_bogus=1")
    with pytest.raises(ConfigError, match="redis://, rediss:// or unix://"):
        RedisStore("postgresql://127.0.0.1:1/0")
    with pytest.raises(ConfigError):
        RedisStore(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "a b",
        "a*",
        "a?",
        "[a]",
        "a]",
        "a\\b",
        "tab\t",
        "line\n",
        "nul\x00",
        "del\x7f",
        "\u2028",
        "x" * 257,
        None,
        b"wt:",
        3,
    ],
)
def test_hostile_prefixes_are_refused_before_connecting(bad: object) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisStore("redis://127.0.0.1:1/0", prefix=bad)  # type: ignore[arg-type]


def test_empty_prefix_only_when_asked(own_server: ServerFactory) -> None:
    server = own_server()
    with pytest.raises(ConfigError, match="allow_empty_prefix"):
        open_store(f"{server.url}?prefix=")
    with open_store(f"{server.url}?prefix=&allow_empty_prefix=true") as store:
        store.store(b"top", b"level")
        client = server.client()
        assert client.get(b"top") == b"level"
        client.close()
        assert store.identity == f"redis://127.0.0.1:{server.port}/0#"


def test_unix_socket_url(own_server: ServerFactory) -> None:
    directory = tempfile.mkdtemp(prefix="wt")  # short: socket paths are limited to ~100 bytes
    try:
        path = f"{directory}/r.sock"
        server = own_server(("unixsocket", path))
        with open_store(f"unix://{path}?db=2&prefix=u:") as store:
            assert store.identity == f"unix://{path}?db=2#u:"
            assert store.url == f"unix://{path}?db=2"
            store.store(b"k", b"over a unix socket")
            client = redis.Redis(host="127.0.0.1", port=server.port, db=2)
            assert client.get(b"u:k") == b"over a unix socket"
            client.close()
        with RedisStore(f"unix://{path}", prefix="u:") as db0:
            assert db0.load(b"k") is None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_tls_url(own_server: ServerFactory, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    try:
        server = own_server(tls=(cert, key))
    except RuntimeError as exc:
        pytest.skip(f"redis-server without TLS support: {exc}")
    with open_store(f"{server.url}?prefix=t:&ssl_ca_certs={cert}") as store:
        assert store.identity == f"rediss://127.0.0.1:{server.port}/0#t:"
        store.store(b"k", b"encrypted")
        assert store.load(b"k") == b"encrypted"
    # the server's certificate is checked: without the CA the handshake fails
    with pytest.raises(StoreUnavailable, match=r"rediss://127\.0\.0\.1"):
        RedisStore(server.url, **FAST)
    # plain redis:// against a TLS port gets no answer
    with pytest.raises(StoreUnavailable):
        RedisStore(f"redis://127.0.0.1:{server.port}/0", **FAST)


# -- durability


def test_durability_of_the_shared_server(store: RedisStore, raw: redis.Redis) -> None:
    appendonly = raw.config_get("appendonly")["appendonly"]
    if appendonly == "no":
        assert store.durable is False
        assert "acknowledged writes are lost" in store.durability or "snapshot" in store.durability
        assert "appendonly no" in store.durability
    else:
        assert store.durable in (True, False)


def test_durability_without_persistence(own_server: ServerFactory) -> None:
    with RedisStore(own_server().url) as store:
        assert store.durable is False
        assert store.durability == (
            "no persistence: acknowledged writes are lost if the Redis server crashes or "
            'restarts (appendonly no, save "")'
        )


def test_durability_with_appendfsync_always_and_everysec(own_server: ServerFactory) -> None:
    with RedisStore(own_server(("appendonly", "yes"), ("appendfsync", "always")).url) as store:
        assert store.durable is True
        assert store.durability.startswith("appendfsync always: durable")
    with RedisStore(own_server(("appendonly", "yes"), ("appendfsync", "everysec")).url) as store:
        assert store.durable is False
        assert "~1 s" in store.durability
    with RedisStore(own_server(("save", "3600 1")).url) as store:
        assert store.durable is False
        assert store.durability.startswith("snapshots only")


def test_durability_unknown_when_config_is_disabled(own_server: ServerFactory) -> None:
    server = own_server(("rename-command", "CONFIG", ""))
    with RedisStore(server.url) as store:
        assert store.durable is None
        assert store.durability.startswith("unknown")
        store.store(b"k", b"still works")
        assert store.load(b"k") == b"still works"


# -- recovery


def test_server_restart_same_store_works_again(own_server: ServerFactory) -> None:
    server = own_server()
    store = RedisStore(server.url, pool_size=4, **FAST)
    try:
        store.store(b"k", b"v")
        _use_from_threads(store, 4)  # several pooled connections, all stale after the restart
        server.stop()
        start = time.monotonic()
        calls: list[Callable[[], object]] = [
            lambda: store.load(b"k"),
            lambda: store.store(b"k", b"v2"),
            lambda: store.remove(b"k"),
            lambda: store.load_many([b"k"]),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable) as info:
                call()
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            assert f"redis://127.0.0.1:{server.port}/0#wt:" in str(info.value)
        for batch in (lambda: store.store_many([(b"a", b"1")]), lambda: store.remove_many([b"a"])):
            with pytest.raises(BatchError) as batch_info:
                batch()
            assert isinstance(batch_info.value.failed[b"a"], StoreUnavailable)
            assert batch_info.value.succeeded == []
        assert time.monotonic() - start < 2  # refused at once, not retried with backoff

        server.start()  # same port; the data is gone (no persistence), the store is not
        assert store.load(b"k") is None
        store.store(b"k", b"back")
        assert store.load(b"k") == b"back"
        _use_from_threads(store, 4)
    finally:
        store.close()


def _use_from_threads(store: RedisStore, n: int) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(30):
                store.store(b"t%d" % t, b"%d" % i)
                assert store.load(b"t%d" % t) == b"%d" % i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_server_restart_through_the_cache(own_server: ServerFactory) -> None:
    server = own_server()
    with wt.WriteThroughCache(RedisStore(server.url, **FAST)) as cache:
        cache.put("a", 1)
        server.stop()
        with pytest.raises(StoreUnavailable):
            cache.put("b", 2)
        assert cache.get("a") == 1  # still cached
        with pytest.raises(StoreError):
            cache.get("b")
        assert cache.stats().write_errors == 1
        server.start()
        cache.put("b", 2)
        cache.evict_all()
        assert cache.get("b") == 2
        assert cache.get("a") is None  # the server lost it (no persistence)


def _break_pooled_connection(store: RedisStore, server: OwnServer) -> int:
    """Kill the store's only connection on the server, in the window the pool's check misses."""
    conn = store._pool.get_connection()
    try:
        conn.can_read = lambda timeout=0: False  # as if the server closed it just after the check
        conn.send_command("CLIENT", "ID")
        conn_id: int = conn.read_response()
    finally:
        store._pool.release(conn)
    client = server.client()
    client.execute_command("CLIENT", "KILL", "ID", conn_id)
    client.close()
    return conn_id


def test_a_read_is_retried_once_on_a_broken_connection_a_write_is_not(
    own_server: ServerFactory,
) -> None:
    server = own_server()
    with RedisStore(server.url, pool_size=1, **FAST) as store:
        store.store(b"k", b"v")
        killed = _break_pooled_connection(store, server)
        assert store.load(b"k") == b"v"  # the same store, a new connection
        assert store._call("CLIENT", "ID") != killed

        _break_pooled_connection(store, server)
        with pytest.raises(StoreUnavailable) as info:
            store.store(b"k", b"v2")  # never sent twice behind the caller's back
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        assert store.load(b"k") == b"v"
        store.store(b"k", b"v2")
        assert store.load(b"k") == b"v2"


def test_unreachable_server_at_construction_leaves_nothing_open() -> None:
    port = free_port()
    threads, sockets = threading.active_count(), socket_fds()
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        RedisStore(f"redis://127.0.0.1:{port}/0", prefix="p:", **FAST)
    assert time.monotonic() - start < 2
    message = str(info.value)
    assert f"is the Redis server running at redis://127.0.0.1:{port}/0?" in message
    assert "Connection refused" in message
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(StoreUnavailable):
        wt.open(f"redis://127.0.0.1:{port}/0", **FAST)
    assert threading.active_count() == threads
    assert socket_fds() == sockets


def test_timeouts_become_store_unavailable(own_server: ServerFactory) -> None:
    server = own_server()
    with RedisStore(server.url, socket_timeout=0.3) as store:
        store.store(b"k", b"v")
        client = server.client()
        client.execute_command("CLIENT", "PAUSE", "600", "ALL")
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"no answer within 0.3 s") as info:
            store.load(b"k")
        assert isinstance(info.value.__cause__, redis.TimeoutError)
        assert time.monotonic() - start < 0.75  # a timed-out read is not retried
        client.execute_command("CLIENT", "UNPAUSE")
        client.close()
        assert store.load(b"k") == b"v"


def test_pool_exhaustion_names_pool_size(prefix: str) -> None:
    with RedisStore(REDIS_URL, prefix=prefix, pool_size=1, pool_timeout=0.3) as small:
        held = small._pool.get_connection()
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match="raise pool_size"):
                small.load(b"k")
            assert time.monotonic() - start < 0.55  # waited once: an empty pool is not retried
        finally:
            small._pool.release(held)
        assert small.load(b"k") is None


# -- error mapping


def test_password_never_appears(own_server: ServerFactory) -> None:
    server = own_server(("requirepass", PASSWORD))
    good = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    texts: list[str] = []
    with RedisStore(good, **FAST) as store:
        store.store(b"k", b"v")
        assert store.load(b"k") == b"v"
        assert store.url == f"redis://:***@127.0.0.1:{server.port}/0"
        texts += [repr(store), store.identity, store.url, store.durability]
        server.stop()
        with pytest.raises(StoreUnavailable) as down:
            store.store(b"k", b"v")
        texts += _chain(down.value)
    server.start()
    for url in (
        f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0",
        f"redis://default:wrong-{PASSWORD}@127.0.0.1:{server.port}/0",
    ):
        with pytest.raises(StoreUnavailable, match="check the user name and password") as bad:
            RedisStore(url, **FAST)
        assert isinstance(bad.value.__cause__, redis.AuthenticationError)
        texts += _chain(bad.value)
        with pytest.raises(StoreUnavailable) as bad_open:
            wt.open(url, **FAST)
        texts += _chain(bad_open.value)
    with pytest.raises(StoreUnavailable, match="password"):  # none given: NOAUTH
        RedisStore(server.url, **FAST)
    for text in texts:
        assert PASSWORD not in text


def _chain(exc: BaseException | None) -> list[str]:
    texts: list[str] = []
    while exc is not None:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        exc = exc.__cause__ or exc.__context__
    return texts


def test_out_of_memory_becomes_store_full(own_server: ServerFactory) -> None:
    server = own_server(("maxmemory", "2mb"), ("maxmemory-policy", "noeviction"))
    value = b"x" * 65536
    with RedisStore(server.url, **FAST) as store:
        written: list[bytes] = []
        with pytest.raises(StoreFull, match="maxmemory") as info:
            for i in range(200):
                store.store(b"k%d" % i, value)
                written.append(b"k%d" % i)
        assert isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError)
        assert written and len(written) < 200
        with pytest.raises(BatchError) as batch:
            store.store_many([(b"a", value), (b"b", b"small")])
        assert list(batch.value.failed) == [b"a", b"b"]
        assert all(isinstance(e, StoreFull) for e in batch.value.failed.values())
        assert batch.value.succeeded == []
        assert store.load_many([b"a", b"b"]) == {}  # all or nothing
        assert store.load(written[0]) == value  # reads still work
        assert store.remove_many(written) == [True] * len(written)  # DEL frees memory
        store.store(b"again", value)


def test_read_only_replica_refuses_writes(own_server: ServerFactory) -> None:
    server = own_server(("replicaof", "127.0.0.1", str(free_port())))  # a master that never answers
    with RedisStore(server.url, **FAST) as store:
        assert store.load(b"k") is None  # reads are served
        with pytest.raises(StoreWriteError, match="read-only replica") as info:
            store.store(b"k", b"v")
        assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
        with pytest.raises(StoreWriteError):
            store.remove(b"k")
        with pytest.raises(BatchError) as batch:
            store.store_many([(b"k", b"v")])
        assert isinstance(batch.value.failed[b"k"], StoreWriteError)


def test_wrong_type_read_is_a_store_error(store: RedisStore, raw: redis.Redis, prefix: str) -> None:
    raw.rpush(prefix + "list", "x")
    with pytest.raises(StoreError, match="WRONGTYPE") as info:
        store.load(b"list")
    assert type(info.value) is StoreError
    assert isinstance(info.value.__cause__, redis.ResponseError)
    with pytest.raises(StoreError) as bad_key:
        store.load("not bytes")  # type: ignore[arg-type]
    assert not isinstance(bad_key.value, StoreWriteError)
    with pytest.raises(StoreWriteError):
        store.store(b"k", None)  # type: ignore[arg-type]
    assert store.remove(b"list") is True  # DEL removes any type
    store.store(b"list", b"now a string")


@pytest.mark.parametrize(
    ("exc", "write", "expected"),
    [
        (redis.ConnectionError("gone"), False, StoreUnavailable),
        (redis.TimeoutError("slow"), True, StoreUnavailable),
        (redis.exceptions.BusyLoadingError("LOADING"), False, StoreUnavailable),
        (redis.exceptions.BusyLoadingError("LOADING"), True, StoreUnavailable),
        (redis.AuthenticationError("WRONGPASS"), True, StoreUnavailable),
        (redis.exceptions.OutOfMemoryError("OOM"), True, StoreFull),
        (redis.exceptions.OutOfMemoryError("OOM"), False, StoreError),
        (redis.exceptions.ReadOnlyError("READONLY"), True, StoreWriteError),
        (redis.ResponseError("ERR"), True, StoreWriteError),
        (redis.ResponseError("ERR"), False, StoreError),
        (redis.exceptions.DataError("bad"), True, StoreWriteError),
    ],
)
def test_error_mapping_table(
    store: RedisStore, exc: Exception, write: bool, expected: type[Exception]
) -> None:
    error = store._error(exc, "op", write=write)
    assert type(error) is expected
    assert str(error).startswith(f"{store.identity}: op failed: ")


# -- closing, threads, fork


def test_closed_store_refuses_every_call_and_closes_its_connections(
    own_server: ServerFactory,
) -> None:
    server = own_server()
    store = RedisStore(server.url, pool_size=4)
    store.store(b"k", b"v")
    _use_from_threads(store, 4)
    client = server.client()
    assert client.info("clients")["connected_clients"] >= 2
    store.close()
    store.close()  # idempotent
    deadline = time.monotonic() + 5
    while client.info("clients")["connected_clients"] != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.info("clients")["connected_clients"] == 1  # only this client is left
    calls: list[Callable[[], object]] = [
        lambda: store.load(b"k"),
        lambda: store.store(b"k", b"v"),
        lambda: store.remove(b"k"),
        lambda: store.load_many([b"k"]),
        lambda: store.store_many([(b"k", b"v")]),
        lambda: store.remove_many([b"k"]),
        lambda: store.load_many([]),
    ]
    for call in calls:
        with pytest.raises(CacheClosed):
            call()
    assert client.get(b"wt:k") == b"v"
    assert client.info("clients")["connected_clients"] == 1
    client.close()


def test_eight_threads_share_a_small_pool(prefix: str) -> None:
    with RedisStore(prefix=prefix, pool_size=3) as store:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(100):
                    store.store(b"t%d-%d" % (t, i), b"v%d" % i)
                    assert store.load(b"t%d-%d" % (t, i)) == b"v%d" % i
                    if i % 10 == 0:
                        keys = [b"t%d-%d" % (t, j) for j in range(i + 1)]
                        assert len(store.load_many(keys)) == i + 1
                        store.store_many([(b"t%d-b%d" % (t, i), b"b")])
                        assert store.remove_many([b"t%d-b%d" % (t, i)]) == [True]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store._pool._connections) <= 3


def _in_child(body: Callable[[], bool]) -> int:
    """Run ``body`` in a forked child (10 s at most); its exit code: 0 when it returned True."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)
            code = 0 if body() else 2
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_opens_its_own_connections(store: RedisStore) -> None:
    store.store(b"parent", b"1")
    parent_id = store._call("CLIENT", "ID")

    def child() -> bool:
        ok = store.load(b"parent") == b"1"
        store.store(b"child", b"2")
        return ok and store._call("CLIENT", "ID") != parent_id

    assert _in_child(child) == 0
    assert store._call("CLIENT", "ID") == parent_id  # the parent's connection is intact
    assert store.load(b"child") == b"2"
    store.store(b"parent", b"3")
    assert store.load_many([b"parent", b"child"]) == {b"parent": b"3", b"child": b"2"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_the_only_connection_is_in_use(prefix: str) -> None:
    with RedisStore(prefix=prefix, pool_size=1, pool_timeout=0.5) as store:
        store.store(b"k", b"v")
        held = store._pool.get_connection()  # as if a parent thread were mid-command
        try:
            assert _in_child(lambda: store.load(b"k") == b"v") == 0
        finally:
            store._pool.release(held)
        assert store.load(b"k") == b"v"

"""One conformance suite for every store, against the real thing (files, SQLite, servers).

Each store kind says how to name a fresh store (a URL with a unique table,
prefix or directory), how to clean it up, and what it can do: durable stores
are reopened, shareable ones are written by two processes at once, stores
with names are fed hostile ones. Everything else runs on every kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import (
    MYSQL_PORT,
    MYSQL_URL,
    PG_PORT,
    PG_URL,
    REDIS_PORT,
    REDIS_URL,
    delete_redis_prefix,
    drop_mysql_table,
    drop_pg_table,
    require_module,
    require_server,
    unique_name,
)

import writethrough as wt
from writethrough.errors import BatchError, CacheClosed, ConfigError, StoreError
from writethrough.url import open_store

SRC = Path(wt.__file__).resolve().parents[1]
MiB = 1 << 20


@dataclass
class Kind:
    """How to make, clean up and stress one kind of store."""

    name: str
    url: Callable[[Path, str], str]  # (tmp_path, unique name) -> URL of a fresh store
    cleanup: Callable[[str], None] = lambda _name: None
    durable: bool = True  # data survives close and reopen
    shared: bool = True  # several processes can use it at once
    hostile: list[str] = field(default_factory=list)  # URLs with a hostile name: ConfigError
    server: tuple[str, int, str] | None = None  # (server name, port, driver module)
    # make the store refuse one value: (store URL, unique name) -> the poisoned value
    poison: Callable[[str, str], bytes] | None = None
    all_or_nothing: bool = True  # batches are one transaction


def _sqlite_poison(url: str, name: str) -> bytes:
    import sqlite3

    path = url.removeprefix("sqlite:///").split("?")[0]
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            f'CREATE TRIGGER "{name}_poison" BEFORE INSERT ON "{name}" '
            "WHEN NEW.value = x'dead' BEGIN SELECT RAISE(ABORT, 'poisoned value'); END"
        )
    conn.close()
    return b"\xde\xad"


def _pg_poison(url: str, name: str) -> bytes:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (value <> '\\xdead'::bytea)").format(
                sql.Identifier(name), sql.Identifier(name + "_poison")
            )
        )
    return b"\xde\xad"


def _mysql_poison(url: str, name: str) -> bytes:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TRIGGER `{name}_poison` BEFORE INSERT ON `{name}` FOR EACH ROW "
                "IF NEW.v = x'dead' THEN SIGNAL SQLSTATE '45000' "
                "SET MESSAGE_TEXT = 'poisoned value'; END IF"
            )
        conn.commit()
    finally:
        conn.close()
    return b"\xde\xad"


def _file_poison(url: str, name: str) -> bytes:
    # FileStore refuses per key, not per value; see test_batch_partial_failure_files
    raise NotImplementedError


KINDS = [
    Kind("memory", lambda _t, _n: "memory://", durable=False, shared=False, all_or_nothing=False),
    Kind(
        "sqlite",
        lambda t, n: f"sqlite:///{t}/store.db?table={n}",
        hostile=['sqlite:///{tmp}/h.db?table=x"; DROP TABLE y; --', "sqlite:///{tmp}/h.db?table="],
        poison=_sqlite_poison,
    ),
    Kind("files", lambda t, n: f"file://{t}/{n}", all_or_nothing=False),
    Kind(
        "postgres",
        lambda _t, n: f"{PG_URL}?table={n}",
        cleanup=drop_pg_table,
        hostile=[f'{PG_URL}?table=x"; DROP TABLE y; --', f"{PG_URL}?table="],
        server=("PostgreSQL", PG_PORT, "psycopg"),
        poison=_pg_poison,
    ),
    Kind(
        "redis",
        lambda _t, n: f"{REDIS_URL}?prefix={n}:",
        cleanup=lambda n: delete_redis_prefix(n + ":"),
        hostile=[f"{REDIS_URL}?prefix=a*", f"{REDIS_URL}?prefix=a b", f"{REDIS_URL}?prefix="],
        server=("Redis", REDIS_PORT, "redis"),
    ),
    Kind(
        "mysql",
        lambda _t, n: f"{MYSQL_URL}?table={n}",
        cleanup=drop_mysql_table,
        hostile=[f"{MYSQL_URL}?table=x`; DROP TABLE y; --", f"{MYSQL_URL}?table="],
        server=("MariaDB", MYSQL_PORT, "pymysql"),
        poison=_mysql_poison,
    ),
]
KIND_IDS = [k.name for k in KINDS]


@dataclass
class Target:
    """A fresh store location for one test: its URL and the kind it belongs to."""

    kind: Kind
    url: str
    name: str
    tmp: Path

    def open(self) -> Any:
        return open_store(self.url)


def _require(kind: Kind) -> None:
    if kind.server is not None:
        server, port, module = kind.server
        require_module(module)
        require_server(server, port)


def _target(kind: Kind, tmp_path: Path) -> Iterator[Target]:
    _require(kind)
    name = unique_name("wt_conf")
    target = Target(kind, kind.url(tmp_path, name), name, tmp_path)
    try:
        yield target
    finally:
        kind.cleanup(name)


@pytest.fixture(params=KINDS, ids=KIND_IDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from _target(request.param, tmp_path)


@pytest.fixture
def store(target: Target) -> Iterator[Any]:
    s = target.open()
    try:
        yield s
    finally:
        s.close()


def _params(pred: Callable[[Kind], bool]) -> list[Any]:
    return [pytest.param(k, id=k.name) for k in KINDS if pred(k)]


def _enc(key: Any) -> Any:
    return key  # byte stores take bytes keys; MemoryStore takes them as they are


# -- single operations
def test_store_load_remove(store: Any) -> None:
    assert store.load(b"k") is None
    store.store(b"k", b"v1")
    assert store.load(b"k") == b"v1"
    store.store(b"k", b"v2")  # overwrite
    assert store.load(b"k") == b"v2"
    assert store.remove(b"k") is True
    assert store.load(b"k") is None
    assert store.remove(b"k") is False  # absent: no error, False


def test_empty_value_is_not_absent(store: Any) -> None:
    store.store(b"empty", b"")
    assert store.load(b"empty") == b""


@pytest.mark.parametrize(
    "key",
    [b"\x00", b"\x00\xff\x80\n\r\t", "ключ ✓ 鍵 🔑".encode(), b"a" * 200, b" ", b"%_*?[]'\";\\"],
    ids=["nul", "binary", "unicode", "long", "space", "metachars"],
)
def test_binary_and_unicode_keys(store: Any, key: bytes) -> None:
    store.store(key, b"value:" + key)
    store.store(key + b"x", b"other")  # a neighbour that must not collide
    assert store.load(key) == b"value:" + key
    assert store.load(key + b"x") == b"other"
    assert store.remove(key) is True
    assert store.load(key) is None
    assert store.load(key + b"x") == b"other"


def test_16_mib_value(store: Any) -> None:
    value = os.urandom(16 * MiB)
    store.store(b"big", value)
    assert store.load(b"big") == value
    store.store(b"big", b"small")  # and back down
    assert store.load(b"big") == b"small"


# -- batches
def test_batches(store: Any) -> None:
    items = [(f"b{i}".encode(), f"v{i}".encode() * (i + 1)) for i in range(150)]
    store.store_many(items)
    assert store.load_many([k for k, _ in items]) == dict(items)
    assert store.load_many([b"b1", b"missing", b"b2"]) == {b"b1": b"v1" * 2, b"b2": b"v2" * 3}
    assert store.load_many([]) == {}
    store.store_many([])
    assert store.remove_many([]) == []
    existed = store.remove_many([b"b0", b"missing", b"b0", b"b1"])
    assert existed == [True, False, False, True]  # a repeated key existed once
    assert store.load(b"b0") is None and store.load(b"b1") is None
    assert store.load(b"b2") == b"v2" * 3


@pytest.mark.parametrize("kind", _params(lambda k: k.poison is not None))
def test_batch_failure_reports_every_key(kind: Kind, tmp_path: Path) -> None:
    """A batch in one transaction fails whole: every key failed, none succeeded, nothing applied."""
    for target in _target(kind, tmp_path):
        s = target.open()
        try:
            s.store(b"before", b"old")
            assert kind.poison is not None
            poisoned = kind.poison(target.url, target.name)
            items = [(b"before", b"new"), (b"p", poisoned), (b"after", b"x")]
            with pytest.raises(BatchError) as info:
                s.store_many(items)
            err = info.value
            assert isinstance(err, StoreError)
            assert set(err.failed) == {b"before", b"p", b"after"}
            assert list(err.succeeded) == []
            assert all(isinstance(e, StoreError) for e in err.failed.values())
            assert s.load(b"before") == b"old"  # rolled back
            assert s.load(b"after") is None
            with pytest.raises(StoreError):
                s.store(b"p", poisoned)
            s.store(b"p", b"fine")  # the store still works
            assert s.load(b"p") == b"fine"
        finally:
            s.close()


def test_batch_partial_failure_memory() -> None:
    """A store without transactions reports exactly the keys it accepted."""
    s = wt.MemoryStore(max_entries=2)
    with pytest.raises(BatchError) as info:
        s.store_many([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    assert list(info.value.succeeded) == [b"a", b"b"]
    assert set(info.value.failed) == {b"c"}
    assert s.load(b"a") == b"1" and s.load(b"c") is None


def test_batch_partial_failure_files(tmp_path: Path) -> None:
    """FileStore writes file by file: a key whose shard cannot be written fails alone."""
    s = open_store(f"file://{tmp_path}/fs")
    try:
        s.store(b"probe", b"x")
        # find where a key's file goes by writing it, then block that shard for another key
        victim = next(
            k
            for k in (f"k{i}".encode() for i in range(10_000))
            if Path(s._path_of(k)).parent != Path(s._path_of(b"probe")).parent
        )
        shard = Path(s._path_of(victim)).parent
        if shard.exists():
            for child in shard.iterdir():
                child.unlink()
            shard.rmdir()
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(b"not a directory")
        with pytest.raises(BatchError) as info:
            s.store_many([(b"probe", b"y"), (victim, b"v"), (b"k-ok", b"z")])
        assert set(info.value.failed) == {victim}
        assert sorted(info.value.succeeded) == [b"k-ok", b"probe"]
        assert s.load(b"probe") == b"y" and s.load(b"k-ok") == b"z"
        assert s.load(victim) is None
    finally:
        s.close()


# -- lifetime
@pytest.mark.parametrize("kind", _params(lambda k: k.durable))
def test_durable_across_close_and_reopen(kind: Kind, tmp_path: Path) -> None:
    for target in _target(kind, tmp_path):
        s = target.open()
        s.store(b"k", b"v")
        s.store_many([(b"a", b"1"), (b"b", b"2")])
        s.close()
        s = target.open()
        try:
            assert s.load(b"k") == b"v"
            assert s.load_many([b"a", b"b"]) == {b"a": b"1", b"b": b"2"}
        finally:
            s.close()


def test_closed_store_refuses_every_call(store: Any) -> None:
    store.store(b"k", b"v")
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.load(b"k"),
        lambda: store.store(b"k", b"v"),
        lambda: store.remove(b"k"),
        lambda: store.load_many([b"k"]),
        lambda: store.store_many([(b"k", b"v")]),
        lambda: store.remove_many([b"k"]),
    ):
        with pytest.raises(CacheClosed):
            call()


@pytest.mark.parametrize("kind", _params(lambda k: bool(k.hostile)))
def test_hostile_names_refused(kind: Kind, tmp_path: Path) -> None:
    _require(kind)
    for url in kind.hostile:
        with pytest.raises(ConfigError):
            open_store(url.replace("{tmp}", str(tmp_path)))


# -- concurrency
def test_threads(store: Any) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                store.store(f"t{t}-{i}".encode(), f"{t}:{i}".encode())
                store.store(b"shared", f"{t}:{i}".encode())
                got = store.load(f"t{(t + 1) % 8}-{i}".encode())
                assert got in (None, f"{(t + 1) % 8}:{i}".encode())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for t in range(8):
        keys = [f"t{t}-{i}".encode() for i in range(40)]
        assert store.load_many(keys) == {k: f"{t}:{i}".encode() for i, k in enumerate(keys)}
    shared = store.load(b"shared")
    assert shared is not None and shared.endswith(b":39")


_CHILD = r"""
import sys
from writethrough.url import open_store
url, who = sys.argv[1], sys.argv[2]
s = open_store(url)
for i in range(200):
    s.store(f"{who}{i}".encode(), f"{who}:{i}".encode())
    s.store(b"both", f"{who}:{i}".encode() * 50)
    other = "b" if who == "a" else "a"
    got = s.load(f"{other}{i}".encode())
    assert got in (None, f"{other}:{i}".encode()), got
    both = s.load(b"both")
    assert both is not None and len(set(both.split(b":")[0][:1])) == 1, both[:20]
s.close()
print("ok")
"""


@pytest.mark.parametrize("kind", _params(lambda k: k.shared))
def test_two_processes_share_keys(kind: Kind, tmp_path: Path) -> None:
    for target in _target(kind, tmp_path):
        target.open().close()  # create the table / directory first
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, target.url, who],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for who in ("a", "b")
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()[-2000:]
            assert out.strip() == b"ok"
        s = target.open()
        try:
            for who in ("a", "b"):
                keys = [f"{who}{i}".encode() for i in range(200)]
                assert s.load_many(keys) == {k: f"{who}:{i}".encode() for i, k in enumerate(keys)}
            both = s.load(b"both")
            assert both in (b"a:199" * 50, b"b:199" * 50)
        finally:
            s.close()


# -- through the cache
def test_cache_over_the_store(target: Target) -> None:
    cache = wt.open(target.url, capacity=100)
    try:
        cache.put("ключ", {"v": [1, 2]})
        cache.put(1, "int one")
        cache.put("1", "str one")
        cache.put(b"1", b"bytes one")
        cache.evict_all()
        assert cache.get("ключ") == {"v": [1, 2]}
        assert (cache.get(1), cache.get("1"), cache.get(b"1")) == (
            "int one",
            "str one",
            b"bytes one",
        )
        assert cache.invalidate(1) is True
        assert cache.get(1) is None
        cache.put_many({f"m{i}": i for i in range(50)})
        cache.evict_all()
        assert cache.get_many([f"m{i}" for i in range(50)]) == {f"m{i}": i for i in range(50)}
    finally:
        cache.close()


# -- a server that cannot be reached: wt.open fails there, clearly
def _closed_port() -> int:
    import socket

    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


UNREACHABLE = {
    "postgres": "postgresql://postgres:{pw}@127.0.0.1:{port}/test?connect_timeout=2",
    "redis": "redis://:{pw}@127.0.0.1:{port}/0",
    "mysql": "mysql://root:{pw}@127.0.0.1:{port}/test",
}


@pytest.mark.parametrize("kind", _params(lambda k: k.name in UNREACHABLE))
def test_wt_open_fails_at_once_when_the_server_cannot_be_reached(kind: Kind) -> None:
    assert kind.server is not None
    require_module(kind.server[2])
    password = "Pw-never-shown-42"
    url = UNREACHABLE[kind.name].format(pw=password, port=_closed_port())
    started = time.monotonic()
    with pytest.raises(wt.StoreUnavailable) as info:
        wt.open(url)
    assert time.monotonic() - started < 10  # fails in wt.open, not at the first put
    message = str(info.value)
    assert password not in message and password not in repr(info.value)
    assert "127.0.0.1" in message  # names the server it could not reach
    assert info.value.__cause__ is not None  # the driver's exception is kept

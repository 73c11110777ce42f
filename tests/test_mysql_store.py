"""MySQLStore against the real MariaDB on loopback: URLs, chunks, batches, errors, recovery."""

from __future__ import annotations

import ast
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from servers import (
    MYSQL_PORT,
    MYSQL_URL,
    drop_mysql_table,
    require_module,
    require_server,
    unique_name,
)

import writethrough as wt
import writethrough.url
from writethrough.errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    EntryTooLarge,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
)
from writethrough.url import open_store

# until url._BUILTIN lists them

MiB = 1 << 20


def _require() -> Any:
    pymysql = require_module("pymysql")
    require_server("MariaDB", MYSQL_PORT)
    return pymysql


@pytest.fixture
def table() -> Iterator[str]:
    _require()
    name = unique_name("wt_my")
    try:
        yield name
    finally:
        drop_mysql_table(name)


@pytest.fixture
def store(table: str) -> Iterator[Any]:
    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table)
    try:
        yield s
    finally:
        s.close()


def sql(statement: str, args: Any = None, *more: str) -> list[tuple[Any, ...]]:
    """Run statements on a fresh connection of their own (what another program sees)."""
    import pymysql

    conn = pymysql.connect(
        host="127.0.0.1", port=MYSQL_PORT, user="root", database="test", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            for other in more:
                cur.execute(other)
            return list(cur.fetchall())
    finally:
        conn.close()


def rows(table: str) -> list[tuple[bytes, int, int, int]]:
    """(k, n, parts, len(v)) of every row, in key order."""
    return [
        (k, n, parts, size)
        for k, n, parts, size in sql(f"SELECT k, n, parts, LENGTH(v) FROM `{table}` ORDER BY k, n")
    ]


def thread_ids(store: Any) -> list[int]:
    """Server thread ids (CONNECTION_ID()) of the store's idle pooled connections."""
    return [slot.thread_id for slot in list(store._idle) if slot is not None]


def live_threads() -> set[int]:
    return {int(r[0]) for r in sql("SELECT ID FROM information_schema.PROCESSLIST")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


# -- URLs and options


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_url_and_options(table: str, scheme: str) -> None:
    url = (
        f"{scheme}://root@127.0.0.1:{MYSQL_PORT}/test?table={table}&pool_size=2"
        "&connect_timeout=3&read_timeout=none&write_timeout=7.5&pool_timeout=1"
    )
    s = open_store(url)
    try:
        assert type(s).__name__ == "MySQLStore"
        assert s.table == table and s.database == "test" and s.pool_size == 2
        assert s._connect_kwargs["read_timeout"] is None
        assert s._connect_kwargs["write_timeout"] == 7.5
        assert s.identity == f"mysql://root@127.0.0.1:{MYSQL_PORT}/test#{table}"
        assert repr(s) == (
            f"MySQLStore('mysql://root@127.0.0.1:{MYSQL_PORT}/test', table={table!r}, pool_size=2)"
        )
        s.store(b"k", b"v")
    finally:
        s.close()
    assert "closed" in repr(s)
    with wt.open(f"{scheme}://root@127.0.0.1:{MYSQL_PORT}/test?table={table}&capacity=5") as cache:
        assert cache.capacity == 5
        assert cache.backing_store.load(b"k") == b"v"


def test_constructor_keywords_name_the_same_store(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    with MySQLStore(
        host="127.0.0.1", port=MYSQL_PORT, user="root", database="test", table=table
    ) as a:
        a.store(b"k", b"v")
        with MySQLStore(MYSQL_URL, table=table) as b:
            assert a.identity == b.identity
            assert b.load(b"k") == b"v"
        with MySQLStore(MYSQL_URL, password="", table=table) as c:  # a password kept out of the URL
            assert c.load(b"k") == b"v"


def test_unix_socket(table: str) -> None:
    ((path,),) = sql("SELECT @@socket")
    if not path or not os.path.exists(path):
        pytest.skip("the server has no unix socket here")
    with open_store(f"mysql://root@/test?table={table}&unix_socket={path}") as s:
        assert s.identity == f"mysql://root@localhost/test?unix_socket={path}#{table}"
        s.store(b"k", b"over the socket")
    with open_store(f"{MYSQL_URL}?table={table}") as tcp:
        assert tcp.load(b"k") == b"over the socket"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"pool_size": "many"}, "pool_size"),
        ({"pool_size": "0"}, "pool_size"),
        ({"connect_timeout": "-1"}, "connect_timeout"),
        ({"read_timeout": "soon"}, "read_timeout"),
        ({"pool_timeout": "inf"}, "pool_timeout"),
        ({"table": "1abc"}, "table"),
        ({"no_such_option": "1"}, "no_such_option"),
    ],
)
def test_bad_options(table: str, options: dict[str, str], needle: str) -> None:
    options.setdefault("table", table)
    with pytest.raises(ConfigError, match=needle):
        open_store(MYSQL_URL, **options)


def test_bad_urls_and_arguments() -> None:
    _require()
    from writethrough.stores.mysql import MySQLStore

    with pytest.raises(ConfigError, match="database"):
        open_store(f"mysql://root@127.0.0.1:{MYSQL_PORT}/")
    with pytest.raises(ConfigError, match="one database"):
        open_store(f"mysql://root@127.0.0.1:{MYSQL_PORT}/test/extra")
    with pytest.raises(ConfigError, match="pool_size"):
        MySQLStore(f"{MYSQL_URL}?pool_size=2")  # query options belong to open_store / keywords
    with pytest.raises(ConfigError, match="mysql://"):
        MySQLStore("postgresql://root@127.0.0.1/test")
    with pytest.raises(ConfigError, match="host is given twice"):
        MySQLStore(MYSQL_URL, host="db.example")
    with pytest.raises(ConfigError, match="password is given twice") as info:
        MySQLStore("mysql://root:pw-in-url@127.0.0.1/test", password="pw-keyword")
    assert "pw-in-url" not in str(info.value) and "pw-keyword" not in str(info.value)
    with pytest.raises(ConfigError, match="pool_size"):
        MySQLStore(MYSQL_URL, pool_size=True)
    with pytest.raises(ConfigError, match="read_timeout"):
        MySQLStore(MYSQL_URL, read_timeout=float("nan"))


# -- table names and shapes


HOSTILE = [
    "x`; DROP TABLE y; --",
    "",
    "1abc",
    "a b",
    "a-b",
    "tab`le",
    "a" * 65,
    "ключ",
    "t;",
    "t\x00",
]


def test_hostile_table_names_refused() -> None:
    _require()
    from writethrough.stores.mysql import MySQLStore

    canary = unique_name("wt_canary")
    sql(f"CREATE TABLE `{canary}` (i INT)")
    try:
        for name in [*HOSTILE, f"{canary}`; DROP TABLE `{canary}`; --", None, 42]:
            with pytest.raises(ConfigError, match="table name"):
                MySQLStore(MYSQL_URL, table=name)  # type: ignore[arg-type]
            with pytest.raises(ConfigError):
                open_store(MYSQL_URL, table=name)
        assert sql("SHOW TABLES LIKE %s", (canary,)) == [(canary,)]
        created = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_NAME IN %s"
        assert sql(created, ([str(n) for n in HOSTILE],)) == []
    finally:
        drop_mysql_table(canary)


def test_longest_table_name(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    name = (table + "_" * 64)[:64]
    try:
        with MySQLStore(MYSQL_URL, table=name) as s:
            s.store(b"k", b"v")
            assert s.load(b"k") == b"v"
    finally:
        drop_mysql_table(name)


def test_table_of_another_shape_refused(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    sql(f"CREATE TABLE `{table}` (k VARBINARY(100) PRIMARY KEY, value LONGBLOB)")
    with pytest.raises(ConfigError, match="another shape"):
        MySQLStore(MYSQL_URL, table=table)
    assert sql(f"SELECT COUNT(*) FROM `{table}`") == [(0,)]


def test_table_of_another_engine_refused(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    sql(
        f"CREATE TABLE `{table}` (k VARBINARY(900) NOT NULL, n INT UNSIGNED NOT NULL, "
        "parts INT UNSIGNED NOT NULL, v LONGBLOB NOT NULL, PRIMARY KEY (k, n)) ENGINE=MyISAM"
    )
    with pytest.raises(ConfigError, match="InnoDB"):
        MySQLStore(MYSQL_URL, table=table)


def test_created_table(store: Any, table: str) -> None:
    (create,) = sql(f"SHOW CREATE TABLE `{table}`")
    assert "ENGINE=InnoDB" in create[1]
    assert "PRIMARY KEY (`k`,`n`)" in create[1]
    assert store.max_key_size == 3068
    (packet,) = sql("SELECT @@max_allowed_packet")
    assert store.chunk_size == min(4 * MiB, (packet[0] - 2 * 3068 - 1024) // 2)


# -- values


def test_round_trips(store: Any, table: str) -> None:
    store.store(b"k", b"v")
    assert store.load(b"k") == b"v"
    store.store(b"empty", b"")
    assert store.load(b"empty") == b""  # a stored empty value is not absent
    store.store(b"", b"empty key")
    assert store.load(b"") == b"empty key"
    keys = [bytes([i]) for i in range(256)] + [b"a", b"a ", b"a\x00", b"A", bytes(range(256))]
    store.store_many([(k, b"v" + k) for k in keys])
    assert store.load_many(keys) == {k: b"v" + k for k in keys}  # trailing bytes count
    for k in (b"a", b"a ", b"a\x00", b"A"):
        assert store.load(k) == b"v" + k
    store.store(b"k", memoryview(b"from a view"))
    assert store.load(b"k") == b"from a view"
    assert store.remove(b"k") is True
    assert store.remove(b"k") is False
    assert store.load(b"k") is None


def test_40_mib_value(store: Any) -> None:
    value = os.urandom(40 * MiB)
    store.store(b"big", value)
    assert store.load(b"big") == value
    assert store.remove(b"big") is True


def test_16_mib_value(store: Any, table: str) -> None:
    size = 16 * MiB
    value = os.urandom(size)
    store.store(b"big", value)
    assert store.load(b"big") == value
    chunk = store.chunk_size
    parts = -(-size // chunk)
    got = rows(table)
    assert [(k, n, p) for k, n, p, _ in got] == [(b"big", n, parts) for n in range(parts)]
    assert max(length for *_, length in got) <= chunk  # no row near max_allowed_packet
    assert store.load_many([b"big", b"nope"]) == {b"big": value}
    store.store(b"big", b"small")  # one row written; the old chunks stay, ignored
    assert store.load(b"big") == b"small"
    assert store.load_many([b"big"]) == {b"big": b"small"}
    assert len(rows(table)) == parts
    assert store.remove(b"big") is True
    assert rows(table) == []


def test_value_at_the_chunk_boundary(store: Any, table: str) -> None:
    store._chunk = chunk = 1000
    for size in (chunk, chunk + 1, 2 * chunk):
        value = os.urandom(size)
        store.store(b"edge", value)
        assert store.load(b"edge") == value
        assert len(rows(table)) == -(-size // chunk)


def test_overwrite_sequences(store: Any, table: str) -> None:
    store._chunk = 1000  # many parts from small values: same code paths, faster
    large1, large2 = os.urandom(5500), os.urandom(2500)
    store.store(b"k", large1)
    assert store.load(b"k") == large1 and len(rows(table)) == 6
    store.store(b"k", b"small")
    assert store.load(b"k") == b"small"
    # the old chunks stay behind, ignored, until the next large write or remove
    assert [(n, p) for _, n, p, _ in rows(table)] == [
        (0, 1),
        (1, 6),
        (2, 6),
        (3, 6),
        (4, 6),
        (5, 6),
    ]
    assert store.load_many([b"k"]) == {b"k": b"small"}
    store.store(b"k", large2)
    assert store.load(b"k") == large2
    assert [(n, p) for _, n, p, _ in rows(table)] == [(0, 3), (1, 3), (2, 3)]
    store.store(b"k", large1)
    assert store.load(b"k") == large1
    store.store(b"k", large2)  # large -> smaller large: rows beyond are deleted
    assert store.load(b"k") == large2 and len(rows(table)) == 3
    store.store(b"k", b"")
    assert store.load(b"k") == b""
    assert store.remove(b"k") is True
    assert rows(table) == []
    # batches follow the same rules, and the last value of a repeated key wins
    store.store_many([(b"a", large1), (b"b", b"x"), (b"a", b"small"), (b"c", large2)])
    assert store.load_many([b"a", b"b", b"c"]) == {b"a": b"small", b"b": b"x", b"c": large2}
    store.store_many([(b"a", large2), (b"c", b"tiny")])
    assert store.load_many([b"a", b"b", b"c"]) == {b"a": large2, b"b": b"x", b"c": b"tiny"}
    assert store.remove_many([b"a", b"c", b"a", b"zz"]) == [True, True, False, False]
    assert [k for k, *_ in rows(table)] == [b"b"]


def test_readers_never_see_a_mix_of_two_writes(store: Any) -> None:
    store._chunk = 4096
    values = [os.urandom(40_000), os.urandom(27_000), b"small", os.urandom(33_000)]
    allowed = set(values)
    store.store(b"hot", values[0])
    stop = time.monotonic() + 1.2
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def reader(many: bool) -> None:
        try:
            while time.monotonic() < stop:
                got = store.load_many([b"hot"]).get(b"hot") if many else store.load(b"hot")
                if got not in allowed:
                    errors.append(AssertionError(f"a mixed value of {len(got or b'')} bytes"))
                    return
                seen.append(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i % 2 == 1,)) for i in range(3)]
    for th in threads:
        th.start()
    writes = 0
    while time.monotonic() < stop:
        store.store(b"hot", values[writes % len(values)])
        writes += 1
    for th in threads:
        th.join()
    assert errors == []
    assert writes > 20 and len(set(seen)) >= 2, (writes, len(seen))


def test_keys_longer_than_the_index_refused(store: Any, table: str) -> None:
    limit = store.max_key_size
    store.store(b"k" * limit, b"longest")
    assert store.load(b"k" * limit) == b"longest"
    too_long = b"k" * (limit + 1)
    with pytest.raises(EntryTooLarge, match=f"{limit} bytes") as info:
        store.store(too_long, b"v")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert store.load(too_long) is None
    assert store.remove(too_long) is False
    with pytest.raises(BatchError) as batch:
        store.store_many([(b"ok1", b"v"), (too_long, b"v"), (b"ok2", b"v")])
    assert batch.value.succeeded == []
    assert set(batch.value.failed) == {b"ok1", too_long, b"ok2"}
    assert isinstance(batch.value.failed[too_long], EntryTooLarge)
    assert isinstance(batch.value.failed[b"ok1"], StoreWriteError)
    assert [k for k, *_ in rows(table)] == [b"k" * limit]  # nothing of the batch was written
    assert store.load_many([too_long, b"k" * limit]) == {b"k" * limit: b"longest"}
    assert store.remove_many([too_long, b"k" * limit]) == [False, True]


# -- batches


def test_batches(store: Any, table: str) -> None:
    items = [(b"k%d" % i, b"v%d" % i) for i in range(1500)]
    store.store_many(items)
    keys = [b"k%d" % i for i in range(0, 3000, 2)]  # several IN lists: one snapshot
    assert store.load_many(keys) == {k: v for k, v in items if k in set(keys)}
    assert store.load_many([]) == {}
    store.store_many([])
    assert store.remove_many([]) == []
    existed = store.remove_many([b"k1", b"k1", b"nope", b"k2"])
    assert existed == [True, False, False, True]
    assert len(rows(table)) == 1498
    removed = store.remove_many([b"k%d" % i for i in range(1500)])
    assert sum(removed) == 1498 and rows(table) == []


def test_remove_many_without_returning(store: Any, table: str) -> None:
    store._use_returning = False  # the path for MySQL, which has no DELETE ... RETURNING
    store._chunk = 1000
    store.store_many([(b"a", b"1"), (b"b", os.urandom(3000)), (b"c", b"3")])
    assert store.remove_many([b"a", b"b", b"a", b"zz"]) == [True, True, False, False]
    assert [k for k, *_ in rows(table)] == [b"c"]


def test_batch_failure_is_all_or_nothing(store: Any, table: str) -> None:
    sql(
        f"CREATE TRIGGER `{table}_refuse` BEFORE INSERT ON `{table}` FOR EACH ROW "
        "IF NEW.k = 'bad' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF"
    )
    store._chunk = 1000
    items = [(b"a", b"1"), (b"big", os.urandom(5000)), (b"bad", b"x"), (b"c", b"3")]
    for batch in (items, items[:1] + items[2:]):  # with a transaction, and one statement alone
        with pytest.raises(BatchError) as info:
            store.store_many(batch)
        assert info.value.succeeded == []
        assert set(info.value.failed) == {k for k, _ in batch}
        error = info.value.failed[b"a"]
        assert isinstance(error, StoreWriteError) and "refused" in str(error)
        assert type(error.__cause__).__module__.startswith("pymysql")
        assert rows(table) == []
    store.store_many([(b"a", b"1")])  # the connection is fine after a refusal
    assert store.load(b"a") == b"1"


def test_deadlock_victim_is_rerun(store: Any, table: str) -> None:
    import pymysql

    store.store(b"a", b"old")
    holder = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    errors: list[BaseException] = []

    def batch() -> None:
        try:  # inserts m, then waits for a, which the holder has locked
            store.store_many([(b"m", b"mine"), (b"a", b"mine")])
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=batch)
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            filler = ",".join(f"('filler{i}', 0, 1, '')" for i in range(200))
            cur.execute(f"INSERT INTO `{table}` VALUES {filler}")  # heavier: not the victim
            cur.execute(f"UPDATE `{table}` SET v = 'holder' WHERE k = 'a' AND n = 0")
            writer.start()
            time.sleep(0.3)
            cur.execute(f"UPDATE `{table}` SET v = 'holder' WHERE k = 'm' AND n = 0")  # a cycle
            cur.execute(f"DELETE FROM `{table}` WHERE k LIKE 'filler%'")
        holder.commit()
    finally:
        holder.close()
    writer.join(10)
    assert errors == []  # InnoDB rolled the batch back; the store ran it again
    assert store.load_many([b"a", b"m"]) == {b"a": b"mine", b"m": b"mine"}


def test_corrupt_value_is_reported(store: Any, table: str) -> None:
    store._chunk = 1000
    store.store(b"k", os.urandom(3500))
    sql(f"DELETE FROM `{table}` WHERE k = 'k' AND n = 2")
    with pytest.raises(StoreError, match="corrupt"):
        store.load(b"k")
    store.store(b"k", b"fixed")  # the connection is still fine
    assert store.load(b"k") == b"fixed"


# -- errors


def test_unreachable_server_fails_fast_and_leaves_nothing_open(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    port = free_port()
    fds, threads = open_fds(), threading.active_count()
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        MySQLStore(f"mysql://root:s3cret-pw@127.0.0.1:{port}/test", table=table)
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "check that the server is running" in message
    assert "s3cret-pw" not in message
    assert info.value.__cause__ is not None
    assert (open_fds(), threading.active_count()) == (fds, threads)
    with pytest.raises(StoreUnavailable):
        wt.open(f"mysql://root@127.0.0.1:{port}/test?table={table}")


def test_password_never_shown(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    with pytest.raises(StoreUnavailable) as info:  # root has no password: access denied
        MySQLStore(f"mysql://root:wrong-s3cret@127.0.0.1:{MYSQL_PORT}/test", table=table)
    assert "wrong-s3cret" not in str(info.value)
    assert "Access denied" in str(info.value)
    with MySQLStore(MYSQL_URL, password="", table=table) as s:
        assert "password" not in repr(s) and ":@" not in s.identity


def test_unknown_database(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    with pytest.raises(StoreUnavailable, match="database"):
        MySQLStore(f"mysql://root@127.0.0.1:{MYSQL_PORT}/{table}_nodb", table=table)


def test_refused_write_and_full_store(store: Any, table: str) -> None:
    sql(
        f"CREATE TRIGGER `{table}_refuse` BEFORE INSERT ON `{table}` FOR EACH ROW BEGIN "
        "IF NEW.k = 'refuse' OR LOCATE('poison', NEW.v) > 0 THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; "
        "IF NEW.k = 'full' THEN SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1114, "
        "MESSAGE_TEXT = 'The table is full'; END IF; END"
    )
    with pytest.raises(StoreWriteError, match="refused") as refused:
        store.store(b"refuse", b"v")
    assert not isinstance(refused.value, (StoreFull, StoreUnavailable))
    assert str(refused.value).startswith(f"{store.identity}: store failed")
    with pytest.raises(StoreFull, match="full") as full:
        store.store(b"full", b"v")
    assert full.value.__cause__ is not None and full.value.__cause__.args[0] == 1114
    store._chunk = 1000
    with pytest.raises(StoreFull):
        store.store(b"full", os.urandom(3000))  # a chunked write: rolled back
    assert rows(table) == []
    cache = wt.WriteThroughCache(store)
    with pytest.raises(StoreWriteError):
        cache.put("x", b"a poison value")
    assert cache.get("x") is None
    cache.put("x", b"fine")  # the connection survived the refusals
    cache.evict_all()
    assert cache.get("x") == b"fine"


def test_missing_table_read_and_write_errors(store: Any, table: str) -> None:
    store.store(b"k", b"v")
    drop_mysql_table(table)  # behind the store's back
    with pytest.raises(StoreError) as read:
        store.load(b"k")
    assert type(read.value) is StoreError  # a read failure, not a write one
    with pytest.raises(StoreError) as many:
        store.load_many([b"k"])
    assert type(many.value) is StoreError
    with pytest.raises(StoreWriteError):
        store.store(b"k", b"v")
    with pytest.raises(StoreWriteError):
        store.remove(b"k")
    with pytest.raises(BatchError) as batch:
        store.remove_many([b"k", b"j"])
    assert set(batch.value.failed) == {b"k", b"j"}


def test_read_timeout_is_unavailable(table: str) -> None:
    import pymysql

    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table, read_timeout=0.5)
    s.store(b"locked", b"v")
    holder = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT v FROM `{table}` WHERE k = 'locked' FOR UPDATE")
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="timed out"):
            s.store(b"locked", b"w")
        assert time.monotonic() - start < 3
        assert s.load(b"other") is None  # other keys still work meanwhile
    finally:
        holder.rollback()
        holder.close()
    s.store(b"locked", b"x")
    assert s.load(b"locked") == b"x"
    s.close()


def test_pool_is_bounded_and_waits(table: str) -> None:
    import pymysql

    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table, pool_size=1, pool_timeout=0.3)
    s.store(b"locked", b"v")
    holder = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    blocked = threading.Thread(target=lambda: s.store(b"locked", b"w"))
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"SELECT v FROM `{table}` WHERE k = 'locked' FOR UPDATE")
        blocked.start()
        time.sleep(0.2)  # the only connection now waits for the row lock
        with pytest.raises(StoreUnavailable, match="no free connection"):
            s.load(b"other")
    finally:
        holder.rollback()
        holder.close()
    blocked.join(5)
    assert s.load(b"locked") == b"w"
    results: list[bytes | None] = []
    workers = [threading.Thread(target=lambda: results.append(s.load(b"locked"))) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [b"w"] * 8  # they waited their turn for the one connection
    assert len(thread_ids(s)) == 1
    s.close()


# -- recovery


def _busy(store: Any, n: int) -> None:
    """Use the store from ``n`` threads at once, so that its pool opens several connections."""
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(30):
            store.store(b"busy%d" % i, b"%d" % j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def _kill(ids: list[int]) -> None:
    first, *rest = [f"KILL {int(thread_id)}" for thread_id in ids]
    sql(first, None, *rest)
    deadline = time.monotonic() + 5
    while set(ids) & live_threads() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_recovers_after_its_connections_are_killed(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table, pool_size=3)
    s.store(b"k", b"v")
    _busy(s, 3)
    ids = thread_ids(s)
    assert ids
    _kill(ids)
    assert s.load(b"k") == b"v"  # a read is retried once on a fresh connection
    try:
        s.store(b"k", b"w")
    except StoreUnavailable as exc:  # a write is not retried: it may fail once
        assert exc.__cause__ is not None
        s.store(b"k", b"w")
    assert s.load(b"k") == b"w"
    assert not set(thread_ids(s)) & set(ids)  # every dead connection was dropped
    _busy(s, 3)
    assert s.load_many([b"k"]) == {b"k": b"w"}
    s.close()


def test_idle_connections_are_checked_before_use(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import writethrough.stores.mysql as module

    monkeypatch.setattr(module, "_IDLE_CHECK", 0.2)  # 1 s by default
    s = module.MySQLStore(MYSQL_URL, table=table, pool_size=2)
    s.store(b"k", b"v")
    _kill(thread_ids(s))
    time.sleep(0.3)  # idle past the check: the closed socket is seen before sending anything
    s.store(b"k", b"w")  # a write after the server dropped the connection succeeds at once
    assert s.remove_many([b"k"]) == [True]
    s.close()


def test_cache_recovers_after_connections_are_killed(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    store = MySQLStore(MYSQL_URL, table=table)
    cache = wt.WriteThroughCache(store, capacity=10)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.evict_all()
    _kill(thread_ids(store))
    assert cache.get("a") == 1
    try:
        cache.put("c", 3)
    except StoreUnavailable:
        cache.put("c", 3)
    cache.evict_all()
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    cache.close()
    assert store.closed


def test_fork_child_uses_its_own_connections(store: Any) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    store.store(b"parent", b"p")
    parent_ids = thread_ids(store)
    assert parent_ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any cleanup
        code = 1
        try:
            assert thread_ids(store) == []  # the parent's connections are forgotten
            assert store.load(b"parent") == b"p"
            store.store(b"child", b"c")
            os.write(write, repr(thread_ids(store)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = ast.literal_eval(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_ids and not set(child_ids) & set(parent_ids)
    assert store.load(b"child") == b"c"  # the parent's connection was not disturbed
    assert thread_ids(store) == parent_ids


def test_closed_store(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table, pool_size=2)
    _busy(s, 2)
    ids = thread_ids(s)
    s.close()
    s.close()
    for call in (
        lambda: s.load(b"k"),
        lambda: s.load(b"k" * 5000),
        lambda: s.store(b"k", b"v"),
        lambda: s.store(b"k", b"v" * (5 * MiB)),
        lambda: s.remove(b"k"),
        lambda: s.load_many([b"k"]),
        lambda: s.store_many([(b"k", b"v")]),
        lambda: s.remove_many([b"k"]),
    ):
        with pytest.raises(CacheClosed):
            call()
    deadline = time.monotonic() + 5
    while set(ids) & live_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(ids) & live_threads()  # its connections were closed on the server too


def test_threads_share_a_bounded_pool(table: str) -> None:
    from writethrough.stores.mysql import MySQLStore

    s = MySQLStore(MYSQL_URL, table=table, pool_size=3)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(30):
                s.store(b"t%d-%d" % (t, i), b"%d" % i)
                assert s.load(b"t%d-%d" % (t, i)) == b"%d" % i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert 1 <= len(thread_ids(s)) <= 3
    assert len(s.load_many([b"t%d-%d" % (t, i) for t in range(8) for i in range(30)])) == 240
    s.close()


def test_durability_is_read_from_the_server(store: Any) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="root", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@innodb_flush_log_at_trx_commit")
            (flush,) = cur.fetchone()
    finally:
        conn.close()
    assert store.durability.startswith(f"innodb_flush_log_at_trx_commit={flush}:")
    assert ("durable" in store.durability) == (str(flush) == "1")

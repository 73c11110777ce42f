"""SQLiteStore against real SQLite files: values, batches, errors, threads, processes, crashes."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import writethrough.stores.sqlite as sqlite_module
from writethrough.errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
)
from writethrough.stores.sqlite import SQLiteStore

SRC = Path(sqlite_module.__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db) as s:
        yield s


def raw_rows(path: Path, table: str = "writethrough") -> dict[bytes, bytes]:
    """What another program sees in the file (a fresh connection, nothing cached)."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute(f'SELECT key, value FROM "{table}"').fetchall())
    finally:
        conn.close()


def run_python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter that imports this checkout's package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        text=True,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# -- single values


def test_store_load_remove(store: SQLiteStore, db: Path) -> None:
    store.store(b"k", b"v")
    assert store.load(b"k") == b"v"
    assert raw_rows(db) == {b"k": b"v"}  # committed: another connection sees it
    assert store.remove(b"k") is True
    assert store.load(b"k") is None
    assert raw_rows(db) == {}


def test_overwrite_keeps_one_row(store: SQLiteStore, db: Path) -> None:
    store.store(b"k", b"one")
    store.store(b"k", b"two")
    assert store.load(b"k") == b"two"
    assert raw_rows(db) == {b"k": b"two"}


def test_absent_key(store: SQLiteStore) -> None:
    assert store.load(b"nope") is None
    assert store.remove(b"nope") is False
    store.store(b"k", b"v")
    assert store.remove(b"k") is True
    assert store.remove(b"k") is False


def test_empty_value_and_empty_key(store: SQLiteStore) -> None:
    store.store(b"empty", b"")
    assert store.load(b"empty") == b""  # a stored empty value is not "absent"
    store.store(b"", b"empty key")
    assert store.load(b"") == b"empty key"
    assert store.remove(b"") is True


def test_binary_keys_with_every_byte_value(store: SQLiteStore) -> None:
    keys = [bytes([i]) for i in range(256)] + [bytes(range(256)), b"ab", b"ab\x00", b"\x00ab"]
    for i, key in enumerate(keys):
        store.store(key, key[::-1] + i.to_bytes(2, "big"))
    for i, key in enumerate(keys):
        assert store.load(key) == key[::-1] + i.to_bytes(2, "big")
    assert store.load(b"\x00\x00") is None
    assert store.load_many(keys) == {k: k[::-1] + i.to_bytes(2, "big") for i, k in enumerate(keys)}


def test_16_mib_value(store: SQLiteStore, db: Path) -> None:
    value = os.urandom(16 << 20)
    store.store(b"big", value)
    assert store.load(b"big") == value
    assert raw_rows(db)[b"big"] == value


def test_values_are_returned_as_bytes(store: SQLiteStore) -> None:
    store.store(b"k", memoryview(b"from a view"))  # type: ignore[arg-type]
    value = store.load(b"k")
    assert type(value) is bytes
    assert value == b"from a view"


# -- batches


def test_load_many_leaves_absent_keys_out(store: SQLiteStore) -> None:
    present = {b"k%d" % i: b"v%d" % i for i in range(0, 1200, 2)}
    store.store_many(list(present.items()))
    wanted = [b"k%d" % i for i in range(1200)]  # more than one chunk of keys
    assert store.load_many(wanted) == present
    assert store.load_many(iter([b"k0", b"k1", b"k0"])) == {b"k0": b"v0"}
    assert store.load_many([]) == {}


def test_store_many_writes_and_overwrites(store: SQLiteStore, db: Path) -> None:
    store.store(b"k1", b"old")
    items = [(b"k%d" % i, b"v%d" % i) for i in range(1000)]
    store.store_many(items)
    assert raw_rows(db) == dict(items)
    store.store_many([])
    assert raw_rows(db) == dict(items)


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "select-then-delete"])
def test_remove_many_reports_each_key(db: Path, returning: bool) -> None:
    with SQLiteStore(db) as store:
        store._use_returning = returning  # the path for SQLite < 3.35 must agree
        store.store_many([(b"k%d" % i, b"v") for i in range(0, 1100, 3)])
        keys = [b"k%d" % i for i in range(1100)] + [b"k0", b"missing"]
        existed = store.remove_many(keys)
        # aligned with the input; a repeated key existed once, as a loop would say
        assert existed == [i % 3 == 0 for i in range(1100)] + [False, False]
        assert raw_rows(db) == {}
        assert store.remove_many([]) == []


def test_failed_store_many_is_reported_whole_and_applies_nothing(
    store: SQLiteStore, db: Path
) -> None:
    store.store(b"a", b"before")
    items: list[tuple[bytes, bytes]] = [(b"a", b"after"), (b"b", b"2"), (b"c", None), (b"d", b"4")]  # type: ignore[list-item]
    with pytest.raises(BatchError) as info:
        store.store_many(items)
    err = info.value
    assert set(err.failed) == {b"a", b"b", b"c", b"d"}
    assert err.succeeded == []
    assert all(isinstance(e, StoreWriteError) for e in err.failed.values())
    assert isinstance(err.__cause__, sqlite3.IntegrityError)
    assert str(db) in str(err) and "writethrough" in str(err)
    assert raw_rows(db) == {b"a": b"before"}
    # the connection is not left inside the failed transaction: later writes commit
    store.store(b"e", b"5")
    assert raw_rows(db) == {b"a": b"before", b"e": b"5"}


def test_batch_refused_by_a_trigger_rolls_back(store: SQLiteStore, db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TRIGGER refuse_insert BEFORE INSERT ON writethrough WHEN NEW.key = x'626164'
        BEGIN SELECT RAISE(ABORT, 'bad key refused'); END;
        CREATE TRIGGER refuse_delete BEFORE DELETE ON writethrough WHEN OLD.key = x'6b656570'
        BEGIN SELECT RAISE(ABORT, 'keep is kept'); END;
        """
    )
    conn.close()
    store.store_many([(b"keep", b"1"), (b"x", b"2")])
    with pytest.raises(BatchError) as info:
        store.store_many([(b"y", b"1"), (b"bad", b"2"), (b"z", b"3")])
    assert list(info.value.failed) == [b"y", b"bad", b"z"]
    assert info.value.succeeded == []
    assert "bad key refused" in str(info.value)
    with pytest.raises(BatchError) as info:
        store.remove_many([b"x", b"keep", b"nope"])
    assert list(info.value.failed) == [b"x", b"keep", b"nope"]
    assert raw_rows(db) == {b"keep": b"1", b"x": b"2"}
    with pytest.raises(StoreWriteError, match="keep is kept"):
        store.remove(b"keep")


# -- durability and configuration


def test_durable_across_close_and_reopen(db: Path) -> None:
    with SQLiteStore(db, table="t1") as store:
        store.store(b"k", b"v")
        store.store_many([(b"a", b"1"), (b"b", b"2")])
    assert store.closed
    with SQLiteStore(str(db), table="t1") as again:
        assert again.load_many([b"k", b"a", b"b"]) == {b"k": b"v", b"a": b"1", b"b": b"2"}
    with SQLiteStore(db, table="other") as other:  # tables are separate stores
        assert other.load(b"k") is None


def test_wal_and_synchronous_full_by_default(store: SQLiteStore, db: Path) -> None:
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (30_000,)
    assert Path(str(db) + "-wal").exists()


@pytest.mark.parametrize(("name", "level"), [("OFF", 0), ("Normal", 1), ("full", 2), ("extra", 3)])
def test_synchronous_levels(db: Path, name: str, level: int) -> None:
    with SQLiteStore(db, synchronous=name) as store:
        assert store._connection().execute("PRAGMA synchronous").fetchone() == (level,)


@pytest.mark.parametrize(
    "table",
    [
        "x; DROP TABLE y",
        'x" (key, value); DROP TABLE y; --',
        "",
        "1abc",
        "a" * 64,
        "has space",
        "dash-ed",
        "tablé",
        "sqlite_master",
        None,
        42,
    ],
)
def test_hostile_or_invalid_table_names_are_refused_before_touching_the_file(
    tmp_path: Path, table: object
) -> None:
    new = tmp_path / "new.db"
    with pytest.raises(ConfigError, match=r"letters, digits or underscores|reserved"):
        SQLiteStore(new, table=table)  # type: ignore[arg-type]
    assert not new.exists()

    existing = tmp_path / "existing.db"
    with SQLiteStore(existing, table="y") as store:
        store.store(b"k", b"v")
    before = existing.read_bytes()
    with pytest.raises(ConfigError):
        SQLiteStore(existing, table=table)  # type: ignore[arg-type]
    assert existing.read_bytes() == before
    assert raw_rows(existing, "y") == {b"k": b"v"}


def test_longest_allowed_table_name(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "t.db", table="_" + "a" * 62) as store:
        store.store(b"k", b"v")
        assert store.load(b"k") == b"v"


def test_missing_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    with pytest.raises(ConfigError) as info:
        SQLiteStore(missing / "x.db")
    assert str(missing) in str(info.value)
    assert not (tmp_path / "no").exists()


def test_directory_and_memory_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(ConfigError, match="MemoryStore"):
        SQLiteStore(":memory:")
    with pytest.raises(ConfigError):
        SQLiteStore("")
    with pytest.raises(ConfigError):
        SQLiteStore(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("synchronous", ["fast", "", "full;", None, 2])
def test_bad_synchronous_is_refused(db: Path, synchronous: object) -> None:
    with pytest.raises(ConfigError, match=r"off.*normal.*full.*extra"):
        SQLiteStore(db, synchronous=synchronous)  # type: ignore[arg-type]
    assert not db.exists()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_timeout_is_refused(db: Path, timeout: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        SQLiteStore(db, timeout=timeout)  # type: ignore[arg-type]
    assert not db.exists()


def test_existing_table_of_another_shape_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    with pytest.raises(ConfigError, match="users"):
        SQLiteStore(db, table="users")


def test_identity_path_table_and_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("rel.db", table="T_1") as store:
        full = os.path.realpath(tmp_path / "rel.db")
        assert store.path == full
        assert store.table == "T_1"
        assert store.identity == f"sqlite:{full}#T_1"
        assert store.wants_bytes is True
        assert repr(store) == f"SQLiteStore({full!r}, table='T_1', synchronous='full', timeout=30)"
    assert repr(store).endswith(", closed)")
    with SQLiteStore(tmp_path / "rel.db", table="T_1") as same:  # PathLike, same identity
        assert same.identity == store.identity


# -- closing


def test_closed_store_refuses_every_call(db: Path) -> None:
    store = SQLiteStore(db)
    store.store(b"k", b"v")
    store.close()
    store.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lambda: store.load(b"k"),
        lambda: store.store(b"k", b"v"),
        lambda: store.remove(b"k"),
        lambda: store.load_many([]),
        lambda: store.store_many([]),
        lambda: store.remove_many([]),
        lambda: store.load_many([b"k"]),
    ]
    for call in calls:
        with pytest.raises(CacheClosed):
            call()
    assert raw_rows(db) == {b"k": b"v"}


def test_close_closes_every_threads_connection(store: SQLiteStore) -> None:
    opened: list[sqlite3.Connection] = []
    ready, resume = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def worker() -> None:
        store.store(b"w", b"1")
        opened.append(store._connection())
        ready.set()
        resume.wait()
        try:
            store.load(b"w")
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait()
    opened.append(store._connection())
    store.close()
    resume.set()
    thread.join()
    assert isinstance(outcome[0], CacheClosed)
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_finished_threads_do_not_leak_connections(store: SQLiteStore) -> None:
    store.store(b"k", b"v")
    for _ in range(20):
        thread = threading.Thread(target=store.load, args=(b"k",))
        thread.start()
        thread.join()
    gc.collect()
    assert len(store._conns) <= 2  # this thread's, maybe one not yet collected


# -- error mapping


def test_locked_database_becomes_store_unavailable_after_the_timeout(db: Path) -> None:
    with SQLiteStore(db, timeout=0.2) as store:
        store.store(b"k", b"v")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                store.store(b"k", b"new")
            assert time.monotonic() - start >= 0.15  # it waited for the lock first
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            assert "locked" in str(info.value)
            assert str(db) in str(info.value) and "#writethrough" in str(info.value)
            with pytest.raises(StoreUnavailable):
                store.remove(b"k")
            with pytest.raises(BatchError) as batch:
                store.store_many([(b"a", b"1"), (b"b", b"2")])
            assert all(isinstance(e, StoreUnavailable) for e in batch.value.failed.values())
            assert store.load(b"k") == b"v"  # WAL: readers are not blocked by the writer
        finally:
            blocker.rollback()
            blocker.close()
        store.store(b"k", b"new")
        assert store.load(b"k") == b"new"


def test_full_database_becomes_store_full(store: SQLiteStore) -> None:
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    with pytest.raises(StoreFull) as info:
        store.store(b"big", b"x" * 1_000_000)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert "full" in str(info.value)
    assert store.load(b"big") is None
    store.store(b"small", b"fits")
    assert store.load(b"small") == b"fits"


def test_read_errors_are_store_errors(store: SQLiteStore) -> None:
    with pytest.raises(StoreError) as info:
        store.load(object())  # type: ignore[arg-type]
    assert not isinstance(info.value, StoreWriteError)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(StoreUnavailable) as info:
        SQLiteStore(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert str(path) in str(info.value)


# -- concurrency


def test_eight_threads_at_once(store: SQLiteStore, db: Path) -> None:
    n_threads, n_ops = 8, 150
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(n_ops):
                own = b"t%d-%d" % (t, i)
                store.store(own, b"first")
                store.store(own, b"v%d" % i)
                assert store.load(own) == b"v%d" % i
                store.store(b"shared-%d" % (i % 5), b"%d" % t)
                assert store.load(b"shared-%d" % (i % 5)) is not None
                if i % 3 == 0:
                    assert store.remove(own) is True
                if i % 50 == 0:
                    batch = [(b"t%d-batch-%d-%d" % (t, i, j), b"b") for j in range(20)]
                    store.store_many(batch)
                    assert len(store.load_many([k for k, _ in batch])) == 20
                    assert store.remove_many([k for k, _ in batch[:10]]) == [True] * 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected: dict[bytes, bytes] = {}
    for t in range(n_threads):
        for i in range(n_ops):
            if i % 3:
                expected[b"t%d-%d" % (t, i)] = b"v%d" % i
            if i % 50 == 0:
                expected.update((b"t%d-batch-%d-%d" % (t, i, j), b"b") for j in range(10, 20))
    rows = raw_rows(db)
    shared = {k: rows.pop(k) for k in list(rows) if k.startswith(b"shared-")}
    assert rows == expected
    assert sorted(shared) == [b"shared-%d" % i for i in range(5)]
    assert all(int(v) in range(n_threads) for v in shared.values())


WORKER = r"""
import sys
from writethrough.stores.sqlite import SQLiteStore

path, name, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
with SQLiteStore(path, timeout=30) as s:
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        shared = b"shared-%d" % (i % 10)
        s.store(shared, name + b":%d" % i)
        assert s.load(shared).split(b":")[0] in (b"a", b"b"), s.load(shared)
        own = b"%s-%d" % (name, i)
        s.store(own, b"v%d" % i)
        assert s.load(own) == b"v%d" % i
        if i % 4 == 0:
            assert s.remove(own) is True
        if i % 40 == 0:
            s.store_many([(b"%s-batch-%d" % (name, i), b"b"), (shared, name + b":batch")])
            assert s.load_many([own, shared])
print("done", flush=True)
"""


def test_two_processes_share_one_file(db: Path) -> None:
    SQLiteStore(db).close()  # create the file and the table once
    n = 600
    procs = [run_python(WORKER, str(db), name, str(n), stdin=subprocess.PIPE) for name in "ab"]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:  # start both at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
        assert out == "done\n"
    rows = raw_rows(db)
    for name in (b"a", b"b"):
        for i in range(n):
            assert rows.get(b"%s-%d" % (name, i)) == (None if i % 4 == 0 else b"v%d" % i)
    assert all(rows[b"shared-%d" % i].split(b":")[0] in (b"a", b"b") for i in range(10))


HARD_EXIT = r"""
import os, sys
from writethrough.stores.sqlite import SQLiteStore

s = SQLiteStore(sys.argv[1])
n = int(sys.argv[2])
for i in range(n):
    s.store(b"k%d" % i, b"value-%d" % i)
s.store_many([(b"batch-%d" % i, b"b%d" % i) for i in range(50)])
s.store(b"last", b"written just before the crash")
os._exit(0)  # no close, no flush, no atexit: only what store() made durable survives
"""


def test_every_returned_store_survives_a_hard_exit(db: Path) -> None:
    proc = run_python(HARD_EXIT, str(db), "200")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with SQLiteStore(db) as store:
        for i in range(200):
            assert store.load(b"k%d" % i) == b"value-%d" % i
        assert len(store.load_many([b"batch-%d" % i for i in range(50)])) == 50
        assert store.load(b"last") == b"written just before the crash"


KILLED = r"""
import sys
from writethrough.stores.sqlite import SQLiteStore

s = SQLiteStore(sys.argv[1])
i = 0
while True:
    s.store(b"k%d" % i, b"value-%d" % i)
    print(i, flush=True)  # acknowledged only after store() returned
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_every_acknowledged_store_survives_sigkill(db: Path) -> None:
    proc = run_python(KILLED, str(db))
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(300)]
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    acked += [int(line) for line in out.split()]
    assert proc.returncode == -signal.SIGKILL
    with SQLiteStore(db) as store:
        found = store.load_many([b"k%d" % i for i in acked])
        assert found == {b"k%d" % i: b"value-%d" % i for i in acked}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_opens_its_own_connection(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.store(b"parent", b"1")
        parent_conn = store._connection()
        pid = os.fork()
        if pid == 0:  # the child: must not use parent_conn
            code = 1
            try:
                ok = store.load(b"parent") == b"1"
                store.store(b"child", b"2")
                ok = ok and store._connection() is not parent_conn
                code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store._connection() is parent_conn  # the parent keeps its connection
        assert store.load(b"child") == b"2"
        store.store(b"parent", b"3")
        assert raw_rows(db) == {b"parent": b"3", b"child": b"2"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_while_a_write_is_in_progress_does_not_lock_the_child(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.store(b"k", b"0")
        store._write_lock.acquire()  # as if a parent thread were mid-write at the fork
        try:
            pid = os.fork()
            if pid == 0:  # the child: its copy of the lock must not be held
                code = 1
                try:
                    signal.alarm(10)  # a hang ends the child (non-zero) instead of the run
                    store.store(b"child", b"1")
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
        finally:
            store._write_lock.release()
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.load(b"child") == b"1"

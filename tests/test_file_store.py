"""FileStore against real directories: layout, URLs, crashes, processes, threads, memory, errors.

The error tests provoke real failures: a full tmpfs (ENOSPC), a file system
remounted read-only (EROFS), an immutable directory (EPERM, which binds even
root), a directory removed underneath, and a bind mount unmounted underneath.
Mounting needs root (CAP_SYS_ADMIN); without it those tests skip and say why.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import writethrough as wt
import writethrough.stores.files as files_module
import writethrough.url
from writethrough.errors import (
    BatchError,
    CacheClosed,
    ConfigError,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreWriteError,
)
from writethrough.stores.files import MARKER, FileStore
from writethrough.url import open_store

SRC = Path(files_module.__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> Iterator[FileStore]:
    with FileStore(root) as s:
        yield s


@pytest.fixture
def fast(root: Path) -> Iterator[FileStore]:
    """A store without fsyncs (same files, same renames), for tests not about durability."""
    with FileStore(root, fsync=False) as s:
        yield s


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter that imports this checkout's package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def temp_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(".tmp-*")]


# -- URLs and options


def test_url_forms(tmp_path: Path) -> None:
    with open_store(f"file://{tmp_path}/a") as s:
        assert s.path == str(tmp_path / "a")
        assert s.identity == f"file://{tmp_path}/a"
    with open_store(f"file://localhost{tmp_path}/a") as s:  # localhost is this host
        assert s.path == str(tmp_path / "a")
    with open_store(f"file://{tmp_path}/with%20space") as s:  # percent-decoded
        assert s.path == str(tmp_path / "with space")
    with open_store(f"file://{tmp_path}/b?levels=2&fsync=false&create=yes") as s:
        assert (s.levels, s._fsync) == (2, False)
    with open_store(f"file://{tmp_path}/b", create="false") as s:  # levels come from the store
        assert s.levels == 2
    with open_store(f"file://{tmp_path}/c", levels=3, fsync=True) as s:  # keyword values
        assert s.levels == 3


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("file://relative/dir", "absolute path"),
        ("file://otherhost{tmp}/x", "absolute path"),
        ("file://localhost:80{tmp}/x", "absolute path"),
        ("file://", "names no directory"),
        ("file://{tmp}/x?levels=4", "levels must be 1, 2 or 3"),
        ("file://{tmp}/x?levels=two", "levels"),
        ("file://{tmp}/x?fsync=maybe", "fsync"),
        ("file://{tmp}/x?create=2", "create"),
    ],
)
def test_bad_urls_are_refused(tmp_path: Path, url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_store(url.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "x").exists()


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        open_store(f"file://{tmp_path}/x?sync=full")


def test_password_in_a_url_is_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(f"file://user:s3cret@localhost{tmp_path}/x")
    assert "s3cret" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_open_a_cache_over_a_file_url(tmp_path: Path) -> None:
    with wt.open(f"file://{tmp_path}/c?capacity=10") as cache:
        cache.put("k", {"v": 1})
        cache.evict_all()
        assert cache.get("k") == {"v": 1}
        assert cache.backing_store.identity == f"file://{tmp_path}/c"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"levels": 0},
        {"levels": 4},
        {"levels": True},
        {"levels": "1"},
        {"fsync": 1},
        {"create": None},
    ],
)
def test_bad_options_are_refused_before_touching_the_disk(
    root: Path, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        FileStore(root, **kwargs)  # type: ignore[arg-type]
    assert not root.exists()


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        FileStore(tmp_path / "no" / "such")  # the parent must exist
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a directory"):
        FileStore(tmp_path / "file")
    for bad in ("", 42, "a\x00b"):
        with pytest.raises(ConfigError):
            FileStore(bad)  # type: ignore[arg-type]


def test_create_false_opens_only_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="create=False"):
        FileStore(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()  # e.g. a mount point with nothing mounted on it
    with pytest.raises(StoreUnavailable, match="mounted"):
        FileStore(tmp_path / "empty", create=False)
    assert list((tmp_path / "empty").iterdir()) == []
    FileStore(tmp_path / "empty").close()
    FileStore(tmp_path / "empty", create=False).close()


def test_a_non_empty_directory_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    (home / "ab").mkdir()  # looks like a shard; still not a store
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    with pytest.raises(ConfigError, match="not a writethrough FileStore"):
        FileStore(home)
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before
    # a fresh file system's root (lost+found) and a crashed creator's temp file are "empty"
    fresh = tmp_path / "fresh"
    (fresh / "lost+found").mkdir(parents=True)
    (fresh / ".tmp-marker-crashed").write_bytes(b"{")
    with FileStore(fresh) as s:
        s.store(b"k", b"v")


def test_bad_markers_are_refused(root: Path) -> None:
    FileStore(root, levels=2).close()
    marker = root / MARKER
    assert b'"levels": 2' in marker.read_bytes()
    with pytest.raises(ConfigError, match="levels=2"):
        FileStore(root, levels=1)
    original = marker.read_bytes()
    marker.write_bytes(original.replace(b'"version": 1', b'"version": 2'))
    with pytest.raises(ConfigError, match="version 2"):
        FileStore(root)
    marker.write_bytes(b"not json")
    with pytest.raises(ConfigError, match="marker"):
        FileStore(root)
    marker.write_bytes(original)
    FileStore(root).close()


def test_identity_path_levels_and_repr(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    real.mkdir()
    with FileStore(tmp_path / "link") as s:
        assert s.path == str(real)
        assert s.identity == f"file://{real}"
        assert s.levels == 1
        assert s.wants_bytes is True
        assert repr(s) == f"FileStore({str(real)!r}, levels=1, fsync=True)"
    assert repr(s).endswith(", closed)")


# -- values and layout


def test_round_trips(fast: FileStore) -> None:
    assert fast.load(b"k") is None
    fast.store(b"k", b"v1")
    fast.store(b"k", b"v2")  # overwrite
    assert fast.load(b"k") == b"v2"
    fast.store(b"empty", b"")
    assert fast.load(b"empty") == b""  # a stored empty value is not "absent"
    fast.store(b"", b"empty key")
    assert fast.load(b"") == b"empty key"
    keys = [bytes([i]) for i in range(256)] + [bytes(range(256)), "ключ 🔑".encode(), b"a" * 5000]
    for i, key in enumerate(keys):
        fast.store(key, key[::-1] + b"%d" % i)
    assert fast.load_many(keys) == {k: k[::-1] + b"%d" % i for i, k in enumerate(keys)}
    assert fast.remove(b"k") is True
    assert fast.remove(b"k") is False
    assert fast.load(b"k") is None


@pytest.mark.parametrize("size", [65536 - 20, 65536 - 19, 65536, 70_000, 16 * MiB])
def test_values_around_the_first_read_and_large(store: FileStore, size: int) -> None:
    value = os.urandom(size)
    store.store(b"key", value)  # 16 bytes of header + 3 of key: the first read's edge
    got = store.load(b"key")
    assert type(got) is bytes and got == value


def test_bytes_like_values_and_keys(fast: FileStore) -> None:
    fast.store(b"m", memoryview(b"from a view"))  # type: ignore[arg-type]
    fast.store(b"a", bytearray(b"from an array"))  # type: ignore[arg-type]
    fast.store(b"i", memoryview(bytes(range(8))).cast("i"))  # type: ignore[arg-type]
    assert fast.load(b"m") == b"from a view"
    assert fast.load(b"a") == b"from an array"
    assert fast.load(b"i") == bytes(range(8))
    fast.store(bytearray(b"ba"), b"1")  # type: ignore[arg-type]
    assert fast.load(b"ba") == b"1"
    with pytest.raises(StoreError, match="keys must be bytes"):
        fast.load("text")  # type: ignore[arg-type]
    with pytest.raises(StoreWriteError, match="keys must be bytes"):
        fast.store("text", b"v")  # type: ignore[arg-type]
    with pytest.raises(StoreWriteError, match="values must be bytes"):
        fast.store(b"k", None)  # type: ignore[arg-type]
    assert temp_files(Path(fast.path)) == []


def test_layout_on_disk(tmp_path: Path) -> None:
    for levels in (1, 2, 3):
        with FileStore(tmp_path / f"l{levels}", levels=levels, fsync=False) as s:
            s.store(b"key", b"value")
            digest = hashlib.blake2b(b"key", digest_size=32).hexdigest()
            shards = [digest[2 * i : 2 * i + 2] for i in range(levels)]
            path = Path(s.path, *shards, digest)
            assert s._path_of(b"key") == str(path)
            data = path.read_bytes()
            assert data[:4] == b"WTK1"
            assert int.from_bytes(data[4:8], "big") == 3
            assert int.from_bytes(data[8:16], "big") == 5
            assert data[16:] == b"keyvalue"
            s.store_many([(b"k%d" % i, b"v") for i in range(20)])
            assert sorted(s.iter_keys()) == sorted([b"key"] + [b"k%d" % i for i in range(20)])


def test_a_file_holding_another_key_reads_as_absent(store: FileStore) -> None:
    """A hash collision (simulated by copying a file under another key's name) is no hit."""
    store.store(b"a", b"value of a")
    store.store(b"b", b"value of b")
    shutil.copyfile(store._path_of(b"a"), store._path_of(b"b"))
    assert store.load(b"b") is None
    assert store.load(b"a") == b"value of a"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data[:-1],  # truncated
        lambda data: data + b"x",  # trailing bytes
        lambda data: b"XXXX" + data[4:],  # bad magic
        lambda data: data[:10],  # shorter than a header
        lambda data: data[:16] + data[16:19] + os.urandom(100_000),  # size disagrees (large)
    ],
    ids=["truncated", "trailing", "magic", "short", "large-size"],
)
def test_corrupt_files_raise_instead_of_returning_garbage(
    store: FileStore, mangle: Callable[[bytes], bytes]
) -> None:
    store.store(b"key", b"some value")
    path = Path(store._path_of(b"key"))
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(StoreError, match="not a valid store file") as info:
        store.load(b"key")
    assert not isinstance(info.value, StoreWriteError)
    store.store(b"key", b"fixed")  # a write replaces it
    assert store.load(b"key") == b"fixed"


def test_unreadable_entry_is_a_read_error(store: FileStore) -> None:
    path = Path(store._path_of(b"key"))
    path.parent.mkdir(parents=True)
    path.mkdir()  # a directory where the file should be
    with pytest.raises(StoreError) as info:
        store.load(b"key")
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.EISDIR


# -- batches


def test_batches(fast: FileStore) -> None:
    items = [(b"b%d" % i, b"v%d" % i * i) for i in range(300)]
    fast.store_many(items)
    assert fast.load_many([k for k, _ in items] + [b"missing"]) == dict(items)
    fast.store_many([(b"dup", b"1"), (b"dup", b"2")])  # in order: the last one wins
    assert fast.load(b"dup") == b"2"
    assert fast.remove_many([b"b0", b"missing", b"b0", b"b1"]) == [True, False, False, True]
    assert fast.load_many([b"b0", b"b1", b"b2"]) == {b"b2": b"v2v2"}
    fast.store_many([])
    assert fast.remove_many([]) == []
    assert temp_files(Path(fast.path)) == []


@pytest.mark.parametrize("flush", ["syncfs", "syncfs reports an error", "no syncfs"])
def test_batches_flush_once_or_fsync_each_directory_once(
    store: FileStore, monkeypatch: pytest.MonkeyPatch, flush: str
) -> None:
    real_syncfs = files_module._SYNCFS
    if flush != "no syncfs" and real_syncfs is None:
        pytest.skip("this kernel has no syncfs that reports write-back errors")
    by_shard: dict[str, list[bytes]] = {}
    for key in (b"k%d" % i for i in range(5000)):
        by_shard.setdefault(os.path.dirname(store._path_of(key)), []).append(key)
    shards = sorted(by_shard)[:3]
    keys = [key for shard in shards for key in by_shard[shard][:8]]  # 24 keys in 3 shards
    store.store_many([(k, b"old") for k in keys])  # the shards exist now
    synced: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def counting_syncfs(fd: int) -> int:
        synced.append("fs")
        assert real_syncfs is not None
        result = real_syncfs(fd)  # the real flush happens either way
        return -1 if flush == "syncfs reports an error" else result

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(files_module, "_SYNCFS", None if flush == "no syncfs" else counting_syncfs)
    store.store_many([(k, b"new") for k in keys])
    if flush == "syncfs":  # one flush of the files, one of the renames
        assert synced == ["fs", "fs"]
    else:  # every file, then each touched shard once
        assert (synced.count("file"), synced.count("dir")) == (24, 3)
    synced.clear()
    assert store.remove_many(keys[:10]) == [True] * 10  # 8 keys of one shard, 2 of another
    assert synced == ["dir", "dir"]
    assert store.load_many(keys) == {k: b"new" for k in keys[10:]}
    assert temp_files(Path(store.path)) == []


def test_batch_fails_per_key(store: FileStore) -> None:
    """A key whose shard cannot be written fails alone; exactly the others succeed."""
    probe_shard = os.path.dirname(store._path_of(b"probe"))
    victim = next(
        k
        for k in (b"v%d" % i for i in range(1000))
        if os.path.dirname(store._path_of(k)) != probe_shard
    )
    shard = Path(store._path_of(victim)).parent
    shard.write_bytes(b"a file where the shard directory goes")
    items = [(b"probe", b"1"), (victim, b"2"), (b"x", None), (b"ok", b"3")]
    with pytest.raises(BatchError) as info:
        store.store_many(items)  # type: ignore[arg-type]
    err = info.value
    assert set(err.failed) == {victim, b"x"}
    assert isinstance(err.failed[victim], StoreWriteError)
    assert isinstance(err.failed[victim].__cause__, NotADirectoryError)
    assert isinstance(err.failed[b"x"], StoreWriteError)
    assert err.succeeded == [b"probe", b"ok"]
    assert store.load_many([b"probe", victim, b"x", b"ok"]) == {b"probe": b"1", b"ok": b"3"}
    assert store.remove(victim) is False  # no file can exist below a file
    assert temp_files(Path(store.path)) == []


# -- lifetime


def test_durable_across_close_and_reopen(root: Path) -> None:
    with FileStore(root) as s:
        s.store(b"k", b"v")
        s.store_many([(b"a", b"1"), (b"b", b"2")])
    with FileStore(str(root)) as again:
        assert again.load_many([b"k", b"a", b"b"]) == {b"k": b"v", b"a": b"1", b"b": b"2"}


def test_closed_store_refuses_every_call(root: Path) -> None:
    s = FileStore(root)
    s.store(b"k", b"v")
    s.close()
    s.close()  # idempotent
    calls: list[Callable[[], object]] = [
        lambda: s.load(b"k"),
        lambda: s.store(b"k", b"v"),
        lambda: s.remove(b"k"),
        lambda: s.load_many([b"k"]),
        lambda: s.store_many([]),
        lambda: s.remove_many([]),
        lambda: list(s.iter_keys()),
    ]
    for call in calls:
        with pytest.raises(CacheClosed):
            call()


def test_stale_temp_files_are_removed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with FileStore(root, levels=2) as s:
        s.store(b"k", b"v")
        shard = Path(s._path_of(b"k")).parent
    old = time.time() - 2 * 3600
    stale = [shard / ".tmp-1-dead-1", shard.parent / ".tmp-1-dead-2", root / ".tmp-marker-1"]
    fresh = shard / ".tmp-2-live-1"  # a live writer's: young, kept
    for path in [*stale, fresh]:
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    other = shard / "README"  # not a temp file: never touched
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    with FileStore(root) as s:
        assert not any(p.exists() for p in stale)
        assert fresh.exists() and other.exists()
        assert s.load(b"k") == b"v"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_names_its_temp_files_apart(store: FileStore) -> None:
    parent_token = files_module._token
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            store.store(b"child", b"1")
            os.write(write, files_module._token.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_token = os.read(read, 100).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_token.split("-")[0] == str(pid) and child_token != parent_token
    assert store.load(b"child") == b"1"


# -- crashes, processes, threads


def crash_value(i: int, size: int) -> bytes:
    return (b"%07d;" % i) * (size // 8)


KILLED = r"""
import random, sys
from writethrough.stores.files import FileStore

s = FileStore(sys.argv[1])
sizes = random.Random(int(sys.argv[2]))
i = 0
while True:
    size = sizes.choice((0, 8, 800, 80_000, 400_000))
    s.store(b"k%d" % i, (b"%07d;" % i) * (size // 8))
    print(i, flush=True)  # acknowledged only after store() returned
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_every_acknowledged_store_survives_sigkill_and_nothing_partial_is_read(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    for round_ in range(3):
        root, seed = tmp_path / f"r{round_}", rng.randrange(1 << 30)
        FileStore(root).close()
        proc = run_python(KILLED, str(root), str(seed))
        assert proc.stdout is not None
        acked = [int(proc.stdout.readline()) for _ in range(rng.randint(1, 25))]
        time.sleep(rng.random() * 0.02)  # land anywhere inside a write
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err
        acked += [int(line) for line in out.split()]
        sizes = random.Random(seed)
        expected = {
            b"k%d" % i: crash_value(i, sizes.choice((0, 8, 800, 80_000, 400_000)))
            for i in range(acked[-1] + 3)
        }
        with FileStore(root) as s:
            for i in acked:
                assert s.load(b"k%d" % i) == expected[b"k%d" % i]
            for key in s.iter_keys():  # the write in flight: absent or whole, never partial
                assert s.load(key) == expected[key]


MIXED = r"""
import hashlib, random, sys, time
from writethrough.stores.files import FileStore

s = FileStore(sys.argv[1], fsync=sys.argv[2] == "fsync")
rng = random.Random()
reads = writes = 0
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    key = b"shared-%d" % rng.randrange(4)
    if rng.random() < 0.5:
        body = bytes([rng.randrange(256)]) * rng.choice((0, 100, 70_000, 300_000))
        s.store(key, hashlib.sha256(body).digest() + body)
        writes += 1
    else:
        value = s.load(key)
        if value is not None:
            assert hashlib.sha256(value[32:]).digest() == value[:32], "partial value read"
            reads += 1
print(reads, writes, flush=True)
"""


def test_two_processes_never_see_a_partial_value(root: Path) -> None:
    FileStore(root).close()
    procs = [run_python(MIXED, str(root), mode, "1.0") for mode in ("fsync", "nofsync")]
    results = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        reads, writes = map(int, out.split())
        assert reads > 0 and writes > 0
    assert temp_files(root) == []


def test_eight_threads(fast: FileStore) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        rng = random.Random(t)
        try:
            barrier.wait()
            for i in range(60):
                own = b"t%d-%d" % (t, i)
                fast.store(own, b"v%d" % i)
                assert fast.load(own) == b"v%d" % i
                body = bytes([t]) * rng.choice((1, 5000, 70_000))
                fast.store(b"shared-%d" % (i % 3), hashlib.sha256(body).digest() + body)
                got = fast.load(b"shared-%d" % (i % 3))
                assert got is not None and hashlib.sha256(got[32:]).digest() == got[:32]
                if i % 3 == 0:
                    assert fast.remove(own) is True
                if i % 20 == 0:
                    batch = [(b"t%d-b%d-%d" % (t, i, j), b"b") for j in range(10)]
                    fast.store_many(batch)
                    assert fast.remove_many([k for k, _ in batch]) == [True] * 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = {b"t%d-%d" % (t, i): b"v%d" % i for t in range(8) for i in range(60) if i % 3}
    assert fast.load_many(expected) == expected
    assert temp_files(Path(fast.path)) == []


# -- memory


def test_a_large_value_is_not_held_twice(store: FileStore) -> None:
    size = 64 * MiB
    value = b"\xa5" * size
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        store.store(b"big", value)
        _, store_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got = store.load(b"big")
        _, load_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store_peak < size // 16  # written from the caller's buffer: no copy at all
    assert size <= load_peak < 1.5 * size  # one buffer of the value's size
    assert got == value


def test_a_100_mb_blob_through_the_cache_is_held_once(root: Path) -> None:
    """``codec="bytes"``: put writes from the caller's buffer; a miss reads one buffer."""
    size = 100 * MiB
    value = b"\x5a" * size
    with wt.open(f"file://{root}", codec="bytes", capacity=4) as cache:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            cache.put(("media", 1), value)
            _, put_peak = tracemalloc.get_traced_memory()
            cache.evict_all()
            tracemalloc.reset_peak()
            got = cache.get(("media", 1))
            _, miss_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert put_peak < size // 16  # no encoded copy, no header + value concatenation
        assert size <= miss_peak < 1.5 * size  # the file read into one buffer, kept as is
        assert got == value
        assert cache.get(("media", 1)) is got  # a hit serves that buffer, no copy


# -- error mapping with real failures


def test_directory_removed_underneath(root: Path) -> None:
    with FileStore(root) as s:
        s.store(b"k", b"v")
        shutil.rmtree(root)
        with pytest.raises(StoreUnavailable, match="gone") as info:
            s.store(b"k2", b"v")
        assert isinstance(info.value.__cause__, FileNotFoundError)
        assert str(root) in str(info.value)
        with pytest.raises(BatchError) as batch:
            s.store_many([(b"a", b"1"), (b"b", b"2")])
        assert all(isinstance(e, StoreUnavailable) for e in batch.value.failed.values())
        assert batch.value.succeeded == []
        assert s.load(b"k") is None  # its files are gone: absent
        assert s.remove(b"k") is False
        assert not root.exists()  # nothing recreated
        FileStore(root).close()  # a new store at the same place: the same object works again
        s.store(b"k2", b"v2")
        assert s.load(b"k2") == b"v2"


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); needs root/CAP_SYS_ADMIN")


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: small enough to fill."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        _umount(mnt)


def test_full_disk_is_store_full(tmpfs: Path) -> None:
    with FileStore(tmpfs / "s") as s:
        with pytest.raises(StoreFull) as info:
            s.store(b"big", b"x" * (2 * MiB))
        assert isinstance(info.value.__cause__, OSError)
        assert info.value.__cause__.errno == errno.ENOSPC
        assert "store failed" in str(info.value) and str(tmpfs) in str(info.value)
        assert temp_files(tmpfs) == []  # the partial temp file is gone
        assert s.load(b"big") is None
        s.store(b"small", b"fits")
        with pytest.raises(BatchError) as batch:
            s.store_many([(b"a", b"1"), (b"huge", b"x" * (2 * MiB)), (b"b", b"2")])
        assert list(batch.value.failed) == [b"huge"]
        assert isinstance(batch.value.failed[b"huge"], StoreFull)
        assert batch.value.succeeded == [b"a", b"b"]
        assert s.load_many([b"a", b"huge", b"b", b"small"]) == {
            b"a": b"1",
            b"b": b"2",
            b"small": b"fits",
        }
        assert temp_files(tmpfs) == []


def test_read_only_file_system_refuses_writes_then_recovers(tmpfs: Path) -> None:
    with FileStore(tmpfs / "s") as s:
        s.store(b"k", b"v")
        _mount("-o", "remount,ro", str(tmpfs))
        with pytest.raises(StoreWriteError) as info:
            s.store(b"k", b"new")
        assert not isinstance(info.value, (StoreFull, StoreUnavailable))
        assert info.value.__cause__.errno == errno.EROFS  # type: ignore[union-attr]
        with pytest.raises(StoreWriteError):
            s.remove(b"k")
        assert s.load(b"k") == b"v"  # reads still work
        with FileStore(tmpfs / "s") as reader:  # a read-only store can still be opened
            assert reader.load(b"k") == b"v"
        _mount("-o", "remount,rw", str(tmpfs))
        s.store(b"k", b"new")  # the same object works again
        assert s.load(b"k") == b"new"


def test_unmounted_directory_is_unavailable_then_recovers(tmp_path: Path) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    real, mnt = tmp_path / "real", tmp_path / "mnt"
    real.mkdir()
    mnt.mkdir()
    _mount("--bind", str(real), str(mnt))
    try:
        with FileStore(mnt) as s:  # the store is the mount point itself
            s.store(b"k", b"v")
            _umount(mnt)
            with pytest.raises(StoreUnavailable, match="unmounted"):
                s.store(b"k2", b"v2")
            assert list(mnt.iterdir()) == []  # nothing written into the bare mount point
            assert s.load(b"k") is None
            with pytest.raises(StoreUnavailable):
                FileStore(mnt, create=False)
            _mount("--bind", str(real), str(mnt))
            assert s.load(b"k") == b"v"
            s.store(b"k2", b"v2")
            assert (real / MARKER).exists()
    finally:
        _umount(mnt)


def test_refused_write_is_store_write_error(store: FileStore) -> None:
    """An immutable shard (chattr +i binds even root) or, when not root, a read-only one."""
    store.store(b"k", b"v")
    shard = Path(store._path_of(b"k")).parent
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root (chmod does not bind) and no chattr to lock a directory")
        result = subprocess.run(["chattr", "+i", str(shard)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {result.stderr.strip()}")
        unlock = ["chattr", "-i", str(shard)]
    else:
        shard.chmod(0o555)
        unlock = ["chmod", "755", str(shard)]
    try:
        with pytest.raises(StoreWriteError) as info:
            store.store(b"k", b"new")
        assert not isinstance(info.value, (StoreFull, StoreUnavailable))
        assert info.value.__cause__.errno in (errno.EPERM, errno.EACCES)  # type: ignore[union-attr]
        with pytest.raises(StoreWriteError):
            store.remove(b"k")
        with pytest.raises(BatchError) as batch:
            store.remove_many([b"k", b"absent"])
        assert list(batch.value.failed) == [b"k"] and batch.value.succeeded == [b"absent"]
        assert store.load(b"k") == b"v"
    finally:
        subprocess.run(unlock, check=True)
    store.store(b"k", b"new")
    assert store.load(b"k") == b"new"

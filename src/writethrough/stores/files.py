"""``FileStore``: a directory of files, one per key, in sharded sub-directories.

Each key lives in ``<dir>/<ab>/<hash>`` (more levels on request), where ``hash`` is
the hex BLAKE2b-256 of the encoded key. A file holds a 16-byte header (magic, key
length, value length), the key, then the value, so a file can be checked against
the key it is read for and the directory can be listed (``iter_keys()``).

A write goes to a ``.tmp-*`` file in the key's shard, is fsynced, renamed over the
final name (atomic: readers see the old file or the new one, never part of one),
then the shard directory is fsynced: durable on return, safe for many threads
and processes at once (the last rename wins). Standard library only; POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import secrets
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

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

__all__ = ["FileStore"]

MARKER = ".writethrough"  # the file that makes a directory a store
_FORMAT = "writethrough.files"
_VERSION = 1
_HASH = "blake2b-256"
_MAGIC = b"WTK1"
_HEAD = struct.Struct(">4sIQ")  # magic, key length, value length
_HEAD_SIZE = _HEAD.size
_NAME_LEN = 64  # hex digits of a BLAKE2b-256 digest: a key file's name
_FIRST_READ = 65536  # one read returns the whole file for values up to ~64 KiB
_TEMP_PREFIX = ".tmp-"
_TEMP_MAX_AGE = 3600.0  # seconds: older temp files are a crashed writer's, removed on open
_IGNORED_ON_CREATE = frozenset({"lost+found"})  # a fresh file system's root is still "empty"

_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_O_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
# The directory cannot be used right now (gone, stale network handle, out of descriptors).
_UNAVAILABLE = frozenset(
    getattr(errno, name)
    for name in ("ESTALE", "ENODEV", "ENXIO", "ENOTCONN", "ENOMEDIUM", "EMFILE", "ENFILE", "ENOMEM")
    if hasattr(errno, name)
)

_hash = hashlib.blake2b
_counter = itertools.count()
_token = f"{os.getpid()}-{secrets.token_hex(4)}"  # renewed in a forked child


class FileStore(BytesStore):
    """A byte store in a directory: one file per key, written atomically and durably.

    ``path`` is the store directory. When it does not exist it is created (its
    parent must exist) unless ``create=False``, which opens only an existing store
    (so an unmounted mount point is not silently made a new, empty store). A
    non-empty directory that is not a store is refused with ``ConfigError``.
    ``fsync=False`` skips the fsyncs: still atomic, survives a process crash, not a
    power loss. ``levels`` is the number of shard directory levels (1 = 256
    directories, 2 = 65,536 for tens of millions of keys); it is fixed when the
    store is created, ``None`` takes the store's.

    A directory removed or unmounted under an open store makes writes raise
    ``StoreUnavailable``; its keys then read as absent. Remounted, the same store
    object works again.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        fsync: bool = True,
        levels: int | None = None,
    ) -> None:
        if os.name != "posix":  # pragma: no cover - the project runs on POSIX systems
            raise ConfigError("FileStore needs a POSIX system (directory fsync, atomic rename)")
        for name, flag in (("create", create), ("fsync", fsync)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be True or False; got {flag!r}")
        if levels is not None and (
            isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 3
        ):
            raise ConfigError(f"levels must be 1, 2 or 3; got {levels!r}")
        try:
            raw = os.fsdecode(os.fspath(path))
        except TypeError:
            raise ConfigError(
                f"FileStore path must be a str or os.PathLike; got {path!r}"
            ) from None
        if not raw or "\x00" in raw:
            raise ConfigError(f"FileStore path must be a non-empty path; got {raw!r}")
        self._fsync = fsync
        self._root = os.path.abspath(raw)
        self._marker = os.path.join(self._root, MARKER)
        self._levels = 1
        try:
            self._root = self._open_directory(create, levels)
        except OSError as exc:
            self._closed = True
            message = f"file://{self._root}: opening the store failed: {exc}"
            if exc.errno in _FULL:
                raise StoreFull(message) from exc
            raise StoreUnavailable(
                f"{message}; check the path, its permissions and that its file system is mounted"
            ) from exc
        self._marker = os.path.join(self._root, MARKER)
        self._prefix = self._root.rstrip("/") + "/"
        self._locate = _locator(self._prefix, self._levels)
        self._clean_temp_files()

    # -- opening
    def _open_directory(self, create: bool, levels: int | None) -> str:
        """Find or make the store directory and its marker; return its real path."""
        root = self._root
        if not os.path.lexists(root):
            if not create:
                raise StoreUnavailable(
                    f"file://{root}: no store there (create=False); check the path and that "
                    "its file system is mounted"
                )
            parent = os.path.dirname(root)
            if not os.path.isdir(parent):
                raise ConfigError(f"directory {parent!r} of FileStore path {root!r} does not exist")
            with contextlib.suppress(FileExistsError):
                os.mkdir(root)
                self._sync_dir(parent)
        if not os.path.isdir(root):
            raise ConfigError(f"FileStore path {root!r} exists and is not a directory")
        root = os.path.realpath(root)
        self._root, self._marker = root, os.path.join(root, MARKER)
        meta = self._read_marker()
        if meta is None:
            foreign = [
                name
                for name in os.listdir(root)
                if not name.startswith(_TEMP_PREFIX) and name not in _IGNORED_ON_CREATE
            ]
            if foreign:
                raise ConfigError(
                    f"{root!r} is not empty and is not a writethrough FileStore (no {MARKER} "
                    f"file; it holds e.g. {sorted(foreign)[0]!r}); choose a new or empty directory"
                )
            if not create:
                raise StoreUnavailable(
                    f"file://{root}: empty directory, not a store (create=False); check that "
                    "its file system is mounted"
                )
            self._write_marker(levels or 1)
            meta = self._read_marker()
            if meta is None:  # pragma: no cover - removed again at once by someone else
                raise StoreUnavailable(f"file://{root}: the store marker vanished while opening")
        if levels is not None and levels != meta["levels"]:
            raise ConfigError(
                f"file://{root} was created with levels={meta['levels']}; got levels={levels} "
                "(leave levels unset to use the store's)"
            )
        self._levels = meta["levels"]
        return root

    def _read_marker(self) -> dict[str, Any] | None:
        try:
            with open(self._marker, "rb") as f:
                text = f.read(4096)
        except FileNotFoundError:
            return None
        try:
            meta: dict[str, Any] = json.loads(text)
            ok = isinstance(meta, dict) and meta.get("format") == _FORMAT
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{self._marker!r} is not a writethrough FileStore marker")
        if meta.get("version") != _VERSION or meta.get("hash") != _HASH:
            raise ConfigError(
                f"file://{self._root} has format version {meta.get('version')!r} "
                f"({meta.get('hash')!r}); this writethrough reads version {_VERSION} only"
            )
        if meta.get("levels") not in (1, 2, 3):
            raise ConfigError(f"{self._marker!r} names invalid levels {meta.get('levels')!r}")
        return meta

    def _write_marker(self, levels: int) -> None:
        """Create the marker atomically; a concurrent creator's marker wins (then re-read)."""
        meta = {"format": _FORMAT, "version": _VERSION, "hash": _HASH, "levels": levels}
        temp = os.path.join(self._root, f"{_TEMP_PREFIX}marker-{_token}-{next(_counter)}")
        fd = os.open(temp, _O_TEMP, 0o666)
        try:
            try:
                os.write(fd, json.dumps(meta, sort_keys=True).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, self._marker)  # fails if another process made it first
            except FileExistsError:
                pass
            except OSError:  # no hard links on this file system: last writer wins
                os.replace(temp, self._marker)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self._sync_dir(self._root)

    def _clean_temp_files(self) -> None:
        """Remove temp files older than an hour: a crashed writer's (best effort).

        Live writers' temp files are younger (their mtime moves while they write).
        """
        cutoff = time.time() - _TEMP_MAX_AGE
        dirs = [self._root]
        for _ in range(self._levels + 1):
            below: list[str] = []
            for path in dirs:
                try:
                    entries = list(os.scandir(path))
                except OSError:
                    continue
                for entry in entries:
                    name = entry.name
                    if name.startswith(_TEMP_PREFIX):
                        with contextlib.suppress(OSError):
                            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                                os.unlink(entry.path)
                    elif len(name) == 2 and _is_hex(name) and entry.is_dir(follow_symlinks=False):
                        below.append(entry.path)
            dirs = below

    # -- paths
    def _path_of(self, key: bytes) -> str:
        """The file that holds ``key``."""
        name = _hash(key, digest_size=32).hexdigest()
        return self._locate(name)

    def _make_shard(self, shard: str) -> None:
        """Create a key's shard directories (durably), if this is still the store's directory."""
        try:
            os.stat(self._marker)
        except FileNotFoundError as exc:
            raise StoreUnavailable(
                f"{self.identity}: the store directory is gone or no longer holds the store "
                "(removed or unmounted?)"
            ) from exc
        parent = self._root
        for part in shard.rstrip("/").split("/"):
            path = os.path.join(parent, part)
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            else:
                self._sync_dir(parent)
            parent = path

    def _sync_dir(self, path: str) -> None:
        if not self._fsync:
            return
        fd = os.open(path, _O_DIR)
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # some file systems cannot fsync a directory
                raise
        finally:
            os.close(fd)

    # -- errors
    def _error(self, exc: OSError, action: str, *, write: bool) -> WriteThroughError:
        """Map an OSError into the writethrough tree (the caller chains it)."""
        if self._closed:
            return CacheClosed(f"{self.identity}: store is closed")
        message = f"{self.identity}: {action} failed: {exc}"
        code = exc.errno
        if write and code in _FULL:
            return StoreFull(message)
        if code in _UNAVAILABLE or (write and code == errno.ENOENT):
            return StoreUnavailable(message)
        return StoreWriteError(message) if write else StoreError(message)

    def _closed_error(self) -> CacheClosed:
        return CacheClosed(f"{self.identity}: store is closed")

    # -- the store protocol (hot paths: keep them short)
    def load(self, key: bytes) -> bytes | None:
        if self._closed:
            raise self._closed_error()
        if type(key) is not bytes:
            key = _as_bytes(key, self, write=False)
        name = _hash(key, digest_size=32).hexdigest()
        path = self._locate(name)
        try:
            fd = os.open(path, _O_READ)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "load", write=False) from exc
        try:
            data = os.read(fd, _FIRST_READ)
            if len(data) >= _HEAD_SIZE:
                magic, klen, vlen = _HEAD.unpack_from(data)
                if magic == _MAGIC:
                    if klen != len(key) or not data.startswith(key, _HEAD_SIZE):
                        return None  # another key with the same hash: not ours
                    start = _HEAD_SIZE + klen
                    if len(data) == start + vlen:
                        return data[start:]
                    if os.fstat(fd).st_size == start + vlen:  # larger than the first read
                        del data
                        return _pread_exact(fd, vlen, start)
        except OSError as exc:
            raise self._error(exc, "load", write=False) from exc
        finally:
            os.close(fd)
        raise StoreError(f"{self.identity}: load failed: {path!r} is not a valid store file")

    def store(self, key: bytes, value: bytes) -> None:
        if self._closed:
            raise self._closed_error()
        if type(key) is not bytes:
            key = _as_bytes(key, self, write=True)
        if type(value) is not bytes:
            value = _as_buffer(value, self)
        name = _hash(key, digest_size=32).hexdigest()
        path = self._locate(name)
        shard = path[:-_NAME_LEN]
        try:
            temp = self._write_temp(shard, key, value)
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink_quietly(temp)
                raise
            if self._fsync:
                self._sync_dir(shard)
        except OSError as exc:
            raise self._error(exc, "store", write=True) from exc

    def _write_temp(self, shard: str, key: bytes, value: bytes, *, sync: bool = True) -> str:
        """Write (and fsync, if ``sync``) ``key``'s file under a temp name in ``shard``."""
        temp = f"{shard}{_TEMP_PREFIX}{_token}-{threading.get_ident():x}-{next(_counter)}"
        try:
            fd = os.open(temp, _O_TEMP, 0o666)
        except FileNotFoundError:
            self._make_shard(shard[len(self._prefix) :])
            fd = os.open(temp, _O_TEMP, 0o666)
        try:
            head = _HEAD.pack(_MAGIC, len(key), len(value)) + key
            done = os.writev(fd, (head, value))
            if done != len(head) + len(value):
                _write_rest(fd, head, value, done)
            if sync and self._fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        try:
            os.close(fd)
        except BaseException:
            _unlink_quietly(temp)
            raise
        return temp

    def remove(self, key: bytes) -> bool:
        if self._closed:
            raise self._closed_error()
        if type(key) is not bytes:
            key = _as_bytes(key, self, write=True)
        name = _hash(key, digest_size=32).hexdigest()
        path = self._locate(name)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._error(exc, "remove", write=True) from exc
        try:
            self._sync_dir(path[:-_NAME_LEN])
        except OSError as exc:
            raise self._error(exc, "remove", write=True) from exc
        return True

    # -- batches: file by file (a directory cannot commit several files at once)
    def store_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Write every file, flush them, rename them all, then flush the renames.

        Each flush is one ``syncfs`` of the store's file system where the kernel
        reports write-back errors through it (Linux 5.8+): one journal commit for the
        whole batch instead of one fsync per file and per shard. Where ``syncfs``
        is missing or reports an error, each file (then each touched shard) is
        fsynced on its own, which names the keys that failed. A key counts as
        stored only after the second flush; failures are per key (``BatchError``
        lists exactly the keys stored in ``succeeded``).
        """
        if self._closed:
            raise self._closed_error()
        items = list(items)
        failed: dict[Any, BaseException] = {}
        written: list[tuple[Any, str, str, str]] = []  # reported key, shard, temp, final path
        renamed: dict[str, list[Any]] = {}
        done = 0
        flushed = False
        # opened before the first write: its syncfs reports every write-back error since
        fs = _open_for_syncfs(self._root) if self._fsync and len(items) > 1 else None
        try:
            for item in items:
                report = _key_of(item)
                try:
                    key, value = item
                    if type(key) is not bytes:
                        key = _as_bytes(key, self, write=True)
                    if type(value) is not bytes:
                        value = _as_buffer(value, self)
                    name = _hash(key, digest_size=32).hexdigest()
                    path = self._locate(name)
                    shard = path[:-_NAME_LEN]
                    temp = self._write_temp(shard, key, value, sync=fs is None)
                    written.append((report, shard, temp, path))
                except OSError as exc:
                    failed[report] = _chain(self._error(exc, "store_many", write=True), exc)
                except StoreError as exc:
                    failed[report] = exc
                except (ValueError, TypeError) as exc:  # not a (key, value) pair
                    failed[report] = _chain(
                        StoreWriteError(f"{self.identity}: malformed batch item: {exc}"), exc
                    )
            if fs is not None and written and not _syncfs(fs):
                written = self._sync_files(written, failed)  # one by one: who failed?
            for report, shard, temp, path in written:
                done += 1
                try:
                    os.replace(temp, path)
                except OSError as exc:
                    _unlink_quietly(temp)
                    failed[report] = _chain(self._error(exc, "store_many", write=True), exc)
                else:
                    renamed.setdefault(shard, []).append(report)
            flushed = fs is not None and bool(renamed) and _syncfs(fs)
        finally:
            for _report, _shard, temp, _path in written[done:]:  # interrupted: no temp left
                _unlink_quietly(temp)
            if fs is not None:
                _close_fd(fs)
        if not flushed:  # each shard on its own: who failed?
            self._sync_shards(renamed, failed, "store_many")
        if failed:
            succeeded = [k for k in map(_key_of, items) if k not in failed]
            raise BatchError(
                f"{self.identity}: {len(failed)} of {len(items)} writes failed", failed, succeeded
            )

    def _sync_files(
        self, written: list[tuple[Any, str, str, str]], failed: dict[Any, BaseException]
    ) -> list[tuple[Any, str, str, str]]:
        """Fsync each temp file; those that fail are removed and their keys failed."""
        synced = []
        for entry in written:
            report, _shard, temp, _path = entry
            try:
                fd = os.open(temp, _O_READ)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                _unlink_quietly(temp)
                failed[report] = _chain(self._error(exc, "store_many", write=True), exc)
            else:
                synced.append(entry)
        return synced

    def remove_many(self, keys: Sequence[bytes]) -> list[bool]:
        """Unlink every file, then fsync each touched shard once; per key, whether it existed."""
        if self._closed:
            raise self._closed_error()
        keys = list(keys)
        failed: dict[Any, BaseException] = {}
        removed: dict[str, list[Any]] = {}
        existed: list[bool] = []
        for key in keys:
            report = _hashable(key)
            try:
                raw = key if type(key) is bytes else _as_bytes(key, self, write=True)
                name = _hash(raw, digest_size=32).hexdigest()
                path = self._locate(name)
                shard = path[:-_NAME_LEN]
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                existed.append(False)
            except OSError as exc:
                failed[report] = _chain(self._error(exc, "remove_many", write=True), exc)
                existed.append(False)
            except StoreError as exc:
                failed[report] = exc
                existed.append(False)
            else:
                removed.setdefault(shard, []).append(report)
                existed.append(True)
        self._sync_shards(removed, failed, "remove_many")
        if failed:
            succeeded = [k for k in map(_hashable, keys) if k not in failed]
            raise BatchError(
                f"{self.identity}: {len(failed)} of {len(keys)} removals failed", failed, succeeded
            )
        return existed

    def _sync_shards(
        self, touched: dict[str, list[Any]], failed: dict[Any, BaseException], action: str
    ) -> None:
        """Fsync each shard once; a shard that fails fails every key changed in it."""
        for shard, keys in touched.items():
            try:
                self._sync_dir(shard)
            except OSError as exc:
                error = _chain(self._error(exc, action, write=True), exc)
                for key in keys:
                    failed[key] = error

    # -- inspection
    def iter_keys(self) -> Iterator[bytes]:
        """Every key in the store, in no particular order (reads each file's header; slow)."""
        if self._closed:
            raise self._closed_error()
        dirs = [self._root]
        for _ in range(self._levels):
            dirs = [
                os.path.join(d, name)
                for d in dirs
                for name in sorted(_listdir(d))
                if len(name) == 2 and _is_hex(name)
            ]
        for shard in dirs:
            for name in sorted(_listdir(shard)):
                if len(name) != _NAME_LEN or not _is_hex(name):
                    continue
                try:
                    with open(os.path.join(shard, name), "rb") as f:
                        head = f.read(_HEAD_SIZE)
                        if len(head) != _HEAD_SIZE:
                            continue
                        magic, klen, _vlen = _HEAD.unpack(head)
                        key = f.read(klen)
                except OSError:
                    continue  # removed meanwhile, or unreadable
                if magic == _MAGIC and len(key) == klen:
                    yield key

    # -- description
    @property
    def path(self) -> str:
        """The store directory, as an absolute path with symlinks resolved."""
        return self._root

    @property
    def levels(self) -> int:
        return self._levels

    @property
    def identity(self) -> str:
        return f"file://{self._root}"

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"FileStore({self._root!r}, levels={self._levels}, fsync={self._fsync}{state})"


def _locator(prefix: str, levels: int) -> Callable[[str], str]:
    """The function from a key's hash to its file path (one closure: the hot paths call it)."""
    if levels == 1:
        return lambda name: prefix + name[:2] + "/" + name
    if levels == 2:
        return lambda name: prefix + name[:2] + "/" + name[2:4] + "/" + name
    return lambda name: prefix + name[:2] + "/" + name[2:4] + "/" + name[4:6] + "/" + name


_HEX = frozenset("0123456789abcdef")


def _is_hex(name: str) -> bool:
    return all(c in _HEX for c in name)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` in one allocation (a short read falls back to chunks)."""
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data
    chunks = [data]
    got = len(data)
    while got < size:
        chunk = os.pread(fd, size - got, offset + got)
        if not chunk:
            raise OSError(errno.EIO, "file shrank while being read")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_rest(fd: int, head: bytes, value: Any, done: int) -> None:
    """Finish a short ``writev`` (a value over 2 GiB, a signal, a disk filling up)."""
    data = memoryview(value).cast("B")
    total = len(head) + len(data)
    while done < total:
        if done < len(head):
            n = os.writev(fd, (head[done:], data))
        else:
            n = os.write(fd, data[done - len(head) :])
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n


def _syncfs_function() -> Callable[[int], int] | None:
    """libc's ``syncfs`` where it reports write-back errors (Linux 5.8+), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):  # older kernels return 0 even when write-back failed
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return function


_SYNCFS = _syncfs_function()


def _open_for_syncfs(root: str) -> int | None:
    """A descriptor on the store's file system for ``_syncfs``, or ``None`` (fsync per file)."""
    if _SYNCFS is None:
        return None
    try:
        return os.open(root, _O_DIR)
    except OSError:
        return None


def _syncfs(fd: int) -> bool:
    """Flush the whole file system ``fd`` is on; whether it reported success."""
    assert _SYNCFS is not None
    return _SYNCFS(fd) == 0


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _as_bytes(key: Any, store: FileStore, *, write: bool) -> bytes:
    """Keys are ``bytes``; other bytes-like objects are copied, anything else refused."""
    try:
        return bytes(memoryview(key))
    except TypeError as exc:
        error = StoreWriteError if write else StoreError
        raise error(f"{store.identity}: keys must be bytes, got {type(key).__name__}") from exc


def _as_buffer(value: Any, store: FileStore) -> Any:
    """A bytes-like value as a flat byte view (written as is, never copied)."""
    try:
        return memoryview(value).cast("B")
    except TypeError as exc:
        raise StoreWriteError(
            f"{store.identity}: values must be bytes-like, got {type(value).__name__}"
        ) from exc


_E = TypeVar("_E", bound=BaseException)


def _chain(error: _E, cause: BaseException) -> _E:
    """``error`` with ``cause`` as its ``__cause__`` (for errors collected, not raised)."""
    error.__cause__ = cause
    return error


def _key_of(item: Any) -> Any:
    """The key of a batch item, for error reports (even a malformed item gets an entry)."""
    try:
        key = item[0]
    except Exception:
        return repr(item)
    return _hashable(key)


def _hashable(key: Any) -> Any:
    """``key`` itself when it can be a dict key, else its repr (for ``BatchError.failed``)."""
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def _after_fork_in_child() -> None:
    """A child names its temp files by its own pid (and a fresh random part)."""
    global _token
    _token = f"{os.getpid()}-{secrets.token_hex(4)}"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    lowered = str(raw).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"option {name}={raw!r} is not a boolean (true/false)")


def from_url(url: Any, options: dict[str, Any]) -> FileStore:
    """``file:///absolute/dir`` (or ``file://localhost/...``); options create, fsync, levels."""
    if url.host not in (None, "", "localhost") or url.port is not None or url.username is not None:
        raise ConfigError(
            f"file URLs name a local directory by its absolute path: file:///absolute/dir, "
            f"got {url} (a relative path cannot be written as a URL; pass it to FileStore)"
        )
    if not url.path.startswith("/"):
        raise ConfigError(f"file URL {url} names no directory: use file:///absolute/dir")
    kwargs: dict[str, Any] = {}
    for name in ("create", "fsync"):
        if name in options:
            kwargs[name] = _to_bool(name, options.pop(name))
    if "levels" in options:
        raw = options.pop("levels")
        try:
            kwargs["levels"] = raw if isinstance(raw, int) else int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"option levels={raw!r} is not an integer (1, 2 or 3)") from None
    return FileStore(url.path, **kwargs)

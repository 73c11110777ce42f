"""Group commit: concurrent ``put`` calls share one durable transaction.

A writer queue in front of one store. A ``put`` that finds a commit slot free
commits alone, at once (a lone writer is never delayed). One that arrives while
every slot is busy (one slot for SQLite, one per pooled connection for a server
store) joins the queue; when a commit ends, the first queued caller becomes the
next leader and writes everything queued (up to ``max_size``) with the store's
``store_many``, one transaction, then wakes the others. Every caller returns
only after the transaction holding its write committed, so each ``put`` is
still durable when it returns.

Failure is per member: when a group's transaction fails, the leader retries its
members one by one so each caller gets exactly its own outcome; a lost
connection (``StoreUnavailable``) fails the whole group at once, since a retry
would meet the same dead server. The queue keeps acceptance order, so two
writes of one key in a group end with the later one stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import BatchError, CacheClosed, StoreUnavailable

__all__ = ["GroupCommit"]

_LEAD = 1
_DONE = 2
_PENDING: Any = object()  # a member's outcome before its commit ended


class _Member:
    """One queued write, and how its caller is woken (a lock released once)."""

    __slots__ = ("error", "group", "key", "state", "value", "wakeup")

    def __init__(self, key: Any, value: Any) -> None:
        self.key = key
        self.value = value
        self.state = 0
        self.error: BaseException | None = None
        self.group: list[_Member] = []  # set on the member made leader: what it commits
        self.wakeup = threading.Lock()
        self.wakeup.acquire()

    def wake(self, state: int) -> None:
        self.state = state
        self.wakeup.release()


class GroupCommit:
    """The writer queue of one store: ``store(key, value)`` returns once committed.

    ``max_wait`` (seconds, default 0) lets a leader wait for more members before
    committing a group smaller than ``max_size``; 0 never delays anyone.

    ``store.group_commit_concurrency`` (default 1) is how many commits may be in
    flight at once: 1 for SQLite (one writer), the pool size for a server store,
    whose connections commit in parallel. A write queues only when that many
    commits are in flight, so a lone writer (or fewer writers than connections)
    is never delayed. Two writes of one key must not be in flight at once (the
    cache's per-key gate orders them); within one group the later one wins.
    """

    def __init__(self, store: Any, *, max_wait: float = 0.0, max_size: int = 256) -> None:
        self._store_one: Callable[[Any, Any], None] = store.store
        self._store_many: Callable[[list[tuple[Any, Any]]], None] = store.store_many
        self._max_wait = max_wait
        self._max_size = max_size
        self._slots = max(1, int(getattr(store, "group_commit_concurrency", 1)))
        self._lock = threading.Lock()
        self._queue: list[_Member] = []  # accepted, not yet in a group
        self._active = 0  # commits in flight (a handover to a queued leader keeps it)
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self.commits = 0  # transactions; both counters change under the lock
        self.members = 0

    def store(self, key: Any, value: Any) -> None:
        """Write ``key`` -> ``value`` alone or in a group; raise exactly this write's error."""
        with self._lock:
            if self._closed:
                raise CacheClosed("the cache is closed")
            # a free slot means an empty queue: members queue only when every slot is busy
            lone = self._active < self._slots
            if lone:
                self._active += 1
                self.commits += 1
                self.members += 1
            else:
                member = _Member(key, value)
                self._queue.append(member)
        if lone:  # the common case: a commit slot is free
            try:
                self._store_one(key, value)
            finally:
                self._next_leader()
            return
        member.wakeup.acquire()  # until a leader commits us, or makes us the leader
        if member.state == _LEAD:
            self._lead(member)
        if member.error is not None:
            raise member.error

    def _lead(self, head: _Member) -> None:
        """Commit the group handed to ``head`` (its write first), then hand over."""
        group = head.group
        if self._max_wait > 0 and len(group) < self._max_size:
            deadline = time.monotonic() + self._max_wait
            while len(group) + len(self._queue) < self._max_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.0005))
            with self._lock:
                more = self._max_size - len(group)
                group += self._queue[:more]
                del self._queue[:more]
        for member in group:
            member.error = _PENDING
        try:
            self._commit(group)
        except BaseException as exc:  # interrupted: no member may believe it was written
            for member in group:
                if member.error is _PENDING:
                    member.error = exc
            raise
        finally:
            self._next_leader()
            for member in group[1:]:
                member.wake(_DONE)

    def _commit(self, group: list[_Member]) -> None:
        """Write ``group`` in one transaction; on failure give each member its own outcome."""
        if len(group) == 1:
            self._commit_alone(group[0])
            return
        self._count(1, len(group))
        try:
            self._store_many([(m.key, m.value) for m in group])
        except BatchError as exc:
            failed = exc.failed
            if all(isinstance(e, StoreUnavailable) for e in failed.values()) and failed:
                first = next(iter(failed.values()))
                for member in group:
                    member.error = failed.get(member.key, first)
                return
            ok = set(exc.succeeded)
            retry = [m for m in group if m.key not in ok]
        except (StoreUnavailable, CacheClosed) as exc:
            for member in group:
                member.error = exc
            return
        except Exception:
            retry = group
        else:
            for member in group:
                member.error = None
            return
        retried = {id(m) for m in retry}
        for member in group:
            if id(member) not in retried:
                member.error = None
        for member in retry:  # each caller gets exactly its own outcome
            self._commit_alone(member, counted=True)

    def _commit_alone(self, member: _Member, *, counted: bool = False) -> None:
        self._count(1, 0 if counted else 1)
        try:
            self._store_one(member.key, member.value)
        except Exception as exc:
            member.error = exc
        else:
            member.error = None

    def _count(self, commits: int, members: int) -> None:
        with self._lock:
            self.commits += commits
            self.members += members

    def _next_leader(self) -> None:
        """A commit ended: hand its slot to the queued writes (as one group), or free it."""
        with self._lock:
            if not self._queue:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()
                return
            if self._closed:  # fail the waiting: nothing queued is written after close
                waiting, self._queue = self._queue, []
                for member in waiting:
                    member.error = CacheClosed("the cache was closed before this write")
                    member.wake(_DONE)
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()
                return
            group = self._queue[: self._max_size]
            del self._queue[: self._max_size]
            head = group[0]
            head.group = group
            head.wake(_LEAD)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new writes, fail the queued ones, wait for the commits in flight."""
        with self._lock:
            self._closed = True
            if not self._active:
                return
            self._idle.wait_for(lambda: not self._active, timeout)

    @property
    def max_wait(self) -> float:
        return self._max_wait

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def concurrency(self) -> int:
        """How many commits may be in flight at once."""
        return self._slots

"""Harness for the multi-process bus tests: a cache in a spawned process, driven over a pipe.

No tests here. ``Peer(url, **options)`` starts a process (multiprocessing,
spawn) that opens ``wt.open(url, **options)`` and answers commands;
``OwnServer`` is a message server a test owns on a free port (stop, restart).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import subprocess
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_CTX = multiprocessing.get_context("spawn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def enter_netns(name: str) -> None:
    """Move this process into the network namespace ``ip netns`` calls ``name`` (setns(2))."""
    import ctypes

    clone_newnet = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{name}") as handle:
        if libc.setns(handle.fileno(), clone_newnet) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")


def _serve(conn: Connection, url: str, options: dict[str, Any]) -> None:
    import writethrough as wt

    netns = options.pop("netns", None)
    try:
        if netns is not None:
            enter_netns(netns)
        cache = wt.open(url, **options)
    except BaseException as exc:
        conn.send((False, f"{type(exc).__name__}: {exc}"))
        return
    conn.send((True, None))

    def wait_for(key: Any, expected: Any, timeout: float) -> float | None:
        """Seconds until ``get(key) == expected`` (polled with 0.1 ms pauses), or None."""
        start = time.perf_counter()
        deadline = start + timeout
        while True:
            if cache.get(key) == expected:
                return time.perf_counter() - start
            if time.perf_counter() > deadline:
                return None
            time.sleep(0.0001)

    def watch(key: Any, seconds: float) -> list[Any]:
        """Every distinct value ``get(key)`` returned during ``seconds``, in order."""
        seen: list[Any] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            value = cache.get(key)
            if not seen or seen[-1] != value:
                seen.append(value)
            time.sleep(0.0001)
        return seen

    import threading

    watched: list[Any] = []  # the keys a background reader follows (replaced as a whole)
    violations = [0]

    def background_reader() -> None:
        """Reads the watched keys without pause between commands: its misses race the
        bus messages, and every value it returns must be at least the last it returned."""
        last: dict[Any, int] = {}
        while True:
            keys = watched[0] if watched else ()
            for key in keys:
                value = cache.get(key)
                got = -1 if value is None else value
                if got < last.get(key, -1):
                    violations[0] += 1
                last[key] = got
            time.sleep(0.0001)

    def watch_keys(keys: list[Any]) -> int:
        """Follow ``keys`` from now on; returns the violations seen so far (and resets)."""
        if not watched:
            threading.Thread(target=background_reader, daemon=True).start()
            watched.append(keys)
        watched[0] = keys
        seen, violations[0] = violations[0], 0
        return seen

    ops: dict[str, Any] = {
        "watch_keys": watch_keys,
        "get": cache.get,
        "put": cache.put,
        "put_many": cache.put_many,
        "invalidate": cache.invalidate,
        "invalidate_many": cache.invalidate_many,
        "get_many": cache.get_many,
        "held": lambda key: key in cache._core.data,
        "stats": lambda: cache.stats().as_dict(),
        "drop_next": lambda n=1: cache.bus.drop_next_publish(n),
        "installing": lambda: cache._core.installing,
        "connected": lambda: cache.bus.connected,
        "wait_for": wait_for,
        "watch": watch,
        "sleep": time.sleep,
    }
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            break
        if op == "close":
            cache.close()
            conn.send((True, None))
            break
        try:
            result = ops[op](*args)
        except BaseException as exc:
            conn.send((False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        else:
            conn.send((True, result))


def until(check: Any, timeout: float = 5.0) -> bool:
    """Poll ``check()`` until true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@contextlib.contextmanager
def two_peers(
    url: str, netns: list[str] | None = None, **options: Any
) -> Iterator[tuple[Peer, Peer]]:
    """Two processes, A and B, each with a cache over ``url`` and the same options
    (``netns``: the network namespaces A and B run in)."""
    spaces = netns or [None, None]
    a = Peer(url, netns=spaces[0], **options) if spaces[0] else Peer(url, **options)
    try:
        b = Peer(url, netns=spaces[1], **options) if spaces[1] else Peer(url, **options)
    except BaseException:
        a.close()
        raise
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def caches_again(peer: Peer, key: Any, value: Any) -> bool:
    """``peer`` returns ``value`` for ``key`` at every read (never an older one) and
    soon holds it. A read may have to be repeated: with the default 100 ms heartbeat a
    bus thread starved on a loaded machine counts as cut off and flushes (safe)."""

    def check() -> bool:
        assert peer("get", key) == value
        return bool(peer("held", key))

    return until(check)


def assert_recovers(a: Peer, b: Peer) -> None:
    """B's bus connection was just cut: B flushed twice (lost, then resubscribed), and the
    same cache object follows A's writes and caches again."""
    assert until(lambda: b("stats")["bus_flushes"] >= 2)
    assert not b("held", "k")
    assert until(lambda: b("connected") and b("installing"))
    received = b("stats")["bus_received"]
    a("put", "k", 2)
    assert b("wait_for", "k", 2, 5.0) is not None
    assert until(lambda: b("stats")["bus_received"] > received)
    assert caches_again(b, "k", 2)


def prime(writer: Peer, reader: Peer, key: Any, value: Any) -> None:
    """``writer`` puts ``key``; once its message reached ``reader``, ``reader`` caches it."""
    received = reader("stats")["bus_received"]
    writer("put", key, value)
    assert until(lambda: reader("stats")["bus_received"] > received)
    assert caches_again(reader, key, value)


class Peer:
    """One process holding one cache; ``peer("put", k, v)`` runs ``cache.put(k, v)`` there."""

    def __init__(self, url: str, **options: Any) -> None:
        self.conn, child = _CTX.Pipe()
        self.proc = _CTX.Process(target=_serve, args=(child, url, options), daemon=True)
        self.proc.start()
        child.close()
        ok, error = self._recv(60.0)
        if not ok:
            self.kill()
            raise RuntimeError(f"peer could not open its cache: {error}")

    def _recv(self, timeout: float) -> tuple[bool, Any]:
        if not self.conn.poll(timeout):
            self.kill()
            raise TimeoutError("peer did not answer")
        result: tuple[bool, Any] = self.conn.recv()
        return result

    def __call__(self, op: str, *args: Any, timeout: float = 60.0) -> Any:
        self.conn.send((op, args))
        ok, result = self._recv(timeout)
        if not ok:
            raise RuntimeError(f"peer {op}{args!r} failed: {result}")
        return result

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                self("close", timeout=10.0)
        self.proc.join(10)
        self.kill()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class OwnServer:
    """A server process a test owns on a free port: start, stop, restart on the same port."""

    def __init__(self, argv: list[str], port: int, workdir: Path, ready: Any = None) -> None:
        self.argv = argv
        self.port = port
        self.workdir = workdir
        self.ready = ready or (lambda: port_open(port))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / f"server-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, cwd=self.workdir)
        deadline = time.monotonic() + 15
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


def redis_server(workdir: Path) -> OwnServer:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--daemonize", "no", "--dir", str(workdir)]
    return OwnServer(argv, port, workdir)


def nats_server(workdir: Path) -> OwnServer:
    port = free_port()
    return OwnServer(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", str(port)], port, workdir)


def assert_outage_handled(server: OwnServer, url: str, tmp_path: Path) -> None:
    """Stop the bus server under two processes and start it again on the same port.

    While it is down, B serves every read from the store (never stale, nothing
    installed); once it is back, B has flushed again and caches again, on the
    same cache object, and follows A's writes.
    """
    server.start()
    store = f"sqlite:///{tmp_path}/s.db"
    try:
        # the default channel: derived from the store, the same in both processes
        with two_peers(store, bus=url) as (a, b):
            prime(a, b, "k", 1)
            server.stop()
            assert until(lambda: not b("installing"), 2.0)  # noticed within a few heartbeats
            assert not b("held", "k")
            flushes = b("stats")["bus_flushes"]
            for value in (2, 3):
                a("put", "k", value)  # durable: the store does not need the bus
                assert b("get", "k") == value  # served from the store, never stale
                assert not b("held", "k")  # and nothing installed while disconnected
            assert until(lambda: a("stats")["bus_publish_errors"] >= 1)  # A's sends fail now
            server.start()  # the same port
            assert until(lambda: b("installing") and b("connected"), 10.0)
            assert b("stats")["bus_flushes"] > flushes  # flushed again on resubscribing
            assert until(lambda: a("connected") and a("installing"), 10.0)
            received = b("stats")["bus_received"]
            a("put", "k", 4)
            assert b("wait_for", "k", 4, 5.0) is not None
            assert until(lambda: b("stats")["bus_received"] > received)
            assert caches_again(b, "k", 4)
    finally:
        server.stop()

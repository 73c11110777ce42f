"""Coherence across processes: the staleness window per bus, and what a bus costs a put and a hit.

Staleness (per bus: Redis, NATS, PostgreSQL, on loopback): one writer process
puts the values 1..N of one key (SQLite store, ``synchronous=NORMAL`` so the
writer is not fsync-bound; a pause of about 0.5 ms between puts) while one
reader process reads the key in a loop. Staleness of value i = the moment the
reader first returns i or anything newer, minus the moment the writer's
``put(i)`` returned (both ``time.perf_counter``, system-wide on Linux; a value
seen before its put returned counts 0). Every value written counts, not only
the ones the reader happened to see. Two readers: one pausing about 0.1 ms
between reads (it does I/O; target p99 <= 2 ms Redis/NATS, <= 10 ms
PostgreSQL), one spinning on the CPU (reported without a target: its bus thread
waits for the GIL up to ``sys.getswitchinterval()``). Every ``--drop-every``-th
message is dropped on purpose (the test hook): those values must still be
visible within one heartbeat interval (100 ms) plus the window. Monotonic
violations: the reader returning a value older than one it returned before.

Cost (one process, interleaved rounds, median round): ``put`` on a cache with a
Redis bus vs the same ``put`` without (SQLite FULL, Redis store; target
<= 1.10x) and ``get`` on a hit with vs without (target <= 1.05x).

    python benchmarks/coherence.py [--writes 10000] [--spin-writes 2000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _util

import writethrough as wt

BUSES = {
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
}
TARGET_P99 = {"redis": 0.002, "nats": 0.002, "postgresql": 0.010}
TARGET_PUT = 1.10
TARGET_HIT = 1.05
HEARTBEAT = 0.1
KEY = "coherence"


# ------------------------------------------------------------ staleness (two processes)


def _reader(store: str, bus: str, channel: str, spin: bool, conn: Any) -> None:
    cache = wt.open(store, bus=bus, channel=channel, bus_heartbeat=HEARTBEAT)
    seen: list[tuple[float, int]] = []
    last = -1
    violations = 0
    perf = time.perf_counter
    sleep = time.sleep
    conn.send("ready")
    while not conn.poll():
        value = cache.get(KEY)
        got = -1 if value is None else value
        if got != last:
            if got < last:
                violations += 1
            else:
                seen.append((perf(), got))
            last = got
        if not spin:
            sleep(0.0001)
    conn.recv()
    stats = cache.stats()
    cache.close()
    conn.send((seen, violations, stats.bus_flushes, stats.bus_received))


def _writer(store: str, bus: str, channel: str, writes: int, drop_every: int, conn: Any) -> None:
    cache = wt.open(store, bus=bus, channel=channel, bus_heartbeat=HEARTBEAT)
    conn.send("ready")
    conn.recv()
    done: list[float] = []
    dropped: list[int] = []
    perf = time.perf_counter
    rng = random.Random(7)
    for i in range(1, writes + 1):
        if drop_every and i % drop_every == 0:
            cache.bus.drop_next_publish()
            dropped.append(i)
        cache.put(KEY, i)
        done.append(perf())
        time.sleep(rng.uniform(0.0003, 0.0007))
    cache.close()
    conn.send((done, dropped))


def staleness(bus: str, spin: bool, writes: int, drop_every: int, workdir: Path) -> dict[str, Any]:
    """One writer and one reader process over one SQLite file; the staleness of every value."""
    ctx = multiprocessing.get_context("spawn")
    store = f"sqlite:///{workdir}/{bus}-{int(spin)}.db?synchronous=NORMAL"
    channel = f"bench-coherence-{os.getpid()}-{bus}-{int(spin)}"
    r_conn, r_child = ctx.Pipe()
    w_conn, w_child = ctx.Pipe()
    reader = ctx.Process(target=_reader, args=(store, BUSES[bus], channel, spin, r_child))
    writer = ctx.Process(
        target=_writer, args=(store, BUSES[bus], channel, writes, drop_every, w_child)
    )
    reader.start()
    assert r_conn.recv() == "ready"
    writer.start()
    assert w_conn.recv() == "ready"
    time.sleep(0.3)  # both subscribed, heartbeats exchanged
    w_conn.send("go")
    done, dropped = w_conn.recv()
    time.sleep(0.5)  # let the reader catch up with the last value
    r_conn.send("stop")
    seen, violations, flushes, received = r_conn.recv()
    reader.join(10)
    writer.join(10)
    windows: list[float] = []
    j = 0
    for i, put_done in enumerate(done, 1):
        while j < len(seen) and seen[j][1] < i:
            j += 1
        if j == len(seen):
            windows.append(float("inf"))  # never seen
        else:
            windows.append(max(0.0, seen[j][0] - put_done))
    dropped_set = set(dropped)
    normal = [w for i, w in enumerate(windows, 1) if i not in dropped_set]
    lost = [w for i, w in enumerate(windows, 1) if i in dropped_set]
    return {
        "writes": len(done),
        "p50": _pct(normal, 50),
        "p99": _pct(normal, 99),
        "max": max(normal),
        "dropped": len(lost),
        "dropped_max": max(lost) if lost else None,
        "late_after_drop": sum(1 for w in lost if w > HEARTBEAT * 2),
        "violations": violations,
        "flushes": flushes,
        "received": received,
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ------------------------------------------------------------ cost (one process)


def _timed_puts(cache: wt.WriteThroughCache, keys: list[str], value: bytes) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per put; CPU counts every thread of the process."""
    put = cache.put
    start, cpu = time.perf_counter(), time.process_time()
    for key in keys:
        put(key, value)
    return (time.perf_counter() - start) / len(keys), (time.process_time() - cpu) / len(keys)


def _timed_hits(cache: wt.WriteThroughCache, keys: list[str]) -> tuple[float, float]:
    get = cache.get
    start, cpu = time.perf_counter(), time.process_time()
    for key in keys:
        get(key)
    return (time.perf_counter() - start) / len(keys), (time.process_time() - cpu) / len(keys)


# medians of wall without, wall with, CPU without, CPU with; then the best (fastest) round's
# wall without and with
Cost = tuple[float, float, float, float, float, float]


def put_cost(store_url: str, rounds: int, n: int) -> Cost:
    """Median seconds per put without and with a Redis bus (wall and CPU), interleaved rounds."""
    plain = wt.open(store_url)
    bused = wt.open(store_url, bus=BUSES["redis"], channel=f"bench-put-{os.getpid()}")
    value = b"x" * 100
    keys = [f"p{i}" for i in range(n)]
    try:
        _timed_puts(plain, keys[:200], value)
        _timed_puts(bused, keys[:200], value)
        return _interleaved(plain, bused, rounds, lambda c: _timed_puts(c, keys, value))
    finally:
        plain.close()
        bused.close()


def _interleaved(
    plain: wt.WriteThroughCache, bused: wt.WriteThroughCache, rounds: int, run: Any
) -> Cost:
    """Medians of ``run(cache)`` (wall, CPU) for each cache, rounds alternating who goes first."""
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "bus": []}
    for r in range(rounds):
        order = [("plain", plain), ("bus", bused)]
        if r % 2:
            order.reverse()
        for name, cache in order:
            gc.collect()
            times[name].append(run(cache))

    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    best_plain = min(t[0] for t in times["plain"])
    best_bus = min(t[0] for t in times["bus"])
    return med("plain", 0), med("bus", 0), med("plain", 1), med("bus", 1), best_plain, best_bus


def hit_cost(store_url: str, rounds: int) -> Cost:
    """Median seconds per hit without and with a Redis bus (wall and CPU), interleaved rounds."""
    plain = wt.open(store_url, capacity=200_000)
    bused = wt.open(
        store_url, capacity=200_000, bus=BUSES["redis"], channel=f"bench-hit-{os.getpid()}"
    )
    keys = [f"h{i}" for i in range(20_000)]
    try:
        for cache in (plain, bused):
            cache.put_many(dict.fromkeys(keys, 1))
            cache.get_many(keys)
        time.sleep(0.2)  # our own batch message has come back
        rng = random.Random(3)
        reads = [rng.choice(keys) for _ in range(500_000)]
        result = _interleaved(plain, bused, rounds, lambda c: _timed_hits(c, reads))
        assert bused.stats().misses == 0 and len(bused) == len(keys)  # all hits
        return result
    finally:
        plain.close()
        bused.close()


# ------------------------------------------------------------ a hung bus


def detection(workdir: Path, tries: int = 5) -> list[float]:
    """Seconds from a bus server freezing (SIGSTOP: connections stay open, nothing flows,
    as when a link is cut) to the cache serving from the store; a Redis server of our own."""
    import signal
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]
    out: list[float] = []
    for _ in range(tries):
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            cache = wt.open(f"sqlite:///{workdir}/hung.db", bus=f"redis://127.0.0.1:{port}/0")
            time.sleep(0.3)
            server.send_signal(signal.SIGSTOP)
            start = time.monotonic()
            while cache._core.installing:
                time.sleep(0.0005)
            out.append(time.monotonic() - start)
            server.kill()
            cache.close()
        finally:
            server.kill()
            server.wait()
    return out


# ------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--spin-writes", type=int, default=2_000)
    parser.add_argument("--drop-every", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--buses", default=",".join(BUSES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = _util.environment(["redis", "hiredis", "psycopg", "nats-py"])
    result: dict[str, Any] = {"staleness": {}, "cost": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for bus in [b for b in args.buses.split(",") if b]:
            result["staleness"][bus] = {
                "pausing": staleness(bus, False, args.writes, args.drop_every, workdir),
                "spinning": staleness(bus, True, args.spin_writes, 0, workdir),
            }
        import redis

        prefix = f"bench-coh-{os.getpid()}:"
        for name, url in (
            ("sqlite FULL", f"sqlite:///{workdir}/cost.db"),
            ("redis", f"redis://127.0.0.1:6379/0?prefix={prefix}"),
        ):
            result["cost"][f"put, {name}"] = put_cost(url, args.rounds, 2000)
        client = redis.Redis()
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
        result["cost"]["get hit"] = hit_cost(f"sqlite:///{workdir}/hits.db", args.rounds)
        result["hung_bus_detection"] = detection(workdir)
    targets = {"p99": TARGET_P99, "put": TARGET_PUT, "hit": TARGET_HIT}
    _util.emit(args.json, env, result, report, targets)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "never" if value == float("inf") else f"{value * 1000:.2f}"


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(
        f"switch interval {sys.getswitchinterval() * 1000:g} ms, heartbeat {HEARTBEAT * 1000:g} ms"
    )
    rows = []
    for bus, modes in result["staleness"].items():
        for mode, r in modes.items():
            target = f"<= {TARGET_P99[bus] * 1000:g}" if mode == "pausing" else "-"
            rows.append(
                [
                    f"{bus}, reader {mode}",
                    str(r["writes"]),
                    _ms(r["p50"]),
                    _ms(r["p99"]),
                    target,
                    _ms(r["max"]),
                    f"{r['dropped']} / {_ms(r['dropped_max'])}",
                    str(r["late_after_drop"]),
                    str(r["violations"]),
                    str(r["flushes"]),
                ]
            )
    headers = ["staleness (ms)", "writes", "p50", "p99", "target", "max"]
    headers += ["dropped / max", "late", "monotonic viol.", "flushes"]
    print(_util.table(headers, rows))
    rows = []
    for name, (plain, bused, plain_cpu, bused_cpu, best_plain, best_bus) in result["cost"].items():
        target = TARGET_HIT if name.startswith("get") else TARGET_PUT
        rows.append(
            [
                name,
                f"{plain * 1e6:.2f}",
                f"{bused * 1e6:.2f}",
                _util.ratio(bused, plain),
                f"<= {target:.2f}x",
                f"{plain_cpu * 1e6:.2f}",
                f"{bused_cpu * 1e6:.2f}",
                _util.ratio(bused_cpu, plain_cpu),
                _util.ratio(best_bus, best_plain),
            ]
        )
    print()
    headers = ["cost (us/op)", "no bus", "redis bus", "ratio", "target"]
    headers += ["CPU no bus", "CPU bus", "CPU ratio", "best-round ratio"]
    print(_util.table(headers, rows))
    print(
        "(medians of interleaved rounds; CPU: every thread of the process, bus threads "
        "included; best round: the fastest round of each, the least disturbed by other load)"
    )
    found = ", ".join(f"{t * 1000:.0f}" for t in result["hung_bus_detection"])
    print(f"\nhung bus server (SIGSTOP) until the cache serves from the store: {found} ms")


if __name__ == "__main__":
    main()

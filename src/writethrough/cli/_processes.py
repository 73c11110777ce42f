"""``writethrough bench --processes N --bus URL``: N worker processes over one store, one bus.

Every worker runs its share of the gets and puts on a cache of its own (all
with the bus), and also follows one probe key: worker 0 puts an increasing
counter there about every millisecond and notes when each ``put`` returned;
every worker reads it every few operations and notes when it first returned
each value. The staleness window of value i in a worker is the moment that
worker first returned i or newer, minus the moment ``put(i)`` returned (both
``time.perf_counter``, system-wide on Linux). A read is stale after the window
when the value it returned had been overwritten for longer than ``--window``
(default: two heartbeats). At the end, with every write done and the bus
quiet, each worker compares every key read through its cache with the store.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import dataclass
from typing import Any

import writethrough as wt

from ._workload import check_consistency, key_name

__all__ = ["ProcessesResult", "run_processes"]

PROBE = "writethrough-bench-probe"
_PROBE_EVERY = 8  # operations between two reads of the probe key
_PROBE_PUT_INTERVAL = 0.001


@dataclass(frozen=True)
class ProcessesResult:
    processes: int
    ops: int
    seconds: float
    probe_writes: int
    window_p50: float
    window_p99: float
    window_max: float
    unseen: int  # probe values put before a worker's last read that it never returned (nor newer)
    stale_after_window: int
    flushes: int
    published: int
    received: int
    checked: int
    mismatched: int
    monotonic_violations: int

    @property
    def ok(self) -> bool:
        return self.mismatched == 0 and self.monotonic_violations == 0

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["ops_per_second"] = self.ops / self.seconds if self.seconds else 0.0
        return out


def _worker(index: int, url: str, options: dict[str, Any], plan: dict[str, Any], conn: Any) -> None:
    cache = wt.open(url, **options)
    rng = random.Random(plan["seed"] + index)
    n_keys = plan["keys"]
    read_ratio = plan["read_ratio"]
    size = plan["value_size"]
    ops = plan["ops"]
    perf = time.perf_counter
    seen: list[tuple[float, float, int]] = []  # (first seen, last seen, value) of the probe
    writes: list[float] = []  # worker 0: when each probe put returned
    violations = 0
    next_probe = perf()
    conn.send("ready")
    conn.recv()
    start = perf()
    for i in range(ops):
        key = key_name(rng.randrange(n_keys))
        if rng.random() < read_ratio:
            cache.get(key)
        else:
            cache.put(key, rng.randbytes(size))
        if i % _PROBE_EVERY == 0:
            now = perf()
            if index == 0 and now >= next_probe:
                cache.put(PROBE, len(writes) + 1)
                writes.append(perf())
                next_probe = now + _PROBE_PUT_INTERVAL
            value = cache.get(PROBE, 0)
            t = perf()
            if seen and seen[-1][2] == value:
                seen[-1] = (seen[-1][0], t, value)
            elif seen and value < seen[-1][2]:
                violations += 1
            else:
                seen.append((t, t, value))
    end = perf()
    conn.send(("done", end - start))
    conn.recv()  # every worker is done and the bus had time to settle
    # the probe's last value, then every key against the store
    if seen and cache.get(PROBE, 0) < seen[-1][2]:
        violations += 1
    consistency = check_consistency(cache, n_keys)
    stats = cache.stats()
    cache.close()
    conn.send(
        {
            "seen": seen,
            "end": end,
            "writes": writes,
            "violations": violations,
            "checked": consistency.checked,
            "mismatched": consistency.checked - consistency.matched,
            "flushes": stats.bus_flushes,
            "published": stats.bus_published,
            "received": stats.bus_received,
        }
    )


def run_processes(
    url: str, options: dict[str, Any], plan: dict[str, Any], processes: int, window: float
) -> ProcessesResult:
    """Start ``processes`` workers (spawn), run them together, and gather the figures."""
    ctx = multiprocessing.get_context("spawn")
    pipes = []
    workers = []
    share = max(1, plan["ops"] // processes)
    try:
        for index in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker,
                args=(index, url, options, {**plan, "ops": share}, child),
                daemon=True,
            )
            proc.start()
            child.close()
            pipes.append(parent)
            workers.append(proc)
        for pipe in pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a worker could not start")
        time.sleep(0.3)  # every worker subscribed and heard the others' heartbeats
        for pipe in pipes:
            pipe.send("go")
        seconds = max(pipe.recv()[1] for pipe in pipes)
        time.sleep(max(0.3, 3 * options.get("bus_heartbeat", 0.1)))
        for pipe in pipes:
            pipe.send("check")
        reports = [pipe.recv() for pipe in pipes]
    finally:
        for proc in workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return _summarise(reports, processes, share * processes, seconds, window)


def _summarise(
    reports: list[dict[str, Any]], processes: int, ops: int, seconds: float, window: float
) -> ProcessesResult:
    writes: list[float] = reports[0]["writes"]
    windows: list[float] = []
    unseen = stale = 0
    for index, report in enumerate(reports):
        if index == 0:
            continue  # the writer sees its own puts at once
        seen = report["seen"]
        last_read = seen[-1][1] if seen else 0.0
        j = 0
        for value, put_done in enumerate(writes, 1):
            if put_done > last_read:
                break  # this worker did not read the probe again after that put
            while j < len(seen) and seen[j][2] < value:
                j += 1
            if j == len(seen):
                unseen += 1
            else:
                windows.append(max(0.0, seen[j][0] - put_done))
        for _first, last, value in seen:
            # the value was still returned at ``last``; value+1 had returned at writes[value]
            if value < len(writes) and last - writes[value] > window:
                stale += 1
    windows.sort()

    def pct(p: float) -> float:
        if not windows:
            return 0.0
        return windows[min(len(windows) - 1, round(p / 100 * (len(windows) - 1)))]

    return ProcessesResult(
        processes=processes,
        ops=ops,
        seconds=seconds,
        probe_writes=len(writes),
        window_p50=pct(50),
        window_p99=pct(99),
        window_max=windows[-1] if windows else 0.0,
        unseen=unseen,
        stale_after_window=stale,
        flushes=sum(r["flushes"] for r in reports),
        published=sum(r["published"] for r in reports),
        received=sum(r["received"] for r in reports),
        checked=sum(r["checked"] for r in reports),
        mismatched=sum(r["mismatched"] for r in reports),
        monotonic_violations=sum(r["violations"] for r in reports),
    )


def bench_processes(
    url: str,
    shown: str,
    options: dict[str, Any],
    cfg: Any,
    processes: int,
    bus: str | None,
    as_json: bool,
    console: Any,
    remove_after: bool,
) -> None:
    """The ``--processes``/``--bus`` run of ``writethrough bench``: preload, run, report."""
    import json
    import sys

    import click

    from ..errors import ConfigError, WriteThroughError

    rng = random.Random(cfg.seed)
    try:
        with wt.open(url, **options) as loader:
            loader.invalidate(PROBE)  # a probe left by an earlier run would read as going back
            for lo in range(0, cfg.keys, 1000):
                hi = min(cfg.keys, lo + 1000)
                loader.put_many({key_name(i): rng.randbytes(cfg.value_size) for i in range(lo, hi)})
        if bus is not None:
            options = {**options, "bus": bus}
            wt.open(url, **options).close()  # a bad bus fails here, before any worker starts
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--bus / URL") from None
    except WriteThroughError as exc:
        raise click.ClickException(f"cannot open {shown}: {exc}") from None
    plan = {
        "seed": cfg.seed,
        "keys": cfg.keys,
        "read_ratio": cfg.read_ratio,
        "value_size": cfg.value_size,
        "ops": cfg.ops,
    }
    window = 2 * float(options.get("bus_heartbeat", 0.1))
    result = run_processes(url, options, plan, processes, window)
    if remove_after:
        with wt.open(url, **{k: v for k, v in options.items() if k != "bus"}) as cleaner:
            cleaner.invalidate(PROBE)
            for lo in range(0, cfg.keys, 1000):
                cleaner.invalidate_many([key_name(i) for i in range(lo, min(cfg.keys, lo + 1000))])
    if as_json:
        click.echo(json.dumps({"url": shown, "bus": bus, **result.as_dict()}, indent=2))
    else:
        ms = 1000.0
        console.print(f"[bold]{processes} processes[/] over {shown}, bus {bus or 'none'}")
        console.print(
            f"  {result.ops:,} ops in {result.seconds:.2f} s: "
            f"{result.ops / result.seconds:,.0f} ops/s across processes"
        )
        console.print(
            f"  staleness window over {result.probe_writes:,} probe writes: "
            f"p50 {result.window_p50 * ms:.2f} ms, p99 {result.window_p99 * ms:.2f} ms, "
            f"max {result.window_max * ms:.2f} ms; never seen: {result.unseen}"
        )
        console.print(
            f"  stale reads later than {window * ms:g} ms: {result.stale_after_window}; "
            f"monotonic violations: {result.monotonic_violations}; flushes: {result.flushes}; "
            f"messages sent {result.published:,}, applied {result.received:,}"
        )
        state = "[green]ok[/]" if result.ok else "[red]MISMATCH[/]"
        console.print(
            f"  consistency across processes: {state} "
            f"({result.checked - result.mismatched:,}/{result.checked:,} keys match the store)"
        )
    if not result.ok:
        sys.exit(1)

"""``writethrough bench [URL]``: throughput, latency and a consistency check of the cache."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console

import writethrough as wt
from writethrough.errors import ConfigError, WriteThroughError
from writethrough.policies import POLICIES
from writethrough.url import parse_url

from ._format import RichProgress, consistency_line, print_result, result_json
from ._workload import (
    BenchConfig,
    BenchResult,
    Consistency,
    Distribution,
    check_consistency,
    key_name,
    run_bench,
)

__all__ = ["bench"]

_HELP = """Benchmark the cache over the store at URL (default: a SQLite file in a
temporary directory, removed afterwards).

\b
Phases:
  1. preload: every key (key:00000000 ...) is written with put_many, in
     chunks of 1,000; not timed.
  2. cold start: evict_all(), so the run starts with an empty memory
     (the store keeps every key: each first read is a store hit).
  3. the timed run: THREADS threads start together and share OPS operations;
     each is a get with probability READ_RATIO, else a put of fresh random
     bytes, on a key drawn from the distribution.
  4. consistency check: every key is read through the cache (get_many) and
     straight from the store (decoded with the cache's codec); all must match,
     else the exit code is 1.

\b
Latency is measured per operation with time.perf_counter_ns. A get is
classed as a hit when its key was held in memory just before it: exact with
one thread; with several, another thread can evict or load the key in
between, so a few gets may be classed wrongly (the hit ratio, from the
cache's counters, is exact either way). "Time in store" is the store's load
and write time (from stats) over the threads' total time.

\b
With a URL of your own, the benchmark overwrites its keys in that store and
removes them afterwards (unless --keep).
"""

_EPILOG = """\b
Examples:
  writethrough bench
  writethrough bench memory:// --ops 1000000 --keys 100000
  writethrough bench sqlite:///bench.db --threads 4 --read-ratio 0.5 --json
  writethrough bench sqlite:///bench.db --processes 4 --bus redis://localhost:6379/0
"""


def _parse_distribution(ctx: click.Context, param: click.Parameter, value: str) -> Distribution:
    """``zipf``, ``zipf:S`` (0 <= S <= 10) or ``uniform``."""
    text = value.strip().lower()
    if text == "uniform":
        return Distribution("uniform")
    name, _, exponent = text.partition(":")
    if name != "zipf":
        raise click.BadParameter(
            f"{value!r} is not a distribution: use zipf:S (e.g. zipf:0.99) or uniform"
        )
    if not exponent:
        return Distribution("zipf", 0.99)
    try:
        s = float(exponent)
    except ValueError:
        raise click.BadParameter(
            f"zipf exponent {exponent!r} is not a number (e.g. zipf:0.99)"
        ) from None
    if not 0 <= s <= 10:
        raise click.BadParameter(f"zipf exponent must be between 0 and 10, got {s:g}")
    return Distribution("zipf", s)


@contextlib.contextmanager
def _target(url: str | None) -> Iterator[tuple[str, str]]:
    """(URL to open, how to show it); the default is a SQLite file in a temporary dir."""
    if url is not None:
        yield url, str(parse_url(url))
        return
    with tempfile.TemporaryDirectory(prefix="writethrough-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        yield f"sqlite:///{path}", f"sqlite:///{path} (temporary)"


@click.command("bench", help=_HELP, epilog=_EPILOG)
@click.argument("url", required=False)
@click.option(
    "--ops",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="Operations in the timed run (all threads together).",
)
@click.option(
    "--keys",
    "n_keys",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Distinct keys, all preloaded into the store.",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=None,
    help="Entries the cache holds in memory.  [default: 10% of --keys]",
)
@click.option(
    "--policy",
    type=click.Choice(sorted(POLICIES), case_sensitive=False),
    default=None,
    help="Eviction policy.  [default: the library's]",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1, max=1024),
    default=1,
    show_default=True,
    help="Threads running the timed operations, started together.",
)
@click.option(
    "--read-ratio",
    type=click.FloatRange(0.0, 1.0),
    default=0.9,
    show_default=True,
    help="Share of operations that are gets (the rest are puts).",
)
@click.option(
    "--value-size",
    type=click.IntRange(min=0, max=64 << 20),
    default=100,
    show_default=True,
    help="Bytes per value (random bytes).",
)
@click.option(
    "--distribution",
    callback=_parse_distribution,
    metavar="zipf:S|uniform",
    default="zipf:0.99",
    show_default=True,
    help="Key popularity: zipf:S (rank r drawn with weight 1/(r+1)^S) or uniform.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for keys, operations and values.  [default: random, shown in the output]",
)
@click.option(
    "--group-commit/--no-group-commit",
    default=None,
    help="Let concurrent puts share commits (SQL stores).  [default: the store's]",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1, max=256),
    default=1,
    show_default=True,
    help="Worker processes, each with a cache of its own over the store (with --bus: coherent).",
)
@click.option(
    "--bus",
    default=None,
    metavar="URL",
    help="Invalidation bus for the processes: redis://, postgresql:// or nats://.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the benchmark's keys in the store at URL (default: remove them at the end).",
)
def bench(
    url: str | None,
    ops: int,
    n_keys: int,
    capacity: int | None,
    policy: str | None,
    threads: int,
    read_ratio: float,
    value_size: int,
    distribution: Distribution,
    seed: int | None,
    group_commit: bool | None,
    processes: int,
    bus: str | None,
    as_json: bool,
    keep: bool,
) -> None:
    if url is not None:
        try:
            query = parse_url(url).query
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="URL") from None
        for name in ("capacity", "policy", "group_commit"):
            if name in query:
                raise click.BadParameter(
                    f"set the cache's {name} with --{name.replace('_', '-')}, not in the URL query",
                    param_hint="URL",
                )
    cfg = BenchConfig(
        ops=ops,
        keys=n_keys,
        capacity=capacity if capacity is not None else max(1, n_keys // 10),
        policy=policy.lower() if policy is not None else None,
        threads=threads,
        read_ratio=read_ratio,
        value_size=value_size,
        distribution=distribution,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**32),
    )
    console = Console()
    show_progress = not as_json and console.is_terminal
    options: dict[str, Any] = {"capacity": cfg.capacity}
    if cfg.policy is not None:
        options["policy"] = cfg.policy
    if group_commit is not None:
        options["group_commit"] = group_commit
    if processes > 1 or bus is not None:
        from ._processes import bench_processes

        with _target(url) as (open_url, shown):
            remove_after = url is not None and not keep
            bench_processes(
                open_url, shown, options, cfg, processes, bus, as_json, console, remove_after
            )
        return
    with _target(url) as (open_url, shown):
        try:
            cache = wt.open(open_url, **options)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="URL") from None
        except WriteThroughError as exc:
            raise click.ClickException(f"cannot open {shown}: {exc}") from None
        with cache:
            try:
                if show_progress:
                    with RichProgress(console) as progress:
                        result = run_bench(cache, cfg, progress)
                else:
                    result = run_bench(cache, cfg)
                consistency = check_consistency(cache, cfg.keys)
                if url is not None and not keep:
                    _remove_keys(cache, cfg.keys)
            except WriteThroughError as exc:
                raise click.ClickException(
                    f"benchmark failed: {type(exc).__name__}: {exc}"
                ) from exc
    result = _with_consistency(result, consistency)
    if as_json:
        click.echo(json.dumps(result_json(result, shown), indent=2))
    else:
        print_result(console, result, shown)
    if not consistency.ok:
        if as_json:
            click.echo(consistency_line(consistency), err=True)
        sys.exit(1)


def _remove_keys(cache: wt.WriteThroughCache, n_keys: int) -> None:
    for lo in range(0, n_keys, 1000):
        cache.invalidate_many([key_name(i) for i in range(lo, min(n_keys, lo + 1000))])


def _with_consistency(result: BenchResult, consistency: Consistency) -> BenchResult:
    return dataclasses.replace(result, consistency=consistency)

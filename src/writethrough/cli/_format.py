"""Rendering ``bench`` results: rich tables for people, one JSON object for programs."""

from __future__ import annotations

import platform
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ._workload import BenchResult, Consistency, Latency

__all__ = ["RichProgress", "consistency_line", "new_progress", "print_result", "result_json"]

_LATENCY_LABELS = {
    "hit": "get, hit",
    "miss": "get, miss",
    "get": "get, all",
    "put": "put",
}


def new_progress(console: Console, *, auto_refresh: bool = True) -> Progress:
    """The CLI's progress bar: what, how far, time spent and left; gone when done."""
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=auto_refresh,
        transient=True,
    )


class RichProgress:
    """A ``ProgressHook`` drawing one bar per phase; refreshed only when told."""

    def __init__(self, console: Console) -> None:
        # no render thread competing with the benchmark
        self._progress = new_progress(console, auto_refresh=False)
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)
        self._progress.refresh()

    def advance_to(self, completed: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=completed, refresh=True)


def _us(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def print_result(console: Console, result: BenchResult, target: str) -> None:
    """The settings, the headline figures, latencies, counters and the consistency line."""
    cfg = result.config
    setup = Table(title="writethrough bench", show_header=False, title_justify="left")
    setup.add_column(style="bold")
    setup.add_column()
    setup.add_row("store", target)
    setup.add_row(
        "cache", f"capacity {cfg.capacity:,}, policy {result.policy}, {cfg.keys:,} keys (cold)"
    )
    setup.add_row(
        "workload",
        f"{cfg.ops:,} ops, {cfg.threads} thread(s), {cfg.read_ratio:.0%} reads, "
        f"{cfg.value_size} B values, {cfg.distribution}, seed {cfg.seed}",
    )
    setup.add_row("group commit", "on" if result.group_commit else "off")
    setup.add_row("python", f"{platform.python_version()} ({sys.platform})")
    console.print(setup)
    if result.durability is not None:
        console.print(f"[bold yellow]durability:[/bold yellow] {result.durability}")

    stats = result.stats
    headline = Table(title="results (timed run)", title_justify="left")
    columns = ["ops/s", "hit ratio", "time in store", "entries held", "wall time"]
    cells = [
        f"{result.ops_per_second:,.0f}",
        _pct(stats.hit_ratio),
        _pct(result.store_share),
        f"{result.entries_held:,}",
        f"{result.wall_seconds:.2f} s",
    ]
    if result.group_commit:
        columns[1:1] = ["commits", "mean group"]
        cells[1:1] = [f"{stats.commits:,}", f"{stats.mean_group_size:.2f}"]
    for name in columns:
        headline.add_column(name, justify="right")
    headline.add_row(*cells)
    console.print(headline)

    latency = Table(title="latency (µs)", title_justify="left")
    latency.add_column("operation")
    for name in ("count", "p50", "p99", "mean", "max"):
        latency.add_column(name, justify="right")
    for name, lat in result.latency.items():
        latency.add_row(
            _LATENCY_LABELS[name],
            f"{lat.count:,}",
            _us(lat.p50_us),
            _us(lat.p99_us),
            _us(lat.mean_us),
            _us(lat.max_us),
        )
    console.print(latency)
    if not result.classified:
        console.print(
            "[dim]with several threads a get is classed by whether its key was held just "
            "before it (another thread may change that in between); the hit ratio above "
            "is exact[/dim]"
        )

    console.print(_counters(stats.as_dict()))

    if result.consistency is not None:
        style = "green" if result.consistency.ok else "bold red"
        line = consistency_line(result.consistency)
        console.print(f"[{style}]{line}[/{style}]", soft_wrap=True)


def _stat(name: str, value: float) -> str:
    if name.endswith("_time"):
        return f"{value:.3f} s"
    if name == "hit_ratio":
        return _pct(value)
    if name == "mean_group_size":
        return f"{value:.2f}"
    return f"{int(value):,}"


def _counters(shown: dict[str, float]) -> Table:
    """The counters as name/value rows (they do not fit across 80 columns)."""
    table = Table(title="cache stats (timed run)", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in shown.items():
        table.add_row(name, _stat(name, value))
    return table


def consistency_line(c: Consistency) -> str:
    if c.ok:
        return (
            f"consistency: OK, {c.matched:,}/{c.checked:,} keys match the store "
            f"({c.held:,} of them held in memory)"
        )
    examples = ", ".join(c.mismatched)
    return (
        f"consistency: FAILED, {c.checked - c.matched:,} of {c.checked:,} keys differ from "
        f"the store (e.g. {examples})"
    )


def _latency_json(lat: Latency) -> dict[str, Any]:
    return {
        "count": lat.count,
        "mean_us": lat.mean_us,
        "p50_us": lat.p50_us,
        "p99_us": lat.p99_us,
        "max_us": lat.max_us,
    }


def result_json(result: BenchResult, target: str) -> dict[str, Any]:
    """The same figures as the tables, as one JSON-ready object."""
    cfg = result.config
    out: dict[str, Any] = {
        "store": target,
        "policy": result.policy,
        "capacity": cfg.capacity,
        "keys": cfg.keys,
        "ops": cfg.ops,
        "threads": cfg.threads,
        "read_ratio": cfg.read_ratio,
        "value_size": cfg.value_size,
        "distribution": str(cfg.distribution),
        "seed": cfg.seed,
        "start": "cold",
        "python": platform.python_version(),
        "platform": sys.platform,
        "preload_seconds": result.preload_seconds,
        "wall_seconds": result.wall_seconds,
        "ops_done": result.ops_done,
        "ops_per_second": result.ops_per_second,
        "hit_ratio": result.stats.hit_ratio,
        "store_time_share": result.store_share,
        "entries_held": result.entries_held,
        "group_commit": result.group_commit,
        "durability": result.durability,
        "classified": result.classified,
        "latency": {name: _latency_json(lat) for name, lat in result.latency.items()},
        "stats": result.stats.as_dict(),
    }
    c = result.consistency
    if c is not None:
        out["consistency"] = {
            "ok": c.ok,
            "checked": c.checked,
            "matched": c.matched,
            "held": c.held,
            "mismatched": c.mismatched,
        }
    return out

"""``writethrough simulate TRACE...``: hit ratios of the shipped policies against OPT."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

from writethrough.cli._format import new_progress
from writethrough.errors import ConfigError
from writethrough.policies import POLICIES
from writethrough.simulate import (
    DEFAULT_SIZES,
    TRACE_FORMATS,
    Row,
    Simulation,
    Size,
    parse_capacities,
    parse_sizes,
    resolve_policies,
    simulate,
)

__all__ = ["simulate_command"]

PLOT_HINT = "--plot needs matplotlib: pip install 'writethrough[plot]'"

_HELP = """Replay key traces through the eviction policies and Bélády's OPT.

\b
Each TRACE is one key per line (text; gzip or zstd compressed files are
recognised), or libCacheSim's binary oracleGeneral format (24-byte records;
chosen for names containing .oracleGeneral, or with --trace-format).
Every request is a read: a hit when the key is held, else the key is
inserted (write-allocate), exactly as the cache drives its policy: the
shipped policy code, not a model of it. OPT is Bélády's MIN with bypass (a
newcomer whose next use is farthest is not admitted); it runs in the same
job set. Hit ratios count every request, compulsory misses included.

\b
Sizes are shares of each trace's unique keys, floor(unique x share), at
least 1 (libCacheSim's rounding), or absolute capacities with --capacity.
The summary is the mean gap to OPT over the traces, in percentage points.
"""

_EPILOG = """\b
Examples:
  writethrough simulate shared/traces/*.keys.gz
  writethrough simulate trace.txt --policies lru,fifo --capacity 100,1000 --format csv
  writethrough simulate w01.oracleGeneral.bin.zst --sizes 0.1%,1% --plot w01.png
"""


def _policies(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    try:
        return resolve_policies(value.split(","))
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Size] | None:
    if value is None:
        return None
    try:
        return parse_sizes(value) if param.name == "sizes" else parse_capacities(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


class _Bar:
    """The progress callback, drawn as a rich bar (only on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._progress = new_progress(console)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        task = self._tasks.get(phase)
        if task is None:
            for old in self._tasks.values():
                self._progress.remove_task(old)
            self._tasks = {phase: self._progress.add_task(phase, total=total, completed=done)}
        else:
            self._progress.update(task, completed=done)


@click.command("simulate", help=_HELP, epilog=_EPILOG)
@click.argument(
    "traces",
    nargs=-1,
    required=True,
    metavar="TRACE...",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--policies",
    default="all",
    show_default=True,
    callback=_policies,
    metavar="NAME,...|all",
    help=f"Policies to replay ({', '.join(POLICIES)}), comma-separated, or all; a "
    "policy of your own as module:Class (a Policy class or factory, importable here).",
)
@click.option(
    "--sizes",
    callback=_sizes,
    metavar="SHARE,...",
    help="Cache sizes as shares of each trace's unique keys: percentages (1%,5%; "
    f"at most 100%) or fractions (0.01,0.05; below 1).  [default: {DEFAULT_SIZES}]",
)
@click.option(
    "--capacity",
    "capacities",
    callback=_sizes,
    metavar="N,...",
    help="Absolute cache sizes in entries, the same for every trace (instead of --sizes).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"], case_sensitive=False),
    default="table",
    show_default=True,
    help="Output: tables for people, one CSV row per trace/size/policy, or one JSON object.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw hit ratio against cache size per policy, one panel per trace, to "
    "this image (PNG, SVG, PDF; needs matplotlib: the [plot] extra).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (1: run in this process).  [default: the CPU count]",
)
@click.option(
    "--trace-format",
    type=click.Choice(TRACE_FORMATS, case_sensitive=False),
    default="auto",
    show_default=True,
    help="How to read the traces: auto picks oracleGeneral for names containing "
    ".oracleGeneral, else text.",
)
def simulate_command(
    traces: tuple[Path, ...],
    policies: list[str],
    sizes: list[Size] | None,
    capacities: list[Size] | None,
    fmt: str,
    plot: Path | None,
    jobs: int | None,
    trace_format: str,
) -> None:
    if sizes is not None and capacities is not None:
        raise click.UsageError("give --sizes or --capacity, not both")
    if plot is not None:
        _check_plot(plot)  # before the run, not after it
    fmt = fmt.lower()
    trace_format = {f.lower(): f for f in TRACE_FORMATS}[trace_format.lower()]
    console = Console()
    if not console.is_terminal:  # a file or a pipe: tables at their natural width, not 80
        console = Console(width=1000)
    try:
        if console.is_terminal:
            with _Bar(console) as bar:
                sim = _run(traces, policies, capacities or sizes, jobs, trace_format, bar)
        else:
            sim = _run(traces, policies, capacities or sizes, jobs, trace_format, None)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps(result_json(sim, jobs), indent=2))
    elif fmt == "csv":
        write_csv(sim)
    else:
        print_tables(console, sim)
    if plot is not None:
        try:
            draw(sim, plot)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot write the plot {plot}: {exc}") from None
        if fmt == "table":
            console.print(f"plot written to {plot}")


def _run(
    traces: tuple[Path, ...],
    policies: list[str],
    sizes: list[Size] | None,
    jobs: int | None,
    trace_format: str,
    bar: _Bar | None,
) -> Simulation:
    return simulate(
        list(traces), policies, sizes, jobs=jobs, trace_format=trace_format, progress=bar
    )


def _have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _check_plot(path: Path) -> None:
    if not _have_matplotlib():
        raise click.UsageError(PLOT_HINT)
    from matplotlib.backend_bases import (  # type: ignore[import-not-found, unused-ignore]
        FigureCanvasBase,
    )

    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in kinds:
        raise click.BadParameter(
            f"{path.name!r}: name the image .png, .svg, .pdf or another of "
            f"{', '.join(sorted(kinds))}",
            param_hint="'--plot'",
        )
    if not path.parent.is_dir():
        raise click.BadParameter(f"no directory {str(path.parent)!r}", param_hint="'--plot'")


# ---------------------------------------------------------------- output


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f}"


def print_tables(console: Console, sim: Simulation) -> None:
    """Hit ratio per trace and size (best policy in bold), then the mean gap to OPT."""
    table = Table(title="hit ratio, % of requests", title_justify="left")
    for name in ("trace", "size", "capacity"):
        table.add_column(name, justify="left" if name == "trace" else "right")
    for policy in sim.policies:
        table.add_column(policy, justify="right")
    table.add_column("OPT", justify="right")
    by_cell: dict[tuple[str, str], list[Row]] = {}
    for r in sim.rows:
        by_cell.setdefault((r.trace, r.size), []).append(r)
    for opt in sim.opt:
        rows = by_cell.get((opt.trace, opt.size), [])
        best = max((r.hits for r in rows), default=None)
        cells = [
            f"[bold]{_pct(r.hit_ratio)}[/bold]" if r.hits == best else _pct(r.hit_ratio)
            for r in rows
        ]
        table.add_row(
            opt.trace, opt.size, f"{opt.capacity:,}", *cells, _pct(opt.hits / opt.requests)
        )
    console.print(table)

    gaps = sim.mean_gaps()
    console.print(
        f"mean gap to OPT over {len(sim.traces)} trace(s), percentage points (lower is better)"
    )
    summary = Table()
    summary.add_column("size", justify="right")
    for policy in sim.policies:
        summary.add_column(policy, justify="right")
    for size in sim.sizes:
        values = [gaps[p].get(size.label) for p in sim.policies]
        least = min((v for v in values if v is not None), default=None)
        summary.add_row(
            size.label,
            *(
                "—" if v is None else (f"[bold]{v:.2f}[/bold]" if v == least else f"{v:.2f}")
                for v in values
            ),
        )
    console.print(summary)

    speed = sim.throughput()
    requests = sum(t.requests for t in sim.traces)
    console.print(
        "requests/s per process: "
        + ", ".join(f"{name} {rate:,.0f}" for name, rate in speed.items()),
        soft_wrap=True,
    )
    console.print(
        f"{len(sim.traces)} trace(s), {requests:,} requests, {len(sim.sizes)} size(s), "
        f"{len(sim.policies)} polic{'y' if len(sim.policies) == 1 else 'ies'} + OPT "
        f"in {sim.wall_seconds:.1f} s",
        soft_wrap=True,
    )


def write_csv(sim: Simulation) -> None:
    """One row per trace, size and policy: the ``Row`` fields."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(f.name for f in dataclasses.fields(Row))
    for row in sim.rows:
        writer.writerow(dataclasses.astuple(row))


def result_json(sim: Simulation, jobs: int | None) -> dict[str, Any]:
    """Everything the tables show, and the raw counts, as one JSON-ready object."""
    return {
        "traces": [dataclasses.asdict(t) for t in sim.traces],
        "sizes": [s.label for s in sim.sizes],
        "policies": sim.policies,
        "rows": [dataclasses.asdict(r) for r in sim.rows],
        "opt": [dataclasses.asdict(o) for o in sim.opt],
        "mean_gap_pp": sim.mean_gaps(),
        "requests_per_second": sim.throughput(),
        "wall_seconds": sim.wall_seconds,
        "jobs": jobs if jobs is not None else os.cpu_count(),
    }


def draw(sim: Simulation, path: Path) -> None:
    """Hit ratio against cache size, one line per policy (OPT dashed), one panel per trace."""
    try:
        from matplotlib.figure import Figure  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise click.UsageError(PLOT_HINT) from None
    by_share = all(s.fraction is not None for s in sim.sizes)
    n = len(sim.traces)
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, trace in enumerate(sim.traces):
        ax = axes[i // cols][i % cols]
        opt = [o for o in sim.opt if o.trace == trace.name]
        xs = [_x(sim, o.size, o.capacity, by_share) for o in opt]
        for policy in sim.policies:
            mine = [r for r in sim.rows if r.trace == trace.name and r.policy == policy]
            ax.plot(xs, [r.hit_ratio * 100 for r in mine], marker="o", ms=3, label=policy)
        ax.plot(xs, [o.hits * 100 / o.requests for o in opt], "k--", marker=".", label="OPT")
        ax.set_title(trace.name, fontsize=10)
        if len(xs) > 1 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        if len(xs) <= 8:
            ax.set_xticks(xs, [o.size for o in opt])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.supxlabel("cache size, % of unique keys" if by_share else "cache size, entries")
    fig.supylabel("hit ratio, % of requests")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), frameon=False)
    fig.savefig(path, dpi=110)


def _x(sim: Simulation, label: str, capacity: int, by_share: bool) -> float:
    if not by_share:
        return float(capacity)
    size = next(s for s in sim.sizes if s.label == label)
    assert size.fraction is not None
    return size.fraction * 100

"""Shared helpers for the benchmark scripts: the machine, medians, plain-text tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any


def environment(packages: Sequence[str] = ()) -> dict[str, Any]:
    """What the figures depend on: interpreter, platform, CPUs, package versions."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gil = getattr(sys, "_is_gil_enabled", None)
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "gil": True if gil is None else bool(gil()),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


def print_environment(env: dict[str, Any]) -> None:
    gil = "" if env["gil"] else ", free-threaded (no GIL)"
    print(f"python {env['python']} ({env['implementation']}{gil}) on {env['platform']}")
    print(f"machine {env['machine']}, {env['cpu_count']} CPUs")
    if env["packages"]:
        listed = ", ".join(f"{k} {v or 'not installed'}" for k, v in env["packages"].items())
        print(f"packages: {listed}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def emit(
    as_json: bool,
    env: dict[str, Any],
    result: dict[str, Any],
    report: Callable[[dict[str, Any], dict[str, Any]], None],
    targets: dict[str, Any] | None = None,
) -> None:
    """Print one run: one JSON object, or the human report."""
    if as_json:
        extra = {} if targets is None else {"targets": targets}
        print(json.dumps({"environment": env, **result, **extra}, indent=2))
    else:
        report(result, env)

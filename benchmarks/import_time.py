"""``import writethrough`` cost: a fresh interpreter importing it, minus a bare interpreter.

Each run starts ``python -c "import writethrough"`` and ``python -c "pass"`` (same
interpreter, same flags, same environment), alternating, and times the whole
process with ``time.perf_counter_ns``; the figure is the difference of the
medians. Bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``, whatever
``PYTHONDONTWRITEBYTECODE`` says) as it is for an installed package, and warm-up
runs fill that cache first. Target: <= 30 ms over a bare interpreter. Also lists which notable
modules the import pulls in (a store driver or the CLI's click/rich must not be).

    python benchmarks/import_time.py [--runs 10] [--json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import _util

TARGET_MS = 30.0
WATCHED = ("click", "rich", "sqlite3", "msgpack", "psycopg", "redis", "pymysql", "nats", "asyncio")


def run_once(code: str, env: dict[str, str]) -> float:
    """Milliseconds for one fresh interpreter to run ``code``."""
    t0 = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return (time.perf_counter_ns() - t0) / 1e6


def imported_modules(env: dict[str, str]) -> list[str]:
    code = "import sys, writethrough; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout
    return out.split()


def measure(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wt-pycache-") as pycache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        return _measure(runs, env)


def _measure(runs: int, env: dict[str, str]) -> dict[str, Any]:
    for _ in range(3):  # warm the OS file cache and fill the bytecode cache
        run_once("import writethrough", env)
        run_once("pass", env)
    bare: list[float] = []
    with_import: list[float] = []
    for i in range(runs):
        pair = [("pass", bare), ("import writethrough", with_import)]
        if i % 2:
            pair.reverse()
        for code, sink in pair:
            sink.append(run_once(code, env))
    bare_ms, import_ms = _util.median(bare), _util.median(with_import)
    modules = imported_modules(env)
    return {
        "runs": runs,
        "bare_ms": bare_ms,
        "import_ms": import_ms,
        "cost_ms": import_ms - bare_ms,
        "target_ms": TARGET_MS,
        "met": import_ms - bare_ms <= TARGET_MS,
        "modules_after_import": len(modules),
        "watched_imported": [
            name for name in WATCHED if any(m == name or m.startswith(name + ".") for m in modules)
        ],
    }


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(f"median of {result['runs']} interleaved runs each, whole-process wall time")
    print()
    rows = [
        ['python -c "pass"', f"{result['bare_ms']:.1f}"],
        ['python -c "import writethrough"', f"{result['import_ms']:.1f}"],
        ["import writethrough, net", f"{result['cost_ms']:.1f}"],
    ]
    print(_util.table(["command", "ms"], rows))
    print()
    state = "met" if result["met"] else "NOT met"
    print(
        f"target: import writethrough costs {result['cost_ms']:.1f} ms over a bare interpreter "
        f"(target <= {result['target_ms']:.0f} ms: {state})"
    )
    watched = ", ".join(result["watched_imported"]) or "none"
    print(
        f"modules loaded after the import: {result['modules_after_import']}; "
        f"of {', '.join(WATCHED)}: {watched}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    env = _util.environment(["writethrough"])
    result = measure(args.runs)
    _util.emit(args.json, env, result, report)


if __name__ == "__main__":
    main()

"""Rule 1 across a crash: every acknowledged write is in the SQLite file afterwards.

A child process writes through a SQLite-backed cache and prints each operation
after it returned (the acknowledgement), then dies: ``os._exit(0)`` (no
cleanup, no close) or SIGKILL from the parent mid-run. The parent reopens the
database and checks every acknowledged put and invalidate.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import writethrough as wt

SRC = str(Path(wt.__file__).resolve().parent.parent)

CHILD = r"""
import os, sys
import writethrough as wt
from writethrough.stores.sqlite import SQLiteStore

path, n, ending = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cache = wt.WriteThroughCache(SQLiteStore(path), capacity=16)
out = sys.stdout
i = 0
while n == 0 or i < n:
    key = f"k{i}"
    cache.put(key, {"i": i, "pad": "x" * 64})
    out.write(f"put {key}\n")
    out.flush()
    if i % 5 == 4:
        victim = f"k{i - 3}"
        out.write(f"begin-del {victim}\n")
        out.flush()
        cache.invalidate(victim)
        out.write(f"del {victim}\n")
        out.flush()
    i += 1
if ending == "exit":
    os._exit(0)
"""


def _spawn(path: Path, n: int, ending: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(n), ending],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _check(path: Path, lines: list[str]) -> int:
    """Replay the acknowledgements into a model and compare with the reopened database."""
    present: dict[str, int] = {}
    absent: set[str] = set()
    uncertain: set[str] = set()
    for line in lines:
        op, key = line.split()
        if op == "put":
            present[key] = int(key[1:])
        elif op == "begin-del":
            uncertain.add(key)
        elif op == "del":
            uncertain.discard(key)
            present.pop(key, None)
            absent.add(key)
    assert present, "the child acknowledged nothing"
    from writethrough.stores.sqlite import SQLiteStore

    with wt.WriteThroughCache(SQLiteStore(path), capacity=8) as cache:
        for key, i in present.items():
            if key in uncertain:
                continue
            assert cache.get(key) == {"i": i, "pad": "x" * 64}, f"acknowledged put {key} lost"
        for key in absent:
            assert cache.get(key) is None, f"acknowledged invalidate of {key} lost"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return len(present)


@pytest.mark.timeout(120)
def test_every_acknowledged_write_survives_os_exit(tmp_path: Path) -> None:
    path = tmp_path / "exit.db"
    proc = _spawn(path, 150, "exit")
    stdout, stderr = proc.communicate(timeout=100)
    assert proc.returncode == 0, stderr
    lines = stdout.splitlines()
    assert sum(1 for line in lines if line.startswith("put ")) == 150
    assert _check(path, lines) == 150 - 150 // 5


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    proc = _spawn(path, 0, "kill")  # runs until killed
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while sum(1 for line in lines if line.startswith("put ")) < 120:
            line = proc.stdout.readline()
            if not line:
                assert proc.stderr is not None
                pytest.fail(f"child ended early: {proc.stderr.read()}")
            lines.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        # read through the same buffered reader: it may hold lines already read ahead
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # lines still in the pipe were acknowledged before the kill too
    # (only whole lines: a line without its newline was not fully acknowledged)
    lines.extend(line for line in rest.split("\n")[:-1] if line)
    assert _check(path, lines) >= 90

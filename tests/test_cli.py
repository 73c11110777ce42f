"""The command-line tool: ``writethrough bench`` over memory:// and the default SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("click")
pytest.importorskip("rich")

from click.testing import CliRunner, Result

import writethrough as wt
from writethrough.cli import main
from writethrough.cli._app import cli
from writethrough.url import register_scheme

SMALL = ["--ops", "2000", "--keys", "200", "--seed", "7"]
SRC = str(Path(wt.__file__).resolve().parent.parent)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def bench_json(*args: str) -> dict[str, Any]:
    result = invoke("bench", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


def check_figures(data: dict[str, Any], ops: int, keys: int) -> None:
    """What every successful run reports, whatever the store."""
    assert data["ops_done"] == ops
    latency = data["latency"]
    assert latency["get"]["count"] + latency["put"]["count"] == ops
    stats = data["stats"]
    assert stats["requests"] + stats["writes"] + stats["write_errors"] == ops
    assert stats["requests"] == latency["get"]["count"]
    assert stats["writes"] == latency["put"]["count"]
    assert 0.0 <= data["hit_ratio"] <= 1.0
    assert 0.0 <= data["store_time_share"] <= 1.0
    assert data["ops_per_second"] > 0
    assert 0 < data["entries_held"] <= data["capacity"]
    consistency = data["consistency"]
    assert consistency == {
        "ok": True,
        "checked": keys,
        "matched": keys,
        "held": consistency["held"],
        "mismatched": [],
    }
    assert consistency["held"] <= data["capacity"]


def test_help_describes_the_tool() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "bench" in result.output
    result = invoke("bench", "--help")
    assert result.exit_code == 0
    for word in ("--ops", "--distribution", "cold start", "consistency", "temporary"):
        assert word in result.output


def test_bench_memory_json_single_thread_classifies_gets() -> None:
    data = bench_json("memory://", *SMALL)
    check_figures(data, ops=2000, keys=200)
    assert data["capacity"] == 20  # 10 % of the keys
    assert data["classified"] is True
    latency = data["latency"]
    assert latency["hit"]["count"] == data["stats"]["cache_hits"]
    assert latency["miss"]["count"] == data["stats"]["backing_store_hits"]
    assert latency["hit"]["count"] + latency["miss"]["count"] == latency["get"]["count"]
    assert data["stats"]["misses"] == 0  # every key was preloaded


def test_bench_default_sqlite_json_removes_its_temporary_directory() -> None:
    data = bench_json(*SMALL)
    check_figures(data, ops=2000, keys=200)
    assert data["store"].startswith("sqlite:///") and data["store"].endswith("(temporary)")
    db_path = data["store"].removeprefix("sqlite:///").removesuffix(" (temporary)")
    assert not os.path.exists(os.path.dirname(db_path))


def test_bench_threads_class_gets_by_whether_the_key_was_held() -> None:
    data = bench_json("memory://", *SMALL, "--threads", "4", "--read-ratio", "0.5")
    check_figures(data, ops=2000, keys=200)
    assert data["classified"] is False  # nearly exact: other threads can move a key
    latency = data["latency"]
    assert set(latency) == {"hit", "miss", "get", "put"}
    assert latency["hit"]["count"] + latency["miss"]["count"] == latency["get"]["count"]
    assert data["threads"] == 4


def test_bench_options_reach_the_cache() -> None:
    data = bench_json(
        "memory://", *SMALL, "--policy", "fifo", "--capacity", "50", "--distribution", "uniform"
    )
    check_figures(data, ops=2000, keys=200)
    assert data["policy"] == "fifo"
    assert data["capacity"] == 50
    assert data["distribution"] == "uniform"


def test_bench_group_commit_reports_commits_and_mean_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gc.db?synchronous=normal"
    data = bench_json(url, *SMALL, "--threads", "4", "--read-ratio", "0.1", "--group-commit")
    check_figures(data, ops=2000, keys=200)
    stats = data["stats"]
    assert data["group_commit"] is True
    assert stats["group_commit_members"] == stats["writes"] + stats["write_errors"]
    assert 0 < stats["commits"] <= stats["group_commit_members"]
    assert stats["mean_group_size"] == stats["group_commit_members"] / stats["commits"]
    off = bench_json(url, *SMALL, "--no-group-commit")
    assert off["group_commit"] is False and off["stats"]["commits"] == 0
    assert data["durability"] is None  # SQLite's durability is the file's, not a server's


def test_bench_only_reads_or_only_writes() -> None:
    reads = bench_json("memory://", *SMALL, "--read-ratio", "1")
    assert reads["latency"]["put"]["count"] == 0
    assert reads["latency"]["put"]["p50_us"] is None
    writes = bench_json("memory://", *SMALL, "--read-ratio", "0", "--value-size", "0")
    assert writes["latency"]["get"]["count"] == 0
    check_figures(writes, ops=2000, keys=200)


def test_bench_table_output() -> None:
    result = invoke("bench", "memory://", *SMALL)
    assert result.exit_code == 0, result.output
    for text in ("ops/s", "hit ratio", "get, hit", "get, miss", "put", "cache_hits"):
        assert text in result.output
    assert "consistency: OK, 200/200 keys match the store" in result.output


def test_bench_on_a_user_sqlite_url_removes_its_keys_unless_kept(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    data = bench_json(f"sqlite:///{db}", *SMALL)
    check_figures(data, ops=2000, keys=200)

    def rows() -> int:
        with sqlite3.connect(db) as conn:
            count: int = conn.execute("SELECT count(*) FROM writethrough").fetchone()[0]
        return count

    assert rows() == 0
    bench_json(f"sqlite:///{db}", *SMALL, "--keep")
    assert rows() == 200


class ForgetfulStore(wt.MemoryStore):
    """Acknowledges every write but keeps only the first value of each key: a broken store."""

    def store(self, key: Any, value: Any) -> None:
        if self.lookup(key, None) is None:
            super().store(key, value)


def test_consistency_failure_exits_1() -> None:
    register_scheme("forgetful-test", lambda url, options: ForgetfulStore())
    args = ["forgetful-test://", *SMALL, "--capacity", "200", "--read-ratio", "0.5"]
    result = invoke("bench", *args)
    assert result.exit_code == 1, result.output
    assert "consistency: FAILED" in result.output
    result = invoke("bench", *args, "--json")
    assert result.exit_code == 1
    assert '"ok": false' in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--read-ratio", "1.5"], "--read-ratio"),
        (["--ops", "0"], "--ops"),
        (["--keys", "-1"], "--keys"),
        (["--capacity", "0"], "--capacity"),
        (["--threads", "0"], "--threads"),
        (["--value-size", "-1"], "--value-size"),
        (["--distribution", "pareto"], "not a distribution"),
        (["--distribution", "zipf:abc"], "not a number"),
        (["--distribution", "zipf:-1"], "between 0 and 10"),
        (["--policy", "random"], "--policy"),
        (["--ops", "many"], "--ops"),
        (["--no-such-option"], "No such option"),
        (["nosuch://x"], "unknown URL scheme"),
        (["not a url"], "malformed store URL"),
        (["memory://?capacity=5"], "--capacity"),
        (["memory://", "extra"], "unexpected extra argument"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["bench", "--ops", "10", "--keys", "10", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_python_dash_m_runs_the_tool() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "writethrough.cli", "bench", "memory://", "--json"]
    done = subprocess.run(
        [*cmd, "--ops", "500", "--keys", "50"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["consistency"]["ok"] is True
    bad = subprocess.run(
        [*cmd, "--threads", "zero"], capture_output=True, text=True, env=env, timeout=120
    )
    assert bad.returncode == 2
    assert "--threads" in bad.stderr


def test_importing_writethrough_does_not_import_the_cli_dependencies() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    code = (
        "import sys, writethrough, writethrough.cli; "
        "print(sorted(m for m in ('click', 'rich') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_main_without_click_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)  # makes `import click` fail
    with pytest.raises(SystemExit) as exit_info:
        main(["bench"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'writethrough[cli]'" in err
    assert err.count("\n") == 1


def test_main_runs_a_command() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "memory://", "--ops", "200", "--keys", "20", "--json"])
    assert exit_info.value.code == 0

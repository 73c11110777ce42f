"""``wt.open(url)``: memory:// and sqlite:// URLs, options, and the errors for bad URLs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import writethrough as wt

SRC = str(Path(wt.__file__).resolve().parent.parent)


def test_memory_url_opens_a_working_cache() -> None:
    cache = wt.open("memory://")
    assert isinstance(cache, wt.WriteThroughCache)
    assert isinstance(cache.backing_store, wt.MemoryStore)
    assert cache.capacity == 10_000  # the constructor's default
    cache.put("k", [1])
    assert cache.backing_store.load("k") == [1]
    assert cache.get("k") == [1]
    cache.close()
    assert cache.closed


def test_options_in_the_query() -> None:
    cache = wt.open("memory://?capacity=5&policy=fifo&max_bytes=1000")
    assert cache.capacity == 5
    assert cache.policy.name == "fifo"
    assert cache.max_bytes == 1000
    for i in range(8):
        cache.put(i, i)
    assert len(cache) == 5
    assert cache.get(0) == 0
    assert cache.stats().backing_store_hits == 1


def test_options_as_keywords() -> None:
    cache = wt.open("memory://", capacity=7, policy="fifo")
    assert (cache.capacity, cache.policy.name) == (7, "fifo")
    assert wt.open("memory://?capacity=5", policy="fifo").capacity == 5
    assert wt.open("memory://?capacity=5", capacity=5).capacity == 5  # given twice, agreeing
    with pytest.raises(wt.ConfigError, match="capacity"):
        wt.open("memory://", capacity=0)


def test_context_manager_closes() -> None:
    with wt.open("memory://") as cache:
        cache.put("k", 1)
    with pytest.raises(wt.CacheClosed):
        cache.get("k")


def test_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with wt.open("sqlite:///relative.db?capacity=3") as cache:
        assert cache.capacity == 3
        cache.put(("user", 1), {"name": "ada"})
    assert (tmp_path / "relative.db").exists()
    with wt.open("sqlite:///relative.db") as cache:
        assert cache.get(("user", 1)) == {"name": "ada"}
        assert cache.stats().backing_store_hits == 1


def test_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    url = f"sqlite:///{path}"
    assert url.startswith("sqlite:////")
    with wt.open(url, capacity=4) as cache:
        cache.put("k", "v")
    assert path.exists()
    with wt.open(url) as cache:
        assert cache.get("k") == "v"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("nosuchscheme://host/x", "nosuchscheme"),
        ("not a url", "not a url"),
        ("sqlite:/x", "sqlite:/x"),
        ("", "URL"),
        ("memory://?capacity=abc", "abc"),
        ("memory://?capacity=0", "capacity"),
        ("memory://?capacity=5&capacity=6", "capacity"),
        ("memory://?policy=nope", "nope"),
        ("memory://?bogus=1", "bogus"),
        ("memory://somehost/path", "memory"),
    ],
)
def test_bad_urls_are_config_errors_naming_the_problem(url: str, needle: str) -> None:
    with pytest.raises(wt.ConfigError) as info:
        wt.open(url)
    assert isinstance(info.value, ValueError)
    assert needle in str(info.value)


def test_unknown_keyword_option_is_a_config_error() -> None:
    with pytest.raises(wt.ConfigError, match="bogus"):
        wt.open("memory://", bogus=1)


def test_unknown_sqlite_option_leaves_no_half_open_store(tmp_path: Path) -> None:
    with pytest.raises(wt.ConfigError, match="bogus"):
        wt.open(f"sqlite:///{tmp_path / 'x.db'}?bogus=1")


def test_import_writethrough_imports_no_driver() -> None:
    code = (
        "import sys, writethrough\n"
        "c = writethrough.open('memory://')\n"
        "c.put('k', 1)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('psycopg', 'psycopg_pool', 'redis', 'hiredis', 'pymysql', 'nats', 'rich', 'click'))\n"
        "print(','.join(bad))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported drivers: {out.stdout.strip()}"


def test_bad_cache_option_leaves_no_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url, options in [
        ("sqlite:///a.db?codec=pickle", {}),  # no secret
        ("sqlite:///b.db?capacity=0", {}),
        ("sqlite:///c.db", {"policy": "nope"}),
        ("sqlite:///d.db", {"ttl": -1}),
    ]:
        with pytest.raises(wt.ConfigError):
            wt.open(url, **options)
    assert list(tmp_path.iterdir()) == []  # refused before the store was opened

"""Trace-driven simulation: replay key traces through the shipped policies and Bélády's OPT.

``replay`` drives a ``Policy`` object exactly as the cache core does (``_core.py``):
hits are buffered and the most recent ``hit_sample`` of them reach ``record_hits``
before each insert; a miss is ``on_insert(key, 0)``, then ``victim()`` while the
cache is full, and the victim may be the newcomer (admission refused). The one
difference: the live cache's maintenance thread may also drain a long hit log
between two misses, at moments that depend on timing; a replay drains only at
inserts, so that it is deterministic.

``opt_hits`` is Bélády's MIN with bypass (Bélády, IBM Systems Journal 1966): on a
miss with a full cache, the held object or the newcomer whose next use is farthest
is the one left out. Objects are unit-sized (the cache without ``max_bytes``).
Stdlib only: the command line (``cli/simulate.py``) adds rich, click and matplotlib.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import importlib
import io
import os
import pickle
import signal
import struct
import tempfile
import time
import zlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .policies import POLICIES, Policy, make_policy
from .policies.base import DEFAULT_HIT_SAMPLE

__all__ = [
    "DEFAULT_SIZES",
    "TRACE_FORMATS",
    "OptRun",
    "Progress",
    "Row",
    "Simulation",
    "Size",
    "TraceInfo",
    "next_uses",
    "opt_hits",
    "parse_capacities",
    "parse_sizes",
    "policy_factory",
    "policy_label",
    "read_trace",
    "replay",
    "resolve_policies",
    "simulate",
    "trace_name",
]

TRACE_FORMATS = ("auto", "text", "oracleGeneral")
DEFAULT_SIZES = "1%,5%,10%"

#: called as ``progress(phase, done, total)``; phases: "reading" (files), "simulating" (requests)
Progress = Callable[[str, int, int], None]

_ORACLE_RECORD = struct.Struct("<IQIq")  # clock_time, obj_id, obj_size, next_access_vtime
_ORACLE_ID = struct.Struct("<4xQ12x")  # only obj_id
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_NAME_SUFFIXES = (".gz", ".zst", ".bin", ".oraclegeneral", ".keys", ".txt", ".trace")


# ---------------------------------------------------------------- traces


def read_trace(path: str | os.PathLike[str], trace_format: str = "auto") -> list[int]:
    """The keys of a trace, in request order.

    Text: one key per line; integers stay themselves, otherwise every key is
    mapped to 0, 1, 2, ... in first-seen order. ``oracleGeneral``: libCacheSim's
    binary records (``<IQIq``: time, obj_id, size, next access; 24 bytes), keyed by
    ``obj_id``; sizes are ignored (unit-size objects). gzip and zstd (with the
    ``zstandard`` module) are recognised by their magic bytes. ``auto`` picks
    ``oracleGeneral`` for names containing ``.oracleGeneral``. Raises ConfigError.
    """
    ids, uniques = _read_ids(Path(path), trace_format)
    return list(map(uniques.__getitem__, ids))


def trace_name(path: str | os.PathLike[str]) -> str:
    """A short name for a trace file: the file name without its known suffixes."""
    name = Path(path).name
    while True:
        lower = name.lower()
        for suffix in _NAME_SUFFIXES:
            if lower.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        else:
            return name


def _read_ids(path: Path, trace_format: str) -> tuple[array[int], list[int]]:
    """(dense id per request, original key per id): ids are 0..unique-1 in first-seen order."""
    if trace_format not in TRACE_FORMATS:
        raise ConfigError(
            f"unknown trace format {trace_format!r}; choose one of {', '.join(TRACE_FORMATS)}"
        )
    data = _decompressed(path)
    if trace_format == "auto":
        trace_format = "oracleGeneral" if ".oraclegeneral" in path.name.lower() else "text"
    if trace_format == "oracleGeneral":
        ids, uniques = _oracle_ids(path, data)
    else:
        ids, uniques = _text_ids(path, data)
    if not ids:
        raise ConfigError(f"trace {path} has no requests")
    return ids, uniques


def _dense(keys: Iterable[int]) -> tuple[array[int], list[int]]:
    """Streamed: no list of all the requests' key objects is ever built."""
    index: dict[int, int] = {}
    setdefault = index.setdefault
    ids = array("i", (setdefault(k, len(index)) for k in keys))
    return ids, list(index)


def _decompressed(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0)
            if head[:2] == _GZIP_MAGIC:
                with gzip.GzipFile(fileobj=f) as gz:
                    return gz.read()
            if head == _ZSTD_MAGIC:
                return _unzstd(path, f)
            return f.read()
    except OSError as exc:  # missing, unreadable, truncated or corrupt gzip
        raise ConfigError(f"cannot read trace {path}: {exc.strerror or exc}") from exc
    except (EOFError, zlib.error) as exc:
        raise ConfigError(f"cannot read trace {path}: corrupt gzip data ({exc})") from exc


def _unzstd(path: Path, f: Any) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigError(
            f"trace {path} is zstd-compressed: reading it needs the zstandard module "
            "(pip install zstandard), or decompress it first (zstd -d)"
        ) from None
    # Frame by frame with a check that each one ended: a stream reader returns what it
    # could decode of a truncated or corrupt frame (even nothing) without an error.
    rest: bytes = f.read()
    parts: list[bytes] = []
    try:
        while rest:
            frame = zstandard.ZstdDecompressor().decompressobj()
            parts.append(frame.decompress(rest))
            if not frame.eof:
                raise ConfigError(f"cannot read trace {path}: corrupt zstd data (truncated frame)")
            rest = frame.unused_data
    except zstandard.ZstdError as exc:
        raise ConfigError(f"cannot read trace {path}: corrupt zstd data ({exc})") from exc
    return b"".join(parts)


def _oracle_ids(path: Path, data: bytes) -> tuple[array[int], list[int]]:
    size = _ORACLE_RECORD.size
    if len(data) % size:
        raise ConfigError(
            f"trace {path} is not a libCacheSim oracleGeneral trace: {len(data):,} bytes "
            f"is not a whole number of {size}-byte records"
        )
    return _dense(t[0] for t in _ORACLE_ID.iter_unpack(data))


def _text_ids(path: Path, data: bytes) -> tuple[array[int], list[int]]:
    """Lines end with \\n or \\r\\n; blank lines are skipped."""
    if b"\x00" in data[:65536]:
        raise ConfigError(
            f"trace {path} looks binary, not one key per line; for a libCacheSim "
            "oracleGeneral trace use the oracleGeneral trace format"
        )
    with contextlib.suppress(ValueError):
        return _dense(map(int, io.BytesIO(data)))  # the common case: integers, no blanks
    lines = [s for s in map(bytes.strip, io.BytesIO(data)) if s]
    with contextlib.suppress(ValueError):
        return _dense(map(int, lines))
    names: dict[bytes, int] = {}
    setdefault = names.setdefault
    ids = array("i", (setdefault(s, len(names)) for s in lines))
    return ids, list(range(len(names)))


def next_uses(ids: Sequence[int], unique: int) -> array[int]:
    """For each request, the position of the next request of the same key (``len(ids)``: never)."""
    n = len(ids)
    never = n
    last = [never] * unique
    out = array("q" if n >= 2**31 - 1 else "i", bytes(n * (8 if n >= 2**31 - 1 else 4)))
    for t in range(n - 1, -1, -1):
        i = ids[t]
        out[t] = last[i]
        last[i] = t
    return out


# ---------------------------------------------------------------- OPT and replay


def opt_hits(trace: Sequence[Hashable], capacity: int) -> int:
    """Hits of Bélády's OPT with bypass over ``trace`` with room for ``capacity`` keys."""
    index: dict[Hashable, int] = {}
    setdefault = index.setdefault
    ids = [setdefault(k, len(index)) for k in trace]
    return _opt(next_uses(ids, len(index)), capacity)


def _opt(nxt: Sequence[int], capacity: int) -> int:
    """OPT from next uses alone: a held object is named by the time of its next request.

    A request at time t hits iff some held object's next use is t; it then becomes
    the object whose next use is ``nxt[t]``. A max-heap (negated) of next uses with
    lazy deletion finds the farthest; objects never used again are never held.
    """
    if capacity < 1:
        raise ConfigError(f"capacity must be at least 1, got {capacity}")
    never = len(nxt)
    held: set[int] = set()
    heap: list[int] = []
    add, remove = held.add, held.remove
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
    limit = 4 * capacity + 64  # stale entries are past times: rebuild before they pile up
    hits = 0
    for t, n in enumerate(nxt):
        if t in held:
            hits += 1
            remove(t)
            if n < never:
                add(n)
                push(heap, -n)
                if len(heap) > limit:
                    heap = [-x for x in held]
                    heapq.heapify(heap)
        elif n < never:
            if len(held) < capacity:
                add(n)
                push(heap, -n)
            else:
                far = -heap[0]
                while far not in held:
                    pop(heap)
                    far = -heap[0]
                if far > n:  # else bypass: the newcomer is the farthest
                    remove(far)
                    add(n)
                    replace(heap, -n)
    return hits


def replay(trace: Iterable[Hashable], policy: str | Policy, capacity: int) -> int:
    """Hits of ``policy`` (a registered name or a fresh Policy object) over ``trace``.

    The calls are the cache core's (see the module docstring). Weights are 0, as
    the cache passes them when it has no ``max_bytes``: a policy bound without
    ``max_bytes`` must count entries, not weights.
    """
    if capacity < 1:
        raise ConfigError(f"capacity must be at least 1, got {capacity}")
    policy = policy_factory(policy)() if isinstance(policy, str) else make_policy(policy)
    policy.bind(capacity, None)
    sample = max(0, int(getattr(policy, "hit_sample", DEFAULT_HIT_SAMPLE)))
    on_insert, victim, record_hits = policy.on_insert, policy.victim, policy.record_hits
    keys = trace if isinstance(trace, Sequence) else list(trace)
    held: set[Hashable] = set()
    add, remove = held.add, held.remove
    misses = 0
    if sample:
        pending: deque[Hashable] = deque(maxlen=sample)
        hit = pending.append
        for key in keys:
            if key in held:
                hit(key)
                continue
            misses += 1
            if pending:
                record_hits(list(pending))
                pending.clear()
            on_insert(key, 0)
            if len(held) >= capacity:
                out = victim()
                if out == key:
                    continue
                try:
                    remove(out)
                except KeyError:
                    raise _bad_victim(policy, out) from None
            add(key)
    else:  # the policy ignores hits: no buffer at all
        for key in keys:
            if key in held:
                continue
            misses += 1
            on_insert(key, 0)
            if len(held) >= capacity:
                out = victim()
                if out == key:
                    continue
                try:
                    remove(out)
                except KeyError:
                    raise _bad_victim(policy, out) from None
            add(key)
    return len(keys) - misses


def _bad_victim(policy: Policy, key: Hashable) -> RuntimeError:
    return RuntimeError(f"policy {policy.name!r} chose victim {key!r}, which is not held")


# ---------------------------------------------------------------- sizes


@dataclass(frozen=True, slots=True)
class Size:
    """A cache size: a fraction of a trace's unique keys, or an absolute capacity."""

    label: str
    fraction: float | None = None
    capacity: int | None = None

    def capacity_for(self, unique: int) -> int:
        """Entries for a trace of ``unique`` keys: floor(unique * fraction), at least 1.

        The rounding is libCacheSim's (a C double product truncated), which gives
        the capacities of the reference table in shared/traces/README.md.
        """
        if self.capacity is not None:
            return self.capacity
        assert self.fraction is not None
        return max(1, int(unique * self.fraction))


def parse_sizes(text: str) -> list[Size]:
    """``"1%,5%,10%"`` (0 < p <= 100) or fractions ``"0.01,0.05"`` (0 < f < 1); ConfigError."""
    sizes: list[Size] = []
    for part in _items(text, "sizes"):
        number = part.removesuffix("%").strip()
        percent = part.endswith("%")
        try:
            value = Decimal(number)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite():
            raise ConfigError(f"size {part!r} is not a percentage (5%) or a fraction (0.05)")
        if not percent and not 0 < value < 1:
            raise ConfigError(
                f"size {part!r}: a bare number is a fraction of the unique keys, above 0 "
                "and below 1 (0.05 is 5 %); write a percentage with % (5%, 100%)"
            )
        pct = value if percent else value * 100
        if not 0 < pct <= 100:
            raise ConfigError(f"size {part!r} must be above 0 % and at most 100 %")
        label = f"{pct.normalize():f}%"
        sizes.append(Size(label, fraction=float(pct / 100)))
    return _unique_sizes(sizes)


def parse_capacities(text: str) -> list[Size]:
    """``"100,1000"``: absolute capacities in entries (integers >= 1); ConfigError."""
    sizes: list[Size] = []
    for part in _items(text, "capacities"):
        try:
            capacity = int(part.replace("_", ""))
        except ValueError:
            raise ConfigError(f"capacity {part!r} is not a whole number of entries") from None
        if capacity < 1:
            raise ConfigError(f"capacity must be at least 1, got {capacity}")
        sizes.append(Size(str(capacity), capacity=capacity))
    return _unique_sizes(sizes)


def _items(text: str, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",")]
    if not any(items) or not all(items):
        raise ConfigError(f"{what} must be a comma-separated list, got {text!r}")
    return items


def _unique_sizes(sizes: list[Size]) -> list[Size]:
    seen: dict[str, Size] = {}
    for size in sizes:
        seen.setdefault(size.label, size)
    return list(seen.values())


def resolve_policies(names: Iterable[str] | None) -> list[str]:
    """Policy specs: registered names (``None`` or ``"all"``: all, in registry order) or
    ``module:factory`` import paths of a Policy class or factory (checked here)."""
    if names is None:
        return list(POLICIES)
    out: list[str] = []
    for raw in names:
        spec = raw.strip()
        if spec.lower() == "all":
            out.extend(POLICIES)
        else:
            policy_factory(spec)
            out.append(spec.lower() if spec.lower() in POLICIES else spec)
    return list(dict.fromkeys(out))


def policy_factory(spec: str) -> Callable[[], Policy]:
    """The factory of a registered name or a ``module:factory`` spec; ConfigError if none."""
    factory = POLICIES.get(spec.lower())
    if factory is not None:
        return factory
    module, colon, attr = spec.partition(":")
    if not (colon and module and attr):
        raise ConfigError(
            f"unknown policy {spec!r}; choose from {', '.join(POLICIES)}, all, "
            "or give a Policy class as module:Class"
        )
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import policy {spec!r}: {exc}") from None
    try:
        made_one = callable(found) and isinstance(found(), Policy)
    except Exception as exc:
        raise ConfigError(f"{spec!r} failed to make a policy: {exc}") from exc
    if not made_one:
        raise ConfigError(f"{spec!r} does not make a Policy")
    made: Callable[[], Policy] = found
    return made


def policy_label(spec: str) -> str:
    """How a policy is shown: its registered name, or its ``name`` attribute."""
    return spec if spec in POLICIES else policy_factory(spec)().name


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """A trace as read: its short name, path, request count and unique keys."""

    name: str
    path: str
    requests: int
    unique: int


@dataclass(frozen=True, slots=True)
class OptRun:
    """OPT's hits on one trace at one size."""

    trace: str
    size: str
    capacity: int
    requests: int
    hits: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Row:
    """One policy at one size on one trace; ratios are fractions, the gap is in points."""

    trace: str
    size: str
    capacity: int
    policy: str
    requests: int
    hits: int
    hit_ratio: float
    opt_hits: int
    opt_ratio: float
    gap_pp: float
    seconds: float


@dataclass(slots=True)
class Simulation:
    """What ``simulate`` found: one ``Row`` per trace, size and policy (in that order)."""

    traces: list[TraceInfo]
    sizes: list[Size]
    policies: list[str]
    rows: list[Row] = field(default_factory=list)
    opt: list[OptRun] = field(default_factory=list)
    wall_seconds: float = 0.0

    def mean_gaps(self) -> dict[str, dict[str, float]]:
        """policy -> size label -> mean gap to OPT over the traces (percentage points)."""
        out: dict[str, dict[str, float]] = {}
        for policy in self.policies:
            per_size = out.setdefault(policy, {})
            for size in self.sizes:
                gaps = [r.gap_pp for r in self.rows if r.policy == policy and r.size == size.label]
                if gaps:
                    per_size[size.label] = sum(gaps) / len(gaps)
        return out

    def throughput(self) -> dict[str, float]:
        """Requests per second of one process, per policy and for ``opt``."""
        out: dict[str, float] = {}
        runs: list[tuple[str, int, float]] = [(r.policy, r.requests, r.seconds) for r in self.rows]
        runs += [("opt", o.requests, o.seconds) for o in self.opt]
        for name in [*self.policies, "opt"]:
            mine = [(n, s) for p, n, s in runs if p == name]
            seconds = sum(s for _, s in mine)
            if mine and seconds > 0:
                out[name] = sum(n for n, _ in mine) / seconds
        return out


# ---------------------------------------------------------------- running


def simulate(
    paths: Sequence[str | os.PathLike[str]],
    policies: Iterable[str] | None = None,
    sizes: Sequence[Size] | None = None,
    *,
    jobs: int | None = None,
    trace_format: str = "auto",
    progress: Progress | None = None,
) -> Simulation:
    """Every (trace, size) through OPT and every policy, over ``jobs`` processes.

    ``jobs`` defaults to the CPU count; 1 runs in this process. Worker processes
    are spawned (not forked) and use the registered policies by name. Each trace
    is read once (in a worker) into a temporary file; the jobs then run biggest
    trace first, and a worker loads a trace once for all its jobs on it.
    """
    started = time.perf_counter()
    names = resolve_policies(policies)
    shown = [policy_label(spec) for spec in names]  # two of the same name: show the specs
    labels = {spec: spec if shown.count(x) > 1 else x for spec, x in zip(names, shown, strict=True)}
    sizes = list(sizes) if sizes is not None else parse_sizes(DEFAULT_SIZES)
    paths = list(dict.fromkeys(os.fspath(p) for p in paths))  # each trace once
    if not paths:
        raise ConfigError("no trace given")
    jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    with (
        tempfile.TemporaryDirectory(prefix="writethrough-simulate-") as tmp,
        _executor(jobs) as pool,
    ):
        files = [os.path.join(tmp, f"{i}.trace") for i in range(len(paths))]
        order = sorted(range(len(paths)), key=lambda i: -_file_size(paths[i]))
        read = _run_all(
            pool,
            _prepare,
            [(str(paths[i]), trace_format, files[i]) for i in order],
            [1] * len(order),
            "reading",
            progress,
        )
        infos = dict(zip(order, read, strict=True))
        traces = _named([infos[i] for i in range(len(paths))])
        work = [
            _Job(ti, si, policy, size.capacity_for(trace.unique))
            for ti, trace in enumerate(traces)
            for si, size in enumerate(sizes)
            for policy in [None, *names]
        ]
        work.sort(key=lambda j: (-traces[j.trace].requests, j.trace, j.policy is not None))
        results = _run_all(
            pool,
            _run_job,
            [(files[j.trace], traces[j.trace].name, j.policy, j.capacity) for j in work],
            [traces[j.trace].requests for j in work],
            "simulating",
            progress,
        )
    done = {
        (j.trace, j.size, j.policy): (j.capacity, r) for j, r in zip(work, results, strict=True)
    }
    sim = Simulation(traces, sizes, list(labels.values()))
    for ti, trace in enumerate(traces):
        n = trace.requests
        for si, size in enumerate(sizes):
            capacity, (best, seconds) = done[ti, si, None]
            sim.opt.append(OptRun(trace.name, size.label, capacity, n, best, seconds))
            for policy in names:
                capacity, (hits, seconds) = done[ti, si, policy]
                sim.rows.append(
                    Row(
                        trace=trace.name,
                        size=size.label,
                        capacity=capacity,
                        policy=labels[policy],
                        requests=n,
                        hits=hits,
                        hit_ratio=hits / n,
                        opt_hits=best,
                        opt_ratio=best / n,
                        gap_pp=(best - hits) * 100 / n,
                        seconds=seconds,
                    )
                )
    sim.wall_seconds = time.perf_counter() - started
    return sim


@dataclass(frozen=True, slots=True)
class _Job:
    trace: int  # index in the traces
    size: int  # index in the sizes
    policy: str | None  # None: OPT
    capacity: int


def _file_size(path: str | os.PathLike[str]) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # reading it will say what is wrong


def _named(infos: list[TraceInfo]) -> list[TraceInfo]:
    """Traces whose short names collide are named by their paths instead."""
    count: dict[str, int] = {}
    for info in infos:
        count[info.name] = count.get(info.name, 0) + 1
    return [
        info
        if count[info.name] == 1
        else TraceInfo(info.path, info.path, info.requests, info.unique)
        for info in infos
    ]


class _Inline(Executor):
    """``jobs=1``: the same jobs, run in this process at submission."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        _LOADED.clear()


def _executor(jobs: int) -> Executor:
    if jobs == 1:
        return _Inline()
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init
    )


def _worker_init() -> None:
    """Ctrl-C is the parent's to handle: it cancels the queued jobs and shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_all(
    pool: Executor,
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    weights: Sequence[int],
    phase: str,
    progress: Progress | None,
) -> list[Any]:
    """Results of ``fn(*job)`` in job order; progress counts the weights of finished jobs."""
    total = sum(weights)
    done = 0
    if progress is not None:
        progress(phase, 0, total)
    futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
    results: list[Any] = [None] * len(jobs)
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=futures.__getitem__):
                i = futures[future]
                results[i] = future.result()
                done += weights[i]
            if progress is not None:
                progress(phase, done, total)
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    return results


def _prepare(path: str, trace_format: str, out: str) -> TraceInfo:
    """Read a trace once; keep its keys and next uses in ``out`` for the simulation jobs."""
    ids, uniques = _read_ids(Path(path), trace_format)
    nxt = next_uses(ids, len(uniques))
    with open(out, "wb") as f:
        pickle.dump((uniques, ids, nxt), f, protocol=pickle.HIGHEST_PROTOCOL)
    return TraceInfo(trace_name(path), path, len(ids), len(uniques))


#: file -> (keys in request order, next uses): the last two traces this process ran
_LOADED: OrderedDict[str, tuple[list[int], array[int]]] = OrderedDict()


def _load(file: str) -> tuple[list[int], array[int]]:
    loaded = _LOADED.get(file)
    if loaded is None:
        with open(file, "rb") as f:
            uniques, ids, nxt = pickle.load(f)
        # one int object per key, shared by every request of it
        loaded = _LOADED[file] = (list(map(uniques.__getitem__, ids)), nxt)
        while len(_LOADED) > 2:
            _LOADED.popitem(last=False)
    return loaded


def _run_job(file: str, name: str, policy: str | None, capacity: int) -> tuple[int, float]:
    """(hits, seconds) of OPT (``policy`` None) or a policy on one trace at one capacity."""
    keys, nxt = _load(file)
    started = time.perf_counter()
    if policy is None:
        hits = _opt(nxt, capacity)
    else:
        try:
            hits = replay(keys, policy, capacity)
        except Exception as exc:
            raise RuntimeError(
                f"policy {policy!r} failed on trace {name} at capacity {capacity}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return hits, time.perf_counter() - started

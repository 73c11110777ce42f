"""The hit path: ``get`` of a key held in memory, against dict.get and peer LRU caches.

100,000 str keys, all held (capacity 200,000, so every get is a hit), read in
a precomputed order of 1,000,000 keys drawn Zipf(0.99) or uniformly. Every
candidate runs in this one process, in interleaved rounds (each round runs
every candidate once over the same key list, in a rotating order); the table
shows the median round. Time = the loop ``for k in keys: f(k)`` with ``f`` a
local bound method, so the loop's own cost (shown below the table) is in every
figure. Every registered policy has a row: a hit costs the same dict lookup and
log append whatever the policy; what differs is the drain of the hit log that
the maintenance thread runs meanwhile (the policy's ``record_hits``), which
competes for the interpreter and so shows up in the figures. Targets (DESIGN
P1): writethrough's default ``get`` <= 0.6x ``cachetools.LRUCache[k]`` and
<= 1.2x ``cachebox.LRUCache[k]``.

    python benchmarks/hit_path.py [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import _util

import writethrough as wt
from writethrough.policies import DEFAULT_POLICY, POLICIES

N_KEYS = 100_000
CAPACITY = 200_000
ACCESSES = 1_000_000
TARGETS = {"cachetools": 0.60, "cachebox": 1.20}

_LOOP_SOURCE = """
def loop(f, keys, ns):
    t0 = ns()
    for k in keys:
        f(k)
    return ns() - t0
"""

_EMPTY_SOURCE = """
def loop(f, keys, ns):
    t0 = ns()
    for k in keys:
        pass
    return ns() - t0
"""


def make_loop(
    source: str = _LOOP_SOURCE,
) -> Callable[[Callable[[Any], Any], Sequence[str], Callable[[], int]], int]:
    """A timing loop with its own code object.

    CPython 3.11+ specializes a call site for the callable it sees; one loop
    shared by every candidate would keep re-specializing between them, so each
    candidate gets a fresh compile of the same source.
    """
    namespace: dict[str, Any] = {}
    exec(compile(source, "<hit-path loop>", "exec"), namespace)
    loop: Callable[[Callable[[Any], Any], Sequence[str], Callable[[], int]], int]
    loop = namespace["loop"]
    return loop


def candidates(keys: list[str]) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """(label, the lookup callable, the object behind it) for every installed peer."""
    out: list[tuple[str, Callable[[Any], Any], Any]] = []
    plain = dict.fromkeys(keys, b"v")
    out.append(("dict.get", plain.get, plain))
    others = [name for name in POLICIES if name != DEFAULT_POLICY]
    for policy in (None, *others):  # every registered policy, the default first
        cache = wt.WriteThroughCache(wt.MemoryStore(), capacity=CAPACITY, policy=policy)
        for lo in range(0, len(keys), 10_000):
            cache.put_many({k: b"v" for k in keys[lo : lo + 10_000]})
        label = f"writethrough.get ({cache.policy.name}{', default' if policy is None else ''})"
        out.append((label, cache.get, cache))
    try:
        import cachetools

        ct: Any = cachetools.LRUCache(maxsize=CAPACITY)
        for k in keys:
            ct[k] = b"v"
        out.append(("cachetools.LRUCache[k]", ct.__getitem__, ct))
    except ImportError:
        pass
    try:
        import cachebox

        cb: Any = cachebox.LRUCache(maxsize=CAPACITY)
        for k in keys:
            cb[k] = b"v"
        out.append(("cachebox.LRUCache[k]", cb.__getitem__, cb))
    except ImportError:
        pass
    try:
        import lru

        lr: Any = lru.LRU(CAPACITY)
        for k in keys:
            lr[k] = b"v"
        out.append(("lru.LRU[k] (lru-dict)", lr.__getitem__, lr))
    except ImportError:
        pass
    return out


def access_patterns(keys: list[str], n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    ranked = keys[:]
    rng.shuffle(ranked)  # popularity rank -> key, spread over the table
    cum = list(itertools.accumulate((r + 1) ** -0.99 for r in range(len(keys))))
    return {
        "zipf:0.99": rng.choices(ranked, cum_weights=cum, k=n),
        "uniform": rng.choices(keys, k=n),
    }


def measure(rounds: int, n_accesses: int, seed: int) -> dict[str, Any]:
    keys = [f"key:{i:08d}" for i in range(N_KEYS)]
    cands = candidates(keys)
    patterns = access_patterns(keys, n_accesses, seed)
    loops = {label: make_loop() for label, _, _ in cands}
    empty = make_loop(_EMPTY_SOURCE)
    timings: dict[str, dict[str, list[float]]] = {
        p: {label: [] for label, _, _ in cands} for p in patterns
    }
    loop_only: dict[str, list[float]] = {p: [] for p in patterns}
    ns = time.perf_counter_ns
    for label, f, _ in cands:  # one untimed pass each: warm caches and specializations
        loops[label](f, keys, ns)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: no collection inside a timed loop
    try:
        for r in range(rounds):
            shift = r % len(cands)
            order = cands[shift:] + cands[:shift]
            for pattern, seq in patterns.items():
                loop_only[pattern].append(empty(_noop, seq, ns) / len(seq))
                for label, f, _ in order:
                    timings[pattern][label].append(loops[label](f, seq, ns) / len(seq))
    finally:
        if gc_was_enabled:
            gc.enable()
    gets = len(keys) + rounds * n_accesses * len(patterns)  # the warm-up pass + the rounds
    checks = {}
    for label, _, obj in cands:
        if isinstance(obj, wt.WriteThroughCache):
            s = obj.stats()
            checks[label] = {
                "all_hits": s.backing_store_hits == 0 and s.misses == 0,
                "hits_counted_exactly": s.cache_hits == gets,
            }
    return {
        "n_keys": N_KEYS,
        "capacity": CAPACITY,
        "accesses_per_round": n_accesses,
        "rounds": rounds,
        "seed": seed,
        "ns_per_op": {
            p: {label: _util.median(v) for label, v in per.items()} for p, per in timings.items()
        },
        "ns_per_op_min": {
            p: {label: min(v) for label, v in per.items()} for p, per in timings.items()
        },
        "loop_overhead_ns": {p: _util.median(v) for p, v in loop_only.items()},
        "drain_ns_per_hit": drain_costs(keys, patterns["zipf:0.99"][:200_000], 3),
        "checks": checks,
    }


def drain_costs(keys: list[str], seq: list[str], rounds: int) -> dict[str, float]:
    """ns per hit of each policy's ``record_hits``: the work a drain does, off the hit path.

    Each policy holds every key (capacity ``N_KEYS``) and is handed the access
    sequence in batches of its own ``hit_sample`` (the most a drain passes on);
    the median of ``rounds`` passes, in ns per hit handed over.
    """
    out: dict[str, float] = {}
    for name, factory in POLICIES.items():
        policy = factory()
        policy.bind(N_KEYS, None)
        for k in keys:
            policy.on_insert(k, 0)
        sample = policy.hit_sample
        if not sample:
            out[name] = 0.0
            continue
        batches = [seq[i : i + sample] for i in range(0, len(seq), sample)]
        handed = sum(map(len, batches))
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            for batch in batches:
                policy.record_hits(batch)
            times.append((time.perf_counter_ns() - t0) / handed)
        out[name] = _util.median(times)
    return out


def _noop(_k: object) -> None:
    return None


def _find(per: dict[str, float], prefix: str) -> float | None:
    return next((v for label, v in per.items() if label.startswith(prefix)), None)


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pattern, per in result["ns_per_op"].items():
        ours = next(v for label, v in per.items() if label.endswith("default)"))
        pattern_out: dict[str, Any] = {}
        for peer, target in TARGETS.items():
            base = _find(per, f"{peer}.")
            ratio = ours / base if base else None
            pattern_out[peer] = {
                "ratio": ratio,
                "target": target,
                "met": None if ratio is None else ratio <= target,
            }
        out[pattern] = pattern_out
    return out


def report(result: dict[str, Any], env: dict[str, Any]) -> None:
    _util.print_environment(env)
    print(
        f"{result['n_keys']:,} str keys, all held (capacity {result['capacity']:,}); "
        f"{result['accesses_per_round']:,} gets per round; median of {result['rounds']} "
        "interleaved rounds"
    )
    for pattern, per in result["ns_per_op"].items():
        ct = _find(per, "cachetools.")
        cb = _find(per, "cachebox.")
        rows = [
            [
                label,
                f"{v:.1f}",
                f"{result['ns_per_op_min'][pattern][label]:.1f}",
                _util.ratio(v, ct),
                _util.ratio(v, cb),
            ]
            for label, v in per.items()
        ]
        print()
        print(f"access pattern: {pattern}")
        headers = ["candidate", "ns/op", "best", "vs cachetools", "vs cachebox"]
        print(_util.table(headers, rows))
        print(f"(the loop alone: {result['loop_overhead_ns'][pattern]:.1f} ns/op, in every figure)")
    print()
    print("drain: ns per hit in each policy's record_hits (zipf:0.99, off the hit path)")
    drain = result["drain_ns_per_hit"]
    print(_util.table(["policy", "ns/hit"], [[name, f"{v:.0f}"] for name, v in drain.items()]))
    print()
    for pattern, per in verdicts(result).items():
        parts = []
        for peer, v in per.items():
            if v["ratio"] is None:
                parts.append(f"{peer} not installed")
                continue
            state = "met" if v["met"] else "NOT met"
            parts.append(f"{v['ratio']:.2f}x {peer} (target <= {v['target']:.2f}x: {state})")
        print(f"targets, {pattern}: writethrough default get is " + "; ".join(parts))
    for label, check in result["checks"].items():
        ok = check["all_hits"] and check["hits_counted_exactly"]
        print(f"check {label}: every get a hit and counted exactly: {'yes' if ok else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--accesses", type=int, default=ACCESSES, help="gets per round per pattern (default 1M)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.rounds < 1 or args.accesses < 1:
        parser.error("--rounds and --accesses must be >= 1")
    env = _util.environment(["writethrough", "cachetools", "cachebox", "lru-dict"])
    result = measure(args.rounds, args.accesses, args.seed)
    _util.emit(args.json, env, result, report, verdicts(result))


if __name__ == "__main__":
    main()

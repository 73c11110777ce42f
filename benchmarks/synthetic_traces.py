"""Synthetic key traces for `writethrough simulate`: a check of the policies off the trace set.

The eviction policies were designed against ``shared/traces``; these four
traces, generated with a fixed seed, are a second opinion the design never saw:

* ``zipf10`` / ``zipf07``: 500,000 requests, Zipf(1.0) / Zipf(0.7) over 100,000 keys;
* ``phases``: four phases of 125,000 requests, each Zipf(0.9) over its own 20,000 keys;
* ``zipfscan``: 400,000 requests Zipf(0.9) over 50,000 keys, with a scan of
  never-repeated keys interleaved (one per two requests) in every other block of 20,000.

    python benchmarks/synthetic_traces.py OUTDIR
    writethrough simulate OUTDIR/*.keys.gz --policies all
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import random
from pathlib import Path


def zipf(rng: random.Random, n: int, s: float, k: int, offset: int = 0) -> list[int]:
    """``k`` draws of Zipf(``s``) over ``n`` keys (``offset`` .. ``offset + n - 1``, shuffled)."""
    cum = list(itertools.accumulate((r + 1) ** -s for r in range(n)))
    keys = list(range(offset, offset + n))
    rng.shuffle(keys)
    return [keys[i] for i in rng.choices(range(n), cum_weights=cum, k=k)]


def traces(seed: int) -> dict[str, list[int]]:
    rng = random.Random(seed)
    out = {
        "zipf10": zipf(rng, 100_000, 1.0, 500_000),
        "zipf07": zipf(rng, 100_000, 0.7, 500_000),
    }
    out["phases"] = [k for p in range(4) for k in zipf(rng, 20_000, 0.9, 125_000, p * 20_000)]
    cold = itertools.count(10**6)
    mixed: list[int] = []
    for i, key in enumerate(zipf(rng, 50_000, 0.9, 400_000)):
        mixed.append(key)
        if (i // 20_000) % 2 and i % 2 == 0:
            mixed.append(next(cold))
    out["zipfscan"] = mixed
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name, keys in traces(args.seed).items():
        path = args.outdir / f"{name}.keys.gz"
        with gzip.open(path, "wt") as f:
            f.write("\n".join(map(str, keys)) + "\n")
        print(f"{path}: {len(keys):,} requests, {len(set(keys)):,} keys")


if __name__ == "__main__":
    main()

"""How fast `cnncost sweep` counts points, serially and in a local process pool, in one run.

    python benchmarks/bench_sweep.py [--points 1000] [--repeats 3] [--jobs 2] [--engine NAME]

A resolution sweep of the bundled ResNet-50 (``res=64..`` in steps of 8, ``--points``
points, batch 1) is counted ``repeats`` times serially and ``repeats`` times with ``--jobs``
processes, taking turns so background load hits both alike. Each time is the whole
``Prepared.run`` as a user pays it (for the pool: starting the worker processes, which
import no torch for the analytic engine, included; each worker compiles the spec once and
reshapes it per point, see cnncost/spec/reuse.py). Reported: the median and best time and
points/s of each, and the pool's speed-up over serial (serial median / pool median). The
results of the two are checked equal before anything is timed.

Target (issue 12): >= 300 points/s on one core, which needs the torch-free analytic engine;
with ``--engine`` omitted the sweep uses the counting API's default engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncost.sweep import Prepared, prepare_sweep  # noqa: E402


def timed(prepared: Prepared, jobs: int) -> float:
    start = time.perf_counter()
    prepared.run(jobs=jobs)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=1000, help="points in the sweep")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each mode")
    ap.add_argument("--jobs", type=int, default=2, help="processes of the pool")
    ap.add_argument("--engine", default=None, help="counting engine (default: the API's)")
    args = ap.parse_args()
    last = 64 + 8 * (args.points - 1)
    prepared = prepare_sweep("resnet50", [f"res=64..{last}:8"], engine=args.engine)
    print(f"resnet50 resolution sweep: res=64..{last}:8 = {prepared.plan.size} points, "
          f"batch 1, engine {args.engine or '(API default)'}; {os.cpu_count()} CPUs here")

    # Warm-up (imports, first-call caches) and the equality check, untimed: a small sweep.
    small = prepare_sweep("resnet50", ["res=64..160:8"], engine=args.engine)
    serial_small, pooled_small = small.run(), small.run(jobs=args.jobs)
    if serial_small.results != pooled_small.results:
        raise SystemExit("serial and pooled results differ")

    times: dict[str, list[float]] = {"serial": [], f"--jobs {args.jobs}": []}
    for _ in range(args.repeats):
        times["serial"].append(timed(prepared, 1))
        times[f"--jobs {args.jobs}"].append(timed(prepared, args.jobs))

    n = prepared.plan.size
    print(f"{'mode':<10} {'median s':>9} {'best s':>8} {'points/s':>9}  ({args.repeats} runs)")
    for mode, ts in times.items():
        med = statistics.median(ts)
        print(f"{mode:<10} {med:>9.2f} {min(ts):>8.2f} {n / med:>9.1f}")
    serial, pooled = (statistics.median(ts) for ts in times.values())
    print(f"speed-up of --jobs {args.jobs} over serial: {serial / pooled:.2f}x "
          f"(median over median); target >= 300 points/s serial: "
          f"{'met' if n / serial >= 300 else 'not met'} ({n / serial:.1f} points/s)")


if __name__ == "__main__":
    main()

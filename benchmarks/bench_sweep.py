"""How fast `cnncost sweep` counts points, serially and in a local process pool, in one run.

    python benchmarks/bench_sweep.py [--points 1000] [--repeats 3] [--jobs 2] [--engine NAME]

A resolution sweep of the bundled ResNet-50 (``res=64..`` in steps of 8, ``--points``
points, batch 1) is counted ``repeats`` times serially and ``repeats`` times with ``--jobs``
processes, taking turns so background load hits both alike. Each time is the whole
``Prepared.run`` as a user pays it, from nothing remembered (``cnncost.caches.clear_caches``
first: what earlier runs lowered and compiled is forgotten, as in a fresh process; for the
pool: starting the worker processes, which import no torch for the analytic engine,
included; each process compiles the spec once and reshapes it per point, see
cnncost/spec/reuse.py). Reported: the median and best wall time and points/s of each, the
median CPU time (user + system of this process and its pool's workers: on a shared machine,
wall time adds the waits for a core) and points per CPU second, and the pool's speed-up over
serial (serial median / pool median, wall). The results of the two are checked equal before
anything is timed.

Target (issue 12): >= 300 points/s on one core, which needs the torch-free analytic engine;
with ``--engine`` omitted the sweep uses the counting API's default engine.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncost.caches import clear_caches  # noqa: E402
from cnncost.sweep import Prepared, prepare_sweep  # noqa: E402


def timed(prepared: Prepared, jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its pool's, user + system) of one sweep,
    counted from nothing remembered (as `cnncost sweep` in a fresh process)."""
    clear_caches()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = time.process_time(), time.perf_counter()
    prepared.run(jobs=jobs)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, cpu + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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

    if sys.flags.dont_write_bytecode:
        # Pool workers start from the bytecode caches a normal install has; with
        # PYTHONDONTWRITEBYTECODE each would compile every module again (and not keep it).
        compileall.compile_dir(ROOT / "cnncost", quiet=1)
    # Warm-up (imports, first-call caches) and the equality check, untimed: a small sweep.
    small = prepare_sweep("resnet50", ["res=64..160:8"], engine=args.engine)
    serial_small, pooled_small = small.run(), small.run(jobs=args.jobs)
    if serial_small.results != pooled_small.results:
        raise SystemExit("serial and pooled results differ")

    modes = {"serial": 1, f"--jobs {args.jobs}": args.jobs}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode, jobs in modes.items():
            wall, cpu = timed(prepared, jobs)
            walls[mode].append(wall)
            cpus[mode].append(cpu)

    n = prepared.plan.size
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.repeats} runs; CPU is "
          "user + system of every process (waiting for a core on a shared machine is not)")
    print(f"{'mode':<10} {'wall s':>7} {'best':>6} {'points/s':>9} {'cpu s':>7} "
          f"{'points/cpu-s':>13}")
    for mode in modes:
        wall, cpu = statistics.median(walls[mode]), statistics.median(cpus[mode])
        print(f"{mode:<10} {wall:>7.2f} {min(walls[mode]):>6.2f} {n / wall:>9.1f} "
              f"{cpu:>7.2f} {n / cpu:>13.1f}")
    serial, pooled = (statistics.median(walls[m]) for m in modes)
    serial_cpu = statistics.median(cpus["serial"])
    print(f"speed-up of --jobs {args.jobs} over serial: {serial / pooled:.2f}x (wall, median "
          f"over median); target >= 300 points/s on one core: "
          f"{'met' if n / serial >= 300 else 'not met'} by wall ({n / serial:.1f} points/s), "
          f"{'met' if n / serial_cpu >= 300 else 'not met'} by cpu ({n / serial_cpu:.1f})")


if __name__ == "__main__":
    main()

"""The analytic engine against the torch engine, and a whole `cnncost analyze` process against
`import torch`, measured in one run on this machine.

    python benchmarks/bench_engines.py [--repeats 7] [--process-repeats 5]

1. In-process: each spec (resnet50, mobilenetv2, densenet121, efficientnet_b0) is loaded once
   and counted by both engines (``cnncost.count.drivers.count_spec`` on the meta device, and
   ``cnncost.count.analytic.count_spec``) after one untimed call of each; then the engines take
   turns, ``repeats`` rounds, so background load hits both alike. Each engine is timed
   "cold" (what it remembers between counts forgotten first: the dispatch mode's per-op
   outputs and costs, the analytic engine's lowered layers; as for a spec counted once in a
   process) and "warm" (remembered, as when one spec is counted again, or in a sweep).
   Reported: medians, and torch over analytic, cold against cold and warm against warm.
   Target (issue 12): >= 30x. The two tables are checked equal before anything is timed.
2. Whole process: ``python -m cnncost analyze resnet50`` (output discarded) against
   ``python -c "import torch"``, taking turns, with one untimed run of each first (which
   also writes the bytecode caches a normal install has). Reported: the median wall time
   and CPU time (user + system) of each, and their ratio. Target: <= 0.5 s, below
   ``import torch`` alone. On a shared machine wall times include waiting for a core; CPU
   time does not.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import processes  # noqa: E402

from cnncost.caches import clear_caches  # noqa: E402
from cnncost.count import analytic, drivers  # noqa: E402
from cnncost.sources import bundled_specs  # noqa: E402
from cnncost.spec import ModelSpec, load_spec  # noqa: E402

SPECS = ("resnet50", "mobilenetv2", "densenet121", "efficientnet_b0")


def _timed(fn: Callable[[ModelSpec], object], spec: ModelSpec) -> float:
    """CPU seconds of one count (counting is single-threaded: on a shared machine, wall time
    would add the waits for a core)."""
    start = time.process_time()
    fn(spec)
    return time.process_time() - start


def _analytic_cold(spec: ModelSpec) -> None:
    clear_caches("analytic:")
    analytic.count_spec(spec)


def _torch_cold(spec: ModelSpec) -> None:
    clear_caches("torch: op costs", "torch: in-place op costs")
    drivers.count_spec(spec)


def in_process(repeats: int) -> None:
    print(f"in-process counting, median CPU ms of {repeats}; ratio = torch / analytic")
    print(f"{'spec':<16} {'layers':>6} {'torch cold':>11} {'warm':>7} {'analytic cold':>14} "
          f"{'warm':>6} {'ratio cold':>11} {'warm':>6}")
    worst = float("inf")
    engines = {"torch cold": _torch_cold, "torch warm": drivers.count_spec,
               "analytic cold": _analytic_cold, "analytic warm": analytic.count_spec}
    for name in SPECS:
        spec = load_spec(bundled_specs()[name])
        if drivers.count_spec(spec).to_json() != analytic.count_spec(spec).to_json():
            raise SystemExit(f"{name}: the engines disagree")
        times: dict[str, list[float]] = {k: [] for k in engines}
        for _ in range(repeats):
            for label, count in engines.items():
                times[label].append(_timed(count, spec))
        med = {k: statistics.median(v) for k, v in times.items()}
        cold = med["torch cold"] / med["analytic cold"]
        warm = med["torch warm"] / med["analytic warm"]
        worst = min(worst, cold, warm)
        print(f"{name:<16} {len(spec.layers):>6} {med['torch cold'] * 1e3:>11.1f} "
              f"{med['torch warm'] * 1e3:>7.1f} {med['analytic cold'] * 1e3:>14.2f} "
              f"{med['analytic warm'] * 1e3:>6.2f} {cold:>10.0f}x {warm:>5.0f}x")
    print(f"target >= 30x (every spec, cold and warm): {'met' if worst >= 30 else 'not met'} "
          f"(lowest {worst:.0f}x)")


def whole_process(repeats: int) -> None:
    runs = {"cnncost analyze resnet50": [sys.executable, "-m", "cnncost", "analyze", "resnet50"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
    print(f"\nwhole process, median of {repeats} (s)")
    (ours, ours_cpu), (torch_, torch_cpu) = processes.medians(runs, repeats).values()
    print(f"analyze / import torch: {ours / torch_:.2f} (wall), {ours_cpu / torch_cpu:.2f} (cpu); "
          + processes.target_line(ours, ours_cpu))


def main() -> None:
    processes.two_part_main(__doc__, in_process, whole_process, (7, 5), "spec")


if __name__ == "__main__":
    main()

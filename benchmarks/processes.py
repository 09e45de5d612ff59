"""Whole-process timing shared by the benchmarks: commands run in turn, several rounds.

Each command runs once untimed (bytecode caches, page cache), then ``repeats`` rounds of
every command one after another, so a change of machine load falls on all of them alike.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(runs: dict[str, list[str]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each command (this checkout first on the path), after
    printing them as a table."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    for argv in runs.values():
        run_once(argv, env)  # untimed: bytecode caches, page cache
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    for _ in range(repeats):
        for label, argv in runs.items():
            times[label].append(run_once(argv, env))
    out = {label: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
           for label, t in times.items()}
    width = max(len(label) for label in runs) + 2
    print(f"{'command':<{width}} {'wall':>6} {'cpu':>6}")
    for label, (wall, cpu) in out.items():
        print(f"{label:<{width}} {wall:>6.2f} {cpu:>6.2f}")
    return out


def target_line(wall: float, cpu: float, limit: float = 0.5) -> str:
    """Whether a process met the issue's time target, by wall and by CPU time."""
    return (f"target <= {limit} s: {'met' if wall <= limit else 'not met'} by wall "
            f"({wall:.2f} s), {'met' if cpu <= limit else 'not met'} by cpu ({cpu:.2f} s)")


def two_part_main(doc: str, in_process: Callable[[int], None],
                  whole_process: Callable[[int], None], rounds: tuple[int, int],
                  what: str) -> None:
    """A benchmark of an in-process part and a whole-process part, rounds set on its command
    line (``rounds``: the defaults; ``what``: what one in-process round times)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=rounds[0],
                    help=f"in-process rounds per {what}")
    ap.add_argument("--process-repeats", type=int, default=rounds[1],
                    help="whole-process rounds")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    in_process(args.repeats)
    whole_process(args.process_repeats)

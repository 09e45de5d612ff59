"""Drawing cnncost's tables (rich's Table), and the whole `cnncost analyze resnet50` and
`cnncost sweep resnet50 --set res=64..8056:8` processes, in one run.

    python benchmarks/bench_render.py [--repeats 15] [--process-repeats 7]

1. In-process: resnet50 counted once; then ``repeats`` rounds of drawing its table (175
   rows; and ``--depth 1``) as ``cnncost analyze`` prints it on a terminal 100 columns wide
   (``rich_table``, ``fit_width``, ``Console.print`` into a string), on a plain console and
   on a truecolor one, taking turns. Then the same for the sweep table of ``cnncost sweep
   resnet50 --set res=64..8056:8`` (1,000 rows, swept once; ``rich_sweep``; a third of the
   rounds, at least 3). Reported: median CPU ms of each.
2. Whole process, taking turns, after one untimed run of each (bytecode caches):
   ``python -m cnncost analyze resnet50`` (output discarded), the same with ``-f json``
   (the same counting, no table drawn) and ``python -c "import torch"``. Reported: median
   wall and CPU (user + system) seconds. Target (issues 12 and 22): <= 0.5 s, and below
   ``import torch`` alone. Then the 1,000-point sweep drawn as a table and written as JSON,
   in half the rounds, at least 3. On a shared machine wall times include waiting for a
   core; CPU time does not.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import processes  # noqa: E402

from cnncost.api import analyze_target  # noqa: E402
from cnncost.render.console import console  # noqa: E402
from cnncost.render.cost import rich_table  # noqa: E402
from cnncost.render.sweep import rich_sweep  # noqa: E402
from cnncost.render.terminal import fit_width  # noqa: E402
from cnncost.sweep import run_sweep  # noqa: E402

SWEEP = ["sweep", "resnet50", "--set", "res=64..8056:8"]


def draw(make: Callable[[], Any], colour: bool) -> str:
    """What ``make`` returns as print_whole prints it on a 100-column terminal."""
    renderable = make()
    out = console(file=io.StringIO(), width=100, force_terminal=colour,
                  color_system="truecolor" if colour else None)
    out.width = fit_width(renderable, out.width)
    out.print(renderable)
    return out.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _ms(fn: Callable[[], object]) -> float:
    """CPU ms of one drawing (single-threaded: on a shared machine, wall time would add the
    waits for a core)."""
    start = time.process_time()
    fn()
    return 1000 * (time.process_time() - start)


def _row(label: str, make: Callable[[], Any], repeats: int) -> None:
    """One line: the median ms on a plain console and on a truecolor one."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for colour in (False, True):
            times[colour].append(_ms(lambda: draw(make, colour)))  # noqa: B023
    plain, colour = (statistics.median(times[c]) for c in (False, True))
    print(f"{label:<12} {plain:>8.1f} {colour:>10.1f}")


def in_process(repeats: int) -> None:
    table = analyze_target("resnet50")
    print(f"in-process, resnet50 drawn at width 100, median CPU ms of {repeats}")
    print(f"{'table':<12} {'plain':>8} {'truecolor':>10}")
    for depth in (None, 1):
        _row("layers" if depth is None else f"--depth {depth}",
             partial(rich_table, table, depth=depth), repeats)
    sweep = run_sweep("resnet50", SWEEP[3:])
    rounds = max(3, repeats // 3)
    print(f"\nsweep resnet50 --set res=64..8056:8 ({len(sweep.results):,} rows) drawn at "
          f"width 100, median CPU ms of {rounds}")
    _row("sweep", partial(rich_sweep, sweep), rounds)


def whole_process(repeats: int) -> None:
    python = sys.executable
    runs = {"cnncost analyze resnet50": [python, "-m", "cnncost", "analyze", "resnet50"],
            "  ... -f json": [python, "-m", "cnncost", "analyze", "resnet50", "-f", "json"],
            "python -c 'import torch'": [python, "-c", "import torch"]}
    print(f"\nwhole process, median of {repeats} (s)")
    times = processes.medians(runs, repeats)
    wall, cpu = times["cnncost analyze resnet50"]
    torch_wall, torch_cpu = times["python -c 'import torch'"]
    print(f"analyze / import torch: {wall / torch_wall:.2f} (wall), {cpu / torch_cpu:.2f} (cpu); "
          + processes.target_line(wall, cpu))
    rounds = max(3, repeats // 2)
    runs = {"sweep (table)": [python, "-m", "cnncost", *SWEEP],
            "sweep -f json": [python, "-m", "cnncost", *SWEEP, "-f", "json"]}
    print(f"\nwhole process `cnncost {' '.join(SWEEP)}`, median of {rounds} (s)")
    processes.medians(runs, rounds)


def main() -> None:
    processes.two_part_main(__doc__, in_process, whole_process, (15, 7), "table")


if __name__ == "__main__":
    main()

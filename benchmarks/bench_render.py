"""Drawing cnncost's tables: its own layout (render.fasttable.FastTable) against rich's Table,
and the whole `cnncost analyze resnet50` and `cnncost sweep resnet50 --set res=64..8056:8`
processes with each, in one run.

    python benchmarks/bench_render.py [--repeats 15] [--process-repeats 7]

1. In-process: resnet50 counted once; then, taking turns, ``repeats`` rounds of drawing its
   table (175 rows; and ``--depth 1``) as ``cnncost analyze`` prints it on a terminal 100
   columns wide (``rich_table``, ``fit_width``, ``Console.print`` into a string), on a plain
   console and on a truecolor one, once with FastTable and once with rich's Table in its
   place. Then the same for the sweep table of ``cnncost sweep resnet50 --set
   res=64..8056:8`` (1,000 rows, swept once; ``rich_sweep``; a third of the rounds, at least
   3: rich takes over a second a drawing). The two outputs are checked byte-identical before
   anything is timed. Reported: median wall ms of each and their ratio.
2. Whole process, taking turns, after one untimed run of each (bytecode caches):
   ``python -m cnncost analyze resnet50`` (output discarded) as shipped, and the same command
   run with rich's Table in FastTable's place (``cnncost.cli.main`` from ``python -c``, the
   swap made first). Reported: median wall and CPU (user + system) seconds. Target
   (issue 12): <= 0.5 s. Then the 1,000-point sweep the same way, and with ``-f json`` (the
   same counting, no table), in half the rounds, at least 3. On a shared machine wall times
   include waiting for a core; CPU time does not.
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
from rich.table import Table  # noqa: E402

from cnncost.api import analyze_target  # noqa: E402
from cnncost.render import fasttable  # noqa: E402
from cnncost.render.console import console  # noqa: E402
from cnncost.render.cost import rich_table  # noqa: E402
from cnncost.render.sweep import rich_sweep  # noqa: E402
from cnncost.render.terminal import fit_width  # noqa: E402
from cnncost.sweep import run_sweep  # noqa: E402

FAST_TABLE = fasttable.FastTable
SWEEP = ["sweep", "resnet50", "--set", "res=64..8056:8"]
RICH_MAIN = ("import sys; from rich.table import Table; import cnncost.render.fasttable as f; "
             "f.FastTable = Table; sys.argv = ['cnncost', *{argv!r}]; "
             "from cnncost.cli import main; main()")


def draw(make: Callable[[], Any], colour: bool, fast: bool) -> str:
    """What ``make`` returns as print_whole prints it on a 100-column terminal."""
    fasttable.FastTable = FAST_TABLE if fast else Table  # type: ignore[misc]
    try:
        renderable = make()
    finally:
        fasttable.FastTable = FAST_TABLE  # type: ignore[misc]
    out = console(file=io.StringIO(), width=100, force_terminal=colour,
                  color_system="truecolor" if colour else None)
    out.width = fit_width(renderable, out.width)
    out.print(renderable)
    return out.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def _row(label: str, make: Callable[[], Any], repeats: int) -> None:
    """One line per console: median ms with rich's Table and with FastTable, the ratio."""
    for colour in (False, True):
        assert draw(make, colour, True) == draw(make, colour, False)
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for fast in (False, True):
                times[fast].append(_ms(lambda: draw(make, colour, fast)))  # noqa: B023
        rich_ms, fast_ms = (statistics.median(times[f]) for f in (False, True))
        name = label + (", truecolor" if colour else ", plain")
        print(f"{name:<22} {rich_ms:>7.1f} {fast_ms:>7.1f} {rich_ms / fast_ms:>5.1f}x")


def in_process(repeats: int) -> None:
    table = analyze_target("resnet50")
    print(f"in-process, resnet50 drawn at width 100, median wall ms of {repeats}")
    print(f"{'table':<22} {'rich':>7} {'fast':>7} {'ratio':>6}")
    for depth in (None, 1):
        _row("layers" if depth is None else f"--depth {depth}",
             partial(rich_table, table, depth=depth), repeats)
    sweep = run_sweep("resnet50", SWEEP[3:])
    rounds = max(3, repeats // 3)
    print(f"\nsweep resnet50 --set res=64..8056:8 ({len(sweep.results):,} rows) drawn at "
          f"width 100, median wall ms of {rounds}")
    _row("sweep", partial(rich_sweep, sweep), rounds)


def whole_process(repeats: int) -> None:
    python = sys.executable
    runs = {"analyze (FastTable)": [python, "-m", "cnncost", "analyze", "resnet50"],
            "analyze (rich Table)": [python, "-c", RICH_MAIN.format(argv=["analyze",
                                                                         "resnet50"])]}
    print(f"\nwhole process `cnncost analyze resnet50`, median of {repeats} (s)")
    wall, cpu = processes.medians(runs, repeats)["analyze (FastTable)"]
    print(processes.target_line(wall, cpu))
    rounds = max(3, repeats // 2)
    runs = {"sweep (FastTable)": [python, "-m", "cnncost", *SWEEP],
            "sweep (rich Table)": [python, "-c", RICH_MAIN.format(argv=SWEEP)],
            "sweep -f json": [python, "-m", "cnncost", *SWEEP, "-f", "json"]}
    print(f"\nwhole process `cnncost {' '.join(SWEEP)}`, median of {rounds} (s)")
    processes.medians(runs, rounds)


def main() -> None:
    processes.two_part_main(__doc__, in_process, whole_process, (15, 7), "table")


if __name__ == "__main__":
    main()

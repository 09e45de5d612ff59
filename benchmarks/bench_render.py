"""Drawing the per-layer cost table: cnncost's own layout (render.fasttable.FastTable) against
rich's Table, and the whole `cnncost analyze resnet50` process with each, in one run.

    python benchmarks/bench_render.py [--repeats 15] [--process-repeats 7]

1. In-process: resnet50 counted once; then, taking turns, ``repeats`` rounds of drawing its
   table (175 rows; and ``--depth 1``) as ``cnncost analyze`` prints it on a terminal 100
   columns wide (``rich_table``, ``fit_width``, ``Console.print`` into a string), on a plain
   console and on a truecolor one, once with FastTable and once with rich's Table in its
   place. The two outputs are checked byte-identical before anything is timed. Reported:
   median wall ms of each and their ratio.
2. Whole process, taking turns, after one untimed run of each (bytecode caches):
   ``python -m cnncost analyze resnet50`` (output discarded) as shipped, and the same command
   run with rich's Table in FastTable's place (``cnncost.cli.main`` from ``python -c``, the
   swap made first). Reported: median wall and CPU (user + system) seconds. Target
   (issue 12): <= 0.5 s. On a shared machine wall times include waiting for a core; CPU time
   does not.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import processes  # noqa: E402
from rich.table import Table  # noqa: E402

from cnncost.api import analyze_target  # noqa: E402
from cnncost.render import fasttable  # noqa: E402
from cnncost.render.console import console  # noqa: E402
from cnncost.render.terminal import fit_width, rich_table  # noqa: E402
from cnncost.table import CostTable  # noqa: E402

FAST_TABLE = fasttable.FastTable
RICH_MAIN = ("import sys; from rich.table import Table; import cnncost.render.fasttable as f; "
             "f.FastTable = Table; sys.argv = ['cnncost', 'analyze', 'resnet50']; "
             "from cnncost.cli import main; main()")


def draw(table: CostTable, depth: int | None, colour: bool, fast: bool) -> str:
    """The table as print_whole prints it on a 100-column terminal."""
    fasttable.FastTable = FAST_TABLE if fast else Table  # type: ignore[misc]
    try:
        renderable = rich_table(table, depth=depth)
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


def in_process(repeats: int) -> None:
    table = analyze_target("resnet50")
    print(f"in-process, resnet50 drawn at width 100, median wall ms of {repeats}")
    print(f"{'table':<22} {'rich':>7} {'fast':>7} {'ratio':>6}")
    for depth in (None, 1):
        for colour in (False, True):
            assert draw(table, depth, colour, True) == draw(table, depth, colour, False)
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(repeats):
                for fast in (False, True):
                    times[fast].append(_ms(lambda: draw(table, depth, colour, fast)))  # noqa: B023
            rich_ms, fast_ms = (statistics.median(times[f]) for f in (False, True))
            label = ("layers" if depth is None else f"--depth {depth}") + (
                ", truecolor" if colour else ", plain")
            print(f"{label:<22} {rich_ms:>7.1f} {fast_ms:>7.1f} {rich_ms / fast_ms:>5.1f}x")


def whole_process(repeats: int) -> None:
    runs = {"analyze (FastTable)": [sys.executable, "-m", "cnncost", "analyze", "resnet50"],
            "analyze (rich Table)": [sys.executable, "-c", RICH_MAIN]}
    print(f"\nwhole process `cnncost analyze resnet50`, median of {repeats} (s)")
    wall, cpu = processes.medians(runs, repeats)["analyze (FastTable)"]
    print(processes.target_line(wall, cpu))


def main() -> None:
    processes.two_part_main(__doc__, in_process, whole_process, (15, 7), "table")


if __name__ == "__main__":
    main()

"""The terminal: printing that never cuts (a table wider than the terminal widens it),
plain-text export of any rich renderable, and progress bars.

What belongs here: how any result's rich renderable reaches a terminal, a pipe or a file;
the renderables themselves are each result's renderer's (render.cost, render.compare, ...).
rich is imported where something is drawn, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from cnncost.render.console import console, literal, write_stdout

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table


# --------------------------------------------------------------------------- widths and text


def _tables(renderable: RenderableType) -> list[Table]:
    from rich.console import Group
    from rich.table import Table

    if isinstance(renderable, Group):
        return [t for r in renderable.renderables for t in _tables(r)]
    return [renderable] if isinstance(renderable, Table) else []


def _cell_width(cell: object) -> int:
    from rich.cells import cell_len
    from rich.text import Text

    # (a string cell prints as written, control characters escaped: cnncost.render.console)
    return cell.cell_len if isinstance(cell, Text) else cell_len(literal(str(cell)))


def _naturals(table: Table) -> list[int]:
    """Each column's natural width, the no-wrap ones' fixed at it: rich lays the table out
    as it would by measuring them, without measuring every cell of theirs again."""
    naturals = []
    for col in table.columns:
        natural = max(_cell_width(c) for c in (col.header, col.footer, *col.cells))
        if col.no_wrap and col.width is None:
            col.width = max(natural, col.min_width or 0)
        naturals.append(natural)
    return naturals


def fit_width(renderable: RenderableType, width: int) -> int:
    """Fix the widths of folding columns so the tables fit ``width``; return the console width
    to print at (wider than ``width`` when even folded names would not fit: widen, never cut).

    No-wrap columns (numbers, shapes) keep their full width; folding columns (names, kinds)
    get at least their ``min_width``; the spare room completes the shortest ones first.
    """
    needed = width
    for table in _tables(renderable):
        cols = table.columns
        natural = _naturals(table)
        edges = (2 if table.show_edge and table.box else 0) + (len(cols) - 1 if table.box else 0)
        padding = 2 * len(cols) - (0 if table.pad_edge else 2)
        fixed = edges + padding + sum(n for n, c in zip(natural, cols, strict=True)
                                      if c.no_wrap)
        folds = [i for i, c in enumerate(cols) if not c.no_wrap]
        if fixed + sum(natural[i] for i in folds) <= width:
            continue
        alloc = {i: min(cols[i].min_width or 1, natural[i]) for i in folds}
        room = max(width - fixed, sum(alloc.values()))
        needed = max(needed, fixed + room)
        spare = room - sum(alloc.values())
        for i in sorted(folds, key=lambda i: natural[i] - alloc[i]):  # short ones whole first
            grow = min(natural[i] - alloc[i], spare)
            alloc[i] += grow
            spare -= grow
        for i in folds:
            cols[i].width = alloc[i]
    return needed


def _probe() -> Console:
    return console(width=10_000, file=io.StringIO(), color_system=None)


def natural_width(renderable: RenderableType) -> int:
    """The width a renderable needs to print without folding anything."""
    for table in _tables(renderable):
        _naturals(table)
    return int(_probe().measure(renderable).maximum)


def tables_width(renderable: RenderableType) -> int:
    """The width the tables in a renderable need to print without folding a column."""
    probe = _probe()
    tables = _tables(renderable)
    for table in tables:
        _naturals(table)
    return max([0, *(int(probe.measure(t).maximum) for t in tables)])


def to_text(renderable: RenderableType, width: int | None = None) -> str:
    """Render to plain text (no colour) at a fixed width, or as wide as the content needs."""
    if width is None:
        width = max(80, natural_width(renderable))
    width = fit_width(renderable, width)
    out = console(record=True, width=width, file=io.StringIO(), color_system=None,
                  soft_wrap=False, legacy_windows=False)
    out.print(renderable)
    text = out.export_text(styles=False)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def stdout_console() -> Console:
    """A Console on stdout that leaves numbers and paths uncoloured and prints user text
    literally (cnncost.render.console); off the terminal, as wide as what it prints."""
    return console(width=PIPED_WIDTH) if piped() else console()


# --------------------------------------------------------------------------- piped output

# Off the terminal, lines are as long as their content: a table row is one line at its
# natural width, whatever COLUMNS says (up to this many characters).
PIPED_WIDTH = 10_000


def piped() -> bool:
    """Whether stdout is not a terminal (a pipe, a file, a test's capture). Then nothing is
    folded or cut to fit a width: one table row per line, so `grep`, `awk` and `diff` see
    each row whole (`cnncost analyze mobilenetv2 | grep stage2.0.expand.conv`)."""
    try:
        return not sys.stdout.isatty()
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return True


def print_whole(renderable: RenderableType) -> None:
    """Print to stdout, widening past a narrow terminal rather than cutting a figure (off the
    terminal: as the plain text of ``--output``, each line at its natural width)."""
    if piped():
        write_stdout(to_text(renderable))
        return
    console = stdout_console()
    console.width = fit_width(renderable, console.width)
    console.print(renderable)


def print_wide(renderable: RenderableType) -> None:
    """Print to stdout at least as wide as its tables: a narrow terminal wraps lines, no
    figure is lost (off the terminal: each line at its natural width)."""
    if piped():
        write_stdout(to_text(renderable))
        return
    console = stdout_console()
    console.width = max(console.width, tables_width(renderable))
    console.print(renderable)


def wide_text(renderable: Any, width: int = 160) -> str:
    """Plain text at ``width`` or as wide as the renderable's tables need (for a file)."""
    import os

    with open(os.devnull, "w") as sink:
        out = console(record=True, width=width, file=sink)
        out.width = max(out.width, tables_width(renderable))
        out.print(renderable)
        return out.export_text()


@contextlib.contextmanager
def progress(show: bool = True) -> Iterator[Callable[[str, float], None] | None]:
    """Progress bars on stderr while a benchmark runs, one per phase it reports (gone after).

    Yields the callback to hand to ``bench`` (``(label, fraction)``), or None when not ``show``.
    """
    if not show:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    stderr = console(stderr=True)
    # Off the terminal no bars: a transient display still leaves an empty line on stderr.
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def update(label: str, fraction: float) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=1.0)
            bar.update(tasks[label], completed=fraction)

        yield update


@contextlib.contextmanager
def point_progress(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A bar of points done on stderr (gone after; none off the terminal); yields the
    ``(done, total)`` callback a sweep reports to.

    The bar is redrawn from the callback, at most ten times a second, rather than by rich's
    refresh thread: with no thread running, a sweep's process pool may fork
    (cnncost.sweep.run), and a fast sweep spends no time drawing.
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    stderr = console(stderr=True)
    with Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True, auto_refresh=False,
                  disable=not stderr.is_terminal) as bar:
        task = bar.add_task(label, total=total)
        drawn = [0.0]

        def update(done: int, _total: int) -> None:
            now = time.monotonic()
            last = done >= total or now - drawn[0] >= 0.1
            bar.update(task, completed=done, refresh=last)
            if last:
                drawn[0] = now

        yield update

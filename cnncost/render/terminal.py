"""The terminal: the rich per-layer cost table, plain-text export, and printing that never cuts.

Computes no cost: everything here reads finished CostTables. rich is imported where a
table is drawn, so importing this module (as the CLI does for its option types) is cheap.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any

from cnncost.fmt import counted_on_text, human, human_bytes, params_text, shape
from cnncost.render.console import console, literal, write_stdout
from cnncost.table import BlockRow, CostRow, CostTable, row_count, table_rows

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table


class Units(str, Enum):
    """Which compute column a table shows."""

    MACS = "macs"
    FLOPS = "flops"


def _compute(row: CostRow | BlockRow, units: Units) -> int:
    return row.macs if units is Units.MACS else row.flops


def header(table: CostTable) -> str:
    """The three lines above a cost table: recipe, exact totals, memory."""
    if table.train:
        from cnncost.render import train

        return train.header(table)
    t = table.totals
    lines = [
        f"{table.model}  input {shape(table.input)}  {table.dtype}  policy {table.policy}",
        f"params {params_text(t.params, t.frozen_params)}  MACs {t.macs:,}  FLOPs {t.flops:,}",
        f"activations {human_bytes(t.activation_bytes)}  peak inference memory "
        f"{human_bytes(t.peak_memory_bytes)}  training (Adam) "
        f"~{human_bytes(t.training_memory_bytes['adam'])}",
    ]
    if table.counted_on != "meta":
        lines.append(counted_on_text(table.counted_on, table.counted_on_reason))
    return "\n".join(lines)


def rich_table(table: CostTable, units: Units = Units.MACS, depth: int | None = None,
               sort: str | None = None, top: int | None = None) -> RenderableType:
    """The per-layer table (or per-block with ``depth``) with a totals row and conventions.

    Names and kinds fold onto a second line when the terminal is narrow: never truncated.
    """
    if table.train:
        from cnncost.render import train

        return train.rich_table(table, units, depth, sort, top)
    from rich.console import Group
    from rich.text import Text

    rows = table_rows(table, depth, sort, top)
    out = _cost_table(table, rows, units, depth)
    notes: list[RenderableType] = [Text(header(table), style="bold"), out]
    count = row_count(table, depth)
    if len(rows) < count:
        what = "layers" if depth is None else "blocks"
        notes.append(Text(f"showing {len(rows)} of {count} {what}"
                          + (f", largest {sort} first" if sort else "")
                          + "; the total is the whole model's", style="dim"))
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        notes.append(Text(f"uncounted ops (no formula, shown as 0): {ops}", style="yellow"))
    notes.append(Text("conventions:\n" + "\n".join(f"  - {c}" for c in table.conventions),
                      style="dim"))
    return Group(*notes)


def _cost_table(table: CostTable, rows: list[CostRow] | list[BlockRow], units: Units,
                depth: int | None) -> Table:
    from rich import box
    from rich.text import Text

    from cnncost.render import fasttable

    label = "MACs" if units is Units.MACS else "FLOPs"
    total = _compute(table.totals, units) or 1  # type: ignore[arg-type]
    # laid out by cnncost (the same bytes as rich's Table, several times faster)
    out = fasttable.FastTable(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left")
    # Names fold rather than truncate; the other columns give way first.
    widest = min(max((len(r.name) for r in rows), default=5), 16)
    if depth is not None:
        out.add_column("block", footer="total", overflow="fold", min_width=widest)
        out.add_column("layers", justify="right", footer=str(len(table.layers)), no_wrap=True)
    else:
        kinds = min(max((len(r.kind) for r in rows if isinstance(r, CostRow)), default=4), 6)
        out.add_column("layer", footer="total", overflow="fold", min_width=widest)
        out.add_column("kind", footer="", no_wrap=True, min_width=kinds)
    out.add_column("output", footer=shape(table.input) + " in", no_wrap=True)
    out.add_column("params", justify="right", footer=f"{table.totals.params:,}", no_wrap=True)
    frozen = depth is None and table.totals.frozen_params > 0  # a column only where some are
    if frozen:
        out.add_column("frozen", justify="right", footer=f"{table.totals.frozen_params:,}",
                       no_wrap=True)
    out.add_column(label, justify="right", footer=human(_compute(table.totals, units)),  # type: ignore[arg-type]
                   no_wrap=True)
    out.add_column("share", justify="right", footer="100%", no_wrap=True)
    out.add_column("memory", justify="right", footer=human_bytes(table.totals.activation_bytes),
                   no_wrap=True)
    for r in rows:
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        if isinstance(r, CostRow) and r.uncounted:
            second += " [uncounted: " + ", ".join(sorted(r.uncounted)) + "]"
        value = _compute(r, units)
        cells = [f"{r.params:,}"] + ([f"{r.frozen_params:,}"] if isinstance(r, CostRow)
                                     and frozen else [])
        out.add_row(Text(literal(r.name)), Text(literal(second)), shape(r.output_shape), *cells,
                    human(value), f"{100 * value / total:.1f}%", human_bytes(r.output_bytes))
    return out


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

    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def fit_width(renderable: RenderableType, width: int) -> int:
    """Fix the widths of folding columns so the tables fit ``width``; return the console width
    to print at (wider than ``width`` when even folded names would not fit: widen, never cut).

    No-wrap columns (numbers, shapes) keep their full width; folding columns (names, kinds)
    get at least their ``min_width``; the spare room completes the shortest ones first.
    """
    needed = width
    for table in _tables(renderable):
        cols = table.columns
        natural = [max(_cell_width(c) for c in (col.header, col.footer, *col.cells))
                   for col in cols]
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
    return int(_probe().measure(renderable).maximum)


def tables_width(renderable: RenderableType) -> int:
    """The width the tables in a renderable need to print without folding a column."""
    probe = _probe()
    return max([0, *(int(probe.measure(t).maximum) for t in _tables(renderable))])


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

"""Render cost tables: rich tables for the terminal, CSV, Markdown and JSON. Computes nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import Enum

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cnncost.table import BlockRow, CostRow, CostTable, collapse


class Format(str, Enum):
    """Output formats of analyze/compare/bench."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MD = "md"


class Units(str, Enum):
    """Which compute column a table shows."""

    MACS = "macs"
    FLOPS = "flops"


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes, three significant digits)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{prefix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'."""
    for factor, prefix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {prefix}"
    return f"{int(n)} B"


def shape(s: Sequence[int]) -> str:
    return "x".join(map(str, s))


def _compute(row: CostRow | BlockRow, units: Units) -> int:
    return row.macs if units is Units.MACS else row.flops


def select_rows(table: CostTable, sort: str | None = None,
                top: int | None = None) -> list[CostRow]:
    """Rows in execution order, or sorted descending by a numeric field, cut to ``top``."""
    rows = list(table.layers)
    if sort:
        rows.sort(key=lambda r: getattr(r, sort), reverse=True)
    if top:
        rows = rows[:top]
    return rows


SORT_FIELDS = ("macs", "flops", "params", "output_bytes")


def header(table: CostTable) -> str:
    t = table.totals
    lines = [
        f"{table.model}  input {shape(table.input)}  {table.dtype}  policy {table.policy}",
        f"params {t.params:,}  MACs {t.macs:,}  FLOPs {t.flops:,}",
        f"activations {human_bytes(t.activation_bytes)}  peak inference memory "
        f"{human_bytes(t.peak_memory_bytes)}  training (Adam) "
        f"~{human_bytes(t.training_memory_bytes['adam'])}",
    ]
    return "\n".join(lines)


def rich_table(table: CostTable, units: Units = Units.MACS, depth: int | None = None,
               sort: str | None = None, top: int | None = None) -> RenderableType:
    """The per-layer table (or per-block with ``depth``) with a totals row and conventions."""
    label = "MACs" if units is Units.MACS else "FLOPs"
    total = _compute(table.totals, units) or 1  # type: ignore[arg-type]
    out = Table(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left")
    rows: Sequence[CostRow | BlockRow]
    if depth is not None:
        rows = collapse(table.layers, depth)
        if sort:
            rows = sorted(rows, key=lambda r: getattr(r, sort), reverse=True)
        rows = rows[:top] if top else rows
        out.add_column("block", footer="total")
        out.add_column("layers", justify="right", footer=str(len(table.layers)))
    else:
        rows = select_rows(table, sort, top)
        out.add_column("layer", footer="total")
        out.add_column("kind", footer="")
    out.add_column("output", footer=shape(table.input) + " in")
    out.add_column("params", justify="right", footer=f"{table.totals.params:,}")
    out.add_column(label, justify="right", footer=human(_compute(table.totals, units)))  # type: ignore[arg-type]
    out.add_column("share", justify="right", footer="100%")
    out.add_column("memory", justify="right", footer=human_bytes(table.totals.activation_bytes))
    for r in rows:
        first = r.name
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        if isinstance(r, CostRow) and r.uncounted:
            second += " [uncounted: " + ", ".join(sorted(r.uncounted)) + "]"
        value = _compute(r, units)
        out.add_row(first, second, shape(r.output_shape), f"{r.params:,}", human(value),
                    f"{100 * value / total:.1f}%", human_bytes(r.output_bytes))
    notes: list[RenderableType] = [Text(header(table), style="bold")]
    notes.append(out)
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        notes.append(Text(f"uncounted ops (no formula, shown as 0): {ops}", style="yellow"))
    notes.append(Text("conventions:\n" + "\n".join(f"  - {c}" for c in table.conventions),
                      style="dim"))
    return Group(*notes)


CSV_FIELDS = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs",
              "flops", "output_bytes", "receptive_field", "formula")


def to_csv(table: CostTable) -> str:
    """One CSV row per layer, exact integers, shapes as AxBxC."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in table.layers:
        w.writerow([r.name, r.kind, ";".join(shape(s) for s in r.input_shape),
                    shape(r.output_shape), r.params, r.buffers, r.macs, r.flops,
                    r.output_bytes, "" if r.receptive_field is None else r.receptive_field,
                    r.formula])
    return buf.getvalue()


def to_markdown(table: CostTable) -> str:
    """A Markdown cost table with the header figures and conventions."""
    t = table.totals
    lines = [
        f"# {table.model}",
        "",
        f"{table.description}" if table.description else "",
        "",
        f"- input: `{shape(table.input)}`, dtype `{table.dtype}`, policy `{table.policy}`",
        f"- params: **{t.params:,}**, buffers: {t.buffers:,}",
        f"- MACs: **{t.macs:,}**, FLOPs: {t.flops:,}",
        f"- activations: {t.activation_bytes:,} B; peak inference memory: "
        f"{t.peak_memory_bytes:,} B",
        "",
        "| layer | kind | output | params | MACs | FLOPs | output bytes |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in table.layers:
        lines.append(f"| `{r.name}` | {r.kind} | {shape(r.output_shape)} | {r.params:,} | "
                     f"{r.macs:,} | {r.flops:,} | {r.output_bytes:,} |")
    lines.append(f"| **total** | | | **{t.params:,}** | **{t.macs:,}** | **{t.flops:,}** | "
                 f"**{t.activation_bytes:,}** |")
    lines += ["", "Conventions:", *[f"- {c}" for c in table.conventions], ""]
    return "\n".join(line for i, line in enumerate(lines) if line or i != 2)


def render_text(table: CostTable, fmt: Format) -> str:
    """Machine-readable renderings (json, csv, md)."""
    if fmt is Format.JSON:
        return table.to_json()
    if fmt is Format.CSV:
        return to_csv(table)
    if fmt is Format.MD:
        return to_markdown(table)
    raise ValueError(f"{fmt} is not a text format")

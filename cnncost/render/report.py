"""Render cost tables: rich tables for the terminal, CSV, Markdown and JSON; compare models.

Computes no cost: everything here is arithmetic over finished CostTables (sums for
``--depth``, ratios for ``compare``). No torch import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from cnncost.table import BlockRow, CostRow, CostTable, collapse, dumps

if TYPE_CHECKING:  # rich is imported where it renders: `cnncost --help` does not pay for it
    from rich.console import Group, RenderableType
    from rich.table import Table


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
    """(1, 3, 224, 224) -> '1x3x224x224'."""
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


def table_rows(table: CostTable, depth: int | None = None, sort: str | None = None,
               top: int | None = None) -> list[CostRow] | list[BlockRow]:
    """The rows a rendering shows: layers, or blocks with ``depth``; sorted; cut to ``top``."""
    if depth is None:
        return select_rows(table, sort, top)
    blocks = collapse(table.layers, depth)
    if sort:
        blocks.sort(key=lambda r: getattr(r, sort), reverse=True)
    return blocks[:top] if top else blocks


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
    """The per-layer table (or per-block with ``depth``) with a totals row and conventions.

    Names and kinds fold onto a second line when the terminal is narrow: never truncated.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    label = "MACs" if units is Units.MACS else "FLOPs"
    total = _compute(table.totals, units) or 1  # type: ignore[arg-type]
    out = Table(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left")
    rows = table_rows(table, depth, sort, top)
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
        out.add_row(Text(r.name), Text(second), shape(r.output_shape), f"{r.params:,}",
                    human(value), f"{100 * value / total:.1f}%", human_bytes(r.output_bytes))
    notes: list[RenderableType] = [Text(header(table), style="bold")]
    notes.append(out)
    shown = len(rows)
    count = len(table.layers) if depth is None else len(collapse(table.layers, depth))
    if shown < count:
        what = "layers" if depth is None else "blocks"
        notes.append(Text(f"showing {shown} of {count} {what}"
                          + (f", largest {sort} first" if sort else "")
                          + "; the total is the whole model's", style="dim"))
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        notes.append(Text(f"uncounted ops (no formula, shown as 0): {ops}", style="yellow"))
    notes.append(Text("conventions:\n" + "\n".join(f"  - {c}" for c in table.conventions),
                      style="dim"))
    return Group(*notes)


def to_text(renderable: RenderableType, width: int | None = None) -> str:
    """Render to plain text (no colour) at a fixed width, or as wide as the content needs."""
    from rich.console import Console

    if width is None:
        width = max(80, natural_width(renderable))
    width = fit_width(renderable, width)
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None,
                      highlight=False, soft_wrap=False, legacy_windows=False)
    console.print(renderable)
    text = console.export_text(styles=False)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


CSV_FIELDS = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs",
              "flops", "output_bytes", "receptive_field", "formula")


BLOCK_CSV_FIELDS = ("name", "layers", "output_shape", "params", "buffers", "macs", "flops",
                    "output_bytes")


def to_csv(table: CostTable, depth: int | None = None, sort: str | None = None,
           top: int | None = None) -> str:
    """One CSV row per layer (or block with ``depth``), exact integers, shapes as AxBxC."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = table_rows(table, depth, sort, top)
    if depth is not None:
        w.writerow(BLOCK_CSV_FIELDS)
        for b in rows:
            assert isinstance(b, BlockRow)
            w.writerow([b.name, b.layers, shape(b.output_shape), b.params, b.buffers, b.macs,
                        b.flops, b.output_bytes])
        return buf.getvalue()
    w.writerow(CSV_FIELDS)
    for r in rows:
        assert isinstance(r, CostRow)
        w.writerow([r.name, r.kind, ";".join(shape(s) for s in r.input_shape),
                    shape(r.output_shape), r.params, r.buffers, r.macs, r.flops,
                    r.output_bytes, "" if r.receptive_field is None else r.receptive_field,
                    r.formula])
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: CostTable, depth: int | None = None, sort: str | None = None,
                top: int | None = None) -> str:
    """A Markdown cost table with the header figures and conventions."""
    t = table.totals
    recipe = f"- input: `{shape(table.input)}`, dtype `{table.dtype}`, policy `{table.policy}`"
    if table.vars:
        recipe += ", vars " + ", ".join(f"`{k}={v}`" for k, v in sorted(table.vars.items()))
    lines = [f"# {table.model}", ""]
    if table.description:
        lines += [_md_cell(table.description), ""]
    lines += [
        f"- source: `{table.source}`",
        recipe,
        f"- params: **{t.params:,}**, buffers: {t.buffers:,}",
        f"- MACs: **{t.macs:,}**, FLOPs: {t.flops:,}",
        f"- activations: {t.activation_bytes:,} B; peak inference memory: "
        f"{t.peak_memory_bytes:,} B",
        "",
    ]
    rows = table_rows(table, depth, sort, top)
    first = "layer | kind" if depth is None else "block | layers"
    lines += [f"| {first} | output | params | MACs | FLOPs | output bytes |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        lines.append(f"| `{r.name}` | {_md_cell(second)} | {shape(r.output_shape)} | "
                     f"{r.params:,} | {r.macs:,} | {r.flops:,} | {r.output_bytes:,} |")
    lines.append(f"| **total** | | | **{t.params:,}** | **{t.macs:,}** | **{t.flops:,}** | "
                 f"**{t.activation_bytes:,}** |")
    count = len(table.layers) if depth is None else len(collapse(table.layers, depth))
    if len(rows) < count:
        lines += ["", f"Showing {len(rows)} of {count} rows; the total is the whole model's."]
    lines += ["", "Conventions:", "", *[f"- {c}" for c in table.conventions], ""]
    return "\n".join(lines)


def to_json(table: CostTable, depth: int | None = None) -> str:
    """The cost-table JSON document; with ``depth``, block aggregates in a separate list."""
    if depth is None:
        return table.to_json()
    doc = table.to_dict()
    doc["blocks"] = [
        {"name": b.name, "layers": b.layers, "output_shape": list(b.output_shape),
         "params": b.params, "buffers": b.buffers, "macs": b.macs, "flops": b.flops,
         "output_bytes": b.output_bytes}
        for b in collapse(table.layers, depth)
    ]
    return dumps(doc)


def render_text(table: CostTable, fmt: Format, depth: int | None = None,
                sort: str | None = None, top: int | None = None) -> str:
    """Machine-readable renderings (json, csv, md); json always holds every layer."""
    if fmt is Format.JSON:
        return to_json(table, depth)
    if fmt is Format.CSV:
        return to_csv(table, depth, sort, top)
    if fmt is Format.MD:
        return to_markdown(table, depth, sort, top)
    raise ValueError(f"{fmt} is not a text format")


# --------------------------------------------------------------------------- compare

COMPARE_SCHEMA = "cnncost.compare/1"


@dataclass(frozen=True)
class Column:
    """One compared figure: a key in each model's values, a label, and its unit."""

    key: str
    label: str
    unit: str  # "count", "bytes" or "ms"


COMPARE_COLUMNS = (
    Column("params", "params", "count"),
    Column("macs", "MACs", "count"),
    Column("flops", "FLOPs", "count"),
    Column("activation_bytes", "activations", "bytes"),
    Column("peak_memory_bytes", "peak memory", "bytes"),
)


@dataclass(frozen=True)
class CompareRow:
    """One model in a comparison: its recipe and the value of each column."""

    model: str
    source: str
    input: tuple[int, ...]
    dtype: str
    policy: str
    vars: Mapping[str, Any]
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class Comparison:
    """Models side by side; every column also as a ratio to the first model."""

    rows: tuple[CompareRow, ...]
    columns: tuple[Column, ...] = COMPARE_COLUMNS

    def ratio(self, index: int, key: str) -> float | None:
        """rows[index].values[key] / rows[0].values[key]; None when undefined."""
        base = self.rows[0].values.get(key)
        value = self.rows[index].values.get(key)
        if base is None or value is None or base == 0:
            return None
        return value / base

    def with_column(self, column: Column, values: Sequence[float | None]) -> Comparison:
        """Add a column (e.g. measured latency from ``bench``), one value per model."""
        if len(values) != len(self.rows):
            raise ValueError(f"{len(values)} values for {len(self.rows)} models")
        rows = tuple(replace(r, values={**r.values, column.key: v})
                     for r, v in zip(self.rows, values, strict=True))
        return Comparison(rows, (*self.columns, column))

    def to_dict(self) -> dict[str, Any]:
        """The compare JSON document (schema ``cnncost.compare/1``)."""
        return {
            "schema": COMPARE_SCHEMA,
            "baseline": self.rows[0].model if self.rows else None,
            "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in self.columns],
            "models": [
                {
                    "model": r.model,
                    "source": r.source,
                    "input": list(r.input),
                    "dtype": r.dtype,
                    "policy": r.policy,
                    "vars": dict(sorted(r.vars.items())),
                    **{c.key: r.values.get(c.key) for c in self.columns},
                    "ratios": {c.key: self.ratio(i, c.key) for c in self.columns},
                }
                for i, r in enumerate(self.rows)
            ],
        }


def compare_tables(tables: Sequence[CostTable]) -> Comparison:
    """One row per table with params, MACs, FLOPs, activation and peak memory."""
    rows = []
    for t in tables:
        values: dict[str, float | None] = {c.key: getattr(t.totals, c.key)
                                           for c in COMPARE_COLUMNS}
        rows.append(CompareRow(t.model, t.source, tuple(t.input), t.dtype, t.policy,
                               dict(t.vars), values))
    return Comparison(tuple(rows))


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "ms":
        return f"{value:.3g} ms"
    return human(value)


def ratio_text(r: float | None) -> str:
    """0.0123 -> '0.0123x', 4.051 -> '4.05x', 1234.5 -> '1235x'."""
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    return f"{r:.3g}x" if r < 1 else f"{r:.2f}x"


def _model_label(r: CompareRow) -> str:
    if not r.vars:
        return r.model
    return r.model + " (" + ", ".join(f"{k}={v}" for k, v in sorted(r.vars.items())) + ")"


def compare_rich(cmp: Comparison) -> Group:
    """The comparison as a rich table: each figure followed by its ratio to the first model."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    out = Table(box=box.SIMPLE_HEAVY, padding=(0, 1), pad_edge=False)
    inputs = sorted({shape(r.input) for r in cmp.rows})
    out.add_column("model", no_wrap=True)
    if len(inputs) > 1:
        out.add_column("input", no_wrap=True)
    for c in cmp.columns:
        out.add_column(c.label, justify="right", no_wrap=True)
        out.add_column("x", justify="right", no_wrap=True, style="dim")
    for i, r in enumerate(cmp.rows):
        cells: list[RenderableType] = [Text(_model_label(r))]
        if len(inputs) > 1:
            cells.append(shape(r.input))
        for c in cmp.columns:
            cells += [_value(r.values.get(c.key), c.unit), ratio_text(cmp.ratio(i, c.key))]
        out.add_row(*cells)
    notes: list[RenderableType] = [out]
    if cmp.rows:
        first = cmp.rows[0]
        policies = sorted({r.policy for r in cmp.rows})
        dtypes = sorted({r.dtype for r in cmp.rows})
        where = f"input {inputs[0]}, " if len(inputs) == 1 else ""
        notes.append(Text(f"x = ratio to {first.model}; {where}dtype {', '.join(dtypes)}, "
                          f"FLOPs policy {', '.join(policies)}; 1 MAC = 1 multiply + 1 add",
                          style="dim"))
    return Group(*notes)


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
        edges = (2 if table.show_edge else 0) + (len(cols) - 1 if table.box else 0)
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


def natural_width(renderable: RenderableType) -> int:
    """The width a renderable needs to print without folding anything."""
    from rich.console import Console

    probe = Console(width=10_000, file=io.StringIO(), color_system=None)
    return int(probe.measure(renderable).maximum)


def compare_csv(cmp: Comparison) -> str:
    """One CSV row per model: exact values, then the ratios."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = [c.key for c in cmp.columns]
    w.writerow(["model", "source", "input", "dtype", "policy", "vars", *keys,
                *[f"{k}_ratio" for k in keys]])
    for i, r in enumerate(cmp.rows):
        ratios = [cmp.ratio(i, k) for k in keys]
        w.writerow([r.model, r.source, shape(r.input), r.dtype, r.policy,
                    ";".join(f"{k}={v}" for k, v in sorted(r.vars.items())),
                    *["" if r.values.get(k) is None else r.values[k] for k in keys],
                    *["" if x is None else f"{x:.6g}" for x in ratios]])
    return buf.getvalue()


def compare_markdown(cmp: Comparison) -> str:
    """A Markdown table: exact values with the ratio to the first model in parentheses."""
    head = ["model", "input", *[c.label for c in cmp.columns]]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * len(cmp.columns)]
    for i, r in enumerate(cmp.rows):
        cells = [f"`{_md_cell(_model_label(r))}`", shape(r.input)]
        for c in cmp.columns:
            v = r.values.get(c.key)
            text = "-" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.4g}")
            cells.append(f"{text} ({ratio_text(cmp.ratio(i, c.key))})")
        lines.append("| " + " | ".join(cells) + " |")
    if cmp.rows:
        lines += ["", f"Ratios are relative to `{cmp.rows[0].model}`."]
    return "\n".join(lines) + "\n"


def render_compare(cmp: Comparison, fmt: Format) -> str:
    """Machine-readable renderings of a comparison (json, csv, md)."""
    if fmt is Format.JSON:
        return dumps(cmp.to_dict())
    if fmt is Format.CSV:
        return compare_csv(cmp)
    if fmt is Format.MD:
        return compare_markdown(cmp)
    raise ValueError(f"{fmt} is not a text format")

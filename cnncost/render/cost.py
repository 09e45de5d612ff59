"""A cost table (``analyze``, ``report``) in every format: the terminal table, CSV,
Markdown, JSON and the HTML page, and the reports folder's index page.

Computes no cost: everything here reads finished CostTables. A training step's table
(``--mode train``) has its own columns, written by render.train, which this module hands it
to; the pieces both share are render.formats'. rich is imported where a table is drawn.
Exact integers in the machine-readable formats (no SI prefixes); shapes as AxBxC.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from cnncost.fmt import counted_on_text, human, human_bytes, params_text, shape
from cnncost.render import charts, svg, train
from cnncost.render.console import literal
from cnncost.render.formats import (
    CSV_FIELDS,
    Format,
    Units,
    csv_writer,
    markdown_head,
    md_cell,
    md_code,
    text_as,
)
from cnncost.render.html import (
    Col,
    Wrap,
    bytes_cell,
    cards,
    cell,
    chart_box,
    conventions_list,
    num_cell,
    page,
    scatter_points,
    sortable_table,
)
from cnncost.table import (
    BlockRow,
    CostRow,
    CostTable,
    collapse,
    dumps,
    row_count,
    table_rows,
)

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


# --------------------------------------------------------------------------- terminal


def header(table: CostTable) -> str:
    """The three lines above a cost table: recipe, exact totals, memory."""
    if table.train:
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


def _compute(row: CostRow | BlockRow, units: Units) -> int:
    return row.macs if units is Units.MACS else row.flops


def rich_table(table: CostTable, units: Units = Units.MACS, depth: int | None = None,
               sort: str | None = None, top: int | None = None) -> RenderableType:
    """The per-layer table (or per-block with ``depth``) with a totals row and conventions.

    Names and kinds fold onto a second line when the terminal is narrow: never truncated.
    """
    if table.train:
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
    from rich.table import Table
    from rich.text import Text

    label = "MACs" if units is Units.MACS else "FLOPs"
    total = _compute(table.totals, units) or 1  # type: ignore[arg-type]
    out = Table(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left")
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


# --------------------------------------------------------------------------- CSV, Markdown, JSON


BLOCK_CSV_FIELDS = ("name", "layers", "output_shape", "params", "buffers", "macs", "flops",
                    "output_bytes")


def write_blocks(w: Any, rows: Sequence[CostRow | BlockRow], fields: Sequence[str]) -> None:
    """CSV rows of blocks (``--depth``) under the header ``fields``: BLOCK_CSV_FIELDS, then
    any further block figures by name (a training step's)."""
    w.writerow(fields)
    for b in rows:
        assert isinstance(b, BlockRow)
        w.writerow([b.name, b.layers, shape(b.output_shape), b.params, b.buffers, b.macs,
                    b.flops, b.output_bytes,
                    *(b.value(f) for f in fields[len(BLOCK_CSV_FIELDS):])])


def to_csv(table: CostTable, depth: int | None = None, sort: str | None = None,
           top: int | None = None) -> str:
    """One CSV row per layer (or block with ``depth``), exact integers, shapes as AxBxC; a
    training step's with its backward's figures (cnncost.render.train)."""
    buf = io.StringIO()
    w = csv_writer(buf)
    rows = table_rows(table, depth, sort, top)
    if table.train:
        if depth is not None:
            write_blocks(w, rows, train.TRAIN_BLOCK_CSV_FIELDS)
        else:
            train.write_layers(w, rows)
    elif depth is not None:
        write_blocks(w, rows, BLOCK_CSV_FIELDS)
    else:
        _write_layers(w, table, rows)
    return buf.getvalue()


def _write_layers(w: Any, table: CostTable, rows: list[CostRow] | list[BlockRow]) -> None:
    frozen = table.totals.frozen_params > 0  # a column only where some parameters are
    w.writerow(CSV_FIELDS[:5] + ("frozen_params",) * frozen + CSV_FIELDS[5:])
    for r in rows:
        assert isinstance(r, CostRow)
        w.writerow([r.name, r.kind, ";".join(shape(s) for s in r.input_shape),
                    shape(r.output_shape), r.params, *[r.frozen_params] * frozen, r.buffers,
                    r.macs, r.flops, r.output_bytes,
                    "" if r.receptive_field is None else r.receptive_field, r.formula])


def to_markdown(table: CostTable, depth: int | None = None, sort: str | None = None,
                top: int | None = None) -> str:
    """A Markdown cost table with the header figures and conventions."""
    if table.train:
        return train.to_markdown(table, depth, sort, top)
    t = table.totals
    lines = markdown_head(table, table.model)
    lines += [
        f"- params: **{t.params:,}**"
        + (f" trainable, {t.frozen_params:,} frozen" if t.frozen_params else "")
        + f", buffers: {t.buffers:,}",
        f"- MACs: **{t.macs:,}**, FLOPs: {t.flops:,}",
        f"- activations: {t.activation_bytes:,} B; peak inference memory: "
        f"{t.peak_memory_bytes:,} B",
    ]
    if table.counted_on != "meta":
        lines.append(f"- {counted_on_text(table.counted_on, table.counted_on_reason)}")
    lines.append("")
    rows = table_rows(table, depth, sort, top)
    first = "layer | kind" if depth is None else "block | layers"
    lines += [f"| {first} | output | params | MACs | FLOPs | output bytes |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        lines.append(f"| {md_code(r.name)} | {md_cell(second)} | {shape(r.output_shape)} | "
                     f"{r.params:,} | {r.macs:,} | {r.flops:,} | {r.output_bytes:,} |")
    lines.append(f"| **total** | | | **{t.params:,}** | **{t.macs:,}** | **{t.flops:,}** | "
                 f"**{t.activation_bytes:,}** |")
    count = row_count(table, depth)
    if len(rows) < count:
        lines += ["", f"Showing {len(rows)} of {count} rows; the total is the whole model's."]
    lines += ["", "Conventions:", "", *[f"- {c}" for c in table.conventions], ""]
    return "\n".join(lines)


def to_json(table: CostTable, depth: int | None = None) -> str:
    """The cost-table JSON document; with ``depth``, block aggregates in a separate list."""
    if depth is None:
        return table.to_json()
    doc = table.to_dict()
    doc["blocks"] = [b.to_dict() for b in collapse(table.layers, depth)]
    return dumps(doc)


# --------------------------------------------------------------------------- HTML


def _recipe(table: CostTable) -> str:
    parts = [f"source <code>{escape(table.source)}</code>",
             f"input <code>{shape(table.input)}</code>", f"dtype <code>{table.dtype}</code>",
             f"FLOPs policy <code>{table.policy}</code>"]
    if table.vars:
        parts.append("vars " + ", ".join(f"<code>{escape(f'{k}={v}')}</code>"
                                         for k, v in sorted(table.vars.items())))
    return '<p class="recipe">' + " &middot; ".join(parts) + "</p>"


def _totals(table: CostTable) -> str:
    t = table.totals
    train = t.training_memory_bytes
    return cards([
        (human(t.params), "parameters", f"{t.params:,} (+ {t.buffers:,} buffers)"),
        (human(t.macs), "MACs", f"{t.macs:,}"),
        (human(t.flops), f"FLOPs (policy {table.policy})", f"{t.flops:,}"),
        (human_bytes(t.activation_bytes), "activations (sum of outputs)",
         f"{t.activation_bytes:,} bytes"),
        (human_bytes(t.peak_memory_bytes), "peak inference memory",
         f"{t.peak_memory_bytes:,} bytes"),
        (f"~{human_bytes(train['adam'])}", "training memory (Adam, estimate)",
         ", ".join(f"{k} {v:,} bytes" for k, v in train.items())),
    ])


def _layer_rows(table: CostTable, depth: int | None, sort: str | None,
                top: int | None) -> tuple[list[Col], list[list[str]], list[str]]:
    t = table.totals
    rows = table_rows(table, depth, sort, top)
    every: Sequence[CostRow | BlockRow] = (table.layers if depth is None
                                           else collapse(table.layers, depth))
    order = {r.name: i for i, r in enumerate(every)}  # execution order, for the # column
    macs_total = t.macs or 1
    if depth is None:
        cols = [Col("#", True), Col("layer"), Col("kind"), Col("output"), Col("params", True),
                Col("MACs", True), Col("FLOPs", True), Col("MACs share", True),
                Col("output memory", True), Col("formula"), Col("spec line")]
    else:
        cols = [Col("#", True), Col("block"), Col("layers", True), Col("output"),
                Col("params", True), Col("MACs", True), Col("FLOPs", True),
                Col("MACs share", True), Col("output memory", True)]
    out = []
    for r in rows:
        cells = [num_cell(order[r.name] + 1), cell(r.name, css="name")]
        if isinstance(r, CostRow):
            kind = r.kind + (" [uncounted: " + ", ".join(sorted(r.uncounted)) + "]"
                             if r.uncounted else "")
            cells.append(cell(kind, css="warn" if r.uncounted else ""))
        else:
            cells.append(num_cell(r.layers))
        cells += [cell(shape(r.output_shape)), num_cell(r.params), num_cell(r.macs),
                  num_cell(r.flops),
                  cell(f"{100 * r.macs / macs_total:.1f}%", r.macs / macs_total, "n"),
                  bytes_cell(r.output_bytes)]
        if isinstance(r, CostRow):
            cells += [cell(r.formula, css="formula"), cell(r.source, css="src")]
        out.append(cells)
    footer = [cell(""), cell("total"),
              cell("" if depth is None else f"{len(table.layers):,}"),
              cell(f"{shape(table.input)} in"), num_cell(t.params), num_cell(t.macs),
              num_cell(t.flops),
              cell("100%", css="n"), bytes_cell(t.activation_bytes)]
    if depth is None:
        footer += [cell(""), cell("")]
    return cols, out, footer


def table_page(table: CostTable, depth: int | None = None, sort: str | None = None,
               top: int | None = None, links: Sequence[tuple[str, str]] = (),
               wrap: Wrap = page) -> str:
    """A model's page: totals, the per-layer chart, the sortable cost table, conventions.

    ``depth``, ``sort`` and ``top`` shape the table as they do the text table; the chart
    always shows the model in execution order (per block when there are many layers).
    ``links`` are (href, text) pairs shown at the top (the report index links back).
    """
    bars = charts.layer_bars(table, depth)
    title, subtitle = charts.layers_title(table, bars)
    cols, rows, footer = _layer_rows(table, depth, sort, top)
    count = len(table.layers) if depth is None else len(collapse(table.layers, depth))
    what = "layers" if depth is None else f"blocks (names to depth {depth})"
    body = []
    if links:
        body.append('<p class="note">' + " &middot; ".join(
            f'<a href="{escape(href)}">{escape(text)}</a>' for href, text in links) + "</p>")
    body += [f"<h1>{escape(table.model)}</h1>"]
    if table.description:
        body.append(f'<p class="lead">{escape(table.description)}</p>')
    body += [_recipe(table), _totals(table), f"<h2>{escape(title)}</h2>",
             chart_box(svg.layer_chart(bars), subtitle),
             f"<h2>Cost table: {len(rows)} of {count} {what}</h2>",
             '<p class="note">Click a column header to sort by it (numbers largest first; '
             "# restores execution order). Hover a figure for its exact value.</p>",
             sortable_table(cols, rows, footer, "cost-table")]
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        body.append(f'<p class="warn">Uncounted ops (no formula, shown as 0): {escape(ops)}</p>')
    body.append(conventions_list(table.conventions))
    return wrap(f"{table.model}: cost per layer", body)


def index_page(entries: Sequence[tuple[str, CostTable]], folder: str = "") -> str:
    """The report folder's front page: one row per report, linked to its page, and every
    model on one MACs-against-parameters chart. ``entries`` = (page href, table)."""
    cols = [Col("model"), Col("description"), Col("input"), Col("params", True),
            Col("MACs", True), Col("FLOPs", True), Col("activations", True),
            Col("peak memory", True), Col("layers", True)]
    rows = []
    for href, t in entries:
        name = f'<td><a href="{escape(href)}">{escape(href.removesuffix(".html"))}</a></td>'
        rows.append([name, cell(t.description, css="desc"), cell(shape(t.input)),
                     num_cell(t.totals.params), num_cell(t.totals.macs), num_cell(t.totals.flops),
                     bytes_cell(t.totals.activation_bytes), bytes_cell(t.totals.peak_memory_bytes),
                     num_cell(len(t.layers))])
    labels = [t.model for _, t in entries]
    points = scatter_points(labels, [t.totals.macs for _, t in entries],
                             [t.totals.params for _, t in entries],
                             [t.totals.activation_bytes for _, t in entries],
                             [f"{t.model}: {human(t.totals.macs)} MACs, "
                              f"{human(t.totals.params)} params" for _, t in entries])
    where = f" in {folder}" if folder else ""
    body = [f"<h1>cnncost reports{escape(where)}</h1>",
            f'<p class="lead">{len(entries)} model(s); each name opens its page with the '
            "per-layer chart and table. The JSON files beside these pages are the baselines "
            "<code>cnncost check</code> compares against.</p>",
            sortable_table(cols, rows, table_id="index-table"),
            "<h2>Every model: MACs against parameters</h2>",
            chart_box(svg.loglog_chart(points, charts.Metric("macs", "MACs", "count"),
                                    charts.Metric("params", "parameters", "count"),
                                    "MACs vs parameters", width=900, height=560),
                   "bubble area = activation memory; hover a bubble for its figures")]
    conventions = sorted({c for _, t in entries for c in t.conventions})
    if conventions:
        body.append(conventions_list(conventions))
    return page("cnncost reports", body)


# --------------------------------------------------------------------------- every format


def render_text(table: CostTable, fmt: Format, depth: int | None = None,
                sort: str | None = None, top: int | None = None) -> str:
    """Machine-readable renderings (json, csv, md) and the html page; json always holds
    every layer."""
    return text_as(fmt, json=lambda: to_json(table, depth),
                   csv=lambda: to_csv(table, depth, sort, top),
                   md=lambda: to_markdown(table, depth, sort, top),
                   html=lambda: table_page(table, depth, sort, top))

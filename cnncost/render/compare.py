"""A model comparison (cnncost.compare) in every format: rich table, CSV, Markdown, JSON and
its HTML page (a sortable table, bars side by side, MACs against parameters)."""

from __future__ import annotations

import io
from html import escape
from typing import TYPE_CHECKING

from cnncost.compare import CompareRow, Comparison
from cnncost.fmt import human, human_bytes, ratio, shape
from cnncost.render import charts, svg
from cnncost.render.console import literal
from cnncost.render.formats import Format, csv_writer, md_code, text_as
from cnncost.render.html import (
    Col,
    Wrap,
    cell,
    chart_box,
    page,
    scatter_points,
    sortable_table,
)
from cnncost.table import dumps

if TYPE_CHECKING:
    from rich.console import Group, RenderableType


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "ms":
        return f"{value:.3g} ms"
    return human(value)


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
        cells: list[RenderableType] = [Text(literal(_model_label(r)))]
        if len(inputs) > 1:
            cells.append(shape(r.input))
        for c in cmp.columns:
            cells += [_value(r.values.get(c.key), c.unit), ratio(cmp.ratio(i, c.key))]
        out.add_row(*cells)
    notes: list[RenderableType] = [out]
    if cmp.rows:
        first = cmp.rows[0]
        policies = sorted({r.policy for r in cmp.rows})
        dtypes = sorted({r.dtype for r in cmp.rows})
        where = f"input {inputs[0]}, " if len(inputs) == 1 else ""
        step = "; one training step each" if any(r.mode == "train" for r in cmp.rows) else ""
        notes.append(Text(f"x = ratio to {first.model}; {where}dtype {', '.join(dtypes)}, "
                          f"FLOPs policy {', '.join(policies)}; 1 MAC = 1 multiply + 1 add"
                          f"{step}", style="dim"))
    return Group(*notes)


def compare_csv(cmp: Comparison) -> str:
    """One CSV row per model: exact values, then the ratios."""
    buf = io.StringIO()
    w = csv_writer(buf)
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
        cells = [md_code(_model_label(r)), shape(r.input)]
        for c in cmp.columns:
            v = r.values.get(c.key)
            text = "-" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.4g}")
            cells.append(f"{text} ({ratio(cmp.ratio(i, c.key))})")
        lines.append("| " + " | ".join(cells) + " |")
    if cmp.rows:
        lines += ["", f"Ratios are relative to {md_code(cmp.rows[0].model)}."]
    return "\n".join(lines) + "\n"


def render_text(cmp: Comparison, fmt: Format) -> str:
    """Machine-readable renderings of a comparison (json, csv, md) and the html page."""
    return text_as(fmt, json=lambda: dumps(cmp.to_dict()), csv=lambda: compare_csv(cmp),
                   md=lambda: compare_markdown(cmp), html=lambda: compare_page(cmp))


# --------------------------------------------------------------------------- HTML


def compare_page(cmp: Comparison, wrap: Wrap = page) -> str:
    """Models side by side: a sortable table with ratios, bar charts and a scatter."""
    labels = [charts.model_label(cmp, i) for i in range(len(cmp.rows))]
    cols = [Col("model"), Col("input")]
    for c in cmp.columns:
        cols += [Col(c.label, True), Col("x", True)]
    rows = []
    for i, r in enumerate(cmp.rows):
        cells = [cell(labels[i]), cell(shape(r.input))]
        for c in cmp.columns:
            v = r.values.get(c.key)
            metric = charts.Metric(c.key, c.label, c.unit)
            tip = "" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.6g}")
            cells += [cell(metric.text(v), v, "n", tip),
                      cell(ratio(cmp.ratio(i, c.key)), cmp.ratio(i, c.key), "n")]
        rows.append(cells)
    first = cmp.rows[0].model
    macs = [r.values.get("macs") for r in cmp.rows]
    points = scatter_points(labels, macs, [r.values.get("params") for r in cmp.rows],
                             [r.values.get("activation_bytes") for r in cmp.rows], labels)
    count = charts.Metric("macs", "MACs", "count")
    body = [f"<h1>{escape(' vs '.join(r.model for r in cmp.rows))}</h1>",
            f'<p class="recipe">x = ratio to {escape(first)}; '
            f"{escape(charts.comparison_recipe(cmp))}</p>",
            sortable_table(cols, rows, table_id="compare-table"),
            "<h2>Totals side by side</h2>", chart_box(svg.compare_chart(cmp)),
            "<h2>MACs against parameters</h2>",
            chart_box(svg.loglog_chart(points, count, charts.Metric("params", "parameters",
                                                                 "count"),
                                    "MACs vs parameters"),
                   "bubble area = activation memory")]
    return wrap(f"compare: {', '.join(r.model for r in cmp.rows)}", body)

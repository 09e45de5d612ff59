"""Self-contained HTML pages: a model's cost table, a comparison, a benchmark, a report index.

One file per page: inline CSS, inline SVG charts (svg.py), a few lines of inline JavaScript
that sort a table by the clicked column. No network request of any kind (no CDN, font,
image or link to a web address), so a page opens offline and can be mailed as is. The
figures come from the same CostTable / Comparison / BenchReport the text tables print;
nothing is counted here. Same input, same bytes (no dates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from cnncost.compare import Comparison
from cnncost.fmt import human, human_bytes, shape
from cnncost.fmt import ratio as ratio_text
from cnncost.render import charts, svg
from cnncost.table import BlockRow, CostRow, CostTable, collapse, table_rows

if TYPE_CHECKING:
    from cnncost.measure.bench import BenchReport, BenchRun
    from cnncost.sweep import Sweep

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       margin: 0 auto; padding: 18px 28px 40px; max-width: 1500px; }
h1 { font-size: 24px; margin: 8px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px; }
p.lead { color: #555; margin: 2px 0 10px; } .recipe { color: #444; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 18px; } .card span { color: #666; font-size: 12px; }
.table-box { overflow-x: auto; max-width: 100%; }
td.desc { white-space: normal; min-width: 260px; max-width: 560px; color: #555;
          font-size: 12px; }
.chart-box { overflow-x: auto; border: 1px solid #eee; border-radius: 8px; padding: 10px;
             margin: 8px 0 16px; }
table.costs { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.costs th, table.costs td { padding: 3px 10px; border-bottom: 1px solid #eee;
                                 white-space: nowrap; text-align: left; }
table.costs td.n, table.costs th.n { text-align: right; }
table.costs thead th { position: sticky; top: 0; background: #f6f6f8; cursor: pointer;
                       user-select: none; border-bottom: 2px solid #ccc; }
table.costs thead th:hover { background: #ececf0; }
table.costs th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
table.costs th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.costs tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
table.costs tbody tr:hover { background: #f3f7ff; }
td.formula, td.src { color: #666; font-size: 12px; }
.note { color: #666; font-size: 13px; } .warn { color: #a15c00; }
ul.conventions { color: #444; font-size: 13px; }
"""

# Sort a table.sortable by the clicked (or Enter-ed) header: numbers by their exact value
# (data-v), largest first on the first click; text A to Z. The footer (totals) stays put.
JS = """
(function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent;
      function sort() {
        var numeric = th.classList.contains("n");
        var next = th.getAttribute("aria-sort") === (numeric ? "descending" : "ascending")
          ? (numeric ? "ascending" : "descending") : (numeric ? "descending" : "ascending");
        var sign = next === "ascending" ? 1 : -1;
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        function key(row) {
          var cell = row.cells[col];
          var v = cell.getAttribute("data-v");
          return numeric ? (v === null || v === "" ? -Infinity : Number(v)) : cell.textContent;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (numeric) { return sign * (x - y) || a.rowIndex - b.rowIndex; }
          return sign * String(x).localeCompare(String(y));
        });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", next);
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  });
  document.documentElement.setAttribute("data-sortable", "ready");
})();
"""


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document with the inline style and sorting script."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script>\n</body>\n</html>\n")


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Col:
    """A column of a sortable table: header, numeric (right-aligned, sorted by value)?"""

    label: str
    numeric: bool = False
    css: str = ""


def _cell(text: str, value: float | int | None = None, css: str = "",
          tip: str = "") -> str:
    attrs = ""
    if value is not None:
        attrs += f' data-v="{value}"'
    if tip:
        attrs += f' title="{escape(tip)}"'
    if css:
        attrs += f' class="{css}"'
    return f"<td{attrs}>{escape(text)}</td>"


def sortable_table(cols: Sequence[Col], rows: Iterable[Sequence[str]],
                   footer: Sequence[str] | None = None, table_id: str = "") -> str:
    """A table.costs.sortable; each row is a list of ready ``<td>`` strings (see _cell)."""
    head = "".join(f'<th class="{"n " if c.numeric else ""}{c.css}">{escape(c.label)}</th>'
                   for c in cols)
    ident = f' id="{table_id}"' if table_id else ""
    out = [f'<div class="table-box"><table class="costs sortable"{ident}>',
           f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(r) + "</tr>" for r in rows]
    out.append("</tbody>")
    if footer is not None:
        out.append("<tfoot><tr>" + "".join(footer) + "</tr></tfoot>")
    out.append("</table></div>")
    return "\n".join(out)


def _num(n: int | float, css: str = "n") -> str:
    return _cell(f"{n:,}" if isinstance(n, int) else f"{n:.4g}", n, css)


def _bytes(n: int) -> str:
    return _cell(human_bytes(n), n, "n", f"{n:,} bytes")


def _cards(items: Sequence[tuple[str, str, str]]) -> str:
    """(big figure, caption, exact value tooltip) boxes."""
    cards = "".join(f'<div class="card" title="{escape(tip)}"><b>{escape(big)}</b>'
                    f"<span>{escape(caption)}</span></div>" for big, caption, tip in items)
    return f'<div class="cards">{cards}</div>'


def _conventions(conventions: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(c)}</li>" for c in conventions)
    return f'<h2>Counting conventions</h2>\n<ul class="conventions">{items}</ul>'


def _chart(svg_text: str, caption: str = "") -> str:
    cap = f'<p class="note">{escape(caption)}</p>' if caption else ""
    return f'<div class="chart-box">{svg_text}{cap}</div>'


# --------------------------------------------------------------------------- one model


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
    return _cards([
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
        cells = [_num(order[r.name] + 1), _cell(r.name, css="name")]
        if isinstance(r, CostRow):
            kind = r.kind + (" [uncounted: " + ", ".join(sorted(r.uncounted)) + "]"
                             if r.uncounted else "")
            cells.append(_cell(kind, css="warn" if r.uncounted else ""))
        else:
            cells.append(_num(r.layers))
        cells += [_cell(shape(r.output_shape)), _num(r.params), _num(r.macs), _num(r.flops),
                  _cell(f"{100 * r.macs / macs_total:.1f}%", r.macs / macs_total, "n"),
                  _bytes(r.output_bytes)]
        if isinstance(r, CostRow):
            cells += [_cell(r.formula, css="formula"), _cell(r.source, css="src")]
        out.append(cells)
    footer = [_cell(""), _cell("total"),
              _cell("" if depth is None else f"{len(table.layers):,}"),
              _cell(f"{shape(table.input)} in"), _num(t.params), _num(t.macs), _num(t.flops),
              _cell("100%", css="n"), _bytes(t.activation_bytes)]
    if depth is None:
        footer += [_cell(""), _cell("")]
    return cols, out, footer


def table_page(table: CostTable, depth: int | None = None, sort: str | None = None,
               top: int | None = None, links: Sequence[tuple[str, str]] = ()) -> str:
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
             _chart(svg.layer_chart(bars), subtitle),
             f"<h2>Cost table: {len(rows)} of {count} {what}</h2>",
             '<p class="note">Click a column header to sort by it (numbers largest first; '
             "# restores execution order). Hover a figure for its exact value.</p>",
             sortable_table(cols, rows, footer, "cost-table")]
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        body.append(f'<p class="warn">Uncounted ops (no formula, shown as 0): {escape(ops)}</p>')
    body.append(_conventions(table.conventions))
    return page(f"{table.model}: cost per layer", body)


# --------------------------------------------------------------------------- comparison


def _scatter_points(labels: Sequence[str], macs: Sequence[float | None],
                    ys: Sequence[float | None], acts: Sequence[float | None],
                    tips: Sequence[str]) -> list[svg.Point]:
    """Points sized by activation memory (area proportional, 3 to 16 px radius)."""
    top = max((a or 0 for a in acts), default=0) or 1
    out = []
    for i, (label, x, y, a) in enumerate(zip(labels, macs, ys, acts, strict=True)):
        if x and y:
            radius = max(3.0, 16 * ((a or 0) / top) ** 0.5)
            out.append(svg.Point(float(x), float(y), label,
                                 f"hsl({(i * 137) % 360}, 45%, 52%)", radius, tips[i]))
    return out


def compare_page(cmp: Comparison) -> str:
    """Models side by side: a sortable table with ratios, bar charts and a scatter."""
    labels = [charts.model_label(cmp, i) for i in range(len(cmp.rows))]
    cols = [Col("model"), Col("input")]
    for c in cmp.columns:
        cols += [Col(c.label, True), Col("x", True)]
    rows = []
    for i, r in enumerate(cmp.rows):
        cells = [_cell(labels[i]), _cell(shape(r.input))]
        for c in cmp.columns:
            v = r.values.get(c.key)
            metric = charts.Metric(c.key, c.label, c.unit)
            tip = "" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.6g}")
            cells += [_cell(metric.text(v), v, "n", tip),
                      _cell(ratio_text(cmp.ratio(i, c.key)), cmp.ratio(i, c.key), "n")]
        rows.append(cells)
    first = cmp.rows[0].model
    macs = [r.values.get("macs") for r in cmp.rows]
    points = _scatter_points(labels, macs, [r.values.get("params") for r in cmp.rows],
                             [r.values.get("activation_bytes") for r in cmp.rows], labels)
    count = charts.Metric("macs", "MACs", "count")
    body = [f"<h1>{escape(' vs '.join(r.model for r in cmp.rows))}</h1>",
            f'<p class="recipe">x = ratio to {escape(first)}; '
            f"{escape(charts.comparison_recipe(cmp))}</p>",
            sortable_table(cols, rows, table_id="compare-table"),
            "<h2>Totals side by side</h2>", _chart(svg.compare_chart(cmp)),
            "<h2>MACs against parameters</h2>",
            _chart(svg.loglog_chart(points, count, charts.Metric("params", "parameters",
                                                                 "count"),
                                    "MACs vs parameters"),
                   "bubble area = activation memory")]
    return page(f"compare: {', '.join(r.model for r in cmp.rows)}", body)


# --------------------------------------------------------------------------- report index


def index_page(entries: Sequence[tuple[str, CostTable]], folder: str = "") -> str:
    """The report folder's front page: one row per report, linked to its page, and every
    model on one MACs-against-parameters chart. ``entries`` = (page href, table)."""
    cols = [Col("model"), Col("description"), Col("input"), Col("params", True),
            Col("MACs", True), Col("FLOPs", True), Col("activations", True),
            Col("peak memory", True), Col("layers", True)]
    rows = []
    for href, t in entries:
        name = f'<td><a href="{escape(href)}">{escape(href.removesuffix(".html"))}</a></td>'
        rows.append([name, _cell(t.description, css="desc"), _cell(shape(t.input)),
                     _num(t.totals.params), _num(t.totals.macs), _num(t.totals.flops),
                     _bytes(t.totals.activation_bytes), _bytes(t.totals.peak_memory_bytes),
                     _num(len(t.layers))])
    labels = [t.model for _, t in entries]
    points = _scatter_points(labels, [t.totals.macs for _, t in entries],
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
            _chart(svg.loglog_chart(points, charts.Metric("macs", "MACs", "count"),
                                    charts.Metric("params", "parameters", "count"),
                                    "MACs vs parameters", width=900, height=560),
                   "bubble area = activation memory; hover a bubble for its figures")]
    conventions = sorted({c for _, t in entries for c in t.conventions})
    if conventions:
        body.append(_conventions(conventions))
    return page("cnncost reports", body)


# --------------------------------------------------------------------------- bench


def bench_page(report: BenchReport, top: int | None = None) -> str:
    """Measured times per batch, and each batch's layers on the machine's roofline."""
    from cnncost.render.bench import header_lines

    roof = report.roofline
    body = [f"<h1>bench: {escape(report.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in header_lines(report)]
    cols = [Col("batch", True), Col("median ms", True), Col("IQR ms", True),
            Col("images/s", True), Col("GFLOP/s", True), Col("% of peak", True),
            Col("roofline ms", True), Col("MACs", True)]
    rows = [[_num(r.batch), _num(r.timing.median_s * 1e3), _num(r.timing.iqr_s * 1e3),
             _num(r.images_per_s), _num(r.achieved_flops / 1e9),
             _num(100 * r.achieved_flops / roof.peak_flops), _num(r.predicted_s * 1e3),
             _num(r.macs)] for r in report.runs]
    body.append(sortable_table(cols, rows, table_id="bench-table"))
    for run in report.runs:
        points = [svg.Point(p.intensity, p.flops_per_s, "", "#c44e52" if p.bound == "memory"
                            else "#4c72b0", 4.0,
                            f"{p.name}: {p.intensity:.3g} FLOP/byte, "
                            f"{p.flops_per_s / 1e9:.3g} GFLOP/s ({p.bound}-bound)")
                  for p in charts.roofline_points(run)]
        busiest = sorted(points, key=lambda p: -p.y)[:6]
        points = [svg.Point(p.x, p.y, p.tip.split(":")[0] if p in busiest else "", p.color,
                            p.radius, p.tip) for p in points]
        measured = run.layer_pass is not None
        body += [f"<h2>batch {run.batch}: layers on the roofline</h2>",
                 _chart(svg.loglog_chart(
                     points, charts.Metric("intensity", "FLOP/byte", "count"),
                     charts.Metric("flops", "FLOP/s", "count"),
                     "measured FLOP/s per layer" if measured else
                     "FLOP/s the roofline allows (no --per-layer timing)",
                     roof=(roof.peak_flops, roof.bandwidth), width=760, height=460),
                     "red: memory-bound, blue: compute-bound; 1 MAC = 2 FLOPs")]
        body.append(_bench_layers(run, top))
    body += [f'<p class="note">{escape(n)}</p>' for n in report.notes]
    body.append('<p class="note">efficiency = roofline time / measured time; bytes = inputs + '
                "weights + outputs, each touched once (a lower bound on traffic)</p>")
    return page(f"bench: {report.model}", body)


def _bench_layers(run: BenchRun, top: int | None) -> str:
    per = run.layer_pass is not None
    cols = [Col("layer"), Col("kind"), Col("FLOPs", True), Col("bytes", True),
            Col("FLOP/byte", True), Col("bound"), Col("roofline ms", True)]
    if per:
        cols += [Col("measured ms", True), Col("efficiency", True)]
    layers = list(run.layers)
    if top:
        layers = sorted(layers, key=lambda r: r.measured_s or r.roof.predicted_s,
                        reverse=True)[:top]
    rows = []
    for lr in layers:
        f = lr.roof
        finite = f.intensity != float("inf")
        cells = [_cell(f.name), _cell(f.kind), _num(f.flops), _bytes(f.bytes),
                 _cell(f"{f.intensity:.3g}" if finite else "inf",
                       f.intensity if finite else None, "n"),
                 _cell(f.bound.value), _num(f.predicted_s * 1e3)]
        if per:
            cells += [_cell("" if lr.measured_s is None else f"{lr.measured_s * 1e3:.4g}",
                            None if lr.measured_s is None else lr.measured_s * 1e3, "n"),
                      _cell("" if lr.efficiency is None else f"{lr.efficiency:.0%}",
                            lr.efficiency, "n")]
        rows.append(cells)
    return sortable_table(cols, rows)


# --------------------------------------------------------------------------- sweep


def sweep_page(sweep: Sweep) -> str:
    """A sweep: each metric against the swept variable (log-log), the fitted exponents and
    every point in a sortable table."""
    from cnncost.render.sweep import LABELS, exponent_rows, failure_lines, header, shown_vars

    chart = charts.sweep_chart(sweep)
    body = [f"<h1>sweep: {escape(sweep.model)}</h1>",
            f'<p class="recipe">{escape(header(sweep))}</p>',
            f'<p class="recipe">{escape(charts.sweep_recipe(sweep))}</p>',
            f"<h2>How cost scales with {escape(chart.x_label)}</h2>"]
    x_metric = charts.Metric(chart.var, chart.x_label, "count")
    panels = []
    for metric in charts.SWEEP_METRICS:
        colors = [f"hsl({(i * 137) % 360}, 45%, 45%)" for i in range(len(chart.series))]
        points = [svg.Point(x, float(y), "", colors[i], 3.0,
                            f"{chart.var}={x:g}{', ' + s.label if s.label else ''}: "
                            f"{metric.text(y)}")
                  for i, s in enumerate(chart.series)
                  for x, y in zip(s.xs, s.ys[metric.key], strict=True)]
        lines = [(colors[i], list(zip(s.xs, s.ys[metric.key], strict=True)))
                 for i, s in enumerate(chart.series)]
        title = f"{metric.label} {chart.fit_text(metric.key)}".strip()
        panels.append(svg.loglog_chart(points, x_metric, metric, title, width=420,
                                       height=300, lines=lines))
    legend = "; ".join(f"line {i + 1}: {s.label}" for i, s in enumerate(chart.series)
                       if s.label)
    body.append(_chart("".join(panels), legend or "log-log axes: a power law is a line"))
    names = shown_vars(sweep)
    cols = [Col("#", True), *[Col(n, True) for n in names]]
    cols += [Col(m.label, True) for m in charts.SWEEP_METRICS]
    rows = []
    for r in sweep.results:
        values = dict(r.point.values)
        cells = [_num(r.point.index)]
        cells += [_cell(str(values[n]), values[n] if not isinstance(values[n], str) else None,
                        "n") for n in names]
        for m in charts.SWEEP_METRICS:
            v = getattr(r, m.key) if r.ok else None
            cells.append(_cell(m.text(v) if r.ok else "failed", v, "n",
                               f"{v:,}" if v is not None else (r.error or "")))
        rows.append(cells)
    fits = [[_cell(var), *[_cell(c, css="n") for c in cells]]
            for var, cells in exponent_rows(sweep)]
    body += ["<h2>Scaling exponents k in metric ∝ var^k</h2>",
             sortable_table([Col("variable"), *[Col(LABELS[m], True) for m in sweep.metrics]],
                            fits),
             f"<h2>{len(sweep.results)} points</h2>",
             sortable_table(cols, rows, table_id="sweep-table")]
    if sweep.failed:
        body.append('<p class="warn">' + "<br>".join(escape(line) for line in
                                                    failure_lines(sweep)) + "</p>")
    return page(f"sweep: {sweep.model}", body)

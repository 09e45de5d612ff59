"""A sweep in every format: a rich table for the terminal, JSON, CSV, Markdown and its HTML
page (each metric against the swept variable; computes nothing).

The JSON document (schema ``cnncost.sweep/1``; deterministic: same sweep, same bytes)::

    {"schema": "cnncost.sweep/1", "model": str, "source": str, "dtype": str, "policy": str,
     "engine": str | null,                 # null: the counting API's default
     "input": [C, H, W] | null,            # --input; null: the spec's own input
     "set": {name: text},                  # the fixed --set values, as given
     "axes": [{"vars": [name, ...], "values": [[value, ...], ...]}, ...],
                                           # one per swept variable or --zip group; batch last
     "baseline": index | null,             # the point ratios are against (first that counted)
     "points": [{"index": int, "vars": {name: value, ..., "batch": int}, "ok": bool,
                 "params", "macs", "flops", "activation_bytes", "peak_memory_bytes": int | null,
                 # --mode train: "mode": "train" after "policy", and the points hold "params",
                 # "macs", "backward_macs", "step_flops", "training_memory_bytes" (Adam's)
                 "ratios": {metric: float | null}, "error": str | null}, ...],
     "exponents": [{"var", "metric", "exponent": float | null, "r2": float | null,
                    "points": int, "groups": int, "moves_with": [name, ...]}, ...],
                                           # moves_with: the --zip partners of var
     "failed": int}

``points`` are in sweep order (the cartesian product of ``axes``, first axis slowest); a
failed point has null counts and its one-line error. See cnncost/sweep.py for how the
exponents are fitted.
"""

from __future__ import annotations

import io
from html import escape
from typing import TYPE_CHECKING, Any

from cnncost.fmt import human, human_bytes
from cnncost.fmt import ratio as ratio_text
from cnncost.render import charts, svg
from cnncost.render.formats import Format, csv_writer, md_line, md_text, text_as
from cnncost.render.html import Col, Wrap, cell, chart_box, num_cell, page, sortable_table
from cnncost.sweep import Exponent, PointResult, Sweep
from cnncost.table import dumps

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

SCHEMA = "cnncost.sweep/1"
FIT_TITLE = ("scaling exponents k in metric ∝ var^k (least squares on log-log, other variables "
             "fixed)")
LABELS = {"params": "params", "macs": "MACs", "flops": "FLOPs",
          "activation_bytes": "activations", "peak_memory_bytes": "peak memory",
          "backward_macs": "backward MACs", "step_flops": "step FLOPs (Adam)",
          "training_memory_bytes": "training memory (Adam)", "latency_ms": "predicted ms"}


def shown_vars(sweep: Sweep) -> list[str]:
    """The variables worth a column: those of axes with more than one step."""
    return [n for a in sweep.plan.axes if len(a.values) > 1 for n in a.names]


def _value(metric: str, n: float) -> str:
    if metric.endswith("_ms"):
        return f"{n:.3g}"
    return human_bytes(n) if metric.endswith("_bytes") else human(n)


def to_dict(sweep: Sweep) -> dict[str, Any]:
    """The JSON document (see the module docstring)."""
    job, base = sweep.job, sweep.baseline
    return {
        "schema": SCHEMA,
        "model": sweep.model,
        "source": sweep.source,
        "dtype": job.dtype,
        "policy": job.policy,
        **({"mode": job.mode} if job.mode == "train" else {}),
        "engine": job.engine,
        "input": None if job.input is None else list(job.input),
        "set": dict(sorted(job.fixed.items())),
        "axes": [{"vars": list(a.names), "values": [list(v) for v in a.values]}
                 for a in sweep.plan.axes],
        "baseline": None if base is None else base.point.index,
        "points": [_point(sweep, r) for r in sweep.results],
        "exponents": [_exponent(e) for e in sweep.exponents],
        "failed": len(sweep.failed),
    }


def _point(sweep: Sweep, r: PointResult) -> dict[str, Any]:
    d: dict[str, Any] = {"index": r.point.index, "vars": dict(r.point.values), "ok": r.ok}
    for m in sweep.metrics:
        d[m] = getattr(r, m) if r.ok else None
    d["ratios"] = {m: sweep.ratio(r, m) for m in sweep.metrics}
    d["error"] = r.error
    return d


def _exponent(e: Exponent) -> dict[str, Any]:
    return {"var": e.var, "metric": e.metric, "exponent": e.exponent, "r2": e.r2,
            "points": e.points, "groups": e.groups, "moves_with": list(e.moves_with)}


def to_json(sweep: Sweep) -> str:
    """Deterministic JSON text."""
    return dumps(to_dict(sweep))


def to_csv(sweep: Sweep) -> str:
    """One row per point: its variables, exact counts, ratios to the baseline, error."""
    buf = io.StringIO()
    w = csv_writer(buf)
    names = list(sweep.plan.names)
    w.writerow(["index", *names, "ok", *sweep.metrics, *[f"{m}_ratio" for m in sweep.metrics],
                "error"])
    for r in sweep.results:
        values = dict(r.point.values)
        ratios = [sweep.ratio(r, m) for m in sweep.metrics]
        w.writerow([r.point.index, *[values[n] for n in names], "true" if r.ok else "false",
                    *[getattr(r, m) if r.ok else "" for m in sweep.metrics],
                    *["" if x is None else f"{x:.6g}" for x in ratios], r.error or ""])
    return buf.getvalue()


def header(sweep: Sweep) -> str:
    """``resnet50  specs/resnet50.yaml  float32  policy all  17 points, 0 failed``."""
    job = sweep.job
    parts = [sweep.model, sweep.source, job.dtype, f"policy {job.policy}"]
    if job.mode == "train":
        parts.append("mode train")
    if job.engine:
        parts.append(f"engine {job.engine}")
    if job.input is not None:
        parts.append("input " + "x".join(map(str, job.input)))
    if job.fixed:
        parts.append("set " + " ".join(f"{k}={v}" for k, v in sorted(job.fixed.items())))
    parts.append(f"{len(sweep.results)} points, {len(sweep.failed)} failed")
    return "  ".join(parts)


def exponent_rows(sweep: Sweep) -> list[tuple[str, list[str]]]:
    """(variable, one cell per metric): ``2.00``, ``1.93 (r² 0.981)`` or ``-`` (no fit); a
    zipped variable is labelled with the partners that moved with it (``res (with width)``)."""
    rows: list[tuple[str, list[str]]] = []
    by_var: dict[str, dict[str, Exponent]] = {}
    for fit in sweep.exponents:
        by_var.setdefault(fit.var, {})[fit.metric] = fit
    for var, fits in by_var.items():
        partners = next(iter(fits.values())).moves_with
        label = f"{var} (with {', '.join(partners)})" if partners else var
        cells = []
        for m in sweep.metrics:
            e = fits.get(m)
            if e is None or e.exponent is None:
                cells.append("-")
                continue
            text = f"{e.exponent:.2f}"
            if e.r2 is not None and e.r2 < 0.999:  # not a clean power law: say how good a fit
                text += f" (r² {e.r2:.3f})"
            cells.append(text)
        rows.append((label, cells))
    return rows


def failure_lines(sweep: Sweep) -> list[str]:
    """``#3 res=16, batch=1: <the one-line error>`` per failed point."""
    return [f"#{r.point.index} {r.point.label()}: {r.error}" for r in sweep.failed]


def rich_sweep(sweep: Sweep) -> Group:
    """The sweep for the terminal: one row per point, then the exponents and the failures."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAVY, padding=(0, 1), pad_edge=False)
    names = shown_vars(sweep)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    for n in names:
        table.add_column(n, justify="right", no_wrap=True)
    for m in sweep.metrics:
        table.add_column(LABELS[m], justify="right", no_wrap=True)
        table.add_column("x", justify="right", no_wrap=True, style="dim")
    for r in sweep.results:
        values = dict(r.point.values)
        cells = [str(r.point.index), *[str(values[n]) for n in names]]
        for m in sweep.metrics:
            if r.ok:
                cells += [_value(m, getattr(r, m)), ratio_text(sweep.ratio(r, m))]
            else:
                cells += ["failed" if m == sweep.metrics[0] else "-", "-"]
        table.add_row(*cells)
    parts: list[Any] = [_lines([header(sweep)]), table]
    base = sweep.baseline
    if base is not None:
        parts.append(Text(f"x = ratio to point #{base.point.index} ({base.point.label()})",
                          style="dim"))
    if sweep.exponents:
        parts += [Text(f"\n{FIT_TITLE}:"), _rich_exponents(sweep)]
    if sweep.failed:
        parts.append(_lines(["failed points:", *("  " + s for s in failure_lines(sweep))],
                            style="red"))
    return Group(*parts)


def _lines(lines: list[str], style: str = "") -> Table:
    """Lines that are never folded or cut (an error is one line to copy): a one-column grid,
    so the console is widened to fit it like the tables."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid()
    grid.add_column(no_wrap=True)
    for line in lines:
        grid.add_row(Text(line, style=style))
    return grid


def _rich_exponents(sweep: Sweep) -> Table:
    from rich import box
    from rich.table import Table

    fits = Table(box=box.SIMPLE, padding=(0, 1), pad_edge=False)
    fits.add_column("var", no_wrap=True)
    for m in sweep.metrics:
        fits.add_column(LABELS[m], justify="right", no_wrap=True)
    for var, cells in exponent_rows(sweep):
        fits.add_row(var, *cells)
    return fits


def to_markdown(sweep: Sweep) -> str:
    """Markdown: the points (exact counts, ratio in parentheses), exponents, failures."""
    names = shown_vars(sweep)
    head = ["#", *names, *[LABELS[m] for m in sweep.metrics]]
    lines = [md_line(header(sweep)), "", "| " + " | ".join(head) + " |",
             "|" + "---:|" * len(head)]
    for r in sweep.results:
        values = dict(r.point.values)
        cells = [str(r.point.index), *[md_text(str(values[n])) for n in names]]
        for m in sweep.metrics:
            cells.append(f"{getattr(r, m):,} ({ratio_text(sweep.ratio(r, m))})" if r.ok
                         else "failed")
        lines.append("| " + " | ".join(cells) + " |")
    base = sweep.baseline
    if base is not None:
        lines += ["", f"Ratios are relative to point #{base.point.index} "
                      f"({base.point.label()})."]
    rows = exponent_rows(sweep)
    if rows:
        lines += ["", f"{FIT_TITLE[0].upper()}{FIT_TITLE[1:]}:", "",
                  "| var | " + " | ".join(LABELS[m] for m in sweep.metrics) + " |",
                  "|---|" + "---:|" * len(sweep.metrics)]
        lines += ["| " + " | ".join([var, *cells]) + " |" for var, cells in rows]
    if sweep.failed:
        lines += ["", "Failed points:", ""] + [f"- {s}" for s in failure_lines(sweep)]
    return "\n".join(lines) + "\n"


def render_text(sweep: Sweep, fmt: Format) -> str:
    """The machine-readable renderings (json, csv, md) and the html page."""
    return text_as(fmt, json=lambda: to_json(sweep), csv=lambda: to_csv(sweep),
                   md=lambda: to_markdown(sweep), html=lambda: sweep_page(sweep))


# --------------------------------------------------------------------------- HTML


def sweep_page(sweep: Sweep, wrap: Wrap = page) -> str:
    """A sweep: each metric against the swept variable (log-log), the fitted exponents and
    every point in a sortable table."""
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
    body.append(chart_box("".join(panels), legend or "log-log axes: a power law is a line"))
    names = shown_vars(sweep)
    cols = [Col("#", True), *[Col(n, True) for n in names]]
    cols += [Col(m.label, True) for m in charts.SWEEP_METRICS]
    rows = []
    for r in sweep.results:
        values = dict(r.point.values)
        cells = [num_cell(r.point.index)]
        cells += [cell(str(values[n]), values[n] if not isinstance(values[n], str) else None,
                        "n") for n in names]
        for m in charts.SWEEP_METRICS:
            v = getattr(r, m.key) if r.ok else None
            cells.append(cell(m.text(v) if r.ok else "failed", v, "n",
                               f"{v:,}" if v is not None else (r.error or "")))
        rows.append(cells)
    fits = [[cell(var), *[cell(c, css="n") for c in cells]]
            for var, cells in exponent_rows(sweep)]
    body += ["<h2>Scaling exponents k in metric ∝ var^k</h2>",
             sortable_table([Col("variable"), *[Col(LABELS[m], True) for m in sweep.metrics]],
                            fits),
             f"<h2>{len(sweep.results)} points</h2>",
             sortable_table(cols, rows, table_id="sweep-table")]
    if sweep.failed:
        body.append('<p class="warn">' + "<br>".join(escape(line) for line in
                                                    failure_lines(sweep)) + "</p>")
    return wrap(f"sweep: {sweep.model}", body)

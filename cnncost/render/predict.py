"""Renderings of a latency prediction (cnncost.predict.model) and of a calibration's summary:
rich tables, CSV and Markdown. The JSON document is ``Prediction.to_dict()``. No torch."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from cnncost.fmt import human, percent, shape
from cnncost.render.formats import Format, csv_writer, md_text, text_as

if TYPE_CHECKING:
    from rich.console import RenderableType

    from cnncost.predict.calibration import Calibration
    from cnncost.predict.model import LayerPrediction, Prediction
    from cnncost.predict.versus import Versus
    from cnncost.render.html import Wrap


def _ms(x: float) -> str:
    return f"{x:.3f}" if x >= 0.01 or x == 0 else f"{x:.2g}"


def calibration_line(cal: Calibration) -> str:
    """Which calibration: machine, threads, torch, when, under what load, how many samples."""
    threads = f", {cal.threads} threads" if cal.device == "cpu" else ""
    load = "" if cal.load_avg is None else f", load {cal.load_avg:.2f}"
    return (f"calibration: {cal.device} [{cal.device_name}]{threads}, {cal.dtype}, torch "
            f"{cal.torch_version}; {cal.sample_count} kernels timed {cal.measured_at}{load}")


def total_line(p: Prediction) -> str:
    """The whole model's prediction, its uncertainty and what is outside the calibration."""
    out = len(p.outside)
    outside = (f"; {out} of {len(p.layers)} layers outside the calibrated range (marked *)"
               if out else "")
    basis = ("held-out error on the calibration's networks"
             if p.calibration.context.get("error") is not None
             else "held-out kernel error, time-weighted")
    return (f"predicted {_ms(p.latency_ms)} ms ± {percent(p.uncertainty)} ({basis}) = layers "
            f"{_ms(p.layers_ms)} ms + model call {_ms(p.overhead_ms)} ms; "
            f"{human(p.macs)}MACs{outside}")


def header_lines(p: Prediction) -> list[str]:
    return [f"{p.model} ({p.source}), input {shape(p.input)}, {p.dtype}: latency predicted "
            "from the calibration, not measured", calibration_line(p.calibration),
            total_line(p)]


def _rows(p: Prediction, top: int | None) -> list[LayerPrediction]:
    rows = list(p.layers)
    if top:
        rows = sorted(rows, key=lambda r: r.latency_ms, reverse=True)[:top]
    return rows


def rich_prediction(p: Prediction, top: int | None = None) -> RenderableType:
    """Header lines and one row per layer: class, predicted ms, share, uncertainty."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    title = "layers, slowest first" + f" (top {top})" if top else "layers"
    t = Table(box=box.SIMPLE_HEAVY, title=title, title_justify="left", show_footer=True)
    t.add_column("layer", footer="total")
    t.add_column("kind")
    t.add_column("op class")
    t.add_column("ms", justify="right", footer=_ms(p.latency_ms))
    t.add_column("share", justify="right", footer="100%")
    t.add_column("±", justify="right", footer=percent(p.uncertainty))
    for r in _rows(p, top):
        t.add_row(r.name + ("" if r.in_range else " *"), r.kind, r.op_class,
                  _ms(r.latency_ms), percent(p.share(r)), percent(r.uncertainty))
    parts: list[Any] = [Text(line) for line in header_lines(p)]
    parts.append(t)
    notes = [f"* {r.name}: {r.note}" for r in _rows(p, top) if r.note]
    parts.extend(Text(n) for n in notes[:20])
    if len(notes) > 20:
        parts.append(Text(f"... and {len(notes) - 20} more (see --format json)"))
    return Group(*parts)


CSV_FIELDS = ("name", "kind", "op_class", "latency_ms", "share", "uncertainty", "in_range",
              "note")


def to_csv(p: Prediction, top: int | None = None) -> str:
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(CSV_FIELDS)
    for r in _rows(p, top):
        w.writerow([r.name, r.kind, r.op_class, f"{r.latency_ms:.6g}", f"{p.share(r):.4g}",
                    f"{r.uncertainty:.3g}", r.in_range, r.note])
    return buf.getvalue()


def to_markdown(p: Prediction, top: int | None = None) -> str:
    lines = [f"{line}  " for line in header_lines(p)]
    lines += ["", "| layer | kind | op class | ms | share | ± |", "|---|---|---|---:|---:|---:|"]
    for r in _rows(p, top):
        mark = "" if r.in_range else " \\*"
        lines.append(f"| {md_text(r.name)}{mark} | {md_text(r.kind)} | {r.op_class} | "
                     f"{_ms(r.latency_ms)} | "
                     f"{percent(p.share(r))} | {percent(r.uncertainty)} |")
    lines.append(f"| **total** | | | **{_ms(p.latency_ms)}** | 100% | "
                 f"{percent(p.uncertainty)} |")
    notes = [f"\\* {md_text(r.name)}: {md_text(r.note)}" for r in _rows(p, top) if r.note]
    return "\n".join(lines + ([""] + [f"{n}  " for n in notes] if notes else [])) + "\n"


def to_json(p: Prediction) -> str:
    return json.dumps(p.to_dict(), indent=1, allow_nan=False) + "\n"


def render_text(p: Prediction, fmt: Format, top: int | None = None) -> str:
    """Every text format of a prediction: json (every layer), csv, md and the html page."""
    return text_as(fmt, json=lambda: to_json(p), csv=lambda: to_csv(p, top),
                   md=lambda: to_markdown(p, top), html=lambda: prediction_page(p))


def rich_calibration(cal: Calibration, path: str) -> RenderableType:
    """Per op class: kernels timed, the fit kept, its held-out error (and the baseline's)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.SIMPLE_HEAVY, title="op classes: held-out error on kernels the fit did "
              "not see", title_justify="left")
    for name, justify in (("op class", "left"), ("kernels", "right"), ("fit", "left"),
                          ("median", "right"), ("p90", "right"), ("baseline p90", "right")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name, fitted in cal.classes.items():
        t.add_row(name, str(fitted["samples"]), fitted["method"],
                  percent(fitted["error"]["median"]), percent(fitted["error"]["p90"]),
                  percent(fitted["baseline_error"]["p90"]))
    trees = cal.trees or "no trees (install cnncost[predict] for scikit-learn)"
    load = "" if cal.load_avg_after is None else f", load after {cal.load_avg_after:.2f}"
    return Group(Text(calibration_line(cal)),
                 Text(f"{cal.elapsed_s:.0f} s of a {cal.budget_s:.0f} s budget{load}; fit: "
                      f"baseline a + b x MACs + c x bytes per class, {trees}; model call "
                      f"{cal.overhead_s * 1e6:.1f} us"),
                 t, Text(context_line(cal)), Text(f"saved {path}"))


def context_line(cal: Calibration) -> str:
    """What the random networks say: a layer in context, and the held-out error."""
    ctx = cal.context
    n = len(ctx["networks"])
    if ctx.get("error") is None:
        return (f"{n} random networks timed: too few to fit a layer in context; a layer is "
                "its isolated prediction")
    iso = ctx.get("isolated_error") or {}
    return (f"{n} random networks: a layer in a model = {ctx['scale']:.3f} x its isolated "
            f"time + {ctx['per_layer_s'] * 1e6:.2f} us; whole-network held-out error median "
            f"{percent(ctx['error']['median'])}, p90 {percent(ctx['error']['p90'])} "
            f"(isolated sums: median {percent(iso.get('median'))}, p90 "
            f"{percent(iso.get('p90'))})")


# --------------------------------------------------------------------------- bench --predict


def versus_lines(v: Versus) -> list[str]:
    """Per batch: measured and predicted whole-model latency and their ratio."""
    out = []
    for run, p in v.pairs():
        measured = run.timing.median_s * 1e3
        out.append(f"batch {run.batch}: measured {_ms(measured)} ms (median), predicted "
                   f"{_ms(p.latency_ms)} ms ± {percent(p.uncertainty)}: predicted / measured "
                   f"{p.latency_ms / measured:.3f}" + (f"; {len(p.outside)} layers outside "
                                                       "the calibrated range" if p.outside
                                                       else ""))
    return out


def _versus_rows(run: Any, p: Prediction, top: int | None) -> list[tuple[str, str, float,
                                                                        float]]:
    by_name = {lp.name: lp for lp in p.layers}
    rows = [(r.roof.name, r.roof.kind, (r.measured_s or 0.0) * 1e3,
             by_name[r.roof.name].latency_ms if r.roof.name in by_name else 0.0)
            for r in run.layers]
    if top:
        rows = sorted(rows, key=lambda r: r[2], reverse=True)[:top]
    return rows


def rich_versus(v: Versus, top: int | None = None) -> RenderableType:
    """The benchmark's header, then per batch the whole model and each layer, measured beside
    predicted."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cnncost.render.bench import header_lines as bench_header

    parts: list[Any] = [Text(line) for line in bench_header(v.report)]
    parts.append(Text(calibration_line(v.predictions[0].calibration)))
    for (run, p), line in zip(v.pairs(), versus_lines(v), strict=True):
        parts.append(Text(line))
        t = Table(box=box.SIMPLE_HEAVY, title=f"batch {run.batch}: layers, measured and "
                  "predicted" + (f" (top {top})" if top else ""), title_justify="left")
        for name, justify in (("layer", "left"), ("kind", "left"), ("measured ms", "right"),
                              ("predicted ms", "right"), ("pred/meas", "right")):
            t.add_column(name, justify=justify)  # type: ignore[arg-type]
        for name, kind, measured, predicted in _versus_rows(run, p, top):
            t.add_row(name, kind, _ms(measured), _ms(predicted),
                      f"{predicted / measured:.2f}" if measured else "-")
        parts.append(t)
    return Group(*parts)


def versus_json(v: Versus) -> str:
    """The bench document with the predictions (non-finite figures as null, as bench's)."""
    from cnncost.measure.bench import finite_json

    return finite_json(v.to_dict())


# --------------------------------------------------------------------------- HTML


def prediction_page(p: Prediction, wrap: Wrap | None = None) -> str:
    """One self-contained page: the prediction's header and its layers (sortable)."""
    from html import escape

    from cnncost.render.html import Col, cell, num_cell, page, sortable_table

    body = [f"<h1>predict: {escape(p.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in header_lines(p)]
    cols = [Col("layer"), Col("kind"), Col("op class"), Col("predicted ms", True),
            Col("share", True), Col("±", True), Col("note")]
    rows = [[cell(r.name), cell(r.kind), cell(r.op_class), num_cell(r.latency_ms),
             cell(percent(p.share(r)), p.share(r), "n"),
             cell(percent(r.uncertainty), r.uncertainty, "n"), cell(r.note)]
            for r in p.layers]
    body.append(sortable_table(cols, rows, table_id="predict-table"))
    return (wrap or page)(f"predict: {p.model}", body)


def versus_page(v: Versus, wrap: Wrap | None = None) -> str:
    """bench --predict as a page: per batch the whole model measured and predicted, a log-log
    chart of every layer's predicted against measured time (the diagonal is a perfect
    prediction), and the layers (sortable)."""
    from html import escape

    from cnncost.render import charts, svg
    from cnncost.render.bench import header_lines as bench_header
    from cnncost.render.html import Col, cell, chart_box, num_cell, page, sortable_table

    body = [f"<h1>bench --predict: {escape(v.report.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in bench_header(v.report)]
    body.append(f'<p class="recipe">{escape(calibration_line(v.predictions[0].calibration))}'
                "</p>")
    body += [f"<p>{escape(line)}</p>" for line in versus_lines(v)]
    for run, p in v.pairs():
        rows = _versus_rows(run, p, None)
        points = [svg.Point(meas, pred, "", "#4c72b0", 3.5,
                            f"{name} ({kind}): measured {_ms(meas)} ms, predicted "
                            f"{_ms(pred)} ms") for name, kind, meas, pred in rows
                  if meas > 0 and pred > 0]
        span = [x for pt in points for x in (pt.x, pt.y)] or [1.0]
        diagonal = [(min(span) / 2, min(span) / 2), (max(span) * 2, max(span) * 2)]
        ms = charts.Metric("ms", "measured ms", "ms")
        body += [f"<h2>batch {run.batch}: each layer, predicted against measured</h2>",
                 chart_box(svg.loglog_chart(points, ms, charts.Metric("ms", "predicted ms", "ms"),
                                         "predicted vs measured per layer", width=640,
                                         height=460, lines=[("#999", diagonal)]),
                        "on the grey diagonal the prediction equals the measurement")]
        cols = [Col("layer"), Col("kind"), Col("measured ms", True), Col("predicted ms", True),
                Col("pred/meas", True)]
        body.append(sortable_table(cols, [
            [cell(name), cell(kind), num_cell(meas), num_cell(pred),
             cell(f"{pred / meas:.2f}" if meas else "-", pred / meas if meas else None, "n")]
            for name, kind, meas, pred in rows]))
    return (wrap or page)(f"bench --predict: {v.report.model}", body)

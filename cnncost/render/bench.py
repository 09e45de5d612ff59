"""A benchmark (cnncost.measure.bench) in every format: rich tables, CSV, Markdown and its
HTML page (each batch's layers on the roofline).

The JSON document is ``BenchReport.to_json()`` (a result, not a rendering). No torch.
"""

from __future__ import annotations

import io
import math
from html import escape
from typing import TYPE_CHECKING, Any

from cnncost.fmt import human, human_bytes, ms, percent
from cnncost.render import charts, svg
from cnncost.render.formats import Format, csv_writer, md_code, md_text, text_as
from cnncost.render.html import (
    Col,
    Wrap,
    bytes_cell,
    cell,
    chart_box,
    num_cell,
    page,
    sortable_table,
)

if TYPE_CHECKING:
    from cnncost.measure.bench import BenchReport, BenchRun, LayerResult
    from cnncost.measure.roofline import Roofline


def _mflops(flops: int) -> str:
    return f"{flops / 1e6:.2f}" if flops >= 1e4 or flops == 0 else f"{flops / 1e6:.2g}"


def _intensity(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def roofline_line(roof: Roofline) -> str:
    """One line describing the machine's roofline and where it came from."""
    origin = "cached" if roof.from_cache else "measured now"
    load = "" if roof.load_avg is None else f", load {roof.load_avg:.2f}"
    return (f"roofline ({origin} {roof.measured_at}{load}): peak "
            f"{roof.peak_flops / 1e9:.1f} GFLOP/s (matmul n={roof.matmul_n}), bandwidth "
            f"{roof.bandwidth / 1e9:.1f} GB/s (copy "
            f"{human_bytes(roof.copy_bytes)}), ridge {roof.ridge:.2f} FLOP/byte")


def header_lines(report: BenchReport) -> list[str]:
    """What ran where (model, device, threads, dtype, flags, torch) and the roofline."""
    flags = [f for f, on in (("channels-last", report.channels_last),
                             ("torch.compile", report.compiled)) if on]
    threads = f", {report.threads} threads" if report.device == "cpu" else ""
    ort = getattr(report, "ort_version", "")
    return [
        f"{report.model} ({report.source}) on {report.device} [{report.device_name}]"
        f"{threads}, {report.dtype}{', ' + ', '.join(flags) if flags else ''}, "
        f"torch {report.torch_version}" + (f", onnxruntime {ort}" if ort else ""),
        roofline_line(report.roofline),
    ]


def _runtimes(report: BenchReport) -> bool:
    """Whether the runs name their runtime (any is not torch's)."""
    return any(r.runtime != "torch" for r in report.runs)


def _roofline_runs(report: BenchReport) -> list[BenchRun]:
    """The runs whose layers are shown: one per batch (the layers' roofline figures are the
    same on every runtime; only torch measures them per layer)."""
    seen: set[int] = set()
    out = []
    for r in report.runs:
        if r.batch not in seen:
            seen.add(r.batch)
            out.append(r)
    return out


def _sorted_layers(run: BenchRun, top: int | None) -> list[LayerResult]:
    rows = list(run.layers)
    if top:
        key = (lambda r: r.measured_s or 0.0) if run.layer_pass else (
            lambda r: r.roof.predicted_s)
        rows = sorted(rows, key=key, reverse=True)[:top]
    return rows


def _layer_sum_note(r: BenchRun) -> str:
    assert r.layer_sum_s is not None and r.layer_whole is not None
    paired = r.layer_whole.median_s
    cpu, cpu_sum = r.layer_whole.cpu_median_s, r.layer_cpu_sum_s
    text = (f"batch {r.batch}: per-layer medians sum to {ms(r.layer_sum_s)} ms wall, "
            f"{100 * (r.layer_sum_s / paired - 1):+.1f}% vs the eager whole model timed between "
            f"the per-layer passes ({ms(paired)} ms)")
    if cpu and cpu_sum is not None:
        text += (f"; in CPU time {ms(cpu_sum)} ms vs {ms(cpu)} ms "
                 f"({100 * (cpu_sum / cpu - 1):+.1f}%)")
    return text


# --------------------------------------------------------------------------- terminal


def rich_report(report: BenchReport, top: int | None = None) -> Any:
    """Summary table (one row per batch) and each batch's per-layer roofline table."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text("\n".join(header_lines(report)), style="bold"),
                        _summary_table(report)]
    for r in _roofline_runs(report):
        parts.append(_layers_table(r, top))
        if r.layer_pass is not None and r.layer_sum_s:
            parts.append(Text(_layer_sum_note(r), style="dim"))
    parts.extend(Text(n, style="dim") for n in report.notes)
    parts.append(Text(
        "efficiency = roofline time / measured time; bytes = inputs + weights + outputs, "
        "each touched once (a lower bound on traffic)", style="dim"))
    return Group(*parts)


def _summary_table(report: BenchReport) -> Any:
    from rich import box
    from rich.table import Table

    summary = Table(box=box.SIMPLE_HEAVY, title="whole model", title_justify="left")
    named = _runtimes(report)
    if named:
        summary.add_column("runtime")
    for col in ("batch", "median ms", "IQR ms", "IQR/med", "min ms", "CPU ms", "samples",
                "images/s",
                "GFLOP/s", "% peak", "roofline ms", "MACs-only ms", "MACs", "memory est."):
        summary.add_column(col, justify="right")
    for r in report.runs:
        summary.add_row(*([r.runtime] if named else []), str(r.batch), ms(r.timing.median_s),
                        ms(r.timing.iqr_s),
                        percent(r.timing.rel_iqr), ms(r.timing.min_s), ms(r.timing.cpu_median_s),
                        f"{len(r.timing.samples_s)}x{r.timing.number}",
                        f"{r.images_per_s:.1f}", f"{r.achieved_flops / 1e9:.1f}",
                        percent(r.achieved_flops / report.roofline.peak_flops),
                        ms(r.predicted_s), ms(r.compute_only_s), human(r.macs),
                        human_bytes(r.memory.required_bytes))
    return summary


def _layers_table(r: BenchRun, top: int | None) -> Any:
    from rich import box
    from rich.table import Table

    from cnncost.measure.roofline import Bound

    per = r.layer_pass is not None
    title = f"batch {r.batch}: layers on the roofline" + (f" (top {top})" if top else "")
    t = Table(box=box.SIMPLE_HEAVY, title=title, title_justify="left", show_footer=True)
    t.add_column("layer", footer="total")
    t.add_column("kind")
    t.add_column("MFLOPs", justify="right", footer=_mflops(r.flops))
    t.add_column("bytes", justify="right", footer=human_bytes(r.bytes))
    t.add_column("FLOP/B", justify="right", footer=_intensity(r.flops / r.bytes)
                 if r.bytes else "")
    t.add_column("bound", footer=f"{len(r.memory_bound())} mem")
    t.add_column("roofline ms", justify="right", footer=ms(r.predicted_s))
    if per:
        t.add_column("measured ms", justify="right", footer=ms(r.layer_sum_s))
        t.add_column("efficiency", justify="right",
                     footer=percent(r.predicted_s / r.layer_sum_s) if r.layer_sum_s else "")
    for lr in _sorted_layers(r, top):
        row = [lr.roof.name, lr.roof.kind, _mflops(lr.roof.flops),
               human_bytes(lr.roof.bytes), _intensity(lr.roof.intensity),
               lr.roof.bound.value, ms(lr.roof.predicted_s)]
        if per:
            row += [ms(lr.measured_s), percent(lr.efficiency)]
        t.add_row(*row, style="yellow" if lr.roof.bound is Bound.MEMORY else None)
    return t


# --------------------------------------------------------------------------- csv, markdown


CSV_FIELDS = ("batch", "layer", "kind", "macs", "flops", "bytes", "intensity", "bound",
              "roofline_ms", "measured_ms", "efficiency", "iqr_ms", "images_per_s",
              "achieved_gflops", "cpu_ms", "runtime")


def to_csv(report: BenchReport) -> str:
    """One row per batch and layer, plus a '(model)' row per batch (and runtime) with the
    whole-model time; the layers' rows once per batch."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(CSV_FIELDS)
    shown = {id(r) for r in _roofline_runs(report)}
    for r in report.runs:
        w.writerow([r.batch, "(model)", "total", r.macs, r.flops, r.bytes,
                    f"{r.flops / r.bytes:.4g}" if r.bytes else "", "",
                    f"{r.predicted_s * 1e3:.6g}", f"{r.timing.median_s * 1e3:.6g}",
                    f"{r.predicted_s / r.timing.median_s:.4g}",
                    f"{r.timing.iqr_s * 1e3:.6g}", f"{r.images_per_s:.6g}",
                    f"{r.achieved_flops / 1e9:.6g}",
                    "" if r.timing.cpu_median_s is None else f"{r.timing.cpu_median_s * 1e3:.6g}",
                    r.runtime])
        if id(r) not in shown:
            continue
        for lr in r.layers:
            f = lr.roof
            w.writerow([r.batch, f.name, f.kind, f.macs, f.flops, f.bytes,
                        "" if math.isinf(f.intensity) else f"{f.intensity:.4g}", f.bound.value,
                        f"{f.predicted_s * 1e3:.6g}",
                        "" if lr.measured_s is None else f"{lr.measured_s * 1e3:.6g}",
                        "" if lr.efficiency is None else f"{lr.efficiency:.4g}", "", "", "", "",
                        r.runtime])
    return buf.getvalue()


def _md_summary(report: BenchReport) -> list[str]:
    """The whole-model rows in Markdown (a runtime column where a run is not torch's)."""
    named = _runtimes(report)
    lines = [("| runtime " if named else "") + "| batch | median ms | IQR ms | IQR/median | "
             "images/s | GFLOP/s | roofline ms | MACs |",
             ("|---" if named else "") + "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.runs:
        lines.append((f"| {r.runtime} " if named else "")
                     + f"| {r.batch} | {ms(r.timing.median_s)} | {ms(r.timing.iqr_s)} | "
                     f"{percent(r.timing.rel_iqr)} | {r.images_per_s:.1f} | "
                     f"{r.achieved_flops / 1e9:.1f} | {ms(r.predicted_s)} | {r.macs:,} |")
    return lines


def to_markdown(report: BenchReport, top: int | None = None) -> str:
    """The summary and per-layer tables in Markdown."""
    lines = [f"# bench: {md_text(report.model)}", "",
             *[f"- {md_text(h)}" for h in header_lines(report)],
             *[f"- {md_text(n)}" for n in report.notes], "",
             *_md_summary(report)]
    for r in _roofline_runs(report):
        per = r.layer_pass is not None
        lines += ["", f"## batch {r.batch}", "",
                  "| layer | kind | FLOPs | bytes | FLOP/B | bound | roofline ms |"
                  + (" measured ms | efficiency |" if per else ""),
                  "|---|---|---:|---:|---:|---|---:|" + ("---:|---:|" if per else "")]
        for lr in _sorted_layers(r, top):
            f = lr.roof
            extra = f" {ms(lr.measured_s)} | {percent(lr.efficiency)} |" if per else ""
            lines.append(f"| {md_code(f.name)} | {md_text(f.kind)} | {f.flops:,} | {f.bytes:,} | "
                         f"{_intensity(f.intensity)} | {f.bound.value} | "
                         f"{ms(f.predicted_s)} |{extra}")
        if per and r.layer_sum_s:
            lines += ["", _layer_sum_note(r)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML


def bench_page(report: BenchReport, top: int | None = None, wrap: Wrap = page) -> str:
    """Measured times per batch, and each batch's layers on the machine's roofline."""
    roof = report.roofline
    body = [f"<h1>bench: {escape(report.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in header_lines(report)]
    cols = [Col("batch", True), Col("median ms", True), Col("IQR ms", True),
            Col("images/s", True), Col("GFLOP/s", True), Col("% of peak", True),
            Col("roofline ms", True), Col("MACs", True)]
    rows = [[num_cell(r.batch), num_cell(r.timing.median_s * 1e3), num_cell(r.timing.iqr_s * 1e3),
             num_cell(r.images_per_s), num_cell(r.achieved_flops / 1e9),
             num_cell(100 * r.achieved_flops / roof.peak_flops), num_cell(r.predicted_s * 1e3),
             num_cell(r.macs)] for r in report.runs]
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
                 chart_box(svg.loglog_chart(
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
    return wrap(f"bench: {report.model}", body)


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
        cells = [cell(f.name), cell(f.kind), num_cell(f.flops), bytes_cell(f.bytes),
                 cell(f"{f.intensity:.3g}" if finite else "inf",
                       f.intensity if finite else None, "n"),
                 cell(f.bound.value), num_cell(f.predicted_s * 1e3)]
        if per:
            cells += [cell("" if lr.measured_s is None else f"{lr.measured_s * 1e3:.4g}",
                            None if lr.measured_s is None else lr.measured_s * 1e3, "n"),
                      cell("" if lr.efficiency is None else f"{lr.efficiency:.0%}",
                            lr.efficiency, "n")]
        rows.append(cells)
    return sortable_table(cols, rows)


# --------------------------------------------------------------------------- every format


def render_text(report: BenchReport, fmt: Format, top: int | None = None) -> str:
    """Every text format of a benchmark: json (every layer), csv, md and the html page."""
    return text_as(fmt, json=report.to_json, csv=lambda: to_csv(report),
                   md=lambda: to_markdown(report, top), html=lambda: bench_page(report, top))

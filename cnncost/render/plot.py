"""The lecture's charts as PNG, SVG or PDF, drawn with matplotlib (``cnncost[plot]``).

matplotlib is imported inside the functions that draw, so importing this module (and
``cnncost --help``) costs nothing. Figures are made with ``matplotlib.figure.Figure``
directly, never through pyplot: no GUI backend and no global state, and PNG is rendered by
Agg. What each chart shows is decided in :mod:`cnncost.render.charts` from the same
CostTables and Comparisons the text tables print; nothing here counts.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.compare import Comparison
from cnncost.errors import UsageError
from cnncost.render import charts
from cnncost.table import CostTable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from cnncost.measure.bench import BenchReport
    from cnncost.plotting import PlotData
    from cnncost.sweep import Sweep


class Scale(str, Enum):
    """Value axes: linear, log, or log only where a linear axis would hide most bars."""

    AUTO = "auto"
    LINEAR = "linear"
    LOG = "log"


IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
DPI = 110
_TITLE = 13
_SMALL = 8


def image_format(path: Path) -> str:
    """'png', 'svg' or 'pdf' from a file name; UsageError for anything else."""
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        page = ("; an HTML page (tables and charts) is cnncost analyze MODEL --format html "
                f"--output {path} (compare, sweep and bench too)"
                if path.suffix.lower() in (".html", ".htm") else "")
        raise UsageError(f"{path}: cannot write a {path.suffix or 'suffix-less'} image; "
                         f"expected a file name ending in .png, .svg or .pdf{page}")
    return fmt


def require_matplotlib() -> None:
    """UsageError naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("plotting needs matplotlib: pip install 'cnncost[plot]'") from None


def _figure(width: float, height: float) -> Figure:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure as file bytes; no creation date in SVG or PDF, so the same chart is the
    same bytes."""
    import matplotlib

    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    buf = io.BytesIO()
    _literal_texts(fig)
    with matplotlib.rc_context({"svg.hashsalt": "cnncost", "svg.fonttype": "path",
                                "text.parse_math": False}):
        fig.savefig(buf, format=fmt, metadata=metadata, dpi=DPI)
    return buf.getvalue()


def _literal_texts(fig: Figure) -> None:
    """Every text of the figure as cnncost prints text anywhere (console.literal): control
    characters and lone surrogates shown escaped (a font cannot draw "\\ud800": matplotlib
    raised), and never mathtext (text.parse_math off: a "$" in a name is a dollar sign). The
    one place user text (names, labels, titles, tick labels) meets matplotlib."""
    from matplotlib.text import Text
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    from cnncost.render.console import literal

    def literally(func: Any) -> Any:
        return lambda x, pos=None: literal(str(func(x, pos)))

    for ax in fig.axes:  # tick labels are drawn from their formatter (set_xticks' labels too)
        for axis in (ax.xaxis, ax.yaxis):
            for formatter in (axis.get_major_formatter(), axis.get_minor_formatter()):
                if isinstance(formatter, FixedFormatter):
                    formatter.seq = [literal(str(s)) for s in formatter.seq]
                elif isinstance(formatter, FuncFormatter):
                    formatter.func = literally(formatter.func)
    for text in fig.findobj(Text):
        text.set_parse_math(False)  # (the rc_context covers the ticks made while drawing)
        shown = text.get_text()
        if shown != literal(shown):
            text.set_text(literal(shown))


def _log(scale: Scale, values: Sequence[float]) -> bool:
    if scale is Scale.AUTO:
        return charts.log_scale(values)
    return scale is Scale.LOG and any(v > 0 for v in values)


def _axis_formatter(metric: charts.Metric) -> Any:
    from matplotlib.ticker import FuncFormatter

    def tick(v: float, _pos: Any) -> str:
        if v <= 0:
            return "0"
        if metric.unit == "bytes":  # round binary multiples: '1 MiB', not '1e+03 KiB'
            for power, prefix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
                if v >= 1024 ** power:
                    return f"{v / 1024 ** power:g} {prefix}"
            return f"{v:g} B"
        return metric.text(v)

    return FuncFormatter(tick)


def _format_axis(axis: Any, metric: charts.Metric, top: float, log: bool) -> None:
    """Ticks in the metric's unit; byte axes tick at round binary multiples (1 MiB, not
    0.95 MiB), counts at round decimal ones."""
    from matplotlib.ticker import LogLocator, MultipleLocator, NullFormatter

    axis.set_major_formatter(_axis_formatter(metric))
    if log:
        # A short log axis gets ticks at 1-2-5 (counts) or powers of 2 (bytes); a long one
        # at decades (or powers of 1024): a few labelled ticks, never scientific notation.
        low, high = (max(v, 1e-300) for v in axis.get_view_interval())
        span = math.log10(max(high / low, 1.0))
        if metric.unit == "bytes":
            axis.set_major_locator(LogLocator(base=2 if span < 4 else 1024))
        elif span < 3:
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
        return
    if metric.unit != "bytes" or top <= 0:
        return
    unit = 1024 ** max(0, min(4, int(math.log(top, 1024))))
    axis.set_major_locator(MultipleLocator(charts.nice_step(top / unit / 5) * unit))


def _titles(fig: Figure, title: str, subtitle: str) -> None:
    """Title and subtitle, the subtitle wrapped to the figure's width (never cut off)."""
    import textwrap

    chars = int(fig.get_size_inches()[0] * 8.5)  # about 8.5 characters per inch at 13 pt
    lines: list[str] = []
    for part in subtitle.split("; "):  # break between clauses where one can
        if lines and len(lines[-1]) + 2 + len(part) <= chars:
            lines[-1] += "; " + part
        else:
            lines += textwrap.wrap(part, chars, break_on_hyphens=False)
    fig.suptitle("\n".join([title, *lines]), fontsize=_TITLE, linespacing=1.6)


def _legend(fig: Figure, categories: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    present = [c for c in charts.COLORS if c in categories]
    handles = [Patch(color=charts.COLORS[c], label=c) for c in present]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)


# --------------------------------------------------------------------------- layers


def layers_figure(table: CostTable, depth: int | None = None,
                  scale: Scale = Scale.AUTO) -> Figure:
    """The lecture's AlexNet figure for any model: activation memory, parameters and MACs
    per layer (or block) in three aligned panels, each bar labelled with its share."""
    bars = charts.layer_bars(table, depth)
    n = len(bars.labels)
    fig = _figure(14, max(4.0, 0.27 * n + 2.2))
    axes = fig.subplots(1, len(charts.LAYER_METRICS), sharey=True)
    ys = list(range(n))
    colors = [charts.COLORS[c] for c in bars.categories]
    for ax, metric in zip(axes, charts.LAYER_METRICS, strict=True):
        values = bars.values[metric.key]
        log = _log(scale, values)
        ax.barh(ys, [v if v > 0 or not log else math.nan for v in values], color=colors,
                height=0.72)
        _label_bars(ax, bars, metric, log)
        total = bars.totals[metric.key]
        ax.set_title(f"{metric.label}: total {metric.text(total)}"
                     + ("  (log scale)" if log else "") + f"\n{bars.breakdown(metric.key)}",
                     fontsize=10)
        _format_axis(ax.xaxis, metric, max(values, default=0), log)
        ax.tick_params(axis="x", labelsize=_SMALL)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(ys, bars.labels, fontsize=_SMALL if n > 30 else 9)
    axes[0].set_ylim(n - 0.5, -0.5)  # execution order, top to bottom
    _titles(fig, *charts.layers_title(table, bars))
    _legend(fig, bars.categories)
    return fig


def _label_bars(ax: Axes, bars: charts.Bars, metric: charts.Metric, log: bool) -> None:
    """Each bar holding at least 1% of the total gets its value and share at its end."""
    values = bars.values[metric.key]
    top = max(values, default=0)
    if top <= 0:
        ax.set_xlim(0, 1)
        return
    for i, v in enumerate(values):
        share = bars.share(metric.key, i)
        if share >= 0.01:
            ax.text(v, i, f" {metric.text(v)}  {share:.0%}", va="center", fontsize=7,
                    color="#333333", clip_on=False)
    if log:
        low = min(v for v in values if v > 0)
        ax.set_xscale("log")
        ax.set_xlim(low / 2, top * 30)  # room for the labels on a log axis
    else:
        ax.set_xlim(0, top * 1.45)


# --------------------------------------------------------------------------- compare


def compare_figure(cmp: Comparison, scale: Scale = Scale.AUTO) -> Figure:
    """One panel per compared figure, a bar per model, each labelled with its ratio to the
    first model (the lecture's AlexNet vs VGG-16 comparison, for any models)."""
    metrics = charts.compare_metrics(cmp)
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    labels = [charts.model_label(cmp, i) for i in range(len(cmp.rows))]
    wide = max(len(s) for s in labels) * max(1, len(labels)) > 40
    fig = _figure(4.6 * cols, 3.6 * rows + (0.8 if wide else 0) + 1.0)
    grid = fig.subplots(rows, cols, squeeze=False)
    palette = [f"C{i % 10}" for i in range(len(cmp.rows))]
    spare = list(grid.flat)[len(metrics):]
    for ax in spare:
        ax.axis("off")
    summary = charts.ratio_summary(cmp)
    if spare and summary.count("\n") < 24:
        spare[0].text(0.05, 0.95, summary, va="top", fontsize=10,
                      family="monospace", transform=spare[0].transAxes)
    for k, ax in enumerate(list(grid.flat)[:len(metrics)]):
        metric = metrics[k]
        values = [cmp.rows[i].values.get(metric.key) for i in range(len(cmp.rows))]
        known = [float(v) if v is not None else math.nan for v in values]
        log = _log(scale, [v for v in known if not math.isnan(v)])
        xs = list(range(len(values)))
        ax.bar(xs, known, color=palette, width=0.65)
        for i, v in enumerate(values):
            if v is None:
                continue
            ratio = charts.ratio_label(cmp, i, metric.key)
            ax.text(i, float(v), f"{metric.text(v)}" + (f"\n{ratio}" if ratio else ""),
                    ha="center", va="bottom", fontsize=_SMALL)
        finite = [v for v in known if not math.isnan(v) and v > 0]
        if log and finite:
            ax.set_yscale("log")
            ax.set_ylim(min(finite) / 3, max(finite) * 12)
        elif finite:
            ax.set_ylim(0, max(finite) * 1.3)
        ax.set_title(metric.label, fontsize=10)
        ax.set_xticks(xs, labels, fontsize=9, rotation=30 if wide else 0,
                      ha="right" if wide else "center")
        _format_axis(ax.yaxis, metric, max(finite, default=0), log)
        ax.tick_params(axis="y", labelsize=_SMALL)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    first = cmp.rows[0].model
    _titles(fig, f"{' vs '.join(r.model for r in cmp.rows)}",
            f"ratios to {first}; {charts.comparison_recipe(cmp)}")
    return fig


# --------------------------------------------------------------------------- scatter


def scatter_figure(cmp: Comparison, top1: Mapping[str, float] | None = None) -> Figure:
    """Models as points: MACs against parameters (and measured latency, top-1 accuracy),
    bubble area proportional to activation memory."""
    panels = charts.scatter_panels(cmp, top1)
    fig = _figure(max(8.0, 6.4 * len(panels)), 6.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    sizes = charts.bubble_sizes(cmp, largest=2400.0, smallest=40.0)
    labels = [charts.model_label(cmp, i) for i in range(len(cmp.rows))]
    for ax, panel in zip(axes, panels, strict=True):
        pts = [(x, y, s, lab, i) for i, (x, y, s, lab)
               in enumerate(zip(panel.xs, panel.ys, sizes, labels, strict=True))
               if x is not None and y is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=[p[2] for p in pts],
                   c=[f"C{p[4] % 10}" for p in pts], alpha=0.55, edgecolors="#333333",
                   linewidths=0.6)
        for x, y, _s, lab, _i in pts:
            ax.annotate(lab, (x, y), xytext=(6, 6), textcoords="offset points", fontsize=9)
        ax.set_xscale("log")
        if panel.y.unit != "percent":
            ax.set_yscale("log")
        _pad_log_limits(ax, [p[0] for p in pts], [p[1] for p in pts], panel.y.unit)
        ax.xaxis.set_major_formatter(_axis_formatter(panel.x))
        if panel.y.unit != "percent":
            ax.yaxis.set_major_formatter(_axis_formatter(panel.y))
        ax.set_xlabel(f"{panel.x.label} (log scale)")
        ax.set_ylabel(panel.y.label + ("" if panel.y.unit == "percent" else " (log scale)"))
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"{panel.x.label} vs {panel.y.label}", fontsize=10)
    largest = max(range(len(cmp.rows)),
                  key=lambda i: cmp.rows[i].values.get("activation_bytes") or 0)
    act = cmp.rows[largest].values.get("activation_bytes")
    _titles(fig, f"{len(cmp.rows)} models: MACs against "
            + ", ".join(p.y.label for p in panels),
            f"bubble area = activation memory (largest: {cmp.rows[largest].model}, "
            f"{charts.LAYER_METRICS[0].text(act)}); {charts.comparison_recipe(cmp)}")
    return fig


def _pad_log_limits(ax: Axes, xs: Sequence[float], ys: Sequence[float], yunit: str) -> None:
    """Room around the points (a factor on log axes) so bubbles and labels stay inside."""
    if not xs:
        return
    ax.set_xlim(min(xs) / 2.5, max(xs) * 4)
    if yunit == "percent":
        ax.set_ylim(min(ys) - 4, max(ys) + 4)
    else:
        ax.set_ylim(min(ys) / 2.5, max(ys) * 4)


# --------------------------------------------------------------------------- roofline


def roofline_figure(report: BenchReport, batch: int | None = None) -> Figure:
    """The machine's roofline (min(peak, bandwidth x intensity)) with every layer that does
    arithmetic as a point at its intensity and its measured FLOP/s (``bench --per-layer``)."""
    run = report.runs[0] if batch is None else report.run(batch)
    roof = report.roofline
    points = charts.roofline_points(run)
    fig = _figure(10, 6.6)
    ax = fig.subplots()
    xs = [p.intensity for p in points] or [roof.ridge]
    lo, hi = min(min(xs), roof.ridge) / 4, max(max(xs), roof.ridge) * 4
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(grid, [min(roof.peak_flops, roof.bandwidth * x) for x in grid], color="#222222",
            linewidth=2, label="roofline: min(peak, bandwidth x intensity)")
    ax.axvline(roof.ridge, color="#999999", linestyle=":", linewidth=1)
    ax.annotate(f"ridge {roof.ridge:.1f} FLOP/byte", (roof.ridge, roof.peak_flops),
                xytext=(4, -14), textcoords="offset points", fontsize=_SMALL, color="#555555")
    for bound, color in (("memory", "#c44e52"), ("compute", "#4c72b0")):
        mine = [p for p in points if p.bound == bound]
        if mine:
            ax.scatter([p.intensity for p in mine], [p.flops_per_s for p in mine], s=28,
                       color=color, alpha=0.8, edgecolors="white", linewidths=0.5,
                       label=f"{bound}-bound layers ({len(mine)})",
                       marker="o" if all(p.measured for p in mine) else "^")
    for (x, y), names in _label_groups(points, 6):
        ax.annotate(", ".join(names), (x, y), xytext=(5, 3), textcoords="offset points",
                    fontsize=7, color="#333333")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (counted FLOPs / compulsory bytes moved)")
    ax.set_ylabel("FLOP/s " + ("measured per layer" if run.layer_pass is not None
                               else "the roofline allows (no --per-layer timing)"))
    ax.yaxis.set_major_formatter(_axis_formatter(charts.Metric("flops", "FLOP/s", "count")))
    ax.grid(alpha=0.35)
    ax.grid(alpha=0.12, which="minor")
    ax.legend(fontsize=9, loc="lower right")
    threads = f", {report.threads} threads" if report.device == "cpu" else ""
    _titles(fig, f"{report.model}: every layer on the roofline of {report.device_name}",
            f"batch {run.batch}, {report.dtype}{threads}; peak {roof.peak_flops / 1e9:.1f} "
            f"GFLOP/s (matmul), bandwidth {roof.bandwidth / 1e9:.1f} GB/s (copy); "
            "1 MAC = 2 FLOPs")
    return fig


def _label_groups(points: Sequence[charts.RooflinePoint],
                  count: int) -> list[tuple[tuple[float, float], list[str]]]:
    """The ``count`` layers with the most FLOPs, labelled; layers whose labels would
    overprint (points at about the same height, close along x) share one label."""
    groups: list[tuple[tuple[float, float], list[str]]] = []
    for p in sorted(points, key=lambda p: p.flops, reverse=True)[:count]:
        for (x, y), names in groups:
            if (abs(math.log10(p.intensity / x)) < 0.6
                    and abs(math.log10(p.flops_per_s / y)) < 0.08):
                names.append(p.name)
                break
        else:
            groups.append(((p.intensity, p.flops_per_s), [p.name]))
    return groups


# --------------------------------------------------------------------------- sweep


def sweep_figure(sweep: Sweep) -> Figure:
    """Each metric against the swept variable (log-log: a power law is a straight line, its
    slope the fitted exponent), a line per value of the other swept variables."""
    chart = charts.sweep_chart(sweep)
    metrics = charts.SWEEP_METRICS
    fig = _figure(15, 8.6)
    grid = list(fig.subplots(2, 3).flat)
    log_x = all(x > 0 for s in chart.series for x in s.xs)
    for ax, metric in zip(grid, metrics, strict=False):
        for i, series in enumerate(chart.series):
            ys = series.ys[metric.key]
            ax.plot(series.xs, ys, marker="o", markersize=4, color=f"C{i % 10}",
                    label=series.label or None)
        values = [v for s in chart.series for v in s.ys[metric.key]]
        if values and min(values) > 0:
            ax.set_yscale("log")
            if max(values) / min(values) < 4:  # a flat metric: show it flat, not magnified
                ax.set_ylim(min(values) / 2, max(values) * 2)
        if log_x:
            ax.set_xscale("log")
            from matplotlib.ticker import NullFormatter, ScalarFormatter

            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(sorted({x for s in chart.series for x in s.xs})[:: max(
                1, len({x for s in chart.series for x in s.xs}) // 8)])
        _format_axis(ax.yaxis, metric, max(values, default=0), ax.get_yscale() == "log")
        ax.set_title(f"{metric.label} {chart.fit_text(metric.key)}".strip(), fontsize=10)
        ax.set_xlabel(chart.x_label, fontsize=9)
        ax.tick_params(labelsize=_SMALL)
        ax.grid(alpha=0.3, which="both")
    spare = grid[len(metrics)]
    spare.axis("off")
    if any(s.label for s in chart.series):
        handles, labels = grid[0].get_legend_handles_labels()
        spare.legend(handles, labels, loc="upper left", fontsize=9, frameon=False,
                     title="other swept variables")
    failed = f"; {chart.failed} point(s) failed and are left out" if chart.failed else ""
    _titles(fig, f"{sweep.model}: how cost scales with {chart.x_label}",
            "log-log axes, k in metric ∝ var^k fitted by least squares; "
            f"{charts.sweep_recipe(sweep)}{failed}")
    return fig


# --------------------------------------------------------------------------- entry point


def figure(data: PlotData, depth: int | None = None, scale: Scale = Scale.AUTO) -> Figure:
    """The chart of ``data.kind`` from what api.plot_data collected."""
    from cnncost.plotting import PlotKind

    if data.kind is PlotKind.LAYERS:
        assert data.table is not None
        return layers_figure(data.table, depth, scale)
    if data.kind is PlotKind.ROOFLINE:
        assert data.bench is not None
        return roofline_figure(data.bench)
    if data.kind is PlotKind.SWEEP:
        assert data.sweep is not None
        return sweep_figure(data.sweep)
    assert data.comparison is not None
    if data.kind is PlotKind.COMPARE:
        return compare_figure(data.comparison, scale)
    return scatter_figure(data.comparison, data.top1)

"""What the charts show, decided once for the images (plot.py) and the pages (html.py).

Everything here is read off finished CostTables and Comparisons (the same rows the text
tables show, via :func:`cnncost.table.table_rows`); nothing is counted. No
matplotlib and no torch: plot.py draws these with matplotlib, svg.py as inline SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnncost.compare import Comparison
from cnncost.fmt import human, human_bytes, shape
from cnncost.table import CostRow, CostTable, collapse, table_rows

if TYPE_CHECKING:
    from cnncost.measure.bench import BenchRun
    from cnncost.sweep import Exponent, PointResult, Sweep

# A per-layer chart with more bars than this is drawn per block (the deepest --depth that
# fits), so that every label stays readable; the tables keep every layer.
MAX_BARS = 60

# Bars are coloured by what a layer does, read off its counts and output shape (never its
# class name): MACs with a spatial output = convolution; MACs with an (N, features) output =
# a fully connected layer (or another matrix product); no MACs = the rest.
CONV, FC, OTHER = "conv", "fully connected", "other (no MACs)"
COLORS = {CONV: "#4c72b0", FC: "#dd8452", OTHER: "#9a9a9a"}


@dataclass(frozen=True)
class Metric:
    """One quantity a chart shows: an attribute of rows / totals, a label and its unit."""

    key: str
    label: str
    unit: str  # "bytes", "count" or "ms"

    def text(self, value: float | None) -> str:
        """A value in this metric's unit, short: '756 KiB', '37.7M', '1.23 ms'."""
        if value is None:
            return "-"
        if self.unit == "bytes":
            return human_bytes(value)
        if self.unit == "ms":
            return f"{value:.3g} ms"
        if self.unit == "percent":
            return f"{value:.1f}%"
        return human(value)


# The lecture's three per-layer figures, in the order it tells them.
LAYER_METRICS = (
    Metric("output_bytes", "activation memory (output bytes)", "bytes"),
    Metric("params", "parameters", "count"),
    Metric("macs", "MACs", "count"),
)


def category(row: CostRow) -> str:
    """conv, fully connected or other (see COLORS)."""
    if row.macs <= 0:
        return OTHER
    return FC if len(row.output_shape) <= 2 else CONV


@dataclass(frozen=True)
class Bars:
    """One bar per layer (or block) in execution order, with a value per metric."""

    labels: tuple[str, ...]
    categories: tuple[str, ...]
    values: Mapping[str, tuple[int, ...]]  # metric key -> one value per bar
    totals: Mapping[str, int]  # metric key -> the whole model's total
    depth: int | None  # None: one bar per layer
    auto_depth: bool  # depth chosen because there were more than MAX_BARS layers
    layers: int  # layers in the model

    def share(self, key: str, index: int) -> float:
        """Bar ``index``'s fraction of the model's total ``key`` (0 when the total is 0)."""
        total = self.totals[key]
        return self.values[key][index] / total if total else 0.0

    def category_shares(self, key: str) -> dict[str, float]:
        """Each colour's fraction of the total ``key``, largest first (the figure's point:
        'fully connected 96%, conv 4%' of AlexNet's parameters)."""
        total = self.totals[key]
        sums: dict[str, int] = {}
        for cat, v in zip(self.categories, self.values[key], strict=True):
            sums[cat] = sums.get(cat, 0) + v
        shares = {c: v / total for c, v in sums.items() if total and v}
        return dict(sorted(shares.items(), key=lambda kv: -kv[1]))

    def breakdown(self, key: str) -> str:
        """'fully connected 96%, conv 4%' (shares under 0.5% left out)."""
        return ", ".join(f"{c.split(' (')[0]} {v:.0%}" for c, v in
                         self.category_shares(key).items() if v >= 0.005)


def pick_depth(table: CostTable, max_bars: int = MAX_BARS) -> int | None:
    """None when every layer fits; else the deepest name depth with at most max_bars blocks."""
    if len(table.layers) <= max_bars:
        return None
    deepest = max(len(r.name.split(".")) for r in table.layers)
    for depth in range(deepest - 1, 0, -1):
        if len(collapse(table.layers, depth)) <= max_bars:
            return depth
    return 1


def layer_bars(table: CostTable, depth: int | None = None,
               max_bars: int = MAX_BARS) -> Bars:
    """The bars of a per-layer chart: layers, or blocks at ``depth`` (chosen when too many)."""
    auto = depth is None and len(table.layers) > max_bars
    if auto:
        depth = pick_depth(table, max_bars)
    rows = table_rows(table, depth)
    if depth is None:
        cats = tuple(category(r) for r in rows if isinstance(r, CostRow))
    else:  # a block is coloured by what does most of its work
        cats = tuple(_block_category(table.layers, r.name) for r in rows)
    values = {m.key: tuple(int(getattr(r, m.key)) for r in rows) for m in LAYER_METRICS}
    totals = {"output_bytes": table.totals.activation_bytes, "params": table.totals.params,
              "macs": table.totals.macs}
    return Bars(tuple(r.name for r in rows), cats, values, totals, depth, auto,
                len(table.layers))


def _block_category(layers: Sequence[CostRow], block: str) -> str:
    members = [r for r in layers if r.name == block or r.name.startswith(block + ".")]
    busiest = max(members, key=lambda r: r.macs, default=None)
    return category(busiest) if busiest is not None else OTHER


def log_scale(values: Sequence[float]) -> bool:
    """True when a linear axis would shrink most bars to nothing: more than half of the
    non-zero values are under 1% of the largest. (Linear otherwise: it shows dominance,
    which is the point of the lecture's figures.)"""
    nonzero = [v for v in values if v > 0]
    if len(nonzero) < 2:
        return False
    top = max(nonzero)
    return sum(v < top / 100 for v in nonzero) > len(nonzero) / 2


def recipe(input: Sequence[int], dtype: str, policy: str) -> str:
    """'input 1x3x224x224, float32, FLOPs policy all; 1 MAC = 1 multiply + 1 add'."""
    return (f"input {shape(input)}, {dtype}, FLOPs policy {policy}; "
            "1 MAC = 1 multiply + 1 add")


def layers_title(table: CostTable, bars: Bars) -> tuple[str, str]:
    """(title, subtitle) of a per-layer chart: what was counted, and how."""
    what = "per layer" if bars.depth is None else f"per block (names to depth {bars.depth})"
    note = ""
    if bars.auto_depth:
        note = f"; {bars.layers} layers grouped so names stay readable (--depth N to choose)"
    return (f"{table.model}: activation memory, parameters and MACs {what}",
            recipe(table.input, table.dtype, table.policy) + note)


def comparison_recipe(cmp: Comparison) -> str:
    """The recipe line of a comparison: shared input/dtype/policy, or each one listed."""
    inputs = sorted({shape(r.input) for r in cmp.rows})
    dtypes = sorted({r.dtype for r in cmp.rows})
    policies = sorted({r.policy for r in cmp.rows})
    return (f"input {', '.join(inputs)}, {', '.join(dtypes)}, FLOPs policy "
            f"{', '.join(policies)}; 1 MAC = 1 multiply + 1 add")


def model_label(cmp: Comparison, index: int) -> str:
    """A model's name in a comparison, with its --set variables and its input when those
    differ between the models."""
    r = cmp.rows[index]
    label = r.model
    if r.vars:
        label += " (" + ", ".join(f"{k}={v}" for k, v in sorted(r.vars.items())) + ")"
    if len({row.input for row in cmp.rows}) > 1:
        label += f" @ {shape(r.input[1:])}"
    return label


def compare_metrics(cmp: Comparison) -> tuple[Metric, ...]:
    """One panel per compared column (params, MACs, FLOPs, memory; latency with --bench)."""
    return tuple(Metric(c.key, c.label, c.unit) for c in cmp.columns)


def ratio_summary(cmp: Comparison) -> str:
    """Every ratio to the first model as lines of text ('vgg16 / alexnet', 'MACs 21.66x')."""
    from cnncost.fmt import ratio as ratio_text

    lines = []
    for i in range(1, len(cmp.rows)):
        lines.append(f"{model_label(cmp, i)} / {model_label(cmp, 0)}:")
        width = max(len(c.label) for c in cmp.columns)
        lines += [f"  {c.label:<{width}}  {ratio_text(cmp.ratio(i, c.key)):>8}"
                  for c in cmp.columns]
    return "\n".join(lines)


def nice_step(x: float) -> float:
    """The round number (1, 2, 2.5 or 5 times a power of ten) at or above ``x``."""
    if x <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(x))
    return next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= x * 0.999)


def ratio_label(cmp: Comparison, index: int, key: str) -> str:
    """'2.26x' (the text tables' ratio format); '' for the baseline itself."""
    from cnncost.fmt import ratio as ratio_text

    return "" if index == 0 else ratio_text(cmp.ratio(index, key))


@dataclass(frozen=True)
class ScatterPanel:
    """One scatter panel: x and y per model (None: not known for that model)."""

    x: Metric
    y: Metric
    xs: tuple[float | None, ...]
    ys: tuple[float | None, ...]


def scatter_panels(cmp: Comparison,
                   top1: Mapping[str, float] | None = None) -> tuple[ScatterPanel, ...]:
    """MACs against parameters; against measured latency when the comparison has it
    (``--bench``); against top-1 accuracy for the models whose spec declares one."""
    macs = Metric("macs", "MACs", "count")
    xs = tuple(r.values.get("macs") for r in cmp.rows)
    panels = [ScatterPanel(macs, Metric("params", "parameters", "count"), xs,
                           tuple(r.values.get("params") for r in cmp.rows))]
    if any(c.key == "latency_ms" for c in cmp.columns):
        panels.append(ScatterPanel(macs, Metric("latency_ms", "measured latency", "ms"), xs,
                                   tuple(r.values.get("latency_ms") for r in cmp.rows)))
    if top1 and any(r.model in top1 for r in cmp.rows):
        panels.append(ScatterPanel(macs, Metric("top1", "top-1 accuracy (%)", "percent"), xs,
                                   tuple(top1.get(r.model) for r in cmp.rows)))
    return tuple(panels)


def bubble_sizes(cmp: Comparison, largest: float, smallest: float) -> tuple[float, ...]:
    """Marker areas proportional to activation bytes, the largest ``largest``; at least
    ``smallest`` so that a tiny model stays visible."""
    acts = [float(r.values.get("activation_bytes") or 0) for r in cmp.rows]
    top = max(acts, default=0.0) or 1.0
    return tuple(max(smallest, largest * a / top) for a in acts)


@dataclass(frozen=True)
class RooflinePoint:
    """A layer on the roofline: its intensity and the FLOP/s it reached (or was allowed)."""

    name: str
    flops: int
    intensity: float
    flops_per_s: float
    bound: str  # "memory" or "compute"
    measured: bool  # False: placed on the roof, at the time the roofline allows


def roofline_points(run: BenchRun) -> tuple[RooflinePoint, ...]:
    """Every layer of a benchmark run that does arithmetic: measured FLOP/s with
    ``--per-layer`` timing, else the roofline's own prediction (a point on the roof)."""
    out = []
    for r in run.layers:
        roof = r.roof
        if roof.flops <= 0 or math.isinf(roof.intensity) or roof.intensity <= 0:
            continue
        seconds = r.measured_s if r.measured_s else roof.predicted_s
        if seconds <= 0:
            continue
        out.append(RooflinePoint(roof.name, roof.flops, roof.intensity, roof.flops / seconds,
                                 roof.bound.value, bool(r.measured_s)))
    return tuple(out)


# --------------------------------------------------------------------------- sweeps

SWEEP_METRICS = (
    Metric("params", "parameters", "count"),
    Metric("macs", "MACs", "count"),
    Metric("flops", "FLOPs", "count"),
    Metric("activation_bytes", "activations", "bytes"),
    Metric("peak_memory_bytes", "peak memory", "bytes"),
)


@dataclass(frozen=True)
class SweepSeries:
    """The points of a sweep where only the plotted variable moves, in its order."""

    label: str  # the other moving variables ("batch=8"); "" when nothing else moves
    xs: tuple[float, ...]
    ys: Mapping[str, tuple[int, ...]]  # metric key -> one value per x


@dataclass(frozen=True)
class SweepChart:
    """Each metric against one swept variable, a line per value of the other axes."""

    var: str
    partners: tuple[str, ...]  # --zip partners that move with var
    series: tuple[SweepSeries, ...]
    fits: Mapping[str, Exponent]  # metric key -> the fitted exponent against var
    failed: int

    @property
    def x_label(self) -> str:
        return self.var + (f" (with {', '.join(self.partners)})" if self.partners else "")

    def fit_text(self, key: str) -> str:
        """'∝ res^2.00' (with r² when the points are not on one power law), or ''."""
        fit = self.fits.get(key)
        if fit is None or fit.exponent is None:
            return ""
        r2 = "" if fit.r2 is None or fit.r2 >= 0.9995 else f", r² {fit.r2:.3f}"
        return f"∝ {self.var}^{fit.exponent:.2f}{r2}"


def _numeric(values: Sequence[object]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def sweep_chart(sweep: Sweep) -> SweepChart:
    """The chart of a finished sweep: x = the first swept numeric variable (a spec variable
    before the batch size); one series per combination of the other moving axes."""
    from cnncost.errors import UsageError
    from cnncost.sweep import BATCH

    moving = [(a, axis) for a, axis in enumerate(sweep.plan.axes) if len(axis.values) > 1
              and _numeric([step[0] for step in axis.values])]
    moving.sort(key=lambda item: item[1].names[0] == BATCH)  # spec variables first
    if not moving:
        raise UsageError("this sweep moves no numeric variable to plot against; sweep one "
                         "with --set NAME=A..B:STEP or a list of numbers")
    a, axis = moving[0]
    var = axis.names[0]
    others = [(b, ax) for b, ax in enumerate(sweep.plan.axes) if b != a and len(ax.values) > 1]
    groups: dict[tuple[int, ...], list[PointResult]] = {}
    for r in sweep.results:
        if r.ok:
            key = tuple(r.point.coords[b] for b, _ in others)
            groups.setdefault(key, []).append(r)
    series = []
    for key, results in groups.items():
        results.sort(key=lambda r: r.point.coords[a])
        label = ", ".join(f"{n}={v}" for (_, ax), step in zip(others, key, strict=True)
                          for n, v in zip(ax.names, ax.values[step], strict=True))
        xs = tuple(float(axis.values[r.point.coords[a]][0]) for r in results)
        ys = {m.key: tuple(int(getattr(r, m.key)) for r in results) for m in SWEEP_METRICS}
        series.append(SweepSeries(label, xs, ys))
    fits = {e.metric: e for e in sweep.exponents if e.var == var}
    return SweepChart(var, axis.names[1:], tuple(series), fits, len(sweep.failed))


def sweep_recipe(sweep: Sweep) -> str:
    """'input: the spec's, float32, FLOPs policy all, set width=1.0; 1 MAC = ...'."""
    job = sweep.job
    own = "the file's input" if job.onnx else "the spec's input"
    parts = [f"input {shape(job.input)}" if job.input is not None else own,
             job.dtype, f"FLOPs policy {job.policy}"]
    if job.fixed:
        parts.append("set " + ", ".join(f"{k}={v}" for k, v in sorted(job.fixed.items())))
    return ", ".join(parts) + "; 1 MAC = 1 multiply + 1 add"

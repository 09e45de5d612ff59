"""Inline SVG charts for the HTML pages, written by hand: no matplotlib needed for a page,
a few kilobytes per chart, and the same bytes for the same table.

The charts are the ones plot.py draws (per-layer bars, compared totals, log-log scatter),
from the same :mod:`cnncost.render.charts` data. Every mark has a ``<title>`` (the browser's
tooltip) with its exact figure. No ``xmlns``: inline SVG in HTML needs none, and a page
holds no http(s) address at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from cnncost.compare import Comparison
from cnncost.render import charts

FONT = 'font-family="system-ui, sans-serif"'
_ROW = 17  # px per bar in per-layer charts
_PANEL = 290  # px per metric panel


def _f(x: float) -> str:
    """Coordinates with one decimal, trailing zeros dropped: deterministic and short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg class="chart" width="{_f(width)}" height="{_f(height)}" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" role="img" aria-label="{escape(label)}" '
            f'{FONT} font-size="11">' + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11,
          color: str = "#222", weight: str = "normal") -> str:
    extra = f' font-weight="{weight}"' if weight != "normal" else ""
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{color}"{extra}>{escape(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0.0))}" height="{_f(h)}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>')


@dataclass(frozen=True)
class _Scale:
    """Values to lengths: linear from 0, or log between two decades."""

    top: float
    length: float
    log: bool
    low: float = 1.0

    @classmethod
    def fit(cls, values: Sequence[float], length: float, log: bool) -> _Scale:
        positive = [v for v in values if v > 0]
        top = max(positive, default=1.0)
        if not log:
            return cls(top, length, False)
        low = 10 ** math.floor(math.log10(min(positive))) if positive else 1.0
        return cls(10 ** math.ceil(math.log10(top * 1.0001)), length, True, low)

    def __call__(self, v: float) -> float:
        if v <= 0:
            return 0.0
        if not self.log:
            return self.length * v / self.top
        span = math.log10(self.top / self.low) or 1.0
        return self.length * max(0.0, math.log10(v / self.low)) / span


# --------------------------------------------------------------------------- per layer


def layer_chart(bars: charts.Bars) -> str:
    """Activation memory, parameters and MACs per layer (or block): three aligned panels."""
    n = len(bars.labels)
    label_w = min(300, 12 + 6.3 * max((len(s) for s in bars.labels), default=4))
    top_pad, row = 44, _ROW
    gap, value_room = 24, 92
    bar_len = _PANEL - value_room
    width = label_w + len(charts.LAYER_METRICS) * (_PANEL + gap)
    height = top_pad + n * row + 28
    body = []
    for i, name in enumerate(bars.labels):
        y = top_pad + i * row + row * 0.72
        body.append(_text(label_w - 6, y, name, "end", 11))
    for k, metric in enumerate(charts.LAYER_METRICS):
        x0 = label_w + k * (_PANEL + gap)
        values = bars.values[metric.key]
        scale = _Scale.fit(values, bar_len, charts.log_scale(values))
        total = bars.totals[metric.key]
        title = f"{metric.label}: {metric.text(total)}" + (" (log)" if scale.log else "")
        body.append(_text(x0, 16, title, weight="600", size=12))
        body.append(_text(x0, 32, bars.breakdown(metric.key), color="#555"))
        body.append(f'<line x1="{_f(x0)}" y1="{top_pad - 4}" x2="{_f(x0)}" '
                    f'y2="{_f(top_pad + n * row)}" stroke="#888"/>')
        for i, v in enumerate(values):
            share = bars.share(metric.key, i)
            y = top_pad + i * row
            w = scale(v)
            color = charts.COLORS[bars.categories[i]]
            body.append(_rect(x0, y + 2, w, row - 4, color,
                              f"{bars.labels[i]}: {metric.text(v)} ({share:.1%})"))
            if share >= 0.01:
                body.append(_text(x0 + w + 4, y + row * 0.72, f"{metric.text(v)} {share:.0%}",
                                  size=10, color="#444"))
    legend_y = height - 8
    x = label_w
    for cat in charts.COLORS:
        if cat in bars.categories:
            body.append(f'<rect x="{_f(x)}" y="{_f(legend_y - 9)}" width="10" height="10" '
                        f'fill="{charts.COLORS[cat]}"/>')
            body.append(_text(x + 14, legend_y, cat, size=11))
            x += 30 + 6.5 * len(cat)
    return _svg(width, height, body, "activation memory, parameters and MACs per layer")


# --------------------------------------------------------------------------- compare


def compare_chart(cmp: Comparison) -> str:
    """One small panel per compared figure, a bar per model with its ratio to the first."""
    metrics = charts.compare_metrics(cmp)
    labels = [charts.model_label(cmp, i) for i in range(len(cmp.rows))]
    bar_w, pad = 46, 14
    panel_w = max(170, len(labels) * (bar_w + pad) + pad)
    plot_h, top_pad, label_h = 150, 40, 16 + 6 * max(len(s) for s in labels) // 2
    cols = max(1, min(len(metrics), 1000 // panel_w))
    rows = math.ceil(len(metrics) / cols)
    cell_h = top_pad + plot_h + label_h + 18
    body = []
    for k, metric in enumerate(metrics):
        x0 = (k % cols) * panel_w + 8
        y0 = (k // cols) * cell_h
        values = [cmp.rows[i].values.get(metric.key) for i in range(len(cmp.rows))]
        scale = _Scale.fit([float(v) for v in values if v is not None], plot_h - 28, False)
        body.append(_text(x0, y0 + 16, metric.label, weight="600", size=12))
        base = y0 + top_pad + plot_h
        body.append(f'<line x1="{_f(x0)}" y1="{_f(base)}" x2="{_f(x0 + panel_w - 20)}" '
                    f'y2="{_f(base)}" stroke="#888"/>')
        for i, v in enumerate(values):
            x = x0 + pad + i * (bar_w + pad)
            color = f"hsl({(i * 137) % 360}, 45%, 52%)"
            h = scale(float(v)) if v is not None else 0.0
            ratio = charts.ratio_label(cmp, i, metric.key)
            body.append(_rect(x, base - h, bar_w, h, color,
                              f"{labels[i]}: {metric.text(v)}" + (f" ({ratio})" if ratio
                                                                   else "")))
            body.append(_text(x + bar_w / 2, base - h - (16 if ratio else 4), metric.text(v),
                              "middle", 10))
            if ratio:
                body.append(_text(x + bar_w / 2, base - h - 4, ratio, "middle", 10, "#555"))
            body.append(_text(x + bar_w / 2, base + 14, labels[i], "middle", 10))
    return _svg(cols * panel_w + 16, rows * cell_h, body, "compared totals with ratios")


# --------------------------------------------------------------------------- scatter


@dataclass(frozen=True)
class Point:
    """A labelled point of a log-log scatter."""

    x: float
    y: float
    label: str
    color: str
    radius: float = 4.0
    tip: str = ""


def _log_range(low: float, high: float) -> tuple[float, float]:
    """An axis range around [low, high] with some room: a third of the span each side (at
    least a factor 1.5), a factor 3 around a single value."""
    if high <= low:
        return low / 3, high * 3
    pad = max(1.5, (high / low) ** (1 / 6))
    return low / pad, high * pad


def log_ticks(low: float, high: float, unit: str) -> list[float]:
    """Tick values in [low, high] on a log axis, at most about 7: powers of 2 for bytes
    (1 MiB, 4 MiB, ...), else 1-2-5 steps or decades (every other one when many)."""
    if unit == "bytes":
        k0, k1 = math.ceil(math.log2(low) - 1e-9), math.floor(math.log2(high) + 1e-9)
        step = max(1, math.ceil((k1 - k0 + 1) / 7))
        return [2.0 ** k for k in range(k0, k1 + 1) if (k - k0) % step == 0]
    d0, d1 = math.floor(math.log10(low)), math.ceil(math.log10(high))
    subs = (1, 2, 5) if d1 - d0 <= 2 else (1,)
    ticks = [m * 10.0 ** d for d in range(d0, d1 + 1) for m in subs
             if low * 0.9999 <= m * 10.0 ** d <= high * 1.0001]
    while len(ticks) > 8:
        ticks = ticks[::2]
    return ticks


def loglog_chart(points: Sequence[Point], x_metric: charts.Metric, y_metric: charts.Metric,
                 title: str, roof: tuple[float, float] | None = None,
                 width: float = 640, height: float = 420,
                 lines: Sequence[tuple[str, Sequence[tuple[float, float]]]] = ()) -> str:
    """A log-log scatter with decade grid lines; ``roof`` = (peak FLOP/s, bytes/s) adds the
    roofline min(peak, bandwidth x intensity); ``lines`` = (colour, [(x, y), ...]) join
    points in order (a sweep's series)."""
    left, right, top, bottom = 70, 20, 30, 44
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in points if p.x > 0] or [1.0]
    ys = [p.y for p in points if p.y > 0] or [1.0]
    if roof is not None:
        xs.append(roof[0] / roof[1])
        ys.append(roof[0])
    (x_lo, x_hi), (y_lo, y_hi) = _log_range(min(xs), max(xs)), _log_range(min(ys), max(ys))

    def px(x: float) -> float:
        return left + pw * math.log10(x / x_lo) / math.log10(x_hi / x_lo)

    def py(y: float) -> float:
        return top + ph - ph * math.log10(y / y_lo) / math.log10(y_hi / y_lo)

    body = [_text(left, 18, title, weight="600", size=12)]
    body += _grid(x_lo, x_hi, px, lambda v: (v, top, v, top + ph), x_metric, "x", top + ph)
    body += _grid(y_lo, y_hi, py, lambda v: (left, v, left + pw, v), y_metric, "y", left)
    if roof is not None:
        peak, bandwidth = roof
        ridge = peak / bandwidth
        a, b = max(x_lo, y_lo / bandwidth), min(ridge, x_hi)
        if a < b:
            body.append(f'<polyline fill="none" stroke="#222" stroke-width="2" points="'
                        f'{_f(px(a))},{_f(py(bandwidth * a))} {_f(px(b))},{_f(py(peak))} '
                        f'{_f(px(x_hi))},{_f(py(peak))}"><title>roofline: min(peak, '
                        f'bandwidth x intensity)</title></polyline>')
    for color, xy in lines:
        coords = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in xy if x > 0 and y > 0)
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                    f'points="{coords}"/>')
    placed: list[tuple[float, float, float]] = []  # label boxes: x, baseline, width
    for p in points:
        if p.x <= 0 or p.y <= 0:
            continue
        cx, cy = px(p.x), py(p.y)
        # A label that would overlap one already written is left to the tooltip.
        lx, lw = cx + p.radius + 3, 6.2 * len(p.label)
        crowded = any(abs(cy - y) < 11 and lx < x + w and x < lx + lw for x, y, w in placed)
        body.append(f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(p.radius)}" '
                    f'fill="{p.color}" fill-opacity="0.6" stroke="#333" stroke-width="0.6">'
                    f'<title>{escape(p.tip or p.label)}</title></circle>')
        if p.label and not crowded:
            body.append(_text(lx, cy - 3, p.label, size=10))
            placed.append((lx, cy, lw))
    body.append(_text(left + pw / 2, height - 6, f"{x_metric.label} (log)", "middle"))
    body.append(f'<text transform="translate(14 {_f(top + ph / 2)}) rotate(-90)" '
                f'text-anchor="middle" font-size="11">{escape(y_metric.label)} (log)</text>')
    return _svg(width, height, body, title)


def _grid(lo: float, hi: float, pos: Callable[[float], float],
          line: Callable[[float], tuple[float, float, float, float]], metric: charts.Metric,
          axis: str, at: float) -> list[str]:
    """Grid lines at the ticks of one log axis, and their labels."""
    out = []
    for tick in log_ticks(lo, hi, metric.unit):
        v = pos(tick)
        x1, y1, x2, y2 = line(v)
        out.append(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" '
                   'stroke="#ddd"/>')
        if axis == "x":
            out.append(_text(v, at + 16, _tick_text(metric, tick), "middle", 10, "#555"))
        else:
            out.append(_text(at - 6, v + 4, _tick_text(metric, tick), "end", 10, "#555"))
    return out


def _tick_text(metric: charts.Metric, v: float) -> str:
    """Round binary sizes read as such ('4 MiB', not '4.19 MB'); counts as elsewhere."""
    if metric.unit == "bytes":
        for power, prefix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
            if v >= 1024 ** power:
                return f"{v / 1024 ** power:g} {prefix}"
        return f"{v:g} B"
    return metric.text(v) if v >= 1 else f"{v:g}"

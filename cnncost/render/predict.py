"""Renderings of a latency prediction (cnncost.predict.model) and of a calibration's summary:
rich tables, CSV and Markdown. The JSON document is ``Prediction.to_dict()``. No torch."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from cnncost.fmt import human, percent, shape

if TYPE_CHECKING:
    from rich.console import RenderableType

    from cnncost.predict.calibration import Calibration
    from cnncost.predict.model import LayerPrediction, Prediction


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
    return (f"predicted {_ms(p.latency_ms)} ms ± {percent(p.uncertainty)} (held-out kernel "
            f"error, time-weighted) = layers {_ms(p.layers_ms)} ms + model call "
            f"{_ms(p.overhead_ms)} ms; {human(p.macs)}MACs{outside}")


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
    w = csv.writer(buf, lineterminator="\n")
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
        lines.append(f"| {r.name}{mark} | {r.kind} | {r.op_class} | {_ms(r.latency_ms)} | "
                     f"{percent(p.share(r))} | {percent(r.uncertainty)} |")
    lines.append(f"| **total** | | | **{_ms(p.latency_ms)}** | 100% | "
                 f"{percent(p.uncertainty)} |")
    notes = [f"\\* {r.name}: {r.note}" for r in _rows(p, top) if r.note]
    return "\n".join(lines + ([""] + [f"{n}  " for n in notes] if notes else [])) + "\n"


def to_json(p: Prediction) -> str:
    return json.dumps(p.to_dict(), indent=1, allow_nan=False) + "\n"


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
                 t, Text(f"saved {path}"))

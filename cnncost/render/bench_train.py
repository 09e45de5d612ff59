"""Render a training-step benchmark (``cnncost bench MODEL --train``): table, Markdown, CSV,
HTML.

Computes nothing: every figure is a field or a ratio of fields of the TrainBenchReport
(cnncost.measure.bench_train).
"""

from __future__ import annotations

import io
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cnncost.count.conventions import OPTIMIZERS
from cnncost.fmt import human, human_bytes, ms, percent
from cnncost.render.formats import Format, csv_writer, md_text, text_as

if TYPE_CHECKING:
    from cnncost.measure.bench_train import TrainBenchReport, TrainRun
    from cnncost.render.html import Wrap


def bench_view(train: bool) -> ModuleType:
    """The renderer of a benchmark's result, with the same rich_report and render_text:
    cnncost.render.bench for forward passes, this module for training steps."""
    if not train:
        from cnncost.render import bench

        return bench
    return sys.modules[__name__]


def header_lines(report: TrainBenchReport) -> list[str]:
    """Model, device and method lines above the table."""
    from cnncost.render.bench import roofline_line

    threads = f", {report.threads} threads" if report.device == "cpu" else ""
    layout = ", channels-last" if report.channels_last else ""
    return [
        f"{report.model} ({report.source}) training steps on {report.device} "
        f"[{report.device_name}]{threads}, {report.dtype}{layout}, optimizer "
        f"{OPTIMIZERS[report.optimizer].label}, torch {report.torch_version}",
        roofline_line(report.roofline),
    ]


def _cells(r: TrainRun, report: TrainBenchReport) -> list[str]:
    t = r.timing
    return [str(r.batch), ms(t.median_s), ms(t.iqr_s), percent(t.rel_iqr),
            f"{len(t.samples_s)}x{t.number}", f"{r.images_per_s:.1f}", human(r.step_flops),
            f"{r.achieved_flops / 1e9:.1f}", percent(r.achieved_flops / report.roofline.peak_flops),
            ms(r.compute_only_s), human_bytes(r.estimated_peak_bytes),
            "" if r.measured_peak_bytes is None else human_bytes(r.measured_peak_bytes),
            "" if r.memory_ratio is None else f"{r.memory_ratio:.3f}"]


COLUMNS = ("batch", "median ms", "IQR ms", "IQR/med", "samples", "images/s", "step FLOPs",
           "GFLOP/s", "% peak", "compute-only ms", "peak mem. est.", "peak mem. measured",
           "est/meas")


def rich_report(report: TrainBenchReport, top: int | None = None) -> Any:
    """The step timings, FLOP/s against the roofline's peak, and peak memory both ways
    (``top``: for the inference renderer's signature; a step has no per-layer rows)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAVY, title="training step (zero_grad, forward, loss, "
                  "backward, optimizer step)", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.runs:
        table.add_row(*_cells(r, report))
    parts: list[Any] = [Text("\n".join(header_lines(report)), style="bold"), table]
    parts.extend(Text(n, style="dim") for n in report.notes)
    parts.append(Text(
        "step FLOPs = forward + backward + update, counted (policy all); GFLOP/s = step "
        "FLOPs / median; compute-only = step FLOPs / peak FLOP/s (the roofline's bound for a "
        f"compute-bound step); peak memory measured with {report.peak_method}; estimated = "
        "cnncost analyze --mode train", style="dim"))
    return Group(*parts)


def to_markdown(report: TrainBenchReport, top: int | None = None) -> str:
    """The header lines and the table in Markdown (``top``: unused, as in rich_report)."""
    lines = [f"# bench --train: {md_text(report.model)}", "",
             *[f"- {md_text(h)}" for h in header_lines(report)],
             *[f"- {md_text(n)}" for n in report.notes],
             f"- peak memory measured with {report.peak_method}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r, report)) + " |" for r in report.runs]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("batch", "optimizer", "step_ms", "iqr_ms", "images_per_s", "macs", "step_flops",
              "achieved_gflops", "compute_only_ms", "estimated_peak_bytes",
              "measured_peak_bytes", "memory_ratio")


def to_csv(report: TrainBenchReport) -> str:
    """One row per batch size, exact counts."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(CSV_FIELDS)
    for r in report.runs:
        w.writerow([r.batch, r.optimizer, f"{r.timing.median_s * 1e3:.6g}",
                    f"{r.timing.iqr_s * 1e3:.6g}", f"{r.images_per_s:.6g}", r.macs,
                    r.step_flops, f"{r.achieved_flops / 1e9:.6g}",
                    f"{r.compute_only_s * 1e3:.6g}", r.estimated_peak_bytes,
                    "" if r.measured_peak_bytes is None else r.measured_peak_bytes,
                    "" if r.memory_ratio is None else f"{r.memory_ratio:.4g}"])
    return buf.getvalue()


def train_page(report: TrainBenchReport, top: int | None = None,
               wrap: Wrap | None = None) -> str:
    """The header, the step timings and memory per batch (sortable) and the notes, as a
    page (``top``: as in rich_report)."""
    from html import escape

    from cnncost.render.html import Col, cell, page, sortable_table

    body = [f"<h1>bench --train: {escape(report.model)}</h1>"]
    body += [f'<p class="recipe">{escape(line)}</p>' for line in header_lines(report)]
    body.append(sortable_table([Col(c, True) for c in COLUMNS],
                               [[cell(c, css="n") for c in _cells(r, report)]
                                for r in report.runs], table_id="train-table"))
    body += [f'<p class="note">{escape(n)}</p>' for n in report.notes]
    body.append(f'<p class="note">step FLOPs = forward + backward + update, counted (policy '
                f"all); peak memory measured with {escape(report.peak_method)}; estimated = "
                "cnncost analyze --mode train</p>")
    return (wrap or page)(f"bench --train: {report.model}", body)


def render_text(report: TrainBenchReport, fmt: Format, top: int | None = None) -> str:
    """Every text format of a training-step benchmark: json, csv, md and html."""
    return text_as(fmt, json=report.to_json, csv=lambda: to_csv(report),
                   md=lambda: to_markdown(report, top), html=lambda: train_page(report, top))

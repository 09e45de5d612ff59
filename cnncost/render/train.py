"""Render a training step's cost table (``--mode train``): terminal, Markdown and CSV.

Computes no cost: every figure is read off the table (cnncost.table.TrainCost per row,
TrainTotals for the model). The layout follows the inference table's (render.cost), with
the backward beside the forward: MACs of the gradient of each layer's input (dL/dx) and of
its weights (dL/dW), and the bytes autograd saved for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cnncost.count.conventions import OPTIMIZERS
from cnncost.fmt import human, human_bytes, params_text, shape
from cnncost.render.formats import CSV_FIELDS, Units, markdown_head, md_cell, md_code
from cnncost.table import BlockRow, CostRow, CostTable, row_count, table_rows

if TYPE_CHECKING:
    from rich.console import RenderableType

TRAIN_CSV_FIELDS = (*CSV_FIELDS, "grad_input_macs", "grad_weight_macs", "backward_flops",
                    "saved_bytes", "backward_formula")
TRAIN_BLOCK_CSV_FIELDS = ("name", "layers", "output_shape", "params", "buffers", "macs",
                          "flops", "output_bytes", "backward_macs", "grad_input_macs",
                          "grad_weight_macs", "backward_flops", "saved_bytes")


def per_optimizer(values: Mapping[str, int], fmt: Callable[[float], str] = human) -> str:
    """``SGD 10.7G, SGD-momentum 10.7G, Adam 10.8G``."""
    return ", ".join(f"{o.label} {fmt(values[n])}" for n, o in OPTIMIZERS.items()
                     if n in values)


def header(table: CostTable) -> str:
    """The figures of the step: params, forward and backward MACs, step FLOPs, memory."""
    t, tr = table.totals, table.totals.train
    assert tr is not None
    return "\n".join([
        f"{table.model}  input {shape(table.input)}  {table.dtype}  policy {table.policy}  "
        "mode train",
        f"params {params_text(t.params, t.frozen_params)}",
        f"MACs: forward {t.macs:,} + backward {tr.backward_macs:,} (dL/dx "
        f"{tr.grad_input_macs:,} + dL/dW {tr.grad_weight_macs:,})",
        f"FLOPs: forward {human(t.flops)} + backward {human(tr.backward_flops)}; step with the "
        f"update: {per_optimizer(dict(tr.step_flops))}",
        f"saved activations {human_bytes(tr.saved_activation_bytes)}  training memory: "
        f"{per_optimizer(dict(t.training_memory_bytes), human_bytes)}",
    ])


def _cells(r: CostRow | BlockRow, units: Units) -> tuple[int, ...]:
    """The compute cells of a row: (forward, dL/dx, dL/dW) MACs or (forward, backward) FLOPs."""
    if units is Units.MACS:
        return r.macs, r.value("grad_input_macs"), r.value("grad_weight_macs")
    return r.flops, r.value("backward_flops")


def rich_table(table: CostTable, units: Units = Units.MACS, depth: int | None = None,
               sort: str | None = None, top: int | None = None) -> RenderableType:
    """The per-layer (or per-block) table of a training step, with totals and conventions."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows = table_rows(table, depth, sort, top)
    t, tr = table.totals, table.totals.train
    assert tr is not None
    totals = ((t.macs, tr.grad_input_macs, tr.grad_weight_macs) if units is Units.MACS
              else (t.flops, tr.backward_flops))
    labels = (("MACs fwd", "dL/dx MACs", "dL/dW MACs") if units is Units.MACS
              else ("FLOPs fwd", "FLOPs bwd"))
    out = Table(box=box.SIMPLE_HEAVY, show_footer=True, title_justify="left")
    # names fold rather than truncate, but never narrower than the header
    widest = max(5, min(max((len(r.name) for r in rows), default=5), 16))
    if depth is not None:
        out.add_column("block", footer="total", overflow="fold", min_width=widest)
        out.add_column("layers", justify="right", footer=str(len(table.layers)), no_wrap=True)
    else:
        out.add_column("layer", footer="total", overflow="fold", min_width=widest)
        out.add_column("kind", footer="", no_wrap=True, min_width=4)
    out.add_column("output", footer=shape(table.input) + " in", no_wrap=True)
    out.add_column("params", justify="right", footer=f"{table.totals.params:,}", no_wrap=True)
    for label, total in zip(labels, totals, strict=True):
        out.add_column(label, justify="right", footer=human(total), no_wrap=True)
    out.add_column("share", justify="right", footer="100%", no_wrap=True)
    saved = sum(r.value("saved_bytes") for r in table.layers)
    out.add_column("saved", justify="right", footer=human_bytes(saved), no_wrap=True)
    step = sum(totals) or 1
    for r in rows:
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        if isinstance(r, CostRow) and r.uncounted:
            second += " [uncounted: " + ", ".join(sorted(r.uncounted)) + "]"
        cells = _cells(r, units)
        out.add_row(Text(r.name), Text(second), shape(r.output_shape), f"{r.params:,}",
                    *(human(c) for c in cells), f"{100 * sum(cells) / step:.1f}%",
                    human_bytes(r.value("saved_bytes")))
    notes: list[RenderableType] = [Text(header(table), style="bold"), out]
    count = row_count(table, depth)
    if len(rows) < count:
        notes.append(Text(f"showing {len(rows)} of {count} "
                          f"{'layers' if depth is None else 'blocks'}"
                          + (f", largest {sort} first" if sort else "")
                          + "; the total is the whole model's", style="dim"))
    if table.uncounted:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(table.uncounted.items()))
        notes.append(Text(f"uncounted ops (no formula, shown as 0): {ops}", style="yellow"))
    notes.append(Text("share = forward + backward of the row / the step's (without the "
                      "update); saved = bytes autograd keeps for the row's backward",
                      style="dim"))
    notes.append(Text("conventions:\n" + "\n".join(f"  - {c}" for c in table.conventions),
                      style="dim"))
    return Group(*notes)


def to_markdown(table: CostTable, depth: int | None = None, sort: str | None = None,
                top: int | None = None) -> str:
    """A Markdown table of the step: forward, dL/dx and dL/dW MACs, FLOPs, saved bytes."""
    t, tr = table.totals, table.totals.train
    assert tr is not None
    lines = markdown_head(table, f"{table.model} (training step)", ", mode `train`")
    lines += [
        f"- params: **{params_text(t.params, t.frozen_params)}**, buffers: {t.buffers:,}",
        f"- MACs: forward **{t.macs:,}**, backward **{tr.backward_macs:,}** (dL/dx "
        f"{tr.grad_input_macs:,}, dL/dW {tr.grad_weight_macs:,})",
        f"- FLOPs: forward {t.flops:,}, backward {tr.backward_flops:,}; step: "
        + ", ".join(f"{o.label} {tr.step_flops[n]:,}" for n, o in OPTIMIZERS.items()),
        f"- saved activations: {tr.saved_activation_bytes:,} B; training memory: "
        + ", ".join(f"{o.label} {t.training_memory_bytes[n]:,} B"
                    for n, o in OPTIMIZERS.items()),
        "",
    ]
    first = "layer | kind" if depth is None else "block | layers"
    lines += [f"| {first} | output | params | MACs | dL/dx MACs | dL/dW MACs | FLOPs | "
              "backward FLOPs | saved bytes |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table_rows(table, depth, sort, top):
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        lines.append(f"| {md_code(r.name)} | {md_cell(second)} | {shape(r.output_shape)} | "
                     f"{r.params:,} | {r.macs:,} | {r.value('grad_input_macs'):,} | "
                     f"{r.value('grad_weight_macs'):,} | {r.flops:,} | "
                     f"{r.value('backward_flops'):,} | {r.value('saved_bytes'):,} |")
    saved = sum(r.value("saved_bytes") for r in table.layers)
    lines.append(f"| **total** | | | **{t.params:,}** | **{t.macs:,}** | "
                 f"**{tr.grad_input_macs:,}** | **{tr.grad_weight_macs:,}** | **{t.flops:,}** | "
                 f"**{tr.backward_flops:,}** | **{saved:,}** |")
    lines += ["", "Conventions:", "", *[f"- {c}" for c in table.conventions], ""]
    return "\n".join(lines)


def write_layers(w: Any, rows: list[CostRow] | list[BlockRow]) -> None:
    """A training step's CSV rows, one per layer, with its backward's exact figures
    (cost.to_csv writes the rest)."""
    w.writerow(TRAIN_CSV_FIELDS)
    for r in rows:
        assert isinstance(r, CostRow) and r.train is not None
        w.writerow([r.name, r.kind, ";".join(shape(s) for s in r.input_shape),
                    shape(r.output_shape), r.params, r.buffers, r.macs, r.flops,
                    r.output_bytes, "" if r.receptive_field is None else r.receptive_field,
                    r.formula, r.train.grad_input_macs, r.train.grad_weight_macs,
                    r.train.backward_flops, r.train.saved_bytes, r.train.backward_formula])

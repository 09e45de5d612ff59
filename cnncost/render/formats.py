"""Machine-readable renderings of a cost table: CSV, Markdown and JSON (with ``--depth`` blocks).

Exact integers everywhere (no SI prefixes); shapes as AxBxC. No torch, no rich.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import Enum
from typing import Any

from cnncost.fmt import counted_on_text, shape
from cnncost.table import BlockRow, CostRow, CostTable, collapse, dumps, row_count, table_rows


class Format(str, Enum):
    """Output formats of analyze/compare/sweep/bench."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MD = "md"
    HTML = "html"  # one self-contained page (render/html.py)


CSV_FIELDS = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs",
              "flops", "output_bytes", "receptive_field", "formula")


BLOCK_CSV_FIELDS = ("name", "layers", "output_shape", "params", "buffers", "macs", "flops",
                    "output_bytes")


def write_blocks(w: Any, rows: Sequence[CostRow | BlockRow], fields: Sequence[str]) -> None:
    """CSV rows of blocks (``--depth``) under the header ``fields``: BLOCK_CSV_FIELDS, then
    any further block figures by name (a training step's)."""
    w.writerow(fields)
    for b in rows:
        assert isinstance(b, BlockRow)
        w.writerow([b.name, b.layers, shape(b.output_shape), b.params, b.buffers, b.macs,
                    b.flops, b.output_bytes,
                    *(b.value(f) for f in fields[len(BLOCK_CSV_FIELDS):])])


def to_csv(table: CostTable, depth: int | None = None, sort: str | None = None,
           top: int | None = None) -> str:
    """One CSV row per layer (or block with ``depth``), exact integers, shapes as AxBxC; a
    training step's with its backward's figures (cnncost.render.train)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = table_rows(table, depth, sort, top)
    if table.train:
        from cnncost.render import train

        if depth is not None:
            write_blocks(w, rows, train.TRAIN_BLOCK_CSV_FIELDS)
        else:
            train.write_layers(w, rows)
    elif depth is not None:
        write_blocks(w, rows, BLOCK_CSV_FIELDS)
    else:
        _write_layers(w, table, rows)
    return buf.getvalue()


def _write_layers(w: Any, table: CostTable, rows: list[CostRow] | list[BlockRow]) -> None:
    frozen = table.totals.frozen_params > 0  # a column only where some parameters are
    w.writerow(CSV_FIELDS[:5] + ("frozen_params",) * frozen + CSV_FIELDS[5:])
    for r in rows:
        assert isinstance(r, CostRow)
        w.writerow([r.name, r.kind, ";".join(shape(s) for s in r.input_shape),
                    shape(r.output_shape), r.params, *[r.frozen_params] * frozen, r.buffers,
                    r.macs, r.flops, r.output_bytes,
                    "" if r.receptive_field is None else r.receptive_field, r.formula])


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def markdown_head(table: CostTable, title: str, mode: str = "") -> list[str]:
    """The lines that open a Markdown table: title, description, source and the recipe
    (input, dtype, policy, then ``mode`` and the --set vars)."""
    recipe = (f"- input: `{shape(table.input)}`, dtype `{table.dtype}`, policy "
              f"`{table.policy}`{mode}")
    if table.vars:
        recipe += ", vars " + ", ".join(f"`{k}={v}`" for k, v in sorted(table.vars.items()))
    lines = [f"# {title}", ""]
    if table.description:
        lines += [md_cell(table.description), ""]
    return [*lines, f"- source: `{table.source}`", recipe]


def to_markdown(table: CostTable, depth: int | None = None, sort: str | None = None,
                top: int | None = None) -> str:
    """A Markdown cost table with the header figures and conventions."""
    if table.train:
        from cnncost.render import train

        return train.to_markdown(table, depth, sort, top)
    t = table.totals
    lines = markdown_head(table, table.model)
    lines += [
        f"- params: **{t.params:,}**"
        + (f" trainable, {t.frozen_params:,} frozen" if t.frozen_params else "")
        + f", buffers: {t.buffers:,}",
        f"- MACs: **{t.macs:,}**, FLOPs: {t.flops:,}",
        f"- activations: {t.activation_bytes:,} B; peak inference memory: "
        f"{t.peak_memory_bytes:,} B",
    ]
    if table.counted_on != "meta":
        lines.append(f"- {counted_on_text(table.counted_on, table.counted_on_reason)}")
    lines.append("")
    rows = table_rows(table, depth, sort, top)
    first = "layer | kind" if depth is None else "block | layers"
    lines += [f"| {first} | output | params | MACs | FLOPs | output bytes |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        second = r.kind if isinstance(r, CostRow) else str(r.layers)
        lines.append(f"| `{r.name}` | {md_cell(second)} | {shape(r.output_shape)} | "
                     f"{r.params:,} | {r.macs:,} | {r.flops:,} | {r.output_bytes:,} |")
    lines.append(f"| **total** | | | **{t.params:,}** | **{t.macs:,}** | **{t.flops:,}** | "
                 f"**{t.activation_bytes:,}** |")
    count = row_count(table, depth)
    if len(rows) < count:
        lines += ["", f"Showing {len(rows)} of {count} rows; the total is the whole model's."]
    lines += ["", "Conventions:", "", *[f"- {c}" for c in table.conventions], ""]
    return "\n".join(lines)


def to_json(table: CostTable, depth: int | None = None) -> str:
    """The cost-table JSON document; with ``depth``, block aggregates in a separate list."""
    if depth is None:
        return table.to_json()
    doc = table.to_dict()
    doc["blocks"] = [b.to_dict() for b in collapse(table.layers, depth)]
    return dumps(doc)


def render_text(table: CostTable, fmt: Format, depth: int | None = None,
                sort: str | None = None, top: int | None = None) -> str:
    """Machine-readable renderings (json, csv, md) and the html page; json always holds
    every layer."""
    if fmt is Format.JSON:
        return to_json(table, depth)
    if fmt is Format.CSV:
        return to_csv(table, depth, sort, top)
    if fmt is Format.MD:
        return to_markdown(table, depth, sort, top)
    if fmt is Format.HTML:
        from cnncost.render.html import table_page

        return table_page(table, depth, sort, top)
    raise ValueError(f"{fmt} is not a text format")

"""What the output formats share: the choices every renderer answers to (``Format``, and
``Units``, a cost table's compute column), a Markdown cell, and the cost table's columns and
Markdown head that its inference and training renderers (render.cost, render.train) both use.

What belongs here: a piece two renderers of different results (or a result and its variant)
share. A result's own rendering is in its renderer (render.cost, render.compare, ...). No
torch, no rich.
"""

from __future__ import annotations

from enum import Enum

from cnncost.fmt import shape
from cnncost.table import CostTable


class Format(str, Enum):
    """Output formats of analyze/compare/sweep/bench."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MD = "md"
    HTML = "html"  # one self-contained page (each renderer's, from the render/html.py kit)


class Units(str, Enum):
    """Which compute column a table shows."""

    MACS = "macs"
    FLOPS = "flops"


CSV_FIELDS = ("name", "kind", "input_shape", "output_shape", "params", "buffers", "macs",
              "flops", "output_bytes", "receptive_field", "formula")


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

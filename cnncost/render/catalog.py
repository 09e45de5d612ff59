"""What ``list`` and ``validate`` print: the bundled specs' catalogue and a spec's layer tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cnncost.fmt import human, shape
from cnncost.render.console import literal

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

    from cnncost.catalog import Listed
    from cnncost.spec import ModelSpec


def list_table(entries: Sequence[Listed], totals: bool = True) -> Table:
    """One row per bundled spec: name, description (or why it does not load), totals."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None)
    table.add_column("name", no_wrap=True)
    table.add_column("description", min_width=30)
    if totals:
        table.add_column("params", justify="right", no_wrap=True)
        table.add_column("MACs", justify="right", no_wrap=True)
    for e in entries:
        if e.error is not None:
            table.add_row(e.name, Text(literal(f"invalid: {e.error}"), style="red"))
            continue
        cells = [e.name, e.description]
        if totals:
            cells += [human(e.params or 0), human(e.macs or 0)]
        table.add_row(*cells)
    return table


def layer_tree(model: ModelSpec) -> Tree:
    """The spec's layers as a tree of its namespaces, each with its kind, fields and shape."""
    from rich.text import Text
    from rich.tree import Tree

    root = Tree(Text.assemble((literal(model.name), "bold"), f"  input {shape(model.input_shape)}"))
    nodes: dict[str, Tree] = {"": root}
    for layer in model.layers:
        parts = layer.path.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in nodes:
                nodes[prefix] = nodes[".".join(parts[:depth - 1])].add(parts[depth - 1])
        parent = nodes[".".join(parts[:-1])]
        detail = ", ".join(f"{k}={v}" for k, v in layer.params.items()
                           if k not in ("dim", "start", "length"))
        parent.add(Text.assemble(literal(f"{parts[-1]}  "), (layer.kind, "cyan"),
                                 literal(f"({detail})") if detail else "",
                                 f"  -> {shape(layer.out_shape)}"))
    return root


def validated_line(model: ModelSpec) -> str:
    """The line under the tree: how many layers, and the output shape."""
    return f"ok: {len(model.layers)} layers, output {shape(model.output_shape)}"

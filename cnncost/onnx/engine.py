"""The cost table of an ONNX graph: its nodes priced by the formula table, without torch.

One row per node that computes on the inputs, in graph order, named after the exporter's
name scopes (cnncost.onnx.names), its cost from its operator's lowering (cnncost.onnx.ops)
and the formulas. What a runtime computes once when it loads the model is no row: nodes
whose inputs are all initializers, constants, or shapes (which are static once the sizes
are set) are folded, as ONNX Runtime folds them. Parameters are the floating-point
initializers the graph reads, each counted once at the first node that reads it (through
folded nodes too: a weight transposed or cast once is still that weight); batch norm's
running mean and variance are buffers. Peak memory replays the nodes' outputs with the
engines' liveness rule (a value dies after its last reader); reshapes are views of their
input, every other output new memory.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnncost.count.conventions import DTYPE_BYTES, Policy, conventions, dtype_check
from cnncost.count.formulas import (
    Factors,
    formula_text,
    policy_flops,
)
from cnncost.count.lowering import Lower, Val, cost_of_calls
from cnncost.count.memory import check_strict, totals_of
from cnncost.errors import OnnxError
from cnncost.graph.walk import dying_after
from cnncost.onnx.fold import TYPE_ONLY
from cnncost.onnx.graph import FLOAT_TYPES, TYPE_NAMES, Graph, Node, Value
from cnncost.onnx.model import load
from cnncost.onnx.names import row_names
from cnncost.onnx.ops import ONNX_OPS, OpMismatch
from cnncost.table import CostRow, CostTable, sum_rows

Shape = tuple[int, ...]

ONNX_CONVENTION = ("ONNX: one row per node that computes on the inputs; nodes computing only "
                   "from initializers, constants and shapes are folded (as runtimes fold "
                   "them); params = the floating-point initializers read, each once (batch-"
                   "norm running statistics as buffers); reshapes are views, other outputs "
                   "new memory")


def count_file(path: str | Path, batch: int | None = None, input: Shape | None = None,
               dtype: str | None = None, policy: Policy | str = Policy.ALL,
               strict: bool = False, source: str | None = None) -> CostTable:
    """The cost table of the ONNX file at ``path`` (see :func:`count_graph`)."""
    graph = load(path, batch, input)
    return count_graph(graph, dtype, policy, strict, source)


def count_graph(graph: Graph, dtype: str | None = None, policy: Policy | str = Policy.ALL,
                strict: bool = False, source: str | None = None) -> CostTable:
    """The cost table of a loaded graph. ``dtype``: floating-point values are counted at
    it (default: the model's own float type); other values at their own size."""
    name = dtype_check(dtype) if dtype is not None else TYPE_NAMES.get(graph.float_type,
                                                                       "float32")
    if name not in DTYPE_BYTES:
        name = "float32"
    elem = DTYPE_BYTES[name]
    pol = Policy(policy)
    steps = [n for n in graph.nodes if n.index not in graph.folded]
    if not steps:
        raise OnnxError(f"{graph.file}: every node computes only from constants; nothing "
                        "runs on the inputs")
    claims = _Claims(graph)
    rows: list[CostRow] = []
    uncounted: Counter[str] = Counter()
    weights = [0, 0]  # parameter and buffer bytes
    for node, row_name in zip(steps, row_names(steps), strict=True):
        row = _row(graph, node, row_name, elem, pol, claims, weights, source)
        uncounted.update(row.uncounted)
        rows.append(row)
    check_strict(strict, uncounted)
    peak = _peak(graph, steps, elem)
    input_bytes = sum(graph.values[n].nbytes(elem) for n in graph.inputs)
    totals = totals_of(sum_rows(rows), 0, (weights[0], weights[1]), input_bytes, peak)
    file = source or graph.file
    opset = graph.opsets.get("", 0)
    about = f"ONNX graph {graph.name!r}, opset {opset}" + (
        f", from {graph.producer}" if graph.producer else "")
    return CostTable(model=Path(graph.file).stem, source=file, input=graph.input_shape,
                     dtype=name, policy=pol.value,
                     conventions=(*conventions(pol, name), ONNX_CONVENTION),
                     layers=tuple(rows), totals=totals, uncounted=dict(uncounted),
                     description=about)


class _Claims:
    """Which floating-point initializers a node reads, directly or through folded nodes,
    that no node before it has read: each is counted once, at its first reader. A constant
    value is walked back once (a later reader of it gets nothing new), so the walk costs
    one visit per value whatever the graph."""

    def __init__(self, graph: Graph) -> None:
        self.floats = {n for n, v in graph.initializers.items() if v.elem_type in FLOAT_TYPES}
        self.producers = {out: node for node in graph.nodes if node.index in graph.folded
                          for out in node.outputs if out}
        self.constants = set(graph.initializers) | set(self.producers)
        self.walked: set[str] = set()

    def new(self, value: str) -> list[str]:
        """The initializers behind ``value`` not claimed yet (sorted), now claimed."""
        found, stack = [], [value]
        while stack:
            v = stack.pop()
            if v in self.walked:
                continue
            self.walked.add(v)
            if v in self.floats:
                found.append(v)
            node = self.producers.get(v)
            if node is not None:  # its values, not what it reads the shape or type of
                skip = TYPE_ONLY.get(node.op, frozenset())
                stack.extend(x for i, x in enumerate(node.inputs) if x and i not in skip)
        return sorted(found)


def _row(graph: Graph, node: Node, name: str, elem: int, policy: Policy, claims: _Claims,
         weights: list[int], source: str | None) -> CostRow:
    values = graph.values
    xs: list[Value | None] = []
    for v in node.inputs:
        if v and v not in values:
            raise OnnxError(f"{graph.file}: {node.label}: the shape of its input {v!r} is "
                            "unknown (a node before it could not be inferred)")
        xs.append(values[v] if v else None)
    outs = _outputs(graph, node)
    spec = ONNX_OPS.get(node.op_name)
    params = buffers = 0
    for i, v in enumerate(node.inputs):
        for init in claims.new(v) if v in claims.constants else ():
            n = math.prod(graph.initializers[init].shape)
            if spec is not None and i in spec.buffers:
                buffers += n
                weights[1] += n * elem
            else:
                params += n
                weights[0] += n * elem
    cost = _cost(graph, node, spec, xs, outs, elem)
    macs, elem_flops, factors, uncounted = cost
    acts = tuple(x.shape for x, v in zip(xs, node.inputs, strict=True)  # not constants
                 if x is not None and v not in claims.constants)
    where = f"{source or graph.file}#{node.index}" + (f" {node.name}" if node.name else "")
    return CostRow(name=name, kind=node.op_name, input_shape=acts,
                   output_shape=outs[0].shape, params=params, buffers=buffers, macs=macs,
                   flops=policy_flops(macs, elem_flops, policy.value),
                   output_bytes=sum(o.nbytes(elem) for o in outs),
                   formula=formula_text(factors) if factors else "", uncounted=uncounted,
                   source=where, factors=factors)


def _outputs(graph: Graph, node: Node) -> list[Value]:
    """The node's outputs with their types; the first must be known, and any that is read."""
    outs = []
    for i, out in enumerate(node.outputs):
        value = graph.values.get(out) if out else None
        if value is None:
            if i == 0:
                raise OnnxError(f"{graph.file}: {node.label}: {_unknown(node)}")
            continue
        outs.append(value)
    if not outs:
        raise OnnxError(f"{graph.file}: {node.label} makes no output")
    return outs


def _unknown(node: Node) -> str:
    if node.op_name not in ONNX_OPS and node.domain not in ("", "ai.onnx.ml"):
        return (f"its output shape is unknown: onnx has no shape inference for the custom "
                f"operator {node.op_name}, and cnncost no formula (counted graphs use "
                "standard ONNX operators)")
    return ("its output shape cannot be inferred before running (it depends on the data, "
            "or on inputs onnx cannot follow); cnncost counts graphs with static shapes")


def _cost(graph: Graph, node: Node, spec: Any, xs: Sequence[Value | None],
          outs: Sequence[Value], elem: int) -> tuple[int, int, tuple[Factors, ...],
                                                    dict[str, int]]:
    """MACs, other FLOPs, factors and uncounted ops of one node, by its lowering and the
    formula table."""
    if spec is None:
        return 0, 0, (), {f"onnx::{node.op_name}" if "::" not in node.op_name
                          else node.op_name: 1}
    present = [x.shape for x in xs if x is not None]
    lo = Lower(elem, present)
    it = iter(lo.inputs)
    vals: list[Val | None] = [next(it) if x is not None else None for x in xs]
    try:
        spec.lower(lo, node, vals, [o.shape for o in outs])
    except (OpMismatch, IndexError, KeyError, TypeError) as exc:
        raise OnnxError(f"{graph.file}: {node.label}: {exc}") from None
    cost = cost_of_calls(lo.calls)
    return cost.macs, cost.elem_flops, cost.factors, cost.uncounted


def _peak(graph: Graph, steps: Sequence[Node], elem: int) -> int:
    """The most activation bytes live at once along the nodes (the inputs not counted, as
    in the other engines): a value dies after its last reader (one nobody reads, at once);
    a view (reshape) shares the memory of what it views."""
    cells: dict[str, list[int]] = {}  # value -> [references, bytes] of the memory it holds
    read = {v for n in steps for v in n.inputs} | set(graph.outputs)
    live = peak = 0

    def drop(key: str) -> int:
        cell = cells.pop(key, None)
        if cell is None:
            return 0
        cell[0] -= 1
        return 0 if cell[0] else cell[1]

    for node, dying in zip(steps, dying_after(steps, list(graph.outputs)), strict=True):
        spec = ONNX_OPS.get(node.op_name)
        view = spec is not None and spec.alias and bool(node.inputs) and bool(node.inputs[0])
        for i, out in enumerate(node.outputs):
            value = graph.values.get(out) if out else None
            if value is None:
                continue
            if view and i == 0:  # the memory it views: an activation's, or none (an input)
                cell = cells.get(node.inputs[0]) or [0, 0]
                cell[0] += 1
            else:
                cell = [1, value.nbytes(elem)]
                live += cell[1]
            cells[out] = cell
        peak = max(peak, live)
        for key in dying:
            live -= drop(key)
        for out in node.outputs:
            if out and out not in read:
                live -= drop(out)
    return peak

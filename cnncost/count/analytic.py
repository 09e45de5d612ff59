"""The analytic engine: a spec's cost table from its own shapes, without torch.

Each layer is lowered (cnncost.count.lowering) to the ATen calls its module makes, and the
calls go through the same formula table the torch engine's dispatch mode uses, so every row,
total and formula is the torch engine's (tests/test_analytic.py holds the two equal). Peak
memory replays the lowerings' allocations and aliases along the spec's execution order with
the torch walk's liveness rule (graph.walk.dying_after): a value dies after its last reader,
a tensor is freed when no value refers to it. A layer lowered for one batch size and dtype is
remembered (a :class:`Program`), so repeated blocks and sweeps cost a lookup.
"""

from __future__ import annotations

import gc
import inspect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from cnncost.count.conventions import DTYPE_BYTES, Policy, check_batch, dtype_check
from cnncost.count.formulas import (
    FORMULAS,
    ZERO_COST_OPS,
    Factors,
    formula_text,
    policy_flops,
)
from cnncost.count.lowering import LOWERINGS, Call, Lower
from cnncost.count.memory import assemble_table
from cnncost.errors import UnsupportedOpError
from cnncost.graph.walk import dying_after
from cnncost.layers import LAYERS
from cnncost.spec import LayerSpec, ModelSpec
from cnncost.table import CostRow, CostTable

if TYPE_CHECKING:
    import torch

Shape = tuple[int, ...]
# (allocations, aliases, values freed after it) of one call; see Program.
Event = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], tuple[int, ...]]


class Program(NamedTuple):
    """One layer lowered at a batch size and dtype: what its row says, and its memory events.

    ``row`` holds the row's fields that depend on the lowering alone (shapes, params, MACs,
    formula, ...). ``events`` replay its calls: each allocates new tensors (value, bytes),
    makes aliases (value, value it views) and then frees the values it read last. Values
    0..n-1 are the layer's inputs; ``result`` is the value the layer returns.
    """

    row: dict[str, Any]
    macs: int
    elem_flops: int
    uncounted: Mapping[str, int]
    param_bytes: int
    buffer_bytes: int
    size: int
    events: tuple[Event, ...]
    result: int


_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {k: p.default for k, p in kind.params.items() if p.default is not inspect.Parameter.empty}
    for name, kind in LAYERS.items()
}
_MAX_CACHE = 100_000
_PROGRAMS: dict[Any, Program] = {}


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None) -> CostTable:
    """Count a resolved spec analytically: the torch engine's table, without torch."""
    # Like the torch engine, count with the cyclic collector paused: nothing here makes a
    # cycle, and a full collection of a big heap (torch imported) costs more than a count.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _count(spec, batch, dtype, policy, strict, source)
    finally:
        if paused:
            gc.enable()


def _count(spec: ModelSpec, batch: int, dtype: str | torch.dtype, policy: Policy | str,
           strict: bool, source: str | None) -> CostTable:
    name = dtype_check(dtype)
    elem = DTYPE_BYTES[name]
    pol = Policy(policy)
    check_batch(batch)
    flops_of = pol.value
    memory = _Memory()
    env: dict[str, Any] = {"input": None}
    rows = []
    uncounted: Counter[str] = Counter()
    param_bytes = buffer_bytes = 0
    for layer, dying in zip(spec.layers, dying_after(spec.layers, [spec.output]), strict=True):
        prog = program(layer, batch, elem)
        env[layer.path] = memory.run(prog, [env[key] for key in layer.inputs])
        for key in dying:
            memory.drop(env.pop(key))
        fields = {**prog.row, "name": layer.path, "kind": layer.kind,
                  "flops": policy_flops(prog.macs, prog.elem_flops, flops_of),
                  "receptive_field": layer.receptive_field,
                  "source": f"{layer.loc.file}:{layer.loc.line}"}
        rows.append(_row(fields))
        if prog.uncounted:
            uncounted.update(prog.uncounted)
        param_bytes += prog.param_bytes
        buffer_bytes += prog.buffer_bytes
    return assemble_table(spec.name, source or spec.file, spec.description,
                          (batch, *spec.input_shape), name, pol, tuple(rows), uncounted,
                          (param_bytes, buffer_bytes), memory.peak, strict)


def program(layer: LayerSpec, batch: int, elem: int) -> Program:
    """The layer lowered at ``batch`` and ``elem`` bytes per element (remembered)."""
    try:
        key: Any = (layer.kind, tuple(layer.params.items()), layer.in_shapes, batch, elem)
        prog = _PROGRAMS.get(key)
    except TypeError:  # a list among the fields (kernel: [3, 5])
        key = (layer.kind, _freeze(layer.params), layer.in_shapes, batch, elem)
        prog = _PROGRAMS.get(key)
    if prog is None:
        prog = _lower(layer, batch, elem)
        if len(_PROGRAMS) < _MAX_CACHE:
            _PROGRAMS[key] = prog
    return prog


_ROW_FIELDS = tuple(f.name for f in fields(CostRow))
# Fields a spec layer leaves at their default (e.g. frozen_params: a spec trains them all).
_ROW_DEFAULTS = {f.name: f.default for f in fields(CostRow) if f.default is not MISSING}


def _row(values: dict[str, Any]) -> CostRow:
    """A CostRow from all its fields. The same object as ``CostRow(**values)``, made without
    the frozen dataclass's __init__ (which sets each field through object.__setattr__: the
    largest part of a remembered layer's cost)."""
    assert len(values) == len(_ROW_FIELDS), set(_ROW_FIELDS) ^ set(values)
    row = object.__new__(CostRow)
    object.__setattr__(row, "__dict__", values)
    return row


def _freeze(params: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple((k, tuple(v) if type(v) is list else v) for k, v in params.items())


def _lower(layer: LayerSpec, batch: int, elem: int) -> Program:
    lowering = LOWERINGS.get(layer.kind)
    if lowering is None:
        raise UnsupportedOpError(
            f"{_where(layer)}: layer kind {layer.kind!r} has no analytic lowering (see "
            "cnncost/count/lowering.py); count it with --engine torch")
    defaults = _DEFAULTS.get(layer.kind)
    fields = {**defaults, **layer.params} if defaults else layer.params
    lo = Lower(elem, [(batch, *s) for s in layer.in_shapes])
    result = lowering(lo, *lo.inputs, **fields)
    out = result.shape
    if out[0] != batch or out[1:] != layer.out_shape:
        raise UnsupportedOpError(
            f"{_where(layer)}: the analytic lowering of {layer.kind!r} gives {_fmt(out)} where "
            f"the spec infers {_fmt((batch, *layer.out_shape))} (a bug in cnncost); count it "
            "with --engine torch")
    macs = elem_flops = 0
    factors: list[Factors] = []
    uncounted: dict[str, int] = {}
    # The formulas as apply_formula applies them (a call form a formula does not know is
    # uncounted), and each value's last reader for the memory events, in one pass.
    last: dict[int, int] = {}
    for i, call in enumerate(lo.calls):
        formula = FORMULAS.get(call.op)
        cost = None
        if formula is not None:
            try:
                cost = formula(*call.args, **call.kwargs, out_shape=call.out_shape)
            except (TypeError, ValueError, IndexError):
                cost = None
        if cost is not None:
            macs += cost.macs
            elem_flops += cost.elem_flops
            if cost.factors is not None:
                factors.append(cost.factors)
        elif formula is not None or call.op not in ZERO_COST_OPS:
            uncounted[call.op] = uncounted.get(call.op, 0) + 1
        for v, _ in call.allocs:
            last[v] = i
        for v, _ in call.aliases:
            last[v] = i
        for v in call.uses:
            last[v] = i
    row = {"input_shape": tuple([v.shape for v in lo.inputs]), "output_shape": out,
           "params": lo.params, "buffers": lo.buffers, "macs": macs,
           "output_bytes": math.prod(out) * elem,
           "formula": formula_text(factors) if factors else "",
           "uncounted": uncounted, "calls": 1, "factors": tuple(factors), "frozen_params": 0}
    return Program(row, macs, elem_flops, uncounted, lo.param_bytes, lo.buffer_bytes, lo.count,
                   _events(lo.calls, lo.same, len(lo.inputs), result.slot, last), result.slot)


def _where(layer: LayerSpec) -> str:
    return f"{layer.loc.file}:{layer.loc.line}: {layer.path}"


def _events(calls: Sequence[Call], same: Sequence[tuple[int, int]], inputs: int,
            result: int, last: dict[int, int]) -> tuple[Event, ...]:
    """Each call's allocations and aliases, and the values whose last reader it is (the
    layer's inputs belong to the walk, its result to the caller); ``last``: each value's
    last call."""
    last.pop(result, None)
    if len(calls) == 1:  # one call: it frees what it made or read, but the result
        frees = tuple([v for v in last if v >= inputs])
        events: list[Event] = [(calls[0].allocs, calls[0].aliases, frees)]
    else:
        per_call: list[list[int]] = [[] for _ in calls]
        for v, i in last.items():
            if v >= inputs:
                per_call[i].append(v)
        events = [(c.allocs, c.aliases, tuple(f)) for c, f in zip(calls, per_call,
                                                                  strict=True)]
    if same:  # values that are an input itself: one more reference to what it holds
        events.append(((), tuple(same), ()))
    return tuple(events)


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


class _Memory:
    """Live activation bytes along the walk: a tensor is a [references, bytes] cell, freed
    when its last reference (a value, or an alias of it) goes."""

    __slots__ = ("live", "peak")

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def run(self, prog: Program, inputs: list[Any]) -> Any:
        """Replay one layer on its inputs' tensors; the tensor its result holds."""
        vals: list[Any] = inputs + [None] * (prog.size - len(inputs))
        for allocs, aliases, frees in prog.events:
            for v, nbytes in allocs:
                self.live += nbytes
                if self.live > self.peak:
                    self.peak = self.live
                vals[v] = [1, nbytes]
            for v, src in aliases:
                cell = vals[src]
                if cell is not None:
                    cell[0] += 1
                vals[v] = cell
            for v in frees:
                self.drop(vals[v])
        return vals[prog.result]

    def drop(self, cell: Any) -> None:
        """One reference fewer to a tensor (None: the model's input, never counted)."""
        if cell is not None:
            cell[0] -= 1
            if not cell[0]:
                self.live -= cell[1]

"""The analytic engine: a spec's cost table from its own shapes, without torch.

Each layer is lowered (cnncost.count.lowering) to the ATen calls its module makes, and the
calls go through the same formula table the torch engine's dispatch mode uses, so every row,
total and formula is the torch engine's (tests/test_analytic.py holds the two equal). Peak
memory replays the lowerings' allocations and aliases along the spec's execution order with
the torch walk's liveness rule (graph.walk.dying_after): a value dies after its last reader,
a tensor is freed when no value refers to it. A layer lowered for one batch size and dtype is
remembered (a :class:`Program`), so repeated blocks and sweeps cost a lookup. The commonest
kinds (conv, batch norm, activations, add, concat, ...) are written out in
cnncost.count.direct: the same program without recording the calls (a spec counted once in
a process lowers every distinct layer; tests/test_direct.py holds the two paths equal).
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cnncost.caches import cache, gc_paused
from cnncost.count.conventions import (
    DTYPE_BYTES,
    Policy,
    check_batch,
    check_layer_batch,
    conventions,
    dtype_check,
)
from cnncost.count.direct import DIRECT, Parts
from cnncost.count.lowering import LOWERINGS, Call, Lower, cost_of_calls
from cnncost.count.memory import check_strict, totals_of
from cnncost.errors import UnsupportedOpError, UsageError
from cnncost.graph.walk import dying_after
from cnncost.layers import LAYERS
from cnncost.spec import LayerSpec, ModelSpec
from cnncost.table import CostRow, CostTable, Totals

if TYPE_CHECKING:
    import torch

Shape = tuple[int, ...]
# (allocations, aliases, values freed after it) of one call; see Program.
Event = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], tuple[int, ...]]


class Program:
    """One layer lowered at a batch size and dtype: what its row says, and its memory events.

    ``row`` holds the row's fields that depend on the lowering alone (shapes, params, MACs,
    formula, ...), made when first asked for (a sweep needs only the totals): the first
    layer's own row (the walk's next rows are copies, each with its layer's own fields), or
    with blanks for those. ``events``
    replay its calls: each allocates new tensors (value, bytes), makes aliases (value, value
    it views) and then frees the values it read last. Values 0..n-1 are the layer's inputs;
    ``result`` is the value the layer returns. Events given as None are the commonest (one
    call making one new tensor, the result, of ``new_bytes``), written out when read (the
    walk replays such a layer without them); given as a function, they are made from
    ``new_bytes`` when read.
    """

    __slots__ = ("_events", "_row", "buffer_bytes", "buffers", "elem_flops", "factors",
                 "flops", "in_shapes", "kind", "macs", "new_bytes", "out_shape",
                 "output_bytes", "param_bytes", "params", "result", "size", "uncounted")

    def __init__(self, kind: str, in_shapes: tuple[Shape, ...], parts: Parts) -> None:
        # parts: see cnncost.count.direct
        (self.out_shape, self.output_bytes, self.params, self.buffers, self.param_bytes,
         self.buffer_bytes, self.size, self.macs, self.elem_flops, self.factors,
         self.uncounted, self._events, new_bytes, self.result) = parts
        self.kind, self.in_shapes = kind, in_shapes
        if new_bytes is None:
            assert isinstance(self._events, tuple)
            new_bytes = _new_bytes(self._events, self.result)
        self.new_bytes = new_bytes
        self.flops = 2 * self.macs + self.elem_flops  # counting every op (Policy.ALL)
        self._row: dict[str, Any] | None = None

    @property
    def events(self) -> tuple[Event, ...]:
        """The memory events (see above)."""
        events = self._events
        if events is None:  # one call: the result made, nothing freed
            return ((((self.result, self.new_bytes),), (), ()),)
        if callable(events):  # written out from the new bytes (direct._bn)
            return cast(tuple[Event, ...], events(self.new_bytes))
        return events

    @property
    def row(self) -> dict[str, Any]:
        """Every field of a CostRow, in order; the layer's own (name, flops under the
        policy, receptive field, source) are filled in per layer."""
        if self._row is None:
            self._row = self.row_of("", 0, None, "")
        return self._row

    def row_of(self, name: str, flops: int, receptive_field: int | None, source: str
               ) -> dict[str, Any]:
        """A new dict of every field of a CostRow, in order, with the layer's own given."""
        return {"name": name, "kind": self.kind, "input_shape": self.in_shapes,
                "output_shape": self.out_shape, "params": self.params,
                "buffers": self.buffers, "macs": self.macs, "flops": flops,
                "output_bytes": self.output_bytes, "receptive_field": receptive_field,
                "receptive_field_axes": None,
                "formula": None if self.factors else "",  # made when read (table._Formula)
                "uncounted": self.uncounted, "calls": 1, "source": source,
                "factors": self.factors, "frozen_params": 0, "train": None}


def _new_bytes(events: tuple[Event, ...], result: int) -> int:
    """The bytes of the program's result where replaying it comes to making that one new
    tensor (most layers: conv, relu, batch norm's empty statistics aside); else -1. So it
    is when nothing is aliased and every other tensor made has no bytes (a free, which only
    ever drops a value the program made, then frees nothing)."""
    nbytes = -1
    for allocs, aliases, _ in events:
        if aliases:
            return -1
        for v, n in allocs:
            if v == result:
                nbytes = n
            elif n:
                return -1
    return nbytes


_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {k: p.default for k, p in kind.params.items() if p.default is not inspect.Parameter.empty}
    for name, kind in LAYERS.items()
}
# Each direct lowering with its kind's defaults (one lookup per layer lowered).
_DIRECT = {kind: (lower, _DEFAULTS.get(kind)) for kind, lower in DIRECT.items()}
_MAX_CACHE = 100_000
_T = TypeVar("_T")
_PROGRAMS: dict[Any, Program] = cache("analytic: layers lowered")


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None, mode: str = "inference") -> CostTable:
    """Count a resolved spec analytically: the torch engine's table, without torch.

    A training step (``mode="train"``) is the torch engine's only: its backward is what
    autograd runs, and this engine runs no autograd (``engines.engine_for`` sends it there)."""
    if mode != "inference":
        raise UsageError(f"mode={mode!r}: the analytic engine counts inference only; a "
                         "training step needs the torch engine (engine='torch', "
                         "--engine torch)")
    name, pol = dtype_check(dtype), Policy(policy)
    rows: list[CostRow] = []
    with gc_paused():  # as the torch engine counts: see cnncost.caches
        sums, uncounted, weights, peak = _walk(spec, batch, DTYPE_BYTES[name],
                                               pol.value == "all", rows)
    # count.memory.assemble_table's inference table, with the totals from the walk's sums
    # (summing the rows again would cost as much as making them)
    check_strict(strict, uncounted)
    input_shape = (batch, *spec.input_shape)
    totals = totals_of(sums, 0, weights, math.prod(input_shape) * DTYPE_BYTES[name], peak)
    return CostTable(model=spec.name, source=source or spec.file, input=input_shape,
                     dtype=name, policy=pol.value, conventions=conventions(pol, name),
                     layers=tuple(rows), totals=totals, uncounted=dict(uncounted),
                     description=spec.description)


def count_totals(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
                 policy: Policy | str = Policy.ALL, strict: bool = False) -> Totals:
    """``count_spec(...).totals`` without making the rows (what a sweep point needs)."""
    name, pol = dtype_check(dtype), Policy(policy)
    with gc_paused():
        sums, uncounted, weights, peak = _walk(spec, batch, DTYPE_BYTES[name],
                                               pol.value == "all", None)
    check_strict(strict, uncounted)
    input_bytes = math.prod((batch, *spec.input_shape)) * DTYPE_BYTES[name]
    return totals_of(sums, 0, weights, input_bytes, peak)


def _walk(spec: ModelSpec, batch: int, elem: int, every_op: bool, rows: list[CostRow] | None
          ) -> tuple[dict[str, int], Counter[str], tuple[int, int], int]:
    """Every layer's program replayed along the spec: (the sums of the rows' summed fields,
    the uncounted ops, the parameter and buffer bytes, the peak activation bytes); with
    ``rows``, each layer's CostRow is appended to it."""
    check_batch(batch)
    check_layer_batch(spec, batch)
    memory = _Memory()
    run = memory.run
    env: dict[str, Any] = {"input": None}
    uncounted: Counter[str] = Counter()
    param_bytes = buffer_bytes = params = buffers = macs = flops = output_bytes = 0
    new_row = object.__new__
    set_dict = _SET_DICT
    live = peak = 0  # memory's, but kept here where a layer makes one new tensor (most)
    for layer, dying, prog, source in zip(*_plan(spec, batch, elem, rows is not None),
                                          strict=True):
        nbytes = prog.new_bytes
        if nbytes >= 0:  # Memory.run's first case, inline (a tensor no alias refers to
            live += nbytes  # yet: its bytes, not a cell)
            if live > peak:
                peak = live
            env[layer.path] = nbytes
        else:
            memory.live, memory.peak = live, peak
            env[layer.path] = run(prog, memory.cells(env, layer.inputs))
            live, peak = memory.live, memory.peak
        for k in dying:  # Memory.drop, inline
            cell = env.pop(k)
            if type(cell) is int:
                live -= cell
            elif cell is not None:
                cell[0] -= 1
                if not cell[0]:
                    live -= cell[1]
        layer_flops = prog.flops if every_op else 2 * prog.macs
        if rows is not None:
            values = prog._row
            if values is None:  # the program's first row: its dict, kept as the next's
                # (Program.row_of, inline; a copy of a whole row's dict with every field
                # set costs less than a dict display of them)
                values = prog._row = _ROW.copy()
                values["name"] = layer.path
                values["kind"] = prog.kind
                values["input_shape"] = prog.in_shapes
                values["output_shape"] = prog.out_shape
                values["params"] = prog.params
                values["buffers"] = prog.buffers
                values["macs"] = prog.macs
                values["flops"] = layer_flops
                values["output_bytes"] = prog.output_bytes
                values["receptive_field"] = layer.receptive_field
                values["receptive_field_axes"] = layer.receptive_field_axes
                values["formula"] = None if prog.factors else ""
                values["uncounted"] = prog.uncounted
                values["source"] = source
                values["factors"] = prog.factors
            else:
                values = values.copy()
                values["name"] = layer.path
                values["flops"] = layer_flops
                values["receptive_field"] = layer.receptive_field
                values["receptive_field_axes"] = layer.receptive_field_axes
                values["source"] = source
            # A CostRow without the frozen dataclass's __init__ (object.__setattr__ per
            # field: the largest part of a remembered layer's cost); the same object as
            # CostRow(**values).
            row = new_row(CostRow)
            set_dict(row, values)
            rows.append(row)
        if prog.uncounted:
            uncounted.update(prog.uncounted)
        params += prog.params
        buffers += prog.buffers
        macs += prog.macs
        flops += layer_flops
        output_bytes += prog.output_bytes
        param_bytes += prog.param_bytes
        buffer_bytes += prog.buffer_bytes
    sums = {"params": params, "buffers": buffers, "macs": macs, "flops": flops,
            "output_bytes": output_bytes}
    return sums, uncounted, (param_bytes, buffer_bytes), peak


# Every field of a CostRow, in order: the ones a program's first row sets left None.
_ROW: dict[str, Any] = {**dict.fromkeys(f.name for f in fields(CostRow)), "calls": 1,
                        "frozen_params": 0, "train": None}
# A CostRow's instance dict set (object.__setattr__(row, "__dict__", d) without its lookup).
_SET_DICT = CostRow.__dict__["__dict__"].__set__


# The spec's layers, the values that die after each, their programs and sources (in four
# sequences: no tuple per layer).
Plan = tuple[Sequence[LayerSpec], Sequence[tuple[Any, ...]], list[Program], list[str]]
_PLANS: dict[tuple[int, int, int], tuple[ModelSpec, Plan]] = cache("analytic: specs planned")
_MAX_PLANS = 16


def _plan(spec: ModelSpec, batch: int, elem: int, keep: bool) -> Plan:
    """Each layer with the values that die after it, its program and its source; ``keep``
    remembers the plan for the spec (a table counted again: no lookups, no liveness)."""
    found = _PLANS.get((id(spec), batch, elem))
    if found is not None and found[0] is spec:
        return found[1]
    programs = _PROGRAMS
    layers = spec.layers
    progs: list[Program] = []
    for layer in layers:
        params = layer.params
        key: Any = (layer.kind, layer.in_shapes, batch, elem, *params, *params.values())
        try:  # (program()'s key, see there)
            prog = programs.get(key)
        except TypeError:  # a list among the fields (kernel: [3, 5])
            prog = program(layer, batch, elem)
        if prog is None:  # (program() without hashing the key again)
            prog = _lower(layer, batch, elem)
            if len(programs) < _MAX_CACHE:
                programs[key] = prog
        progs.append(prog)
    plan = (layers, dying_after(layers, [spec.output]), progs,
            [f"{layer.loc.file}:{layer.loc.line}" for layer in layers])
    if keep:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[(id(spec), batch, elem)] = (spec, plan)  # the spec kept: its id stays its
    return plan


def program(layer: LayerSpec, batch: int, elem: int) -> Program:
    """The layer lowered at ``batch`` and ``elem`` bytes per element (remembered)."""
    params = layer.params
    # One flat tuple: its length tells where the field names end and their values begin.
    try:
        key: Any = (layer.kind, layer.in_shapes, batch, elem, *params, *params.values())
        prog = _PROGRAMS.get(key)
    except TypeError:  # a list among the fields (kernel: [3, 5])
        key = (layer.kind, layer.in_shapes, batch, elem, *params, *_freeze(params))
        prog = _PROGRAMS.get(key)
    if prog is None:
        prog = _lower(layer, batch, elem)
        if len(_PROGRAMS) < _MAX_CACHE:
            _PROGRAMS[key] = prog
    return prog


def _freeze(params: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple([tuple(v) if type(v) is list else v for v in params.values()])


def _lower(layer: LayerSpec, batch: int, elem: int) -> Program:
    kind, shapes = layer.kind, layer.in_shapes
    in_shapes = ((batch, *shapes[0]),) if len(shapes) == 1 else \
        tuple([(batch, *s) for s in shapes])
    direct = _DIRECT.get(kind)  # (every kind in it has a lowering too)
    if direct is not None:
        lower, defaults = direct
        parts = lower(elem, in_shapes, {**defaults, **layer.params} if defaults else
                      layer.params)
        if parts is not None:  # the same program, written out (cnncost.count.direct)
            if parts[0] != (batch, *layer.out_shape):
                _check_out(layer, batch, parts[0])
            return Program(kind, in_shapes, parts)
    lowering = LOWERINGS.get(kind)
    if lowering is None:
        raise UnsupportedOpError(
            f"{_where(layer)}: layer kind {kind!r} has no analytic lowering (see "
            "cnncost/count/lowering.py); count it with --engine torch")
    defaults = _DEFAULTS.get(kind)
    fields = {**defaults, **layer.params} if defaults else layer.params
    return generic_program(layer, lowering, batch, elem, in_shapes, fields)


def _check_out(layer: LayerSpec, batch: int, out: Shape) -> None:
    if out[0] != batch or out[1:] != layer.out_shape:
        raise UnsupportedOpError(
            f"{_where(layer)}: the analytic lowering of {layer.kind!r} gives {_fmt(out)} where "
            f"the spec infers {_fmt((batch, *layer.out_shape))} (a bug in cnncost); count it "
            "with --engine torch")


def generic_program(layer: LayerSpec, lowering: Callable[..., Any], batch: int, elem: int,
                    in_shapes: tuple[Shape, ...], fields: Mapping[str, Any]) -> Program:
    """The layer's program by its lowering (cnncost.count.lowering) and the formulas;
    ``fields`` with the kind's defaults filled in."""
    lo = Lower(elem, in_shapes)
    result = lowering(lo, *lo.inputs, **fields)
    out = result.shape
    _check_out(layer, batch, out)
    macs, elem_flops, factors, uncounted = cost_of_calls(lo.calls)
    # each value's last reader, for the memory events
    last: dict[int, int] = {}
    for i, call in enumerate(lo.calls):
        for v, _ in call.allocs:
            last[v] = i
        for v, _ in call.aliases:
            last[v] = i
        for v in call.uses:
            last[v] = i
    events = _events(lo.calls, lo.same, len(lo.inputs), result.slot, last)
    return Program(layer.kind, in_shapes, (out, math.prod(out) * elem, lo.params, lo.buffers,
                                           lo.param_bytes, lo.buffer_bytes, lo.count, macs,
                                           elem_flops, tuple(factors), uncounted, events,
                                           None, result.slot))


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
    when its last reference (a value, or an alias of it) goes. (The walk holds a tensor
    with one reference as its bytes alone; ``cells`` makes its cell when a program reads
    it, for aliases to share.)"""

    __slots__ = ("live", "peak")

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    @staticmethod
    def cells(env: dict[str, Any], keys: Sequence[str]) -> list[Any]:
        """The cells of the values ``keys``, made where ``env`` holds bytes alone."""
        cells = []
        for k in keys:
            cell = env[k]
            if type(cell) is int:
                cell = env[k] = [1, cell]
            cells.append(cell)
        return cells

    def run(self, prog: Program, inputs: list[Any]) -> Any:
        """Replay one layer on its inputs' tensors; the tensor its result holds."""
        events = prog.events
        if len(events) == 1 and not events[0][1] and not events[0][2]:
            allocs = events[0][0]
            if len(allocs) == 1 and allocs[0][0] == prog.result:
                # one new tensor, the result, and nothing freed: most layers (conv, relu)
                nbytes = allocs[0][1]
                self.live += nbytes
                if self.live > self.peak:
                    self.peak = self.live
                return [1, nbytes]
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
        if type(cell) is int:
            self.live -= cell
        elif cell is not None:
            cell[0] -= 1
            if not cell[0]:
                self.live -= cell[1]

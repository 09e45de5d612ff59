"""The direct lowerings (cnncost.count.direct) make, kind by kind, the program of the generic
path (the kind's lowering in cnncost.count.lowering, then the formulas): the same weights,
MACs, FLOPs, factors, memory events and row, on drawn shapes and fields. That the generic
path is what torch dispatches is tests/test_analytic.py's business."""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_analytic import _fit, single_layers
from tiers import tiered

from cnncost.count import analytic
from cnncost.count.direct import DIRECT
from cnncost.count.lowering import LOWERINGS
from cnncost.layers import LAYERS
from cnncost.table import CostRow

Shape = tuple[int, ...]


def _programs(kind: str, in_shapes: tuple[Shape, ...], fields: dict[str, Any],
              elem: int) -> tuple[analytic.Program | None, analytic.Program]:
    """(the direct program, or None where the kind's direct lowering declines; the generic
    program)."""
    full = {**analytic._DEFAULTS.get(kind, {}), **fields}
    parts = DIRECT[kind](elem, in_shapes, full)
    generic_out = LOWERINGS[kind]  # the generic program checks its output against the layer
    layer: Any = SimpleNamespace(kind=kind, path="x", loc=SimpleNamespace(file="t", line=1),
                                 out_shape=None)
    lo = analytic.Lower(elem, in_shapes)
    layer.out_shape = generic_out(lo, *lo.inputs, **full).shape[1:]
    generic = analytic.generic_program(layer, generic_out, in_shapes[0][0], elem, in_shapes,
                                       full)
    if parts is None:
        return None, generic
    return analytic.Program(kind, in_shapes, parts), generic


def _assert_same(direct: analytic.Program, generic: analytic.Program) -> None:
    for slot in (*analytic.Program.__slots__, "events"):
        if not slot.startswith("_"):  # (events: the property, written out)
            assert getattr(direct, slot) == getattr(generic, slot), slot
    assert direct.row == generic.row
    # the walk makes each CostRow from a copy of this dict: every field, none more
    assert list(direct.row) == [f.name for f in fields(CostRow)]


def test_every_direct_kind_has_a_generic_lowering() -> None:
    assert set(DIRECT) <= set(LOWERINGS)


# the fast tier draws one kind of each class: weights, pooling, an activation, a reshape
@pytest.mark.parametrize("kind", tiered(sorted(set(DIRECT) & set(LAYERS)),
                                        {"linear", "adaptive_avg_pool", "relu", "flatten"}))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), batch=st.integers(1, 3), elem=st.sampled_from([4, 2, 8]))
def test_direct_layer_is_its_generic_program(kind: str, data: st.DataObject, batch: int,
                                             elem: int) -> None:
    shape, fields = data.draw(single_layers(kind))
    direct, generic = _programs(kind, ((batch, *shape),), fields, elem)
    assert generic.out_shape[1:] == _fit(kind, shape, fields)  # the spec's own inference
    assert (direct is None) == _declines(kind, shape, {**analytic._DEFAULTS[kind], **fields})
    if direct is not None:
        _assert_same(direct, generic)


def _declines(kind: str, shape: Shape, fields: dict[str, Any]) -> bool:
    """The forms a direct lowering leaves to the generic one (see cnncost.count.direct)."""
    nd = len(shape) - 1
    if kind == "conv":  # padding="same" with an odd total pads the input first
        kernel, dilation = fields["kernel"], fields["dilation"]
        ks = [kernel] * nd if isinstance(kernel, int) else kernel
        ds = [dilation] * nd if isinstance(dilation, int) else dilation
        return fields["padding"] == "same" and any(
            d * (k - 1) % 2 for k, d in zip(ks, ds, strict=True))
    if kind == "linear":
        return nd != 0
    if kind in ("global_avg_pool", "adaptive_avg_pool"):
        output = fields.get("output", 1)
        return nd < 2 or output not in (1, [1] * nd)
    return False


@pytest.mark.parametrize("kind", sorted(set(DIRECT) - set(LAYERS)))
@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), elem=st.sampled_from([4, 2]), n=st.integers(1, 4),
       shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       channels=st.lists(st.integers(1, 6), min_size=4, max_size=4),
       broadcast=st.booleans())
def test_direct_graph_op_is_its_generic_program(kind: str, batch: int, elem: int, n: int,
                                                shape: list[int], channels: list[int],
                                                broadcast: bool) -> None:
    if kind == "mul":
        n = 2  # x * gate
    if kind == "concat":
        in_shapes = tuple((batch, c, *shape[1:]) for c in channels[:n])
    else:
        in_shapes = tuple((batch, *shape) for _ in range(n))
        if broadcast and n > 1:  # a squeeze-excite gate: (N, C, 1, 1) and (N, C, H, W)
            in_shapes = ((batch, shape[0], *[1] * (len(shape) - 1)), *in_shapes[1:])
    direct, generic = _programs(kind, in_shapes, {}, elem)
    declines = kind == "add" and (n == 1 or len(set(in_shapes)) > 1)
    assert (direct is None) == declines
    if direct is not None:
        _assert_same(direct, generic)

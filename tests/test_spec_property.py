"""What validate accepts, the engines and a real forward pass accept too.

Hypothesis writes small specs from the layer-kind and composite registries with edge values
in every field (0, negative, one too many list entries, NaN, inf, huge numbers, ranks 1 to
4, ``ceil_mode`` on tiny inputs), without asking the shape rules first. Then:

- if the spec compiler refuses the spec, that is one line of SpecError, never another
  exception;
- if it accepts it, the torch engine on meta (``count_spec``), the analytic engine and the
  built GraphModule run on CPU (``build_module`` + a forward on a random tiny input) all
  succeed, and all three agree with the compiler on the output shape; or, at a batch too
  small for a layer (a group norm with one value per group at batch 1), all three refuse.

A refusal the compiler misses shows up as a crash of the count or of the forward pass.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnncost.count import analytic, drivers
from cnncost.errors import SpecError
from cnncost.graph.build import build_module
from cnncost.layers import LAYERS
from cnncost.spec import ModelSpec, parse_spec
from cnncost.spec.composites import COMPOSITES
from cnncost.spec.model import MAX_DIM

# A forward pass on CPU stays quick below this many elements per sample and weights per layer.
MAX_ELEMENTS = 1 << 14

# Usual values three times in four, edge values otherwise (hypothesis shrinks toward the
# first of each list).
_INTS = ([1, 2, 3, 4], [0, -1, 5, 7, 16, MAX_DIM, MAX_DIM + 1, 1 << 40])
_FLOATS = ([0.5, 1e-5, 0.1, 0.0], [1.0, -0.5, 2.0, math.nan, math.inf, -math.inf, 1e300])


def _mostly(values: tuple[list[Any], list[Any]], edge: bool) -> st.SearchStrategy[Any]:
    usual = st.sampled_from(values[0])
    return st.one_of(usual, usual, usual, st.sampled_from(values[1])) if edge else usual


def _field(hint: Any, nd: int, edge: bool) -> st.SearchStrategy[Any]:
    """Values for a field of this type hint: usual ones, and edge ones if ``edge``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return _mostly(_INTS, edge)
    if hint is float:
        return _mostly(_FLOATS, edge)
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        # nd entries usually, one too many or too few sometimes
        return _mostly(([nd], [max(nd - 1, 0), nd + 1]), edge).flatmap(
            lambda n: st.lists(_field(args[0], nd, edge), min_size=n, max_size=n))
    if args:  # a union
        return st.one_of(*(_field(a, nd, edge) for a in args))
    raise AssertionError(f"no strategy for {hint!r}")


@st.composite
def layer_item(draw: st.DrawFn, nd: int, edge: bool) -> Any:
    """An item of a registered layer kind with fields drawn from its signature."""
    kind = draw(st.sampled_from(sorted(LAYERS)))
    lk = LAYERS[kind]
    fields = {}
    for name, param in lk.params.items():
        optional = param.default is not inspect.Parameter.empty
        if (optional and draw(st.integers(0, 2)) == 0) or (
                not optional and edge and draw(st.integers(0, 30)) == 0):
            continue  # a required field is left out now and then
        fields[name] = draw(_field(lk.hints[name], max(nd, 1), edge))
    return {kind: fields} if fields else kind


@dataclass
class Gen:
    """What one generated spec shares: its taps so far, and whether it draws edge values."""

    edge: bool
    taps: list[str] = field(default_factory=list)


@st.composite
def items(draw: st.DrawFn, nd: int, depth: int, gen: Gen, most: int = 3) -> list[Any]:
    """A list of layers and composites."""
    out = []
    for _ in range(draw(st.integers(0 if depth else 1, most))):
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            names = sorted(n for n in COMPOSITE_ITEMS if n != "join" or gen.taps)
            name = draw(st.sampled_from(names))
            out.append(draw(COMPOSITE_ITEMS[name](nd, depth + 1, gen)))
        else:
            out.append(draw(layer_item(nd, gen.edge)))
    return out


Maker = Callable[[int, int, Gen], st.SearchStrategy[Any]]


def _body(key: str) -> Maker:
    @st.composite
    def make(draw: st.DrawFn, nd: int, depth: int, gen: Gen) -> Any:
        item: dict[str, Any] = {key: draw(items(nd, depth, gen))}
        if draw(st.integers(0, 3)) == 0:
            item["repeat"] = draw(st.sampled_from([2, 0, 1, 3]))
        return item

    return make


@st.composite
def _residual(draw: st.DrawFn, nd: int, depth: int, gen: Gen) -> Any:
    body = draw(items(nd, depth, gen))
    if draw(st.booleans()):
        return {"residual": body}
    return {"residual": {"layers": body, "shortcut": draw(items(nd, depth, gen, most=1)),
                         "when": draw(st.booleans())}}


def _parallel(key: str) -> Maker:
    @st.composite
    def make(draw: st.DrawFn, nd: int, depth: int, gen: Gen) -> Any:
        n = draw(st.integers(2, 4))  # three or more branches too
        return {key: [draw(items(nd, depth, gen, most=2)) for _ in range(n)]}

    return make


def _tap(nd: int, depth: int, gen: Gen) -> st.SearchStrategy[Any]:
    gen.taps.append(f"t{len(gen.taps) + 1}")
    return st.just({"tap": gen.taps[-1]})


@st.composite
def _join(draw: st.DrawFn, nd: int, depth: int, gen: Gen) -> Any:
    return {"join": {"tap": draw(st.sampled_from(gen.taps)),
                     "mode": draw(st.sampled_from(["concat", "add"])),
                     "crop": draw(st.booleans())}}


COMPOSITE_ITEMS: dict[str, Maker] = {
    "seq": _body("seq"), "group": _body("group"), "scale": _body("scale"),
    "residual": _residual, "add": _parallel("add"), "concat": _parallel("concat"),
    "split": _parallel("split"), "tap": _tap, "join": _join,
}


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """A spec of usual values, or (half of them) of usual and edge values."""
    nd = draw(st.sampled_from([2, 1, 3, 0]))
    high = {0: 16, 1: 12, 2: 9, 3: 5}[nd]
    shape = [draw(st.integers(1, 8)), *(draw(st.integers(1, high)) for _ in range(nd))]
    layers = draw(items(nd, 0, Gen(edge=draw(st.booleans())), most=5))
    return yaml.safe_dump({"input": shape, "layers": layers}, sort_keys=False)


def _small(spec: ModelSpec) -> bool:
    """Small enough for a quick forward pass on CPU."""
    return all(math.prod(layer.out_shape) <= MAX_ELEMENTS and (
        layer.built is None or layer.built.weight_elements <= MAX_ELEMENTS)
        for layer in spec.layers)


def test_generators_cover_every_composite() -> None:
    assert set(COMPOSITE_ITEMS) == set(COMPOSITES)


@pytest.mark.slow  # oracle: a real forward pass per drawn spec
@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(text=spec_texts(), batch=st.integers(1, 2))
def test_what_validate_accepts_runs(text: str, batch: int) -> None:
    check(text, batch)


def check(text: str, batch: int) -> None:
    """Validate ``text``; if it is accepted, count it and run it (see the module's doc)."""
    try:
        spec = parse_spec(text, "gen.yaml")
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("gen.yaml")
        return
    assume(_small(spec))
    want = (batch, *spec.output_shape)
    try:
        table = drivers.count_spec(spec, batch=batch)
    except SpecError as exc:  # a batch too small for a layer: all three refuse it
        assert "expected --batch" in str(exc) and str(exc).startswith("gen.yaml")
        with pytest.raises(SpecError, match="expected --batch"):
            analytic.count_spec(spec, batch=batch)
        with pytest.raises((RuntimeError, ValueError)), torch.no_grad():
            build_module(spec)(torch.randn(batch, *spec.input_shape))
        return
    rows = {row.name: row for row in table.layers}
    assert tuple(rows[spec.output].output_shape) == want
    assert analytic.count_spec(spec, batch=batch).to_json() == table.to_json()
    gm = build_module(spec)
    with torch.no_grad():
        y = gm(torch.randn(batch, *spec.input_shape))
    assert tuple(y.shape) == want


@st.composite
def single_layer_specs(draw: st.DrawFn, kind: str) -> str:
    """One layer of ``kind`` (then a relu) on an input of any rank, usual and edge values."""
    nd = draw(st.sampled_from([2, 1, 3, 0]))
    high = {0: 16, 1: 12, 2: 9, 3: 5}[nd]
    shape = [draw(st.integers(1, 8)), *(draw(st.integers(1, high)) for _ in range(nd))]
    lk = LAYERS[kind]
    edge = draw(st.booleans())
    fields = {name: draw(_field(lk.hints[name], max(nd, 1), edge))
              for name, param in lk.params.items()
              if param.default is inspect.Parameter.empty or draw(st.booleans())}
    return yaml.safe_dump({"input": shape, "layers": [{kind: fields} if fields else kind,
                                                      "relu"]}, sort_keys=False)


@pytest.mark.slow  # oracle: a real forward pass per drawn spec
@pytest.mark.parametrize("kind", sorted(LAYERS))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), batch=st.integers(1, 2))
def test_every_layer_kind_runs_what_validate_accepts(kind: str, data: st.DataObject,
                                                     batch: int) -> None:
    check(data.draw(single_layer_specs(kind)), batch)

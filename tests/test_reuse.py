"""One spec compiled at many variable values (cnncost.spec.reuse) equals compiling each point
from scratch, and a fast sweep equals counting each point on its own (analytic and torch).

No figure here is expected by value: every test holds the reusing path to the from-scratch
path (parse_spec, analyze_target), which the other test files hold to hand-worked numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_analytic import generated_specs
from tiers import tiered

from cnncost.api import analyze_target
from cnncost.errors import SpecError
from cnncost.sources import bundled_specs
from cnncost.spec import ModelSpec, compile_spec, load_yaml, parse_spec, resolve_extends
from cnncost.spec.compiler import compile_top
from cnncost.spec.reshape import Compilation
from cnncost.spec.reuse import Recompiler
from cnncost.sweep import run_sweep

BUNDLED = bundled_specs()
TOP = [n for n in BUNDLED if "/" not in n]  # (not the textbook's blocks)
# Resolutions around the usual ones, odd ones, and ones too small for some networks.
RESOLUTIONS = (224, 160, 232, 225, 97, 64, 31, 8)


def _compiled(text: str, file: str, overrides: dict[str, Any]) -> ModelSpec | str:
    try:
        return parse_spec(text, file, overrides)
    except SpecError as exc:
        return f"error: {exc}"


def _reused(rc: Recompiler, overrides: dict[str, Any]) -> ModelSpec | str:
    try:
        return rc.compile(overrides)
    except SpecError as exc:
        return f"error: {exc}"


def _same(got: ModelSpec | str, want: ModelSpec | str) -> None:
    assert got == want
    if isinstance(got, ModelSpec) and isinstance(want, ModelSpec):
        # equal layer by layer, the built modules' shapes and receptive fields too
        assert [(g.built and g.built.out_shape, g.receptive_field) for g in got.layers] == \
            [(w.built and w.built.out_shape, w.receptive_field) for w in want.layers]


# the fast tier leaves out the nets that only repeat, bigger, the blocks of the ones it keeps
@pytest.mark.parametrize("name", tiered(TOP, set(TOP) - {
    "efficientnet_b0", "resnet50", "mobilenetv2", "googlenet", "shufflenetv2_x1_0"}))
def test_recompiled_equals_compiled_over_resolutions(name: str) -> None:
    path = BUNDLED[name]
    text = Path(path).read_text()
    rc = Recompiler(text, str(path))
    for res in RESOLUTIONS:
        _same(_reused(rc, {"res": res}), _compiled(text, str(path), {"res": res}))


def test_reuse_happens_where_only_the_input_moves() -> None:
    path = BUNDLED["resnet50"]
    rc = Recompiler(Path(path).read_text(), str(path))
    for res in (224, 160, 232, 225):
        rc.compile({"res": res})
    assert rc.reused == 3


OTHER_VARIABLES = [
    ("mobilenetv2", "width", (1.0, 0.75, 0.5, 1.0, 1.4)),
    ("resnet50", "depth", (50, 101, 50, 18, 34)),
    ("efficientnet_b0", "depth", (1.0, 1.1, 1.2, 1.0)),
    ("densenet121", "growth", (32, 12, 32)),
]


# the fast tier recompiles over one variable: a net's depth, the one that changes its blocks
@pytest.mark.parametrize("name,var,values", tiered(
    OTHER_VARIABLES, {"resnet50-depth"}, ids=[f"{n}-{v}" for n, v, _ in OTHER_VARIABLES]))
def test_recompiled_equals_compiled_over_other_variables(name: str, var: str,
                                                         values: tuple[Any, ...]) -> None:
    path = BUNDLED[name]
    text = Path(path).read_text()
    assert var in parse_spec(text, str(path)).vars
    rc = Recompiler(text, str(path))
    for value in values:
        for res in (224, 192):
            point = {var: value, "res": res}
            _same(_reused(rc, point), _compiled(text, str(path), point))


# Specs whose layers depend on the resolution in ways the layers' shapes alone do not show.
DEPENDENT = {
    # a derived variable: `half` moves with res, and a conv reads it
    "derived": """\
vars: {res: 32, half: "res // 2"}
input: [3, res, res]
layers:
  - conv: {out: half, kernel: 3, padding: 1}
  - global_avg_pool
""",
    # a condition on the resolution
    "condition": """\
vars: {res: 32}
input: [3, res, res]
layers:
  - conv: {out: 8, kernel: 3}
  - {max_pool: {kernel: 2}, if: "res > 40"}
  - flatten
""",
    # `in` after a flatten counts the spatial sizes
    "flatten_in": """\
vars: {res: 32}
input: [3, res, res]
layers:
  - conv: {out: 4, kernel: 3}
  - flatten
  - linear: {out: "in // 4"}
""",
    # a cropping join: how many crops there are depends on the sizes
    "crop": """\
vars: {res: 32}
input: [3, res, res]
layers:
  - tap: skip
  - conv: {out: 3, kernel: 3, padding: "res % 2"}
  - join: {tap: skip, mode: add, crop: true}
""",
    # a hidden variable read by the layers, a name template over the vars, a split
    "hidden": """\
name: "net{_w}"
vars: {res: 32, _w: 8}
input: [3, res, res]
layers:
  - conv: {out: "_w * 2", kernel: 1}
  - split: {a: [], b: [relu]}
""",
}


@pytest.mark.parametrize("name", list(DEPENDENT))
def test_recompiled_equals_compiled_where_layers_depend_on_the_resolution(name: str) -> None:
    text = DEPENDENT[name]
    rc = Recompiler(text, f"{name}.yaml")
    for point in ({"res": 32}, {"res": 48}, {"res": 33}, {"res": 2}, {"res": 32},
                  {"res": 64, **({"_w": 4} if name == "hidden" else {})}):
        _same(_reused(rc, point), _compiled(text, f"{name}.yaml", point))


@pytest.mark.slow  # oracle: each point counted alone
def test_fast_sweep_equals_each_point_counted_alone() -> None:
    sweep = run_sweep("resnet50", ["res=32..320:24"], batch="1,3")
    for r in sweep.results:
        t = analyze_target("resnet50", overrides={"res": r.point.vars["res"]},
                           batch=r.point.batch).totals
        assert (r.params, r.macs, r.flops, r.activation_bytes, r.peak_memory_bytes) == \
            (t.params, t.macs, t.flops, t.activation_bytes, t.peak_memory_bytes)


def test_fast_sweep_equals_the_torch_engine() -> None:
    fast = run_sweep("mobilenetv2", ["res=96..224:64"], engine="analytic")
    oracle = run_sweep("mobilenetv2", ["res=96..224:64"], engine="torch")
    assert fast.results == oracle.results


@pytest.mark.slow  # hypothesis: 150 generated specs
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=generated_specs(), grow=st.integers(-3, 6))
def test_reshaped_equals_compiled_on_generated_specs(text: str, grow: int) -> None:
    """Specs from every layer kind and composite (tests/test_analytic.py's generator) at
    another input size: where the reshaping is taken, it is what compiling gives."""
    doc = resolve_extends(load_yaml(text, "gen.yaml"), "gen.yaml")
    spec, base = Compilation.of(doc, "gen.yaml", {})
    c, *sizes = spec.input_shape
    other = (c, *(max(1, n + grow) for n in sizes))
    try:
        full: ModelSpec | str = compile_spec(doc, "gen.yaml", {}, other)
    except SpecError as exc:
        full = f"error: {exc}"
    try:  # the input as the Recompiler checks it, before reshaping
        top = compile_top(doc, "gen.yaml", {}, other)
    except SpecError:
        assert isinstance(full, str)
        return
    fast = None if base is None else base.at(top)
    if fast is not None:
        _same(fast, full)

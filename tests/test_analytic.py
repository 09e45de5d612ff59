"""The analytic engine against the torch engine (the oracle): identical documents.

Both engines must give the same ``CostTable.to_json()`` - every row, every field, peak and
training memory - on every bundled spec, at other batch sizes, dtypes, policies, inputs and
variable values, and on specs hypothesis generates from the layer-kind and composite
registries. Each lowering is also held to what its module really dispatches on meta: the
same ATen ops with the same arguments (tensors as shapes), and as many new tensors.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from typing import Any

import fresh
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tiers import tiered
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from cnncost.count import analytic, drivers
from cnncost.count.formulas import FORMULAS
from cnncost.count.lowering import LOWERINGS, Lower
from cnncost.errors import LayerError, SpecError, UnsupportedOpError
from cnncost.layers import LAYERS, Built, register_layer
from cnncost.sources import bundled_specs
from cnncost.spec import ModelSpec, load_spec, parse_spec
from cnncost.spec.composites import COMPOSITES
from cnncost.spec.model import OP_KINDS

BUNDLED = bundled_specs()
Shape = tuple[int, ...]


def assert_same(spec: ModelSpec, **kw: Any) -> None:
    oracle = drivers.count_spec(spec, **kw).to_json()
    assert analytic.count_spec(spec, **kw).to_json() == oracle


# --------------------------------------------------------------------------- bundled specs


# an oracle (the torch engine): the fast tier leaves out the nets that only repeat, bigger,
# the blocks of the ones it keeps (mobilenetv2's inverted residuals, squeezenet1_1's
# concatenations, resnet18's residuals)
@pytest.mark.parametrize("name", tiered(list(BUNDLED), set(BUNDLED) - {
    "mobilenetv3_small", "efficientnet_b0", "googlenet", "shufflenetv2_x1_0", "resnet50"}))
def test_bundled_spec_identical(name: str) -> None:
    assert_same(load_spec(BUNDLED[name]))


@pytest.mark.slow  # oracle: the torch engine
@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_spec_identical_at_other_batch_dtype_and_policy(name: str) -> None:
    spec = load_spec(BUNDLED[name])
    assert_same(spec, batch=3, dtype="float16", policy="conv+linear")
    assert_same(spec, batch=2, dtype="bfloat16")


def _other_values(value: Any) -> list[Any]:
    """Candidates for another value of a spec variable (the first that compiles is used)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    if isinstance(value, int):
        return [v for v in (value + value // 2, value - value // 4, value + 1, 2 * value)
                if v > 0 and v != value]
    return [value * 0.75, value * 0.5, value * 1.25]


def _other_inputs(shape: Shape) -> list[Shape]:
    c, *sizes = shape
    return [(c, *(n + d for n in sizes)) for d in (32, 16, 8, 1, -8)]


@pytest.mark.slow  # oracle: the torch engine
@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_spec_identical_at_other_vars_and_inputs(name: str) -> None:
    """Every variable moved on its own (--set), then another input (--input)."""
    base = load_spec(BUNDLED[name])
    variants: list[ModelSpec] = []
    for var, value in base.vars.items():
        for other in _other_values(value):
            try:
                variants.append(load_spec(BUNDLED[name], overrides={var: other}))
                break
            except SpecError:
                continue
    for shape in _other_inputs(base.input_shape):
        try:
            variants.append(load_spec(BUNDLED[name], input_shape=shape))
            break
        except SpecError:
            continue
    assert variants, f"{name}: no other value of any variable or input compiles"
    for spec in variants:
        assert_same(spec)


# --------------------------------------------------------------------------- the registries


def test_every_layer_kind_and_graph_op_has_a_lowering() -> None:
    assert set(LAYERS) | set(OP_KINDS) == set(LOWERINGS)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_lowering_takes_the_keys_of_its_layer_kind(kind: str) -> None:
    params = inspect.signature(LOWERINGS[kind]).parameters
    keys = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keys == list(LAYERS[kind].params)


def test_the_cost_of_calls_is_one_rule_for_both_analytic_engines() -> None:
    # (the spec engine and the ONNX engine sum their lowered calls with it)
    from cnncost.count.lowering import Call, cost_of_calls

    def call(op: str, *args: Any, out: Any) -> Call:
        return Call(op, args, {}, out, (), (), ())

    cost = cost_of_calls([
        call("aten::mm", (2, 3), (3, 4), out=(2, 4)),  # 2 x 4 outputs of 3 products: 24 MACs
        call("aten::view", (2, 4), [8], out=(8,)),  # data movement: costs nothing, not listed
        call("aten::mm", (2, 3), out=(2, 4)),  # a form the formula cannot read: listed
        call("aten::no_such_op", (2, 3), out=(2, 3)),  # no formula: listed
        call("aten::mm", (1, 5), (5, 1), out=(1, 1)),  # 5 MACs
    ])
    assert (cost.macs, cost.elem_flops) == (24 + 5, 0)
    assert len(cost.factors) == 2
    assert cost.uncounted == {"aten::mm": 1, "aten::no_such_op": 1}


def test_a_kind_without_a_lowering_is_an_error_naming_it() -> None:
    def made_up(in_shape: Shape) -> Built:
        """A kind the analytic engine has never heard of."""
        return Built(in_shape, lambda: torch.nn.Identity())

    register_layer("made_up")(made_up)
    try:
        spec = parse_spec("input: [3, 4, 4]\nlayers:\n  - relu\n  - made_up\n", "new.yaml")
        with pytest.raises(UnsupportedOpError,
                           match=r"^new\.yaml:4: made_up1: layer kind 'made_up' has no "
                                 r"analytic lowering"):
            analytic.count_spec(spec)
    finally:
        del LAYERS["made_up"]


def test_programs_are_shared_by_equal_layers() -> None:
    spec = load_spec(BUNDLED["resnet50"])
    analytic.count_spec(spec, batch=7)
    blocks = [layer for layer in spec.layers if layer.path.startswith("layer3.")]
    assert analytic.program(blocks[0], 7, 4) is not analytic.program(blocks[1], 7, 4)
    same = [layer for layer in spec.layers if layer.path in ("layer3.2.conv1", "layer3.3.conv1")]
    assert analytic.program(same[0], 7, 4) is analytic.program(same[1], 7, 4)


# --------------------------------------------------------------------------- generated specs

# Fields are drawn from each layer kind's signature (its type hints), so a new kind or a
# new key is generated without editing this file; a draw its shape rule refuses is redrawn.
_INT = st.sampled_from([1, 2, 3, 0, 4])  # the simplest draw (1) fits most kinds
MAX_ELEMENTS = 1 << 12  # per sample, to keep the torch engine quick


def _strategy(hint: Any, nd: int) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return _INT
    if hint is float:
        return st.sampled_from([0.0, 0.01, 0.2, 0.5, 1.0, 1e-5])
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(_strategy(args[0], nd), min_size=nd, max_size=nd)
    if args:  # a union
        return st.one_of(*(_strategy(a, nd) for a in args))
    raise AssertionError(f"no strategy for {hint!r}")


def _fields(draw: st.DrawFn, kind: str, nd: int) -> dict[str, Any]:
    """Fields for ``kind`` drawn from its signature; an optional key is left out half the time."""
    layer_kind = LAYERS[kind]
    fields = {}
    for name, param in layer_kind.params.items():
        if param.default is not inspect.Parameter.empty and draw(st.booleans()):
            continue
        fields[name] = draw(_strategy(layer_kind.hints[name], nd))
    return fields


def _fit(kind: str, shape: Shape, fields: dict[str, Any]) -> Shape | None:
    """The output shape of ``kind`` on ``shape``, or None if its shape rule refuses."""
    try:
        out = LAYERS[kind].fn(shape, **fields).out_shape
    except (LayerError, ValueError, TypeError, ZeroDivisionError):
        return None
    if kind == "group_norm" and shape[0] // fields["groups"] * math.prod(shape[1:]) == 1:
        return None  # nn.GroupNorm refuses to normalise one value per group at batch 1
    return None if math.prod(out) > MAX_ELEMENTS or 0 in out else out


@st.composite
def layer_items(draw: st.DrawFn, shape: Shape) -> tuple[Any, Shape] | None:
    """A layer item of any registered kind that fits ``shape``, and its output shape."""
    for _ in range(4):
        kind = draw(st.sampled_from(sorted(LAYERS)))
        for _ in range(4):
            fields = _fields(draw, kind, max(len(shape) - 1, 1))
            out = _fit(kind, shape, fields)
            if out is not None:
                return ({kind: fields} if fields else kind), out
    return None


@st.composite
def bodies(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int,
           most: int = 3) -> tuple[list[Any], Shape]:
    """A list of items (layers and composites) from ``shape``, and its output shape."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, most))):
        composite = depth < 2 and draw(st.integers(0, 2)) == 0
        if composite:
            names = sorted(COMPOSITE_ITEMS)
            name = "join" if ctx["taps"] and draw(st.booleans()) else draw(st.sampled_from(names))
            taps = dict(ctx["taps"])
            made = draw(COMPOSITE_ITEMS[name](shape, ctx, depth + 1))
            if made is None:  # its taps are not in the spec
                ctx["taps"] = taps
        else:
            made = draw(layer_items(shape))
        if made is None:
            continue
        item, shape = made
        items.append(item)
    return items, shape


Made = tuple[Any, Shape] | None


def _conv1x1(c: int) -> dict[str, Any]:
    return {"conv": {"out": c, "kernel": 1}}


@st.composite
def _seq(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    body, out = draw(bodies(shape, ctx, depth))
    return {"seq": body}, out


@st.composite
def _group(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    """Items in the enclosing namespace; repeated when they keep the shape (and neither tap
    nor name anything: names are unique in a namespace)."""
    before = len(ctx["taps"]), ctx.get("names", 0)
    body, out = draw(bodies(shape, ctx, depth))
    if out == shape and (len(ctx["taps"]), ctx.get("names", 0)) == before and draw(st.booleans()):
        return {"group": body, "repeat": 2}, out
    return {"group": body}, out


@st.composite
def _residual(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    body, out = draw(bodies(shape, ctx, depth))
    if out == shape:
        return {"residual": body}, out
    if len(out) == len(shape) > 1 and out[1:] == shape[1:]:
        return {"residual": {"layers": body, "shortcut": [_conv1x1(out[0])]}}, out
    return None


@st.composite
def _branches(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int,
              join: str) -> Made:
    """concat (equal sizes but channels) or add (equal shapes, or a pooled one to broadcast),
    two or three branches; ``[]`` is the identity."""
    first, out = draw(bodies(shape, ctx, depth))
    branches = [first]
    for _ in range(draw(st.integers(1, 2))):
        if join == "add" and len(out) == 3 and draw(st.booleans()):
            if out == shape:  # x + mean(x): sizes of 1 broadcast
                branches.append(["global_avg_pool"])
            continue
        if out == shape or (join == "concat" and out[1:] == shape[1:]):
            branches.append([])
        elif len(out) == len(shape) > 1 and out[1:] == shape[1:]:
            branches.append([_conv1x1(out[0])] if join == "add" else [_conv1x1(2)])
    if len(branches) < 2:
        return None
    if join == "concat":
        chans = out[0] + sum(shape[0] if not b else 2 for b in branches[1:])
        out = (chans, *out[1:])
    return {join: branches, "name": _name(ctx, join)}, out


def _name(ctx: dict[str, Any], kind: str) -> str:
    """A unique name: unnamed branches are branch1, branch2, ... in every composite."""
    ctx["names"] = ctx.get("names", 0) + 1
    return f"{kind}_{ctx['names']}"


@st.composite
def _concat(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    return draw(_branches(shape, ctx, depth, "concat"))


@st.composite
def _add(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    return draw(_branches(shape, ctx, depth, "add"))


@st.composite
def _split(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    parts = draw(st.integers(2, 3))
    if shape[0] % parts:
        return None
    chunk = (shape[0] // parts, *shape[1:])
    branches: list[Any] = [[]]
    chans = chunk[0]
    for _ in range(parts - 1):
        taps = dict(ctx["taps"])
        body, out = draw(bodies(chunk, ctx, depth, most=2))
        if out[1:] != chunk[1:] or len(out) != len(chunk):
            body, out = [], chunk
            ctx["taps"] = taps
        branches.append(body)
        chans += out[0]
    return {"split": branches, "name": _name(ctx, "split")}, (chans, *shape[1:])


@st.composite
def _scale(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    if len(shape) == 1:
        return {"scale": ["sigmoid"]}, shape
    gate = ["global_avg_pool", _conv1x1(shape[0]), "hardsigmoid"]
    return {"scale": gate if draw(st.booleans()) else [_conv1x1(shape[0]), "sigmoid"]}, shape


def _tap(shape: Shape, ctx: dict[str, Any], depth: int) -> st.SearchStrategy[Made]:
    name = f"t{len(ctx['taps']) + 1}"
    ctx["taps"][name] = shape
    return st.just(({"tap": name}, shape))


@st.composite
def _join(draw: st.DrawFn, shape: Shape, ctx: dict[str, Any], depth: int) -> Made:
    """A long skip from an earlier tap: added (equal channels) or concatenated, with its
    centre cropped out when it is larger."""
    for name, tapped in ctx["taps"].items():
        if len(tapped) != len(shape) or len(shape) < 2:
            continue
        if any(t < s for t, s in zip(tapped[1:], shape[1:], strict=True)):
            continue
        crop = tapped[1:] != shape[1:]
        mode = "add" if tapped[0] == shape[0] and draw(st.booleans()) else "concat"
        out = shape if mode == "add" else (tapped[0] + shape[0], *shape[1:])
        return {"join": {"tap": name, "mode": mode, "crop": crop}}, out
    return None


COMPOSITE_ITEMS: dict[str, Callable[..., st.SearchStrategy[Made]]] = {
    "seq": _seq, "group": _group, "residual": _residual, "concat": _concat, "add": _add,
    "split": _split, "scale": _scale, "tap": _tap, "join": _join,
}


@st.composite
def generated_specs(draw: st.DrawFn) -> str:
    nd = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 8)), *(draw(st.integers(4, 10 if nd < 3 else 6))
                                         for _ in range(nd)))
    layers, _ = draw(bodies(shape, {"taps": {}}, 0, most=8))
    text = yaml.safe_dump({"input": list(shape), "layers": layers}, sort_keys=False)
    try:
        parse_spec(text, "gen.yaml")
    except SpecError as exc:
        if "expected at least one layer" not in str(exc):
            raise
        # only empty bodies and taps: a spec needs at least one layer
        text = yaml.safe_dump({"input": list(shape), "layers": [*layers, "relu"]},
                              sort_keys=False)
    return text


def test_generators_cover_every_composite() -> None:
    assert set(COMPOSITE_ITEMS) == set(COMPOSITES)


@pytest.mark.slow  # oracle: the torch engine
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=generated_specs(), batch=st.integers(1, 3),
       dtype=st.sampled_from(["float32", "float16"]),
       policy=st.sampled_from(["all", "conv+linear"]))
def test_generated_spec_identical(text: str, batch: int, dtype: str, policy: str) -> None:
    spec = parse_spec(text, "gen.yaml")
    assert_same(spec, batch=batch, dtype=dtype, policy=policy)


# --------------------------------------------------------------------------- op by op


class _Log(TorchDispatchMode):
    """Records each ATen call: (op, arguments with tensors as shapes, kwargs, new outputs)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[Any], dict[str, Any], int]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func._overloadpacket._qualified_op_name
        shape = lambda x: tuple(x.shape) if isinstance(x, torch.Tensor) else x  # noqa: E731
        fresh = sum(r.alias_info is None for r in func._schema.returns)
        self.calls.append((name, list(tree_map(shape, args)),
                           tree_map(shape, kwargs) if name in FORMULAS else {}, fresh))
        return out


@st.composite
def single_layers(draw: st.DrawFn, kind: str) -> tuple[Shape, dict[str, Any]]:
    """An input shape (one sample) and fields that ``kind`` accepts."""
    for _ in range(8):
        nd = draw(st.sampled_from([2, 1, 3, 0]))
        shape = (draw(st.integers(1, 6)), *(draw(st.integers(3, 9)) for _ in range(nd)))
        fields = _fields(draw, kind, max(nd, 1))
        if _fit(kind, shape, fields) is not None:
            return shape, fields
    assume(False)
    raise AssertionError  # unreachable


@pytest.mark.slow  # oracle: the torch engine
@pytest.mark.parametrize("kind", sorted(LAYERS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), batch=st.integers(1, 3))
def test_lowering_makes_the_calls_its_module_dispatches(kind: str, data: st.DataObject,
                                                        batch: int) -> None:
    shape, fields = data.draw(single_layers(kind))
    with torch.device("meta"):
        module = LAYERS[kind].fn(shape, **fields).make().eval()
    x = torch.empty((batch, *shape), device="meta")
    log = _Log()
    with torch.no_grad(), log:
        module(x)
    lo = Lower(4, [(batch, *shape)])
    LOWERINGS[kind](lo, *lo.inputs, **{**analytic._DEFAULTS[kind], **fields})
    lowered = [(c.op, list(c.args), c.kwargs, len(c.allocs)) for c in lo.calls]
    assert lowered == log.calls
    assert (lo.params, lo.buffers) == (sum(p.numel() for p in module.parameters()),
                                       sum(b.numel() for b in module.buffers()))


@pytest.mark.slow  # oracle: the torch engine
def test_first_torch_count_in_a_process_has_the_peak_of_the_next() -> None:
    """A kernel's first call in a process leaves garbage cycles holding its tensors; the
    counter collects them, so its peak is the one the analytic engine replays."""
    import subprocess
    import sys

    code = (
        "from cnncost.spec import parse_spec\n"
        "from cnncost.count import analytic, drivers\n"
        "s = parse_spec('input: [4, 4, 5]\\nlayers:\\n  - hardsigmoid\\n  - layer_norm\\n"
        "  - linear: {out: 3}\\n  - group_norm: {groups: 2}\\n', 't.yaml')\n"
        "print([drivers.count_spec(s, batch=3).totals.peak_activation_bytes for _ in 'ab'],"
        " analytic.count_spec(s, batch=3).totals.peak_activation_bytes)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    # batch 3 x 80 values: hardsigmoid out and layer_norm out (960 bytes each) are live
    # together with layer_norm's two float32 statistics (3 x 4 bytes each): 1944.
    assert out == ["[1944,", "1944]", "1944"]


# --------------------------------------------------------------------------- engines in the API


def test_api_counts_specs_analytically_by_default_and_with_torch_on_request() -> None:
    import cnncost

    default = cnncost.analyze("resnet18", batch=2)
    assert cnncost.analyze("resnet18", batch=2, engine="torch").to_json() == default.to_json()
    assert cnncost.analyze("resnet18", batch=2, engine="analytic").to_json() == default.to_json()


def test_analytic_engine_refuses_a_module() -> None:
    import cnncost
    from cnncost.errors import UsageError

    with pytest.raises(UsageError, match=r"^Conv2d: the analytic engine counts specs only; count "
                                         r"a module with engine='torch' \(--engine torch\)$"):
        cnncost.analyze(torch.nn.Conv2d(3, 8, 3), engine="analytic")
    with pytest.raises(UsageError, match=r"^torch\.nn:ReLU: the analytic engine counts specs"):
        cnncost.analyze("torch.nn:ReLU", engine="analytic")
    # a module is counted by torch when no engine is named
    assert cnncost.analyze(torch.nn.Conv2d(3, 8, 3), input=(3, 4, 4)).totals.macs == (
        8 * 2 * 2 * 3 * 3 * 3)  # C_out x H_out x W_out x C_in x K x K


def test_an_unknown_engine_is_a_usage_error() -> None:
    import cnncost
    from cnncost.errors import UsageError

    with pytest.raises(UsageError, match=r"^engine 'fast': expected 'analytic' or 'torch'$"):
        cnncost.analyze("resnet18", engine="fast")


def _run_cli(args: list[str], tmp: Any) -> tuple[int, str, bool]:
    """``python -m cnncost ARGS`` in a fresh interpreter: exit code, stderr, and whether
    torch was imported."""
    return fresh.run_cli(args, tmp, "torch")


SPEC_COMMANDS = {
    "analyze": ["analyze", "resnet50"],
    "analyze-json": ["analyze", "mobilenetv2", "-f", "json", "--batch", "4"],
    "compare": ["compare", "resnet50", "vgg16", "mobilenetv2"],
    "explain": ["explain", "textbook/dwsep_6x6x3"],
    "list": ["list"],
    "report": ["report", "lenet5", "--out", "out"],
    "check": ["check", "REPORTS"],
    "check-md": ["check", "REPORTS", "--format", "md"],
    "diff": ["diff", "REPORTS", "REPORTS", "--format", "json"],
    "validate": ["validate", "unet"],
    "sweep": ["sweep", "resnet18", "--set", "res=96..160:32"],
}


@pytest.mark.parametrize("args", [  # a fresh interpreter each: analyze in the fast tier
    pytest.param(args, id=name, marks=[] if name == "analyze" else [pytest.mark.slow])
    for name, args in SPEC_COMMANDS.items()])
def test_commands_on_specs_do_not_import_torch(args: list[str], tmp_path: Any) -> None:
    import shutil
    from pathlib import Path

    if "REPORTS" in args:  # two committed baselines
        (tmp_path / "reports").mkdir()
        for name in ("resnet18", "textbook/conv5x5"):
            src = Path(__file__).parents[1] / "reports" / f"{name}.json"
            shutil.copy(src, tmp_path / "reports" / src.name)
        args = [a.replace("REPORTS", str(tmp_path / "reports")) for a in args]
    rc, err, imported = _run_cli(args, tmp_path)
    assert rc == 0, err
    assert not imported


@pytest.mark.slow  # oracle: the torch engine
def test_engine_torch_on_the_command_line_imports_torch_and_gives_the_same_json(
        tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}  # this tree's cnncost

    def json_of(*extra: str) -> str:
        return subprocess.run([sys.executable, "-m", "cnncost", "analyze", "squeezenet1_1",
                               "-f", "json", *extra], capture_output=True, text=True,
                              check=True, env=env).stdout

    assert json_of("--engine", "torch") == json_of()
    rc, err, imported = _run_cli(["analyze", "lenet5", "--engine", "torch"], tmp_path)
    assert (rc, imported) == (0, True), err
    rc, err, imported = _run_cli(["analyze", "torch.nn:ReLU", "--engine", "analytic"], tmp_path)
    assert (rc, err, imported) == (
        2, "error: torch.nn:ReLU: the analytic engine counts specs only; count a module with "
           "engine='torch' (--engine torch)", False)

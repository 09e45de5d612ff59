"""Each ONNX operator as the ATen calls the formula table prices (no torch).

An ONNX node is priced the way the torch engine prices the module it came from: its lowering
(``@register_op("Conv")``) writes down the ATen call(s) PyTorch makes for the same work, with
the node's shapes (from onnx's shape inference), and cnncost.count.formulas gives their cost.
So a Conv costs what ``aten.convolution`` costs, a Gemm what ``aten.addmm`` costs, a
BatchNormalization at inference what ``aten._native_batch_norm_legit_no_training`` costs,
and one formula table answers for specs, modules and ONNX files.

A lowering gets a :class:`~cnncost.count.lowering.Lower` to record its calls on, the node
(its attributes), its inputs as values (None where an optional input is left out) and its
outputs' shapes. ``alias``: the node's output is a view of its first input (reshapes, no new
memory); ``buffers``: input positions that are buffers rather than parameters (batch norm's
running statistics). An operator without a lowering is listed as uncounted (``onnx::OpType``),
never zero. Shapes that contradict each other (a Conv whose weight expects other channels)
raise :class:`OpMismatch`, which the engine reports naming the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cnncost import shapes as shape_math
from cnncost.count.lowering import Lower, Val
from cnncost.onnx.graph import Node

Shape = tuple[int, ...]
Inputs = Sequence[Val | None]
OnnxLowering = Callable[[Lower, Node, Inputs, Sequence[Shape]], None]


class OpMismatch(ValueError):
    """A node's shapes contradict each other (the model is malformed)."""


@dataclass(frozen=True)
class OnnxOp:
    """How one ONNX operator is counted."""

    lower: OnnxLowering
    alias: bool = False
    buffers: tuple[int, ...] = ()


ONNX_OPS: dict[str, OnnxOp] = {}


def register_op(*names: str, alias: bool = False,
                buffers: tuple[int, ...] = ()) -> Callable[[OnnxLowering], OnnxLowering]:
    """Register the lowering of ONNX operators (``"Conv"``, or ``"com.microsoft::X"``
    outside the ONNX domain); a name registered twice raises."""

    def deco(fn: OnnxLowering) -> OnnxLowering:
        for name in names:
            if name in ONNX_OPS:
                raise RuntimeError(f"ONNX operator {name} registered twice")
            ONNX_OPS[name] = OnnxOp(fn, alias, buffers)
        return fn

    return deco


def _ints(node: Node, key: str, default: Sequence[int]) -> list[int]:
    value = node.attrs.get(key)
    return [int(v) for v in value] if value else list(default)


def _text(node: Node, key: str, default: str) -> str:
    value = node.attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _x(xs: Inputs, i: int = 0) -> Val:
    v = xs[i] if i < len(xs) else None
    if v is None:
        raise OpMismatch(f"input {i} is missing")
    return v


def _opt(xs: Inputs, i: int) -> Val | None:
    return xs[i] if i < len(xs) else None


def _n(shape: Shape) -> int:
    return math.prod(shape)


# --------------------------------------------------------------------------- conv & linear


@register_op("Conv")
def _conv(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.convolution (its output size as ONNX infers it: auto_pad and uneven pads
    included); the input's channels must be the weight's times ``group``."""
    x, w, b = _x(xs), _x(xs, 1), _opt(xs, 2)
    group = int(node.attrs.get("group", 1))
    nd = len(w.shape) - 2
    if len(x.shape) != nd + 2 or x.shape[1] != w.shape[1] * group:
        raise OpMismatch(f"input {_f(x.shape)} does not fit weight {_f(w.shape)} with "
                         f"group {group} (channels: {x.shape[1] if len(x.shape) > 1 else '?'}"
                         f" != {w.shape[1]} x {group})")
    pads = _ints(node, "pads", [0] * 2 * nd)[:nd]
    lo.call("convolution", x, w, b, _ints(node, "strides", [1] * nd), pads,
            _ints(node, "dilations", [1] * nd), False, [0] * nd, group, out=outs[0])


@register_op("ConvTranspose")
def _conv_transpose(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.convolution with transposed=True: MACs per input element."""
    x, w, b = _x(xs), _x(xs, 1), _opt(xs, 2)
    group = int(node.attrs.get("group", 1))
    nd = len(w.shape) - 2
    if len(x.shape) != nd + 2 or x.shape[1] != w.shape[0]:
        raise OpMismatch(f"input {_f(x.shape)} does not fit weight {_f(w.shape)} (input "
                         f"channels != {w.shape[0]})")
    lo.call("convolution", x, w, b, _ints(node, "strides", [1] * nd),
            _ints(node, "pads", [0] * 2 * nd)[:nd], _ints(node, "dilations", [1] * nd), True,
            _ints(node, "output_padding", [0] * nd), group, out=outs[0])


@register_op("Gemm")
def _gemm(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.addmm (aten.mm without C) on A and B as transA/transB make them (M x K, K x N).
    NB: alpha and beta scale at no counted cost."""
    a, b, c = _x(xs), _x(xs, 1), _opt(xs, 2)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise OpMismatch(f"Gemm multiplies matrices, not {_f(a.shape)} and {_f(b.shape)}")
    ta = Val(a.shape[::-1], a.slot) if node.attrs.get("transA") else a
    tb = Val(b.shape[::-1], b.slot) if node.attrs.get("transB") else b
    if ta.shape[1] != tb.shape[0]:
        raise OpMismatch(f"A {_f(ta.shape)} and B {_f(tb.shape)} do not multiply")
    if c is not None:
        lo.call("addmm", c, ta, tb, out=outs[0])
    else:
        lo.call("mm", ta, tb, out=outs[0])


@register_op("MatMul")
def _matmul(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """torch.matmul's ATen calls: aten.mm where B is a matrix (A's leading dims folded into
    its rows, as a linear layer does), else aten.bmm over the broadcast batch."""
    a, b = _x(xs), _x(xs, 1)
    sa = a.shape if len(a.shape) > 1 else (1, *a.shape)
    sb = b.shape if len(b.shape) > 1 else (*b.shape, 1)
    if sa[-1] != sb[-2]:
        raise OpMismatch(f"{_f(a.shape)} and {_f(b.shape)} do not multiply")
    k, n = sb[-2], sb[-1]
    if len(sb) == 2:
        rows = _n(sa[:-1])
        lo.call("mm", Val((rows, k), a.slot), Val((k, n), b.slot), out=(rows, n))
        return
    batch = _n(shape_math.broadcast(sa[:-2], sb[:-2]) or ())
    m = sa[-2]
    lo.call("bmm", Val((batch, m, k), a.slot), Val((batch, k, n), b.slot), out=(batch, m, n))


def _f(shape: Shape) -> str:
    return "x".join(map(str, shape)) or "a scalar"


# --------------------------------------------------------------------------- normalisation


@register_op("BatchNormalization", buffers=(3, 4))
def _batch_norm(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """At inference aten._native_batch_norm_legit_no_training (2 FLOPs per element);
    with ``training_mode=1`` aten.native_batch_norm in training (5)."""
    x, w, b, mean, var = (_x(xs, i) for i in range(5))
    eps = node.attrs.get("epsilon", 1e-5)
    momentum = node.attrs.get("momentum", 0.9)
    if node.attrs.get("training_mode"):
        lo.call("native_batch_norm", x, w, b, mean, var, True, momentum, eps, out=outs[0])
    else:
        lo.call("_native_batch_norm_legit_no_training", x, w, b, mean, var, momentum, eps,
                out=outs[0])


@register_op("InstanceNormalization")
def _instance_norm(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """torch's instance norm: batch norm on each sample's statistics (5 per element)."""
    x, w, b = _x(xs), _x(xs, 1), _x(xs, 2)
    lo.call("native_batch_norm", x, w, b, None, None, True, 0.1,
            node.attrs.get("epsilon", 1e-5), out=outs[0])


@register_op("LayerNormalization")
def _layer_norm(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.native_layer_norm over the dims from ``axis`` on (5 per element)."""
    x, w, b = _x(xs), _opt(xs, 1), _opt(xs, 2)
    axis = int(node.attrs.get("axis", -1)) % max(len(x.shape), 1)
    lo.call("native_layer_norm", x, list(x.shape[axis:]), w, b,
            node.attrs.get("epsilon", 1e-5), out=outs[0])


@register_op("GroupNormalization")
def _group_norm(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.native_group_norm (5 per element)."""
    x, w, b = _x(xs), _x(xs, 1), _x(xs, 2)
    lo.call("native_group_norm", x, w, b, x.shape[0], x.shape[1], _n(x.shape[2:]),
            int(node.attrs.get("num_groups", 1)), node.attrs.get("epsilon", 1e-5),
            out=outs[0])


# --------------------------------------------------------------------------- elementwise

# ONNX elementwise operators and the ATen op each one is (same per-element cost).
_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSigmoid": "hardsigmoid",
          "HardSwish": "hardswish", "LeakyRelu": "leaky_relu", "Elu": "elu", "Gelu": "gelu",
          "Erf": "erf", "Softplus": "softplus", "Mish": "mish", "Exp": "exp", "Log": "log",
          "Sqrt": "sqrt", "Neg": "neg", "Abs": "abs", "Reciprocal": "reciprocal",
          "Not": "logical_not", "Sin": "sin", "Cos": "cos", "Floor": "floor",
          "Ceil": "ceil", "Round": "round", "Sign": "sign"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
           "PRelu": "_prelu_kernel", "Equal": "eq", "Less": "lt", "LessOrEqual": "le",
           "Greater": "gt", "GreaterOrEqual": "ge", "And": "logical_and", "Or": "logical_or",
           "Xor": "logical_xor"}
# Variadic ONNX operators: the binary ATen op applied left to right.
_VARIADIC = {"Sum": "add", "Max": "maximum", "Min": "minimum"}


def _unary(op: str) -> OnnxLowering:
    def lower(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
        lo.call(op, _x(xs), out=outs[0])

    lower.__doc__ = f"aten.{op}."
    return lower


def _binary(op: str) -> OnnxLowering:
    def lower(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
        lo.call(op, _x(xs), _x(xs, 1), out=outs[0])

    lower.__doc__ = f"aten.{op} (broadcast)."
    return lower


def _variadic(op: str, mean: bool = False) -> OnnxLowering:
    def lower(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
        values = [v for v in xs if v is not None]
        y = values[0]
        for v in values[1:]:
            y = lo.call(op, y, v, out=shape_math.broadcast(y.shape, v.shape))
        if mean:
            lo.call("div", y, len(values), out=outs[0])
        elif len(values) == 1:
            lo.call("clone", y, out=outs[0])

    lower.__doc__ = f"aten.{op} left to right{', then a divide' if mean else ''}."
    return lower


for _name, _op in _UNARY.items():
    register_op(_name)(_unary(_op))
for _name, _op in _BINARY.items():
    register_op(_name)(_binary(_op))
for _name, _op in _VARIADIC.items():
    register_op(_name)(_variadic(_op))
register_op("Mean")(_variadic("add", mean=True))


@register_op("Clip")
def _clip(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """Both bounds: aten.hardtanh (ReLU6); one: clamp_min or clamp_max; none: a copy.
    (Opset 11 on, the bounds are inputs; before, attributes.)"""
    x = _x(xs)
    low = _opt(xs, 1) is not None or "min" in node.attrs
    high = _opt(xs, 2) is not None or "max" in node.attrs
    if low and high:
        lo.call("hardtanh", x, node.attrs.get("min", 0.0), node.attrs.get("max", 6.0),
                out=outs[0])
    elif low or high:
        lo.call("clamp_min" if low else "clamp_max", x, 0.0, out=outs[0])
    else:
        lo.call("clone", x, out=outs[0])


@register_op("Where")
def _where(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.where (a select per element)."""
    lo.call("where", _x(xs), _x(xs, 1), _x(xs, 2), out=outs[0])


@register_op("Softmax", "LogSoftmax")
def _softmax(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten._softmax / aten._log_softmax (5 per element)."""
    op = "_log_softmax" if node.op == "LogSoftmax" else "_softmax"
    lo.call(op, _x(xs), int(node.attrs.get("axis", -1)), False, out=outs[0])


# --------------------------------------------------------------------------- pooling


def _pooled(node: Node, xs: Inputs) -> tuple[Val, list[int], int]:
    """A pool's input, kernel and number of spatial axes (1 to 3, the input's less two)."""
    x = _x(xs)
    k = _ints(node, "kernel_shape", [])
    nd = len(k)
    if not 1 <= nd <= 3 or len(x.shape) != nd + 2:
        raise OpMismatch(f"kernel {k} does not fit input {_f(x.shape)}")
    return x, k, nd


@register_op("MaxPool")
def _max_pool(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.max_poolNd: K - 1 comparisons per output."""
    x, k, nd = _pooled(node, xs)
    lo.call(f"max_pool{nd}d", x, k, _ints(node, "strides", [1] * nd),
            _ints(node, "pads", [0] * 2 * nd)[:nd], _ints(node, "dilations", [1] * nd),
            bool(node.attrs.get("ceil_mode", 0)), out=outs[0])


@register_op("AveragePool")
def _avg_pool(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.avg_poolNd: K FLOPs per output."""
    x, k, nd = _pooled(node, xs)
    lo.call(f"avg_pool{nd}d", x, k, _ints(node, "strides", [1] * nd),
            _ints(node, "pads", [0] * 2 * nd)[:nd], bool(node.attrs.get("ceil_mode", 0)),
            bool(node.attrs.get("count_include_pad", 0)), out=outs[0])


@register_op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.mean (aten.amax) over the spatial dims, as adaptive pooling to 1 runs in torch:
    one FLOP per input element."""
    x = _x(xs)
    dims = [-i for i in range(1, len(x.shape) - 1)]
    lo.call("mean" if node.op == "GlobalAveragePool" else "amax", x, dims, True, out=outs[0])


_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin"}


def _reduce(op: str) -> OnnxLowering:
    def lower(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
        x = _x(xs)
        axes = _ints(node, "axes", [])
        lo.call(op, x, axes or None, bool(node.attrs.get("keepdims", 1)), out=outs[0])

    lower.__doc__ = f"aten.{op}: one FLOP per input element."
    return lower


for _name, _op in _REDUCE.items():
    register_op(_name)(_reduce(_op))


# --------------------------------------------------------------------------- resize


@register_op("Resize", "Upsample")
def _resize(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """By ``mode``: nearest copies (aten.upsample_nearestNd, no FLOPs); linear is
    aten.upsample_(bi/tri)linear (2^(d+1) - 1 per output); cubic is bicubic (31)."""
    x = _x(xs)
    out = outs[0]
    nd = len(x.shape) - 2
    mode = _text(node, "mode", "nearest")
    sizes = list(out[2:])
    if mode == "nearest" and 1 <= nd <= 3:
        lo.call(f"upsample_nearest{nd}d", x, sizes, out=out)
    elif mode in ("linear", "bilinear", "trilinear") and 1 <= nd <= 3:
        op = {1: "upsample_linear1d", 2: "upsample_bilinear2d", 3: "upsample_trilinear3d"}[nd]
        align = _text(node, "coordinate_transformation_mode", "") == "align_corners"
        lo.call(op, x, sizes, align, out=out)
    elif mode == "cubic" and nd == 2:
        lo.call("upsample_bicubic2d", x, sizes, False, out=out)
    else:
        lo.call(f"onnx::Resize({mode}, {nd}-d)", x, out=out)


# --------------------------------------------------------------------------- attention


@register_op("Attention")
def _attention(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """Scaled dot-product attention (opset 23): Q K^T and P V as aten.bmm over batch x
    heads, the scale as a multiply and the mask as an add per score, aten._softmax."""
    q, k, v, mask = _x(xs), _x(xs, 1), _x(xs, 2), _opt(xs, 3)
    if len(q.shape) == 4:
        b, heads, sq, d = q.shape
        skv, dv = k.shape[2], v.shape[3]
    elif len(q.shape) == 3:
        heads = int(node.attrs.get("q_num_heads", 0))
        kv_heads = int(node.attrs.get("kv_num_heads", 0))
        if heads <= 0 or kv_heads <= 0 or q.shape[2] % heads or v.shape[2] % kv_heads:
            raise OpMismatch("3-D attention needs q_num_heads and kv_num_heads dividing "
                             "the hidden sizes")
        b, sq, d = q.shape[0], q.shape[1], q.shape[2] // heads
        skv, dv = k.shape[1], v.shape[2] // kv_heads
    else:
        raise OpMismatch(f"query {_f(q.shape)}: expected 3 or 4 dims")
    bh = b * heads
    scores = lo.call("bmm", Val((bh, sq, d), q.slot), Val((bh, d, skv), k.slot),
                     out=(bh, sq, skv))
    scores = lo.call("mul", scores, 1.0, out=scores.shape)
    if mask is not None:
        scores = lo.call("add", scores, mask, out=scores.shape)
    probs = lo.call("_softmax", scores, -1, False, out=scores.shape)
    lo.call("bmm", probs, Val((bh, skv, dv), v.slot), out=(bh, sq, dv))


@register_op("Einsum")
def _einsum(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """A contraction of two operands as aten.bmm: batch = letters in both operands and the
    output, M and N = letters of one operand kept, K = letters of both summed away. Other
    forms are listed as uncounted."""
    equation = _text(node, "equation", "").replace(" ", "")
    found = _contraction(equation, xs)
    if found is None:
        lo.call("einsum", *[v for v in xs if v is not None], out=outs[0])
        return
    (batch, m, k, n), (a, b) = found
    lo.call("bmm", Val((batch, m, k), a.slot), Val((batch, k, n), b.slot), out=(batch, m, n))


def _contraction(equation: str, xs: Inputs) -> tuple[tuple[int, int, int, int],
                                                     tuple[Val, Val]] | None:
    lhs, _, out = equation.partition("->")
    terms = lhs.split(",")
    values = [v for v in xs if v is not None]
    if len(terms) != 2 or len(values) != 2 or not out or "." in equation:
        return None
    sizes: dict[str, int] = {}
    for term, v in zip(terms, values, strict=True):
        if len(term) != len(v.shape):
            return None
        for letter, size in zip(term, v.shape, strict=True):
            if sizes.setdefault(letter, size) != size and 1 not in (size, sizes[letter]):
                return None
            sizes[letter] = max(sizes[letter], size)
    a, b = set(terms[0]), set(terms[1])
    if (a | b) - set(out) - (a & b):  # a letter summed away within one operand
        return None

    def volume(letters: set[str]) -> int:
        return math.prod(sizes[c] for c in letters)

    keep = set(out)
    return ((volume(a & b & keep), volume((a - b) & keep), volume((a & b) - keep),
             volume((b - a) & keep)), (values[0], values[1]))


# --------------------------------------------------------------------------- data movement

# ONNX operators that move data and compute nothing, as the ATen op that does the same.
_MOVES = {"Concat": "cat", "Split": "split_with_sizes", "Transpose": "permute",
          "Slice": "slice", "Gather": "index_select", "GatherElements": "gather",
          "GatherND": "gather", "Expand": "expand", "Tile": "repeat", "Cast": "_to_copy",
          "CastLike": "_to_copy", "Shape": "sym_size", "Size": "sym_size",
          "ConstantOfShape": "full", "Range": "arange", "DepthToSpace": "pixel_shuffle",
          "SpaceToDepth": "pixel_unshuffle", "Constant": "lift_fresh"}
# ... and those whose output is a view of their input (no new memory).
_VIEWS = {"Reshape": "reshape", "Flatten": "view", "Squeeze": "squeeze",
          "Unsqueeze": "unsqueeze", "Identity": "alias", "Dropout": "dropout"}


def _move(op: str) -> OnnxLowering:
    def lower(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
        values = [v for v in xs if v is not None]
        lo.call(op, *values, out=outs[0])

    lower.__doc__ = f"aten.{op}: moves data, no FLOPs."
    return lower


for _name, _op in _MOVES.items():
    register_op(_name)(_move(_op))
for _name, _op in _VIEWS.items():
    register_op(_name, alias=True)(_move(_op))


@register_op("Pad")
def _pad(lo: Lower, node: Node, xs: Inputs, outs: Sequence[Shape]) -> None:
    """aten.constant_pad_nd, or the reflection / replication pad of its mode: no FLOPs."""
    mode = _text(node, "mode", "constant")
    op = {"reflect": "reflection_pad2d", "edge": "replication_pad2d"}.get(mode,
                                                                          "constant_pad_nd")
    lo.call(op, _x(xs), out=outs[0])


def counted_ops() -> list[str]:
    """The ONNX operators with a lowering, sorted (``cnncost list --ops``)."""
    return sorted(ONNX_OPS)


def describe(name: str) -> str:
    """A lowering's one-line description."""
    doc: Any = ONNX_OPS[name].lower.__doc__ or ""
    return " ".join(doc.split())

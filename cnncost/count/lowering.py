"""Analytic lowerings: each layer kind and graph op as the ATen calls its module makes (no torch).

The torch engine runs a layer's nn.Module on the meta device and hands every ATen call's
arguments, tensors replaced by shapes, to the formula table (cnncost.count.formulas). A
*lowering* writes that sequence of calls down for one kind, with the same argument structure
(PyTorch drops trailing arguments equal to their schema default, and so do the lowerings), so
the analytic engine feeds the formulas identical arguments without running torch. A lowering
also declares the module's parameters and buffers, and says of each output whether it is a new
allocation or an alias of an input (a view): the analytic driver replays that for peak memory
under the dispatch mode's liveness model (a new tensor lives until its last user is done, an
alias keeps the tensor it views alive).

One lowering per kind (:data:`LOWERINGS`, filled by ``@register_lowering``), written with the
layer kind's keys as keyword parameters; a kind without one is an error naming it, never a
silent zero. Output shapes come from the formula table's shape rules where an op has one.
tests/test_analytic.py holds every lowering to what its module really dispatches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from cnncost.caches import cache
from cnncost.count.formulas import FORMULAS, SHAPE_RULES, ZERO_COST_OPS, OpCost, apply_formula
from cnncost.table import Factors

Shape = tuple[int, ...]
INT64 = 8  # bytes of an int64 element (pooling indices, num_batches_tracked)


class Val(NamedTuple):
    """A tensor in a lowering: its shape and its slot among the layer's values (-1: a weight,
    which is never an activation)."""

    shape: Shape
    slot: int


class Call(NamedTuple):
    """One ATen call as the formulas see it, and what it does to memory.

    ``allocs``: (value, bytes) of each new output; ``aliases``: (value, value it aliases).
    """

    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out_shape: Any  # the output's shape, or a tuple of shapes for several outputs
    uses: tuple[int, ...]
    allocs: tuple[tuple[int, int], ...]
    aliases: tuple[tuple[int, int], ...]


class CallsCost(NamedTuple):
    """What a lowering's calls cost by the formula table: MACs, other FLOPs, the MACs'
    factors, and each op without a cost (no formula, or a call form its formula does not
    know) with its count."""

    macs: int
    elem_flops: int
    factors: tuple[Factors, ...]
    uncounted: dict[str, int]


def cost_of_calls(calls: Iterable[Call]) -> CallsCost:
    """The cost of ``calls`` (forward ops: one OpCost per call), the one rule both analytic
    engines apply: an op with no formula is uncounted unless it is zero-cost by nature
    (ZERO_COST_OPS); a formula that cannot read its call leaves it uncounted, never zero."""
    macs = elem_flops = 0
    factors: list[Factors] = []
    uncounted: dict[str, int] = {}
    for call in calls:
        formula = FORMULAS.get(call.op)
        cost = None if formula is None else apply_formula(formula, call.args, call.kwargs,
                                                          call.out_shape)
        if isinstance(cost, OpCost):
            macs += cost.macs
            elem_flops += cost.elem_flops
            if cost.factors is not None:
                factors.append(cost.factors)
        elif formula is not None or call.op not in ZERO_COST_OPS:
            uncounted[call.op] = uncounted.get(call.op, 0) + 1
    return CallsCost(macs, elem_flops, tuple(factors), uncounted)


class Lower:
    """Records a lowering: the layer's weights and its ATen calls, in order."""

    __slots__ = ("buffer_bytes", "buffers", "calls", "count", "elem", "inputs", "param_bytes",
                 "params", "same")

    def __init__(self, elem: int, in_shapes: Sequence[Shape]) -> None:
        self.elem = elem
        self.inputs = [_new(Val, (s, i)) for i, s in enumerate(in_shapes)]
        self.count = len(self.inputs)
        self.calls: list[Call] = []
        self.same: list[tuple[int, int]] = []  # values that are another value itself
        self.params = self.buffers = self.param_bytes = self.buffer_bytes = 0

    def param(self, shape: Shape) -> Val:
        """A trainable parameter of the module, at the analysis dtype."""
        n = math.prod(shape)
        self.params += n
        self.param_bytes += n * self.elem
        return _new(Val, (shape, -1))

    def buffer(self, shape: Shape, elem: int | None = None) -> Val:
        """A buffer of the module (floating point unless ``elem`` says otherwise)."""
        n = math.prod(shape)
        self.buffers += n
        self.buffer_bytes += n * (self.elem if elem is None else elem)
        return _new(Val, (shape, -1))

    def shape(self, op: str, *args: Any, **kwargs: Any) -> Shape:
        """The first output's shape by the op's shape rule in the formula table."""
        return _rule(op, _split(args)[0], kwargs)

    def call(self, op: str, *args: Any, out: Shape | None = None, alias: bool = False,
             **kwargs: Any) -> Val:
        """One call with one output: new (the default), or a view of its first tensor
        argument (``alias``). ``out`` defaults to the op's shape rule."""
        # The common case of calls_with, written out: a lowering makes most of its calls
        # here, and a sweep lowers every layer again at every point.
        shapes, tensors = _split(args)
        qualified = _QUALIFIED.get(op) or _qualified(op)
        if out is None:
            out = SHAPE_RULES[qualified](*shapes, **kwargs)
        slot = self.count
        self.count = slot + 1
        uses = tuple([v[1] for v in tensors if v[1] >= 0])
        if not alias:
            allocs: tuple[tuple[int, int], ...] = ((slot, math.prod(out) * self.elem),)
            aliases: tuple[tuple[int, int], ...] = ()
        else:
            allocs = ()
            aliases = ((slot, tensors[0][1]),) if tensors[0][1] >= 0 else ()
        self.calls.append(_new(Call, (qualified, shapes, kwargs, out, uses, allocs, aliases)))
        return _new(Val, (out, slot))

    def calls_with(self, op: str, args: Sequence[Any], kwargs: dict[str, Any],
                   outs: Sequence[tuple[Shape, int]], alias: bool = False) -> list[Val]:
        """One call with the outputs ``outs`` ((shape, bytes per element) each)."""
        return self._record(op, _split(args), kwargs, outs, alias)

    def _record(self, op: str, split: tuple[tuple[Any, ...], tuple[Val, ...]],
                kwargs: dict[str, Any], outs: Sequence[tuple[Shape, int]],
                alias: bool) -> list[Val]:
        shapes, tensors = split
        first = self.count
        vals = [_new(Val, (shape, first + i)) for i, (shape, _) in enumerate(outs)]
        self.count += len(vals)
        uses = tuple([v[1] for v in tensors if v[1] >= 0])
        allocs: tuple[tuple[int, int], ...] = ()
        aliases: tuple[tuple[int, int], ...] = ()
        if not alias:
            allocs = tuple([(first + i, math.prod(shape) * e)
                            for i, (shape, e) in enumerate(outs)])
        elif tensors[0][1] >= 0:
            aliases = ((first, tensors[0][1]),)
        out_shape = vals[0][0] if len(vals) == 1 else tuple([v[0] for v in vals])
        self.calls.append(_new(Call, (_qualified(op), shapes, kwargs, out_shape, uses, allocs,
                                      aliases)))
        return vals

    def itself(self, x: Val) -> Val:
        """The module returns its input object unchanged (identity, dropout at inference)."""
        val = _new(Val, (x.shape, self.count))
        self.count += 1
        self.same.append((val.slot, x.slot))
        return val


# Val(...) and Call(...) without the Python-level __new__ of a NamedTuple (the same tuples):
# a lowering makes several of each per layer.
_new = tuple.__new__
_QUALIFIED: dict[str, str] = cache("analytic: op names qualified")  # op -> aten::op


def _qualified(op: str) -> str:
    name = _QUALIFIED.get(op)
    if name is None:
        name = _QUALIFIED[op] = op if "::" in op else f"aten::{op}"
    return name


def _split(args: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Val, ...]]:
    """The arguments as the formulas get them (every tensor replaced by its shape), and the
    tensors among them in order."""
    shapes: list[Any] = []
    tensors: list[Val] = []
    for a in args:
        if type(a) is Val:
            shapes.append(a.shape)
            tensors.append(a)
        elif type(a) is list and a and type(a[0]) is Val:
            shapes.append([v.shape for v in a])
            tensors.extend(a)
        else:
            shapes.append(a)
    return tuple(shapes), tuple(tensors)


def _rule(op: str, shapes: tuple[Any, ...], kwargs: dict[str, Any]) -> Shape:
    shape: Shape = SHAPE_RULES[_qualified(op)](*shapes, **kwargs)
    return shape


Lowering = Callable[..., Val]
LOWERINGS: dict[str, Lowering] = {}


def register_lowering(*kinds: str) -> Callable[[Lowering], Lowering]:
    """Register the lowering of one or more layer kinds or graph ops; a duplicate raises."""

    def deco(fn: Lowering) -> Lowering:
        for kind in kinds:
            if kind in LOWERINGS:
                raise RuntimeError(f"lowering for {kind!r} registered twice")
            LOWERINGS[kind] = fn
        return fn

    return deco


def _dims(value: Any, nd: int) -> list[int]:
    """A layer field (one int or one per spatial dim) as ``nd`` ints."""
    return [value] * nd if isinstance(value, int) else list(value)


def _trim(args: list[Any], defaults: Sequence[Any]) -> list[Any]:
    """Drop trailing arguments equal to their schema default, as PyTorch passes them on.
    ``defaults`` line up with the last ``len(defaults)`` arguments."""
    first = len(args) - len(defaults)
    while len(args) > first and args[-1] == defaults[len(args) - 1 - first]:
        args.pop()
    return args


# --------------------------------------------------------------------------- conv & linear


@register_lowering("conv")
def _conv(lo: Lower, x: Val, *, out: int, kernel: Any, stride: Any, padding: Any,
          dilation: Any, groups: int, bias: bool) -> Val:
    """nn.ConvNd: aten.convolution; padding='same' with an odd total pads the input first."""
    nd = len(x.shape) - 2
    k, s, d = _dims(kernel, nd), _dims(stride, nd), _dims(dilation, nd)
    w = lo.param((out, x.shape[1] // groups, *k))
    b = lo.param((out,)) if bias else None
    if padding == "same":
        # ATen's _convolution_mode: d x (k - 1) in all, half on each side; an odd total puts
        # the extra one on the right with constant_pad_nd (last dimension first).
        p = [dd * (kk - 1) // 2 for kk, dd in zip(k, d, strict=True)]
        extra = [dd * (kk - 1) - 2 * pp for kk, dd, pp in zip(k, d, p, strict=True)]
        if any(extra):
            pads = [n for e in reversed(extra) for n in (0, e)]
            padded = (*x.shape[:2], *(n + e for n, e in zip(x.shape[2:], extra, strict=True)))
            x = lo.call("constant_pad_nd", x, pads, out=padded)
    else:
        p = [0] * nd if padding == "valid" else _dims(padding, nd)
    return lo.call("convolution", x, w, b, s, p, d, False, [0] * nd, groups)


@register_lowering("conv_transpose")
def _conv_transpose(lo: Lower, x: Val, *, out: int, kernel: Any, stride: Any, padding: Any,
                    output_padding: Any, groups: int, bias: bool, dilation: Any) -> Val:
    """nn.ConvTransposeNd: aten.convolution with transposed=True."""
    nd = len(x.shape) - 2
    k = _dims(kernel, nd)
    w = lo.param((x.shape[1], out // groups, *k))
    b = lo.param((out,)) if bias else None
    return lo.call("convolution", x, w, b, _dims(stride, nd), _dims(padding, nd),
                   _dims(dilation, nd), True, _dims(output_padding, nd), groups)


@register_lowering("linear")
def _linear(lo: Lower, x: Val, *, out: int, bias: bool) -> Val:
    """nn.Linear: addmm (mm without bias) on the input flattened to 2-D."""
    fin = x.shape[-1]
    w = lo.param((out, fin))
    b = lo.param((out,)) if bias else None
    lead = x.shape[:-1]
    if len(x.shape) == 2:
        wt = lo.call("t", w, out=(fin, out), alias=True)
        return lo.call("addmm", b, x, wt) if b else lo.call("mm", x, wt)
    rows = math.prod(lead)
    if b is not None:  # view, t, addmm, view back (an alias of addmm's result)
        flat = lo.call("view", x, [rows, fin], out=(rows, fin), alias=True)
        wt = lo.call("t", w, out=(fin, out), alias=True)
        y = lo.call("addmm", b, flat, wt)
        return lo.call("view", y, [*lead, out], out=(*lead, out), alias=True)
    # matmul without bias: t, view, mm, then _unsafe_view, which is a new tensor
    wt = lo.call("t", w, out=(fin, out), alias=True)
    flat = lo.call("view", x, [rows, fin], out=(rows, fin), alias=True)
    y = lo.call("mm", flat, wt)
    return lo.call("_unsafe_view", y, [*lead, out], out=(*lead, out))


# --------------------------------------------------------------------------- pooling


def _pool_1d(lo: Lower, x: Val, pool: Callable[[Val], list[Val]],
             indices_first: bool = False) -> Val:
    """A 1-D pool runs as the 2-D one on an unsqueezed input, its outputs squeezed back
    (adaptive_max_pool1d squeezes its indices first, max_pool1d its values)."""
    u = lo.call("unsqueeze", x, -2, out=(*x.shape[:2], 1, x.shape[2]), alias=True)
    outs = pool(u)
    squeezed = {o.slot: lo.call("squeeze", o, -2, out=(*o.shape[:2], o.shape[3]), alias=True)
                for o in (outs[::-1] if indices_first else outs)}
    return squeezed[outs[0].slot]


@register_lowering("max_pool")
def _max_pool(lo: Lower, x: Val, *, kernel: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool) -> Val:
    """nn.MaxPoolNd: max_poolNd_with_indices (its int64 indices live until it returns)."""
    nd = len(x.shape) - 2
    k = _dims(kernel, nd)
    s = _dims(kernel if stride is None else stride, nd)
    p, d = _dims(padding, nd), _dims(dilation, nd)
    if nd == 1:
        k, s, p, d, nd = [1, *k], [1, *s], [0, *p], [1, *d], 2

    def pool(t: Val) -> list[Val]:
        op = f"max_pool{nd}d_with_indices"
        args = _trim([t, k, s, p, d, ceil_mode], [[0] * nd, [1] * nd, False])
        shape = lo.shape(op, *args)
        return lo.calls_with(op, args, {}, [(shape, lo.elem), (shape, INT64)])

    return _pool_1d(lo, x, pool) if len(x.shape) == 3 else pool(x)[0]


@register_lowering("avg_pool")
def _avg_pool(lo: Lower, x: Val, *, kernel: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool) -> Val:
    """nn.AvgPoolNd: avg_poolNd (1-D: avg_pool2d on an unsqueezed input)."""
    nd = len(x.shape) - 2
    k = _dims(kernel, nd)
    s = _dims(kernel if stride is None else stride, nd)
    p = _dims(padding, nd)
    if nd == 1:
        k, s, p, nd = [1, *k], [1, *s], [0, *p], 2

    def pool(t: Val) -> list[Val]:
        args = _trim([t, k, s, p, ceil_mode, count_include_pad], [[0] * nd, False, True])
        return [lo.call(f"avg_pool{nd}d", *args)]

    return _pool_1d(lo, x, pool) if len(x.shape) == 3 else pool(x)[0]


@register_lowering("adaptive_avg_pool")
def _adaptive_avg_pool(lo: Lower, x: Val, *, output: Any) -> Val:
    """nn.AdaptiveAvgPoolNd: a mean over the spatial dims when the output is all ones, else
    _adaptive_avg_poolNd (1-D: the 2-D one on an unsqueezed input)."""
    nd = len(x.shape) - 2
    o = _dims(output, nd)
    if nd == 1:
        return _pool_1d(lo, x, lambda u: [_adaptive_avg(lo, u, [1, *o])])
    return _adaptive_avg(lo, x, o)


def _adaptive_avg(lo: Lower, x: Val, o: list[int]) -> Val:
    if all(v == 1 for v in o):
        return lo.call("mean", x, [-i for i in range(1, len(o) + 1)], True)
    return lo.call(f"_adaptive_avg_pool{len(o)}d", x, o)


@register_lowering("global_avg_pool")
def _global_avg_pool(lo: Lower, x: Val) -> Val:
    """As adaptive_avg_pool with output 1."""
    return _adaptive_avg_pool(lo, x, output=1)


@register_lowering("adaptive_max_pool")
def _adaptive_max_pool(lo: Lower, x: Val, *, output: Any) -> Val:
    """nn.AdaptiveMaxPoolNd: adaptive_max_poolNd with int64 indices."""
    nd = len(x.shape) - 2
    o = _dims(output, nd)

    def pool(t: Val, sizes: list[int]) -> list[Val]:
        op = f"adaptive_max_pool{len(sizes)}d"
        shape = lo.shape(op, t, sizes)
        return lo.calls_with(op, [t, sizes], {}, [(shape, lo.elem), (shape, INT64)])

    if nd == 1:
        return _pool_1d(lo, x, lambda u: pool(u, [1, *o]), indices_first=True)
    return pool(x, o)[0]


# --------------------------------------------------------------------------- normalisation


@register_lowering("bn")
def _bn(lo: Lower, x: Val, *, eps: float, momentum: float, affine: bool) -> Val:
    """nn.BatchNormNd at inference: native_batch_norm (training=False). Buffers: running
    mean and variance, and num_batches_tracked (an int64 scalar)."""
    c = x.shape[1]
    w = lo.param((c,)) if affine else None
    b = lo.param((c,)) if affine else None
    mean, var = lo.buffer((c,)), lo.buffer((c,))
    lo.buffer((), INT64)
    lo.call("empty", [0], out=(0,))  # the (empty) reserve tensor of batch_norm's dispatch
    # At inference the saved mean and inverse std are empty (as the CPU kernel makes them).
    args = [x, w, b, mean, var, False, momentum, eps]
    return lo.calls_with("native_batch_norm", args, {},
                         [(x.shape, lo.elem), ((0,), lo.elem), ((0,), lo.elem)])[0]


@register_lowering("layer_norm")
def _layer_norm(lo: Lower, x: Val, *, dims: int | None, eps: float, affine: bool) -> Val:
    """nn.LayerNorm: native_layer_norm, with its mean and rstd (one per normalised group)."""
    n = len(x.shape) - 1 if dims is None else dims
    normalized = list(x.shape[-n:])
    w = lo.param(tuple(normalized)) if affine else None
    b = lo.param(tuple(normalized)) if affine else None
    stats = (*x.shape[:-n], *([1] * n))
    # The meta kernel keeps the statistics of half types in float32 (their accumulate type).
    acc = max(lo.elem, 4)
    return lo.calls_with("native_layer_norm", [x, normalized, w, b, eps], {},
                         [(x.shape, lo.elem), (stats, acc), (stats, acc)])[0]


@register_lowering("group_norm")
def _group_norm(lo: Lower, x: Val, *, groups: int, eps: float, affine: bool) -> Val:
    """nn.GroupNorm: native_group_norm(x, w, b, N, C, HxW, groups, eps), with N x groups stats."""
    n, c = x.shape[:2]
    w = lo.param((c,)) if affine else None
    b = lo.param((c,)) if affine else None
    args = [x, w, b, n, c, math.prod(x.shape[2:]), groups, eps]
    return lo.calls_with("native_group_norm", args, {},
                         [(x.shape, lo.elem), ((n, groups), lo.elem), ((n, groups), lo.elem)])[0]


# --------------------------------------------------------------------------- activations

# The ATen op (and its arguments after the input) of each activation module.
_ACTIVATIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "relu": ("relu", ()),
    "relu6": ("hardtanh", (0.0, 6.0)),  # ReLU6 is hardtanh(0, 6)
    "sigmoid": ("sigmoid", ()),
    "tanh": ("tanh", ()),
    "hardswish": ("hardswish", ()),
    "hardsigmoid": ("hardsigmoid", ()),
    "silu": ("silu", ()),
}


def _activation(op: str, extra: tuple[Any, ...]) -> Lowering:
    def lower(lo: Lower, x: Val) -> Val:
        return lo.call(op, x, *extra)

    lower.__doc__ = f"aten.{op} (a new tensor)."
    return lower


for _kind, (_op, _extra) in _ACTIVATIONS.items():
    register_lowering(_kind)(_activation(_op, _extra))


@register_lowering("identity")
def _identity(lo: Lower, x: Val) -> Val:
    """nn.Identity returns its input: no op."""
    return lo.itself(x)


@register_lowering("dropout")
def _dropout(lo: Lower, x: Val, *, p: float) -> Val:
    """nn.Dropout at inference returns its input: no op."""
    return lo.itself(x)


@register_lowering("leaky_relu")
def _leaky_relu(lo: Lower, x: Val, *, negative_slope: float) -> Val:
    """aten.leaky_relu(x[, negative_slope]) (the default 0.01 is not passed)."""
    return lo.call("leaky_relu", *_trim([x, negative_slope], [0.01]))


@register_lowering("gelu")
def _gelu(lo: Lower, x: Val, *, approximate: str) -> Val:
    """aten.gelu(x, approximate=...) (the default "none" is not passed)."""
    kwargs: dict[str, Any] = {} if approximate == "none" else {"approximate": approximate}
    return lo.call("gelu", x, **kwargs)


@register_lowering("softmax")
def _softmax(lo: Lower, x: Val, *, dim: int) -> Val:
    """aten._softmax(x, dim, half_to_float=False); ``dim`` counts the batch."""
    return lo.call("_softmax", x, dim + 1, False)


# --------------------------------------------------------------------------- reshaping


@register_lowering("flatten")
def _flatten(lo: Lower, x: Val) -> Val:
    """nn.Flatten: a view (an input that is flat already is returned as it is)."""
    if len(x.shape) == 2:
        return lo.itself(x)
    flat = (x.shape[0], math.prod(x.shape[1:]))
    return lo.call("view", x, list(flat), out=flat, alias=True)


@register_lowering("upsample")
def _upsample(lo: Lower, x: Val, *, scale: int | None, size: Any, mode: str,
              align_corners: bool | None) -> Val:
    """nn.Upsample: upsample_nearestNd(x, size[, scales]) or the (bi/tri)linear op with
    align_corners; a scale factor is passed along as a float per dimension."""
    nd = len(x.shape) - 2
    scales: tuple[float, ...] = ()
    if size is not None:
        sizes = _dims(size, nd)
    else:
        assert scale is not None  # the layer kind requires one of them
        sizes, scales = [n * scale for n in x.shape[2:]], (float(scale),) * nd
    out = (*x.shape[:2], *sizes)
    if mode == "nearest":
        return lo.call(f"upsample_nearest{nd}d", x, sizes, *scales, out=out)
    op = {1: "upsample_linear1d", 2: "upsample_bilinear2d", 3: "upsample_trilinear3d"}[nd]
    return lo.call(op, x, sizes, bool(align_corners), *scales)


@register_lowering("channel_shuffle")
def _channel_shuffle(lo: Lower, x: Val, *, groups: int) -> Val:
    """aten.channel_shuffle: a permuted copy of the input."""
    return lo.call("channel_shuffle", x, groups, out=x.shape)


# --------------------------------------------------------------------------- graph ops


@register_lowering("add")
def _add(lo: Lower, *xs: Val, tap: str | None = None) -> Val:
    """Residual and branch adds: aten.add.Tensor, left to right for more than two inputs."""
    y = xs[0]
    for x in xs[1:]:
        y = lo.call("add", y, x)
    return y


@register_lowering("mul")
def _mul(lo: Lower, x: Val, gate: Val) -> Val:
    """x * gate (squeeze-excite): aten.mul.Tensor."""
    return lo.call("mul", x, gate)


@register_lowering("concat")
def _concat(lo: Lower, *xs: Val, tap: str | None = None) -> Val:
    """torch.cat on channels: one new tensor."""
    out = (xs[0].shape[0], sum(x.shape[1] for x in xs), *xs[0].shape[2:])
    return lo.call("cat", list(xs), 1, out=out)


@register_lowering("slice")
def _slice(lo: Lower, x: Val, *, dim: int, start: int, length: int,
           tap: str | None = None) -> Val:
    """torch.narrow: aten.slice(x, dim, start, start + length), a view."""
    out = (*x.shape[:dim + 1], length, *x.shape[dim + 2:])
    return lo.call("slice", x, dim + 1, start, start + length, out=out, alias=True)

"""The formula table: for each ATen op, its cost and its shape behaviour (no torch).

Every op is registered with ``@register_formula("op", ..., shape=RULE)``:

- the decorated function is the **cost formula**. It gets the op's arguments with every
  tensor replaced by its shape (a tuple) and the output's shape as ``out_shape``, and
  returns an :class:`OpCost`: MACs, other FLOPs and, for MACs, the :class:`Factors` they
  were counted from (the ``formula`` text of a report is rendered from those, here only);
- ``shape`` is the **shape rule**: the same arguments (without ``out_shape``) -> the shape
  of the op's first output. Named rules: :data:`BROADCAST` (elementwise ops),
  :data:`SAME` (shaped like the first input: norms, softmax), :data:`REDUCE` (over
  ``dim``); anything else is a function using cnncost.shapes' arithmetic.

The counter reads both tables (``FORMULAS``, ``SHAPE_RULES``); an engine that never runs
torch can feed them shapes from a spec's own shape inference. Ops that compute nothing are
named in ``ZERO_COST_OPS``. The counting conventions are in cnncost.count.conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cnncost import shapes
from cnncost.table import Factors, formula_text

Shape = tuple[int, ...]


_set = object.__setattr__


@dataclass(frozen=True, init=False)
class OpCost:
    """The cost of one op call: multiply-accumulates, other FLOPs, and the MACs' factors."""

    macs: int = 0
    elem_flops: int = 0
    factors: Factors | None = None

    def __init__(self, macs: int = 0, elem_flops: int = 0,
                 factors: Factors | None = None) -> None:
        _set(self, "__dict__", {"macs": macs, "elem_flops": elem_flops, "factors": factors})

    @property
    def formula(self) -> str:
        """The MACs as the report writes them (empty without factors)."""
        return formula_text([self.factors]) if self.factors else ""


# A formula returns one OpCost, or one per output for an op with several (backward ops).
Formula = Callable[..., OpCost | tuple[OpCost, ...]]
ShapeRule = Callable[..., Any]
FORMULAS: dict[str, Formula] = {}
SHAPE_RULES: dict[str, ShapeRule] = {}


def apply_formula(formula: Formula, args: Sequence[Any], kwargs: dict[str, Any],
                  out_shape: Any) -> OpCost | tuple[OpCost, ...] | None:
    """One call's cost from its arguments (tensors as shapes); None for a call form the
    formula does not know (the op is then listed as uncounted, never zero)."""
    try:
        return formula(*args, **kwargs, out_shape=out_shape)
    except (TypeError, ValueError, IndexError):
        return None


def _tensor_shapes(args: Sequence[Any]) -> list[Shape]:
    return [a for a in args if isinstance(a, tuple)]


def _broadcast_rule(*args: Any, **kwargs: Any) -> Shape | None:
    """Elementwise: the broadcast shape of the tensor inputs (a unary op keeps its shape)."""
    if args and not kwargs and type(args[0]) is tuple and \
            not any(type(a) is tuple for a in args[1:]):
        return args[0]  # one tensor (an activation, x + 1): its own shape
    return shapes.broadcast(*_tensor_shapes([*args, *kwargs.values()]))


def _same_rule(x: Shape, *_: Any, **__: Any) -> Shape:
    """The (first) output is shaped like the first input."""
    return x


def _reduce_rule(x: Shape, dim: Any = None, keepdim: bool = False, *_: Any,
                 **__: Any) -> Shape | None:
    """Reduced over ``dim`` (every dim when none is given), size 1 kept with ``keepdim``."""
    return shapes.reduced(x, dim, keepdim)


BROADCAST: ShapeRule = _broadcast_rule
SAME: ShapeRule = _same_rule
REDUCE: ShapeRule = _reduce_rule

# Ops that move, view or allocate data but compute nothing: counted as 0 without a warning.
# (The torch engine also counts as 0 any other view, in-place view or factory, by its
# schema: cnncost.count.mode._computes_nothing.) im2col copies patches into columns
# (F.unfold); complex interleaves two tensors; index is advanced indexing, x[mask].
_ZERO_COST_NAMES = """
view _unsafe_view reshape alias t transpose permute expand squeeze
unsqueeze flatten unflatten slice narrow select split split_with_sizes chunk
unbind cat stack clone contiguous copy_ _to_copy to detach lift_fresh empty
empty_like empty_strided zeros zeros_like ones ones_like full full_like fill_
zero_ new_empty new_zeros new_ones randn rand uniform_ normal_ dropout
native_dropout feature_dropout channel_shuffle native_channel_shuffle
pixel_shuffle pixel_unshuffle upsample_nearest1d upsample_nearest2d
upsample_nearest3d _upsample_nearest_exact2d constant_pad_nd pad
reflection_pad2d replication_pad2d as_strided as_strided_ _reshape_alias
expand_as view_as sym_size lift _local_scalar_dense item
new_empty_strided slice_backward select_backward bernoulli bernoulli_
unsafe_split unsafe_split_with_sizes unsafe_chunk
index_select gather embedding repeat arange
index _unsafe_index im2col complex roll flip tril triu
"""
ZERO_COST_OPS: frozenset[str] = frozenset(f"aten::{n}" for n in _ZERO_COST_NAMES.split())


F = TypeVar("F", bound=Formula)


def register_formula(*ops: str, shape: ShapeRule) -> Callable[[F], F]:
    """Register a cost formula and the shape rule of one or more ATen ops
    (``"convolution"`` or ``"aten::convolution"``); a name registered twice raises."""

    def deco(fn: F) -> F:
        for op in ops:
            name = op if "::" in op else f"aten::{op}"
            if name in FORMULAS or name in ZERO_COST_OPS:
                raise RuntimeError(f"formula for {name} registered twice")
            FORMULAS[name] = fn
            SHAPE_RULES[name] = shape
        return fn

    return deco


def _n(shape: Any) -> int:
    return math.prod(shape) if isinstance(shape, tuple) else 0


def _per_dim(nd: int, value: Any) -> list[int]:
    """An aten int-list argument as ``nd`` ints (one value stands for every dimension)."""
    if type(value) is list and len(value) == nd:  # the lowerings' form: one per dimension
        return value
    values = list(value) if isinstance(value, list | tuple) else [value]
    return values * nd if len(values) == 1 else values


# --------------------------------------------------------------------------- conv & linear


def _conv_shape(x: Shape, w: Shape, bias: Any, stride: Any, padding: Any, dilation: Any,
                transposed: bool, output_padding: Any, groups: int, *_: Any,
                **__: Any) -> Shape:
    """(N, C_out, *sizes) by the conv (or transposed conv) size formulas."""
    nd = len(w) - 2
    k = w[2:]
    s, p, d = _per_dim(nd, stride), _per_dim(nd, padding), _per_dim(nd, dilation)
    if transposed:
        op = _per_dim(nd, output_padding)
        sizes = [shapes.conv_transpose_out(*dims) for dims in zip(x[-nd:], k, s, p, d, op,
                                                                    strict=True)]
        return (*x[:-nd - 1], w[1] * groups, *sizes)
    if not len(s) == len(p) == len(d) == nd:
        raise ValueError(f"conv arguments for {nd} dims: stride {s}, padding {p}, dilation {d}")
    conv_out, spatial = shapes.conv_out, x[-nd:]
    sizes = [conv_out(spatial[i], k[i], s[i], p[i], d[i]) for i in range(nd)]
    return (*x[:-nd - 1], w[0], *sizes)


@register_formula("convolution", "_convolution", shape=_conv_shape)
def conv_macs(x_shape: Shape, w_shape: Shape, bias: Shape | None, stride: Any = None,
              padding: Any = None, dilation: Any = None, transposed: bool = False,
              *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Conv MACs = N x C_out x H_out x W_out x (C_in / groups) x K_h x K_w.

    Transposed conv counts per *input* element: N x C_in x H_in x W_in x (C_out / groups)
    x K_h x K_w. Dilation changes the receptive field, not MACs. Bias adds are not MACs:
    one FLOP per output element, in ``elem_flops``.
    """
    batch = x_shape[0]
    kernel = w_shape[2:]
    # Both ways w is (C_a, C_b/groups, *K) and every value of the "a" side costs
    # C_b/groups x K MACs: a = C_out over the output (conv), a = C_in over the input
    # (transposed: every input value is spread over C_out/groups x K outputs).
    spread = x_shape if transposed else out_shape
    out = (*spread[2:], spread[1])
    per_out = (*kernel, w_shape[1])
    factors = Factors(out, per_out, batch if batch != 1 else None, (*per_out, spread[1]))
    return OpCost(factors.macs, _n(out_shape) if bias else 0, factors)


def _linear_factors(m: int, n: int, k: int) -> Factors:
    return Factors((m, n), (k,), None, (k, n))


@register_formula("addmm", "addmm_", shape=lambda bias, a, b, *_, **__: (a[0], b[1]))
def addmm_macs(bias: Shape, a: Shape, b: Shape, *_: Any, out_shape: Shape,
               **__: Any) -> OpCost:
    """Linear with bias: (M x K) @ (K x N) = M x N x K MACs, plus M x N bias adds."""
    factors = _linear_factors(a[0], b[1], a[1])
    return OpCost(factors.macs, a[0] * b[1], factors)


@register_formula("mm", shape=lambda a, b, *_, **__: (a[0], b[1]))
def mm_macs(a: Shape, b: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Matrix product (M x K) @ (K x N) = M x N x K MACs."""
    factors = _linear_factors(a[0], b[1], a[1])
    return OpCost(factors.macs, 0, factors)


@register_formula("bmm", shape=lambda a, b, *_, **__: (a[0], a[1], b[2]))
def bmm_macs(a: Shape, b: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Batched matrix product (B x M x K) @ (B x K x N) = B x M x N x K MACs."""
    factors = Factors((a[1], b[2]), (a[2],), a[0])
    return OpCost(factors.macs, 0, factors)


@register_formula("baddbmm", "baddbmm_", shape=lambda bias, a, b, *_, **__: (a[0], a[1], b[2]))
def baddbmm_macs(bias: Shape, a: Shape, b: Shape, *_: Any, out_shape: Shape,
                 **__: Any) -> OpCost:
    """Batched matrix product with an added tensor: B x M x N x K MACs + B x M x N adds."""
    cost = bmm_macs(a, b, out_shape=out_shape)
    return OpCost(cost.macs, _n(out_shape), cost.factors)


@register_formula("addbmm", "addbmm_", shape=lambda bias, a, b, *_, **__: (a[1], b[2]))
def addbmm_macs(bias: Shape, a: Shape, b: Shape, *_: Any, out_shape: Shape,
                **__: Any) -> OpCost:
    """A batch of products summed into one (B x M x K) @ (B x K x N) -> M x N, plus a tensor:
    B x M x N x K MACs (every output accumulates B x K products) + M x N adds."""
    factors = Factors((a[1], b[2]), (a[0], a[2]))
    return OpCost(factors.macs, _n(out_shape), factors)


@register_formula("mv", shape=lambda a, v, *_, **__: (a[0],))
def mv_macs(a: Shape, v: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Matrix-vector product (M x K) @ (K) = M x K MACs."""
    factors = Factors((a[0],), (a[1],))
    return OpCost(factors.macs, 0, factors)


@register_formula("addmv", "addmv_", shape=lambda bias, a, v, *_, **__: (a[0],))
def addmv_macs(bias: Shape, a: Shape, v: Shape, *_: Any, out_shape: Shape,
               **__: Any) -> OpCost:
    """Matrix-vector product plus a vector: (M x K) @ (K) = M x K MACs, + M adds."""
    factors = Factors((a[0],), (a[1],))
    return OpCost(factors.macs, a[0], factors)


@register_formula("dot", "vdot", shape=lambda a, b, *_, **__: ())
def dot_macs(a: Shape, b: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Dot product of two K-vectors: K MACs."""
    if len(a) != 1 or a != b:
        raise ValueError(f"dot of {a} and {b}")
    factors = Factors((1,), (a[0],))
    return OpCost(factors.macs, 0, factors)


@register_formula("addr", "addr_", shape=lambda m, u, v, *_, **__: (u[0], v[0]))
def addr_macs(m: Shape, u: Shape, v: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Outer product added to a matrix, M + u v^T: a product of (M x 1) @ (1 x N), so
    M x N MACs (K = 1), + M x N adds, as addmm counts its bias."""
    factors = Factors((u[0], v[0]), (1,))
    return OpCost(factors.macs, u[0] * v[0], factors)


def _trilinear_dims(i1: Shape, i2: Shape, i3: Shape, expand1: Sequence[int],
                    expand2: Sequence[int], expand3: Sequence[int],
                    sumdim: Sequence[int]) -> tuple[list[int], list[set[int]], set[int]]:
    """``_trilinear``'s dims: each one's size, the dims each input has (the others are
    inserted, size 1), and the summed ones."""
    total = len(i1) + len(expand1)
    if len(i2) + len(expand2) != total or len(i3) + len(expand3) != total:
        raise ValueError("_trilinear inputs of different ranks")
    sizes, own = [1] * total, []
    for shape, expand in ((i1, expand1), (i2, expand2), (i3, expand3)):
        dims = [d for d in range(total) if d not in expand]
        for d, n in zip(dims, shape, strict=True):
            sizes[d] = n
        own.append(set(dims))
    return sizes, own, set(sumdim)


def _trilinear_shape(i1: Shape, i2: Shape, i3: Shape, expand1: Sequence[int],
                     expand2: Sequence[int], expand3: Sequence[int], sumdim: Sequence[int],
                     *_: Any, **__: Any) -> Shape:
    """``_trilinear``: the product's dims, less the summed ones."""
    sizes, _own, summed = _trilinear_dims(i1, i2, i3, expand1, expand2, expand3, sumdim)
    return tuple(n for d, n in enumerate(sizes) if d not in summed)


@register_formula("_trilinear", shape=_trilinear_shape)
def trilinear_macs(i1: Shape, i2: Shape, i3: Shape, expand1: Sequence[int],
                   expand2: Sequence[int], expand3: Sequence[int], sumdim: Sequence[int],
                   *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """``_trilinear`` (nn.Bilinear, F.bilinear) as ATen computes it: two contractions.

    First i1 with i2, summed over the summed dims i3 lacks: one MAC per point of the dims
    i1 or i2 has; then that with i3, summed over the rest: one MAC per point of the dims
    left or i3 has. nn.Bilinear(in1, in2, out) on N rows: N x out x in1 x in2 + N x out x
    in2 MACs (= N x out x in2 x (in1 + 1)); its bias is a separate add.
    """
    sizes, (d1, d2, d3), summed = _trilinear_dims(i1, i2, i3, expand1, expand2, expand3,
                                                   sumdim)
    first = d1 | d2
    left = {d for d in first if d not in summed or d in d3}
    macs = math.prod(sizes[d] for d in first) + math.prod(sizes[d] for d in left | d3)
    return OpCost(macs)


def _pairwise_shape(x1: Shape, x2: Shape, *_: Any, **__: Any) -> Shape:
    """Pairwise distances of (..., P, M) and (..., R, M) rows: (..., P, R), broadcast."""
    lead = shapes.broadcast(x1[:-2], x2[:-2])
    if lead is None:
        raise ValueError(f"pairwise distances of {x1} and {x2}")
    return (*lead, x1[-2], x2[-2])


@register_formula("_cdist_forward", shape=_pairwise_shape)
def cdist_macs(x1: Shape, x2: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """p-norm distances between the P rows of x1 and the R rows of x2 (M coordinates each):
    per pair and coordinate a subtraction and a multiply-accumulate (|d|^p summed; a
    square for p = 2), then one root per pair: B x P x R x M MACs + B x P x R x (M + 1)
    FLOPs. NB: |d|^p for p other than 2 is counted as one multiply like the square."""
    factors = Factors(out_shape[-2:], (x1[-1],), _lead(out_shape))
    return OpCost(factors.macs, _n(out_shape) * (x1[-1] + 1), factors)


@register_formula("_euclidean_dist", shape=_pairwise_shape)
def euclidean_dist_macs(x1: Shape, x2: Shape, *_: Any, out_shape: Shape,
                        **__: Any) -> OpCost:
    """Euclidean distances by matrix product (torch.cdist on more than 25 rows): as ATen
    computes it, the squared norms of every row (P x M + R x M MACs), the product of the
    rows padded with their norms and ones ((P x (M + 2)) @ ((M + 2) x R): P x R x (M + 2)
    MACs), x1 scaled by -2 (P x M), then a clamp and a root per pair (2 x P x R), per batch."""
    batch = math.prod(out_shape[:-2])
    p, r, m = x1[-2], x2[-2], x1[-1]
    factors = Factors((p, r), (m + 2,), _lead(out_shape))
    return OpCost(factors.macs + batch * (p + r) * m, batch * (p * m + 2 * p * r), factors)


def _lead(out_shape: Shape) -> int | None:
    """The batch of a pairwise op's (..., P, R) output as a leading factor (None: none)."""
    return math.prod(out_shape[:-2]) if len(out_shape) > 2 else None


# --------------------------------------------------------------------------- normalisation


@register_formula("native_batch_norm", "_native_batch_norm_legit", shape=SAME)
def batch_norm_flops(x_shape: Shape, weight: Shape | None, bias: Shape | None,
                     running_mean: Shape | None, running_var: Shape | None, training: bool,
                     *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Batch norm: 2 FLOPs per element at inference (scale and shift, folded), 5 in training.

    Training mode also computes the batch mean and variance (3 more per element).
    """
    return OpCost(0, (5 if training else 2) * _n(x_shape))


@register_formula("_native_batch_norm_legit_no_training", shape=SAME)
def batch_norm_inference_flops(x_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Batch norm at inference: 2 FLOPs per element (scale and shift, folded)."""
    return OpCost(0, 2 * _n(x_shape))


@register_formula("native_layer_norm", "native_group_norm", shape=SAME)
def norm_flops(x_shape: Shape, *args: Any, out_shape: Any, **__: Any) -> OpCost:
    """Layer/group norm: 5 FLOPs per element (mean, variance, normalise, scale, shift)."""
    return OpCost(0, 5 * _n(x_shape))


# --------------------------------------------------------------------------- pooling


def _kernel_volume(kernel_size: Any, x_shape: Shape) -> int:
    """Elements in a pooling window; one size stands for every spatial dimension."""
    return math.prod(_per_dim(len(x_shape) - 2, kernel_size))


def _pool_rule(nd: int, dilated: bool) -> ShapeRule:
    """The output shape of an ``nd``-d max (``dilated``) or average pooling."""

    def rule(x: Shape, kernel_size: Any, stride: Any = (), padding: Any = 0, *rest: Any,
             **__: Any) -> Shape:
        # max: (..., dilation, ceil_mode); average: (..., ceil_mode, count_include_pad, ...)
        dilation = rest[0] if dilated and rest else 1
        more = rest[1:] if dilated else rest
        ceil_mode = bool(more[0]) if more else False
        params = zip(x[-nd:], _per_dim(nd, kernel_size), _per_dim(nd, stride or kernel_size),
                     _per_dim(nd, padding), _per_dim(nd, dilation), strict=True)
        return (*x[:-nd], *(shapes.pool_out(*p, ceil_mode=ceil_mode) for p in params))

    rule.__doc__ = f"{nd}-d {'max' if dilated else 'average'} pooling output shape."
    return rule


def max_pool_flops(x_shape: Shape, kernel_size: Any, *_: Any, out_shape: Any,
                   **__: Any) -> OpCost:
    """Max pooling: K - 1 comparisons per output element (K = kernel volume)."""
    out = out_shape[0] if isinstance(out_shape, list | tuple) and isinstance(
        out_shape[0], tuple) else out_shape
    return OpCost(0, (_kernel_volume(kernel_size, x_shape) - 1) * _n(out))


def avg_pool_flops(x_shape: Shape, kernel_size: Any, *_: Any, out_shape: Shape,
                   **__: Any) -> OpCost:
    """Average pooling: K FLOPs per output element (K - 1 adds and one divide)."""
    return OpCost(0, _kernel_volume(kernel_size, x_shape) * _n(out_shape))


for _nd in (1, 2, 3):
    register_formula(f"max_pool{_nd}d", f"max_pool{_nd}d_with_indices",
                     shape=_pool_rule(_nd, dilated=True))(max_pool_flops)
    register_formula(f"avg_pool{_nd}d", shape=_pool_rule(_nd, dilated=False))(avg_pool_flops)


def _adaptive_shape(x: Shape, output_size: Any, *_: Any, **__: Any) -> Shape:
    """Adaptive pooling: the leading dims, then ``output_size``."""
    sizes = _per_dim(1, output_size)
    return (*x[:len(x) - len(sizes)], *sizes)


@register_formula("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d",
                  "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_max_pool1d",
                  shape=_adaptive_shape)
@register_formula("mean", "sum", "amax", "amin", shape=REDUCE)
def reduce_flops(x_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Reductions and adaptive pooling: one FLOP per input element."""
    return OpCost(0, _n(x_shape))


def _resize_shape(x: Shape, output_size: Any, *rest: Any, **__: Any) -> Shape:
    """Upsampling: the leading dims, then ``output_size`` or floor(size x scale factor)."""
    if output_size:
        sizes = list(output_size)
    else:  # the .vec overloads: (input, None, [align_corners,] scale_factors)
        scales = next(r for r in rest if isinstance(r, list | tuple))
        sizes = [math.floor(n * f) for n, f in zip(x[2:], scales, strict=True)]
    return (*x[:len(x) - len(sizes)], *sizes)


@register_formula("upsample_bilinear2d", "upsample_linear1d", "upsample_trilinear3d",
                  "_upsample_bilinear2d_aa", shape=_resize_shape)
def interpolate_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """(Bi/tri)linear upsampling: 2^d taps weighted and summed, 2^(d+1) - 1 FLOPs per output.

    NB: the anti-aliased variant (``antialias=True``) uses wider windows when downsampling;
    it is counted like plain bilinear.
    """
    taps = 2 ** (len(out_shape) - 2)
    return OpCost(0, (2 * taps - 1) * _n(out_shape))


@register_formula("upsample_bicubic2d", shape=_resize_shape)
def bicubic_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Bicubic upsampling: 4 x 4 = 16 taps weighted and summed, 31 FLOPs per output element."""
    return OpCost(0, 31 * _n(out_shape))


@register_formula("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax",
                  shape=SAME)
def softmax_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Softmax: 5 FLOPs per element (max, subtract, exp, sum, divide).

    ``_safe_softmax`` (attention's softmax, 0 where a row is fully masked) is counted alike.
    """
    return OpCost(0, 5 * _n(x_shape))


# --------------------------------------------------------------------------- elementwise

# Elementwise ops (with their in-place forms) and their FLOPs per output element under
# policy "all". Their shape rule is BROADCAST: one output, the broadcast of the tensor
# inputs. An op that changes shapes otherwise (a reduction such as prod) does not belong here.
_ELEMENTWISE: tuple[tuple[str, int], ...] = (
    ("relu relu_ threshold", 1),  # one comparison
    ("hardtanh hardtanh_", 2),  # two comparisons (ReLU6 is hardtanh(0, 6))
    ("leaky_relu leaky_relu_", 2),  # comparison + multiply
    ("elu elu_", 4),
    ("sigmoid sigmoid_", 4),  # negate, exp, add, divide
    ("tanh tanh_", 5),
    ("silu silu_", 5),  # sigmoid + multiply
    ("hardswish hardswish_", 5),  # add, two clamps, multiply, divide
    ("hardsigmoid hardsigmoid_", 4),  # add, two clamps, divide
    ("gelu", 8),  # erf approximated as a short polynomial
    ("erf", 4),  # the polynomial: gelu = x/2 (1 + erf(x/sqrt 2)) is 4 more, 8 in all
    ("softplus", 3),  # exp, add, log
    ("mish", 9),  # softplus, tanh, multiply
    ("_prelu_kernel", 2),  # comparison + multiply (PReLU: leaky_relu with a learnt slope)
    ("add add_ sub sub_ mul mul_ div div_ rsub minimum maximum", 1),
    ("neg exp sqrt rsqrt pow abs log reciprocal sin cos floor ceil round sign", 1),
    ("where", 1),  # a select
    ("clamp clamp_", 2),
    ("clamp_min clamp_min_ clamp_max clamp_max_", 1),
)
PER_ELEMENT: dict[str, int] = {op: per for ops, per in _ELEMENTWISE for op in ops.split()}


def _elementwise(per: int) -> Formula:
    def formula(*_: Any, out_shape: Any, **__: Any) -> OpCost:
        return OpCost(0, per * _n(out_shape))

    formula.__doc__ = f"{per} FLOP(s) per output element (see PER_ELEMENT)."
    return formula


for _op, _per in PER_ELEMENT.items():
    register_formula(_op, shape=BROADCAST)(_elementwise(_per))


def _compare_rule(*args: Any, **kwargs: Any) -> Shape | None:
    """Comparisons and logic: the broadcast shape (of booleans, so not BROADCAST itself,
    whose ops keep their input's dtype: the counter's meta shortcut relies on that)."""
    return _broadcast_rule(*args, **kwargs)


# Comparisons and logic ops: one FLOP per output element.
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
               "logical_xor")
for _op in COMPARISONS:
    register_formula(_op, shape=_compare_rule)(_elementwise(1))


def policy_flops(cost_macs: int, elem_flops: int, policy: str) -> int:
    """FLOPs under a counting policy: ``conv+linear`` -> 2 x MACs; ``all`` adds elem_flops."""
    return 2 * cost_macs + (elem_flops if policy == "all" else 0)

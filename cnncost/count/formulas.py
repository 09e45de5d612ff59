"""One table of counting formulas: ATen op name -> pure shape formula.

A formula gets the op's arguments with every tensor replaced by its shape (a tuple),
and the output shape as ``out_shape``; it returns an :class:`OpCost`. No torch here,
so the formulas can be fed shapes from anywhere (the meta-device counter, or a
spec's own shape inference).

Conventions (printed in every report):
- 1 MAC = one multiply + one add. Only convolution, linear and matrix products have MACs.
- FLOPs under policy ``conv+linear`` = 2 x MACs (the papers' convention).
- FLOPs under policy ``all`` = 2 x MACs + ``elem_flops``: bias adds and the per-element
  costs of every other op, listed in ``PER_ELEMENT`` and in each formula's docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class OpCost:
    """The cost of one op call: multiply-accumulates, other FLOPs, and how MACs were derived."""

    macs: int = 0
    elem_flops: int = 0
    formula: str = ""


Formula = Callable[..., OpCost]
FORMULAS: dict[str, Formula] = {}

# Ops that move, view or allocate data but compute nothing: counted as 0 without a warning.
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
max_pool2d_with_indices_backward
"""
ZERO_COST_OPS: frozenset[str] = frozenset(f"aten::{n}" for n in _ZERO_COST_NAMES.split())

# Documented per-element FLOP costs of elementwise and normalisation ops (policy "all").
PER_ELEMENT: dict[str, int] = {
    "relu": 1,  # one comparison
    "relu_": 1,
    "threshold": 1,
    "hardtanh": 2,  # two comparisons (ReLU6 is hardtanh(0, 6))
    "hardtanh_": 2,
    "leaky_relu": 2,  # comparison + multiply
    "leaky_relu_": 2,
    "elu": 4,
    "sigmoid": 4,  # negate, exp, add, divide
    "sigmoid_": 4,
    "tanh": 5,
    "tanh_": 5,
    "silu": 5,  # sigmoid + multiply
    "silu_": 5,
    "hardswish": 5,  # add, two clamps, multiply, divide
    "hardswish_": 5,
    "hardsigmoid": 4,  # add, two clamps, divide
    "hardsigmoid_": 4,
    "gelu": 8,  # erf approximated as a short polynomial
    "add": 1,
    "add_": 1,
    "sub": 1,
    "sub_": 1,
    "mul": 1,
    "mul_": 1,
    "div": 1,
    "div_": 1,
    "neg": 1,
    "exp": 1,
    "clamp": 2,
    "clamp_": 2,
    "sqrt": 1,
    "rsqrt": 1,
    "pow": 1,
    "abs": 1,
    "log": 1,
    "reciprocal": 1,
    "rsub": 1,
    "minimum": 1,
    "maximum": 1,
    "clamp_min": 1,
    "clamp_min_": 1,
    "clamp_max": 1,
    "clamp_max_": 1,
    "elu_": 4,
}


def register_formula(*ops: str) -> Callable[[Formula], Formula]:
    """Register a formula under one or more ATen op names (``"aten::convolution"``)."""

    def deco(fn: Formula) -> Formula:
        for op in ops:
            name = op if "::" in op else f"aten::{op}"
            if name in FORMULAS or name in ZERO_COST_OPS:
                raise RuntimeError(f"formula for {name} registered twice")
            FORMULAS[name] = fn
        return fn

    return deco


def _n(shape: Any) -> int:
    return math.prod(shape) if isinstance(shape, tuple) else 0


def _x(dims: Any) -> str:
    return "x".join(str(d) for d in dims)


def _num(value: int) -> str:
    return f"{value:,}"


# --------------------------------------------------------------------------- conv & linear


@register_formula("convolution", "_convolution")
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
    if not transposed:
        # w: (C_out, C_in/groups, *K); every output element costs C_in/groups x K MACs.
        per_out = w_shape[1] * math.prod(kernel)
        out_elems = math.prod(out_shape[2:]) * out_shape[1]
        macs = batch * out_elems * per_out
        outs = (*out_shape[2:], out_shape[1])
        cost = (*kernel, w_shape[1])
    else:
        # w: (C_in, C_out/groups, *K); every input element is spread over C_out/groups x K.
        per_in = w_shape[1] * math.prod(kernel)
        macs = batch * x_shape[1] * math.prod(x_shape[2:]) * per_in
        outs = (*x_shape[2:], x_shape[1])
        cost = (*kernel, w_shape[1])
    prefix = f"{batch} x " if batch != 1 else ""
    formula = f"{prefix}({_x(outs)}) x ({_x(cost)}) = {_num(macs)}"
    return OpCost(macs, _n(out_shape) if bias else 0, formula)


@register_formula("addmm")
def addmm_macs(bias: Shape, a: Shape, b: Shape, *_: Any, out_shape: Shape,
               **__: Any) -> OpCost:
    """Linear with bias: (M x K) @ (K x N) = M x N x K MACs, plus M x N bias adds."""
    m, k = a
    n = b[1]
    macs = m * n * k
    return OpCost(macs, m * n, f"({m}x{n}) x {k} = {_num(macs)}")


@register_formula("mm")
def mm_macs(a: Shape, b: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Matrix product (M x K) @ (K x N) = M x N x K MACs."""
    m, k = a
    n = b[1]
    macs = m * n * k
    return OpCost(macs, 0, f"({m}x{n}) x {k} = {_num(macs)}")


@register_formula("bmm")
def bmm_macs(a: Shape, b: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Batched matrix product (B x M x K) @ (B x K x N) = B x M x N x K MACs."""
    bsz, m, k = a
    n = b[2]
    macs = bsz * m * n * k
    return OpCost(macs, 0, f"{bsz} x ({m}x{n}) x {k} = {_num(macs)}")


@register_formula("baddbmm")
def baddbmm_macs(bias: Shape, a: Shape, b: Shape, *_: Any, out_shape: Shape,
                 **__: Any) -> OpCost:
    """Batched matrix product with an added tensor: B x M x N x K MACs + B x M x N adds."""
    cost = bmm_macs(a, b, out_shape=out_shape)
    return OpCost(cost.macs, _n(out_shape), cost.formula)


# --------------------------------------------------------------------------- normalisation


@register_formula("native_batch_norm", "_native_batch_norm_legit")
def batch_norm_flops(x_shape: Shape, weight: Shape | None, bias: Shape | None,
                     running_mean: Shape | None, running_var: Shape | None, training: bool,
                     *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Batch norm: 2 FLOPs per element at inference (scale and shift, folded), 5 in training.

    Training mode also computes the batch mean and variance (3 more per element).
    """
    return OpCost(0, (5 if training else 2) * _n(x_shape))


@register_formula("_native_batch_norm_legit_no_training")
def batch_norm_inference_flops(x_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Batch norm at inference: 2 FLOPs per element (scale and shift, folded)."""
    return OpCost(0, 2 * _n(x_shape))


@register_formula("native_layer_norm", "native_group_norm")
def norm_flops(x_shape: Shape, *args: Any, out_shape: Any, **__: Any) -> OpCost:
    """Layer/group norm: 5 FLOPs per element (mean, variance, normalise, scale, shift)."""
    return OpCost(0, 5 * _n(x_shape))


# --------------------------------------------------------------------------- pooling


def _kernel_volume(kernel_size: Any, x_shape: Shape) -> int:
    """Elements in a pooling window; one size stands for every spatial dimension."""
    spatial = len(x_shape) - 2
    sizes = list(kernel_size) if isinstance(kernel_size, list | tuple) else [kernel_size]
    if len(sizes) == 1:
        sizes *= spatial
    return math.prod(sizes)


@register_formula("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                  "max_pool3d_with_indices", "max_pool1d_with_indices")
def max_pool_flops(x_shape: Shape, kernel_size: Any, *_: Any, out_shape: Any,
                   **__: Any) -> OpCost:
    """Max pooling: K - 1 comparisons per output element (K = kernel volume)."""
    out = out_shape[0] if isinstance(out_shape, list | tuple) and isinstance(
        out_shape[0], tuple) else out_shape
    return OpCost(0, (_kernel_volume(kernel_size, x_shape) - 1) * _n(out))


@register_formula("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool_flops(x_shape: Shape, kernel_size: Any, *_: Any, out_shape: Shape,
                   **__: Any) -> OpCost:
    """Average pooling: K FLOPs per output element (K - 1 adds and one divide)."""
    return OpCost(0, _kernel_volume(kernel_size, x_shape) * _n(out_shape))


@register_formula("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d",
                  "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_max_pool1d",
                  "mean", "sum", "amax")
def reduce_flops(x_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Reductions and adaptive pooling: one FLOP per input element."""
    return OpCost(0, _n(x_shape))


@register_formula("upsample_bilinear2d", "upsample_linear1d", "upsample_trilinear3d",
                  "_upsample_bilinear2d_aa")
def interpolate_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """(Bi/tri)linear upsampling: 2^d taps weighted and summed, 2^(d+1) - 1 FLOPs per output.

    NB: the anti-aliased variant (``antialias=True``) uses wider windows when downsampling;
    it is counted like plain bilinear.
    """
    taps = 2 ** (len(out_shape) - 2)
    return OpCost(0, (2 * taps - 1) * _n(out_shape))


@register_formula("upsample_bicubic2d")
def bicubic_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Bicubic upsampling: 4 x 4 = 16 taps weighted and summed, 31 FLOPs per output element."""
    return OpCost(0, 31 * _n(out_shape))


@register_formula("_softmax", "_log_softmax", "softmax", "log_softmax")
def softmax_flops(x_shape: Shape, *_: Any, out_shape: Shape, **__: Any) -> OpCost:
    """Softmax: 5 FLOPs per element (max, subtract, exp, sum, divide)."""
    return OpCost(0, 5 * _n(x_shape))


# --------------------------------------------------------------------------- elementwise


def _elementwise(per: int) -> Formula:
    def formula(*_: Any, out_shape: Any, **__: Any) -> OpCost:
        return OpCost(0, per * _n(out_shape))

    formula.__doc__ = f"{per} FLOP(s) per output element (see PER_ELEMENT)."
    return formula


for _op, _per in PER_ELEMENT.items():
    register_formula(_op)(_elementwise(_per))


def policy_flops(cost_macs: int, elem_flops: int, policy: str) -> int:
    """FLOPs under a counting policy: ``conv+linear`` -> 2 x MACs; ``all`` adds elem_flops."""
    return 2 * cost_macs + (elem_flops if policy == "all" else 0)

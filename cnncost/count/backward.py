"""The backward pass's formulas: the ATen ops autograd runs, registered like forward ones.

A training step's backward runs these ops (PyTorch's ``derivatives.yaml``); each is counted
from shapes only, as the forward formulas are. An op that computes several gradients
returns one :class:`OpCost` per output, in the op's output order, so the counter can tell
the gradient of the input from the gradient of the weights (``convolution_backward``
returns ``(grad_input, grad_weight, grad_bias)``). Outputs the op was told to skip
(``output_mask``) cost nothing. The matrix products of a linear layer's backward are plain
``mm``/``addmm`` calls counted by the forward formulas; which gradient each one computes is
decided by where its result goes (cnncost.count.train).

Per-element costs follow the forward ones (cnncost.count.formulas): one FLOP per add,
multiply, compare or divide, one per exp or square root.
"""

from __future__ import annotations

import math
from typing import Any

from cnncost.count.formulas import (
    BROADCAST,
    SAME,
    OpCost,
    Shape,
    ShapeRule,
    _n,
    conv_macs,
    register_formula,
)
from cnncost.table import Factors

NONE = OpCost()


def _mask(output_mask: Any, i: int) -> bool:
    return bool(output_mask[i]) if isinstance(output_mask, list | tuple) else True


def _second(_g: Shape, x: Shape, *_: Any, **__: Any) -> Shape:
    """Shaped like the op's second argument, the forward input (dL/dx of a conv, a pool)."""
    return x


@register_formula("convolution_backward", shape=_second)
def conv_backward_macs(grad_shape: Shape, x_shape: Shape, w_shape: Shape, bias_sizes: Any,
                       stride: Any, padding: Any, dilation: Any, transposed: bool,
                       output_padding: Any, groups: int, output_mask: Any, *_: Any,
                       out_shape: Any, **__: Any) -> tuple[OpCost, OpCost, OpCost]:
    """Conv backward: each gradient costs the forward's MACs, when it is asked for.

    grad_input = the transposed conv of grad_output with the weights: every forward MAC
    w x x once more as w x dL/dy, so N x C_out x H_out x W_out x (C_in/groups) x K_h x K_w
    (written like the forward). grad_weight = dL/dy correlated with the input: each of the
    K_h x K_w x C_in/groups x C_out weights meets N x H_out x W_out gradients, the same
    product. grad_bias = dL/dy summed over N, H, W: one add per gradient value (FLOPs).
    A transposed conv swaps the roles (its forward counts per input element), and its
    gradients again cost its forward's MACs each.
    """
    fwd = conv_macs(x_shape, w_shape, None, stride, padding, dilation, transposed,
                    out_shape=grad_shape)
    assert fwd.factors is not None
    gi = OpCost(fwd.macs, 0, fwd.factors) if _mask(output_mask, 0) else NONE
    gw = NONE
    if _mask(output_mask, 1):
        spread = x_shape if transposed else grad_shape
        weight = fwd.factors.weight or ()
        factors = Factors(tuple(weight), tuple(spread[2:]), spread[0] if spread[0] != 1 else None)
        gw = OpCost(factors.macs, 0, factors)
    gb = OpCost(0, _n(grad_shape)) if _mask(output_mask, 2) and bias_sizes else NONE
    return gi, gw, gb


# --------------------------------------------------------------------------- normalisation

# Batch norm in training: x_hat = (x - mean) x invstd (2 per element), sum(dL/dy) and
# sum(dL/dy x x_hat) (3): shared by every gradient; then
# dL/dx = (dL/dy - mean(dL/dy) - x_hat x mean(dL/dy x x_hat)) x gamma x invstd (4).
_NORM_SHARED, _NORM_INPUT = 5, 4


def _norm_costs(n: int, output_mask: Any, training: bool = True
                ) -> tuple[OpCost, OpCost, OpCost]:
    want = [_mask(output_mask, i) for i in range(3)]
    if not training:  # frozen statistics: dL/dx = dL/dy x gamma x invstd
        gi = OpCost(0, n) if want[0] else NONE
        weights = OpCost(0, (4 if want[1] else 0) * n + (n if want[2] else 0))
        return gi, weights, NONE
    shared = _NORM_SHARED * n if any(want) else 0
    own = _NORM_INPUT * n if want[0] else 0
    if want[1] or want[2]:  # the weight gradients hold the shared reductions
        return OpCost(0, own), OpCost(0, shared), NONE
    return OpCost(0, own + shared), NONE, NONE


@register_formula("native_batch_norm_backward", shape=SAME)
def batch_norm_backward_flops(grad_shape: Shape, x_shape: Shape, weight: Any,
                              running_mean: Any, running_var: Any, save_mean: Any,
                              save_invstd: Any, train: bool, eps: float, output_mask: Any,
                              *_: Any, out_shape: Any, **__: Any
                              ) -> tuple[OpCost, OpCost, OpCost]:
    """Batch norm backward in training: 9 FLOPs per element, 5 of them (x_hat and the two
    sums) counted with the weight gradients, 4 with dL/dx; with frozen statistics
    (``train=False``) dL/dx is one multiply per element, and dgamma, dbeta 5."""
    return _norm_costs(_n(x_shape), output_mask, bool(train))


@register_formula("native_layer_norm_backward", shape=SAME)
def layer_norm_backward_flops(grad_shape: Shape, x_shape: Shape, normalized_shape: Any,
                              mean: Any, rstd: Any, weight: Any, bias: Any, output_mask: Any,
                              *_: Any, out_shape: Any, **__: Any
                              ) -> tuple[OpCost, OpCost, OpCost]:
    """Layer norm backward: as batch norm in training, 9 FLOPs per element (the sums run
    over the normalised dims for dL/dx and over the others for the weights: same count)."""
    return _norm_costs(_n(x_shape), output_mask)


@register_formula("native_group_norm_backward", shape=SAME)
def group_norm_backward_flops(grad_shape: Shape, x_shape: Shape, mean: Any, rstd: Any,
                              weight: Any, n: Any, c: Any, hxw: Any, group: Any,
                              output_mask: Any, *_: Any, out_shape: Any, **__: Any
                              ) -> tuple[OpCost, OpCost, OpCost]:
    """Group norm backward: as batch norm in training, 9 FLOPs per element."""
    return _norm_costs(_n(x_shape), output_mask)


# --------------------------------------------------------------------------- elementwise

# Activation backwards: FLOPs per element of dL/dx (one output, shaped like dL/dy).
_ELEMENTWISE_BACKWARD: tuple[tuple[str, int], ...] = (
    ("threshold_backward", 1),  # ReLU: dL/dy where y > 0 (a compare and select)
    ("hardtanh_backward", 2),  # ReLU6: two compares
    ("leaky_relu_backward", 2),  # compare, multiply by the slope
    ("elu_backward", 4),  # compare, exp (or y + alpha), two multiplies
    ("sigmoid_backward", 3),  # dL/dy x y x (1 - y)
    ("tanh_backward", 3),  # dL/dy x (1 - y^2)
    ("silu_backward", 9),  # sigmoid (4), then dL/dy x s x (1 + x(1 - s)): 5
    ("hardswish_backward", 5),  # two compares, x/3 + 1/2, x dL/dy
    ("hardsigmoid_backward", 3),  # two compares, x 1/6
    ("gelu_backward", 14),  # Phi(x) (7) + x phi(x) (exp of -x^2/2: 5) + add + x dL/dy
    ("_softmax_backward_data", 4),  # y x (dL/dy - sum(dL/dy x y)): multiply, sum, sub, mul
    ("_log_softmax_backward_data", 4),  # dL/dy - exp(y) x sum(dL/dy): sum, exp, mul, sub
)
PER_ELEMENT_BACKWARD: dict[str, int] = dict(_ELEMENTWISE_BACKWARD)


def _elementwise_backward(per: int) -> Any:
    def formula(*_: Any, out_shape: Any, **__: Any) -> OpCost:
        return OpCost(0, per * _n(out_shape))

    formula.__doc__ = f"{per} FLOP(s) per element of dL/dx (see PER_ELEMENT_BACKWARD)."
    return formula


for _op, _per in PER_ELEMENT_BACKWARD.items():
    # Softmax's backward takes dim arguments, not broadcast operands: shaped like dL/dy.
    _rule: ShapeRule = SAME if "softmax" in _op else BROADCAST
    register_formula(_op, shape=_rule)(_elementwise_backward(_per))


# --------------------------------------------------------------------------- pooling, resize


def _scatter_backward(per_grad: int) -> Any:
    def formula(grad_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
        return OpCost(0, per_grad * _n(grad_shape))

    return formula


max_pool_backward_flops = _scatter_backward(1)
max_pool_backward_flops.__doc__ = """Max pooling backward: each gradient value is added to
its window's argmax (one add per value of dL/dy; overlapping windows sum there)."""
register_formula("max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
                 "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
                 shape=_second)(max_pool_backward_flops)  # 1-d pooling runs the 2-d kernels


def _window(kernel_size: Any, nd: int) -> int:
    sizes = list(kernel_size) if isinstance(kernel_size, list | tuple) else [kernel_size]
    return math.prod(sizes * nd if len(sizes) == 1 else sizes)


@register_formula("avg_pool2d_backward", "avg_pool3d_backward", shape=_second)
def avg_pool_backward_flops(grad_shape: Shape, x_shape: Shape, kernel_size: Any, *_: Any,
                            out_shape: Any, **__: Any) -> OpCost:
    """Average pooling backward: each gradient value divided by the window (1 FLOP) and
    added to its K inputs (K): K + 1 per value of dL/dy."""
    return OpCost(0, (_window(kernel_size, len(x_shape) - 2) + 1) * _n(grad_shape))


@register_formula("_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
                  shape=_second)
def adaptive_avg_pool_backward_flops(grad_shape: Shape, x_shape: Shape, *_: Any,
                                     out_shape: Any, **__: Any) -> OpCost:
    """Adaptive average pooling backward: one FLOP per input value (its share of dL/dy)."""
    return OpCost(0, _n(x_shape))


def _resize_backward_shape(grad: Shape, output_size: Any, input_size: Any, *_: Any,
                           **__: Any) -> Shape:
    """Upsampling backward: dL/dx has the forward input's size."""
    return tuple(input_size)


upsample_nearest_backward_flops = _scatter_backward(1)
upsample_nearest_backward_flops.__doc__ = """Nearest upsampling backward: each gradient
value is added to its source (one add per value of dL/dy)."""
register_formula("upsample_nearest1d_backward", "upsample_nearest2d_backward",
                 "upsample_nearest3d_backward", "_upsample_nearest_exact2d_backward",
                 shape=_resize_backward_shape)(upsample_nearest_backward_flops)


@register_formula("upsample_bilinear2d_backward", "upsample_linear1d_backward",
                  "upsample_trilinear3d_backward", shape=_resize_backward_shape)
def interpolate_backward_flops(grad_shape: Shape, *_: Any, out_shape: Any,
                               **__: Any) -> OpCost:
    """(Bi/tri)linear upsampling backward: each gradient value weighted and added to its
    2^d taps, 2 x 2^d FLOPs per value of dL/dy."""
    return OpCost(0, 2 * 2 ** (len(grad_shape) - 2) * _n(grad_shape))


@register_formula("upsample_bicubic2d_backward", shape=_resize_backward_shape)
def bicubic_backward_flops(grad_shape: Shape, *_: Any, out_shape: Any, **__: Any) -> OpCost:
    """Bicubic upsampling backward: 16 taps, a multiply and an add each: 32 per value."""
    return OpCost(0, 32 * _n(grad_shape))

"""Every registered op, run on meta (through the counter) and on CPU: same output shapes.

One sample call (or a few) per entry of ``FORMULAS`` and ``ZERO_COST_OPS``; a registered op
without one fails :func:`test_every_registered_op_has_samples`, as a layer kind without a
sample does in test_layers.py. Per formula op the sample states its cost, worked out by
hand from the formula's docstring, and the test checks:

- the counter's meta run (its hand-written meta kernels, its caches) gives the outputs
  the CPU kernel gives (shapes and dtypes);
- the op's declared shape rule gives the CPU output's shape;
- the count is the hand-worked one, on meta and on CPU, and nothing is left uncounted.

Zero-cost ops are checked the same way with a cost of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_map

import cnncost.count.backward  # noqa: F401  (a training step's formulas: registered entries too)
from cnncost.count.formulas import FORMULAS, SHAPE_RULES, ZERO_COST_OPS
from cnncost.count.mode import Acc, CostCounterMode


@dataclass(frozen=True)
class T:
    """A tensor argument, made on the device under test (CPU values are uniform in [0.1, 1))."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def make(self, device: str) -> torch.Tensor:
        if device == "meta":
            return torch.empty(self.shape, dtype=self.dtype, device="meta")
        if not self.dtype.is_floating_point:
            return torch.zeros(self.shape, dtype=self.dtype)
        gen = torch.Generator().manual_seed(0)
        return torch.rand(self.shape, generator=gen, dtype=self.dtype) * 0.9 + 0.1


def t(*shape: int, dtype: torch.dtype = torch.float32) -> T:
    return T(shape, dtype)


DEV = "<device>"  # a keyword value replaced by the device under test
X = t(2, 3, 4)  # 24 elements
N = 24


@dataclass(frozen=True)
class Call:
    """One call of an ATen overload, with its cost by hand (MACs, other FLOPs)."""

    overload: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()
    macs: int = 0
    elem: int = 0


def c(overload: str, *args: Any, macs: int = 0, elem: int = 0, **kwargs: Any) -> Call:
    return Call(overload, args, tuple(kwargs.items()), macs, elem)


def unary(per: int, *extra: Any) -> list[Call]:
    """An elementwise op on X: ``per`` FLOPs for each of its 24 output elements."""
    return [c("default", X, *extra, elem=per * N)]


BN = (t(2, 3, 4, 4), t(3), t(3), t(3), t(3))  # x, weight, bias, running mean and var: 96
FORMULA_SAMPLES: dict[str, list[Call]] = {
    # conv: N x C_out x H_out x W_out x (C_in/groups) x K_h x K_w, bias: 1 per output.
    # H_out = (9 + 2x1 - 2x(3-1) - 1) // 2 + 1 = 4, W_out = (7 - 1x(2-1) - 1) // 1 + 1 = 6
    "convolution": [
        c("default", t(2, 4, 9, 7), t(6, 2, 3, 2), t(6), [2, 1], [1, 0], [2, 1], False,
          [0, 0], 2, macs=2 * 6 * 4 * 6 * (2 * 3 * 2), elem=2 * 6 * 4 * 6),
        # transposed, per input element: N x C_in x H_in x W_in x (C_out/groups) x K x K;
        # H_out = (5 - 1) x 2 - 2 + (3 - 1) + 1 + 1 = 10
        c("default", t(1, 4, 5, 5), t(4, 3, 3, 3), None, [2, 2], [1, 1], [1, 1], True,
          [1, 1], 2, macs=1 * 4 * 5 * 5 * 3 * 9),
    ],
    "_convolution": [c("default", t(1, 2, 6, 6), t(3, 2, 3, 3), None, [1, 1], [1, 1],
                       [1, 1], False, [0, 0], 1, False, False, True, True,
                       macs=3 * 6 * 6 * 2 * 9)],
    # (M x K) @ (K x N): M x N x K MACs; addmm adds M x N bias values
    "addmm": [c("default", t(5), t(3, 4), t(4, 5), macs=3 * 5 * 4, elem=3 * 5)],
    "mm": [c("default", t(3, 4), t(4, 5), macs=3 * 5 * 4)],
    "bmm": [c("default", t(2, 3, 4), t(2, 4, 5), macs=2 * 3 * 5 * 4)],
    "baddbmm": [c("default", t(2, 3, 5), t(2, 3, 4), t(2, 4, 5), macs=2 * 3 * 5 * 4,
                  elem=2 * 3 * 5)],
    "addmm_": [c("default", t(3, 5), t(3, 4), t(4, 5), macs=3 * 5 * 4, elem=3 * 5)],
    "baddbmm_": [c("default", t(2, 3, 5), t(2, 3, 4), t(2, 4, 5), macs=2 * 3 * 5 * 4,
                   elem=2 * 3 * 5)],
    # addbmm sums the B products into one M x N: B x M x N x K MACs + M x N adds
    "addbmm": [c("default", t(3, 5), t(2, 3, 4), t(2, 4, 5), macs=2 * 3 * 5 * 4,
                 elem=3 * 5)],
    "addbmm_": [c("default", t(3, 5), t(2, 3, 4), t(2, 4, 5), macs=2 * 3 * 5 * 4,
                  elem=3 * 5)],
    # (M x K) @ (K): M x K MACs; addmv adds M values; a dot of two K-vectors: K MACs
    "mv": [c("default", t(3, 4), t(4), macs=3 * 4)],
    "addmv": [c("default", t(3), t(3, 4), t(4), macs=3 * 4, elem=3)],
    "addmv_": [c("default", t(3), t(3, 4), t(4), macs=3 * 4, elem=3)],
    "dot": [c("default", t(5), t(5), macs=5)],
    "vdot": [c("default", t(5), t(5), macs=5)],
    # M + u v^T: (M x 1) @ (1 x N), M x N MACs, + M x N adds (as addmm's bias)
    "addr": [c("default", t(3, 4), t(3), t(4), macs=3 * 4, elem=3 * 4)],
    "addr_": [c("default", t(3, 4), t(3), t(4), macs=3 * 4, elem=3 * 4)],
    # F.bilinear's call: x1 (N=2, in1=3), W (out=5, in1=3, in2=4), x2 (2, 4); x1 with W over
    # in1: N x out x in1 x in2 = 120, then with x2 over in2: N x out x in2 = 40
    "_trilinear": [c("default", t(2, 3), t(5, 3, 4), t(2, 4), [1, 3], [0], [1, 2], [2, 3],
                     macs=2 * 5 * 3 * 4 + 2 * 5 * 4)],
    # 2 batches of 3 x 5 pairs of 4-coordinate rows: a MAC per coordinate, a subtraction
    # per coordinate and a root per pair
    "_cdist_forward": [c("default", t(2, 3, 4), t(2, 5, 4), 2.0, None, macs=2 * 3 * 5 * 4,
                         elem=2 * 3 * 5 * (4 + 1)),
                       c("default", t(3, 4), t(5, 4), 1.0, None, macs=3 * 5 * 4,
                         elem=3 * 5 * (4 + 1))],
    # by matrix product, per batch of 2: norms (3 + 5) x 4, product 3 x 5 x (4 + 2) MACs;
    # x1 x -2 (3 x 4), clamp and root per pair (2 x 3 x 5)
    "_euclidean_dist": [c("default", t(2, 3, 4), t(2, 5, 4),
                          macs=2 * (3 * 5 * (4 + 2) + (3 + 5) * 4),
                          elem=2 * (3 * 4 + 2 * 3 * 5))],
    # batch norm: 2 per element at inference, 5 in training
    "native_batch_norm": [c("default", *BN, False, 0.1, 1e-5, elem=2 * 96),
                          c("default", *BN, True, 0.1, 1e-5, elem=5 * 96)],
    "_native_batch_norm_legit": [c("default", *BN, False, 0.1, 1e-5, elem=2 * 96)],
    "_native_batch_norm_legit_no_training": [c("default", *BN, 0.1, 1e-5, elem=2 * 96)],
    # layer / group norm: 5 per element
    "native_layer_norm": [c("default", X, [4], t(4), t(4), 1e-5, elem=5 * N)],
    "native_group_norm": [c("default", t(2, 4, 3, 3), t(4), t(4), 2, 4, 9, 2, 1e-5,
                            elem=5 * 72)],
    # max pooling: K - 1 comparisons per output; 12 -> 4, 8 -> (8 + 2 - 3) // 2 + 1 = 4
    "max_pool1d": [c("default", t(1, 4, 12), [3], elem=2 * 4 * 4)],
    "max_pool2d": [c("default", t(1, 2, 8, 8), [3, 3], [2, 2], [1, 1], elem=8 * 2 * 4 * 4)],
    "max_pool3d": [c("default", t(1, 2, 4, 4, 4), [2, 2, 2], elem=7 * 2 * 2 * 2 * 2)],
    "max_pool1d_with_indices": [c("default", t(1, 4, 12), [3], [3], [0], [1], False,
                                  elem=2 * 4 * 4)],
    # ceil mode: H = ceil((8 + 2 - 2 - 1) / 2) + 1 = 5, W = ceil((7 + 2 - 2 - 1) / 2) + 1 = 4
    "max_pool2d_with_indices": [c("default", t(1, 2, 8, 7), [3, 3], [2, 2], [1, 1], [1, 1],
                                  True, elem=8 * 2 * 5 * 4)],
    # ceil((5 - 2) / 2) + 1 = 3 per dimension
    "max_pool3d_with_indices": [c("default", t(1, 2, 5, 5, 5), [2, 2, 2], [2, 2, 2],
                                  [0, 0, 0], [1, 1, 1], True, elem=7 * 2 * 3 * 3 * 3)],
    # average pooling: K per output; ceil((9 - 2) / 2) + 1 = 5, ceil((7 + 2 - 3) / 2) + 1 = 4
    "avg_pool1d": [c("default", t(2, 3, 9), [2], [2], [0], True, elem=2 * 2 * 3 * 5)],
    "avg_pool2d": [c("default", t(2, 3, 7, 7), [3, 3], [2, 2], [1, 1], True,
                     elem=9 * 2 * 3 * 4 * 4)],
    "avg_pool3d": [c("default", t(1, 2, 4, 4, 4), [2, 2, 2], elem=8 * 2 * 2 * 2 * 2)],
    # adaptive pooling and reductions: one per input element
    "_adaptive_avg_pool2d": [c("default", t(2, 3, 7, 5), [3, 2], elem=2 * 3 * 7 * 5)],
    "_adaptive_avg_pool3d": [c("default", t(1, 2, 4, 4, 4), [2, 2, 2], elem=2 * 64)],
    "adaptive_avg_pool1d": [c("default", t(1, 3, 8), [4], elem=3 * 8)],
    "adaptive_max_pool1d": [c("default", t(1, 3, 8), [4], elem=3 * 8)],
    "adaptive_max_pool2d": [c("default", t(1, 3, 6, 6), [2, 2], elem=3 * 36)],
    "adaptive_max_pool3d": [c("default", t(1, 2, 4, 4, 4), [2, 2, 2], elem=2 * 64)],
    "mean": [c("dim", t(2, 3, 4, 5), [-1, -2], True, elem=120), c("default", X, elem=N)],
    "sum": [c("dim_IntList", X, [1], elem=N), c("default", X, elem=N)],
    "amax": [c("default", X, [1], elem=N), c("default", X, [0, 2], True, elem=N)],
    "amin": [c("default", X, [1], elem=N), c("default", X, [0, 2], True, elem=N)],
    # (bi/tri)linear: 2^(d+1) - 1 per output; bicubic 31 per output
    "upsample_bilinear2d": [c("vec", t(1, 2, 3, 3), None, False, [2.0, 2.0],
                              elem=7 * 2 * 6 * 6),
                            c("default", t(1, 2, 3, 3), [5, 4], False, elem=7 * 2 * 5 * 4)],
    "upsample_linear1d": [c("default", t(1, 2, 5), [10], False, elem=3 * 2 * 10)],
    "upsample_trilinear3d": [c("default", t(1, 1, 2, 2, 2), [4, 4, 4], False,
                               elem=15 * 64)],
    "_upsample_bilinear2d_aa": [c("default", t(1, 2, 4, 4), [2, 2], False, elem=7 * 2 * 4)],
    "upsample_bicubic2d": [c("default", t(1, 2, 3, 3), [6, 6], False, elem=31 * 2 * 36)],
    # softmax: 5 per element
    "_softmax": [c("default", X, 1, False, elem=5 * N)],
    "_log_softmax": [c("default", X, 1, False, elem=5 * N)],
    "softmax": [c("int", X, 1, elem=5 * N)],
    "log_softmax": [c("int", X, 1, elem=5 * N)],
    "_safe_softmax": [c("default", X, 1, elem=5 * N)],
    # elementwise (per output element): comparisons, activations, arithmetic
    "relu": unary(1), "relu_": unary(1), "threshold": unary(1, 0.5, 0.0),
    "hardtanh": unary(2, -0.5, 0.5), "hardtanh_": unary(2, -0.5, 0.5),
    "leaky_relu": unary(2, 0.1), "leaky_relu_": unary(2, 0.1),
    "elu": unary(4), "elu_": unary(4), "sigmoid": unary(4), "sigmoid_": unary(4),
    "tanh": unary(5), "tanh_": unary(5), "silu": unary(5), "silu_": unary(5),
    "hardswish": unary(5), "hardswish_": unary(5),
    "hardsigmoid": unary(4), "hardsigmoid_": unary(4), "gelu": unary(8),
    "neg": unary(1), "exp": unary(1), "sqrt": unary(1), "rsqrt": unary(1), "abs": unary(1),
    "log": unary(1), "reciprocal": unary(1),
    "pow": [c("Tensor_Scalar", X, 2.0, elem=N), c("Tensor_Tensor", X, t(4), elem=N)],
    "erf": unary(4), "softplus": unary(3), "mish": unary(9),
    "_prelu_kernel": [c("default", t(2, 3, 4), t(3, 1), elem=2 * N)],
    "sin": unary(1), "cos": unary(1), "floor": unary(1), "ceil": unary(1), "round": unary(1),
    "sign": unary(1), "logical_not": unary(1),
    # comparisons, logic and select: one per (broadcast) output element, 2x3x4 = 24
    "eq": [c("Tensor", X, t(4), elem=N), c("Scalar", X, 0.5, elem=N)],
    "ne": [c("Tensor", X, t(4), elem=N)], "lt": [c("Tensor", X, t(4), elem=N)],
    "le": [c("Tensor", X, t(4), elem=N)], "gt": [c("Scalar", X, 0.5, elem=N)],
    "ge": [c("Tensor", X, t(3, 1), elem=N)], "logical_and": [c("default", X, t(4), elem=N)],
    "logical_or": [c("default", X, X, elem=N)], "logical_xor": [c("default", X, X, elem=N)],
    "where": [c("self", t(2, 3, 4, dtype=torch.bool), X, t(4), elem=N)],
    "clamp": unary(2, 0.2, 0.8), "clamp_": unary(2, 0.2, 0.8),
    "clamp_min": unary(1, 0.5), "clamp_min_": unary(1, 0.5),
    "clamp_max": unary(1, 0.5), "clamp_max_": unary(1, 0.5),
    # binary ops broadcast: (2, 3, 4) with (4,) or (3, 1); (2, 1, 4) with (3, 1) -> (2, 3, 4)
    "add": [c("Tensor", X, t(4), elem=N), c("Tensor", t(3, 1), X, elem=N)],
    "add_": [c("Tensor", X, t(3, 1), elem=N)],
    "sub": [c("Tensor", X, t(4), elem=N)], "sub_": [c("Tensor", X, t(4), elem=N)],
    "mul": [c("Tensor", X, t(2, 3, 1), elem=N), c("Scalar", X, 2.0, elem=N)],
    "mul_": [c("Tensor", X, t(4), elem=N)],
    "div": [c("Tensor", X, t(4), elem=N)], "div_": [c("Tensor", X, t(4), elem=N)],
    "rsub": [c("Tensor", X, X, elem=N)],
    "minimum": [c("default", t(2, 1, 4), t(3, 1), elem=N)],
    "maximum": [c("default", t(2, 1, 4), t(3, 1), elem=N)],
    # ---- backward (train mode; cnncost/count/backward.py) ----
    # conv: each gradient asked for costs the forward's MACs; bias: 1 add per dL/dy value.
    # x 2x4x6x6, w 6x2x3x3, groups 2, padding 1: forward 2 x 6 x 6 x 6 x (4/2) x 9 = 7776
    "convolution_backward": [
        c("default", t(2, 6, 6, 6), t(2, 4, 6, 6), t(6, 2, 3, 3), [6], [1, 1], [1, 1],
          [1, 1], False, [0, 0], 2, [True, True, True], macs=2 * 7776, elem=2 * 6 * 36),
        c("default", t(2, 6, 6, 6), t(2, 4, 6, 6), t(6, 2, 3, 3), None, [1, 1], [1, 1],
          [1, 1], False, [0, 0], 2, [True, False, False], macs=7776),
        # transposed 4 -> 6 (groups 2), stride 2: H_out = 4 x 2 - 2 + 3 + 1 = 10; forward
        # per input element 1 x 4 x 5 x 5 x (6/2) x 9 = 2700
        c("default", t(1, 6, 10, 10), t(1, 4, 5, 5), t(4, 3, 3, 3), None, [2, 2], [1, 1],
          [1, 1], True, [1, 1], 2, [True, True, False], macs=2 * 2700)],
    # batch norm in training: 9 per element (x_hat 2, two sums 3, dL/dx 4); frozen
    # statistics: dL/dx 1, dgamma 4 (x_hat 2, multiply, sum), dbeta 1
    "native_batch_norm_backward": [
        c("default", t(2, 3, 4, 4), *BN[:1], *BN[1:2], *BN[3:], t(3), t(3), True, 1e-5,
          [True, True, True], elem=9 * 96),
        c("default", t(2, 3, 4, 4), *BN[:1], *BN[1:2], *BN[3:], t(3), t(3), False, 1e-5,
          [True, True, True], elem=6 * 96)],
    "native_layer_norm_backward": [c("default", X, X, [4], t(2, 3, 1), t(2, 3, 1), t(4),
                                     t(4), [True, True, True], elem=9 * N)],
    "native_group_norm_backward": [c("default", t(2, 4, 3, 3), t(2, 4, 3, 3), t(2, 2),
                                     t(2, 2), t(4), 2, 4, 9, 2, [True, True, True],
                                     elem=9 * 72)],
    # activations' dL/dx, per element: see PER_ELEMENT_BACKWARD's comments
    "threshold_backward": [c("default", X, X, 0.5, elem=N)],
    "hardtanh_backward": [c("default", X, X, -0.5, 0.5, elem=2 * N)],
    "leaky_relu_backward": [c("default", X, X, 0.1, False, elem=2 * N)],
    "elu_backward": [c("default", X, 1.0, 1.0, 1.0, False, X, elem=4 * N)],
    "sigmoid_backward": [c("default", X, X, elem=3 * N)],
    "tanh_backward": [c("default", X, X, elem=3 * N)],
    "silu_backward": [c("default", X, X, elem=9 * N)],
    "hardswish_backward": [c("default", X, X, elem=5 * N)],
    "hardsigmoid_backward": [c("default", X, X, elem=3 * N)],
    "gelu_backward": [c("default", X, X, elem=14 * N)],
    "_softmax_backward_data": [c("default", X, X, 1, torch.float32, elem=4 * N)],
    "_log_softmax_backward_data": [c("default", X, X, 1, torch.float32, elem=4 * N)],
    # pooling: max routes each dL/dy value to its argmax (1 add); average divides it by
    # the window and adds it to its K inputs (K + 1); adaptive average: 1 per input value
    "max_pool2d_with_indices_backward": [
        c("default", t(1, 2, 2, 2), t(1, 2, 4, 4), [2, 2], [2, 2], [0, 0], [1, 1], False,
          t(1, 2, 2, 2, dtype=torch.int64), elem=8)],
    "max_pool3d_with_indices_backward": [
        c("default", t(1, 1, 2, 2, 2), t(1, 1, 4, 4, 4), [2, 2, 2], [2, 2, 2], [0, 0, 0],
          [1, 1, 1], False, t(1, 1, 2, 2, 2, dtype=torch.int64), elem=8)],
    "adaptive_max_pool2d_backward": [c("default", t(1, 3, 2, 2), t(1, 3, 6, 6),
                                       t(1, 3, 2, 2, dtype=torch.int64), elem=12)],
    "adaptive_max_pool3d_backward": [c("default", t(1, 2, 2, 2, 2), t(1, 2, 4, 4, 4),
                                       t(1, 2, 2, 2, 2, dtype=torch.int64), elem=16)],
    "avg_pool2d_backward": [c("default", t(2, 3, 3, 3), t(2, 3, 6, 6), [2, 2], [2, 2], [0, 0],
                              False, True, None, elem=(4 + 1) * 54)],
    "avg_pool3d_backward": [c("default", t(1, 2, 2, 2, 2), t(1, 2, 4, 4, 4), [2, 2, 2],
                              [2, 2, 2], [0, 0, 0], False, True, None, elem=(8 + 1) * 16)],
    "_adaptive_avg_pool2d_backward": [c("default", t(2, 3, 1, 1), t(2, 3, 4, 4), elem=96)],
    "_adaptive_avg_pool3d_backward": [c("default", t(1, 2, 1, 1, 1), t(1, 2, 2, 2, 2),
                                        elem=16)],
    # upsampling: nearest adds each dL/dy value to its source (1); (bi/tri)linear weighs
    # and adds it to its 2^d taps (2 x 2^d); bicubic to 16 taps (32)
    "upsample_nearest1d_backward": [c("default", t(1, 2, 10), [10], [1, 2, 5], elem=20)],
    "upsample_nearest2d_backward": [c("default", t(1, 2, 6, 6), [6, 6], [1, 2, 3, 3],
                                      elem=72)],
    "upsample_nearest3d_backward": [c("default", t(1, 2, 4, 4, 4), [4, 4, 4],
                                      [1, 2, 2, 2, 2], elem=128)],
    "_upsample_nearest_exact2d_backward": [c("default", t(1, 2, 6, 6), [6, 6], [1, 2, 3, 3],
                                             elem=72)],
    "upsample_bilinear2d_backward": [c("default", t(1, 2, 6, 6), [6, 6], [1, 2, 3, 3], False,
                                       elem=2 * 4 * 72)],
    "upsample_linear1d_backward": [c("default", t(1, 2, 10), [10], [1, 2, 5], False,
                                     elem=2 * 2 * 20)],
    "upsample_trilinear3d_backward": [c("default", t(1, 1, 4, 4, 4), [4, 4, 4],
                                        [1, 1, 2, 2, 2], False, elem=2 * 8 * 64)],
    "upsample_bicubic2d_backward": [c("default", t(1, 2, 6, 6), [6, 6], [1, 2, 3, 3], False,
                                      elem=32 * 72)],
}

# Ops that compute nothing: (overload, args, kwargs) with a cost of 0.
ZERO_SAMPLES: dict[str, list[Call]] = {
    "view": [c("default", X, [6, 4])], "_unsafe_view": [c("default", X, [6, 4])],
    "reshape": [c("default", X, [4, -1])], "alias": [c("default", X)],
    "t": [c("default", t(2, 3))], "transpose": [c("int", X, 0, 2)],
    "permute": [c("default", X, [2, 0, 1])], "expand": [c("default", t(3, 1), [3, 4])],
    "squeeze": [c("dim", t(2, 1, 4), 1)], "unsqueeze": [c("default", X, 1)],
    "flatten": [c("using_ints", X, 1, 2)], "unflatten": [c("int", t(2, 12), 1, [3, 4])],
    "slice": [c("Tensor", t(2, 8), 1, 2, 6)], "narrow": [c("default", t(2, 8), 1, 2, 3)],
    "select": [c("int", t(2, 8), 1, 3)], "split": [c("Tensor", t(2, 8), 3, 1)],
    "split_with_sizes": [c("default", t(2, 8), [3, 5], 1)],
    "chunk": [c("default", t(2, 8), 3, 1)], "unbind": [c("int", t(2, 3), 1)],
    "unsafe_split": [c("Tensor", t(2, 8), 3, 1)],
    "unsafe_split_with_sizes": [c("default", t(2, 8), [3, 5], 1)],
    "unsafe_chunk": [c("default", t(2, 8), 3, 1)],
    "cat": [c("default", [t(2, 3), t(2, 5)], 1)], "stack": [c("default", [X, X], 1)],
    "clone": [c("default", X)], "contiguous": [c("default", X)],
    "copy_": [c("default", X, X)], "_to_copy": [c("default", X, dtype=torch.float64)],
    "to": [c("dtype", X, torch.float64)], "detach": [c("default", X)],
    "lift_fresh": [c("default", X)], "lift": [c("default", X)],
    "empty": [c("memory_format", [2, 3], device=DEV)],
    "empty_like": [c("default", X)],
    "empty_strided": [c("default", [2, 3], [3, 1], device=DEV)],
    "zeros": [c("default", [2, 3], device=DEV)], "zeros_like": [c("default", X)],
    "ones": [c("default", [2, 3], device=DEV)], "ones_like": [c("default", X)],
    "full": [c("default", [2, 3], 1.5, device=DEV)], "full_like": [c("default", X, 2.0)],
    "fill_": [c("Scalar", X, 1.0)], "zero_": [c("default", X)],
    "new_empty": [c("default", X, [4, 5])], "new_zeros": [c("default", X, [4, 5])],
    "new_ones": [c("default", X, [4, 5])],
    "randn": [c("default", [2, 3], device=DEV)], "rand": [c("default", [2, 3], device=DEV)],
    "uniform_": [c("default", X)], "normal_": [c("default", X)],
    "dropout": [c("default", X, 0.5, False)],
    "native_dropout": [c("default", X, 0.5, False)],
    "feature_dropout": [c("default", t(2, 3, 4, 4), 0.5, False)],
    "channel_shuffle": [c("default", t(2, 6, 3, 3), 3)],
    "native_channel_shuffle": [c("default", t(2, 6, 3, 3), 3)],
    "pixel_shuffle": [c("default", t(1, 8, 3, 3), 2)],
    "pixel_unshuffle": [c("default", t(1, 2, 6, 6), 2)],
    "upsample_nearest1d": [c("default", t(1, 2, 5), [10])],
    "upsample_nearest2d": [c("default", t(1, 2, 3, 3), [6, 6])],
    "upsample_nearest3d": [c("default", t(1, 2, 2, 2, 2), [4, 4, 4])],
    "_upsample_nearest_exact2d": [c("default", t(1, 2, 3, 3), [6, 6])],
    "constant_pad_nd": [c("default", t(1, 2, 3, 3), [1, 1, 2, 2])],
    "pad": [c("default", t(1, 2, 3, 3), [1, 1], "constant", 0.0)],
    "reflection_pad2d": [c("default", t(1, 2, 4, 4), [1, 1, 1, 1])],
    "replication_pad2d": [c("default", t(1, 2, 4, 4), [1, 1, 1, 1])],
    "as_strided": [c("default", t(2, 3), [3, 2], [1, 3])],
    "as_strided_": [c("default", t(2, 3), [3, 2], [1, 3])],
    "_reshape_alias": [c("default", t(2, 3), [3, 2], [2, 1])],
    "expand_as": [c("default", t(3, 1), t(3, 4))], "view_as": [c("default", t(2, 3), t(3, 2))],
    "sym_size": [c("int", t(2, 3), 1)],
    # moving data by index (ONNX's Gather, Tile, Range; nn.Embedding)
    "index_select": [c("default", t(4, 3), 0, t(2, dtype=torch.int64))],
    "gather": [c("default", t(4, 3), 1, t(4, 2, dtype=torch.int64))],
    "embedding": [c("default", t(10, 3), t(2, 4, dtype=torch.int64))],
    "repeat": [c("default", t(2, 3), [2, 2])], "arange": [c("default", 5, device=DEV)],
    "index": [c("Tensor", t(4, 3), [t(2, dtype=torch.int64)])],
    "_unsafe_index": [c("Tensor", t(4, 3), [t(2, dtype=torch.int64)])],
    # F.unfold's patches as columns: 2x2 windows of a 1x2x3x3 input, (1, 2 x 4, 4)
    "im2col": [c("default", t(1, 2, 3, 3), [2, 2], [1, 1], [0, 0], [1, 1])],
    "complex": [c("default", t(2, 3), t(2, 3))],
    "roll": [c("default", t(2, 3), [1])], "flip": [c("default", t(2, 3), [0])],
    "tril": [c("default", t(3, 3))], "triu": [c("default", t(3, 3), 1)],
    # a training step's: gradients of a slice or select (zeros, the slice copied in),
    # dropout's random mask
    "new_empty_strided": [c("default", X, [4, 5], [5, 1])],
    "slice_backward": [c("default", t(2, 3), [2, 8], 1, 2, 5, 1)],
    "select_backward": [c("default", t(2), [2, 8], 1, 3)],
    "bernoulli": [c("default", X), c("p", X, 0.5)], "bernoulli_": [c("float", X, 0.5)],
}
# Ops that read a tensor's value: there is none on meta, where PyTorch raises.
VALUE_READS: dict[str, list[Call]] = {
    "item": [c("default", t())], "_local_scalar_dense": [c("default", t())],
}


def _cases(samples: dict[str, list[Call]]) -> list[Any]:
    """Each op's samples; an oracle (meta against cpu), so the fast tier runs each op's first
    sample and the slow tier its others."""
    return [pytest.param(name, call, id=f"{name}-{i}", marks=() if i == 0 else pytest.mark.slow)
            for name, calls in sorted(samples.items()) for i, call in enumerate(calls)]


def _made(value: Any, device: str) -> Any:
    if isinstance(value, T):
        return value.make(device)
    if isinstance(value, list):
        return [_made(v, device) for v in value]
    return torch.device(device) if value == DEV else value


def _run(name: str, call: Call, device: str) -> tuple[Any, Acc]:
    """The op's result and what the counter charged for it (ops in a dispatch mode)."""
    func = getattr(getattr(torch.ops.aten, name), call.overload)
    args = _made(list(call.args), device)
    kwargs = {k: _made(v, device) for k, v in call.kwargs}
    mode = CostCounterMode()
    acc = Acc(name, name)
    with torch.no_grad(), mode:
        mode.acc = acc
        out = func(*args, **kwargs)
    return out, acc


def _outputs(out: Any) -> list[Any]:
    """What is compared: (shape, dtype) of every tensor, the value of anything else."""
    return [(tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else v
            for v in tree_flatten(out)[0]]


def _shapes(value: Any) -> Any:
    return tree_map(lambda v: v.shape if isinstance(v, T) else v, value)


def test_every_registered_op_has_samples() -> None:
    named = {f"aten::{n}" for n in FORMULA_SAMPLES}
    missing = sorted(set(FORMULAS) - named)
    assert not missing, f"add rows to FORMULA_SAMPLES in tests/test_op_samples.py: {missing}"
    assert named <= set(FORMULAS), "FORMULA_SAMPLES names ops without a formula"
    zero = {f"aten::{n}" for n in (*ZERO_SAMPLES, *VALUE_READS)}
    missing = sorted(ZERO_COST_OPS - zero)
    assert not missing, f"add rows to ZERO_SAMPLES in tests/test_op_samples.py: {missing}"
    assert zero <= ZERO_COST_OPS, "ZERO_SAMPLES names ops that are not zero-cost"


@pytest.mark.parametrize(("name", "call"), _cases(FORMULA_SAMPLES))
def test_formula_op_on_meta_and_cpu(name: str, call: Call) -> None:
    meta, meta_acc = _run(name, call, "meta")
    cpu, cpu_acc = _run(name, call, "cpu")
    assert _outputs(meta) == _outputs(cpu)
    first = tree_flatten(cpu)[0][0]
    rule = SHAPE_RULES[f"aten::{name}"]
    assert rule(*_shapes(call.args), **dict(_shapes(call.kwargs))) == tuple(first.shape)
    for acc in (meta_acc, cpu_acc):
        assert (acc.macs, acc.elem_flops, dict(acc.uncounted)) == (call.macs, call.elem, {})


@pytest.mark.parametrize(("name", "call"), _cases(ZERO_SAMPLES))
def test_zero_cost_op_on_meta_and_cpu(name: str, call: Call) -> None:
    meta, meta_acc = _run(name, call, "meta")
    cpu, cpu_acc = _run(name, call, "cpu")
    assert _outputs(meta) == _outputs(cpu)
    for acc in (meta_acc, cpu_acc):
        assert (acc.macs, acc.elem_flops, dict(acc.uncounted)) == (0, 0, {})


@pytest.mark.parametrize(("name", "call"), _cases(VALUE_READS))
def test_value_reads_are_free_on_cpu_and_impossible_on_meta(name: str, call: Call) -> None:
    out, acc = _run(name, call, "cpu")
    assert isinstance(out, float) and (acc.macs, acc.elem_flops, dict(acc.uncounted)) == (
        0, 0, {})
    with pytest.raises(RuntimeError):
        _run(name, call, "meta")

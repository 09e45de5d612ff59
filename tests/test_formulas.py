"""cnncost.count.formulas: every formula against closed-form arithmetic written out in the test.

Two ways in: the pure formulas called with shapes (as the counter feeds them), and real
ATen calls seen by the counter on tiny modules (so the argument layout ATen really uses
is exercised). ``elem`` below = FLOPs under policy "all" minus 2 x MACs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from cnncost.count.drivers import count_module
from cnncost.count.formulas import (
    FORMULAS,
    PER_ELEMENT,
    SAME,
    ZERO_COST_OPS,
    OpCost,
    conv_macs,
    policy_flops,
    register_formula,
)


class Fn(nn.Module):
    """Wraps a function of the input (and of optional registered submodules) as a module."""

    def __init__(self, fn: Callable[..., torch.Tensor], **mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        for k, v in mods.items():
            self.add_module(k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self, x)


def cost(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int, dict[str, int]]:
    """(MACs, elementwise FLOPs, uncounted ops) of one batch of ``shape`` (N included)."""
    table = count_module(module, shape[1:], batch=shape[0], policy="all")
    t = table.totals
    return t.macs, t.flops - 2 * t.macs, dict(table.uncounted)


# --------------------------------------------------------------------------- convolution

# (id, module, input shape N..., expected MACs written as the closed form)
CONV_CASES = [
    ("3x3-pad1", nn.Conv2d(4, 8, 3, padding=1, bias=False), (2, 4, 10, 10),
     2 * 8 * 10 * 10 * 4 * 3 * 3),
    # H_out = floor((10 + 2 - 3) / 2) + 1 = 5
    ("3x3-stride2", nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False), (2, 4, 10, 10),
     2 * 8 * 5 * 5 * 4 * 3 * 3),
    # H_out = 10 - 3 + 1 = 8
    ("3x3-valid", nn.Conv2d(4, 8, 3, bias=False), (2, 4, 10, 10), 2 * 8 * 8 * 8 * 4 * 9),
    # H_out = 10 + 2*2 - 2*(3-1) - 1 + 1 = 10: dilation changes the field, not the MACs
    ("3x3-dilation2", nn.Conv2d(4, 8, 3, padding=2, dilation=2, bias=False), (2, 4, 10, 10),
     2 * 8 * 10 * 10 * 4 * 9),
    # H_out = (12 + 2 - 5) // 3 + 1 = 4, W_out = (9 + 0 - 3) // 1 + 1 = 7
    ("5x3-asymmetric", nn.Conv2d(3, 6, (5, 3), stride=(3, 1), padding=(1, 0), bias=False),
     (1, 3, 12, 9), 1 * 6 * 4 * 7 * 3 * 5 * 3),
    ("depthwise", nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), (2, 4, 10, 10),
     2 * 4 * 10 * 10 * 1 * 9),
    # every output channel sees C_in / groups = 2 input channels
    ("groups2", nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False), (2, 4, 10, 10),
     2 * 8 * 10 * 10 * 2 * 9),
    ("depth-multiplier", nn.Conv2d(4, 12, 3, padding=1, groups=4, bias=False), (1, 4, 6, 6),
     1 * 12 * 6 * 6 * 1 * 9),
    ("1x1", nn.Conv2d(16, 32, 1, bias=False), (3, 16, 7, 7), 3 * 32 * 7 * 7 * 16),
    # L_out = 20 - 5 + 1 = 16
    ("conv1d", nn.Conv1d(4, 6, 5, bias=False), (2, 4, 20), 2 * 6 * 16 * 4 * 5),
    # D = H = W = 6 with padding 1
    ("conv3d", nn.Conv3d(2, 3, 3, padding=1, bias=False), (1, 2, 6, 6, 6),
     1 * 3 * 6 * 6 * 6 * 2 * 27),
    # transposed: per *input* element, N x C_in x H_in x W_in x (C_out / groups) x K x K
    ("transposed", nn.ConvTranspose2d(4, 6, 3, stride=2, bias=False), (2, 4, 5, 5),
     2 * 4 * 5 * 5 * 6 * 9),
    ("transposed-groups2", nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, bias=False),
     (1, 4, 5, 5), 1 * 4 * 5 * 5 * 3 * 9),
    ("transposed1d", nn.ConvTranspose1d(3, 5, 4, stride=2, bias=False), (2, 3, 7),
     2 * 3 * 7 * 5 * 4),
]


@pytest.mark.parametrize(("module", "shape", "macs"), [c[1:] for c in CONV_CASES],
                         ids=[c[0] for c in CONV_CASES])
def test_conv_macs(module: nn.Module, shape: tuple[int, ...], macs: int) -> None:
    got_macs, elem, uncounted = cost(module, shape)
    assert got_macs == macs
    assert elem == 0  # no bias
    assert uncounted == {}


def test_transposed_conv_output_shape() -> None:
    # H_out = (H_in - 1) * stride + K = (5 - 1) * 2 + 3 = 11
    table = count_module(nn.ConvTranspose2d(4, 6, 3, stride=2), (4, 5, 5))
    assert table.layers[0].output_shape == (1, 6, 11, 11)


def test_conv_bias_is_one_flop_per_output_element() -> None:
    # 2 x 8 x 10 x 10 outputs, one bias add each; the MACs do not change
    macs, elem, _ = cost(nn.Conv2d(4, 8, 3, padding=1), (2, 4, 10, 10))
    assert macs == 2 * 8 * 10 * 10 * 4 * 9
    assert elem == 2 * 8 * 10 * 10


def test_conv_formula_text_matches_the_slide() -> None:
    # N. Khan, CS-568, "Cost of Convolution Layer": 5x5 conv 256 -> 64 at 128x128, "same"
    c = conv_macs((1, 256, 128, 128), (64, 256, 5, 5), None, [1, 1], [2, 2], [1, 1], False,
                  [0, 0], 1, out_shape=(1, 64, 128, 128))
    assert c.macs == 128 * 128 * 64 * 5 * 5 * 256 == 6_710_886_400
    assert c.formula == "(128x128x64) x (5x5x256) = 6,710,886,400"
    assert c.elem_flops == 0


def test_conv_formula_text_with_batch() -> None:
    # A. Ng, "The problem of computational cost": 28x28x192 -> 5x5 conv, 32 filters = 120,422,400
    c = conv_macs((2, 192, 28, 28), (32, 192, 5, 5), (32,), [1, 1], [2, 2], [1, 1], False,
                  [0, 0], 1, out_shape=(2, 32, 28, 28))
    assert c.macs == 2 * 28 * 28 * 32 * 5 * 5 * 192 == 2 * 120_422_400
    assert c.formula == "2 x (28x28x32) x (5x5x192) = 240,844,800"
    assert c.elem_flops == 2 * 28 * 28 * 32


def test_lecture_bottleneck_1x1_then_5x5() -> None:
    # N. Khan, "1x1 convolution"; A. Ng, "Using 1x1 convolution": a 1x1 "bottleneck" before 5x5
    m = nn.Sequential(nn.Conv2d(256, 32, 1, bias=False), nn.Conv2d(32, 64, 5, padding=2,
                                                                   bias=False))
    assert cost(m, (1, 256, 128, 128))[0] == 128 * 128 * 32 * 256 + 128 * 128 * 64 * 25 * 32
    assert 128 * 128 * 32 * 256 + 128 * 128 * 64 * 25 * 32 == 973_078_528
    m = nn.Sequential(nn.Conv2d(192, 16, 1, bias=False), nn.Conv2d(16, 32, 5, padding=2,
                                                                   bias=False))
    assert cost(m, (1, 192, 28, 28))[0] == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 25 * 16
    assert 28 * 28 * 16 * 192 + 28 * 28 * 32 * 25 * 16 == 12_443_648


def test_lecture_depthwise_separable() -> None:
    # F. Galassi; A. Ng, "Cost Summary": 6x6x3 input, valid 3x3 -> 4x4 output
    standard = nn.Conv2d(3, 5, 3, bias=False)
    separable = nn.Sequential(nn.Conv2d(3, 3, 3, groups=3, bias=False),
                              nn.Conv2d(3, 5, 1, bias=False))
    assert cost(standard, (1, 3, 6, 6))[0] == 4 * 4 * 5 * 3 * 3 * 3 == 2160
    assert cost(separable, (1, 3, 6, 6))[0] == 4 * 4 * 3 * 9 + 4 * 4 * 5 * 3 == 672


# --------------------------------------------------------------------------- linear & matmul


def test_linear_with_bias_is_addmm() -> None:
    # (3 x 5) @ (5 x 7): 3 x 7 x 5 MACs, plus 3 x 7 bias adds
    macs, elem, _ = cost(nn.Linear(5, 7), (3, 5))
    assert (macs, elem) == (3 * 7 * 5, 3 * 7)


def test_linear_without_bias_is_mm() -> None:
    macs, elem, _ = cost(nn.Linear(5, 7, bias=False), (3, 5))
    assert (macs, elem) == (3 * 7 * 5, 0)


def test_linear_on_3d_input_flattens_the_leading_dims() -> None:
    # (2, 4, 5) -> M = 2 x 4 = 8 rows
    macs, elem, _ = cost(nn.Linear(5, 7), (2, 4, 5))
    assert (macs, elem) == (8 * 7 * 5, 8 * 7)


def test_bmm() -> None:
    # (2, 3, 4) @ (2, 4, 5): B x M x N x K = 2 x 3 x 5 x 4
    m = Fn(lambda self, x: torch.bmm(x, x.new_ones(2, 4, 5)))
    assert cost(m, (2, 3, 4))[:2] == (2 * 3 * 5 * 4, 0)


def test_matmul_3d_lowers_to_bmm() -> None:
    m = Fn(lambda self, x: x @ x.transpose(1, 2))
    # (2, 3, 4) @ (2, 4, 3) = 2 x 3 x 3 x 4
    assert cost(m, (2, 3, 4))[:2] == (2 * 3 * 3 * 4, 0)


def test_baddbmm_counts_the_added_tensor() -> None:
    m = Fn(lambda self, x: torch.baddbmm(x.new_zeros(2, 3, 5), x, x.new_ones(2, 4, 5)))
    assert cost(m, (2, 3, 4))[:2] == (2 * 3 * 5 * 4, 2 * 3 * 5)


# --------------------------------------------------------------------------- pooling

POOL_CASES = [
    # 8x8 -> floor((8 + 2 - 3) / 2) + 1 = 4; 3x3 window: 9 - 1 = 8 comparisons per output
    ("max3x3s2", nn.MaxPool2d(3, 2, 1), (1, 2, 8, 8), 8 * 2 * 4 * 4),
    ("max2x2", nn.MaxPool2d(2), (2, 3, 8, 8), 3 * 2 * 3 * 4 * 4),
    ("max1d", nn.MaxPool1d(3), (1, 4, 12), 2 * 4 * 4),
    ("max3d", nn.MaxPool3d(2), (1, 2, 4, 4, 4), 7 * 2 * 2 * 2 * 2),
    # average: K per output (K - 1 adds and a divide)
    ("avg2x2", nn.AvgPool2d(2), (2, 3, 8, 8), 4 * 2 * 3 * 4 * 4),
    ("avg3x3s1", nn.AvgPool2d(3, 1, 1), (1, 2, 5, 5), 9 * 2 * 5 * 5),
    ("avg1d", nn.AvgPool1d(4), (1, 2, 8), 4 * 2 * 2),
    # global average pooling (lowers to mean): one FLOP per input element
    ("adaptive-avg-1", nn.AdaptiveAvgPool2d(1), (2, 3, 7, 7), 2 * 3 * 7 * 7),
    ("adaptive-avg-2", nn.AdaptiveAvgPool2d(2), (1, 3, 6, 6), 3 * 6 * 6),
    ("adaptive-max-2", nn.AdaptiveMaxPool2d(2), (1, 3, 6, 6), 3 * 6 * 6),
]


@pytest.mark.parametrize(("module", "shape", "elem"), [c[1:] for c in POOL_CASES],
                         ids=[c[0] for c in POOL_CASES])
def test_pooling_flops(module: nn.Module, shape: tuple[int, ...], elem: int) -> None:
    assert cost(module, shape) == (0, elem, {})


def test_pool_kernel_given_once_stands_for_every_dimension() -> None:
    from cnncost.count.formulas import avg_pool_flops, max_pool_flops

    out = (1, 2, 4, 4)
    assert max_pool_flops((1, 2, 8, 8), [2], out_shape=(out, out)).elem_flops == 3 * 32
    assert avg_pool_flops((1, 2, 8, 8), 2, out_shape=out).elem_flops == 4 * 32


# --------------------------------------------------------------------------- norms

NORM_CASES = [
    # inference batch norm folds to scale + shift: 2 per element
    ("batch_norm", nn.BatchNorm2d(3), (2, 3, 4, 4), 2 * 2 * 3 * 4 * 4),
    ("batch_norm1d", nn.BatchNorm1d(5), (4, 5), 2 * 4 * 5),
    # mean, variance, normalise, scale, shift: 5 per element
    ("layer_norm", nn.LayerNorm([3, 4, 4]), (2, 3, 4, 4), 5 * 2 * 3 * 4 * 4),
    ("group_norm", nn.GroupNorm(2, 4), (2, 4, 3, 3), 5 * 2 * 4 * 3 * 3),
]


@pytest.mark.parametrize(("module", "shape", "elem"), [c[1:] for c in NORM_CASES],
                         ids=[c[0] for c in NORM_CASES])
def test_norm_flops(module: nn.Module, shape: tuple[int, ...], elem: int) -> None:
    assert cost(module, shape) == (0, elem, {})


# --------------------------------------------------------------------------- elementwise

N_ELEM = 2 * 3 * 4 * 5
ELEM_CASES = [
    ("relu", nn.ReLU(), 1),
    ("relu-inplace", nn.ReLU(inplace=True), 1),
    ("relu6", nn.ReLU6(), 2),  # hardtanh(0, 6): two comparisons
    ("relu6-inplace", nn.ReLU6(inplace=True), 2),
    ("leaky_relu", nn.LeakyReLU(), 2),
    ("sigmoid", nn.Sigmoid(), 4),
    ("tanh", nn.Tanh(), 5),
    ("silu", nn.SiLU(), 5),
    ("hardswish", nn.Hardswish(), 5),
    ("hardsigmoid", nn.Hardsigmoid(), 4),
    ("gelu", nn.GELU(), 8),
    ("softmax", nn.Softmax(dim=1), 5),
    # scaled_dot_product_attention's softmax (0 on fully masked rows): like softmax
    ("safe-softmax", Fn(lambda self, x: torch.ops.aten._safe_softmax(x, 1)), 5),
    ("add", Fn(lambda self, x: x + x), 1),
    ("mul", Fn(lambda self, x: x * x), 1),
    ("add-inplace", Fn(lambda self, x: x.clone().add_(1.0)), 1),
    # x2 upsampling makes 4 outputs per input element: 4 taps -> 7, 16 taps -> 31 per output
    ("bilinear-up", nn.Upsample(scale_factor=2, mode="bilinear"), 4 * 7),
    ("bicubic-up", nn.Upsample(scale_factor=2, mode="bicubic"), 4 * 31),
    ("nearest-up", nn.Upsample(scale_factor=2, mode="nearest"), 0),
    ("flatten", nn.Flatten(), 0),
    ("dropout", nn.Dropout(), 0),
    ("cat", Fn(lambda self, x: torch.cat([x, x], 1)), 0),
    # LSTM cells split their gates with unsafe_split/unsafe_chunk: views, no data moved
    ("unsafe-split", Fn(lambda self, x: torch.cat(x.unsafe_split(1, dim=1), 1)), 0),
    ("unsafe-chunk", Fn(lambda self, x: torch.cat(x.unsafe_chunk(3, dim=1), 1)), 0),
    ("channel-shuffle", nn.ChannelShuffle(3), 0),
]


@pytest.mark.parametrize(("module", "per"), [c[1:] for c in ELEM_CASES],
                         ids=[c[0] for c in ELEM_CASES])
def test_elementwise_flops(module: nn.Module, per: int) -> None:
    # ``per`` = FLOPs per input element of the (2, 3, 4, 5) batch
    assert cost(module, (2, 3, 4, 5)) == (0, per * N_ELEM, {})


def test_per_element_table_is_registered() -> None:
    for op, per in PER_ELEMENT.items():
        formula = FORMULAS[f"aten::{op}"]
        assert formula(out_shape=(2, 3)) == OpCost(0, per * 6)


# --------------------------------------------------------------------------- the registry


def test_every_registered_name_is_a_real_aten_op() -> None:
    for name in sorted(set(FORMULAS) | ZERO_COST_OPS):
        namespace, op = name.split("::")
        assert namespace == "aten"
        assert hasattr(torch.ops.aten, op), name


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        register_formula("convolution", shape=SAME)(lambda *a, **k: OpCost())
    with pytest.raises(RuntimeError, match="registered twice"):
        register_formula("view", shape=SAME)(lambda *a, **k: OpCost())


def test_policy_flops() -> None:
    # conv+linear: the papers' 2 x MACs; all: plus the per-element FLOPs
    assert policy_flops(10, 7, "conv+linear") == 20
    assert policy_flops(10, 7, "all") == 27

"""Train mode (cnncost.count.train): a training step's backward, update and memory.

Oracles: PyTorch's FlopCounterMode, which counts the backward pass (train-mode MACs =
its forward + backward count / 2 under ``conv+linear``, the one difference named in the
conventions and checked here: a grouped conv's weight gradient, which FlopCounterMode
counts as if the conv had one group); the textbook rule that a conv's (or linear layer's)
backward costs twice its forward, one forward's worth per gradient, except where a
gradient is not needed (derived by hand below); and the same count on real CPU tensors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tiers import tiered
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.count.backward import PER_ELEMENT_BACKWARD
from cnncost.count.conventions import OPTIMIZERS, conventions
from cnncost.count.drivers import count_module, count_spec
from cnncost.count.formulas import FORMULAS, OpCost
from cnncost.errors import UsageError
from cnncost.measure.bench import BenchOptions
from cnncost.measure.timing import Budget
from cnncost.sources import bundled_specs
from cnncost.spec import load_spec
from cnncost.table import CostTable

ROOT = Path(__file__).resolve().parent.parent


def step(module: nn.Module, shape: tuple[int, ...], policy: str = "conv+linear",
         **kw: Any) -> CostTable:
    """A training step of ``module`` on a batch of ``shape`` (N first)."""
    return count_module(module, shape[1:], batch=shape[0], policy=policy, mode="train", **kw)


def flop_counter_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """FlopCounterMode's forward + backward count of a real CPU step, halved (2 FLOPs/MAC)."""
    module.train()
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as fc:
        out = module(x)
        out = out if isinstance(out, torch.Tensor) else out[0]
        out.sum().backward()
    total = fc.get_total_flops()
    assert total % 2 == 0
    return total // 2


def grouped_weight_overcount(module: nn.Module, shape: tuple[int, ...]) -> int:
    """FlopCounterMode's extra MACs: a conv with G groups gets its weight gradient counted
    at G x its forward MACs (it multiplies C_in by C_out without dividing by G), so
    (G - 1) x forward MACs more, for each grouped conv whose weights are trained.

    Forward MACs by hand: N x C_out x H_out x W_out x (C_in/G) x K (per *input* element
    for a transposed conv: N x C_in x H_in x W_in x (C_out/G) x K)."""
    extra = []

    def hook(m: nn.Module, args: Any, out: torch.Tensor) -> None:
        assert isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        if m.groups == 1 or not m.weight.requires_grad:
            return
        (x,) = args
        k = m.kernel_size[0] * m.kernel_size[1]
        if m.transposed:
            fwd = x.numel() * (m.out_channels // m.groups) * k
        else:
            fwd = out.numel() * (m.in_channels // m.groups) * k
        extra.append((m.groups - 1) * fwd)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    with torch.no_grad():
        module.eval()(torch.randn(shape))
    for h in handles:
        h.remove()
    return sum(extra)


def frozen_stem() -> nn.Module:
    """Conv-BN-ReLU x 3 with the first two blocks frozen (a fine-tuning setup)."""
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    m = nn.Sequential(*block(3, 8), *block(8, 8), *block(8, 4), nn.Flatten(),
                      nn.Linear(4 * 6 * 6, 5))
    for p in [*m[0].parameters(), *m[1].parameters(), *m[3].parameters(), *m[4].parameters()]:
        p.requires_grad_(False)
    return m


SMALL_CASES = [
    ("plain", lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)),
     (2, 3, 10, 10)),
    ("grouped", lambda: nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=4),
                                      nn.Conv2d(8, 8, 3, groups=8)), (2, 4, 10, 10)),
    ("transposed", lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                               output_padding=1)), (2, 3, 10, 10)),
    ("grouped-transposed", lambda: nn.Sequential(
        nn.Conv2d(4, 4, 1), nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)), (1, 4, 7, 7)),
    ("frozen", frozen_stem, (2, 3, 6, 6)),
    ("linear", lambda: nn.Sequential(nn.Flatten(), nn.Linear(48, 10), nn.ReLU(),
                                     nn.Linear(10, 3)), (4, 3, 4, 4)),
]


# an oracle (FlopCounterMode): the fast tier keeps one case, and the test above
@pytest.mark.parametrize(("make", "shape"), tiered([c[1:] for c in SMALL_CASES], {"linear"},
                                                   ids=[c[0] for c in SMALL_CASES]))
def test_train_macs_equal_flop_counter_mode(make: Any, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = make()
    t = step(module, shape).totals
    assert t.train is not None
    ours = t.macs + t.train.backward_macs
    assert flop_counter_macs(module, shape) == ours + grouped_weight_overcount(module, shape)


@pytest.mark.slow  # oracle: FlopCounterMode on whole networks
@pytest.mark.parametrize(("name", "frozen"), [("resnet18", ()), ("mobilenet_v2", ()),
                                             ("resnet18", ("conv1", "bn1", "layer1")),
                                             ("mobilenet_v2", ("features",))])
def test_torchvision_train_macs_equal_flop_counter_mode(tv_models: Any, name: str,
                                                        frozen: tuple[str, ...]) -> None:
    # frozen: a fine-tuning setup, the stem (or MobileNetV2's whole feature extractor)
    # frozen; autograd then runs neither their weight gradients nor any input gradient
    # before the first trained layer, and FlopCounterMode counts what autograd runs
    torch.manual_seed(0)
    module = getattr(tv_models, name)()
    for part in frozen:
        getattr(module, part).requires_grad_(False)
    shape = (2, 3, 64, 64)
    table = step(module, shape)
    t = table.totals
    assert t.train is not None and not table.uncounted
    assert (t.frozen_params > 0) == bool(frozen)
    ours = t.macs + t.train.backward_macs
    extra = grouped_weight_overcount(module, shape)
    # MobileNetV2's depthwise convs, unless they are all frozen
    assert (name == "mobilenet_v2" and not frozen) == (extra > 0)
    assert flop_counter_macs(module, shape) == ours + extra


def test_flop_counter_difference_is_named_in_the_conventions() -> None:
    text = " ".join(conventions("conv+linear", "float32", "train"))
    assert "FlopCounterMode" in text and "groups" in text
    assert "FlopCounterMode" not in " ".join(conventions("conv+linear", "float32"))


# --------------------------------------------------------------------------- textbook


def test_conv_backward_is_twice_its_forward_except_the_first_input_gradient() -> None:
    # conv1: 3 -> 8, 3x3 on 10x10: H_out = 8; conv2: 8 -> 4, 3x3 on 8x8: H_out = 6; N = 2
    fwd1 = 2 * 8 * 8 * 8 * 3 * 3 * 3  # N x C_out x H_out x W_out x C_in x K_h x K_w
    fwd2 = 2 * 4 * 6 * 6 * 8 * 3 * 3
    t = step(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)),
             (2, 3, 10, 10))
    conv1, conv2 = t.row("0"), t.row("2")
    assert conv1.macs == fwd1 and conv2.macs == fwd2
    assert conv1.train is not None and conv2.train is not None
    # dL/dW = dL/dy correlated with x: each weight meets N x H_out x W_out gradients;
    # dL/dx = dL/dy convolved back through the weights: every forward MAC once more.
    assert (conv2.train.grad_input_macs, conv2.train.grad_weight_macs) == (fwd2, fwd2)
    assert conv2.train.backward_macs == 2 * conv2.macs
    # the input needs no gradient: conv1 computes only dL/dW
    assert (conv1.train.grad_input_macs, conv1.train.grad_weight_macs) == (0, fwd1)
    assert t.totals.train is not None
    assert t.totals.train.backward_macs == 2 * (fwd1 + fwd2) - fwd1


def test_linear_backward_is_two_matrix_products() -> None:
    # x (M x K) @ W^T (K x N): dL/dx = dL/dy (M x N) @ W (N x K), dL/dW = dL/dy^T @ x:
    # M x N x K MACs each; the bias gradient sums dL/dy over the batch (M x N adds)
    m, k, n = 4, 16, 10
    t = step(nn.Sequential(nn.Linear(48, k), nn.ReLU(), nn.Linear(k, n)), (m, 48),
             policy="all")
    row = t.row("2")
    assert row.train is not None
    assert (row.macs, row.train.grad_input_macs, row.train.grad_weight_macs) == (
        m * n * k, m * n * k, m * n * k)
    assert row.train.backward_flops == 2 * (2 * m * n * k) + m * n
    # the ReLU between gets dL/dx (1 compare-select per element), no MACs
    relu = t.row("1")
    assert relu.train is not None and relu.train.backward_flops == m * k
    # the first linear layer: only dL/dW (M x 48 x K) and its bias gradient
    first = t.row("0")
    assert first.train is not None
    assert (first.train.grad_input_macs, first.train.grad_weight_macs) == (0, m * 48 * k)


def test_frozen_layers_need_no_weight_gradient_and_no_input_gradient_before_them() -> None:
    t = step(frozen_stem(), (2, 3, 6, 6))
    conv = {name: t.row(name) for name in ("0", "3", "6", "10")}
    # 6x6 maps (padding 1), N = 2: forward MACs N x C_out x 6 x 6 x C_in x 9
    fwd = {"0": 2 * 8 * 36 * 3 * 9, "3": 2 * 8 * 36 * 8 * 9, "6": 2 * 4 * 36 * 8 * 9,
           "10": 2 * 5 * 4 * 36}
    grads = {n: (r.train.grad_input_macs, r.train.grad_weight_macs) for n, r in conv.items()
             if r.train is not None}
    assert {n: r.macs for n, r in conv.items()} == fwd
    # blocks 0 and 1 are frozen and nothing before them trains: no backward at all;
    # block 2 trains its weights, but its input depends on no trained parameter
    assert grads == {"0": (0, 0), "3": (0, 0), "6": (0, fwd["6"]),
                     "10": (fwd["10"], fwd["10"])}
    tr = t.totals.train
    assert tr is not None
    # trainable: conv 8->4 (8x4x9 + 4), its BN (2 x 4), linear (144 x 5 + 5)
    assert tr.trainable_params == 8 * 4 * 9 + 4 + 8 + 144 * 5 + 5
    assert tr.grad_bytes == 4 * tr.trainable_params


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize(("op", "per"), sorted(PER_ELEMENT_BACKWARD.items()))
def test_per_element_backward_table_is_registered(op: str, per: int) -> None:
    assert FORMULAS[f"aten::{op}"](out_shape=(2, 3)) == OpCost(0, per * 6)


# (id, module, backward FLOPs per element of the (2, 4, 6, 6) input under policy all,
#  derived by hand): the input gets no gradient (nothing before needs one), so a 1x1 conv
# with frozen... weights first makes every op's dL/dx needed: see _after_conv.
BACKWARD_CASES = [
    ("relu", nn.ReLU(), 1),  # compare and select
    ("relu-inplace", nn.ReLU(inplace=True), 1),
    ("relu6", nn.ReLU6(), 2),  # two compares
    ("leaky-relu", nn.LeakyReLU(), 2),  # compare, multiply
    ("sigmoid", nn.Sigmoid(), 3),  # g x y x (1 - y)
    ("tanh", nn.Tanh(), 3),  # g x (1 - y^2)
    ("silu", nn.SiLU(), 9),  # sigmoid (4) + g x s x (1 + x(1 - s)) (5)
    ("hardswish", nn.Hardswish(), 5),  # two compares, x/3 + 1/2 (2), x g
    ("hardsigmoid", nn.Hardsigmoid(), 3),  # two compares, x 1/6
    ("gelu", nn.GELU(), 14),  # Phi (7) + x phi (5) + add + x g
    ("softmax", nn.Softmax(dim=1), 4),  # y x (g - sum(g y)): multiply, sum, subtract, multiply
    ("batch-norm", nn.BatchNorm2d(4), 9),  # x_hat (2), two sums (3), dL/dx (4)
    ("layer-norm", nn.LayerNorm([6, 6]), 9),
    ("group-norm", nn.GroupNorm(2, 4), 9),
]


def _after_conv(module: nn.Module) -> nn.Module:
    """A 1x1 conv first, so the module's input needs a gradient (the conv's weights do)."""
    return nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), module)


@pytest.mark.parametrize(("module", "per"), [c[1:] for c in BACKWARD_CASES],
                         ids=[c[0] for c in BACKWARD_CASES])
def test_backward_flops_of_elementwise_and_norm_layers(module: nn.Module, per: int) -> None:
    n = 2 * 4 * 6 * 6
    t = step(_after_conv(module), (2, 4, 6, 6), policy="all")
    row = t.row("1")
    assert not t.uncounted
    assert row.train is not None and row.train.backward_flops == per * n


# (id, module, backward FLOPs by hand) on a (2, 4, 8, 8) input
POOL_CASES = [
    # one add per value of dL/dy (routed to the window's argmax): 2 x 4 x 4 x 4
    ("max-pool", nn.MaxPool2d(2), 2 * 4 * 4 * 4),
    # divide by the window and add to its 2 x 2 inputs: (4 + 1) per value of dL/dy
    ("avg-pool", nn.AvgPool2d(2), 5 * 2 * 4 * 4 * 4),
    # one FLOP per input value (its share of dL/dy)
    ("adaptive-avg-pool", nn.AdaptiveAvgPool2d(1), 2 * 4 * 8 * 8),
    ("adaptive-max-pool", nn.AdaptiveMaxPool2d(2), 2 * 4 * 2 * 2),
    # nearest x2: each of the 2 x 4 x 16 x 16 gradient values is added to its source
    ("upsample-nearest", nn.Upsample(scale_factor=2), 2 * 4 * 16 * 16),
    # bilinear x2: 4 taps, a multiply and an add each, per gradient value
    ("upsample-bilinear", nn.Upsample(scale_factor=2, mode="bilinear"), 8 * 2 * 4 * 16 * 16),
]


@pytest.mark.parametrize(("module", "flops"), [c[1:] for c in POOL_CASES],
                         ids=[c[0] for c in POOL_CASES])
def test_backward_flops_of_pooling_and_resizing(module: nn.Module, flops: int) -> None:
    t = step(_after_conv(module), (2, 4, 8, 8), policy="all")
    row = t.row("1")
    assert not t.uncounted
    assert row.train is not None and row.train.backward_flops == flops


def test_dropout_runs_in_training_behaviour() -> None:
    # training: a random mask scaled by 1/(1 - p) (one divide per element) multiplies the
    # input (one more); its backward multiplies dL/dy by the same mask (one per element)
    n = 2 * 4 * 6 * 6
    t = step(_after_conv(nn.Dropout(0.5)), (2, 4, 6, 6), policy="all")
    row = t.row("1")
    assert not t.uncounted
    assert row.flops == 2 * n
    assert row.train is not None and row.train.backward_flops == n
    inference = count_module(_after_conv(nn.Dropout(0.5)), (4, 6, 6), batch=2)
    assert inference.row("1").flops == 0


def test_batch_norm_forward_counts_batch_statistics_in_training() -> None:
    n = 2 * 4 * 6 * 6
    t = step(_after_conv(nn.BatchNorm2d(4)), (2, 4, 6, 6), policy="all")
    # mean, variance (3 per element) + scale and shift (2), and num_batches_tracked += 1
    assert t.row("1").flops == 5 * n + 1


# --------------------------------------------------------------------------- memory


def test_saved_bytes_follow_what_autograd_saves() -> None:
    # conv -> ReLU -> conv on 1 x 3 x 8 x 8, no biases. The first conv saves its input (the
    # model input) and weights: none of it activations. The ReLU saves its output
    # (4 x 6 x 6 x 4 B = 576 B); the second conv saves the same storage as its input.
    relu_out = 4 * 6 * 6 * 4
    t = step(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(),
                           nn.Conv2d(4, 2, 3, bias=False)), (1, 3, 8, 8))
    saved = {r.name: r.train.saved_bytes for r in t.layers if r.train is not None}
    assert saved == {"0": 0, "1": relu_out, "2": 0}
    assert t.totals.train is not None and t.totals.train.saved_activation_bytes == relu_out


def test_inplace_relu_saves_the_storage_it_overwrote() -> None:
    # conv -> BN -> ReLU(inplace): BN saves its input (the conv's output, 576 B) and its
    # batch mean and 1/std (2 x 4 x 4 B); the in-place ReLU saves its result, which is the
    # BN output's storage (576 B): no extra copy. Not in place, the ReLU's output is new.
    out = 4 * 6 * 6 * 4
    stats = 2 * 4 * 4

    def saved(inplace: bool) -> dict[str, int]:
        t = step(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4),
                               nn.ReLU(inplace=inplace)), (1, 3, 8, 8))
        return {r.name: r.train.saved_bytes for r in t.layers if r.train is not None}

    assert saved(True) == {"0": 0, "1": out + stats, "2": out}
    assert saved(False) == {"0": 0, "1": out + stats, "2": out}


def test_inplace_ops_change_what_is_saved() -> None:
    # conv -> ReLU -> ReLU on 1 x 3 x 8 x 8: each ReLU saves its result (4 x 6 x 6 x 4 B =
    # 576 B). Not in place those are two tensors; in place both are the conv output's
    # storage, saved once, and the step holds 576 B less at its peak.
    out = 4 * 6 * 6 * 4

    def count(inplace: bool) -> tuple[int, int]:
        t = step(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(inplace=inplace),
                               nn.ReLU(inplace=inplace)), (1, 3, 8, 8))
        assert t.totals.train is not None
        return t.totals.train.saved_activation_bytes, t.totals.peak_activation_bytes

    (saved, peak), (saved_inplace, peak_inplace) = count(False), count(True)
    assert (saved, saved_inplace) == (2 * out, out)
    assert peak - peak_inplace == out


def test_training_memory_per_optimizer_by_hand() -> None:
    t = step(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU(),
                           nn.Conv2d(4, 2, 3, bias=False)), (1, 3, 8, 8))
    tot, tr = t.totals, t.totals.train
    assert tr is not None
    params = 4 * 3 * 9 + 2 * 4 * 9
    assert (tot.param_bytes, tr.trainable_params, tr.grad_bytes) == (4 * params, params,
                                                                      4 * params)
    assert dict(tr.optimizer_state_bytes) == {"sgd": 0, "sgd_momentum": 4 * params,
                                              "adam": 8 * params}
    fixed = tot.param_bytes + tot.buffer_bytes + tot.input_bytes
    assert tot.peak_memory_bytes == fixed + tot.peak_activation_bytes
    for name, opt in OPTIMIZERS.items():
        # the update's temporaries are copies of the largest parameter (4 x 3 x 9 values)
        at_update = tot.peak_activation_bytes if opt.temporaries == 0 else None
        memory = tot.training_memory_bytes[name]
        assert memory >= fixed + tr.optimizer_state_bytes[name] + tot.peak_activation_bytes
        if at_update is not None:
            assert memory == fixed + tr.optimizer_state_bytes[name] + at_update


def test_meta_step_equals_cpu_step() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                           nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3),
                           nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    meta = step(module, (2, 3, 12, 12), policy="all")
    cpu = step(module, (2, 3, 12, 12), policy="all", device="cpu")
    assert meta.layers == cpu.layers
    assert meta.totals == cpu.totals


def test_step_flops_add_the_update_per_parameter() -> None:
    t = step(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 3, 5, 5), policy="all")
    tr = t.totals.train
    assert tr is not None
    params = 4 * 3 * 9 + 4
    # SGD: w -= lr x g (a multiply and an add); momentum: 2 more for the buffer;
    # Adam: m (3) + v (4) + denominator (3) + the step (3)
    assert dict(tr.optimizer_flops) == {"sgd": 2 * params, "sgd_momentum": 4 * params,
                                        "adam": 13 * params}
    assert tr.step_flops["adam"] == t.totals.flops + tr.backward_flops + 13 * params
    papers = step(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 3, 5, 5)).totals.train
    assert papers is not None and set(papers.optimizer_flops.values()) == {0}


# --------------------------------------------------------------------------- specs


def _needs_input_grad(spec: Any, rows: dict[str, Any]) -> set[str]:
    """Layers with an input that depends on a trained parameter: they need dL/dx."""
    depends = {"input": False}
    needs = set()
    for layer in spec.layers:
        upstream = any(depends.get(k, False) for k in layer.inputs)
        if upstream:
            needs.add(layer.path)
        depends[layer.path] = upstream or rows[layer.path].params > 0
    return needs


# (googlenet, mobilenetv2 and resnet50 only repeat in the slow tier, bigger, the blocks of
# squeezenet1_1, mobilenetv3_small and efficientnet_b0, and resnet18)
@pytest.mark.parametrize("name", tiered(
    sorted(bundled_specs()),
    set(bundled_specs()) - {"googlenet", "mobilenetv2", "resnet50"}))
def test_every_bundled_spec_trains_with_every_op_counted(name: str) -> None:
    spec = load_spec(bundled_specs()[name])
    table = count_spec(spec, mode="train", policy="conv+linear")
    tr = table.totals.train
    assert tr is not None and not table.uncounted
    rows = {r.name: r for r in table.layers}
    # every weighted layer trains: dL/dW costs its forward, dL/dx too where it is needed
    assert tr.grad_weight_macs == table.totals.macs
    needs = _needs_input_grad(spec, rows)
    assert tr.grad_input_macs == sum(r.macs for n, r in rows.items() if n in needs)
    assert tr.trainable_params == table.totals.params
    # the step's forward (torch engine, training behaviour) against the analytic engine's
    # inference count of the same spec: conv and linear MACs do not depend on the mode
    from cnncost.count import analytic

    inference = analytic.count_spec(spec, policy="conv+linear")
    assert [(r.name, r.macs) for r in table.layers] == [
        (r.name, r.macs) for r in inference.layers]


# small inputs keep the real CPU step short (U-Net's valid sizes are 188 + 16k)
SPEC_INPUTS = {"resnet18": (3, 64, 64), "mobilenetv2": (3, 64, 64),
               "textbook/grouped_conv": None, "unet": (1, 188, 188)}


@pytest.mark.slow  # oracle: FlopCounterMode on whole networks
@pytest.mark.parametrize("name", sorted(SPEC_INPUTS))
def test_spec_train_macs_equal_flop_counter_mode(name: str) -> None:
    spec = load_spec(bundled_specs()[name], input_shape=SPEC_INPUTS[name])
    shape = (1, *spec.input_shape)
    t = count_spec(spec, mode="train", policy="conv+linear").totals
    assert t.train is not None
    torch.manual_seed(0)
    module = cnncost.build(bundled_specs()[name], input=shape[1:])
    assert flop_counter_macs(module, shape) == (
        t.macs + t.train.backward_macs + grouped_weight_overcount(module, shape))


@pytest.mark.slow  # oracle: the torch engine (the analytic train count is held above)
def test_compiled_graph_module_trains_like_its_spec() -> None:
    spec = load_spec(bundled_specs()["resnet18"], input_shape=(3, 64, 64))
    a = count_spec(spec, mode="train")
    b = count_module(cnncost.build(bundled_specs()["resnet18"], input=(3, 64, 64)),
                     (3, 64, 64), mode="train")
    assert [(r.name, r.macs, r.train) for r in a.layers] == [
        (r.name, r.macs, r.train) for r in b.layers]
    assert a.totals.train == b.totals.train


# --------------------------------------------------------------------------- documents


def test_train_document_round_trips_and_inference_has_no_train_keys() -> None:
    t = cnncost.analyze("textbook/dwsep_6x6x3", mode="train")
    doc = t.to_dict()
    assert doc["mode"] == "train"
    for key in ("forward_macs", "backward_macs", "step_flops", "training_memory_bytes"):
        assert key in doc["totals"]
    assert set(doc["totals"]["step_flops"]) == set(OPTIMIZERS)
    assert {"backward_macs", "grad_input_macs", "grad_weight_macs", "saved_bytes"} <= set(
        doc["layers"][0])
    again = CostTable.from_json(t.to_json())
    assert again.to_json() == t.to_json()
    inference = cnncost.analyze("textbook/dwsep_6x6x3").to_dict()
    assert "mode" not in inference
    assert "backward_macs" not in inference["totals"]
    assert "backward_macs" not in inference["layers"][0]


def test_committed_reports_are_inference_documents() -> None:
    for path in sorted((ROOT / "reports").rglob("*.json")):
        doc = json.loads(path.read_text())
        assert "mode" not in doc and "backward_macs" not in doc["totals"], path


def test_bad_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="mode"):
        count_module(nn.Conv2d(3, 4, 3), (3, 8, 8), mode="training")


def test_nothing_to_train_is_a_usage_error() -> None:
    module = nn.Conv2d(3, 4, 3).requires_grad_(False)
    with pytest.raises(UsageError, match="nothing to train"):
        count_module(module, (3, 8, 8), mode="train")


# --------------------------------------------------------------------------- CLI


def test_cli_train_mode_in_every_command(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", "textbook/dwsep_6x6x3", "--mode", "train"])
    assert r.exit_code == 0, r.output
    assert "mode train" in r.output and "dL/dW MACs" in r.output
    r = runner.invoke(app, ["analyze", "textbook/dwsep_6x6x3", "--mode", "train", "-f", "csv"])
    assert r.exit_code == 0 and "grad_weight_macs" in r.output.splitlines()[0]
    r = runner.invoke(app, ["compare", "lenet5", "textbook/dwsep_6x6x3", "--mode", "train",
                            "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["models"][0]["mode"] == "train"
    r = runner.invoke(app, ["explain", "textbook/dwsep_6x6x3", "--mode", "train"])
    assert r.exit_code == 0 and "backward dL/dW" in r.output
    r = runner.invoke(app, ["sweep", "lenet5", "--set", "classes=10,20", "--mode", "train",
                            "-f", "json"])
    assert r.exit_code == 0, r.output
    assert "backward_macs" in json.loads(r.output)["points"][0]
    out = tmp_path / "reports"
    r = runner.invoke(app, ["report", "lenet5", "--mode", "train", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["analyze", "lenet5", "--mode", "training"])
    assert r.exit_code == 2


def test_the_analytic_engine_refuses_a_training_step() -> None:
    from cnncost.count import analytic

    spec = load_spec(bundled_specs()["lenet5"])
    with pytest.raises(UsageError, match="torch engine"):
        analytic.count_spec(spec, mode="train")
    # asked for by name, in the API and on every command that takes --engine: a usage error
    with pytest.raises(UsageError, match="analytic engine counts inference only"):
        cnncost.analyze("lenet5", mode="train", engine="analytic")
    runner = CliRunner()
    for argv in (["analyze", "lenet5"], ["compare", "lenet5", "alexnet"],
                 ["explain", "lenet5"], ["sweep", "lenet5", "--set", "classes=10,20"]):
        r = runner.invoke(app, [*argv, "--mode", "train", "--engine", "analytic"])
        assert r.exit_code == 2 and "inference only" in r.output, (argv, r.output)


def test_a_spec_in_train_mode_counts_with_the_torch_engine(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # no engine named: a spec's training step goes to the torch engine, never the analytic
    from cnncost.count import analytic

    def refuse(*_: Any, **__: Any) -> CostTable:
        raise AssertionError("the analytic engine was asked to count a training step")

    monkeypatch.setattr(analytic, "count_spec", refuse)
    t = cnncost.analyze("lenet5", mode="train")
    assert t.train and t.totals.train is not None
    assert cnncost.analyze("lenet5", mode="train", engine="torch").totals == t.totals


# --------------------------------------------------------------------------- bench --train

FAST = Budget(min_samples=3, min_time=0.0, max_time=0.05, warmup_time=0.0)
TINY_SPEC = """\
name: tiny_train
input: [3, 16, 16]
layers:
  - conv: {out: 8, kernel: 3, padding: 1, bias: false}
  - bn
  - relu
  - global_avg_pool
  - flatten
  - linear: {out: 4}
"""


@pytest.fixture
def quick_roofline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of its own with a quick (tiny) CPU calibration, so no test measures a real one."""
    from cnncost.measure.roofline import get_roofline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    get_roofline(torch.device("cpu"), torch.float32, 1, quick=True)


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_bench_train_refuses_a_step_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    # the step's estimate plus the backend's workspace against the tightest limit, named
    from cnncost.count.limits import Free
    from cnncost.measure import bench_train as bt
    from cnncost.measure.memory import InsufficientMemoryError

    monkeypatch.setattr(bt, "free_limit", lambda device: Free(1 << 20, "cgroup /x (memory.max)"))
    options = BenchOptions(device="cpu", threads=1, budget=FAST, optimizer="adam")
    with pytest.raises(InsufficientMemoryError, match=r"\(adam\).*cgroup /x \(memory.max\)"):
        bt.bench_train(tiny_net(), (1,), options, input=(3, 16, 16))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_bench_train_times_steps_and_measures_their_peak(quick_roofline: None,
                                                         optimizer: str) -> None:
    from cnncost.measure.bench_train import bench_train

    options = BenchOptions(device="cpu", threads=1, budget=FAST, optimizer=optimizer)
    report = bench_train(tiny_net(), (1, 2), options, input=(3, 16, 16))
    assert report.optimizer == optimizer and [r.batch for r in report.runs] == [1, 2]
    for run in report.runs:
        counted = step(tiny_net(), (run.batch, 3, 16, 16), policy="all").totals
        assert counted.train is not None
        assert run.step_flops == counted.train.step_flops[optimizer]
        assert run.estimated_peak_bytes == counted.training_memory_bytes[optimizer]
        assert run.timing.median_s > 0 and run.timing.iqr_s >= 0
        # at least what exists before the step: weights, input, the optimizer's state
        assert run.measured_peak_bytes is not None
        assert run.measured_peak_bytes >= counted.param_bytes + counted.input_bytes + (
            counted.train.optimizer_state_bytes[optimizer])
    assert json.loads(report.to_json())["schema"] == "cnncost.bench-train/1"
    # A time that is not a number (as a too-short sample gives) is null: valid JSON.
    first = report.runs[0]
    broken = dataclasses.replace(first, timing=dataclasses.replace(first.timing,
                                                                   median_s=float("nan")))
    run = json.loads(dataclasses.replace(report, runs=(broken,)).to_json())["runs"][0]
    assert run["step_ms"] is None and run["images_per_s"] is None


def test_cli_bench_train(quick_roofline: None, write_spec: Any) -> None:
    runner = CliRunner()
    base = ["bench", str(write_spec(TINY_SPEC)), "--train", "--device", "cpu", "--threads",
            "1", "--max-time", "0.05", "--min-samples", "3"]
    r = runner.invoke(app, [*base, "--optimizer", "adam", "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["optimizer"] == "adam" and doc["runs"][0]["measured_peak_bytes"] > 0
    r = runner.invoke(app, base)
    assert r.exit_code == 0 and "est/meas" in r.stdout, r.output
    r = runner.invoke(app, [*base, "-f", "html"])  # the step's page
    assert r.exit_code == 0 and r.stdout.startswith("<!DOCTYPE html>"), r.output
    assert "<h1>bench --train: tiny_train</h1>" in r.stdout and "est/meas" in r.stdout
    for bad, message in ((["--optimizer", "rmsprop"], "--optimizer"),
                         (["--per-layer"], "inference only")):
        r = runner.invoke(app, [*base, *bad])
        assert r.exit_code == 2 and message in r.output, r.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_train_cuda_smoke() -> None:
    from cnncost.measure.bench_train import bench_train

    report = bench_train(tiny_net(), (2,), BenchOptions(device="cuda", budget=FAST,
                                                        quick_roofline=True, optimizer="adam"),
                         input=(3, 16, 16))
    run = report.runs[0]
    assert report.device == "cuda" and run.timing.median_s > 0
    assert run.measured_peak_bytes is not None and run.measured_peak_bytes > 0

"""cnncost.measure.crosscheck: fvcore as an independent count of conv/linear MACs, layer by layer.

fvcore traces the compiled module with torch.jit and counts one multiply-add as one flop,
so on every bundled spec its conv/linear/matmul counts must equal cnncost's MACs exactly,
except where fvcore has no handle (string padding, baddbmm) - which must be explained.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.count.drivers import count_module
from cnncost.errors import SpecError, UsageError
from cnncost.measure.crosscheck import (
    FVCORE_HANDLES,
    compare,
    convention,
    crosscheck,
    crosscheck_fvcore,
    disagreement,
)
from cnncost.render.crosscheck import convention_text, summary_lines
from cnncost.sources import bundled_specs
from cnncost.spec import load_spec

pytest.importorskip("fvcore")

SPECS = bundled_specs()


def smallest_input(path: Path) -> tuple[int, ...] | None:
    """The smallest square input the spec accepts (fvcore runs the model for real)."""
    spec = load_spec(path)
    if len(spec.input_shape) != 3:
        return None
    for size in (32, 64, 96, 128, 160, 224):
        try:
            load_spec(path, input_shape=(spec.input_shape[0], size, size))
        except SpecError:
            continue
        return (spec.input_shape[0], size, size)
    return None


@pytest.mark.slow  # oracle: fvcore on every bundled spec
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_bundled_spec_agrees_with_fvcore(name: str) -> None:
    cc = crosscheck_fvcore(SPECS[name], input=smallest_input(SPECS[name]))
    assert cc.agree, [r for r in cc.unexplained]
    blind = [r for r in cc.rows if r.delta]
    assert all("fvcore has no handle" in r.note for r in blind)
    if not blind:
        assert cc.ours_total == cc.fvcore_macs_total
    for r in cc.rows:
        if not r.note:
            assert r.ours == r.fvcore, r.name


def test_string_padding_is_fvcore_blind_spot(write_spec) -> None:
    # padding "same" traces to aten::_convolution_mode, which fvcore does not count
    path = write_spec("name: same\ninput: [4, 8, 8]\nlayers:\n"
                      "  - conv: {out: 2, kernel: 3, padding: same}\n"
                      "  - conv: {out: 2, kernel: 3, padding: 1}\n")
    cc = crosscheck_fvcore(path)
    conv1, conv2 = cc.rows
    assert (conv1.ours, conv1.fvcore) == (8 * 8 * 2 * 4 * 9, 0)
    assert "_convolution_mode" in conv1.note
    assert conv2.ours == conv2.fvcore == 8 * 8 * 2 * 2 * 9
    assert cc.agree


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = x + x  # a functional op in the root's own forward
        return self.fc(x.mean((2, 3)))


def test_plain_module_agrees_and_conventions_are_named() -> None:
    cc = crosscheck_fvcore(Net(), input=(3, 6, 6))
    assert cc.agree
    assert {r.name: (r.ours, r.fvcore) for r in cc.rows if r.ours} == {
        "conv": (6 * 6 * 8 * 27, 6 * 6 * 8 * 27), "fc": (32, 32)}
    bn = next(r for r in cc.rows if r.name == "bn")
    # fvcore (jit_handles.batchnorm_flop_jit) counts 2 flops per element at inference with
    # affine scale and shift: 2 x 8 x 6 x 6
    assert (bn.ours, bn.fvcore_other) == (0, {"batch_norm": 2 * 8 * 6 * 6})
    assert "batch_norm" in cc.conventions


def test_a_real_difference_is_unexplained() -> None:
    model = Net().eval()
    table = count_module(model, (3, 6, 6))
    rows = tuple(dataclasses.replace(r, macs=r.macs + 1) if r.name == "conv" else r
                 for r in table.layers)
    cc = compare(dataclasses.replace(table, layers=rows), model, torch.randn(1, 3, 6, 6))
    assert [r.name for r in cc.unexplained] == ["conv"]
    assert not cc.agree


def test_report_and_errors(write_spec) -> None:
    path = write_spec("name: one\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 2, kernel: 3}\n")
    cc = crosscheck("fvcore", str(path))
    assert disagreement(cc) is None
    assert summary_lines(cc)[0].startswith("1 of 1 layers with MACs agree")
    with pytest.raises(UsageError, match="supported tool is 'fvcore'"):
        crosscheck("thop", str(path))


def test_cli_crosscheck(write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_spec("name: one\ninput: [3, 8, 8]\nlayers:\n"
                      "  - conv: {out: 2, kernel: 3, padding: same}\n  - bn\n")
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", str(path), "--crosscheck", "fvcore"])
    assert result.exit_code == 0, result.output
    assert "_convolution_mode" in result.output and "batch_norm" in result.output
    result = runner.invoke(app, ["analyze", str(path), "--crosscheck", "nope"])
    assert result.exit_code == 2
    monkeypatch.setitem(sys.modules, "fvcore.nn", None)  # as if fvcore were not installed
    result = runner.invoke(app, ["analyze", str(path), "--crosscheck", "fvcore"])
    assert result.exit_code == 2
    assert "pip install fvcore" in result.output


class Attention(nn.Module):
    """Self-attention over the pixels of a feature map, through F.scaled_dot_product_attention."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).chunk(3, -1)  # (1, 16, 8) each
        return nn.functional.scaled_dot_product_attention(q, k, v)


class Recurrent(nn.Module):
    """An LSTM (or GRU) reading the pixels of a feature map as a sequence."""

    def __init__(self, cell: type[nn.LSTM] | type[nn.GRU]) -> None:
        super().__init__()
        self.rnn = cell(8, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x.flatten(2).transpose(1, 2))[0]


class SelfAttention(nn.Module):
    """nn.MultiheadAttention (eval, no grad: its fused inference path)."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.flatten(2).transpose(1, 2)
        return self.mha(seq, seq, seq)[0]


# Input 8x4x4: a sequence of L = 16 pixels of E = 8 features.
L, E = 16, 8
BLIND_CASES = [
    # qkv: 16 x 8 x 24; Q x K^T: 16 x 16 x 8; weights x V: 16 x 8 x 16 (fvcore: only qkv)
    ("sdpa", Attention(), "(model)", "aten::scaled_dot_product_attention",
     L * E * 3 * E + 2 * L * L * E),
    # 4 gates x hidden 4, input 8 + hidden 4 per step, 16 steps
    ("lstm", Recurrent(nn.LSTM), "rnn", "aten::lstm", L * 4 * 4 * (8 + 4)),
    ("gru", Recurrent(nn.GRU), "rnn", "aten::gru", L * 3 * 4 * (8 + 4)),
    # in-projection 16 x 8 x 24; Q x K^T and weights x V per head (2 heads of 4);
    # out-projection 16 x 8 x 8
    ("mha", SelfAttention(), "mha", "aten::_native_multi_head_attention",
     L * E * 3 * E + 2 * (2 * L * L * 4) + L * E * E),
]


@pytest.mark.parametrize(("model", "row", "op", "macs"), [c[1:] for c in BLIND_CASES],
                         ids=[c[0] for c in BLIND_CASES])
def test_ops_fvcore_skips_are_named_not_unexplained(model: nn.Module, row: str, op: str,
                                                    macs: int) -> None:
    cc = crosscheck_fvcore(model, input=(E, 4, 4))
    assert cc.agree, [(r.name, r.delta) for r in cc.unexplained]
    assert cc.ours_total == macs
    blind = next(r for r in cc.rows if r.name == row)
    assert op in blind.note and blind.delta > 0
    assert not any("UNEXPLAINED" in line for line in summary_lines(cc))


# cnncost's side of each fvcore convention, derived by hand from what the op computes:
# batch norm at inference folds into one multiply and one add per element (scale, shift): 2;
# layer / group / instance norm: mean, variance, normalise, scale, shift: 5 per element;
# adaptive average pooling adds every input element once: 1 per input element;
# bilinear upsampling weights 4 taps (4 multiplies) and sums them (3 adds): 7 per output;
# nearest upsampling only copies: 0; grid sampling has no formula: uncounted (None).
CNNCOST_PER_ELEMENT = {"batch_norm": 2, "layer_norm": 5, "group_norm": 5, "instance_norm": 5,
                       "adaptive_avg_pool2d": 1, "upsample_bilinear2d": 7,
                       "upsample_nearest2d": 0, "grid_sampler": None}


@pytest.mark.parametrize("op", sorted(FVCORE_HANDLES))
def test_conventions_are_counted_not_written(op: str) -> None:
    c = convention(op)
    assert (c.macs, c.flops) == (0, CNNCOST_PER_ELEMENT[op])
    text = convention_text(c)
    assert text.startswith(f"fvcore counts {FVCORE_HANDLES[op][0]}; cnncost")
    if c.flops:
        assert f"cnncost: no MACs, {CNNCOST_PER_ELEMENT[op]} FLOP" in text
        assert f"per {FVCORE_HANDLES[op][1]}" in text


def test_unknown_fvcore_handle_is_named_as_fvcore_specific() -> None:
    assert convention_text(convention("roi_align")) == (
        "fvcore-specific op count (not MACs in cnncost)")

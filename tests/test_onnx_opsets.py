"""One small network exported at several ONNX opsets, each file counted the same.

Operators change form across opsets (Clip's bounds are attributes before opset 11 and
inputs after, Upsample becomes Resize at 10, ReduceMean's axes an input at 18, Squeeze's and
Split's axes inputs at 13), and exporters write what the opset asks. The oracle: MACs ==
FlopCounterMode's count on the module / 2, params + buffers == the elements of the file's
floating-point initializers (read with onnx), at every opset.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cnncost.onnx.engine import count_file  # noqa: E402


class Small(nn.Module):
    """conv, batch norm, ReLU6 (Clip), a 2x upsample, a depthwise conv, a channel split and
    concat, a global average pool, a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.act(self.bn(self.conv(x))))
        a, b = torch.split(x, 4, dim=1)
        x = self.dw(torch.cat([b, a], dim=1))
        x = x.mean(dim=(2, 3))
        return self.fc(x)


@pytest.mark.slow  # torch's exporter and FlopCounterMode as the oracle
@pytest.mark.parametrize("opset", [9, 11, 13, 17, 18])
def test_opsets_count_the_same(tmp_path: Path, opset: int) -> None:
    torch.manual_seed(0)
    model = Small().eval()
    x = torch.randn(1, 3, 8, 8)
    path = tmp_path / f"small{opset}.onnx"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset)
    with torch.no_grad(), FlopCounterMode(display=False) as fcm:
        model(x)
    table = count_file(path)
    assert not table.uncounted, table.uncounted
    assert table.totals.macs == fcm.get_total_flops() // 2
    proto = onnx.load(str(path))
    floats = sum(math.prod(t.dims) for t in proto.graph.initializer
                 if t.data_type == onnx.TensorProto.FLOAT)
    assert table.totals.params + table.totals.buffers == floats
    assert f"opset {opset}" in table.description


@pytest.mark.slow  # torch's exporters
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_transformer_attention_as_exported(tmp_path: Path, dynamo: bool) -> None:
    """nn.TransformerEncoder (2 layers, d 32, 4 heads, feed-forward 64) after a 16 -> 32
    linear layer, on 2 sequences of 10 tokens, as each exporter writes its attention (the
    matmul, scale, softmax, matmul pattern). MACs by hand: the first linear 20 x 16 x 32;
    per layer the fused q/k/v projection 20 x 32 x 96, Q K^T and P V each B x heads x S x S
    x d_head = 2 x 4 x 10 x 10 x 8, the output projection 20 x 32 x 32 and the feed-forward
    20 x 32 x 64 twice. (FlopCounterMode is no oracle here: in eval mode the layer runs a
    fused kernel it does not know, and it counts that as zero.)"""
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                       batch_first=True)
    model = nn.Sequential(nn.Linear(16, 32),
                          nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)).eval()
    path = tmp_path / "encoder.onnx"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 10, 16),), str(path), dynamo=dynamo,
                          **({} if dynamo else {"opset_version": 17}))
    table = count_file(path)
    per_layer = 20 * 32 * 96 + 2 * (2 * 4 * 10 * 10 * 8) + 20 * 32 * 32 + 2 * (20 * 32 * 64)
    assert table.totals.macs == 20 * 16 * 32 + 2 * per_layer
    assert not table.uncounted, table.uncounted
    assert any(r.kind == "Softmax" for r in table.layers)

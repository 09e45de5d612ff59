"""torchvision models exported by both PyTorch exporters, counted exactly from the file.

Each model is exported as a user would (eval mode, a 1x3x224x224 input, the exporter's
defaults: the TorchScript-based exporter folds constants, the dynamo exporter runs its
optimiser; both fold batch norms into the convs before them and keep one copy of equal
initializers). The oracles are independent of cnncost:

- params + buffers == the elements of the file's floating-point initializers, read with
  onnx itself;
- MACs == FlopCounterMode's count on the module the file came from / 2 (PyTorch counts 2
  FLOPs per multiply-accumulate of conv, linear and matrix products; folding batch norm or
  deduplicating weights changes neither).

Exporting takes seconds to tens of seconds per model: marked slow.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cnncost.onnx.engine import count_file  # noqa: E402

FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
         onnx.TensorProto.BFLOAT16}
MODELS = ["resnet18", "mobilenet_v2", "squeezenet1_0", "efficientnet_b0"]


def export(model: torch.nn.Module, path: Path, dynamo: bool) -> None:
    x = torch.randn(1, 3, 224, 224)
    if dynamo:
        pytest.importorskip("onnxscript")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=dynamo, external_data=False)


def float_initializer_elements(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in FLOAT)


def flop_counter_macs(model: torch.nn.Module) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fcm:
        model(torch.randn(1, 3, 224, 224))
    flops: int = fcm.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", MODELS)
def test_exported_torchvision_model(tv_models: Any, tmp_path: Path, name: str,
                                    dynamo: bool) -> None:
    torch.manual_seed(0)
    model = tv_models.get_model(name, weights=None).eval()
    path = tmp_path / f"{name}.onnx"
    export(model, path, dynamo)
    table = count_file(path)
    assert not table.uncounted, table.uncounted
    assert table.totals.params + table.totals.buffers == float_initializer_elements(path)
    assert table.totals.macs == flop_counter_macs(model)

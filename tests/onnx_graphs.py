"""Small ONNX graphs built with onnx.helper for the tests (the numbers each test expects are
worked out in the test itself)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onnx import TensorProto, helper

F = TensorProto.FLOAT


def weight(name: str, *dims: int, dtype: int = F) -> TensorProto:
    n = 1
    for d in dims:
        n *= d
    values = [0.5] * n if dtype == F else [1] * n
    return helper.make_tensor(name, dtype, dims, values)


def save(tmp: Path, nodes: Sequence[Any], inputs: Sequence[Any], outputs: Sequence[str],
         inits: Sequence[Any] = (), opset: int = 17, name: str = "m.onnx",
         **kwargs: Any) -> Path:
    outs = [helper.make_tensor_value_info(o, F, None) for o in outputs]
    graph = helper.make_graph(list(nodes), "g", list(inputs), outs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    path = tmp / name
    path.write_bytes(model.SerializeToString())
    return path


def x_input(*dims: Any, name: str = "x") -> Any:
    return helper.make_tensor_value_info(name, F, list(dims))


def small_cnn(tmp: Path, dims: Sequence[Any] = (1, 3, 8, 8)) -> Path:
    """conv 3x3 (3 -> 4, pad 1, bias), batch norm, ReLU, global average pool, flatten,
    a 4 -> 10 linear layer (Gemm, transB)."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"],
                         name="/bn/BatchNormalization"),
        helper.make_node("Relu", ["n"], ["r"], name="/relu/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="/fc/Gemm", transB=1),
    ]
    inits = [weight("w", 4, 3, 3, 3), weight("b", 4), weight("s", 4), weight("o", 4),
             weight("m", 4), weight("v", 4), weight("fw", 10, 4), weight("fb", 10)]
    return save(tmp, nodes, [x_input(*dims)], ["y"], inits)



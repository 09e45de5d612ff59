"""Every ONNX operator of cnncost.onnx.ops.ONNX_OPS on a one-node graph, its cost by hand.

One sample per registered operator (a registered operator without one fails
:func:`test_every_registered_operator_has_a_sample`, as an ATen op without one fails
tests/test_op_samples.py): the node's inputs (graph inputs of these shapes, or constants),
its attributes, and the MACs and FLOPs worked out here from the counting conventions, or
``FOLDED`` where the node computes from constants only and is no row. X is 2x3x4: 24
elements, so a per-element cost c is 24c FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from cnncost.errors import OnnxError  # noqa: E402
from cnncost.onnx.engine import count_file  # noqa: E402
from cnncost.onnx.ops import ONNX_OPS  # noqa: E402

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
X = (2, 3, 4)
N = 24
FOLDED = None  # the node computes from constants only: no row


@dataclass(frozen=True)
class Sample:
    """A one-node graph: inputs (name, shape, type) fed at run time, constants (name,
    values, shape, type), attributes; its MACs and FLOPs (None: folded, no row)."""

    inputs: tuple[tuple[Any, ...], ...] = (("x", X, F),)
    consts: tuple[tuple[Any, ...], ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    macs: int | None = 0
    flops: int | None = 0
    opset: int = 18
    outputs: int = 1


def per(cost: int, **attrs: Any) -> Sample:
    """A unary op on X: ``cost`` FLOPs per element."""
    return Sample(attrs=attrs, flops=cost * N)


def binary(cost: int, dtype: int = F, other: tuple[int, ...] = (4,)) -> Sample:
    """X op (a tensor broadcast to X): ``cost`` per output element."""
    return Sample(inputs=(("x", X, dtype), ("y", other, dtype)), flops=cost * N)


def three(flops: int) -> Sample:
    return Sample(inputs=(("a", X, F), ("b", X, F), ("c", X, F)), flops=flops)


def c64(name: str, values: list[int]) -> tuple[Any, ...]:
    return (name, values, (len(values),), I64)


SAMPLES: dict[str, Sample] = {
    # conv 3 -> 4, 3x3, pad 1, on 1x3x5x5: 1 x 4 x 5 x 5 x 3 x 3 x 3 MACs, + 100 bias adds
    "Conv": Sample(inputs=(("x", (1, 3, 5, 5), F), ("w", (4, 3, 3, 3), F), ("b", (4,), F)),
                   attrs={"pads": [1, 1, 1, 1]}, macs=4 * 25 * 27, flops=2 * 4 * 25 * 27 + 100),
    # transposed 2 -> 3, 2x2 stride 2 on 1x2x3x3: per input element 1 x 2 x 3 x 3 x 3 x 2 x 2
    "ConvTranspose": Sample(inputs=(("x", (1, 2, 3, 3), F), ("w", (2, 3, 2, 2), F)),
                            attrs={"strides": [2, 2]}, macs=2 * 9 * 3 * 4, flops=2 * 216),
    # (5 x 4) @ (4 x 3) + C: 5 x 3 x 4 MACs, 15 bias adds (B given as 3 x 4, transB)
    "Gemm": Sample(inputs=(("a", (5, 4), F), ("b", (3, 4), F), ("c", (3,), F)),
                   attrs={"transB": 1}, macs=60, flops=120 + 15),
    "MatMul": Sample(inputs=(("a", (2, 5, 4), F), ("b", (4, 3), F)), macs=30 * 4,
                     flops=2 * 120),
    # 2 per element at inference; scale, shift, mean, var of 3 channels
    "BatchNormalization": Sample(inputs=(("x", X, F), ("s", (3,), F), ("o", (3,), F),
                                         ("m", (3,), F), ("v", (3,), F)), flops=2 * N),
    "InstanceNormalization": Sample(inputs=(("x", X, F), ("s", (3,), F), ("o", (3,), F)),
                                    flops=5 * N),
    "LayerNormalization": Sample(inputs=(("x", X, F), ("s", (4,), F)), flops=5 * N),
    "GroupNormalization": Sample(inputs=(("x", (2, 4, 3), F), ("s", (4,), F),
                                         ("o", (4,), F)), attrs={"num_groups": 2},
                                 flops=5 * N, opset=21),
    "Relu": per(1), "Sigmoid": per(4), "Tanh": per(5), "HardSigmoid": per(4),
    "HardSwish": per(5), "LeakyRelu": per(2), "Elu": per(4), "Erf": per(4),
    "Softplus": per(3), "Mish": per(9), "Exp": per(1), "Log": per(1), "Sqrt": per(1),
    "Neg": per(1), "Abs": per(1), "Reciprocal": per(1), "Sin": per(1), "Cos": per(1),
    "Floor": per(1), "Ceil": per(1), "Round": per(1), "Sign": per(1),
    "Gelu": Sample(flops=8 * N, opset=20),
    "Not": Sample(inputs=(("x", X, B),), flops=N),
    "Add": binary(1), "Sub": binary(1), "Mul": binary(1), "Div": binary(1), "Pow": binary(1),
    "PRelu": binary(2, other=(3, 1)),
    "Equal": binary(1), "Less": binary(1), "LessOrEqual": binary(1), "Greater": binary(1),
    "GreaterOrEqual": binary(1),
    "And": binary(1, B), "Or": binary(1, B), "Xor": binary(1, B),
    "Sum": three(2 * N), "Max": three(2 * N), "Min": three(2 * N),
    "Mean": three(2 * N + N),  # two adds, then a divide
    "Clip": Sample(inputs=(("x", X, F),), consts=(("lo", [0.0], (), F), ("hi", [6.0], (), F)),
                   flops=2 * N),  # both bounds: a ReLU6's two comparisons
    "Where": Sample(inputs=(("c", X, B), ("a", X, F), ("b", (4,), F)), flops=N),
    "Softmax": per(5), "LogSoftmax": per(5),
    # 3x3 max pool, stride 2, pad 1 on 1x2x6x6: 2x3x3 outputs, 8 comparisons each
    "MaxPool": Sample(inputs=(("x", (1, 2, 6, 6), F),),
                      attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
                      flops=8 * 18),
    "AveragePool": Sample(inputs=(("x", (1, 2, 6, 6), F),),
                          attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, flops=4 * 18),
    "GlobalAveragePool": Sample(inputs=(("x", (1, 2, 3, 3), F),), flops=18),
    "GlobalMaxPool": Sample(inputs=(("x", (1, 2, 3, 3), F),), flops=18),
    "ReduceMean": per(1), "ReduceSum": per(1), "ReduceMax": per(1), "ReduceMin": per(1),
    # bilinear 1x2x3x3 -> 1x2x6x6: 7 FLOPs per output; nearest: a copy
    "Resize": Sample(inputs=(("x", (1, 2, 3, 3), F),),
                     consts=(("roi", [], (0,), F), ("scales", [1, 1, 2, 2], (4,), F)),
                     attrs={"mode": "linear"}, flops=7 * 72),
    "Upsample": Sample(inputs=(("x", (1, 2, 3, 3), F),),
                       consts=(("scales", [1, 1, 2, 2], (4,), F),), opset=9),
    # scaled dot-product attention, 1 x 2 heads x 3 queries x 5 keys x 4: Q K^T and P V,
    # then per score a scale and a softmax (1 + 5)
    "Attention": Sample(inputs=(("q", (1, 2, 3, 4), F), ("k", (1, 2, 5, 4), F),
                                ("v", (1, 2, 5, 4), F)),
                        macs=2 * 2 * 3 * 5 * 4, flops=4 * 120 + 6 * 30, opset=23),
    "Einsum": Sample(inputs=(("a", (2, 3, 4), F), ("b", (2, 4, 5), F)),
                     attrs={"equation": "bij,bjk->bik"}, macs=2 * 3 * 5 * 4, flops=240,
                     opset=12),
    # data movement: no FLOPs
    "Concat": Sample(inputs=(("a", X, F), ("b", X, F)), attrs={"axis": 1}),
    "Split": Sample(consts=(c64("sizes", [1, 2]),), attrs={"axis": 1}, outputs=2),
    "Transpose": Sample(attrs={"perm": [2, 0, 1]}),
    "Slice": Sample(consts=(c64("s", [1]), c64("e", [3]), c64("ax", [2]))),
    "Gather": Sample(consts=(("i", [0, 2], (2,), I64),), attrs={"axis": 1}),
    "GatherElements": Sample(inputs=(("x", X, F), ("i", X, I64))),
    "GatherND": Sample(inputs=(("x", X, F), ("i", (2, 1), I64))),
    "Expand": Sample(inputs=(("x", (3, 1), F),), consts=(c64("to", [2, 3, 4]),)),
    "Tile": Sample(consts=(c64("reps", [1, 2, 1]),)),
    "Cast": Sample(attrs={"to": TensorProto.DOUBLE}),
    "CastLike": Sample(inputs=(("x", X, F), ("t", (1,), TensorProto.DOUBLE))),
    "Reshape": Sample(consts=(c64("to", [6, 4]),)),
    "Flatten": Sample(), "Identity": Sample(), "Dropout": Sample(),
    "Squeeze": Sample(inputs=(("x", (2, 1, 4), F),), consts=(c64("ax", [1]),)),
    "Unsqueeze": Sample(consts=(c64("ax", [0]),)),
    "DepthToSpace": Sample(inputs=(("x", (1, 8, 2, 2), F),), attrs={"blocksize": 2}),
    "SpaceToDepth": Sample(inputs=(("x", (1, 2, 4, 4), F),), attrs={"blocksize": 2}),
    "Pad": Sample(inputs=(("x", (1, 2, 3, 3), F),), consts=(c64("p", [0, 0, 1, 1, 0, 0, 1, 1]),)),
    # computed from shapes or constants only: folded, no row
    "Shape": Sample(macs=FOLDED, flops=FOLDED),
    "Size": Sample(macs=FOLDED, flops=FOLDED),
    "Constant": Sample(inputs=(), attrs={"value": helper.make_tensor("v", F, [2], [1, 2])},
                       macs=FOLDED, flops=FOLDED),
    "ConstantOfShape": Sample(inputs=(), consts=(c64("s", [2, 3]),), macs=FOLDED,
                              flops=FOLDED),
    "Range": Sample(inputs=(), consts=(("a", [0], (), I64), ("b", [5], (), I64),
                                       ("d", [1], (), I64)), macs=FOLDED, flops=FOLDED),
}


def graph_of(op: str, sample: Sample, tmp: Path) -> Path:
    inputs = [helper.make_tensor_value_info(n, t, list(s)) for n, s, t in sample.inputs]
    consts = [helper.make_tensor(n, t, list(s), v) for n, v, s, t in sample.consts]
    names = [n for n, *_ in sample.inputs] + [n for n, *_ in sample.consts]
    outs = [f"y{i}" for i in range(sample.outputs)]
    node = helper.make_node(op, names, outs, name="node", **sample.attrs)
    feeds = inputs or [helper.make_tensor_value_info("unused", F, [1])]  # a graph has inputs
    graph = helper.make_graph([node], "g", feeds,
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None)
                               for o in outs], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", sample.opset)])
    path = tmp / f"{op}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_every_registered_operator_has_a_sample() -> None:
    missing = sorted(set(ONNX_OPS) - set(SAMPLES))
    assert not missing, f"add samples to tests/test_onnx_ops.py: {missing}"
    assert set(SAMPLES) <= set(ONNX_OPS)


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_operator_cost(op: str, tmp_path: Path) -> None:
    sample = SAMPLES[op]
    path = graph_of(op, sample, tmp_path)
    if sample.macs is FOLDED:
        with pytest.raises(OnnxError, match=r"computes only from constants"):
            count_file(path)
        return
    table = count_file(path)
    row = next(r for r in table.layers if r.kind == op)
    assert not row.uncounted, row.uncounted
    assert (row.macs, row.flops) == (sample.macs, sample.flops)

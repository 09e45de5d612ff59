"""ONNX files counted without torch: hand-built graphs whose numbers are worked out here.

Every expected figure is derived in the test from the counting conventions (DESIGN.md):
conv MACs = N x C_out x H_out x W_out x (C_in / groups) x K_h x K_w, a linear layer's
M x N x K, bias adds one FLOP per output, batch norm 2 per element at inference, ReLU 1,
pooling K - 1 (max) or K (average) per output, a global average 1 per input element,
softmax 5 per element; params are the floating-point initializers, batch-norm statistics
buffers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx_graphs import F, save, small_cnn, weight, x_input  # noqa: E402

from cnncost.errors import OnnxError, UnsupportedOpError  # noqa: E402
from cnncost.onnx.engine import count_file  # noqa: E402
from cnncost.onnx.names import module_path, row_name  # noqa: E402
from cnncost.onnx.ops import ONNX_OPS  # noqa: E402
from cnncost.table import collapse  # noqa: E402


def test_small_cnn_by_hand(tmp_path: Path) -> None:
    t = count_file(small_cnn(tmp_path))
    conv_macs = 1 * 4 * 8 * 8 * 3 * 3 * 3  # N x C_out x H x W x C_in x K x K = 6,912
    fc_macs = 1 * 10 * 4  # M x N x K
    rows = {r.name: r for r in t.layers}
    assert list(rows) == ["conv.Conv", "bn.BatchNormalization", "relu.Relu",
                          "pool.GlobalAveragePool", "Flatten", "fc.Gemm"]
    assert rows["conv.Conv"].macs == conv_macs
    assert rows["conv.Conv"].formula == "(8x8x4) x (3x3x3) = 6,912"
    assert rows["conv.Conv"].params == 4 * 3 * 3 * 3 + 4
    assert (rows["bn.BatchNormalization"].params, rows["bn.BatchNormalization"].buffers) == (
        8, 8)  # scale and shift; running mean and variance
    assert rows["fc.Gemm"].macs == fc_macs and rows["fc.Gemm"].params == 10 * 4 + 10
    assert t.totals.params == 112 + 8 + 50 and t.totals.buffers == 8
    assert t.totals.macs == conv_macs + fc_macs
    elem = 256 + 2 * 256 + 256 + 256 + 10  # conv bias, bn, relu, pool (per input), fc bias
    assert t.totals.flops == 2 * (conv_macs + fc_macs) + elem
    # activations: 3 maps of 4x8x8 float32, the pooled 4 values twice (a view), 10 outputs
    assert t.totals.activation_bytes == 3 * 1024 + 16 + 16 + 40
    # peak: a 1,024-byte map and the next one made from it
    assert t.totals.peak_activation_bytes == 2048
    assert t.input == (1, 3, 8, 8) and t.dtype == "float32"
    assert t.totals.param_bytes == 170 * 4 and t.totals.buffer_bytes == 8 * 4
    conv_only = count_file(small_cnn(tmp_path), policy="conv+linear")
    assert conv_only.totals.flops == 2 * (conv_macs + fc_macs)


def test_symbolic_batch_and_sizes(tmp_path: Path) -> None:
    path = small_cnn(tmp_path, ("N", 3, "H", "W"))
    with pytest.raises(OnnxError, match=r"input 'x' has a symbolic dim 'H' \(dim 2\); give "
                                        r"--input"):
        count_file(path)
    t = count_file(path, batch=4, input=(3, 16, 16))
    assert t.input == (4, 3, 16, 16)
    assert t.layers[0].macs == 4 * 4 * 16 * 16 * 3 * 3 * 3
    assert t.layers[-1].macs == 4 * 10 * 4
    with pytest.raises(OnnxError, match="--input needs 3 sizes"):
        count_file(path, input=(16, 16))


def test_fixed_sizes_refuse_other_sizes(tmp_path: Path) -> None:
    path = small_cnn(tmp_path)
    assert count_file(path, batch=1, input=(3, 8, 8)).totals.macs == 6912 + 40
    with pytest.raises(OnnxError, match=r"fixed batch of 1.*--batch 8 needs a model exported "
                                        r"with a dynamic batch"):
        count_file(path, batch=8)
    with pytest.raises(OnnxError, match="is 1x3x8x8, its dim 2 fixed at 8"):
        count_file(path, input=(3, 16, 16))


@pytest.mark.parametrize(("a", "b", "macs"), [
    ((3, 4), (4, 5), 3 * 5 * 4),  # mm
    ((2, 5, 4), (4, 6), 2 * 5 * 6 * 4),  # a linear layer on 3-D input: rows folded
    ((2, 3, 5, 4), (2, 3, 4, 6), 6 * 5 * 6 * 4),  # bmm over 2 x 3
    ((1, 3, 5, 4), (2, 1, 4, 6), 6 * 5 * 6 * 4),  # broadcast batch 2 x 3
    ((4,), (4, 6), 6 * 4),  # a vector times a matrix
], ids=["mm", "rows", "bmm", "broadcast", "vector"])
def test_matmul(tmp_path: Path, a: tuple[int, ...], b: tuple[int, ...], macs: int) -> None:
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    path = save(tmp_path, [node], [x_input(*a, name="a"), x_input(*b, name="b")], ["y"])
    t = count_file(path)
    assert t.totals.macs == macs and t.totals.params == 0


def test_attention_pattern(tmp_path: Path) -> None:
    """Q K^T / sqrt(d), softmax, times V: the decomposition exporters write."""
    b, h, s, d = 2, 4, 6, 8
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["qk"]),
             helper.make_node("Div", ["qk", "scale"], ["sc"]),
             helper.make_node("Softmax", ["sc"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    inputs = [x_input(b, h, s, d, name=n) for n in "qkv"]
    t = count_file(save(tmp_path, nodes, inputs, ["y"],
                        [helper.make_tensor("scale", F, [], [8 ** 0.5])]))
    scores = b * h * s * s
    assert t.totals.macs == 2 * b * h * s * s * d  # Q K^T and P V, each B H S S D
    assert t.totals.flops == 2 * t.totals.macs + scores + 5 * scores  # divide, softmax
    assert t.totals.params == 1  # the scale is a float initializer of the file


def test_attention_operator(tmp_path: Path) -> None:
    b, h, sq, skv, d = 2, 3, 5, 7, 4
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"])
    inputs = [x_input(b, h, sq, d, name="q"), x_input(b, h, skv, d, name="k"),
              x_input(b, h, skv, d, name="v")]
    t = count_file(save(tmp_path, [node], inputs, ["y"], opset=23))
    scores = b * h * sq * skv
    assert t.totals.macs == 2 * scores * d
    assert t.totals.flops == 2 * t.totals.macs + scores + 5 * scores  # scale, softmax
    assert t.layers[0].output_shape == (b, h, sq, d)


@pytest.mark.parametrize(("node", "inputs", "out", "flops"), [
    # max pool 3x3/2 pad 1 on 8x8: 4x4 outputs, 8 comparisons each
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1]), (1, 2, 8, 8), (1, 2, 4, 4), 8 * 2 * 16),
    # average pool 2x2/2: 4 FLOPs per output
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
     (1, 2, 8, 8), (1, 2, 4, 4), 4 * 2 * 16),
    # bilinear resize 4x4 -> 8x8: 7 FLOPs per output
    (helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear"), (1, 2, 4, 4),
     (1, 2, 8, 8), 7 * 2 * 64),
    (helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest"), (1, 2, 4, 4),
     (1, 2, 8, 8), 0),
    (helper.make_node("LayerNormalization", ["x", "g"], ["y"], axis=-1), (2, 5, 6),
     (2, 5, 6), 5 * 60),
    (helper.make_node("Clip", ["x", "lo", "hi"], ["y"]), (2, 5, 6), (2, 5, 6), 2 * 60),
    (helper.make_node("HardSwish", ["x"], ["y"]), (2, 5, 6), (2, 5, 6), 5 * 60),
    (helper.make_node("ReduceMean", ["x"], ["y"], axes=[2], keepdims=0), (2, 5, 6), (2, 5),
     60),
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=1), (2, 5, 6), (2, 10, 6), 0),
], ids=["maxpool", "avgpool", "resize-linear", "resize-nearest", "layernorm", "clip",
        "hardswish", "reducemean", "concat"])
def test_per_element_ops(tmp_path: Path, node: Any, inputs: tuple[int, ...],
                         out: tuple[int, ...], flops: int) -> None:
    inits = [helper.make_tensor("scales", F, [4], [1, 1, 2, 2]), weight("g", 6),
             helper.make_tensor("lo", F, [], [0.0]), helper.make_tensor("hi", F, [], [6.0])]
    used = [i for i in inits if i.name in node.input]
    t = count_file(save(tmp_path, [node], [x_input(*inputs)], ["y"], used, opset=17))
    assert t.layers[0].output_shape == out
    assert t.totals.flops == flops and t.totals.macs == 0 and not t.uncounted


def test_conv_transpose_counts_per_input_element(tmp_path: Path) -> None:
    # C_in 4 -> C_out 6 (group 2: 3 per group), 3x3 stride 2 on 5x5: MACs per input element
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], group=2)
    t = count_file(save(tmp_path, [node], [x_input(1, 4, 5, 5)], ["y"], [weight("w", 4, 3, 3,
                                                                                 3)]))
    assert t.layers[0].output_shape == (1, 6, 11, 11)  # (5 - 1) x 2 + 3
    assert t.totals.macs == 1 * 4 * 5 * 5 * 3 * 3 * 3
    assert t.totals.params == 4 * 3 * 3 * 3


def test_grouped_conv_and_mismatch(tmp_path: Path) -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=4)
    t = count_file(save(tmp_path, [node], [x_input(1, 8, 6, 6)], ["y"], [weight("w", 8, 2, 3,
                                                                                 3)]))
    assert t.totals.macs == 1 * 8 * 4 * 4 * 2 * 3 * 3  # C_in / groups = 2
    bad = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1")
    path = save(tmp_path, [bad], [x_input(1, 3, 6, 6)], ["y"], [weight("w", 8, 2, 3, 3)])
    with pytest.raises(OnnxError, match=r"node 'conv1' \(Conv\): input 1x3x6x6 does not fit "
                                        r"weight 8x2x3x3"):
        count_file(path)


def test_einsum_contraction(tmp_path: Path) -> None:
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="bhqd,bhkd->bhqk")
    t = count_file(save(tmp_path, [node], [x_input(2, 3, 5, 4, name="a"),
                                           x_input(2, 3, 7, 4, name="b")], ["y"]))
    assert t.totals.macs == 2 * 3 * 5 * 7 * 4 and not t.uncounted


def test_uncounted_operator_is_listed_never_zero(tmp_path: Path) -> None:
    node = helper.make_node("LRN", ["x"], ["y"], size=3, name="lrn")
    path = save(tmp_path, [node, helper.make_node("Relu", ["y"], ["z"])],
                [x_input(1, 4, 5, 5)], ["z"])
    t = count_file(path)
    assert t.uncounted == {"onnx::LRN": 1}
    assert t.layers[0].uncounted == {"onnx::LRN": 1}
    assert t.layers[1].flops == 100  # the ReLU after it is counted
    with pytest.raises(UnsupportedOpError, match=r"onnx::LRN \(1x\)"):
        count_file(path, strict=True)


def test_shared_and_unused_initializers(tmp_path: Path) -> None:
    """A weight read twice (directly and through an Identity, as exporters deduplicate
    equal tensors) is one parameter tensor; an initializer nobody reads is not counted."""
    nodes = [helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("MatMul", ["h", "w2"], ["y"])]
    t = count_file(save(tmp_path, nodes, [x_input(2, 4)], ["y"],
                        [weight("w", 4, 4), weight("unused", 100)]))
    assert [r.params for r in t.layers] == [16, 0]
    assert t.totals.macs == 2 * (2 * 4 * 4)


def test_initializers_listed_as_inputs(tmp_path: Path) -> None:
    """IR 3 (and keep_initializers_as_inputs) lists weights among the graph's inputs."""
    node = helper.make_node("Gemm", ["x", "w"], ["y"])
    inputs = [x_input(2, 4), helper.make_tensor_value_info("w", F, [4, 3])]
    t = count_file(save(tmp_path, [node], inputs, ["y"], [weight("w", 4, 3)], ir_version=3,
                        opset=11))
    assert t.totals.params == 12 and t.totals.macs == 2 * 3 * 4 and t.input == (2, 4)


def test_shape_arithmetic_is_folded(tmp_path: Path) -> None:
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape (a flatten with a dynamic batch)
    and an Expand to a computed shape are computed once: no rows."""
    i64 = TensorProto.INT64
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "zeros"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Shape", ["bias"], ["bs"]),
             helper.make_node("Expand", ["half", "bs"], ["b2"]),
             helper.make_node("Add", ["flat", "b2"], ["y"])]
    inits = [helper.make_tensor("zero", i64, [], [0]), helper.make_tensor("zeros", i64, [1],
                                                                            [0]),
             helper.make_tensor("minus1", i64, [1], [-1]), weight("bias", 48),
             helper.make_tensor("half", F, [1], [0.5])]
    t = count_file(save(tmp_path, nodes, [x_input("N", 3, 4, 4)], ["y"], inits), batch=2)
    assert [r.kind for r in t.layers] == ["Reshape", "Add"]
    assert t.layers[0].input_shape == ((2, 3, 4, 4),)  # the data, not its target shape
    assert t.layers[1].output_shape == (2, 48) and t.layers[1].flops == 96
    # the Expand's output is made from `half` (1 value); `bias` is read for its shape only
    assert t.totals.params == 1


def test_row_names_from_scopes() -> None:
    assert module_path(["layer1", "layer1.0", "conv1"]) == "layer1.0.conv1"
    assert module_path(["layer2", "layer2.0", "downsample", "downsample.0"]) == (
        "layer2.0.downsample.0")
    assert module_path(["", "layer1", "layer1.0", "layer1.0.bn1"]) == "layer1.0.bn1"
    from cnncost.onnx.graph import Node

    def node(name: str, scopes: tuple[str, ...] | None = None) -> Node:
        return Node(3, name, "Conv", "", (), (), {}, scopes)

    assert row_name(node("/layer1/layer1.0/conv1/Conv")) == "layer1.0.conv1.Conv"
    assert row_name(node("node_Conv_7", ("", "features", "features.0", "conv2d"))) == (
        "features.0.Conv")
    assert row_name(node("")) == "Conv_3"
    assert row_name(node("stem_conv")) == "stem_conv"


def test_depth_groups_by_scope(tmp_path: Path) -> None:
    t = count_file(small_cnn(tmp_path))
    assert [b.name for b in collapse(t.layers, 1)] == ["conv", "bn", "relu", "pool",
                                                       "Flatten", "fc"]


def test_every_registered_operator_has_a_docstring() -> None:
    for name, op in ONNX_OPS.items():
        assert op.lower.__doc__, name

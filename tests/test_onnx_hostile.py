"""Bad and hostile ONNX files are refused with one line naming the file (and node).

Not ONNX at all, truncated, empty, declaring huge dims, initializers that do not hold what
they declare, cycles, values nobody makes, operators and opsets onnx does not know, custom
operators without shapes, data-dependent shapes, external data missing, truncated or
outside the model's folder, nesting deeper than protobuf parses, more nodes than the
budget: each an OnnxError (exit code 2 at the command line), never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from cnncost.errors import CnnCostError, OnnxError  # noqa: E402
from cnncost.onnx import model as onnx_model  # noqa: E402
from cnncost.onnx.engine import count_file  # noqa: E402

F = TensorProto.FLOAT


def build(nodes: Sequence[Any], dims: Sequence[Any] = (1, 4), inits: Sequence[Any] = (),
          opset: int = 17, outputs: Sequence[str] = ("y",),
          domains: Sequence[tuple[str, int]] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", [helper.make_tensor_value_info("x", F,
                                                                               list(dims))],
                              [helper.make_tensor_value_info(o, F, None) for o in outputs],
                              list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def write(tmp: Path, data: bytes | onnx.ModelProto, name: str = "m.onnx") -> Path:
    path = tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


RELU = helper.make_node("Relu", ["x"], ["y"])


@pytest.mark.parametrize(("data", "message"), [
    (b"hello, I am a text file\n", "not an ONNX model"),
    (b"", r"not an ONNX model \(no graph, IR version or opset\)"),
    (b"PK\x03\x04" + b"\x00" * 60, "not an ONNX model"),  # a zip (a PyTorch checkpoint)
    (b"\xff" * 64, "not an ONNX model"),
], ids=["text", "empty", "zip", "garbage"])
def test_not_onnx(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(OnnxError, match=message):
        count_file(write(tmp_path, data))


def test_truncated(tmp_path: Path) -> None:
    w = helper.make_tensor("w", F, [4, 4], [0.5] * 16)
    whole = build([helper.make_node("MatMul", ["x", "w"], ["y"])], inits=[w])
    data = whole.SerializeToString()
    for cut in (len(data) // 2, len(data) - 3):
        with pytest.raises(OnnxError, match="not an ONNX model, or a truncated one"):
            count_file(write(tmp_path, data[:cut]))


@pytest.mark.parametrize(("dims", "message"), [
    ((1, 1 << 40), r"dims 1x1099511627776; expected each from 0 to 2,147,483,648"),
    ((1 << 20, 1 << 20, 1 << 20), r"more than 1,099,511,627,776"),
], ids=["dim", "elements"])
def test_huge_declared_dims(tmp_path: Path, dims: tuple[int, ...], message: str) -> None:
    with pytest.raises(OnnxError, match=message):
        count_file(write(tmp_path, build([RELU], dims)))


def test_huge_input_asked_for(tmp_path: Path) -> None:
    path = write(tmp_path, build([RELU], ("N", "C")))
    with pytest.raises(OnnxError, match="more than 1,099,511,627,776"):
        count_file(path, batch=1 << 20, input=(1 << 30,))


def test_initializer_that_does_not_hold_its_dims(tmp_path: Path) -> None:
    w = TensorProto(name="w", data_type=F, dims=[1000, 1000], raw_data=b"\x00" * 16)
    model = build([helper.make_node("MatMul", ["x", "w"], ["y"])], (1, 1000), [w])
    with pytest.raises(OnnxError, match=r"initializer 'w' declares 1000x1000 \(4,000,000 "
                                        r"bytes\) but stores 16"):
        count_file(write(tmp_path, model))


def test_cycle(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="add"),
             helper.make_node("Relu", ["y"], ["z"], name="relu")]
    with pytest.raises(OnnxError, match="the graph has a cycle through node"):
        count_file(write(tmp_path, build(nodes)))


def test_value_nobody_makes(tmp_path: Path) -> None:
    node = helper.make_node("Add", ["x", "ghost"], ["y"], name="add")
    with pytest.raises(OnnxError, match=r"node 'add' \(Add\) reads 'ghost', which no node, "
                                        "input or initializer of the graph defines"):
        count_file(write(tmp_path, build([node])))


def test_value_made_twice(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="a"),
             helper.make_node("Sigmoid", ["x"], ["y"], name="b")]
    with pytest.raises(OnnxError, match=r"node 'b' \(Sigmoid\) makes 'y', which node 'a'"):
        count_file(write(tmp_path, build(nodes)))


def test_unknown_operator_and_opset(tmp_path: Path) -> None:
    with pytest.raises(OnnxError, match=r"no operator 'Reluu' in opset 17"):
        count_file(write(tmp_path, build([helper.make_node("Reluu", ["x"], ["y"])])))
    with pytest.raises(OnnxError, match=r"ONNX opset 99 is outside the supported opsets 7 "
                                        "to"):
        count_file(write(tmp_path, build([RELU], opset=99)))
    with pytest.raises(OnnxError, match="outside the supported opsets"):
        count_file(write(tmp_path, build([RELU], opset=3)))


def test_custom_operator_without_shapes(tmp_path: Path) -> None:
    node = helper.make_node("FusedThing", ["x"], ["y"], domain="com.example", name="f")
    model = build([node], domains=[("com.example", 1)])
    with pytest.raises(OnnxError, match=r"node 'f' \(com.example::FusedThing\): its output "
                                        "shape is unknown"):
        count_file(write(tmp_path, model))


def test_data_dependent_shape(tmp_path: Path) -> None:
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
             helper.make_node("Cast", ["nz"], ["y"], to=F)]
    with pytest.raises(OnnxError, match=r"node 'nonzero' \(NonZero\): its output shape "
                                        "cannot be inferred before running"):
        count_file(write(tmp_path, build(nodes)))


def _external(tmp: Path, location: str = "w.bin") -> Path:
    w = TensorProto(name="w", data_type=F, dims=[64, 64], raw_data=b"\x00" * 4 * 4096)
    model = build([helper.make_node("MatMul", ["x", "w"], ["y"])], (1, 64), [w])
    path = tmp / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location=location,
                    size_threshold=0)
    return path


def test_external_data(tmp_path: Path) -> None:
    path = _external(tmp_path)
    assert count_file(path).totals.params == 64 * 64  # counted without loading it
    data = tmp_path / "w.bin"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(OnnxError, match=r"initializer 'w' \(external data 'w.bin'\): w.bin "
                                        r"holds 100 bytes, too few.*truncated"):
        count_file(path)
    data.unlink()
    with pytest.raises(OnnxError, match=r"w.bin is missing; keep the external data files "
                                        "beside the model"):
        count_file(path)


def test_external_data_outside_the_folder(tmp_path: Path) -> None:
    path = _external(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../etc/passwd"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxError, match="the location leaves the model's folder"):
        count_file(path)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    n, size = len(payload), b""
    while True:
        byte, n = n & 0x7F, n >> 7
        size += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([number << 3 | 2]) + size + payload


def test_nesting_deeper_than_protobuf_parses(tmp_path: Path) -> None:
    """If nodes nested 200 deep, written byte by byte (onnx.helper itself refuses them)."""
    graph = helper.make_graph([RELU], "leaf", [], []).SerializeToString()
    head = helper.make_node("If", ["c"], ["y"]).SerializeToString()
    attr = onnx.AttributeProto(name="then_branch", type=onnx.AttributeProto.GRAPH)
    for _ in range(200):  # graph.node (1) -> node.attribute (5) -> attribute.g (6)
        node = head + _field(5, attr.SerializeToString() + _field(6, graph))
        graph = _field(1, node)
    model = helper.make_model(helper.make_graph([], "g", [], []),
                              opset_imports=[helper.make_opsetid("", 17)])
    data = model.SerializeToString() + _field(7, graph)  # a second graph field merges in
    with pytest.raises(OnnxError, match="not an ONNX model, or a truncated one"):
        count_file(write(tmp_path, data))


def test_node_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_model, "MAX_NODES", 3)
    nodes = [helper.make_node("Relu", [a], [b]) for a, b in zip("xabc", "abcy", strict=True)]
    with pytest.raises(OnnxError, match="4 nodes, more than 3"):
        count_file(write(tmp_path, build(nodes)))


def test_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(CnnCostError, match="is a folder"):
        count_file(tmp_path / "dir.onnx")
    with pytest.raises(CnnCostError, match="no such file"):
        count_file(tmp_path / "absent.onnx")


@pytest.mark.slow  # a fresh interpreter
def test_counting_imports_no_torch(tmp_path: Path) -> None:
    path = write(tmp_path, build([RELU]))
    code = ("import sys\nfrom cnncost.onnx.engine import count_file\n"
            f"t = count_file({str(path)!r})\n"
            "print(t.totals.flops, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["4", "False"]


def test_constant_broadcast_is_not_made(tmp_path: Path) -> None:
    """A Where of three 1024-value constants shaped to broadcast to 1024^3 values, beside a
    node whose shape needs running: computing the small constants (which a shape inference
    that cannot follow starts) must not make it (8 GiB); the file is refused for the
    data-dependent node."""
    i64 = TensorProto.INT64
    consts = [helper.make_tensor("c", TensorProto.BOOL, [1024, 1, 1], [True] * 1024),
              helper.make_tensor("a", i64, [1, 1024, 1], [1] * 1024),
              helper.make_tensor("b", i64, [1, 1, 1024], [2] * 1024)]
    nodes = [helper.make_node("Where", ["c", "a", "b"], ["w"]),
             helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
             helper.make_node("Cast", ["nz"], ["y"], to=F)]
    with pytest.raises(OnnxError, match=r"node 'nonzero' \(NonZero\): its output shape "
                                        "cannot be inferred before running"):
        count_file(write(tmp_path, build(nodes, inits=consts)))


@pytest.mark.slow  # big hostile input: 20,000 nodes (a walk per node would hang on it)
def test_long_constant_chain(tmp_path: Path) -> None:
    """20,000 folded Adds, each of one more 1-value initializer, read by one node: every
    initializer is found behind it once (the walk visits each value once, never the chain
    again per node), so the params are 20,001."""
    n = 20_000
    inits = [helper.make_tensor(f"c{i}", F, [1], [1.0]) for i in range(n + 1)]
    nodes = [helper.make_node("Add", [f"s{i}" if i else "c0", f"c{i + 1}"], [f"s{i + 1}"])
             for i in range(n)]
    nodes.append(helper.make_node("Add", ["x", f"s{n}"], ["y"]))
    t = count_file(write(tmp_path, build(nodes, inits=inits)))
    assert len(t.layers) == 1 and t.totals.params == n + 1

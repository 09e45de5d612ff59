"""A model written as ONNX through PyTorch's exporter: a compiled spec (or any nn.Module) that
opens in Netron and runs in ONNX Runtime. (It imports torch: it runs the model.)

:func:`export_module` traces the module with ``torch.onnx.export(..., dynamo=True)`` (torch's
current exporter; it needs onnxscript), with a dynamic batch named ``batch`` by default. The
file is the module as it is: torch's optimiser is not run, because it folds each batch norm
into the conv before it (a deployment rewrite; ONNX Runtime makes the same one when it loads
the file), and then the file no longer has the spec's layers or parameters. What the
unoptimised export leaves that the module does not compute is removed here: the all-zero
bias a conv without one gets (an Expand of 0 to the weight's channels), and the nodes only
it used. A spec's graph ops (add, concat, ...) are called as modules at their layers' paths,
so every node is scoped under its layer (``layer1.0.add.Add``). Counting the file then gives
the spec's parameters and MACs layer by layer (tests/test_onnx_export.py holds that over every
bundled spec).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import fx, nn

from cnncost.errors import ModelRunError, UsageError
from cnncost.graph.build import META_KEY

if TYPE_CHECKING:
    import onnx

MAX_PROTO_BYTES = (2 << 30) - 1  # one protobuf message; larger models need external data
BATCH_DIM = "batch"


@dataclass(frozen=True)
class Exported:
    """An exported model: the file's bytes and what they hold."""

    data: bytes
    nodes: int
    opset: int
    input_shape: tuple[int, ...]  # the example input's (batch 2 where the batch is dynamic)
    dynamic_batch: bool


def require_exporter() -> None:
    """The exporter's dependencies, or a one-line error saying how to install them."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"exporting ONNX needs {' and '.join(missing)}: pip install "
                         "'cnncost[onnxruntime]'")


def export_module(model: nn.Module, sample: tuple[int, ...], *, dynamic_batch: bool = True,
                  opset: int | None = None, batch: int = 1, label: str = "model") -> Exported:
    """The module (in eval mode, float32) as an ONNX file's bytes: its input one batch of
    ``sample`` (``batch``, or 2 with a dynamic batch: a batch of 1 is specialised)."""
    import torch

    require_exporter()
    n = 2 if dynamic_batch else batch
    x = torch.randn((n, *sample))
    kwargs: dict[str, Any] = {"dynamo": True, "optimize": False, "input_names": ["input"],
                              "output_names": ["output"], "verbose": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim(BATCH_DIM)},)
    model = scoped(model)
    was_training = model.training
    model.eval()
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(model, (x,), **kwargs)
    except Exception as exc:  # the exporter's own errors come as many kinds
        hint = ("; try --static-batch (the model fixes its batch somewhere)"
                if dynamic_batch else "")
        raise ModelRunError(f"{label}: torch.onnx.export failed: {_first_line(exc)}{hint}"
                            ) from None
    finally:
        model.train(was_training)
    if program is None:  # (only when asked to write the file itself)
        raise ModelRunError(f"{label}: torch.onnx.export returned no program")
    proto = program.model_proto
    _drop_zero_biases(proto)
    size = proto.ByteSize()
    if size > MAX_PROTO_BYTES:
        raise UsageError(f"{label}: the ONNX file would hold {size:,} bytes, more than one "
                         "protobuf message can (2 GiB); export it with torch.onnx.export and "
                         "external_data=True")
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return Exported(proto.SerializeToString(), len(proto.graph.node), opset_used, (n, *sample),
                    dynamic_batch)


def scoped(model: nn.Module) -> nn.Module:
    """A compiled spec with its graph ops (add, mul, concat, slice: functions in its graph)
    called as modules at their layers' paths, so the exporter scopes each node under its
    layer (``layer1.0.add``) as it does a module's; in place. Any other module as it is."""
    if not isinstance(model, fx.GraphModule):
        return model
    ops = [n for n in model.graph.nodes if n.op == "call_function" and META_KEY in n.meta]
    for node in ops:
        path = node.meta[META_KEY].path
        model.add_submodule(path, _GraphOp(node.target, node.kwargs))
        with model.graph.inserting_before(node):
            call = model.graph.call_module(path, node.args)
        call.meta = dict(node.meta)
        node.replace_all_uses_with(call)
        model.graph.erase_node(node)
    if ops:
        model.recompile()
    return model


class _GraphOp(nn.Module):
    """A spec's graph op as a module: its function, with its keyword arguments."""

    def __init__(self, fn: Any, kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.fn, self.kwargs = fn, dict(kwargs)

    def forward(self, *args: Any) -> Any:
        return self.fn(*args, **self.kwargs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints its progress and warns about its own internals: neither is
    cnncost's output (library code never prints)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _drop_zero_biases(proto: onnx.ModelProto) -> None:
    """Remove the bias input of every Conv/ConvTranspose whose bias is computed from
    constants and is all zeros, then the nodes nothing reads any more."""
    from cnncost.onnx.fold import evaluate, folded
    from cnncost.onnx.graph import Node, Value

    graph = proto.graph
    nodes = [Node(i, n.name, n.op_type, n.domain, tuple(n.input), tuple(n.output),
                  _attrs(n), None) for i, n in enumerate(graph.node)]
    inits = {t.name: Value(tuple(t.dims), t.data_type) for t in graph.initializer}
    fold = folded(nodes, inits)
    biases = {n.input[2] for n in graph.node
              if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 2 and n.input[2]
              and n.input[2] not in inits}
    if not biases:
        return
    from onnx import numpy_helper

    # CastLike reads only its second input's type: float32, as exported here (the inputs'
    # and the initializers' own types are known; intermediate values' are not inferred).
    types = _Float32({**inits, **{i.name: Value((), i.type.tensor_type.elem_type)
                                  for i in graph.input}})
    small = {t.name: numpy_helper.to_array(t) for t in graph.initializer
             if len(t.raw_data) <= 4096 and not t.external_data}
    values = evaluate(nodes, fold, small, types, limit=1 << 16)  # a bias: one per channel
    zero = {b for b in biases if b in values and not values[b].any()}
    for n in graph.node:
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 2 and n.input[2] in zero:
            del n.input[2]
    _remove_unread(graph)


class _Float32(dict[str, Any]):
    """Value types where every value not listed is a float32 (an export in float32)."""

    def get(self, key: Any, default: Any = None) -> Any:
        from cnncost.onnx.graph import Value

        return super().get(key, Value((), 1))


def _attrs(n: onnx.NodeProto) -> dict[str, Any]:
    from onnx.helper import get_attribute_value

    return {a.name: get_attribute_value(a) for a in n.attribute}


def _remove_unread(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nothing reads (not a graph output), until none is left."""
    while True:
        read = {v for n in graph.node for v in n.input} | {o.name for o in graph.output}
        dead = [i for i, n in enumerate(graph.node) if not any(o in read for o in n.output)]
        if not dead:
            return
        for i in reversed(dead):
            del graph.node[i]

"""An ONNX file read for counting: checked, its sizes set, its shapes inferred (no torch).

:func:`load` reads the file within a budget (its size, nodes, dims; like a spec's limits),
refuses what is not a well-formed graph (not ONNX, truncated, a value read before it is
made or never made, a cycle, an opset or operator onnx does not know, external data that is
missing or does not hold what its tensor declares), sets the inputs' symbolic sizes from
``batch`` and ``input``, and runs onnx's shape inference. Every error is a one-line
:class:`OnnxError` naming the file and, where there is one, the node.

The weights themselves are never loaded: a tensor's dims and type are what counting needs,
so inference runs on a copy of the graph whose large initializers are declared inputs of
their shape (small ones keep their values: a Reshape's target shape is one), and external
data is checked (its file is there and long enough) but not read.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.errors import OnnxError
from cnncost.io import read_bytes
from cnncost.onnx.fold import evaluate, folded
from cnncost.onnx.graph import Graph, Node, Shape, Value
from cnncost.onnx.sizes import declared, input_sizes
from cnncost.onnx.tensors import check_size, initializers

if TYPE_CHECKING:
    import onnx

MAX_FILE_BYTES = (2 << 30) - 1  # protobuf cannot parse a message of 2 GiB or more
MAX_NODES = 200_000
MIN_OPSET = 7  # the oldest opset ONNX Runtime runs
SMALL_ELEMENTS = 1024  # initializers this small keep their values for shape inference

@dataclass(frozen=True)
class Source:
    """An ONNX file read and checked, before its sizes are set (:meth:`sized` infers its
    shapes at some sizes; a sweep reads the file once and sizes it at every point)."""

    file: str
    model: Any  # the onnx.ModelProto, functions inlined
    opsets: Mapping[str, int]
    feeds: tuple[Any, ...]  # the inputs' ValueInfoProtos
    initializers: Mapping[str, Value]
    nodes: tuple[Node, ...]  # every value made before it is read
    folded: frozenset[int]

    @property
    def symbols(self) -> tuple[str, ...]:
        """The names of the inputs' symbolic dims (the first input's leading one, the
        batch, apart), in order: what ``dims`` may set."""
        first = self.feeds[0].name
        found: list[str] = []
        for feed in self.feeds:
            for i, d in enumerate(declared(self.file, feed)):
                if isinstance(d, str) and d and d not in found and (feed.name, i) != (first, 0):
                    found.append(d)
        head = declared(self.file, self.feeds[0])
        return tuple(d for d in found if not (head and d == head[0]))

    def sized(self, batch: int | None = None, input: Shape | None = None,
              dims: Mapping[str, int] | None = None) -> Graph:
        """The graph with every value's static type: the first input's leading dim is
        ``batch`` where symbolic (default 1), its other dims ``input`` (one sample); ``dims``
        sets symbolic dims by name (a sweep's variables)."""
        import onnx

        file, model = self.file, self.model
        shapes, fixed_batch = input_sizes(file, self.feeds, batch, input, dims or {})
        elem = {f.name: f.type.tensor_type.elem_type for f in self.feeds}
        inputs = {name: Value(shape, elem[name]) for name, shape in shapes.items()}
        order, fold, initializers = self.nodes, self.folded, self.initializers
        computed: dict[str, Any] = {}
        declared: dict[str, Value] = {}
        inferred = _infer(file, onnx, model, inputs, initializers, computed, declared)
        if any(o and o not in inferred for n in order for o in n.outputs):
            # a shape inference could not follow, maybe through shape arithmetic (axes or a
            # shape computed from constants): compute what is small and constant, infer again
            computed = evaluate(order, fold, _small_values(model.graph),
                                {**inferred, **inputs, **initializers})
            if computed:
                inferred = _infer(file, onnx, model, inputs, initializers, computed, declared)
        for _ in range(MAX_PASSES):  # operators onnx infers no shape for (GroupNormalization)
            found = _same_shapes(order, {**inferred, **inputs, **initializers})
            if not found:
                break
            declared.update(found)
            inferred = _infer(file, onnx, model, inputs, initializers, computed, declared)
        values = {**inferred, **initializers, **inputs}
        for value in values.values():
            check_size(file, value.shape, "a value")
        return Graph(file=file, name=model.graph.name, producer=_producer(model),
                     opsets=self.opsets, inputs=tuple(shapes),
                     outputs=tuple(o.name for o in model.graph.output), nodes=order,
                     values=values, initializers=initializers, folded=fold,
                     fixed_batch=fixed_batch)


def load(path: str | Path, batch: int | None = None, input: Shape | None = None,
         dims: Mapping[str, int] | None = None) -> Graph:
    """Read, check and shape-infer the ONNX file at ``path`` (:func:`read`, then
    :meth:`Source.sized`)."""
    return read(path).sized(batch, input, dims)


def read(path: str | Path) -> Source:
    """Read and check the ONNX file at ``path`` (its structure, opsets, operators,
    initializers and external data), before any size is set."""
    import_onnx()
    file = str(path)
    model = parse(file, read_bytes(path, MAX_FILE_BYTES, "ONNX file"))
    if model.functions:  # exporters write functions (onnxscript's); count their bodies
        from onnx.inliner import inline_local_functions

        model = _guarded(file, "inlining its functions", inline_local_functions, model)
    graph = model.graph
    opsets = _opsets(file, model)
    if len(graph.node) > MAX_NODES:
        raise OnnxError(f"{file}: {len(graph.node):,} nodes, more than {MAX_NODES:,}")
    if not graph.node:
        raise OnnxError(f"{file}: the graph has no nodes; nothing to count")
    inits = initializers(file, graph)
    feeds = tuple(i for i in graph.input if i.name not in inits)
    if not feeds:
        raise OnnxError(f"{file}: the graph has no inputs (every value is a constant)")
    for feed in feeds:
        declared(file, feed)
    nodes = _nodes(file, graph, opsets)
    order = tuple(nodes[i] for i in topological(file, nodes, [*(f.name for f in feeds),
                                                              *inits]))
    return Source(file, model, opsets, feeds, inits, order, folded(order, inits))


def import_onnx() -> Any:
    """The onnx package, or a one-line error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise OnnxError("reading ONNX files needs the onnx package: pip install "
                        "'cnncost[onnx]'") from None
    return onnx


def parse(file: str, data: bytes) -> onnx.ModelProto:
    """The bytes as a ModelProto, or an error saying the file is not a whole ONNX model."""
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxError(f"{file}: not an ONNX model, or a truncated one (protobuf: "
                        f"{why})") from None
    if not model.HasField("graph") or model.ir_version <= 0 or not model.opset_import:
        raise OnnxError(f"{file}: not an ONNX model (no graph, IR version or opset)")
    return model


def _guarded(file: str, what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # onnx's C++ errors come as several kinds
        raise OnnxError(f"{file}: {what} failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _producer(model: onnx.ModelProto) -> str:
    return " ".join(p for p in (model.producer_name, model.producer_version) if p)


def _opsets(file: str, model: onnx.ModelProto) -> dict[str, int]:
    """The opset of each domain; the ONNX domain's within what onnx and cnncost know."""
    import onnx.defs

    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version
              for o in model.opset_import}
    newest = onnx.defs.onnx_opset_version()
    version = opsets.get("")
    if version is not None and not MIN_OPSET <= version <= newest:
        raise OnnxError(f"{file}: ONNX opset {version} is outside the supported opsets "
                        f"{MIN_OPSET} to {newest} (the installed onnx "
                        f"{onnx.__version__} knows up to {newest})")
    return opsets


def _nodes(file: str, graph: onnx.GraphProto, opsets: Mapping[str, int]) -> list[Node]:
    """The graph's nodes with their attributes as Python values; an operator onnx does not
    know in the ONNX domain is refused, naming the node."""
    import onnx.defs
    from onnx.helper import get_attribute_value

    nodes = []
    known: dict[tuple[str, str], bool] = {}
    for i, n in enumerate(graph.node):
        domain = "" if n.domain == "ai.onnx" else n.domain
        attrs: dict[str, Any] = {}  # filled below (the node names itself in errors first)
        node = Node(i, n.name, n.op_type, domain, tuple(n.input), tuple(n.output), attrs,
                    _scopes(n) if n.metadata_props else None)
        if domain not in opsets:
            raise OnnxError(f"{file}: {node.label} uses domain {domain or 'ai.onnx'!r}, "
                            "which the model imports no opset of")
        if domain in ("", "ai.onnx.ml"):
            key = (domain, n.op_type)
            if key not in known:
                known[key] = onnx.defs.has(n.op_type, opsets[domain], domain)
            if not known[key]:
                raise OnnxError(f"{file}: {node.label}: no operator {n.op_type!r} in "
                                f"opset {opsets[domain]} of domain {domain or 'ai.onnx'!r}")
        try:
            attrs.update((a.name, get_attribute_value(a)) for a in n.attribute)
        except ValueError as exc:
            raise OnnxError(f"{file}: {node.label}: {_first_line(exc)}") from None
        nodes.append(node)
    return nodes


def _scopes(n: onnx.NodeProto) -> tuple[str, ...] | None:
    """The dynamo exporter's ``pkg.torch.onnx.name_scopes`` of a node, if it wrote them."""
    import ast

    for prop in n.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                return None
            if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
                return tuple(scopes)
    return None


def topological(file: str, nodes: Sequence[Node], defined: Iterable[str]) -> list[int]:
    """An order of the nodes where every value is made before it is read (the file's own
    where it is one); a value read but never made, made twice, or a cycle is refused."""
    made: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.outputs:
            if not out:
                continue
            if out in made:
                raise OnnxError(f"{file}: {node.label} makes {out!r}, which "
                                f"{nodes[made[out]].label} makes too")
            made[out] = i
    ready = set(defined)
    for out, i in made.items():
        if out in ready:
            raise OnnxError(f"{file}: {nodes[i].label} makes {out!r}, which is an input "
                            "or initializer of the graph")
    waits: list[set[str]] = []
    for node in nodes:
        needs = {v for v in node.inputs if v and v not in ready}
        for v in needs:
            if v not in made:
                raise OnnxError(f"{file}: {node.label} reads {v!r}, which no node, input "
                                "or initializer of the graph defines")
        waits.append(needs)
    if all(made[v] < i for i, needs in enumerate(waits) for v in needs):
        return list(range(len(nodes)))  # the file's order is one already (the rule)
    return _kahn(file, nodes, waits, made)


def _kahn(file: str, nodes: Sequence[Node], waits: list[set[str]],
          made: Mapping[str, int]) -> list[int]:
    readers: dict[str, list[int]] = {}
    for i, needs in enumerate(waits):
        for v in needs:
            readers.setdefault(v, []).append(i)
    left = [len(needs) for needs in waits]
    queue = [i for i, n in enumerate(left) if n == 0]  # a heap: the file's order where free
    order: list[int] = []
    while queue:
        i = heapq.heappop(queue)
        order.append(i)
        for out in nodes[i].outputs:
            for j in readers.get(out, ()):
                left[j] -= 1
                if left[j] == 0:
                    heapq.heappush(queue, j)
    if len(order) < len(nodes):
        stuck = next(i for i, n in enumerate(left) if n)
        raise OnnxError(f"{file}: the graph has a cycle through {nodes[stuck].label} (a "
                        "value it reads depends on its own output)")
    return order


# --------------------------------------------------------------------------- inference


def _infer(file: str, onnx: Any, model: onnx.ModelProto, inputs: Mapping[str, Value],
           initializers: Mapping[str, Value], computed: Mapping[str, Any],
           declared: Mapping[str, Value]) -> dict[str, Value]:
    """onnx's shape inference on a light copy of the model (see :func:`_light`), with the
    inputs at their set sizes and the ``declared`` values' types given: every value's
    static type."""
    from onnx import helper

    light = _light(onnx, model, inputs, initializers, computed)
    light.graph.value_info.extend(helper.make_tensor_value_info(name, v.elem_type, v.shape)
                                  for name, v in declared.items())
    inferred = _guarded(file, "shape inference", onnx.shape_inference.infer_shapes, light,
                        True, True, True)
    values: dict[str, Value] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.output):
        found = _static(vi)
        if found is not None:
            values[vi.name] = found
    for t in light.graph.initializer:  # small initializers and computed values
        values.setdefault(t.name, Value(tuple(t.dims), t.data_type))
    return values


def _light(onnx: Any, model: onnx.ModelProto, inputs: Mapping[str, Value],
           initializers: Mapping[str, Value], computed: Mapping[str, Any]) -> onnx.ModelProto:
    """The model without its weights: large initializers become inputs of their shape,
    ``computed`` values initializers in place of the nodes that make them, outputs keep
    their element type but not their shape (inferred afresh)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    g = light.graph
    g.name = graph.name
    g.node.extend(n for n in graph.node
                  if not (n.output and all(o in computed for o in n.output if o)))
    declared = [helper.make_tensor_value_info(name, v.elem_type, v.shape)
                for name, v in inputs.items()]
    inline = {t.name for t in graph.initializer
              if math.prod(t.dims) <= SMALL_ELEMENTS and not (t.data_location == 1
                                                             or t.external_data)}
    g.initializer.extend(t for t in graph.initializer if t.name in inline)
    g.initializer.extend(numpy_helper.from_array(a, name) for name, a in computed.items())
    declared += [helper.make_tensor_value_info(name, v.elem_type, v.shape)
                 for name, v in initializers.items()
                 if name not in inline or model.ir_version < 4]  # IR 3: inputs too
    g.input.extend(declared)
    for o in graph.output:
        if o.type.HasField("tensor_type"):
            g.output.append(helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type,
                                                          None))
        else:
            g.output.append(o)
    return light


# Operators whose output is shaped like their first input (norms, activations): where onnx
# infers no shape for one (a function-defined operator without an inference function), its
# input's is its output's.
SAME_SHAPE_OPS = frozenset((
    "GroupNormalization", "LayerNormalization", "InstanceNormalization", "BatchNormalization",
    "RMSNormalization", "LpNormalization", "MeanVarianceNormalization", "Relu", "LeakyRelu",
    "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Gelu",
    "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Swish", "Erf", "Clip", "Softmax",
    "LogSoftmax", "Hardmax", "Dropout", "Identity", "Shrink"))
MAX_PASSES = 8


def _same_shapes(order: Sequence[Node], values: Mapping[str, Value]) -> dict[str, Value]:
    """The first outputs of shape-preserving operators that have no inferred shape, where
    their input has one."""
    found = {}
    for n in order:
        out = n.outputs[0] if n.outputs else ""
        if (n.op in SAME_SHAPE_OPS and out and out not in values and n.inputs
                and n.inputs[0] in values):
            found[out] = values[n.inputs[0]]
    return found


def _small_values(graph: onnx.GraphProto) -> dict[str, Any]:
    """The values of the small initializers stored in the file (shape arithmetic reads
    them); weights are never read."""
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer
            if math.prod(t.dims) <= SMALL_ELEMENTS and not (t.data_location == 1
                                                           or t.external_data)}


def _static(vi: onnx.ValueInfoProto) -> Value | None:
    """A value's type where it is a tensor of known rank and sizes."""
    if not vi.type.HasField("tensor_type"):
        return None
    tensor = vi.type.tensor_type
    if not tensor.HasField("shape") or not all(d.HasField("dim_value")
                                               for d in tensor.shape.dim):
        return None
    return Value(tuple(d.dim_value for d in tensor.shape.dim), tensor.elem_type)

"""Constant nodes of an ONNX graph: which are folded, and the small values they compute.

A node is *folded* when it computes only from constants: initializers, Constant nodes,
other folded nodes, and the shapes or element types of anything (shapes are static once
the sizes are set). A runtime computes such a node once, when it loads the model, so it is
no row of the cost table. Random operators are never folded.

Where onnx's shape inference cannot follow a shape computed this way (an ``Expand`` to a
computed shape, a ``Range``), :func:`evaluate` computes the small values with onnx's
reference evaluator, so the model is inferred again with them as initializers. It evaluates
only shape arithmetic whose output size is known to be small before it runs (a hostile
``ConstantOfShape`` of a huge shape is never made), and never reads a weight: a node that
needs a large initializer's values is left to inference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from cnncost.onnx.graph import Node, Value

# Operators whose output differs from run to run: never folded, whatever they read.
RANDOM_OPS = frozenset(("RandomNormal", "RandomUniform", "RandomNormalLike",
                        "RandomUniformLike", "Multinomial", "Bernoulli"))
# Input positions an operator reads only the shape or type of, never the values.
TYPE_ONLY: dict[str, frozenset[int]] = {
    "Shape": frozenset((0,)), "Size": frozenset((0,)), "CastLike": frozenset((1,)),
    "EyeLike": frozenset((0,))}
SMALL = 1024  # elements: values this small are computed (shape arithmetic)
# Shape arithmetic evaluated when its inputs are known: the output is at most as large as
# the inputs together or their broadcast (both checked before it runs), or (EXPANDING) its
# size is read from the input values before it runs.
_EVALUATED = frozenset((
    "Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Cast",
    "CastLike", "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "Where", "Not", "And", "Or", "Min", "Max", "Identity",
    "Transpose", "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin", "Floor", "Ceil",
    "Sqrt", "Sign", "Clip", "Split", "Sum"))
_EXPANDING = frozenset(("Expand", "ConstantOfShape", "Range", "Tile"))


def folded(nodes: Sequence[Node], constants: Iterable[str]) -> frozenset[int]:
    """The indices of the nodes that compute only from ``constants`` (initializers), each
    other, Constant nodes and shapes."""
    constant = set(constants)
    found = set()
    for node in nodes:
        skip = TYPE_ONLY.get(node.op, frozenset())
        if node.op in RANDOM_OPS or not all(
                not v or v in constant or i in skip for i, v in enumerate(node.inputs)):
            continue
        found.add(node.index)
        constant.update(o for o in node.outputs if o)
    return frozenset(found)


def evaluate(nodes: Sequence[Node], fold: frozenset[int], known: dict[str, np.ndarray],
             values: Mapping[str, Value], limit: int = SMALL) -> dict[str, np.ndarray]:
    """The small values (at most ``limit`` elements) the folded nodes compute, from
    ``known`` (small initializers' values) and the static ``values``' shapes and types; the
    nodes' outputs that could be computed, by name."""
    import numpy as np
    from onnx import helper

    computed: dict[str, np.ndarray] = {}
    have = dict(known)
    for node in nodes:
        if node.index not in fold:
            continue
        outs = _run(node, have, values, np, helper, limit)
        if outs is None:
            continue
        for name, value in zip(node.outputs, outs, strict=False):
            if name and value.size <= limit:
                have[name] = computed[name] = value
    return computed


def _run(node: Node, have: Mapping[str, Any], values: Mapping[str, Value], np: Any,
         helper: Any, limit: int) -> list[Any] | None:
    if node.op in ("Shape", "Size"):
        return _shape_of(node, values, np)
    if node.op == "Constant":
        return _constant(node, np, limit)
    if node.op not in _EVALUATED and node.op not in _EXPANDING:
        return None
    feeds = _feeds(node, have, values, np, helper)
    if feeds is None:
        return None
    if node.op in _EXPANDING:
        if _made_size(node, feeds, np) > limit:
            return None
    elif _broadcast_size(list(feeds.values()), np) > limit or sum(
            int(a.size) for a in feeds.values()) > limit:
        return None  # a broadcast or a concatenation larger than a shape's arithmetic
    return _evaluate(node, feeds, helper)


def _shape_of(node: Node, values: Mapping[str, Value], np: Any) -> list[Any] | None:
    """Shape (with its start and end) or Size of a value of static shape."""
    value = values.get(node.inputs[0])
    if value is None:
        return None
    if node.op == "Size":
        return [np.array(math.prod(value.shape), dtype=np.int64)]
    shape = np.array(value.shape, dtype=np.int64)
    return [shape[node.attrs.get("start", 0):node.attrs.get("end")]]


def _feeds(node: Node, have: Mapping[str, Any], values: Mapping[str, Value], np: Any,
           helper: Any) -> dict[str, Any] | None:
    """The node's inputs as arrays (an input read for its type only: an empty array of its
    type), or None where one is not known."""
    skip = TYPE_ONLY.get(node.op, frozenset())
    feeds: dict[str, Any] = {}
    for i, name in enumerate(node.inputs):
        if not name:
            continue
        if i in skip:
            value = values.get(name)
            if value is None:
                return None
            feeds[name] = np.zeros((0,), dtype=helper.tensor_dtype_to_np_dtype(
                value.elem_type))
        elif name in have:
            feeds[name] = have[name]
        else:
            return None
    return feeds


def _broadcast_size(arrays: list[Any], np: Any) -> int:
    """The elements of the inputs broadcast together (elementwise ops make that many);
    0 where they do not broadcast (the op's own error comes when it runs, or not at all)."""
    try:
        return math.prod(np.broadcast_shapes(*(a.shape for a in arrays)))
    except ValueError:
        return 0


def _constant(node: Node, np: Any, limit: int) -> list[Any] | None:
    from onnx import numpy_helper

    attrs = node.attrs
    if "value" in attrs and math.prod(attrs["value"].dims) <= limit:
        return [numpy_helper.to_array(attrs["value"])]
    for key, dtype in (("value_int", np.int64), ("value_float", np.float32)):
        if key in attrs:
            return [np.array(attrs[key], dtype=dtype)]
    for key, dtype in (("value_ints", np.int64), ("value_floats", np.float32)):
        if key in attrs and len(attrs[key]) <= limit:
            return [np.array(attrs[key], dtype=dtype)]
    return None


def _made_size(node: Node, feeds: Mapping[str, Any], np: Any) -> int:
    """The output size of an op that may make more than it reads, from its inputs' values
    (before it runs); a huge figure for anything unexpected."""
    args: list[Any] = [feeds.get(n) for n in node.inputs]
    try:
        if node.op == "ConstantOfShape":
            return _product(args[0])
        if node.op == "Expand":
            x, shape = args[0], [int(v) for v in args[1].reshape(-1)]
            rank = max(len(shape), x.ndim)
            dims = [1] * (rank - x.ndim) + list(x.shape)
            full = [1] * (rank - len(shape)) + shape
            return math.prod(max(a, b) for a, b in zip(dims, full, strict=True))
        if node.op == "Range":
            start, limit, delta = (float(np.asarray(a).reshape(-1)[0]) for a in args[:3])
            return max(0, math.ceil((limit - start) / delta)) if delta else 1 << 62
        if node.op == "Tile":
            return int(args[0].size) * _product(args[1])
    except (TypeError, ValueError, AttributeError, IndexError, OverflowError):
        pass
    return 1 << 62


def _product(values: Any) -> int:
    sizes = [int(v) for v in values.reshape(-1)]
    return math.prod(sizes) if all(v >= 0 for v in sizes) else 1 << 62


def _evaluate(node: Node, feeds: Mapping[str, Any], helper: Any) -> list[Any] | None:
    from onnx.reference import ReferenceEvaluator

    attrs = {k: v for k, v in node.attrs.items() if not hasattr(v, "node")}  # no subgraphs
    proto = helper.make_node(node.op, list(node.inputs), list(node.outputs), **attrs)
    try:
        outs = ReferenceEvaluator(proto).run(None, dict(feeds))
    except Exception:  # the evaluator's own errors: leave the value to inference
        return None
    return list(outs)

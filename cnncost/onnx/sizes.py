"""The sizes of an ONNX graph's inputs: symbolic dims set from ``--batch``, ``--input`` and
named dims (a sweep's variables); an input that needs a size and has none says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cnncost.errors import OnnxError
from cnncost.onnx.graph import FLOAT_TYPES, OTHER_TYPES, Shape
from cnncost.onnx.tensors import check_size, fmt

if TYPE_CHECKING:
    import onnx


def input_sizes(file: str, feeds: Sequence[onnx.ValueInfoProto], batch: int | None,
                input: Shape | None, dims: Mapping[str, int]
                ) -> tuple[dict[str, Shape], bool]:
    """Each input's concrete shape: the first input's leading dim is ``batch`` (1 where
    symbolic and not given), its other dims ``input``; ``dims`` sets symbolic dims by name;
    a symbolic dim shared by name takes the same value everywhere. Also: whether the file
    fixes the first input's batch."""
    shapes_of = {f.name: declared(file, f) for f in feeds}
    first = feeds[0].name
    head = shapes_of[first]
    known: dict[str, int] = {}  # symbolic name -> value
    wanted: dict[tuple[str, int], int] = {}
    fixed_batch = bool(head) and isinstance(head[0], int)
    if batch is not None and fixed_batch and head[0] != batch:
        raise OnnxError(f"{file}: input {first!r} has a fixed batch of {head[0]} "
                        f"({_shown(head)}); --batch {batch} needs a model exported with a "
                        "dynamic batch")
    for name, shape in shapes_of.items():  # every input's symbolic leading dim: the batch
        if shape and not isinstance(shape[0], int):
            wanted[(name, 0)] = batch if batch is not None else 1
            if shape[0]:
                known.setdefault(str(shape[0]), wanted[(name, 0)])
    for name, value in dims.items():
        if name in known:
            raise OnnxError(f"{file}: dim {name!r} is the batch; set it with --batch")
        known[name] = value
    if input is not None:
        _sample(file, first, head, input, known, wanted)
    symbols = {d for shape in shapes_of.values() for d in shape if isinstance(d, str) and d}
    unknown = [n for n in dims if n not in symbols]
    if unknown:
        raise OnnxError(f"{file}: no input has a dim named {unknown[0]!r}; the inputs' "
                        f"symbolic dims: {', '.join(sorted(symbols)) or 'none'}")
    shapes: dict[str, Shape] = {}
    for name, shape in shapes_of.items():
        shapes[name] = tuple(_resolve(file, name, i, d, known, wanted, name == first)
                             for i, d in enumerate(shape))
        check_size(file, shapes[name], f"input {name!r}")
        if 0 in shapes[name]:
            raise OnnxError(f"{file}: input {name!r} is {fmt(shapes[name])}: empty")
    return shapes, fixed_batch


def _sample(file: str, first: str, head: Sequence[int | str], input: Shape,
            known: dict[str, int], wanted: dict[tuple[str, int], int]) -> None:
    """``--input``: the first input's dims after the batch."""
    if len(input) != len(head) - 1:
        raise OnnxError(f"{file}: input {first!r} is {_shown(head)}: --input needs "
                        f"{len(head) - 1} sizes (one sample, no batch), got "
                        f"{'x'.join(map(str, input))}")
    for i, (d, v) in enumerate(zip(head[1:], input, strict=True), start=1):
        if isinstance(d, int) and d != v:
            raise OnnxError(f"{file}: input {first!r} is {_shown(head)}, its dim {i} fixed "
                            f"at {d}; --input {'x'.join(map(str, input))} needs a model "
                            "exported with that dim dynamic")
        wanted[(first, i)] = v
        if d:
            known.setdefault(str(d), v)


def declared(file: str, feed: onnx.ValueInfoProto) -> list[int | str]:
    """An input's dims as declared: a size, a symbolic name, or '' (unknown)."""
    tensor = feed.type.tensor_type if feed.type.HasField("tensor_type") else None
    if tensor is None:
        raise OnnxError(f"{file}: input {feed.name!r} is not a tensor (sequences, maps and "
                        "optionals are not counted)")
    if tensor.elem_type not in FLOAT_TYPES and tensor.elem_type not in OTHER_TYPES:
        raise OnnxError(f"{file}: input {feed.name!r} has unknown element type "
                        f"{tensor.elem_type}")
    if not tensor.HasField("shape"):
        raise OnnxError(f"{file}: input {feed.name!r} declares no shape, so its rank is "
                        "unknown; export the model with its input shapes")
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in tensor.shape.dim]


def _resolve(file: str, name: str, i: int, d: int | str, known: Mapping[str, int],
             wanted: Mapping[tuple[str, int], int], first: bool) -> int:
    if (name, i) in wanted:
        return wanted[(name, i)]
    if isinstance(d, int):
        return d
    if d and d in known:
        return known[d]
    label = f" {d!r}" if d else ""
    hint = "give --input" if first else "--input sets the first input's sizes only"
    raise OnnxError(f"{file}: input {name!r} has a symbolic dim{label} (dim {i}); {hint}")


def _shown(dims: Sequence[int | str]) -> str:
    """Declared dims: ``1x3x224x224``, with symbolic ones named: ``batch x 3 x 224 x 224``."""
    sep = "x" if all(isinstance(d, int) for d in dims) else " x "
    return sep.join(str(d) if isinstance(d, int) else (d or "?") for d in dims)



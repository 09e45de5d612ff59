"""ONNX tensors: size limits, and the initializers checked against what they declare
(external data included: its file is there, inside the model's folder, long enough), without
reading a weight. Their element types are cnncost.onnx.graph's.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnncost.errors import OnnxError
from cnncost.onnx.graph import FLOAT_TYPES, OTHER_TYPES, Shape, Value

if TYPE_CHECKING:
    import onnx

MAX_DIM = 1 << 31
MAX_ELEMENTS = 1 << 40  # in one tensor

_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2, 27: 6, 28: 6}  # stored packed
EXACT_CHECK_BYTES = 1 << 20  # tensors up to this size are checked value for value


def initializers(file: str, graph: onnx.GraphProto) -> dict[str, Value]:
    """Every initializer's type, its stored data checked against its dims (external data:
    the file is there, inside the model's folder, and long enough)."""
    found: dict[str, Value] = {}
    folder = Path(file).resolve().parent
    tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer)]
    dims_of = {s.values.name: tuple(s.dims) for s in graph.sparse_initializer}
    for t in tensors:
        name = t.name
        if not name:
            raise OnnxError(f"{file}: an initializer has no name")
        if name in found:
            raise OnnxError(f"{file}: initializer {name!r} is defined twice")
        shape = dims_of.get(name, tuple(t.dims))
        check_size(file, shape, f"initializer {name!r}")
        if t.data_type not in FLOAT_TYPES and t.data_type not in OTHER_TYPES:
            raise OnnxError(f"{file}: initializer {name!r} has unknown data type "
                            f"{t.data_type}")
        if name not in dims_of:
            if t.data_location == 1 or t.external_data:  # TensorProto.EXTERNAL
                _check_external(file, folder, t, shape)
            else:
                _check_stored(file, t, shape)
        found[name] = Value(shape, t.data_type)
    return found


def check_size(file: str, shape: Sequence[int], what: str) -> None:
    if any(d < 0 or d > MAX_DIM for d in shape):
        raise OnnxError(f"{file}: {what} has dims {fmt(shape)}; expected each from 0 to "
                        f"{MAX_DIM:,}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise OnnxError(f"{file}: {what} has {math.prod(shape):,} elements, more than "
                        f"{MAX_ELEMENTS:,}")


def _element_bytes(data_type: int) -> int:
    return FLOAT_TYPES.get(data_type) or OTHER_TYPES[data_type]


def _check_stored(file: str, t: onnx.TensorProto, shape: Shape) -> None:
    """The values stored in the file match the declared dims. A large tensor is checked
    by its message's size (reading its data would copy it: a model's weights): it must hold
    at least the bytes it declares."""
    n = math.prod(shape)
    bits = _BITS.get(t.data_type, 8 * _element_bytes(t.data_type))
    need = -(-n * bits // 8)
    raw = t.HasField("raw_data")
    if t.data_type == 8 or (t.data_type in _BITS and not raw):  # strings, packed in ints
        return
    if need > EXACT_CHECK_BYTES and t.ByteSize() >= need:
        return
    if raw:
        stored, expected, unit = len(t.raw_data), need, "bytes"
    else:
        stored = (len(t.float_data) + len(t.int32_data) + len(t.int64_data)
                  + len(t.double_data) + len(t.uint64_data))
        expected = 2 * n if t.data_type in (14, 15) else n  # complex: two values each
        unit = "values"
    if stored != expected:
        raise OnnxError(f"{file}: initializer {t.name!r} declares {fmt(shape)} "
                        f"({expected:,} {unit}) but stores {stored:,}")


def _check_external(file: str, folder: Path, t: onnx.TensorProto, shape: Shape) -> None:
    """External data: a relative location inside the model's folder, a regular file, long
    enough for the tensor at its offset."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    where = f"{file}: initializer {t.name!r} (external data {location!r})"
    if not location or os.path.isabs(location):
        raise OnnxError(f"{where}: expected a location relative to the model's folder")
    path = (folder / location).resolve()
    if folder not in path.parents:
        raise OnnxError(f"{where}: the location leaves the model's folder")
    try:
        st = os.stat(path)
    except OSError:
        raise OnnxError(f"{where}: {path.name} is missing; keep the external data "
                        "files beside the model") from None
    if not stat.S_ISREG(st.st_mode):
        raise OnnxError(f"{where}: {path.name} is not a regular file")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise OnnxError(f"{where}: offset and length must be whole numbers") from None
    need = math.prod(shape) * _element_bytes(t.data_type)
    if length is not None and length < need:
        raise OnnxError(f"{where}: length {length:,} is shorter than its {fmt(shape)} "
                        f"values ({need:,} bytes)")
    if offset < 0 or offset + (length if length is not None else need) > st.st_size:
        raise OnnxError(f"{where}: {path.name} holds {st.st_size:,} bytes, too few for "
                        f"offset {offset:,} + {need:,}; the file is truncated")


# --------------------------------------------------------------------------- inputs


def fmt(shape: Iterable[int]) -> str:
    return "x".join(map(str, shape)) or "a scalar"


# --------------------------------------------------------------------------- nodes



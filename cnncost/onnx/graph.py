"""The graph as counted: its values' static types, its nodes and the graph itself (no onnx,
no torch). What belongs here: the data the other onnx modules pass around; reading a file
into it is ``model``'s, folding ``fold``'s, pricing ``ops``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]

# Bytes per element of each ONNX tensor type (TensorProto.DataType), floating point apart.
# NB: types narrower than a byte (4-, 2- and 6-bit) are counted as a byte per element.
FLOAT_TYPES: dict[int, int] = {1: 4, 10: 2, 11: 8, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 23: 1,
                               24: 1, 27: 1, 28: 1}
OTHER_TYPES: dict[int, int] = {2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 8: 8, 9: 1, 12: 4, 13: 8,
                               14: 8, 15: 16, 21: 1, 22: 1, 25: 1, 26: 1}
TYPE_NAMES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


@dataclass(frozen=True)
class Value:
    """A tensor's static type: its shape and ONNX element type."""

    shape: Shape
    elem_type: int

    @property
    def is_float(self) -> bool:
        return self.elem_type in FLOAT_TYPES

    def nbytes(self, float_bytes: int) -> int:
        """Its bytes, floating point at ``float_bytes`` per element, anything else its own."""
        per = float_bytes if self.is_float else OTHER_TYPES.get(self.elem_type, 8)
        return math.prod(self.shape) * per


@dataclass(frozen=True)
class Node:
    """One node of the graph: its operator, values read and made, and attributes."""

    index: int  # its position in the file
    name: str
    op: str
    domain: str
    inputs: tuple[str, ...]  # "" stands for an optional input left out
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    scopes: tuple[str, ...] | None  # the torch.onnx (dynamo) exporter's name scopes

    @property
    def op_name(self) -> str:
        """``Conv``, or ``com.microsoft::FusedConv`` outside the ONNX domain."""
        return self.op if self.domain in ("", "ai.onnx") else f"{self.domain}::{self.op}"

    @property
    def label(self) -> str:
        """How errors name it: ``node '/conv1/Conv' (Conv)``."""
        return f"node {self.name or '#' + str(self.index)!r} ({self.op_name})"


@dataclass(frozen=True)
class Graph:
    """An ONNX graph with every value's static type, at the sizes asked for."""

    file: str
    name: str
    producer: str
    opsets: Mapping[str, int]
    inputs: tuple[str, ...]  # fed at run time (initializers listed as inputs are not)
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]  # every value made before it is read
    values: Mapping[str, Value]  # every value with a static type, initializers included
    initializers: Mapping[str, Value]
    folded: frozenset[int]  # the nodes computing only from constants (cnncost.onnx.fold)
    fixed_batch: bool  # the first input's leading dim is fixed by the file

    @property
    def input_shape(self) -> Shape:
        """The first input's shape (the table's ``input``)."""
        return self.values[self.inputs[0]].shape

    @property
    def float_type(self) -> int:
        """The element type of the first floating-point input (float32 if none)."""
        return next((self.values[n].elem_type for n in self.inputs
                     if self.values[n].is_float), 1)

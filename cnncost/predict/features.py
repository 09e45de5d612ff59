"""A counted layer as a prediction reads it: its op class and its features (no torch).

The features are what the count already has: the batch, channels in and out, spatial sizes
in and out, the kernel's area, the stride, the groups (read off the MACs' factors), MACs,
FLOPs, the bytes read and written, the weights' bytes and the number of inputs; and two
that follow from them: how much a convolution's channels are padded to the 16-float blocks
of the vector units the libraries block by (``pad16``), and whether PyTorch runs it by its
own im2col-and-matrix-product path rather than oneDNN's (``native``: PyTorch's rule, which
turns on the batch, the kernel, the stride, the groups, the input's size and the threads);
and one from the layers before it: the MACs of the two run just before it (``macs_before``:
a layer runs slower right after a long computation).
A calibration kernel is counted like any model, so its features come from the same code as
a predicted layer's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cnncost.predict.kernels import (
    CONV_CLASSES,
    MODULE_KINDS,
    OP_CLASSES,
    class_of_kind,
    conv_class,
)
from cnncost.table import CostRow

FEATURES = ("batch", "cin", "cout", "hw_in", "hw_out", "kernel", "stride", "groups",
            "spatial_dims", "macs", "flops", "in_bytes", "out_bytes", "weight_bytes", "inputs",
            "pad16", "native", "macs_before")
POOL_WINDOWS = ("max_pool", "avg_pool")  # kernel: FLOPs per output (the window's area)
LANES = 16  # float32 values per 512-bit vector: the channel block of oneDNN's CPU kernels
# PyTorch's native convolution (im2col + a matrix product) instead of oneDNN's, for float32
# on a CPU (aten/src/ATen/native/Convolution.cpp, ConvParams::use_mkldnn): a 1x1 unstrided
# kernel at a batch under 16 on one thread, or an ungrouped kernel no larger than 3 in some
# dimension at batch 1 over at most this many input values.
NATIVE_MAX_INPUT = 20480
NATIVE_MIN_BATCH = 16
# A layer runs slower right after a long computation: on this repository's 2-core Xeon (one
# thread, timed as a calibration times) a batch norm over 512 x 7 x 7 took 0.02 ms after an
# activation and 0.13 ms after a 3x3 convolution of 512 channels, and the activation after
# it 0.007 and 0.04 ms. A layer's features hold the MACs of the layers run just before it
# (this many), so that a calibration measures what that costs.
BEFORE = 2
CONTEXT_FEATURES = ("macs_before",)  # of the layers before a layer, not of the layer itself
# Where a layer of no class is predicted from, and why.
FALLBACK_COMPUTE = "pwconv"  # a layer with MACs: as a matrix product
FALLBACK_MEMORY = "add"  # one without: as an element-wise op that reads and writes its bytes


@dataclass(frozen=True)
class LayerFeatures:
    """One layer: the op class predicting it, its features, and a note when its kind has no
    class of its own (it is then predicted from a stand-in class)."""

    name: str
    kind: str
    op_class: str
    values: tuple[float, ...]
    calls: int = 1
    stand_in: str = ""  # "" or why another class stands in for this layer's kind

    def get(self, feature: str) -> float:
        return self.values[FEATURES.index(feature)]


def spec_kind(kind: str) -> str:
    """The spec layer kind of a row's kind (a module's class name maps to the kind it runs)."""
    return MODULE_KINDS.get(kind, kind)


def _channels_and_sizes(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, spatial product, spatial dims) of a batched shape; (features, 1, 0) for
    (N, F)."""
    if len(shape) <= 2:
        return (shape[-1] if len(shape) == 2 else 1), 1, 0
    return shape[1], math.prod(shape[2:]), len(shape) - 2


def padding16(cin: int, cout: int) -> float:
    """How much the channels grow when padded to blocks of 16: 1.0 for multiples of 16."""
    def up(c: int) -> int:
        return -(-c // LANES) * LANES

    return up(cin) * up(cout) / (cin * cout) if cin > 0 and cout > 0 else 1.0


def native_conv(batch: int, cin: int, hw_in: int, dims: tuple[int, ...], stride: int,
                groups: int, threads: int) -> bool:
    """Whether PyTorch runs a float32 CPU convolution by its own im2col path (see
    NATIVE_MAX_INPUT); ``dims``: the kernel's sizes, ``threads`` 0 off the CPU."""
    if threads < 1:
        return False
    pointwise = all(d == 1 for d in dims)
    onednn_first = stride > 1 or batch >= NATIVE_MIN_BATCH or not pointwise or threads > 1
    onednn_second = (groups > 1 or all(d > 3 for d in dims) or batch > 1
                     or batch * cin * hw_in > NATIVE_MAX_INPUT)
    return not (onednn_first and onednn_second)


def table_features(rows: Sequence[CostRow], elem: int, threads: int = 1) -> list[LayerFeatures]:
    """The features of a table's layers, in its order (the order they run in): each with
    the MACs of the layers before it (``BEFORE``)."""
    per_call = [r.macs / max(1, r.calls) for r in rows]
    return [layer_features(r, elem, threads, sum(per_call[max(0, i - BEFORE):i]))
            for i, r in enumerate(rows)]


def layer_features(row: CostRow, elem: int, threads: int = 1,
                   macs_before: float = 0.0) -> LayerFeatures:
    """The op class and features of one counted layer (``elem``: bytes per element;
    ``threads``: the CPU threads it runs on, 0 on a GPU; ``macs_before``: the MACs of the
    layers run just before it, see ``table_features``)."""
    kind = spec_kind(row.kind)
    first = row.input_shape[0] if row.input_shape else row.output_shape
    batch = first[0] if first else 1
    cin, hw_in, dims = _channels_and_sizes(first)
    cout, hw_out, _ = _channels_and_sizes(row.output_shape)
    kernel, groups = 1, 1
    ksizes: tuple[int, ...] = (1,)
    if row.factors and kind == "conv":
        per_out = row.factors[0].per_out
        ksizes = tuple(per_out[:-1])
        kernel = math.prod(ksizes)
        groups = max(1, cin // per_out[-1]) if per_out[-1] else 1
    stride = max(1, round(math.sqrt(hw_in / hw_out))) if hw_out and hw_in > hw_out else 1
    if kind in POOL_WINDOWS and hw_out:  # a window's size from its FLOPs (none are MACs)
        kernel = max(1, round(row.flops / max(1, row.calls) / (batch * cout * hw_out)))
    pad, native = 1.0, 0.0
    if kind == "conv":
        pad = padding16(cin, cout)
        # the rule is float32's (other dtypes: 0, a constant their calibration fits over)
        native = float(elem == 4 and native_conv(batch, cin, hw_in, ksizes, stride, groups,
                                                 threads))
    in_bytes = sum(math.prod(s) for s in row.input_shape) * elem
    calls = max(1, row.calls)
    values = (float(batch), float(cin), float(cout), float(hw_in), float(hw_out),
              float(kernel), float(stride), float(groups), float(dims),
              row.macs / calls, row.flops / calls, float(in_bytes),
              row.output_bytes / calls, float((row.params + row.buffers) * elem),
              float(len(row.input_shape)), pad, native, float(macs_before))
    op_class = conv_class(kernel, groups, cin) if kind == "conv" else class_of_kind(kind)
    stand_in = ""
    if op_class is None:
        op_class = FALLBACK_COMPUTE if row.macs else FALLBACK_MEMORY
        what = "a matrix product" if row.macs else "an element-wise op over its bytes"
        stand_in = f"kind {row.kind!r} not calibrated: estimated as {what} ({op_class})"
    return LayerFeatures(row.name, row.kind, op_class, values, calls, stand_in)


def class_names() -> tuple[str, ...]:
    """Every op class, conv classes first (as a calibration lists them)."""
    return (*CONV_CLASSES, *(n for n in OP_CLASSES if n not in CONV_CLASSES))

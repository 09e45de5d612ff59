"""The op classes a calibration times and a prediction reads (the one place to add one).

An op class is a family of layers that one fitted model predicts: dense convolutions,
1x1 convolutions, depthwise and grouped ones (each a different kernel in the libraries
underneath), linear layers, poolings, and the memory-bound family (batch norm, each
activation, add, mul, concat, ...). Each class says which layer kinds it covers and how to
draw a calibration kernel: a short spec holding the drawn layer in the context a network
gives it (its input just written by a layer before it, its output read by the layers after
it: a batch norm and an activation after a convolution), since a layer costs more inside a
network than alone on inputs its own last call left in the caches. Every layer of a kernel
is timed where it runs (one pass of the spec, layer by layer) and is a sample of its class.
Kernels are drawn from ranges a CNN's layers fall in (channels, spatial sizes, kernels,
strides, groups, batches), never from the bundled models' own layers, which are what a
prediction is checked against.

Nothing here imports torch: a kernel is spec text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

# Module class names (a counted nn.Module's rows) -> the spec layer kind they run.
MODULE_KINDS = {
    "Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv", "Linear": "linear",
    "BatchNorm1d": "bn", "BatchNorm2d": "bn", "BatchNorm3d": "bn",
    "MaxPool1d": "max_pool", "MaxPool2d": "max_pool", "MaxPool3d": "max_pool",
    "AvgPool1d": "avg_pool", "AvgPool2d": "avg_pool", "AvgPool3d": "avg_pool",
    "AdaptiveAvgPool1d": "adaptive_avg_pool", "AdaptiveAvgPool2d": "adaptive_avg_pool",
    "AdaptiveAvgPool3d": "adaptive_avg_pool", "AdaptiveMaxPool2d": "adaptive_max_pool",
    "ReLU": "relu", "ReLU6": "relu6", "SiLU": "silu", "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid", "Sigmoid": "sigmoid", "Tanh": "tanh", "GELU": "gelu",
    "LeakyReLU": "leaky_relu", "Softmax": "softmax", "Flatten": "flatten",
    "Dropout": "dropout", "Identity": "identity", "ChannelShuffle": "channel_shuffle",
}


@dataclass(frozen=True)
class Kernel:
    """One calibration kernel: a spec (YAML text), the batch it runs at, and how many of its
    last layers are the drawn layer's context (the drawn layer is the last one of its class
    before them)."""

    spec: str
    batch: int
    follow: int = 0
    work: float = 0.0  # the drawn layer's MACs at its batch (0: not a layer with MACs)


Sampler = Callable[[random.Random], Kernel]


@dataclass(frozen=True)
class OpClass:
    """A family of layers predicted by one fitted model."""

    name: str
    kinds: tuple[str, ...]  # the spec layer kinds in it (conv kinds split by ``conv_class``)
    doc: str
    share: float  # its part of a calibration's first round of samples
    sample: Sampler
    # the baseline's free terms (cnncost.predict.fit): per call, per MAC, per byte
    terms: tuple[int, ...] = (0, 1, 2)
    # the part of its calibration time spent on heavy kernels (``sample_heavy``)
    heavy: float = 0.0

    @property
    def timed_kinds(self) -> tuple[str, ...]:
        """The kinds of the layer a kernel times (its last layer of one of these kinds)."""
        return self.kinds

    def sample_heavy(self, rng: random.Random) -> Kernel:
        """A kernel drawn from the same ranges whose drawn layer does at least HEAVY_WORK
        MACs (the draw of most work out of a thousand, when none does)."""
        best = self.sample(rng)
        for _ in range(1000):
            if best.work >= HEAVY_WORK:
                break
            kernel = self.sample(rng)
            best = kernel if kernel.work > best.work else best
        return best


OP_CLASSES: dict[str, OpClass] = {}


def register_class(name: str, kinds: tuple[str, ...], doc: str, share: float,
                   terms: tuple[int, ...] = (0, 1, 2),
                   heavy: float = 0.0) -> Callable[[Sampler], Sampler]:
    """Register an op class; a duplicate name, or a kind in two classes, raises at import."""

    def deco(sample: Sampler) -> Sampler:
        if name in OP_CLASSES:
            raise RuntimeError(f"op class {name!r} registered twice")
        taken = {k for c in OP_CLASSES.values() if c.name not in CONV_CLASSES for k in c.kinds}
        if name not in CONV_CLASSES and set(kinds) & taken:
            raise RuntimeError(f"op class {name!r}: kinds {set(kinds) & taken} already taken")
        OP_CLASSES[name] = OpClass(name, kinds, doc, share, sample, terms, heavy)
        return sample

    return deco


CONV_CLASSES = ("conv", "pwconv", "dwconv", "gconv")


def conv_class(kernel_area: int, groups: int, cin: int) -> str:
    """Which conv class a convolution is: depthwise (groups = C_in > 1), grouped, 1x1 or dense."""
    if groups > 1:
        return "dwconv" if groups == cin else "gconv"
    return "pwconv" if kernel_area == 1 else "conv"


def class_of_kind(kind: str) -> str | None:
    """The op class of a non-conv layer kind (None: no class covers it)."""
    for c in OP_CLASSES.values():
        if c.name not in CONV_CLASSES and kind in c.kinds:
            return c.name
    return None


# --------------------------------------------------------------------------- drawing sizes


BATCHES = (1, 1, 1, 2, 4, 8, 8, 8, 16, 32, 64)


def log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def channels(rng: random.Random, lo: int, hi: int) -> int:
    """A channel count between lo and hi, log-uniform, rounded as CNNs' widths are: a power
    of two, a multiple of 16 or of 8, now and then any count."""
    c = log_uniform(rng, lo, hi)
    pick = rng.random()
    if c >= 16 and pick < 0.35:
        c = 2.0 ** round(math.log2(c))
    elif c >= 16 and pick < 0.65:
        c = 16 * round(c / 16)
    elif c >= 16 and pick < 0.9:
        c = 8 * round(c / 8)
    return max(lo, min(hi, round(c)))


def spatial(rng: random.Random, lo: int, hi: int) -> int:
    """A feature map's side between lo and hi, log-uniform; half the time the nearest side a
    pyramid of stride-2 stages gives (7 or 8 times a power of two)."""
    s = log_uniform(rng, lo, hi)
    if rng.random() < 0.5:
        sides = [b << i for b in (7, 8) for i in range(8) if lo <= b << i <= hi]
        if sides:
            s = min(sides, key=lambda v: abs(math.log(v / s)))
    return max(lo, min(hi, round(s)))


def choose(rng: random.Random, weighted: dict[object, float]) -> object:
    keys = list(weighted)
    return rng.choices(keys, weights=[weighted[k] for k in keys])[0]


def spec_text(shape: tuple[int, ...], layers: list[str]) -> str:
    """A kernel's spec: its input (one sample) and its layers, one YAML line each."""
    body = "\n".join(f"  - {line}" for line in layers)
    return f"name: kernel\ninput: [{', '.join(map(str, shape))}]\nlayers:\n{body}\n"


# Heavy kernels. A model's time is the sum of its layers', so its longest layers decide its
# error; but drawn from the ranges alone, most kernels of a class are small (there are more
# ways to be small, and a class's time buys many small ones), and the layers of most work,
# where the libraries switch their blocking as the sizes grow (a 3x3 convolution of 64
# channels runs at 38 GMAC/s at 128 x 128 and at 61 at 160 x 160 on this repository's
# 2-core Xeon, one thread), get a handful of samples. The classes of MACs spend a part of
# their time (``heavy``) on kernels redrawn from the same ranges until their drawn layer
# does at least this many MACs (a few milliseconds on a CPU core).
HEAVY_WORK = 1e9
HEAVY_SHARE = 0.4

# Bounds on one kernel (a timed call stays well under a second on a CPU core).
MAX_MACS = 2e10  # VGG's first convolutions at batch 8
MAX_ELEMENTS = 2 ** 25  # of one input or output tensor (128 MiB at float32)
MAX_SAMPLE = 2 ** 24  # elements of one sample: a flattened one is a size the spec bounds


def fits(batch: int, macs: float, *tensors: tuple[int, ...]) -> bool:
    """Within the bounds: MACs, each tensor's elements, and one sample's (a spec's limit)."""
    return macs * batch <= MAX_MACS and all(
        batch * math.prod(t) <= MAX_ELEMENTS and math.prod(t) <= MAX_SAMPLE for t in tensors)


def _drawn(draw: Callable[[random.Random], Kernel | None]) -> Sampler:
    """A sampler that draws again until a kernel fits the bounds."""

    def sample(rng: random.Random) -> Kernel:
        for _ in range(1000):
            kernel = draw(rng)
            if kernel is not None:
                return kernel
        raise RuntimeError("no kernel within bounds after 1000 draws")

    sample.__doc__ = draw.__doc__
    return sample


ACTIVATIONS = {"relu": 0.6, "relu6": 0.15, "silu": 0.1, "hardswish": 0.1, "sigmoid": 0.05}


def in_context(rng: random.Random, shape: tuple[int, ...], layers: list[str], batch: int,
               compute: bool) -> Kernel:
    """A kernel of ``layers`` in a network's context: mostly an activation or a batch norm
    before them (their input freshly written; not before an image's 3 channels), and after
    a layer with MACs (``compute``) mostly a batch norm and an activation, or one of them."""
    flat = len(shape) == 1  # a classifier's features: no batch norm there
    before = [] if shape[0] == 3 else [str(choose(rng, {"relu": 0.45, "bn": 0.35, "": 0.2}
                                                  if not flat else {"relu": 0.5, "": 0.5}))]
    after: list[str] = []
    if compute:
        act = str(choose(rng, ACTIVATIONS))  # type: ignore[arg-type]
        options = [["bn", act], [act], ["bn"], []] if not flat else [[act, "dropout"], [act],
                                                                     [act], []]
        after = options[rng.choices(range(4), weights=(0.55, 0.2, 0.1, 0.15))[0]]
    return Kernel(spec_text(shape, [b for b in before if b] + layers + after), batch,
                  len(after))


def _conv(rng: random.Random, cin: int, cout: int, size: int, k: int, s: int,
          groups: int) -> Kernel | None:
    batch = rng.choice(BATCHES)
    out = (size + 2 * (k // 2) - k) // s + 1
    if out < 1:
        return None
    macs = cout * out * out * (cin // groups) * k * k
    if not fits(batch, macs, (cin, size, size), (cout, out, out)):
        return None
    bias = "true" if rng.random() < 0.3 else "false"
    conv = (f"conv: {{out: {cout}, kernel: {k}, stride: {s}, padding: {k // 2}, "
            f"groups: {groups}, bias: {bias}}}")
    return replace(in_context(rng, (cin, size, size), [conv], batch, True), work=macs * batch)


# Half the convolutions are drawn as CNNs pair their sizes (the other half independently, for
# coverage): a feature map's side from a pyramid of stride-2 stages, and channels that grow as
# the side shrinks, channels x side between these bounds (a network's width: 16 to 64
# channels at 56 x 56 for a mobile one, up to 64 at 224 x 224 for a wide one); the output
# channels a ratio of the input's, as blocks widen, keep, squeeze or expand them.
CNN_WIDTH = (768.0, 16384.0)
CNN_SHARE = 0.5
DENSE_RATIOS = {0.5: 0.15, 1.0: 0.55, 2.0: 0.25, 4.0: 0.05}
POINTWISE_RATIOS = {1 / 6: 0.15, 0.25: 0.15, 0.5: 0.1, 1.0: 0.2, 2.0: 0.1, 4.0: 0.15, 6.0: 0.15}


def _round_width(c: float, lo: int, hi: int) -> int:
    """A width as CNNs round theirs: a multiple of 8 from 16 up (of 16 from 128 up)."""
    m = 16 if c >= 128 else 8 if c >= 16 else 1
    return max(lo, min(hi, m * max(1, round(c / m))))


def cnn_shape(rng: random.Random, lo_s: int, hi_s: int, ratios: dict[float, float],
              hi_c: int = 2048) -> tuple[int, int, int]:
    """(channels in, channels out, side) drawn as a CNN's stages pair them (CNN_WIDTH)."""
    side = spatial(rng, lo_s, hi_s)
    cin = _round_width(log_uniform(rng, *CNN_WIDTH) / side, 8, hi_c)
    cout = _round_width(cin * float(choose(rng, ratios)), 8, hi_c)  # type: ignore[arg-type]
    return cin, cout, side


@register_class("conv", ("conv",), "dense convolutions, kernel larger than 1x1", 0.3,
                heavy=HEAVY_SHARE)
@_drawn
def _dense(rng: random.Random) -> Kernel | None:
    k = int(choose(rng, {3: 0.7, 5: 0.1, 7: 0.12, 11: 0.08}))  # type: ignore[call-overload]
    s = 4 if k >= 7 and rng.random() < 0.2 else (1 if rng.random() < 0.7 else 2)
    if rng.random() < 0.12:  # a stem: an image's channels at an image's size
        return _conv(rng, 3, channels(rng, 16, 128), spatial(rng, 64, 320), k, s, 1)
    if rng.random() < CNN_SHARE:
        cin, cout, side = cnn_shape(rng, max(k, 4), 224, DENSE_RATIOS, 1024)
        return _conv(rng, cin, cout, side, k, s, 1)
    return _conv(rng, channels(rng, 8, 1024), channels(rng, 16, 1024),
                 spatial(rng, max(k, 4), 224), k, s, 1)


@register_class("pwconv", ("conv",), "1x1 (pointwise) convolutions", 0.22,
                heavy=HEAVY_SHARE)
@_drawn
def _pointwise(rng: random.Random) -> Kernel | None:
    if rng.random() < CNN_SHARE:
        cin, cout, size = cnn_shape(rng, 2, 224, POINTWISE_RATIOS)
    else:
        size = 1 if rng.random() < 0.1 else spatial(rng, 2, 224)
        cin, cout = channels(rng, 8, 2048), channels(rng, 8, 2048)
    return _conv(rng, cin, cout, size, 1, 2 if size > 2 and rng.random() < 0.1 else 1, 1)


@register_class("dwconv", ("conv",), "depthwise convolutions (groups = input channels)", 0.12)
@_drawn
def _depthwise(rng: random.Random) -> Kernel | None:
    k = int(choose(rng, {3: 0.65, 5: 0.25, 7: 0.1}))  # type: ignore[call-overload]
    if rng.random() < CNN_SHARE:
        c, _, side = cnn_shape(rng, 4, 224, {1.0: 1.0})
    else:
        c, side = channels(rng, 8, 2048), spatial(rng, 4, 224)
    return _conv(rng, c, c, side, k, 1 if rng.random() < 0.7 else 2, c)


@register_class("gconv", ("conv",), "grouped convolutions (1 < groups < input channels)", 0.05)
@_drawn
def _grouped(rng: random.Random) -> Kernel | None:
    groups = rng.choice((2, 4, 8, 16, 32, 64))
    per = rng.choice((2, 4, 8, 16, 32, 64))
    cin = groups * per
    if cin < 16 or cin > 2048:
        return None
    cout = groups * rng.choice((per, per, 2 * per, max(1, per // 2)))
    k = 3 if rng.random() < 0.7 else 1
    return _conv(rng, cin, cout, spatial(rng, 4, 112), k, 1 if rng.random() < 0.75 else 2,
                 groups)


@register_class("linear", ("linear",), "fully connected layers", 0.06)
@_drawn
def _linear(rng: random.Random) -> Kernel | None:
    batch = rng.choice((1, 1, 2, 4, 8, 8, 16, 32))
    fin, fout = channels(rng, 16, 25088), channels(rng, 10, 4096)
    if fin * fout > 1.1e8 or batch * fin * fout > MAX_MACS:
        return None
    return replace(in_context(rng, (fin,), [f"linear: {{out: {fout}}}"], batch,
                              rng.random() < 0.5), work=float(batch * fin * fout))


Shape3 = tuple[int, int, int]
Layers = Callable[[Shape3, random.Random], "list[str] | None"]


def _elementwise(layers: Layers, lo_s: int = 1, hi_s: int = 112) -> Sampler:
    """A sampler of a feature map (C x H x W at a batch; mostly square) through ``layers``
    (which may refuse a shape by returning None)."""

    def draw(rng: random.Random) -> Kernel | None:
        batch, h = rng.choice(BATCHES), spatial(rng, lo_s, hi_s)
        shape = (channels(rng, 8, 2048), h, h if rng.random() < 0.9 else spatial(rng, lo_s, hi_s))
        made = layers(shape, rng)
        if made is None or not fits(batch, 0, shape):
            return None
        return in_context(rng, shape, made, batch, False)

    return _drawn(draw)


def _pool(shape: Shape3, rng: random.Random) -> list[str]:
    kind = "max_pool" if rng.random() < 0.7 else "avg_pool"
    k = rng.choice((2, 3, 3))
    s = rng.choice((1, 2, 2)) if k == 3 else 2
    p = rng.choice((0, 1)) if k == 3 else 0
    ceil = "true" if rng.random() < 0.3 else "false"
    if min(shape[1:]) + 2 * p < k:
        k, s, p = 1, 1, 0
    return [f"{kind}: {{kernel: {k}, stride: {s}, padding: {p}, ceil_mode: {ceil}}}"]


def _gpool(shape: Shape3, rng: random.Random) -> list[str]:
    if rng.random() < 0.6:
        return ["global_avg_pool"]
    o = rng.choice((1, 1, 6, 7)) if min(shape[1:]) >= 7 else 1
    kind = "adaptive_avg_pool" if rng.random() < 0.85 else "adaptive_max_pool"
    return [f"{kind}: {{output: {o}}}"]


def _unary(kinds: tuple[str, ...]) -> Layers:
    def layers(shape: Shape3, rng: random.Random) -> list[str]:
        return [rng.choice(kinds)]

    return layers


register_class("pool", ("max_pool", "avg_pool"), "max and average pooling windows", 0.04)(
    _elementwise(_pool, 2, 112))
register_class("gpool", ("global_avg_pool", "adaptive_avg_pool", "adaptive_max_pool"),
               "global and adaptive pooling", 0.03)(_elementwise(_gpool, 1, 56))
register_class("bn", ("bn",), "batch normalisation (inference)", 0.03)(
    _elementwise(_unary(("bn",))))
for _kind, _share in (("relu", 0.02), ("relu6", 0.01), ("silu", 0.01), ("hardswish", 0.01),
                      ("hardsigmoid", 0.01), ("sigmoid", 0.01), ("tanh", 0.005),
                      ("gelu", 0.005), ("leaky_relu", 0.005)):
    register_class(_kind, (_kind,), f"the {_kind} activation", _share)(
        _elementwise(_unary((_kind,))))


def _add(shape: Shape3, rng: random.Random) -> list[str]:
    return ["residual: [relu]"]


def _mul(shape: Shape3, rng: random.Random) -> list[str]:
    # squeeze-excite's x * gate (C x H x W by C x 1 x 1), or two equal shapes
    return ["scale: [global_avg_pool]" if rng.random() < 0.7 else "scale: [sigmoid]"]


def _concat(shape: Shape3, rng: random.Random) -> list[str]:
    n = rng.choice((2, 2, 2, 3, 4))
    branches = ", ".join("[]" if i == 0 else
                         f"[{{conv: {{out: {channels(rng, 8, 512)}, kernel: 1}}}}]"
                         for i in range(n))
    return [f"concat: [{branches}]"]


def _split(shape: Shape3, rng: random.Random) -> list[str] | None:
    return ["split: {x1: [], x2: []}"] if shape[0] % 2 == 0 else None


def _shuffle(shape: Shape3, rng: random.Random) -> list[str]:
    return [f"channel_shuffle: {{groups: {2 if shape[0] % 2 == 0 else 1}}}"]


def _view(shape: Shape3, rng: random.Random) -> list[str]:
    return [rng.choice(("flatten", "dropout", "identity"))]


register_class("add", ("add",), "element-wise add of equal shapes (residuals)", 0.04)(
    _elementwise(_add))
register_class("mul", ("mul",), "element-wise multiply (squeeze-excite gates)", 0.02)(
    _elementwise(_mul))
register_class("concat", ("concat",), "concatenation along channels", 0.03)(
    _elementwise(_concat, 1, 56))
register_class("slice", ("slice",), "a channel slice (a split's halves)", 0.01)(
    _elementwise(_split))
register_class("channel_shuffle", ("channel_shuffle",), "ShuffleNet's channel shuffle",
               0.01)(_elementwise(_shuffle))
register_class("view", ("flatten", "dropout", "identity"),
               "layers that compute nothing at inference (a module call's overhead)", 0.01,
               terms=(0,))(
    _elementwise(_view))


# --------------------------------------------------------------------------- networks
#
# Whole networks made of the same families of layers, at random: each is timed layer by layer
# (every layer a sample of its class, in the context a network gives it) and as a whole
# model, for what a model's call costs beyond its layers' (the graph's own calls). Never the
# bundled models, which are what a prediction is checked against.

MAX_NETWORK_MACS = 3e9  # per batch: one call well under a second
MAX_NETWORK_BYTES = 1 << 30  # of activations alive at once


def _act(rng: random.Random) -> str:
    return str(choose(rng, ACTIVATIONS))  # type: ignore[arg-type]


def _cb(c: int, k: int, s: int = 1, groups: int = 1, bn: bool = True) -> str:
    conv = (f"{{conv: {{out: {c}, kernel: {k}, stride: {s}, padding: {k // 2}, "
            f"groups: {groups}, bias: {'false' if bn else 'true'}}}}}")
    return f"{conv}, bn" if bn else conv


def _mult(c: float, m: int = 8) -> int:
    return max(m, m * round(c / m))


Block = Callable[[random.Random, int, int, bool], "tuple[list[str], int]"]


def _net_plain(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    return [f"{{seq: [{_cb(c, rng.choice((3, 3, 3, 5)), bn=bn)}, {_act(rng)}]}}"], c


def _net_basic(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    return [f"{{residual: [{_cb(c, 3)}, relu, {_cb(c, 3)}]}}", "relu"], c


def _net_bottleneck(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    mid = _mult(c / rng.choice((2, 4)))
    groups = 32 if mid % 32 == 0 and mid >= 64 and rng.random() < 0.35 else 1
    return [f"{{residual: [{_cb(mid, 1)}, relu, {_cb(mid, 3, groups=groups)}, relu, "
            f"{_cb(c, 1)}]}}", "relu"], c


def _net_inverted(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    e = c * rng.choice((3, 4, 6))
    act = rng.choice(("relu6", "relu", "hardswish", "silu"))
    k = rng.choice((3, 3, 5))
    gate = rng.choice(("hardsigmoid", "sigmoid"))
    se = (f"{{scale: [global_avg_pool, {{conv: {{out: {_mult(e / 4)}, kernel: 1}}}}, relu, "
          f"{{conv: {{out: {e}, kernel: 1}}}}, {gate}]}}, " if rng.random() < 0.4 else "")
    return [f"{{residual: [{_cb(e, 1)}, {act}, {_cb(e, k, groups=e)}, {act}, {se}"
            f"{_cb(c, 1)}]}}"], c


def _net_separable(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    k = rng.choice((3, 3, 5))
    return [f"{{seq: [{_cb(c, k, groups=c)}, {_act(rng)}, {_cb(c, 1)}, {_act(rng)}]}}"], c


def _net_dense(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    g = rng.choice((12, 16, 32))
    return [f"{{concat: [[], [bn, relu, {_cb(4 * g, 1)}, relu, {{conv: {{out: {g}, "
            f"kernel: 3, padding: 1, bias: false}}}}]]}}"], c + g


def _net_fire(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    sq = _mult(c / rng.choice((4, 6, 8)))
    e = _mult(c / 2)
    return [f"{{conv: {{out: {sq}, kernel: 1}}}}", "relu",
            f"{{concat: [[{{conv: {{out: {e}, kernel: 1}}}}, relu], "
            f"[{{conv: {{out: {e}, kernel: 3, padding: 1}}}}, relu]]}}"], 2 * e


def _net_inception(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    b = [_mult(c * f) for f in (0.25, 0.375, 0.125, 0.125)]
    r = [_mult(c * f) for f in (0.25, 0.0625)]
    return [f"{{concat: [[{_cb(b[0], 1, bn=bn)}, relu], "
            f"[{_cb(r[0], 1, bn=bn)}, relu, {_cb(b[1], 3, bn=bn)}, relu], "
            f"[{_cb(r[1], 1, bn=bn)}, relu, {_cb(b[2], rng.choice((3, 5)), bn=bn)}, relu], "
            f"[{{max_pool: {{kernel: 3, stride: 1, padding: 1}}}}, {_cb(b[3], 1, bn=bn)}, "
            "relu]]}"], sum(b)


def _net_shuffle(rng: random.Random, c: int, n: int, bn: bool) -> tuple[list[str], int]:
    h = c // 2
    return [f"{{split: {{x1: [], x2: [{_cb(h, 1)}, relu, {_cb(h, 3, groups=h)}, "
            f"{_cb(h, 1)}, relu]}}}}", "channel_shuffle: {groups: 2}"], c


BLOCKS: tuple[Block, ...] = (_net_plain, _net_basic, _net_bottleneck, _net_inverted,
                             _net_separable, _net_dense, _net_fire, _net_inception,
                             _net_shuffle)


def _stage_entry(rng: random.Random, c: int, bn: bool) -> str:
    """A stage's first layer: a strided convolution or a pooling window."""
    pick = rng.random()
    if pick < 0.55:
        return f"{{seq: [{_cb(c, 3, 2, bn=bn)}, {_act(rng)}]}}"
    kind = "max_pool" if pick < 0.85 else "avg_pool"
    k = rng.choice((2, 3))
    return (f"{{seq: [{{{kind}: {{kernel: {k}, stride: 2, padding: {k // 3}}}}}, "
            f"{_cb(c, 1, bn=bn)}, {_act(rng)}]}}")


def _head(rng: random.Random, c: int) -> list[str]:
    classes = rng.choice((10, 100, 1000))
    if rng.random() < 0.2:  # a classifier of fully connected layers on a small map
        o = rng.choice((1, 2, 4, 6, 7))
        hidden = channels(rng, 256, 4096)
        return [f"adaptive_avg_pool: {{output: {o}}}", "flatten", f"linear: {{out: {hidden}}}",
                "relu", "dropout", f"linear: {{out: {classes}}}"]
    return ["global_avg_pool", "flatten", f"linear: {{out: {classes}}}"]


def network(rng: random.Random) -> Kernel:
    """A random CNN: a stem, two to five stages of blocks of one family each (plain,
    basic or bottleneck residual, inverted residual with or without squeeze-excite,
    separable, dense, fire, inception, shuffle), each opened by a strided conv or a pooling,
    then a classifier."""
    for _ in range(1000):
        res = rng.choice((32, 48, 64, 96, 112, 128, 160, 192, 224, 256))
        batch = rng.choice((1, 1, 1, 2, 4, 8, 16))
        c = channels(rng, 8, 96)
        bn = rng.random() < 0.85
        k = rng.choice((3, 3, 5, 7))
        layers = [f"{{seq: [{_cb(c, k, 2, bn=bn)}, {_act(rng)}]}}"]
        if rng.random() < 0.4:
            layers.append("max_pool: {kernel: 3, stride: 2, padding: 1}")
        grow = rng.choice((1.5, 2, 2))
        for stage in range(rng.randint(2, 5)):
            family = rng.choice(BLOCKS)
            c = min(1024, _mult(c * grow, 16)) if stage else c
            layers.append(_stage_entry(rng, c, bn) if stage else
                          f"{{seq: [{_cb(c, 3, bn=bn)}, {_act(rng)}]}}")
            for _ in range(rng.randint(1, 3)):
                made, width = family(rng, c, len(layers), bn)
                layers += made
                if width != c:  # back to c channels
                    layers.append(f"{{seq: [{_cb(c, 1, bn=bn)}, relu]}}")
        layers += _head(rng, c)
        kernel = Kernel(spec_text((3, res, res), layers), batch)
        if _network_fits(kernel):
            return kernel
    raise RuntimeError("no network within bounds after 1000 draws")


def _network_fits(kernel: Kernel) -> bool:
    from cnncost.count.analytic import count_totals
    from cnncost.errors import SpecError
    from cnncost.spec import parse_spec

    try:
        totals = count_totals(parse_spec(kernel.spec, "<network>"), kernel.batch)
    except SpecError:
        return False
    return (totals.macs <= MAX_NETWORK_MACS
            and totals.peak_activation_bytes <= MAX_NETWORK_BYTES)

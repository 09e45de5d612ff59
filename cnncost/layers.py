"""The one place to add a layer type: ``LAYERS`` maps a spec kind to its shape rule and module.

Each kind is a function decorated with ``@register_layer("name")``. Its typed keyword
parameters (with defaults) are the YAML keys the kind accepts; cnncost.spec checks a spec
against that signature. The function receives the input shape of one sample
``(C, *spatial)`` (no batch), validates, and returns a :class:`Built`: the output shape,
a factory for the ``nn.Module`` (torch is only imported when a module is made), and
what the receptive-field walk needs. Shape rules are pure arithmetic, so a spec is
validated and its shapes inferred without torch.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from cnncost import shapes
from cnncost.errors import LayerError

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]
Ints = int | list[int]
Padding = Literal["same", "valid"] | int | list[int]


@dataclass(frozen=True)
class Built:
    """What a layer kind makes of its parameters and input shape."""

    out_shape: Shape
    make: Callable[[], nn.Module] = field(repr=False, compare=False)
    # Receptive-field step per spatial dim: the kernel's extent (dilation x (k - 1) + 1)
    # and the stride; one value stands for every dim. A stride < 1 for upsampling layers
    # (each output pixel moves 1/scale input pixels).
    rf_kernel: tuple[int, ...] = (1,)
    rf_stride: tuple[float, ...] = (1.0,)
    # Elements of the layer's largest weight tensor (the spec bounds it: torch's storage
    # size overflows long before a conv's out x in x k x k does in Python).
    weight_elements: int = 0
    # The smallest batch PyTorch runs the layer at, where it is more than 1 (statistics
    # over one value per group or channel: "Expected more than 1 value per channel").
    min_batch: BatchNeed | None = None


class BatchNeed(NamedTuple):
    """A layer's smallest batch, at inference and in a training step, and why."""

    inference: int
    train: int
    why: str


@dataclass(frozen=True)
class LayerKind:
    """A registered layer kind: its name, shape rule, parameter schema and docs."""

    name: str
    fn: Callable[..., Built]
    params: dict[str, inspect.Parameter]
    hints: dict[str, Any]
    doc: str

    @property
    def required(self) -> list[str]:
        return [n for n, p in self.params.items() if p.default is inspect.Parameter.empty]


LAYERS: dict[str, LayerKind] = {}


def register_layer(name: str) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    """Register a layer kind under ``name``; a duplicate name raises at import time."""

    def deco(fn: Callable[..., Built]) -> Callable[..., Built]:
        if name in LAYERS:
            raise RuntimeError(f"layer kind {name!r} registered twice")
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        params = {n: p for n, p in sig.parameters.items() if n != "in_shape"}
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        LAYERS[name] = LayerKind(name, fn, params, hints, doc)
        return fn

    return deco


# --------------------------------------------------------------------------- helpers


def _spatial(in_shape: Shape, kind: str, allowed: Sequence[int] = (1, 2, 3)) -> int:
    nd = len(in_shape) - 1
    if nd not in allowed:
        dims = {1: "L", 2: "H, W", 3: "D, H, W"}
        want = " or ".join(f"(C, {dims[d]})" for d in allowed)
        raise LayerError(f"{kind} needs an input shaped {want}, got {_fmt(in_shape)}")
    return nd


def _fmt(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _tuple(value: Ints, nd: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * nd
    vals = tuple(value)
    if len(vals) != nd:
        raise LayerError(f"{what} has {len(vals)} values, expected 1 or {nd}")
    return vals


def _positive(what: str, *values: int, allow_zero: bool = False) -> None:
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            raise LayerError(f"{what}={v} must be {'>= 0' if allow_zero else 'positive'}")


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    return shapes.pool_out(size, k, s, p, d, ceil_mode)


def _extents(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """A dilated kernel's extent per dim: dilation x (kernel - 1) + 1."""
    return tuple(dd * (kk - 1) + 1 for kk, dd in zip(kernel, dilation, strict=True))


def _conv_padding(padding: Padding, kernel: tuple[int, ...], dilation: tuple[int, ...],
                  nd: int) -> tuple[int, ...]:
    if padding == "valid":
        return (0,) * nd
    assert not isinstance(padding, str), "'same' is handled by conv()"
    return _tuple(padding, nd, "padding")


# --------------------------------------------------------------------------- convolution


@register_layer("conv")
def conv(in_shape: Shape, out: int, kernel: Ints, stride: Ints = 1, padding: Padding = 0,
         dilation: Ints = 1, groups: int = 1, bias: bool = True) -> Built:
    """Convolution, 1-D/2-D/3-D by the input's rank. Keys: out, kernel, stride, padding (int, list, "same", "valid"), dilation, groups, bias."""  # noqa: E501
    nd = _spatial(in_shape, "conv")
    cin, sizes = in_shape[0], in_shape[1:]
    k = _tuple(kernel, nd, "kernel")
    s = _tuple(stride, nd, "stride")
    d = _tuple(dilation, nd, "dilation")
    _positive("out", out)
    _positive("kernel", *k)
    _positive("stride", *s)
    _positive("dilation", *d)
    _positive("groups", groups)
    if cin % groups:
        raise LayerError(f"groups={groups} does not divide in_channels={cin}")
    if out % groups:
        raise LayerError(f"groups={groups} does not divide out={out}")
    if padding == "same":
        # PyTorch pads d*(k-1) in total (one more on the right for even kernels).
        if any(ss != 1 for ss in s):
            raise LayerError("padding='same' needs stride 1 (as in PyTorch); give the padding "
                             "as a number instead")
        p: tuple[int, ...] | str = "same"
        out_sizes = list(sizes)
    else:
        p = _conv_padding(padding, k, d, nd)
        _positive("padding", *p, allow_zero=True)
        out_sizes = []
        for size, kk, ss, pp, dd in zip(sizes, k, s, p, d, strict=True):
            extent = dd * (kk - 1) + 1
            if extent > size + 2 * pp:
                raise LayerError(
                    f"kernel {kk} (dilation {dd}) is larger than its padded input {size}+2x{pp}"
                )
            out_sizes.append(shapes.conv_out(size, kk, ss, pp, dd))

    def make() -> nn.Module:
        from torch import nn

        cls: Any = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
        return cls(cin, out, k, s, p, d, groups, bias)

    return Built((out, *out_sizes), make, _extents(k, d), tuple(map(float, s)),
                 weight_elements=out * (cin // groups) * math.prod(k))


@register_layer("conv_transpose")
def conv_transpose(in_shape: Shape, out: int, kernel: Ints, stride: Ints = 1,
                   padding: Ints = 0, output_padding: Ints = 0, groups: int = 1,
                   bias: bool = True, dilation: Ints = 1) -> Built:
    """Transposed convolution ("deconvolution"). Keys: out, kernel, stride, padding, output_padding, groups, bias, dilation."""  # noqa: E501
    nd = _spatial(in_shape, "conv_transpose")
    cin, sizes = in_shape[0], in_shape[1:]
    k = _tuple(kernel, nd, "kernel")
    s = _tuple(stride, nd, "stride")
    p = _tuple(padding, nd, "padding")
    op = _tuple(output_padding, nd, "output_padding")
    d = _tuple(dilation, nd, "dilation")
    _positive("out", out)
    _positive("kernel", *k)
    _positive("stride", *s)
    _positive("dilation", *d)
    _positive("groups", groups)
    _positive("padding", *p, allow_zero=True)
    _positive("output_padding", *op, allow_zero=True)
    if cin % groups or out % groups:
        raise LayerError(f"groups={groups} does not divide in_channels={cin} and out={out}")
    for o, ss, dd in zip(op, s, d, strict=True):
        if o >= max(ss, dd):
            raise LayerError(f"output_padding={o} must be smaller than stride or dilation")
    out_sizes = [shapes.conv_transpose_out(size, kk, ss, pp, dd, oo)
                 for size, kk, ss, pp, oo, dd in zip(sizes, k, s, p, op, d, strict=True)]
    if any(o <= 0 for o in out_sizes):
        raise LayerError(f"output size {out_sizes} is not positive")

    def make() -> nn.Module:
        from torch import nn

        cls: Any = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[nd - 1]
        return cls(cin, out, k, s, p, op, groups, bias, d)

    # Each output pixel sees an input window of the dilated kernel's extent, moving
    # 1/stride input pixels per output pixel.
    return Built((out, *out_sizes), make, _extents(k, d), tuple(1.0 / ss for ss in s),
                 weight_elements=cin * (out // groups) * math.prod(k))


@register_layer("linear")
def linear(in_shape: Shape, out: int, bias: bool = True) -> Built:
    """Fully connected layer on the last dimension. Keys: out, bias."""
    _positive("out", out)
    fin = in_shape[-1]

    def make() -> nn.Module:
        from torch import nn

        return nn.Linear(fin, out, bias)

    return Built((*in_shape[:-1], out), make, weight_elements=out * fin)


# --------------------------------------------------------------------------- pooling


def _pool(kind: str, in_shape: Shape, kernel: Ints, stride: Ints | None, padding: Ints,
          dilation: Ints, ceil_mode: bool) -> tuple[int, tuple[int, ...], tuple[int, ...],
                                                    tuple[int, ...], tuple[int, ...], Shape]:
    nd = _spatial(in_shape, kind)
    k = _tuple(kernel, nd, "kernel")
    s = _tuple(stride if stride is not None else kernel, nd, "stride")
    p = _tuple(padding, nd, "padding")
    d = _tuple(dilation, nd, "dilation")
    _positive("kernel", *k)
    _positive("stride", *s)
    _positive("dilation", *d)
    _positive("padding", *p, allow_zero=True)
    for kk, pp in zip(k, p, strict=True):
        if pp > kk // 2:
            raise LayerError(f"padding={pp} must be at most half of kernel={kk}")
    outs = []
    for size, kk, ss, pp, dd in zip(in_shape[1:], k, s, p, d, strict=True):
        # With ceil_mode a window may hang over the edge, so compare the output, as torch does.
        o = _pool_out(size, kk, ss, pp, dd, ceil_mode)
        if o < 1:
            raise LayerError(f"kernel {kk} (dilation {dd}) is larger than its padded input "
                             f"{size}+2x{pp}")
        outs.append(o)
    return nd, k, s, p, d, (in_shape[0], *outs)


@register_layer("max_pool")
def max_pool(in_shape: Shape, kernel: Ints, stride: Ints | None = None, padding: Ints = 0,
             dilation: Ints = 1, ceil_mode: bool = False) -> Built:
    """Max pooling. Keys: kernel, stride (default: kernel), padding, dilation, ceil_mode."""
    nd, k, s, p, d, out = _pool("max_pool", in_shape, kernel, stride, padding, dilation,
                                ceil_mode)

    def make() -> nn.Module:
        from torch import nn

        cls: Any = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[nd - 1]
        return cls(k, s, p, d, ceil_mode=ceil_mode)

    return Built(out, make, _extents(k, d), tuple(map(float, s)))


@register_layer("avg_pool")
def avg_pool(in_shape: Shape, kernel: Ints, stride: Ints | None = None, padding: Ints = 0,
             ceil_mode: bool = False, count_include_pad: bool = True) -> Built:
    """Average pooling. Keys: kernel, stride (default: kernel), padding, ceil_mode, count_include_pad."""  # noqa: E501
    nd, k, s, p, _, out = _pool("avg_pool", in_shape, kernel, stride, padding, 1, ceil_mode)
    if nd == 3 and any(size < kk for size, kk in zip(in_shape[1:], k, strict=True)):
        # PyTorch's avg_pool3d (unlike 1-D/2-D and max pooling) checks the unpadded input
        # against the kernel (ATen pool3d_shape_check, check_input_size); its meta kernel
        # does not, so a count would pass where a real run fails.
        raise LayerError(f"a 3-D avg_pool needs an input at least as large as its kernel "
                         f"{_fmt(k)} in every dim (padding aside), as PyTorch requires")

    def make() -> nn.Module:
        from torch import nn

        cls: Any = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[nd - 1]
        return cls(k, s, p, ceil_mode, count_include_pad)

    return Built(out, make, k, tuple(map(float, s)))


def _adaptive(kind: str, in_shape: Shape, output: Ints, op: str) -> Built:
    """Adaptive ``op`` pooling (``Avg`` or ``Max``) of ``in_shape`` to ``output``."""
    nd = _spatial(in_shape, kind)
    o = _tuple(output, nd, "output")
    _positive("output", *o)

    def make() -> nn.Module:
        from torch import nn

        cls: Any = getattr(nn, f"Adaptive{op}Pool{nd}d")
        return cls(o)

    rf = tuple(max(1, n // oo) for n, oo in zip(in_shape[1:], o, strict=True))
    return Built((in_shape[0], *o), make, rf, tuple(map(float, rf)))


@register_layer("adaptive_avg_pool")
def adaptive_avg_pool(in_shape: Shape, output: Ints = 1) -> Built:
    """Adaptive average pooling to a fixed output size. Keys: output."""
    return _adaptive("adaptive_avg_pool", in_shape, output, "Avg")


@register_layer("adaptive_max_pool")
def adaptive_max_pool(in_shape: Shape, output: Ints = 1) -> Built:
    """Adaptive max pooling to a fixed output size. Keys: output."""
    return _adaptive("adaptive_max_pool", in_shape, output, "Max")


@register_layer("global_avg_pool")
def global_avg_pool(in_shape: Shape) -> Built:
    """Average over all spatial positions, keeping 1x1 spatial dims. No keys."""
    return adaptive_avg_pool(in_shape, 1)


# --------------------------------------------------------------------------- normalisation


def _norm_fields(eps: float, momentum: float = 0.1) -> None:
    if not eps >= 0:
        raise LayerError(f"eps={eps} must be >= 0")
    if not 0 <= momentum <= 1:
        raise LayerError(f"momentum={momentum} must be between 0 and 1")


@register_layer("bn")
def bn(in_shape: Shape, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> Built:
    """Batch normalisation over channels (dim 1). Keys: eps, momentum, affine."""
    _norm_fields(eps, momentum)
    nd = len(in_shape) - 1
    if nd > 3:
        raise LayerError(f"bn needs (C,), (C, L), (C, H, W) or (C, D, H, W), got {_fmt(in_shape)}")
    c = in_shape[0]

    def make() -> nn.Module:
        from torch import nn

        cls: Any = (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[nd]
        return cls(c, eps, momentum, affine)

    # A training step's statistics are over the batch and the spatial positions: one value
    # per channel at batch 1 without spatial extent, which PyTorch refuses.
    need = BatchNeed(1, 2, f"a {_fmt(in_shape)} input has one value per channel per "
                           "sample") if math.prod(in_shape[1:]) == 1 else None
    return Built(in_shape, make, min_batch=need)


@register_layer("layer_norm")
def layer_norm(in_shape: Shape, dims: int | None = None, eps: float = 1e-5,
               affine: bool = True) -> Built:
    """Layer normalisation over the last ``dims`` dims of a sample (default: all). Keys: dims, eps, affine."""  # noqa: E501
    _norm_fields(eps)
    n = len(in_shape) if dims is None else dims
    if not 1 <= n <= len(in_shape):
        raise LayerError(f"dims={n} must be between 1 and {len(in_shape)}")
    normalized = list(in_shape[-n:])

    def make() -> nn.Module:
        from torch import nn

        return nn.LayerNorm(normalized, eps, affine)

    return Built(in_shape, make)


@register_layer("group_norm")
def group_norm(in_shape: Shape, groups: int, eps: float = 1e-5, affine: bool = True) -> Built:
    """Group normalisation. Keys: groups, eps, affine."""
    _norm_fields(eps)
    c = in_shape[0]
    _positive("groups", groups)
    if c % groups:
        raise LayerError(f"groups={groups} does not divide channels={c}")
    need = None
    if c // groups * math.prod(in_shape[1:]) == 1:
        # Each group of a sample holds one value (normalised to 0): PyTorch runs it on a
        # batch of two or more, and refuses it at batch 1, counting the batch in the group.
        need = BatchNeed(2, 2, f"groups={groups} leaves one value per group on a "
                               f"{_fmt(in_shape)} input")

    def make() -> nn.Module:
        from torch import nn

        return nn.GroupNorm(groups, c, eps, affine)

    return Built(in_shape, make, min_batch=need)


# --------------------------------------------------------------------------- activations


def _elementwise(name: str, factory: Callable[[], nn.Module], doc: str) -> None:
    def rule(in_shape: Shape) -> Built:
        return Built(in_shape, factory)

    rule.__doc__ = doc
    register_layer(name)(rule)


def _act(cls_name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from torch import nn

        module: nn.Module = getattr(nn, cls_name)(**kwargs)
        return module

    return make


for _name, _cls, _doc in [
    ("relu", "ReLU", "max(x, 0). No keys."),
    ("relu6", "ReLU6", "min(max(x, 0), 6). No keys."),
    ("sigmoid", "Sigmoid", "1 / (1 + exp(-x)). No keys."),
    ("tanh", "Tanh", "tanh(x). No keys."),
    ("hardswish", "Hardswish", "x * relu6(x + 3) / 6 (MobileNetV3). No keys."),
    ("hardsigmoid", "Hardsigmoid", "relu6(x + 3) / 6 (MobileNetV3). No keys."),
    ("silu", "SiLU", "x * sigmoid(x), a.k.a. swish. No keys."),
    ("identity", "Identity", "Passes its input through. No keys."),
]:
    _elementwise(_name, _act(_cls), _doc)


@register_layer("leaky_relu")
def leaky_relu(in_shape: Shape, negative_slope: float = 0.01) -> Built:
    """max(x, 0) + negative_slope * min(x, 0). Keys: negative_slope."""
    return Built(in_shape, _act("LeakyReLU", negative_slope=negative_slope))


@register_layer("gelu")
def gelu(in_shape: Shape, approximate: Literal["none", "tanh"] = "none") -> Built:
    """Gaussian error linear unit. Keys: approximate ("none" or "tanh")."""
    return Built(in_shape, _act("GELU", approximate=approximate))


@register_layer("softmax")
def softmax(in_shape: Shape, dim: int = 0) -> Built:
    """Softmax over a sample dimension (default 0: channels/classes). Keys: dim."""
    if not 0 <= dim < len(in_shape):
        raise LayerError(f"dim={dim} must be between 0 and {len(in_shape) - 1}")
    return Built(in_shape, _act("Softmax", dim=dim + 1))


@register_layer("dropout")
def dropout(in_shape: Shape, p: float = 0.5) -> Built:
    """Dropout (identity at inference). Keys: p."""
    if not 0.0 <= p <= 1.0:
        raise LayerError(f"p={p} must be between 0 and 1")
    return Built(in_shape, _act("Dropout", p=p))


# --------------------------------------------------------------------------- reshaping


@register_layer("flatten")
def flatten(in_shape: Shape) -> Built:
    """Flattens a sample to one dimension (C*H*W). No keys."""
    return Built((math.prod(in_shape),), _act("Flatten"))


@register_layer("upsample")
def upsample(in_shape: Shape, scale: int | None = None, size: Ints | None = None,
             mode: Literal["nearest", "bilinear", "linear", "trilinear"] = "nearest",
             align_corners: bool | None = None) -> Built:
    """Upsampling by an integer ``scale`` or to a ``size``. Keys: scale, size, mode, align_corners."""  # noqa: E501
    nd = _spatial(in_shape, "upsample")
    if (scale is None) == (size is None):
        raise LayerError("upsample needs exactly one of scale or size")
    if size is not None:
        out = _tuple(size, nd, "size")
        _positive("size", *out)
    else:
        assert scale is not None
        _positive("scale", scale)
        out = tuple(d * scale for d in in_shape[1:])
    wanted = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
    if mode != "nearest" and mode != wanted:
        raise LayerError(f"mode={mode!r} does not fit a {nd}-D input; use 'nearest' or {wanted!r}")
    if align_corners is not None and mode == "nearest":
        raise LayerError("align_corners only applies to linear modes")

    def make() -> nn.Module:
        from torch import nn

        if size is not None:
            return nn.Upsample(size=out, mode=mode, align_corners=align_corners)
        return nn.Upsample(scale_factor=float(scale or 1), mode=mode,
                           align_corners=align_corners)

    return Built((in_shape[0], *out), make, (1,),
                 tuple(n / o for n, o in zip(in_shape[1:], out, strict=True)))


@register_layer("channel_shuffle")
def channel_shuffle(in_shape: Shape, groups: int) -> Built:
    """ShuffleNet's channel shuffle. Keys: groups."""
    _spatial(in_shape, "channel_shuffle")
    _positive("groups", groups)
    if in_shape[0] % groups:
        raise LayerError(f"groups={groups} does not divide channels={in_shape[0]}")
    return Built(in_shape, _act("ChannelShuffle", groups=groups))

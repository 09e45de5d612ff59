"""Every layer kind's shape rule against PyTorch itself (the oracle), on CPU with small inputs.

Parametrized over the LAYERS registry: a newly registered kind without a row in SAMPLES
fails ``test_every_kind_has_samples``, so every kind is checked against a real forward.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnncost.errors import LayerError
from cnncost.layers import LAYERS, Shape

# kind -> [(input shape of one sample, params)]; each row runs a real forward pass.
SAMPLES: dict[str, list[tuple[Shape, dict[str, Any]]]] = {
    "conv": [
        ((3, 9, 9), {"out": 4, "kernel": 3}),
        ((3, 9, 9), {"out": 4, "kernel": 3, "stride": 2, "padding": 1, "bias": False}),
        ((4, 10, 7), {"out": 6, "kernel": [3, 1], "stride": [2, 1], "padding": [1, 0]}),
        ((4, 9, 9), {"out": 4, "kernel": 3, "padding": "same", "dilation": 2}),
        ((4, 9, 9), {"out": 8, "kernel": 5, "padding": "valid"}),
        ((4, 9, 9), {"out": 4, "kernel": 4, "padding": "same"}),  # even: torch pads 1 + 2
        ((4, 2, 2), {"out": 4, "kernel": 5, "padding": "same"}),  # kernel > input is fine
        ((6, 8, 8), {"out": 6, "kernel": 3, "padding": 1, "groups": 6}),  # depthwise
        ((6, 8, 8), {"out": 9, "kernel": 1, "groups": 3}),
        ((6, 13, 13), {"out": 4, "kernel": 3, "dilation": 4}),
        ((2, 17), {"out": 5, "kernel": 3, "stride": 2}),  # 1-D
        ((2, 5, 6, 7), {"out": 3, "kernel": 3, "padding": 1, "stride": [1, 2, 2]}),  # 3-D
    ],
    "conv_transpose": [
        ((4, 5, 5), {"out": 3, "kernel": 2, "stride": 2}),
        ((4, 5, 5), {"out": 3, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}),
        ((4, 5, 6), {"out": 2, "kernel": 3, "dilation": 2, "groups": 2, "bias": False}),
        ((2, 7), {"out": 2, "kernel": 4, "stride": 3}),
        ((2, 3, 4, 5), {"out": 2, "kernel": 2, "stride": [1, 2, 2]}),
    ],
    "linear": [
        ((12,), {"out": 5}),
        ((3, 12), {"out": 5, "bias": False}),  # applies to the last dim, like nn.Linear
    ],
    "max_pool": [
        ((3, 8, 8), {"kernel": 2}),
        ((3, 9, 9), {"kernel": 3, "stride": 2, "padding": 1}),
        ((3, 8, 8), {"kernel": 3, "stride": 2, "ceil_mode": True}),
        ((3, 6, 6), {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}),
        ((3, 11, 11), {"kernel": 3, "dilation": 2}),
        ((3, 20), {"kernel": 4}),
        ((2, 4, 6, 6), {"kernel": 2}),
    ],
    "avg_pool": [
        ((3, 8, 8), {"kernel": 2}),
        ((3, 7, 7), {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
        ((3, 8, 8), {"kernel": 3, "stride": 2, "ceil_mode": True}),
        ((3, 20), {"kernel": 3, "stride": 1}),
        ((2, 4, 6, 6), {"kernel": [2, 3, 3]}),
    ],
    "adaptive_avg_pool": [
        ((3, 9, 9), {}),
        ((3, 9, 7), {"output": [3, 2]}),
        ((3, 20), {"output": 6}),
        ((2, 4, 6, 6), {"output": 2}),
    ],
    "adaptive_max_pool": [
        ((3, 9, 9), {"output": 2}),
        ((3, 20), {}),
    ],
    "global_avg_pool": [((5, 7, 7), {}), ((5, 9), {}), ((5, 3, 4, 4), {})],
    "bn": [
        ((6,), {}),
        ((6, 10), {"eps": 1e-3, "momentum": 0.01}),
        ((6, 5, 5), {"affine": False}),
        ((6, 3, 4, 4), {}),
    ],
    "layer_norm": [((6, 5, 5), {}), ((6, 5, 5), {"dims": 1, "eps": 1e-6}), ((8,), {})],
    "group_norm": [((6, 5, 5), {"groups": 3}), ((8, 9), {"groups": 8, "affine": False})],
    "relu": [((3, 4, 4), {})],
    "relu6": [((3, 4, 4), {})],
    "sigmoid": [((3, 4, 4), {})],
    "tanh": [((3, 4), {})],
    "hardswish": [((3, 4, 4), {})],
    "hardsigmoid": [((3, 4, 4), {})],
    "silu": [((3, 4, 4), {})],
    "identity": [((3, 4, 4), {})],
    "leaky_relu": [((3, 4, 4), {}), ((3, 4, 4), {"negative_slope": 0.2})],
    "gelu": [((3, 4, 4), {}), ((7,), {"approximate": "tanh"})],
    "softmax": [((10,), {}), ((3, 4, 5), {"dim": 2})],
    "dropout": [((3, 4, 4), {}), ((3, 4, 4), {"p": 0.1})],
    "flatten": [((3, 4, 5), {}), ((7,), {})],
    "upsample": [
        ((3, 4, 5), {"scale": 2}),
        ((3, 4, 5), {"scale": 3, "mode": "bilinear", "align_corners": False}),
        ((3, 4, 5), {"size": [7, 9], "mode": "bilinear", "align_corners": True}),
        ((3, 4, 5), {"size": 6}),
        ((3, 10), {"scale": 2, "mode": "linear"}),
        ((2, 3, 4, 4), {"scale": 2, "mode": "trilinear"}),
    ],
    "channel_shuffle": [((6, 4, 4), {"groups": 3}), ((8, 5), {"groups": 2})],
}

CASES = [(kind, shape, params) for kind in sorted(LAYERS)
         for shape, params in SAMPLES.get(kind, [((3, 8, 8), {"__missing__": True})])]


def _torch_out(kind: str, in_shape: Shape, params: dict[str, Any]) -> tuple[int, ...]:
    built = LAYERS[kind].fn(in_shape, **params)
    module = built.make().eval()
    with torch.no_grad():
        y = module(torch.randn(2, *in_shape))
    return tuple(y.shape)


def test_every_kind_has_samples() -> None:
    missing = sorted(set(LAYERS) - set(SAMPLES))
    assert not missing, f"add rows to SAMPLES in tests/test_layers.py for: {missing}"
    assert not set(SAMPLES) - set(LAYERS), "SAMPLES names kinds that are not registered"


@pytest.mark.parametrize(("kind", "in_shape", "params"), CASES,
                         ids=[f"{k}-{'x'.join(map(str, s))}-{i}" for i, (k, s, _) in
                              enumerate(CASES)])
def test_shape_rule_matches_torch(kind: str, in_shape: Shape, params: dict[str, Any]) -> None:
    if "__missing__" in params:
        pytest.fail(f"layer kind {kind!r} has no sample in SAMPLES")
    built = LAYERS[kind].fn(in_shape, **params)
    assert _torch_out(kind, in_shape, params) == (2, *built.out_shape)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_schema_is_typed_and_documented(kind: str) -> None:
    """spec.py checks YAML fields against these hints, so every field needs one."""
    lk = LAYERS[kind]
    assert lk.doc, f"{kind} needs a one-line docstring"
    for name, param in lk.params.items():
        assert name in lk.hints, f"{kind}.{name} has no type hint"
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


def test_duplicate_registration_raises() -> None:
    from cnncost.layers import register_layer

    with pytest.raises(RuntimeError, match="registered twice"):
        register_layer("conv")(lambda in_shape: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("kind", "in_shape", "params", "message"),
    [
        ("conv", (3, 8, 8), {"out": 4, "kernel": 3, "groups": 2},
         "groups=2 does not divide in_channels=3"),
        ("conv", (4, 8, 8), {"out": 3, "kernel": 3, "groups": 2},
         "groups=2 does not divide out=3"),
        ("conv", (3, 8, 8), {"out": 4, "kernel": 9}, "kernel 9 .* larger than its padded input"),
        ("conv", (3, 8, 8), {"out": 4, "kernel": 3, "dilation": 4},
         r"kernel 3 \(dilation 4\) is larger"),
        ("conv", (3, 8, 8), {"out": 0, "kernel": 3}, "out=0 must be positive"),
        ("conv", (3, 8, 8), {"out": 4, "kernel": [3, 3, 3]},
         "kernel has 3 values, expected 1 or 2"),
        ("conv", (3, 8, 8), {"out": 4, "kernel": 3, "padding": "same", "stride": 2},
         "padding='same' needs stride 1"),
        ("conv", (48,), {"out": 4, "kernel": 3},
         r"conv needs an input shaped \(C, L\) or \(C, H, W\) or \(C, D, H, W\), got 48"),
        ("conv_transpose", (4, 5, 5), {"out": 3, "kernel": 2, "stride": 2, "output_padding": 2},
         "output_padding=2 must be smaller than stride or dilation"),
        ("max_pool", (3, 8, 8), {"kernel": 3, "padding": 2}, "padding=2 must be at most half"),
        ("max_pool", (3, 8, 8), {"kernel": 2, "dilation": 0}, "dilation=0 must be positive"),
        ("avg_pool", (3, 2, 2), {"kernel": 3},
         r"kernel 3 \(dilation 1\) is larger than its padded input 2\+2x0"),
        ("group_norm", (6, 4, 4), {"groups": 4}, "groups=4 does not divide channels=6"),
        ("layer_norm", (6, 4, 4), {"dims": 4}, "dims=4 must be between 1 and 3"),
        ("softmax", (6, 4), {"dim": 2}, "dim=2 must be between 0 and 1"),
        ("dropout", (6,), {"p": 1.5}, "p=1.5 must be between 0 and 1"),
        ("upsample", (3, 4, 4), {}, "exactly one of scale or size"),
        ("upsample", (3, 4, 4), {"scale": 2, "mode": "linear"}, "does not fit a 2-D input"),
        ("upsample", (3, 4, 4), {"scale": 2, "align_corners": True}, "only applies to linear"),
        ("channel_shuffle", (6, 4, 4), {"groups": 4}, "groups=4 does not divide channels=6"),
    ],
)
def test_shape_rule_rejects(kind: str, in_shape: Shape, params: dict[str, Any],
                            message: str) -> None:
    with pytest.raises(LayerError, match=message):
        LAYERS[kind].fn(in_shape, **params)


# ---------------------------------------------------------------- property: rule == torch


def _agrees(kind: str, in_shape: Shape, params: dict[str, Any]) -> None:
    """The rule accepts exactly what torch accepts, with the same output shape."""
    try:
        expected: tuple[int, ...] | None = (2, *LAYERS[kind].fn(in_shape, **params).out_shape)
    except LayerError:
        expected = None
    try:
        got: tuple[int, ...] | None = _torch_out_raw(kind, in_shape, params)
    except (RuntimeError, ValueError):
        got = None
    if got is not None and 0 in got:
        got = None  # torch allows an empty output (conv_transpose); a spec rejects it
    assert got == expected, (kind, in_shape, params)


def _torch_out_raw(kind: str, in_shape: Shape, params: dict[str, Any]) -> tuple[int, ...]:
    nn = torch.nn
    nd = len(in_shape) - 1
    p = {k: v for k, v in params.items()}
    if kind == "conv":
        m: torch.nn.Module = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1](
            in_shape[0], p["out"], p["kernel"], p["stride"], p["padding"], p["dilation"],
            p["groups"])
    elif kind == "conv_transpose":
        m = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[nd - 1](
            in_shape[0], p["out"], p["kernel"], p["stride"], p["padding"], p["output_padding"],
            p["groups"], True, p["dilation"])
    elif kind == "max_pool":
        m = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[nd - 1](
            p["kernel"], p["stride"], p["padding"], p["dilation"], ceil_mode=p["ceil_mode"])
    else:
        m = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[nd - 1](
            p["kernel"], p["stride"], p["padding"], p["ceil_mode"])
    with torch.no_grad():
        return tuple(m(torch.zeros(2, *in_shape)).shape)


_size = st.integers(1, 12)
_small = st.integers(1, 4)


@pytest.mark.slow  # oracle: torch on drawn shapes
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=_size, cin=st.sampled_from([1, 2, 4, 6]), out=st.sampled_from([2, 3, 4, 6]),
       kernel=st.integers(1, 5), stride=_small, padding=st.integers(0, 3),
       dilation=st.integers(1, 3), groups=st.sampled_from([1, 2, 3]),
       same=st.booleans(), nd=st.integers(1, 2))
def test_conv_rule_agrees_with_torch(size: int, cin: int, out: int, kernel: int, stride: int,
                                     padding: int, dilation: int, groups: int, same: bool,
                                     nd: int) -> None:
    pad: Any = "same" if same else padding
    _agrees("conv", (cin, *[size] * nd), {"out": out, "kernel": kernel, "stride": stride,
                                          "padding": pad, "dilation": dilation,
                                          "groups": groups})


@pytest.mark.slow  # oracle: torch on drawn shapes
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=_size, kernel=st.integers(1, 4), stride=_small, padding=st.integers(0, 2),
       output_padding=st.integers(0, 2), dilation=st.integers(1, 3),
       groups=st.sampled_from([1, 2]))
def test_conv_transpose_rule_agrees_with_torch(size: int, kernel: int, stride: int,
                                               padding: int, output_padding: int,
                                               dilation: int, groups: int) -> None:
    _agrees("conv_transpose", (2, size, size),
            {"out": 2, "kernel": kernel, "stride": stride, "padding": padding,
             "output_padding": output_padding, "dilation": dilation, "groups": groups})


@pytest.mark.slow  # oracle: torch on drawn shapes
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["max_pool", "avg_pool"]), size=_size, kernel=st.integers(1, 5),
       stride=_small, padding=st.integers(0, 2), dilation=st.integers(1, 2),
       ceil_mode=st.booleans())
def test_pool_rules_agree_with_torch(kind: str, size: int, kernel: int, stride: int,
                                     padding: int, dilation: int, ceil_mode: bool) -> None:
    params: dict[str, Any] = {"kernel": kernel, "stride": stride, "padding": padding,
                              "ceil_mode": ceil_mode}
    if kind == "max_pool":
        params["dilation"] = dilation
    _agrees(kind, (2, size, size), params)

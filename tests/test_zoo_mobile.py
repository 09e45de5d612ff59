"""The mobile model zoo: width/depth/resolution variables, depthwise convs, paper names.

Published parameter counts (params == reference, params == sum(numel), MACs == fvcore)
are checked for every bundled spec by tests/test_zoo.py; this file checks what the
mobile families add: their variables reach the published variants, and the structure
(depthwise convs, stages and blocks) is the one the papers describe.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.spec import LayerSpec, ModelSpec, load_spec
from cnncost.table import CostTable

SPECS = Path(__file__).resolve().parent.parent / "specs"
MOBILE = ["mobilenetv1", "mobilenetv2", "mobilenetv3_large", "mobilenetv3_small",
          "shufflenetv2_x1_0", "efficientnet_b0"]


def spec_path(name: str) -> Path:
    return SPECS / f"{name}.yaml"


@cache
def analyzed(name: str, **vars: Any) -> CostTable:
    return cnncost.analyze(spec_path(name), **vars)


@cache
def compiled(name: str, **vars: Any) -> ModelSpec:
    return load_spec(spec_path(name), overrides=vars)


def convs(spec: ModelSpec) -> list[LayerSpec]:
    return [layer for layer in spec.layers if layer.kind == "conv"]


def units(spec: ModelSpec, stage: str) -> list[str]:
    """The block names under ``stage`` (``stage2.0``, ``stage2.1``, ...) in order."""
    seen: dict[str, None] = {}
    for layer in spec.layers:
        parts = layer.path.split(".")
        if parts[0] == stage:
            seen.setdefault(parts[1], None)
    return list(seen)


def top_level(spec: ModelSpec) -> list[str]:
    seen: dict[str, None] = {}
    for layer in spec.layers:
        seen.setdefault(layer.path.split(".")[0], None)
    return list(seen)


# --------------------------------------------------------------------------- width / depth


def _make_divisible(v: float, divisor: int = 8) -> int:
    # torchvision.models._utils._make_divisible, written out again for the tests.
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def mobilenetv2_params(width: float, classes: int = 1000) -> int:
    """torchvision's MobileNetV2 construction, counted by hand from Table 2 (t, c, n, s)."""

    def conv_bn(cin: int, cout: int, k: int, groups: int = 1) -> int:
        return cout * (cin // groups) * k * k + 2 * cout   # weight + BN gamma/beta

    c = _make_divisible(32 * width)
    total = conv_bn(3, c, 3)
    for t, base, n, _s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        out = _make_divisible(base * width)
        for _ in range(n):
            hidden = c * t
            if t != 1:
                total += conv_bn(c, hidden, 1)
            total += conv_bn(hidden, hidden, 3, groups=hidden) + conv_bn(hidden, out, 1)
            c = out
    last = _make_divisible(1280 * max(1.0, width))
    return total + conv_bn(c, last, 1) + last * classes + classes


def test_mobilenetv2_hand_count_matches_published_figures() -> None:
    # torchvision docs: mobilenet_v2 has 3,504,872 parameters; mobilenet_v2(width_mult=0.5)
    # builds 1,968,680. The hand count above must reproduce both before it judges the spec.
    assert mobilenetv2_params(1.0) == 3_504_872
    assert mobilenetv2_params(0.5) == 1_968_680


def test_mobilenetv2_width_half_via_cli_set() -> None:
    result = CliRunner().invoke(app, ["analyze", str(spec_path("mobilenetv2")),
                                      "--set", "width=0.5", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["totals"]["params"] == mobilenetv2_params(0.5)
    # width 0.5: stem make_divisible(16) = 16 channels, head stays 1280 (max(1.0, width)).
    assert doc["layers"][0]["output_shape"] == [1, 16, 112, 112]
    head = next(row for row in doc["layers"] if row["name"] == "head.conv")
    assert head["output_shape"] == [1, 1280, 7, 7]


@pytest.mark.parametrize(("width", "expected"), [(0.75, 2_636_424), (1.4, 6_108_776)],
                         ids=["width0.75", "width1.4"])
def test_mobilenetv2_other_widths(width: float, expected: int) -> None:
    # The two remaining widths of the paper's Table 6 sweep, by the same hand count
    # (1.4: the last conv widens to make_divisible(1280 * 1.4) = 1792).
    assert mobilenetv2_params(width) == expected
    assert analyzed("mobilenetv2", width=width).totals.params == expected


@pytest.mark.parametrize(("width", "depth", "res", "expected"), [
    (1.0, 1.1, 240, 7_794_184),    # B1
    (1.1, 1.2, 260, 9_109_994),    # B2
    (1.2, 1.4, 300, 12_233_232),   # B3
], ids=["b1", "b2", "b3"])
def test_efficientnet_b1_to_b3_via_set(width: float, depth: float, res: int,
                                       expected: int) -> None:
    # Published: torchvision model docs, EfficientNet_B{1,2,3}_Weights num_params;
    # coefficients from torchvision's efficientnet_b1..b3 (width_mult, depth_mult) and the
    # paper's resolutions.
    report = analyzed("efficientnet_b0", width=width, depth=depth, res=res)
    assert report.totals.params == expected
    assert report.input == (1, 3, res, res)


def test_efficientnet_depth_multiplier_rounds_repeats_up() -> None:
    # B3 (depth 1.4): ceil(n * 1.4) for Table 1's n = 1, 2, 2, 3, 3, 4, 1.
    spec = compiled("efficientnet_b0", width=1.2, depth=1.4, res=300)
    counts = [len(units(spec, f"stage{k}")) for k in range(2, 9)]
    assert counts == [2, 3, 3, 5, 5, 6, 2]
    # width 1.2: 32 -> 40 stem channels, 320 -> 384 in stage 8, head 4 x 384 = 1536.
    by_path = {layer.path: layer for layer in spec.layers}
    assert by_path["stem.conv"].out_shape[0] == 40
    assert by_path["head.conv"].out_shape[0] == 1536


def test_shufflenetv2_half_width_via_set() -> None:
    # Table 5, 0.5x column: 48-96-192-1024; torchvision shufflenet_v2_x0_5 docs: 1,366,792.
    report = analyzed("shufflenetv2_x1_0", stage2_out=48, stage3_out=96, stage4_out=192)
    assert report.totals.params == 1_366_792


# --------------------------------------------------------------------------- MobileNetV1 MACs

# MobileNetV1 at width 1.0, 224x224, conv + FC MACs by hand from Table 1
# (MACs = H_out * W_out * C_out * C_in/groups * k * k):
#   stem 3x3x3x32 s2    112*112*32*27   = 10,838,016
#   block1  dw          112*112*32*9    =  3,612,672  pw 32->64     112*112*32*64  = 25,690,112
#   block2  dw s2       56*56*64*9      =  1,806,336  pw 64->128    56*56*64*128   = 25,690,112
#   block3  dw          56*56*128*9     =  3,612,672  pw 128->128   56*56*128*128  = 51,380,224
#   block4  dw s2       28*28*128*9     =    903,168  pw 128->256   28*28*128*256  = 25,690,112
#   block5  dw          28*28*256*9     =  1,806,336  pw 256->256   28*28*256*256  = 51,380,224
#   block6  dw s2       14*14*256*9     =    451,584  pw 256->512   14*14*256*512  = 25,690,112
#   block7-11 (5x) dw   14*14*512*9     =    903,168  pw 512->512   14*14*512*512  = 51,380,224
#   block12 dw s2       7*7*512*9       =    225,792  pw 512->1024  7*7*512*1024   = 25,690,112
#   block13 dw          7*7*1024*9      =    451,584  pw 1024->1024 7*7*1024*1024  = 51,380,224
#   fc 1024 -> 1000     1024*1000       =  1,024,000
# Sum: 567,716,352 in the convs + 1,024,000 in the FC = 568,740,352, the paper's
# "569 million" mult-adds (Table 8, 1.0 MobileNet-224).
MOBILENETV1_CONV_MACS = (
    112 * 112 * 32 * 27
    + 112 * 112 * 32 * 9 + 112 * 112 * 32 * 64
    + 56 * 56 * 64 * 9 + 56 * 56 * 64 * 128
    + 56 * 56 * 128 * 9 + 56 * 56 * 128 * 128
    + 28 * 28 * 128 * 9 + 28 * 28 * 128 * 256
    + 28 * 28 * 256 * 9 + 28 * 28 * 256 * 256
    + 14 * 14 * 256 * 9 + 14 * 14 * 256 * 512
    + 5 * (14 * 14 * 512 * 9 + 14 * 14 * 512 * 512)
    + 7 * 7 * 512 * 9 + 7 * 7 * 512 * 1024
    + 7 * 7 * 1024 * 9 + 7 * 7 * 1024 * 1024
)
MOBILENETV1_FC_MACS = 1024 * 1000


def test_mobilenetv1_macs_match_paper_exactly() -> None:
    assert MOBILENETV1_CONV_MACS == 567_716_352
    report = analyzed("mobilenetv1")
    assert report.totals.macs == MOBILENETV1_CONV_MACS + MOBILENETV1_FC_MACS == 568_740_352
    assert round(report.totals.macs / 1e6) == 569          # Table 8: 569 million mult-adds
    # Table 2, share of mult-adds: Conv 1x1 94.86%, Conv DW 3x3 3.06%, FC 0.18%. (Its
    # "Conv 3x3 1.19%" must be a transposed 1.91%: 10,838,016 / 568,740,352 = 1.906%, and
    # only 1.91 makes the four rows sum to 100%.)
    def share(suffix: str) -> float:
        macs = sum(row.macs for row in report.layers if row.name.endswith(suffix))
        return round(100 * macs / report.totals.macs, 2)

    assert share("pw.conv") == 94.86
    assert share("dw.conv") == 3.06
    assert share("classifier.fc") == 0.18
    assert share("stem.conv") == 1.91


@pytest.mark.parametrize(("width", "res", "paper_macs_m", "paper_params_m"), [
    (0.75, 224, 325, 2.6), (0.5, 224, 149, 1.3), (0.25, 224, 41, 0.5),   # Table 6
    (1.0, 192, 418, 4.2), (1.0, 160, 290, 4.2), (1.0, 128, 186, 4.2),    # Table 7
], ids=["w0.75", "w0.5", "w0.25", "r192", "r160", "r128"])
def test_mobilenetv1_width_and_resolution_tables(width: float, res: int, paper_macs_m: int,
                                                 paper_params_m: float) -> None:
    # The paper rounds inconsistently (568.7M -> "569", but 290.7M -> "290" at 160), so the
    # published millions are checked to within 1M; exact figures are in the tests below.
    report = analyzed("mobilenetv1", width=width, res=res)
    assert abs(report.totals.macs / 1e6 - paper_macs_m) < 1
    assert round(report.totals.params / 1e6, 1) == paper_params_m


def test_mobilenetv1_resolution_scales_conv_macs_only() -> None:
    # At 160x160 every feature map is 5/7 as wide and high (112 -> 80 ... 7 -> 5), so every
    # conv costs (5/7)^2 = 25/49 as much; the FC and all parameters are unchanged.
    report = analyzed("mobilenetv1", res=160)
    assert MOBILENETV1_CONV_MACS * 25 % 49 == 0
    assert report.totals.macs == MOBILENETV1_CONV_MACS * 25 // 49 + MOBILENETV1_FC_MACS
    assert report.totals.macs == 290_675_200
    assert report.totals.params == analyzed("mobilenetv1").totals.params == 4_231_976


@pytest.mark.parametrize("name", MOBILE)
def test_doubling_resolution_quadruples_spatial_conv_macs(name: str) -> None:
    # 224 -> 448: every feature map doubles in both sides (all strides divide 448/32 = 14),
    # so each conv's MACs x4 -- except the squeeze-excite 1x1 convs, which see a pooled 1x1
    # map at any resolution. Linear layers and all parameters stay the same.
    base, big = analyzed(name), analyzed(name, res=448)
    assert big.totals.params == base.totals.params
    assert [r.name for r in big.layers] == [r.name for r in base.layers]
    for small_row, big_row in zip(base.layers, big.layers, strict=True):
        assert big_row.params == small_row.params, small_row.name
        if small_row.kind == "conv" and small_row.output_shape[2:] != (1, 1):
            assert big_row.macs == 4 * small_row.macs, small_row.name
        elif small_row.kind in ("conv", "linear"):
            assert big_row.macs == small_row.macs, small_row.name


# --------------------------------------------------------------------------- depthwise convs

# Depthwise convs per network: V1 one per separable block (13); V2 one per bottleneck
# (1+2+3+4+3+3+1 = 17); V3 one per bneck (15 / 11); ShuffleNetV2 one per basic unit and
# two per down-sampling unit (3 x 2 + 3 + 7 + 3 = 19); EfficientNet-B0 one per MBConv
# (1+2+2+3+3+4+1 = 16).
DEPTHWISE = {"mobilenetv1": 13, "mobilenetv2": 17, "mobilenetv3_large": 15,
             "mobilenetv3_small": 11, "shufflenetv2_x1_0": 19, "efficientnet_b0": 16}


@pytest.mark.parametrize("name", MOBILE)
def test_depthwise_convs_are_depthwise(name: str) -> None:
    spec = compiled(name)
    grouped = [c for c in convs(spec) if c.params.get("groups", 1) > 1]
    named_dw = [c for c in convs(spec) if "dw" in c.path.split(".")]
    assert [c.path for c in grouped] == [c.path for c in named_dw]
    assert len(grouped) == DEPTHWISE[name]
    for conv in grouped:
        channels = conv.in_shapes[0][0]
        assert conv.params["groups"] == channels == conv.out_shape[0], conv.path


@pytest.mark.parametrize("name", MOBILE)
def test_depthwise_convs_stay_depthwise_at_other_widths(name: str) -> None:
    other_widths: dict[str, dict[str, Any]] = {
        "shufflenetv2_x1_0": {"stage2_out": 48, "stage3_out": 96, "stage4_out": 192},
        "efficientnet_b0": {"width": 1.2, "depth": 1.4},
    }
    overrides = other_widths.get(name, {"width": 0.5})
    spec = compiled(name, **overrides)
    for conv in convs(spec):
        if "dw" in conv.path.split("."):
            assert conv.params["groups"] == conv.in_shapes[0][0] == conv.out_shape[0]


# --------------------------------------------------------------------------- names and stages


def test_mobilenetv1_names_follow_table1() -> None:
    spec = compiled("mobilenetv1")
    blocks = [f"block{i}" for i in range(1, 14)]
    assert top_level(spec) == ["stem", *blocks, "pool", "classifier"]
    by_path = {layer.path: layer for layer in spec.layers}
    # Table 1 strides: s2 at the stem and blocks 2, 4, 6, 12 (112 -> 56 -> 28 -> 14 -> 7).
    sizes = [by_path[f"{b}.pw.conv"].out_shape[1] for b in blocks]
    assert sizes == [112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7]
    assert [by_path[f"{b}.dw.conv"].params["kernel"] for b in blocks] == [3] * 13


def test_mobilenetv2_stages_follow_table2() -> None:
    spec = compiled("mobilenetv2")
    stages = [f"stage{k}" for k in range(1, 8)]
    assert top_level(spec) == ["stem", *stages, "head", "pool", "classifier"]
    # Table 2: n = 1, 2, 3, 4, 3, 3, 1; each stage's output: c channels at input/stride.
    assert [len(units(spec, s)) for s in stages] == [1, 2, 3, 4, 3, 3, 1]
    last = {s: [layer for layer in spec.layers if layer.path.startswith(s + ".")][-1]
            for s in stages}
    assert [last[s].out_shape for s in stages] == [
        (16, 112, 112), (24, 56, 56), (32, 28, 28), (64, 14, 14), (96, 14, 14),
        (160, 7, 7), (320, 7, 7)]
    # Only the first bottleneck of a stage changes shape, so the other 10 have a shortcut.
    adds = [layer.path for layer in spec.layers if layer.kind == "add"]
    assert len(adds) == sum(n - 1 for n in [1, 2, 3, 4, 3, 3, 1]) == 10
    assert all(path.split(".")[1] != "0" for path in adds)
    # t = 1 in stage 1: no expansion conv there; t = 6 elsewhere: hidden = 6 x input.
    paths = {layer.path: layer for layer in spec.layers}
    assert "stage1.0.expand.conv" not in paths
    assert paths["stage3.0.expand.conv"].out_shape[0] == 6 * 24


@pytest.mark.parametrize(("name", "se_rows", "hs_rows", "kernels"), [
    ("mobilenetv3_large", [4, 5, 6, 11, 12, 13, 14, 15], list(range(7, 16)),
     [3, 3, 3, 5, 5, 5, 3, 3, 3, 3, 3, 3, 5, 5, 5]),
    ("mobilenetv3_small", [1, *range(4, 12)], list(range(4, 12)),
     [3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5]),
], ids=["large", "small"])
def test_mobilenetv3_bnecks_follow_tables(name: str, se_rows: list[int], hs_rows: list[int],
                                          kernels: list[int]) -> None:
    spec = compiled(name)
    rows = len(kernels)
    assert top_level(spec) == ["stem", *[f"bneck{i}" for i in range(1, rows + 1)],
                               "head", "pool", "classifier"]
    kinds = {layer.path: layer.kind for layer in spec.layers}
    by_path = {layer.path: layer for layer in spec.layers}
    assert [i for i in range(1, rows + 1) if f"bneck{i}.se.gate" in kinds] == se_rows
    assert all(kinds[f"bneck{i}.se.gate"] == "hardsigmoid" for i in se_rows)
    assert [i for i in range(1, rows + 1) if kinds[f"bneck{i}.dw.act"] == "hardswish"] == hs_rows
    assert [by_path[f"bneck{i}.dw.conv"].params["kernel"] for i in range(1, rows + 1)] == kernels
    # SE squeeze width: make_divisible(exp // 4, 8), e.g. 72 // 4 = 18 -> 24 channels.
    if name == "mobilenetv3_large":
        assert by_path["bneck4.se.fc1"].out_shape[0] == 24
    # Classifier: Linear -> hardswish -> dropout -> Linear.
    assert [kinds[p] for p in kinds if p.startswith("classifier.")] == [
        "flatten", "linear", "hardswish", "dropout", "linear"]


def test_shufflenetv2_units_follow_table5() -> None:
    spec = compiled("shufflenetv2_x1_0")
    assert top_level(spec) == ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5",
                               "pool", "flatten", "fc"]
    # Table 5: repeats 1 + 3, 1 + 7, 1 + 3; output 116, 232, 464 channels at 28, 14, 7.
    paths = [layer.path for layer in spec.layers]
    by_path = {layer.path: layer for layer in spec.layers}
    for stage, n, out in [("stage2", 4, (116, 28, 28)), ("stage3", 8, (232, 14, 14)),
                          ("stage4", 4, (464, 7, 7))]:
        names = units(spec, stage)
        assert names == [str(j) for j in range(n)]
        # Fig. 3(d) first (two branches on the whole input), then Fig. 3(c) (channel split).
        assert f"{stage}.0.branch1.dw" in paths and f"{stage}.0.x1.slice" not in paths
        for j in range(1, n):
            assert f"{stage}.{j}.x1.slice" in paths and f"{stage}.{j}.branch1.dw" not in paths
            assert by_path[f"{stage}.{j}.x1.slice"].out_shape[0] == out[0] // 2
        for j in range(n):
            shuffle = by_path[f"{stage}.{j}.shuffle"]
            assert shuffle.kind == "channel_shuffle" and shuffle.params["groups"] == 2
            assert shuffle.out_shape == out


def test_efficientnet_b0_stages_follow_table1() -> None:
    spec = compiled("efficientnet_b0")
    stages = [f"stage{k}" for k in range(2, 9)]
    assert top_level(spec) == ["stem", *stages, "head", "pool", "classifier"]
    by_path = {layer.path: layer for layer in spec.layers}
    # Table 1 stages 2-8: operator MBConv<t> k x k, resolution, channels, layers.
    table = [(1, 3, 112, 16, 1), (6, 3, 56, 24, 2), (6, 5, 28, 40, 2), (6, 3, 14, 80, 3),
             (6, 5, 14, 112, 3), (6, 5, 7, 192, 4), (6, 3, 7, 320, 1)]
    for stage, (t, k, size, c, n) in zip(stages, table, strict=True):
        assert units(spec, stage) == [str(j) for j in range(n)]
        for j in range(n):
            block = f"{stage}.{j}"
            dw = by_path[f"{block}.dw.conv"]
            assert dw.params["kernel"] == k
            assert dw.out_shape == (dw.in_shapes[0][0], size, size)
            assert (f"{block}.expand.conv" in by_path) == (t != 1)
            if t != 1:
                assert dw.in_shapes[0][0] == t * by_path[f"{block}.expand.conv"].in_shapes[0][0]
            # SE squeezes to a quarter of the block's input channels (at least 1).
            block_in = (by_path[f"{block}.expand.conv"] if t != 1 else dw).in_shapes[0][0]
            assert by_path[f"{block}.se.fc1"].out_shape[0] == max(1, block_in // 4)
            assert by_path[f"{block}.se.gate"].kind == "sigmoid"
            assert by_path[f"{block}.project.conv"].out_shape == (c, size, size)
    # Stage 9: 1x1 conv to 1280, pooling, FC.
    assert by_path["head.conv"].out_shape == (1280, 7, 7)
    assert by_path["classifier.fc"].out_shape == (1000,)


@pytest.mark.parametrize("name", MOBILE)
def test_specs_carry_a_published_reference(name: str) -> None:
    spec = compiled(name)
    assert spec.name == name
    assert isinstance(spec.reference.get("params"), int) and spec.reference.get("source")
    # Every spec exposes resolution and classes; classes only touch the last linear layer.
    assert {"res", "classes"} <= set(spec.vars)
    ten = compiled(name, classes=10)
    assert ten.output_shape == (10,)
    assert ten.layers[-1].in_shapes == spec.layers[-1].in_shapes


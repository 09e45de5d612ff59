"""The lectures' worked examples (docs/worked-examples.md) from specs/textbook/.

Every expected number is the slide's own arithmetic written out here (never a value cnncost
printed); the lecture and slide each case comes from are named in its comment (full citations
in docs/worked-examples.md). Symbolic slides (VGG, ResNet, ResNeXt, MobileNet, grouped,
receptive-field and spatially separable cases) are checked at two or three sizes, including
odd, non-square ones, so a spec that only matches at its defaults fails. Those slides' "FLOPs"
are multiply-adds (A. Erdem, COMP541, "Measures of Model Complexity": "Most papers use 1 FLOP =
1 multiply and 1 addition"): cnncost's MACs.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnncost.count.drivers import count_spec
from cnncost.spec import load_spec
from cnncost.table import CostTable

TEXTBOOK = Path(__file__).resolve().parent.parent / "specs" / "textbook"


@functools.cache
def _count(spec: str, sets: tuple[tuple[str, int], ...] = ()) -> CostTable:
    return count_spec(load_spec(TEXTBOOK / spec, overrides=dict(sets)))


def _table(spec: str, sets: dict[str, int]) -> CostTable:
    return _count(spec, tuple(sorted(sets.items())))


def _rows(table: CostTable, layers: tuple[str, ...]):
    return [r for r in table.layers if not layers or r.name in layers]


@dataclass(frozen=True)
class Ratio:
    """num / den of one figure, e.g. MACs of this spec over another spec's."""

    what: str
    den: str  # spec file of the denominator ("" = the case's own spec)
    expected: float  # closed form, exact
    den_sets: dict[str, int] = field(default_factory=dict)  # default: the case's own sets
    num_sets: dict[str, int] | None = None  # default: the case's own sets
    num_layers: tuple[str, ...] = ()
    den_layers: tuple[str, ...] = ()
    slide: tuple[float, float] | None = None  # (the slide's rounded value, tolerance)
    num: str = ""  # spec file of the numerator ("" = the case's own spec)


@dataclass(frozen=True)
class Case:
    spec: str
    sets: dict[str, int] = field(default_factory=dict)
    macs: int | None = None
    params: int | None = None
    slide_macs: int | None = None  # the number as the slide prints it
    slide_params: int | None = None
    layer_macs: dict[str, int] = field(default_factory=dict)
    layer_params: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per sample, C x H x W
    rf: dict[str, int] = field(default_factory=dict)  # layer -> receptive field
    ratios: tuple[Ratio, ...] = ()


def _vgg_options(C: int, H: int, W: int) -> list:
    s = {"C": C, "H": H, "W": W}
    # A. Erdem, COMP541, "VGG: Deeper Networks, Regular Design": Option 1 Conv(5x5, C -> C):
    # params 25C^2, FLOPs 25C^2HW; Option 2 two Conv(3x3, C -> C): 18C^2, 18C^2HW.
    # "Two 3x3 conv has same receptive field as a single 5x5 conv".
    return [
        pytest.param(Case("conv5x5_CtoC.yaml", s, macs=25 * C**2 * H * W, params=25 * C**2,
                          shapes={"conv1": (C, H, W)}, rf={"conv1": 5}),
                     id=f"vgg-option1-5x5-C{C}-H{H}-W{W}"),
        pytest.param(Case("two_conv3x3_CtoC.yaml", s, macs=18 * C**2 * H * W,
                          params=18 * C**2, shapes={"conv2": (C, H, W)},
                          rf={"conv1": 3, "conv2": 5},
                          ratios=(Ratio("params", "conv5x5_CtoC.yaml", 18 / 25, s),
                                  Ratio("macs", "conv5x5_CtoC.yaml", 18 / 25, s))),
                     id=f"vgg-option2-two3x3-C{C}-H{H}-W{W}"),
    ]


def _vgg_stages(C: int, H: int, W: int) -> list:
    s = {"C": C, "H": H, "W": W}
    # A. Erdem, COMP541, "VGG: Deeper Networks, Regular Design": Input C x 2H x 2W, Conv(3x3, C ->
    # C): memory 4HWC, params 9C^2, FLOPs 36HWC^2; Input 2C x H x W, Conv(3x3, 2C -> 2C): memory
    # 2HWC, params 36C^2, FLOPs 36HWC^2. "Conv layers at each spatial resolution take the same
    # amount of computation!"
    return [
        pytest.param(Case("vgg_stage_2Hx2W.yaml", s, macs=36 * H * W * C**2, params=9 * C**2,
                          shapes={"conv1": (C, 2 * H, 2 * W)}),  # 4HWC values
                     id=f"vgg-stage-2Hx2W-C{C}-H{H}-W{W}"),
        pytest.param(Case("vgg_stage_HxW.yaml", s, macs=36 * H * W * C**2, params=36 * C**2,
                          shapes={"conv1": (2 * C, H, W)},  # 2HWC values
                          ratios=(Ratio("macs", "vgg_stage_2Hx2W.yaml", 1.0, s),
                                  Ratio("output_elements", "vgg_stage_2Hx2W.yaml",
                                        (2 * H * W * C) / (4 * H * W * C), s),
                                  Ratio("params", "vgg_stage_2Hx2W.yaml", 36 / 9, s))),
                     id=f"vgg-stage-HxW-C{C}-H{H}-W{W}"),
    ]


def _resnet_bottleneck(C: int, H: int, W: int) -> list:
    s = {"C": C, "H": H, "W": W}
    # A. Erdem, COMP541, "Improving ResNets": bottleneck 1x1 4C->C (4HWC^2), 3x3 C->C (9HWC^2),
    # 1x1 C->4C (4HWC^2): Total FLOPs 17HWC^2. Weights only: 4C^2 + 9C^2 + 4C^2 params.
    return [pytest.param(Case(
        "resnet_bottleneck.yaml", s, macs=17 * H * W * C**2, params=17 * C**2,
        layer_macs={"reduce": 4 * H * W * C**2, "conv3x3": 9 * H * W * C**2,
                    "expand": 4 * H * W * C**2},
        shapes={"reduce": (C, H, W), "conv3x3": (C, H, W), "expand": (4 * C, H, W)}),
        id=f"resnet-bottleneck-C{C}-H{H}-W{W}")]


def _resnext(C: int, G: int, c: int, H: int, W: int) -> list:
    s = {"C": C, "G": G, "c": c, "H": H, "W": W}
    # A. Erdem, COMP541, "Improving ResNets: ResNeXt": Total FLOPs (8Cc + 9c^2) *
    # HWG, against the bottleneck's 17HWC^2 (resnet_bottleneck.yaml at the same C, H, W).
    return [pytest.param(Case(
        "resnext_block.yaml", s, macs=(8 * C * c + 9 * c**2) * H * W * G,
        params=(8 * C * c + 9 * c**2) * G,  # 4C x Gc + 9 x c x Gc (grouped) + Gc x 4C
        shapes={"conv3x3": (G * c, H, W), "expand": (4 * C, H, W)},
        ratios=(Ratio("macs", "resnet_bottleneck.yaml",
                      (8 * C * c + 9 * c**2) * G / (17 * C**2), {"C": C, "H": H, "W": W}),)),
        id=f"resnext-C{C}-G{G}-c{c}-H{H}-W{W}")]


def _mobilenet_blocks(C: int, H: int, W: int) -> list:
    s = {"C": C, "H": H, "W": W}
    # A. Erdem, COMP541, "MobileNets: Tiny Networks (For Mobile Devices)": standard
    # block 9C^2HW; depthwise separable (9C + C^2)HW; Speedup = 9C^2 / (9C + C^2) = 9C / (9 + C).
    return [
        pytest.param(Case("mobilenet_standard_block.yaml", s, macs=9 * C**2 * H * W),
                     id=f"mobilenet-standard-C{C}-H{H}-W{W}"),
        pytest.param(Case(
            "mobilenet_separable_block.yaml", s, macs=(9 * C + C**2) * H * W,
            layer_macs={"depthwise": 9 * C * H * W, "pointwise": C**2 * H * W},
            ratios=(Ratio("macs", "", 9 * C / (9 + C), num="mobilenet_standard_block.yaml"),)),
            id=f"mobilenet-separable-C{C}-H{H}-W{W}"),
    ]


def _grouped(Cin: int, Cout: int, K: int, G: int, H: int, W: int) -> list:
    s = {"Cin": Cin, "Cout": Cout, "K": K, "G": G, "H": H, "W": W}
    # A. Erdem, COMP541, "Grouped Convolution vs Standard Convolution": FLOPs
    # C_out C_in K^2 HW / G (groups=1: C_out C_in K^2 HW); weights G x (C_out/G) x (C_in/G) x K x K.
    return [pytest.param(Case(
        "grouped_conv.yaml", s, macs=Cout * Cin * K**2 * H * W // G,
        params=G * (Cout // G) * (Cin // G) * K * K, shapes={"conv1": (Cout, H, W)},
        ratios=(Ratio("macs", "", 1 / G, den_sets={**s, "G": 1}),)),
        id=f"grouped-Cin{Cin}-Cout{Cout}-K{K}-G{G}")]


def _stacked(L: int, K: int) -> list:
    # A. Erdem, COMP541, "Receptive Fields": "With L layers the receptive field size
    # is 1 + L * (K - 1)"
    return [pytest.param(Case(
        "stacked_convs.yaml", {"L": L, "K": K},
        rf={f"stack.{i}": 1 + (i + 1) * (K - 1) for i in range(L)}),
        id=f"stacked-L{L}-K{K}")]


def _spatial_separable(K: int, W: int, C: int) -> list:
    # A. Ki, Deep Learning "Convolutional Neural Network", "Separable convolution: spatially
    # separable": standard K*K*W*W multiplications, Kx1 then 1xK: K*W*W + K*W*W, "2/K ratio" (x C^2
    # with C channels).
    s = {"K": K, "W": W, "C": C}
    return [pytest.param(Case(
        "spatial_separable.yaml", s, macs=(K * W * W + K * W * W) * C**2,
        layer_macs={"vertical": K * W * W * C**2, "horizontal": K * W * W * C**2},
        shapes={"vertical": (C, W, W), "horizontal": (C, W, W)},
        ratios=(Ratio("macs", "", 2 / K, num_sets={**s, "separable": 1},
                      den_sets={**s, "separable": 0}),)),
        id=f"spatial-separable-K{K}-W{W}-C{C}")]


CASES = [
    # N. Khan, CS-568, "Cost of Convolution Layer": "(128 x 128 x 64) x (5 x 5 x 256) = 6710886400
    # = 6.7 billion"
    pytest.param(Case("conv5x5.yaml", macs=(128 * 128 * 64) * (5 * 5 * 256),
                      slide_macs=6710886400, params=5 * 5 * 256 * 64 + 64,
                      shapes={"conv1": (64, 128, 128)}, rf={"conv1": 5}),
                 id="conv5x5-256to64"),
    # N. Khan, CS-568, "1x1 convolution": 1x1 to 32 then 5x5 to 64: "= 973078528 = 0.97
    # billion", "almost 7 times reduction"; per output pixel 256*32 + 25*32*64 against 25*256*64.
    pytest.param(Case("conv1x1_5x5.yaml",
                      macs=(128 * 128 * 32) * (1 * 1 * 256) + (128 * 128 * 64) * (5 * 5 * 32),
                      slide_macs=973078528,
                      params=(256 * 32 + 32) + (5 * 5 * 32 * 64 + 64),
                      shapes={"conv1": (32, 128, 128), "conv2": (64, 128, 128)},
                      ratios=(Ratio("macs", "conv5x5.yaml", (256 * 32 + 25 * 32 * 64)
                                    / (25 * 256 * 64), slide=(1 / 7, 0.01)),)),
                 id="1x1-then-5x5"),
    # N. Khan, CS-568, "Depthwise Separable Convolution": "Number of weights to produce 3
    # channel output = 3 x 3 x 6 x 3 = 162"
    pytest.param(Case("conv3x3_6to3.yaml", params=3 * 3 * 6 * 3, slide_params=162,
                      shapes={"conv1": (3, 4, 4)}),
                 id="standard-3x3-6to3-weights"),
    # N. Khan, CS-568, "Depthwise Separable Convolution": "(3 x 3 x 6) + (6 x 3) = 72"
    pytest.param(Case("dwsep_6to3.yaml", params=(3 * 3 * 6) + (6 * 3), slide_params=72,
                      layer_params={"depthwise": 3 * 3 * 6, "pointwise": 6 * 3},
                      shapes={"depthwise": (6, 4, 4), "pointwise": (3, 4, 4)},
                      ratios=(Ratio("params", "conv3x3_6to3.yaml", 1 / 3 + 1 / 9),)),
                 id="depthwise-separable-6to3-weights"),
    # F. Galassi, Deep Learning 4, "Standard Convolution vs. Depthwise Separable Convolution";
    # A. Ng's Deep Convolutional Models, "Cost Summary": "3 x 3 x 3 x 4 x 4 x 5 = 2160"
    pytest.param(Case("conv3x3_6x6x3.yaml", macs=3 * 3 * 3 * 4 * 4 * 5, slide_macs=2160,
                      shapes={"conv1": (5, 4, 4)}, rf={"conv1": 3}),
                 id="standard-6x6x3-to-4x4x5"),
    # F. Galassi, Deep Learning 4, and A. Ng's Deep Convolutional Models, "Cost Summary":
    # depthwise 3 x 3 x 4 x 4 x 3 = 432, pointwise
    # 1 x 1 x 3 x 4 x 4 x 5 = 240, 432 + 240 = 672; 672/2160 = 0.31 = 1/5 + 1/3^2;
    # "commonly" 1/512 + 1/3^2.
    pytest.param(Case("dwsep_6x6x3.yaml", macs=3 * 3 * 4 * 4 * 3 + 1 * 1 * 3 * 4 * 4 * 5,
                      slide_macs=672,
                      layer_macs={"depthwise": 3 * 3 * 4 * 4 * 3,
                                  "pointwise": 1 * 1 * 3 * 4 * 4 * 5},
                      shapes={"depthwise": (3, 4, 4), "pointwise": (5, 4, 4)},
                      ratios=(Ratio("macs", "conv3x3_6x6x3.yaml", 1 / 5 + 1 / 3**2,
                                    slide=(0.31, 0.005)),
                              Ratio("macs", "conv3x3_6x6x3.yaml", 1 / 512 + 1 / 3**2,
                                    num_sets={"c_out": 512}, den_sets={"c_out": 512},
                                    slide=(1 / 9, 0.005)))),
                 id="depthwise-separable-6x6x3"),
    # A. Ng's Deep Convolutional Models, "The problem of computational cost": 28x28x192 ->
    # 5x5 same, 32 filters: "120 million multiplies"
    pytest.param(Case("inception_5x5.yaml", macs=(28 * 28 * 32) * (5 * 5 * 192),
                      slide_macs=120_422_400, shapes={"conv1": (32, 28, 28)}),
                 id="inception-5x5-naive"),
    # A. Ng's Deep Convolutional Models, "Using 1x1 convolution": 1x1 to 16 (28x28x16 x 192)
    # then 5x5 to 32 (28x28x32 x 5x5x16): "reduced to about a factor of 10"
    pytest.param(Case("inception_5x5_bottleneck.yaml",
                      macs=(28 * 28 * 16) * 192 + (28 * 28 * 32) * (5 * 5 * 16),
                      slide_macs=12_443_648,
                      shapes={"bottleneck": (16, 28, 28), "conv1": (32, 28, 28)},
                      ratios=(Ratio("macs", "inception_5x5.yaml",
                                    (192 * 16 + 5 * 5 * 16 * 32) / (5 * 5 * 192 * 32),
                                    slide=(1 / 10, 0.01)),)),
                 id="inception-5x5-bottleneck"),
    # A. Erdem, COMP541, "VGG: Deeper Networks, Regular Design"
    *_vgg_options(64, 56, 56), *_vgg_options(128, 28, 28), *_vgg_options(3, 10, 7),
    # the same slide, the stage rule
    *_vgg_stages(64, 56, 56), *_vgg_stages(32, 14, 7),
    # A. Erdem, COMP541, "Improving ResNets"
    *_resnet_bottleneck(64, 56, 56), *_resnet_bottleneck(128, 28, 28),
    *_resnet_bottleneck(16, 7, 5),
    # A. Erdem, COMP541, "Improving ResNets: ResNeXt": the slide's two examples,
    # C=64, G=4, c=24 and C=64, G=32, c=4, and one of our own
    *_resnext(64, 4, 24, 56, 56), *_resnext(64, 32, 4, 56, 56), *_resnext(16, 2, 8, 7, 9),
    # A. Erdem, COMP541, "MobileNets: Tiny Networks (For Mobile Devices)"
    *_mobilenet_blocks(64, 56, 56), *_mobilenet_blocks(512, 14, 14), *_mobilenet_blocks(3, 8, 6),
    # A. Erdem, COMP541, "Grouped Convolution vs Standard Convolution": grouped,
    # depthwise (G = C_in = C_out) and odd sizes
    *_grouped(64, 128, 3, 4, 56, 56), *_grouped(32, 32, 5, 32, 14, 14),
    *_grouped(12, 6, 1, 3, 9, 7),
    # A. Erdem, COMP541, "Receptive Fields"
    *_stacked(1, 3), *_stacked(3, 3), *_stacked(4, 5), *_stacked(2, 7),
    # A. Erdem, COMP541, "Guideline 6: Dilated Convolutions" (Yu & Koltun Fig. 1): F1 1-dilated 3x3
    # -> receptive field 3x3, F2 2-dilated -> 7x7, F3 4-dilated -> 15x15; "the number of parameters
    # associated with each layer is identical" (3 x 3 x C x C, C = 16); dilation changes no MACs
    # (64x64 output).
    pytest.param(Case("dilated_convs.yaml", params=3 * (3 * 3 * 16 * 16),
                      layer_params={"F1": 3 * 3 * 16 * 16, "F2": 3 * 3 * 16 * 16,
                                    "F3": 3 * 3 * 16 * 16},
                      layer_macs={f: 64 * 64 * 16 * 3 * 3 * 16 for f in ("F1", "F2", "F3")},
                      shapes={"F1": (16, 64, 64), "F2": (16, 64, 64), "F3": (16, 64, 64)},
                      rf={"F1": 3, "F2": 7, "F3": 15}),
                 id="dilated-1-2-4"),
    # A. Ki, Deep Learning "Convolutional Neural Network", "Separable convolution: spatially
    # separable"
    *_spatial_separable(3, 32, 1), *_spatial_separable(5, 16, 1), *_spatial_separable(7, 20, 4),
    # F. Galassi, Deep Learning 4, "MobileNets" (MobileNet v2): input n x n x 3, t = 6: expansion n
    # x n x 18, depthwise n x n x 18, pointwise n x n x 3 (channels first here).
    *[pytest.param(Case("mobilenetv2_bottleneck.yaml", {"n": n},
                        shapes={"expansion": (3 * 6, n, n), "depthwise": (3 * 6, n, n),
                                "pointwise": (3, n, n), "add1": (3, n, n)},
                        layer_macs={"expansion": n * n * 18 * 3, "depthwise": n * n * 18 * 9,
                                    "pointwise": n * n * 3 * 18}),
                   id=f"mobilenetv2-bottleneck-n{n}") for n in (56, 7)],
]


@pytest.mark.parametrize("case", CASES)
def test_worked_example(case: Case) -> None:
    """The spec reproduces the slide's shapes, MACs, parameters, receptive fields and ratios."""
    table = _table(case.spec, case.sets)
    if case.slide_macs is not None:
        assert case.macs == case.slide_macs  # the slide's arithmetic, transcribed
    if case.slide_params is not None:
        assert case.params == case.slide_params
    if case.macs is not None:
        assert table.totals.macs == case.macs
    if case.params is not None:
        assert table.totals.params == case.params
    rows = {r.name: r for r in table.layers}
    for name, macs in case.layer_macs.items():
        assert rows[name].macs == macs, name
    for name, params in case.layer_params.items():
        assert rows[name].params == params, name
    for name, shape in case.shapes.items():
        assert rows[name].output_shape == (1, *shape), name
    for name, rf in case.rf.items():
        assert rows[name].receptive_field == rf, name
    for ratio in case.ratios:
        num_t = _table(ratio.num or case.spec, case.sets if ratio.num_sets is None else
                       {**case.sets, **ratio.num_sets})
        den_t = _table(ratio.den or case.spec, ratio.den_sets or case.sets)
        num = _measure(num_t, ratio.what, ratio.num_layers)
        den = _measure(den_t, ratio.what, ratio.den_layers)
        assert num / den == pytest.approx(ratio.expected, rel=1e-12), ratio
        if ratio.slide is not None:
            value, tol = ratio.slide
            assert abs(num / den - value) <= tol, (num / den, ratio.slide)


def _measure(table: CostTable, what: str, layers: tuple[str, ...]) -> int:
    rows = _rows(table, layers)
    if what == "output_elements":
        return sum(math.prod(r.output_shape) for r in rows)
    return sum(getattr(r, what) for r in rows)


@pytest.mark.parametrize(("C", "G", "c"), [(64, 4, 24), (64, 32, 4)], ids=["G4-c24", "G32-c4"])
def test_resnext_examples_match_the_bottleneck(C: int, G: int, c: int) -> None:
    """A. Erdem, COMP541, "Improving ResNets: ResNeXt": the slide's examples cost ~the bottleneck.

    They only approximately solve 9Gc^2 + 8GCc - 17C^2 = 0: (8*64*24 + 9*24^2)*4 = 69,888 and
    (8*64*4 + 9*4^2)*32 = 70,144 against 17*64^2 = 69,632 MACs per pixel (within 1%).
    """
    sets = {"C": C, "H": 14, "W": 14}
    resnext = _table("resnext_block.yaml", {**sets, "G": G, "c": c}).totals.macs
    bottleneck = _table("resnet_bottleneck.yaml", sets).totals.macs
    assert abs(resnext / bottleneck - 1) < 0.01
    assert resnext != bottleneck  # approximate, as the slide's numbers are


def test_mobilenet_speedup_tends_to_nine() -> None:
    """A. Erdem, COMP541, "MobileNets: Tiny Networks": speedup 9C/(9+C) => 9 as C -> inf.

    At C=512 it is 9*512/521 > 8.8.
    """
    sets = {"C": 512, "H": 7, "W": 7}
    standard = _table("mobilenet_standard_block.yaml", sets).totals.macs
    separable = _table("mobilenet_separable_block.yaml", sets).totals.macs
    assert 8.8 < standard / separable < 9


# The lectures of the worked examples: the short citation a textbook spec's description ends
# with (`list` and `explain` print it) -> how its full citation in `source` begins.
LECTURES = {
    "N. Khan, CS-568 Deep Learning, PUCIT": "Nazar Khan, CS-568 Deep Learning (PUCIT)",
    "A. Erdem, COMP541 Deep Learning, Koç University": "Aykut Erdem, COMP541 Deep Learning",
    "F. Galassi, Deep Learning 4, ESIR": "Francesca Galassi, Deep Learning 4",
    "A. Ki, Deep Learning: Convolutional Neural Network": "Ando Ki, Deep Learning",
    "notes on A. Ng's Deep Convolutional Models": "lecture notes on Andrew Ng's",
}


def test_every_textbook_spec_is_a_worked_example() -> None:
    """Each spec under specs/textbook/ is tested above and cites lecture and slide title."""
    tested = {p.values[0].spec for p in CASES}
    assert all((TEXTBOOK / name).is_file() for name in tested)
    for path in TEXTBOOK.glob("*.yaml"):
        assert path.name in tested, path.name
        spec = load_spec(path)
        slides = [(short, m.group(1)) for short in LECTURES
                  for m in re.finditer(re.escape(short) + r": '([^']+)'", spec.description)]
        assert slides, f"{path.name}: the description cites no lecture"
        for short, title in slides:
            assert LECTURES[short] in spec.source, (path.name, short)
            assert f'slide "{title}"' in spec.source, (path.name, title)

"""The bundled model zoo: every spec in specs/*.yaml against published figures and fvcore.

The registry tests are parametrized over the spec files, so a new spec is tested without
editing this file: its parameter count must equal its ``reference`` (published) figure, the
built module's ``sum(p.numel())`` and, for MACs, fvcore's independent count. Below them, the
lectures' worked examples (AlexNet, VGG-16, GoogLeNet table 1, ResNet/ResNeXt blocks, U-Net;
docs/worked-examples.md cites each slide).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cnncost.count.drivers import count_spec
from cnncost.errors import SpecError
from cnncost.graph.build import build_module
from cnncost.spec import ModelSpec, load_spec
from cnncost.table import CostRow, CostTable

SPECS = Path(__file__).resolve().parent.parent / "specs"
SPEC_FILES = sorted(SPECS.glob("*.yaml"))  # the zoo; specs/textbook/ is tested elsewhere
# The smallest `res` a spec accepts when it is not 64 (U-Net: valid sizes are 188 + 16k).
SMALL_RES = {"vgg11": 32, "vgg16": 32, "vgg19": 32, "unet": 188}
# fvcore's by_operator() names of the matrix-product ops; it counts 1 MAC as 1 "flop".
FVCORE_MAC_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")
MIB = 1 << 20


def _param(path: Path, slow: bool = False) -> Any:
    marks = [pytest.mark.slow] if slow else []
    return pytest.param(path, id=path.stem, marks=marks)


ALL = [_param(p) for p in SPEC_FILES]
ALL_FVCORE = [_param(p, slow=True) for p in SPEC_FILES]  # an oracle: the slow tier


def _count(spec: ModelSpec, batch: int = 1) -> CostTable:
    return count_spec(spec, batch=batch, policy="conv+linear")


@functools.cache
def _default(path: Path) -> tuple[ModelSpec, CostTable]:
    """A spec at its own vars and its count (shared by the registry tests)."""
    spec = load_spec(path)
    return spec, _count(spec)


def _small(path: Path) -> ModelSpec:
    """The spec at the smallest input it allows (its default input if `res` cannot shrink)."""
    spec = load_spec(path)
    res = spec.vars.get("res")
    if not isinstance(res, int):
        return spec
    small = min(SMALL_RES.get(path.stem, 64), res)
    try:
        return load_spec(path, overrides={"res": small})
    except SpecError:  # e.g. googlenet_paper's fixed 7x7 average pool needs res >= 193
        return spec


@pytest.fixture
def one_thread() -> Iterator[None]:
    """CPU runs with one intra-op thread: the machine is shared and 2 threads thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- the registry


def test_zoo_is_not_empty() -> None:
    stems = {p.stem for p in SPEC_FILES}
    assert {"alexnet", "vgg16", "resnet50", "googlenet", "unet", "lenet5"} <= stems


@pytest.mark.parametrize("path", ALL)
def test_spec_header(path: Path) -> None:
    spec, _ = _default(path)
    text = path.read_text()
    assert text.startswith("#"), "a zoo spec opens with a comment citing paper and implementation"
    assert spec.name == path.stem
    assert spec.description and "\n" not in spec.description
    assert {"res", "classes"} <= set(spec.vars), "zoo specs take --set res=... and classes=..."


@pytest.mark.parametrize("path", ALL)
def test_params_equal_published_reference(path: Path) -> None:
    spec, table = _default(path)
    published = spec.reference.get("params")
    if published is None:
        pytest.skip(f"{path.stem}: no published parameter count")
    assert spec.reference.get("source"), "a reference figure says where it was published"
    assert table.totals.params == published


@pytest.mark.parametrize("path", ALL)
def test_macs_equal_published_reference(path: Path) -> None:
    """`reference.gmacs` is published to 3 decimals (torchvision's `_ops`, a MAC count)."""
    spec, table = _default(path)
    published = spec.reference.get("gmacs")
    if published is None:
        pytest.skip(f"{path.stem}: no published MAC count")
    assert abs(table.totals.macs / 1e9 - published) <= 0.0005


@pytest.mark.slow  # torchvision's weight tables
@pytest.mark.parametrize("path", ALL)
def test_top1_equals_the_weights_it_cites(path: Path, tv_models: Any) -> None:
    """`reference.top1` is the ImageNet-1K acc@1 that torchvision's own weight metadata states
    for the weights the reference cites (MobileNet v1 is not in torchvision: its figure is
    Howard et al. 2017, Table 8, 70.6%)."""
    spec = load_spec(path)
    top1 = spec.reference.get("top1")
    if top1 is None:
        pytest.skip(f"{path.stem}: no published top-1 accuracy")
    cited = re.search(r"(\w+_Weights)\.(\w+)", str(spec.reference.get("source", "")))
    if cited is None:
        assert path.stem == "mobilenetv1" and top1 == 70.6
        return
    weights = getattr(getattr(tv_models, cited.group(1)), cited.group(2))
    assert top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]


@pytest.mark.parametrize("path", ALL)
def test_params_equal_built_module(path: Path) -> None:
    spec, table = _default(path)
    module = build_module(spec, device="meta")
    assert table.totals.params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("path", ALL_FVCORE)
def test_macs_equal_fvcore(path: Path, one_thread: None) -> None:
    """conv+linear MACs == fvcore's conv/linear/matmul count on the same real CPU module."""
    from fvcore.nn import FlopCountAnalysis

    import cnncost

    spec = _small(path)
    model = cnncost.build(str(path), **({"res": spec.vars["res"]} if "res" in spec.vars else {}))
    x = torch.randn(2, *spec.input_shape)
    logging.disable(logging.WARNING)  # fvcore logs every op it skips (relu, add, cat...)
    try:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_op = analysis.by_operator()
    finally:
        logging.disable(logging.NOTSET)
    expected = sum(n for op, n in by_op.items() if op in FVCORE_MAC_OPS)
    assert expected > 0
    assert _count(spec, batch=2).totals.macs == expected


def _rows(table: CostTable, kinds: tuple[str, ...]) -> dict[str, CostRow]:
    return {r.name: r for r in table.layers if r.kind in kinds}


SCALING = [p for p in ALL if p.values[0].stem.startswith(("vgg", "resnet", "resnext"))]


@pytest.mark.parametrize("path", SCALING)
def test_doubling_resolution(path: Path) -> None:
    """At 2x res every conv's output is 2x2 larger, so its MACs x4; FC layers don't change.

    With res a multiple of 32 (224 = 7 x 32) every downsampling layer sees even sizes and
    halves them exactly ((n + 2p - k) // 2 + 1 = n / 2 for the 7x7/2 p3 stem, 3x3/2 p1 convs
    and pools, 1x1/2 projections and 2x2/2 pools), so each conv's MACs scale by exactly 4.
    The adaptive average pool before the classifier makes the FC input independent of res,
    so fc MACs stay the same, and params do not change at all.
    """
    small, big = load_spec(path, overrides={"res": 224}), load_spec(path, overrides={"res": 448})
    t1, t2 = _count(small), _count(big)
    conv1, conv2 = _rows(t1, ("conv",)), _rows(t2, ("conv",))
    fc1, fc2 = _rows(t1, ("linear",)), _rows(t2, ("linear",))
    assert conv1.keys() == conv2.keys() and fc1.keys() == fc2.keys() and fc1
    for name, row in conv1.items():
        assert conv2[name].macs == 4 * row.macs, name
        h, w = row.output_shape[-2:]
        assert conv2[name].output_shape[-2:] == (2 * h, 2 * w), name
    for name, row in fc1.items():
        assert fc2[name].macs == row.macs, name
    conv_macs = sum(r.macs for r in conv1.values())
    fc_macs = sum(r.macs for r in fc1.values())
    assert t1.totals.macs == conv_macs + fc_macs
    assert t2.totals.macs == 4 * conv_macs + fc_macs
    assert t2.totals.params == t1.totals.params


# --------------------------------------------------------------------------- lecture numbers


def _load(name: str, **overrides: Any) -> ModelSpec:
    return load_spec(SPECS / f"{name}.yaml", overrides=overrides)


def test_alexnet_227_matches_the_lecture() -> None:
    """A. Erdem, COMP541, slides "AlexNet" and "AlexNet vs VGG-16".

    227x227 input, 64-192-384-256-256. The slides' per-layer table is a chart; its figures:
    conv1 73M MACs and 784 KB output, ~61M params, 0.7 GFLOP, 1.9 MB of outputs.
    """
    table = _count(_load("alexnet", res=227))
    rows = {r.name: r for r in table.layers}
    conv1 = rows["features.conv1"]
    # (227 + 2x2 - 11) // 4 + 1 = 56
    assert conv1.output_shape == (1, 64, 56, 56)
    # 64 x 56 x 56 outputs x 3 x 11 x 11 MACs each = 200,704 x 363; the slide rounds to "73M"
    assert conv1.macs == 72_855_552
    assert round(conv1.macs / 1e6) == 73
    # float32 output: 200,704 x 4 bytes = 802,816 B = 784 KB exactly (the slide's KB is 1024 B)
    assert conv1.output_bytes == 784 * 1024
    # The slide's "FLOP" is one multiply-add ("Measures of Model Complexity"); per layer
    # H_out W_out C_out x C_in K^2 (conv) and in x out (fc):
    macs = (56 * 56 * 64 * 3 * 11 * 11      # conv1 72,855,552
            + 27 * 27 * 192 * 64 * 5 * 5    # conv2 223,948,800
            + 13 * 13 * 384 * 192 * 3 * 3   # conv3 112,140,288
            + 13 * 13 * 256 * 384 * 3 * 3   # conv4 149,520,384
            + 13 * 13 * 256 * 256 * 3 * 3   # conv5  99,680,256
            + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)  # fc6-8 58,621,952
    assert macs == 716_767_232
    assert table.totals.macs == macs
    assert round(macs / 1e9, 1) == 0.7  # the slide's "0.7 GFLOP"
    # Params equal torchvision's at 224: the adaptive pool is a no-op on 6x6 (slide: "61M").
    assert table.totals.params == 61_100_840
    # "1.9 MB" (a bar chart on the slide) is matched by this convention: the outputs
    # of the 5 conv and 3 fc layers only (no pools or flatten; ReLU in place adds nothing),
    # float32, MB = 1024^2 bytes.
    conv_fc = [r for r in table.layers if r.kind in ("conv", "linear")]
    outputs = (64 * 56 * 56 + 192 * 27 * 27 + 384 * 13 * 13 + 2 * 256 * 13 * 13
               + 4096 + 4096 + 1000)  # 501,288 floats
    assert sum(r.output_bytes for r in conv_fc) == 4 * outputs == 2_005_152
    assert round(4 * outputs / MIB, 1) == 1.9
    # Adding the three max-pool outputs (27x27x64, 13x13x192, 6x6x256) would give 2.25 MiB,
    # which is why the pools cannot be in the slide's sum.
    pools = sum(r.output_bytes for r in table.layers if r.kind == "max_pool")
    assert pools == 4 * (27 * 27 * 64 + 13 * 13 * 192 + 6 * 6 * 256)
    assert round((4 * outputs + pools) / MIB, 1) != 1.9


def test_vgg16_macs_match_the_lectures() -> None:
    """VGG-16 = 138,357,544 params (A. Ng's Deep Convolutional Models: ~138M) and 15.47 GMACs.

    NB: A. Erdem's COMP541 slide "AlexNet vs VGG-16" says "13.6 GFLOP" for VGG-16; that figure
    is not reproduced by any counting we know of (conv alone is 15.35 GMACs), so the test holds
    the exact count.
    """
    stages = [(224, 64, [3, 64]), (112, 128, [64, 128]), (56, 256, [128, 256, 256]),
              (28, 512, [256, 512, 512]), (14, 512, [512, 512, 512])]
    conv = sum(hw * hw * cout * cin * 9 for hw, cout, cins in stages for cin in cins)
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    table = _count(_load("vgg16"))
    assert table.totals.macs == conv + fc == 15_470_264_320
    assert round(table.totals.macs / 1e9, 2) == 15.47


def _block_macs(table: CostTable, prefix: str) -> int:
    return sum(r.macs for r in table.layers if r.name.startswith(prefix))


def test_resnet50_bottleneck_is_17_hwc2() -> None:
    """A. Erdem, COMP541, "Improving ResNets": a 4C -> C -> C -> 4C bottleneck is 17HWC^2."""
    table = _count(_load("resnet50"))
    # layer2.1: C = 128 (4C = 512), 28x28 at 224 input; identity shortcut, no downsample.
    assert _block_macs(table, "layer2.1.") == 17 * 28 * 28 * 128**2


def test_resnext50_block_is_8cc_plus_9c2() -> None:
    """A. Erdem, COMP541, "Improving ResNets: ResNeXt": block = (8 C c + 9 c^2) H W G."""
    table = _count(_load("resnext50_32x4d"))
    # layer1.1: 4C = 256 (C = 64), G = 32 groups of width c = 4, 56x56
    c_, c, g, hw = 64, 4, 32, 56
    assert _block_macs(table, "layer1.1.") == (8 * c_ * c + 9 * c * c) * hw * hw * g


# GoogLeNet table 1 (Szegedy et al. 2014), as printed on the slide "GoogLeNet" of A. Erdem, COMP541.
# Columns: output C, H; #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; slide params
# (K), slide ops (M); `agrees`: whether the slide's params match ours to its rounding.
INCEPTION_ROWS = [
    ("inception3a", 192, 256, 28, (64, 96, 128, 16, 32, 32), 159, 128, True),
    ("inception3b", 256, 480, 28, (128, 128, 192, 32, 96, 64), 380, 304, True),
    ("inception4a", 480, 512, 14, (192, 96, 208, 16, 48, 64), 364, 73, False),
    ("inception4b", 512, 512, 14, (160, 112, 224, 24, 64, 64), 437, 88, False),
    ("inception4c", 512, 512, 14, (128, 128, 256, 24, 64, 64), 463, 100, False),
    ("inception4d", 512, 528, 14, (112, 144, 288, 32, 64, 64), 580, 119, False),
    ("inception4e", 528, 832, 14, (256, 160, 320, 32, 128, 128), 840, 170, False),
    ("inception5a", 832, 832, 7, (256, 160, 320, 32, 128, 128), 1072, 54, False),
    ("inception5b", 832, 1024, 7, (384, 192, 384, 48, 128, 128), 1388, 71, False),
]


def _inception_by_hand(cin: int, cols: tuple[int, ...]) -> tuple[int, int]:
    """Weights and biases of figure 2(b): 1x1; 1x1 -> 3x3; 1x1 -> 5x5; pool -> 1x1."""
    c1, r3, c3, r5, c5, proj = cols
    weights = cin * c1 + cin * r3 + r3 * c3 * 9 + cin * r5 + r5 * c5 * 25 + cin * proj
    return weights, c1 + r3 + c3 + r5 + c5 + proj


@pytest.fixture(scope="module")
def googlenet_paper() -> CostTable:
    return _count(_load("googlenet_paper"))


def _row(table: CostTable, prefix: str) -> tuple[int, int, tuple[int, ...]]:
    rows = [r for r in table.layers if r.name == prefix or r.name.startswith(prefix + ".")]
    assert rows, prefix
    return sum(r.params for r in rows), sum(r.macs for r in rows), rows[-1].output_shape


@pytest.mark.parametrize("row", INCEPTION_ROWS, ids=[r[0] for r in INCEPTION_ROWS])
def test_googlenet_inception_rows_match_slide_table(googlenet_paper: CostTable,
                                                   row: tuple[Any, ...]) -> None:
    """Each inception row of the slide's table 1, against figure 2(b) counted by hand.

    How the slide rounds: params are in units of 1024 (the 3x3 row's 114,688 weights are
    exactly 112 x 1024, the linear's 1,024,000 exactly 1000 x 1024) and include the biases
    (3b: 388,096 weights alone = 379.0 K, with its 640 biases 379.6 K, printed 380K); ops
    are MACs of the weights (biases are not MACs) in decimal millions, rounded to the
    nearest million except 4a (73.6M printed 73M, truncated).
    Where the slide differs: the params column of 4a-5b does not follow from the table's own
    channel columns under any one convention (4a +3.4K, 4b +1.6K, 4c +35K, 4d +11K,
    4e +8K, 5a -53K, 5b +22K against ours, which is also what the ops column implies:
    e.g. 4c's 100M / 14^2 = 510K weights, not 463K). 5a's ops (54M) are its printed
    params x 7^2 (1072K x 49 = 53.8M) and carry the same error; ours is 51.1M.
    """
    name, cin, cout, hw, cols, slide_k, slide_m, agrees = row
    weights, biases = _inception_by_hand(cin, cols)
    params, macs, out_shape = _row(googlenet_paper, name)
    assert out_shape == (1, cout, hw, hw)            # table 1's "output size" column
    assert params == weights + biases                # figure 2(b), biases included
    assert macs == weights * hw * hw                 # ops = weights x output positions
    if name == "inception5a":
        assert abs(macs / 1e6 - slide_m) > 1         # slide error, see the docstring
        assert round(slide_k * 1024 * hw * hw / 1e6) == slide_m
    else:
        assert abs(macs / 1e6 - slide_m) < 1         # rounding (4a: truncation)
    if agrees:
        assert abs(params / 1024 - slide_k) < 1
    else:
        assert abs(params / 1024 - slide_k) > 1      # the slide's params column is off


def test_googlenet_other_rows_match_slide_table(googlenet_paper: CostTable) -> None:
    """The convolution and linear rows of table 1 (slide: 2.7K/34M, 112K/360M, 1000K/1M)."""
    # "convolution 7x7/2, 112x112x64": 7 x 7 x 3 x 64 = 9,408 weights + 64 biases.
    params, macs, out = _row(googlenet_paper, "conv1")
    assert out == (1, 64, 112, 112)
    assert params == 7 * 7 * 3 * 64 + 64 == 9472
    assert macs == 7 * 7 * 3 * 64 * 112 * 112 == 118_013_952
    # NB: the slide's 2.7K / 34M is about 3.5x below that; its ops are its own params x 112^2
    # (2.7K x 1024 x 12,544 = 34.7M), so the slip is in the params column; no convention
    # (bias or not, K = 1000 or 1024) turns a 7x7 conv from 3 to 64 channels into 2.7K.
    assert params / 1024 > 3 * 2.7
    # "convolution 3x3/1, 56x56x192, depth 2": 1x1 reduce 64 -> 64, then 3x3 64 -> 192.
    params, macs, out = _row(googlenet_paper, "conv2")
    assert out == (1, 192, 56, 56)
    weights = 64 * 64 + 64 * 192 * 9  # 114,688 = 112 x 1024 exactly
    assert params == weights + 64 + 192
    assert int(params / 1024) == 112
    assert macs == weights * 56 * 56 and round(macs / 1e6) == 360
    # "linear 1x1x1000": 1024 x 1000 weights + 1000 biases; slide "1000K" (truncated), "1M".
    params, macs, out = _row(googlenet_paper, "linear")
    assert out == (1, 1000)
    assert params == 1024 * 1000 + 1000 and int(params / 1024) == 1000
    assert macs == 1024 * 1000 and round(macs / 1e6) == 1
    # The pool rows ("max pool 3x3/2", "avg pool 7x7/1"): output sizes only, no params/ops.
    for pool, shape in [("pool1", (64, 56, 56)), ("pool2", (192, 28, 28)),
                        ("pool3", (480, 14, 14)), ("pool4", (832, 7, 7)),
                        ("pool5", (1024, 1, 1))]:
        assert _row(googlenet_paper, pool) == (0, 0, (1, *shape)), pool


def test_unet_shapes_and_params_from_figure_1() -> None:
    """Ronneberger et al. 2015 fig. 1: 572x572x1 -> 388x388x2; params counted by hand."""
    spec = _load("unet")
    assert spec.input_shape == (1, 572, 572)
    assert spec.output_shape == (2, 388, 388)

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    down = [conv(1, 64, 3) + conv(64, 64, 3)] + [
        conv(c, 2 * c, 3) + conv(2 * c, 2 * c, 3) for c in (64, 128, 256, 512)]
    up = [conv(2 * c, c, 2) + conv(2 * c, c, 3) + conv(c, c, 3) for c in (512, 256, 128, 64)]
    assert _count(spec).totals.params == sum(down) + sum(up) + conv(64, 2, 1) == 31_030_658


def test_lenet5_is_61706_params() -> None:
    """A. Ng's Deep Convolutional Models, "Classic Neural Networks" ("60K"): 6-16-120-84-10."""
    params = (25 * 1 * 6 + 6) + (25 * 6 * 16 + 16) + (25 * 16 * 120 + 120) + (
        120 * 84 + 84) + (84 * 10 + 10)
    assert _count(_load("lenet5")).totals.params == params == 61_706

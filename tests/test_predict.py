"""Latency prediction: op classes, features, fits, the calibration file and predictions.

Every expected figure is worked out here from the layer's shapes (conv MACs =
N x C_out x H_out x W_out x C_in/groups x K_h x K_w) or from coefficients the test chose; the
tree export is checked against scikit-learn's own predict.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from calibrations import fitted, hand_calibration

from cnncost.count.analytic import count_spec
from cnncost.errors import CnnCostError
from cnncost.layers import LAYERS
from cnncost.predict import fit
from cnncost.predict.calibration import (
    SCHEMA,
    Calibration,
    CalibrationError,
    calibration_path,
    from_dict,
    load,
    problem,
    save,
)
from cnncost.predict.features import (
    FEATURES,
    class_names,
    layer_features,
    native_conv,
    padding16,
    table_features,
)
from cnncost.predict.kernels import HEAVY_WORK, MAX_ELEMENTS, MAX_MACS, MODULE_KINDS, OP_CLASSES
from cnncost.predict.model import predict_table
from cnncost.spec import parse_spec

KEY = "cpu:Test CPU|float32|threads=1|torch=2.0"


def _rows(text: str, batch: int = 1):
    return count_spec(parse_spec(text, "<test>"), batch, "float32").layers


# --------------------------------------------------------------------------- op classes


@pytest.mark.parametrize("name", list(OP_CLASSES))
def test_every_class_draws_kernels_of_itself_within_bounds(name: str) -> None:
    rng = random.Random(1)
    for _ in range(25):
        kernel = OP_CLASSES[name].sample(rng)
        rows = _rows(kernel.spec, kernel.batch)
        feats = [layer_features(r, 4) for r in rows]
        mine = [f for f in feats if f.op_class == name and not f.stand_in]
        assert mine, f"{name}: no layer of the class in {kernel.spec}"
        x = mine[-1]
        assert x.get("macs") * 1 <= MAX_MACS
        assert x.get("in_bytes") / 4 <= MAX_ELEMENTS * len(rows[-1].input_shape)


@pytest.mark.parametrize("name", [n for n, c in OP_CLASSES.items() if c.heavy])
def test_heavy_kernels_do_the_work_they_say(name: str) -> None:
    rng = random.Random(2)
    for _ in range(5):
        kernel = OP_CLASSES[name].sample_heavy(rng)
        rows = _rows(kernel.spec, kernel.batch)
        drawn = [r for r in rows if r.kind == "conv"][-1]  # the drawn layer, as counted
        assert kernel.work == drawn.macs >= HEAVY_WORK


def test_every_class_is_listed_once_and_every_kind_has_at_most_one_class() -> None:
    names = class_names()
    assert sorted(names) == sorted(OP_CLASSES) and len(set(names)) == len(names)
    kinds = [k for c in OP_CLASSES.values() if c.name not in
             ("conv", "pwconv", "dwconv", "gconv") for k in c.kinds]
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("module_class,kind", sorted(MODULE_KINDS.items()))
def test_module_kinds_name_the_module_their_spec_kind_builds(module_class: str,
                                                             kind: str) -> None:
    pytest.importorskip("torch")
    params = {"conv": {"out": 4, "kernel": 1}, "linear": {"out": 4},
              "max_pool": {"kernel": 1}, "avg_pool": {"kernel": 1},
              "channel_shuffle": {"groups": 1}}.get(kind, {})
    dims = module_class[-2:] if module_class[-2:] in ("1d", "2d", "3d") else "2d"
    shape = {"1d": (4, 8), "2d": (4, 8, 8), "3d": (4, 8, 8, 8)}[dims]
    if kind == "linear":
        shape = (4,)
    module = LAYERS[kind].fn(shape, **params).make()
    assert type(module).__name__ == module_class


# --------------------------------------------------------------------------- features


CONV = "name: t\ninput: [{c}, 56, 56]\nlayers:\n  - conv: {{out: {o}, kernel: {k}, " \
       "stride: {s}, padding: {p}, groups: {g}, bias: false}}\n"


def test_conv_features_from_its_shapes() -> None:
    (row,) = _rows(CONV.format(c=64, o=128, k=3, s=2, p=1, g=1), batch=2)
    f = layer_features(row, 4)
    # 56 -> (56 + 2 - 3) // 2 + 1 = 28; MACs = 2 x 128 x 28 x 28 x 64 x 3 x 3
    macs = 2 * 128 * 28 * 28 * 64 * 9
    expected = {"batch": 2, "cin": 64, "cout": 128, "hw_in": 56 * 56, "hw_out": 28 * 28,
                "kernel": 9, "stride": 2, "groups": 1, "spatial_dims": 2, "macs": macs,
                "flops": 2 * macs, "in_bytes": 2 * 64 * 56 * 56 * 4,
                "out_bytes": 2 * 128 * 28 * 28 * 4, "weight_bytes": 128 * 64 * 9 * 4,
                "inputs": 1,
                # 64 and 128 are multiples of 16: no padding; batch 2 and stride 2: oneDNN
                "pad16": 1.0, "native": 0,
                "macs_before": 0}  # the spec's first layer
    assert {n: f.get(n) for n in FEATURES} == expected
    assert f.op_class == "conv" and not f.stand_in


def test_each_layer_holds_the_macs_of_the_two_layers_run_before_it() -> None:
    text = ("name: t\ninput: [16, 8, 8]\nlayers:\n  - relu\n"
            "  - conv: {out: 32, kernel: 3, padding: 1, bias: false}\n  - bn\n  - relu\n"
            "  - conv: {out: 8, kernel: 1, bias: false}\n")
    feats = table_features(_rows(text, batch=2), 4)
    conv3 = 2 * 32 * 8 * 8 * 16 * 9  # batch x out x 8 x 8 x in x 3 x 3
    conv1 = 2 * 8 * 8 * 8 * 32  # batch x out x 8 x 8 x in
    assert [f.get("macs_before") for f in feats] == [0, 0, conv3, conv3, 0]
    assert feats[1].get("macs") == conv3 and feats[4].get("macs") == conv1


@pytest.mark.parametrize("cin,cout,expected", [
    (64, 128, 1.0),  # multiples of 16
    (3, 64, 16 / 3),  # 3 channels padded to 16
    (24, 40, (32 * 48) / (24 * 40)),  # 24 -> 32, 40 -> 48
])
def test_channel_padding_to_blocks_of_16(cin: int, cout: int, expected: float) -> None:
    assert padding16(cin, cout) == pytest.approx(expected)


# PyTorch's rule (aten/src/ATen/native/Convolution.cpp, use_mkldnn) for float32 on a CPU:
# oneDNN when (strided, or batch >= 16, or a kernel not 1x1, or threads > 1) and (groups > 1,
# or both kernel sides > 3, or batch > 1, or more than 20480 input values); else native.
@pytest.mark.parametrize("batch,cin,hw,dims,stride,groups,threads,expected", [
    (1, 64, 56 * 56, (1, 1), 1, 1, 1, True),  # 1x1 at batch 1, one thread: first test fails
    (1, 64, 56 * 56, (1, 1), 1, 1, 2, False),  # two threads: oneDNN
    (16, 64, 56 * 56, (1, 1), 1, 1, 1, False),  # batch 16 and batch > 1: oneDNN
    (8, 64, 56 * 56, (1, 1), 1, 1, 1, True),  # 1x1 unstrided, batch < 16, one thread
    (1, 8, 7 * 7, (3, 3), 1, 1, 1, True),  # 3x3 at batch 1 over 392 values <= 20480
    (1, 64, 56 * 56, (3, 3), 1, 1, 1, False),  # 200704 values > 20480
    (1, 8, 7 * 7, (5, 5), 1, 1, 1, False),  # both sides > 3
    (1, 8, 7 * 7, (3, 3), 1, 8, 1, False),  # grouped
    (1, 8, 7 * 7, (3, 3), 1, 1, 0, False),  # not a CPU
])
def test_which_convolutions_pytorch_runs_natively(batch: int, cin: int, hw: int,
                                                  dims: tuple[int, ...], stride: int,
                                                  groups: int, threads: int,
                                                  expected: bool) -> None:
    assert native_conv(batch, cin, hw, dims, stride, groups, threads) is expected


@pytest.mark.parametrize("c,o,k,g,expected", [
    (32, 32, 3, 32, "dwconv"),  # groups = C_in: depthwise
    (32, 64, 3, 32, "dwconv"),  # depthwise with a channel multiplier of 2
    (32, 64, 1, 1, "pwconv"),
    (32, 64, 3, 4, "gconv"),
    (32, 64, 5, 1, "conv"),
], ids=["depthwise", "depthwise-x2", "pointwise", "grouped", "dense-5x5"])
def test_conv_class_from_kernel_and_groups(c: int, o: int, k: int, g: int,
                                           expected: str) -> None:
    (row,) = _rows(CONV.format(c=c, o=o, k=k, s=1, p=k // 2, g=g))
    f = layer_features(row, 4)
    assert f.op_class == expected
    assert f.get("groups") == g and f.get("kernel") == k * k


def test_a_kind_without_a_class_is_predicted_by_a_stand_in_that_says_so() -> None:
    text = "name: t\ninput: [8, 4, 4]\nlayers:\n  - upsample: {scale: 2}\n"
    (row,) = _rows(text)
    f = layer_features(row, 4)
    assert f.op_class == "add" and "upsample" in f.stand_in and "not calibrated" in f.stand_in


# --------------------------------------------------------------------------- fitting


def _synthetic(n: int, seed: int = 0) -> tuple[list[tuple[float, ...]], list[float]]:
    rng = random.Random(seed)
    xs = []
    for _ in range(n):
        x = [0.0] * len(FEATURES)
        x[FEATURES.index("macs")] = rng.uniform(1e5, 1e9)
        x[FEATURES.index("in_bytes")] = rng.uniform(1e3, 1e7)
        x[FEATURES.index("out_bytes")] = rng.uniform(1e3, 1e7)
        x[FEATURES.index("cin")] = rng.choice((3, 16, 64, 256))
        xs.append(tuple(x))
    return xs, []


def test_baseline_recovers_the_coefficients_it_was_made_with() -> None:
    xs, _ = _synthetic(40)
    a, b, c = 5e-6, 2e-11, 1e-10  # 5 us per call, 50 GMAC/s, 10 GB/s
    ys = [a + b * x[FEATURES.index("macs")] + c * (x[FEATURES.index("in_bytes")]
                                                 + x[FEATURES.index("out_bytes")]) for x in xs]
    coef = fit.fit_baseline(xs, ys)
    assert coef == pytest.approx([a, b, c], rel=1e-6)
    assert all(e == pytest.approx(0, abs=1e-9) for e in fit.held_out(xs, ys, False))


def test_baseline_coefficients_are_never_negative() -> None:
    xs, _ = _synthetic(30)
    # time falls with bytes: an unconstrained fit would give bytes a negative coefficient
    ys = [1e-3 - 1e-11 * x[FEATURES.index("in_bytes")] for x in xs]
    assert all(v >= 0 for v in fit.fit_baseline(xs, ys))


def test_time_weights_give_each_half_decade_of_time_one_share() -> None:
    # log10 of 1 ms and 1.1 ms: -3 and -2.96, one half decade ([-3, -2.5)); 100 ms: -1, another
    w = fit.time_weights([1e-3, 1.1e-3, 1e-1], bin_width=0.5)
    # raw 1/2, 1/2, 1 (one share per half decade), divided by their mean 2/3
    assert w == pytest.approx([0.75, 0.75, 1.5])
    assert fit.time_weights([2e-5] * 4) == pytest.approx([1.0] * 4)


@pytest.mark.parametrize("weights,expected", [
    ((1.0, 1.0), 1.5 / 1.25),  # minimise (b - 1)^2 + (b/2 - 1)^2: b = (1 + 1/2) / (1 + 1/4)
    ((3.0, 1.0), 3.5 / 3.25),  # 3 (b - 1)^2 + (b/2 - 1)^2: b = (3 + 1/2) / (3 + 1/4)
    ((0.0, 1.0), 2.0),  # only the second sample counts
])
def test_baseline_weighs_each_relative_error_by_its_weight(weights: tuple[float, float],
                                                           expected: float) -> None:
    # one layer measured at 1 s and at 2 s: a time per MAC alone (terms=(1,)) cannot fit both
    x = [0.0] * len(FEATURES)
    x[FEATURES.index("macs")] = 1.0
    coef = fit.fit_baseline([tuple(x), tuple(x)], [1.0, 2.0], terms=(1,), weights=weights)
    assert coef == pytest.approx([0.0, expected, 0.0])


@pytest.mark.slow  # oracle: scikit-learn's trees
def test_exported_trees_predict_what_scikit_learn_predicts() -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    xs, _ = _synthetic(80, seed=3)
    res = [math.sin(x[FEATURES.index("macs")] / 2e8) + (0.3 if x[1] == 3 else 0) for x in xs]
    exported = fit.fit_trees(xs, res)
    model = ensemble.GradientBoostingRegressor(random_state=0, subsample=1.0, **fit.TREES)
    model.fit([list(x) for x in xs], res)
    probes, _ = _synthetic(50, seed=4)
    expected = model.predict([list(x) for x in probes])
    assert [fit.tree_sum(exported, x) for x in probes] == pytest.approx(list(expected),
                                                                        abs=1e-9)


@pytest.mark.slow  # oracle: scikit-learn's trees
def test_trees_are_kept_only_where_they_lower_the_held_out_error() -> None:
    pytest.importorskip("sklearn")
    xs, _ = _synthetic(60, seed=5)
    # a time the baseline cannot express: 3x slower for 3 input channels
    ys = [(3.0 if x[1] == 3 else 1.0) * (1e-5 + 1e-11 * x[FEATURES.index("macs")])
          for x in xs]
    fitted = fit.fit_class(xs, ys, use_trees=True)
    assert fitted["method"] == "trees"
    assert fitted["error"]["rms"] < fitted["baseline_error"]["rms"]
    plain = [1e-5 + 1e-11 * x[FEATURES.index("macs")] for x in xs]
    assert fit.fit_class(xs, plain, use_trees=True)["method"] == "baseline"


def test_error_summary_of_known_errors() -> None:
    # predicted/measured = 1.1, 0.8, 1.0, 1.5 -> |e| = 0.1, 0.2, 0, 0.5
    logs = [math.log(v) for v in (1.1, 0.8, 1.0, 1.5)]
    s = fit.error_summary(logs)
    assert s["median"] == pytest.approx(0.15)  # (0.1 + 0.2) / 2
    assert s["p90"] == pytest.approx(0.5)
    assert s["rms"] == pytest.approx(math.sqrt(sum(v * v for v in logs) / 4))


# --------------------------------------------------------------------------- the file


def _fitted(coef: list[float]) -> dict:
    return fitted(coef)


def _calibration(classes: dict | None = None, key: str = KEY) -> Calibration:
    return hand_calibration(key, classes=classes)


def test_calibration_round_trips_through_its_file(tmp_path: Path) -> None:
    cal = _calibration()
    path = save(cal, tmp_path / "c.json")
    back = load(KEY, path)
    assert back.to_dict() == cal.to_dict() and back.path == str(path)


def test_missing_calibration_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cnncost calibrate"):
        load(KEY, tmp_path / "none.json")


def test_cache_file_name_is_per_key() -> None:
    other = KEY.replace("threads=1", "threads=2")
    assert calibration_path(KEY, Path("/x")) != calibration_path(other, Path("/x"))
    assert calibration_path(KEY, Path("/x")).name.startswith("cpu-float32-t1-torch=2.0-")


def _tree_doc() -> dict:
    doc = _calibration().to_dict()
    doc["classes"]["conv"]["method"] = "trees"
    # one stump: x[macs] <= 5 -> -0.1 else 0.2
    doc["classes"]["conv"]["trees"] = {"init": 0.0, "trees": [
        [[FEATURES.index("macs"), -2, -2], [5.0, -2.0, -2.0], [1, -1, -1], [2, -1, -1],
         [0.0, -0.1, 0.2]]]}
    return doc


BAD = {
    "schema": lambda d: d.update(schema="cnncost.report/1"),
    "foreign key": lambda d: d.update(key=KEY.replace("Test CPU", "Other CPU")),
    "fields off key": lambda d: d.update(dtype="float16"),
    "threads text": lambda d: d.update(threads="1"),
    "negative time": lambda d: d.update(overhead_s=-1.0),
    "bool for number": lambda d: d["classes"]["bn"].update(baseline=[True, 0.0, 0.0]),
    "nan coefficient": lambda d: d["classes"]["bn"].update(baseline=[math.nan, 0.0, 0.0]),
    "unknown class": lambda d: d["classes"].update(warp=d["classes"]["bn"]),
    "no ranges": lambda d: d["classes"]["bn"].pop("ranges"),
    "inverted range": lambda d: d["classes"]["bn"]["ranges"].__setitem__(0, [2.0, 1.0]),
    "method without trees": lambda d: d["classes"]["bn"].update(method="trees"),
    "looping tree": lambda d: d["classes"]["conv"]["trees"]["trees"][0][2].__setitem__(0, 0),
    "child out of range": lambda d: d["classes"]["conv"]["trees"]["trees"][0][3].__setitem__(
        0, 9),
    "split on no feature": lambda d: d["classes"]["conv"]["trees"]["trees"][0][0].__setitem__(
        0, len(FEATURES)),
    "short sample": lambda d: d["samples"]["bn"].append([1.0]),
    "other features": lambda d: d.update(features=["macs"]),
    "zero scale": lambda d: d["context"].update(scale=0.0),
    "short network": lambda d: d["context"]["networks"].append([1.0, 2.0]),
    "bad context error": lambda d: d["context"].update(error={"median": -1}),
}


def test_a_tree_document_is_valid() -> None:
    assert problem(_tree_doc(), KEY) is None
    cal = from_dict(_tree_doc())
    x = [0.0] * len(FEATURES)
    base = fit.baseline_time([1e-6, 1e-11, 1e-10], x)
    assert fit.predict_seconds(cal.classes["conv"], x) == pytest.approx(base * math.exp(-0.1))


@pytest.mark.parametrize("case", list(BAD))
def test_a_corrupt_or_foreign_calibration_is_refused_by_name(case: str,
                                                             tmp_path: Path) -> None:
    doc = copy.deepcopy(_tree_doc())
    BAD[case](doc)
    assert problem(doc, KEY) is not None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match=f"{path}: refused"):
        load(KEY, path)


@pytest.mark.parametrize("text", ["{", "[]", "", "\x00\x01"], ids=["cut", "list", "empty",
                                                                  "binary"])
def test_an_unreadable_calibration_is_refused_by_name(text: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CnnCostError, match=str(path)):
        load(KEY, path)


def test_schema_is_named() -> None:
    assert _calibration().to_dict()["schema"] == SCHEMA == "cnncost.calibration/3"


# --------------------------------------------------------------------------- predictions


SMALL = ("name: small\ninput: [3, 32, 32]\nlayers:\n"
         "  - conv: {out: 8, kernel: 3, padding: 1, bias: false}\n  - bn\n  - relu\n")


def test_prediction_is_each_layers_baseline_plus_the_call_overhead() -> None:
    a, b, c = 2e-6, 1e-11, 1e-10
    cal = _calibration({n: _fitted([a, b, c]) for n in class_names()})
    table = count_spec(parse_spec(SMALL, "<t>"), 1, "float32")
    p = predict_table(table, cal)
    conv_macs = 8 * 32 * 32 * 3 * 9  # 221,184
    conv_bytes = (3 * 32 * 32 + 8 * 32 * 32 + 8 * 3 * 9) * 4  # input, output, weight
    # bn: params 2C, buffers running mean and var (2C) + num_batches_tracked
    bn_bytes = (8 * 32 * 32 * 2 + 2 * 8 + 2 * 8 + 1) * 4
    relu_bytes = 8 * 32 * 32 * 2 * 4
    expected = [a + b * conv_macs + c * conv_bytes, a + c * bn_bytes, a + c * relu_bytes]
    assert [lp.latency_ms for lp in p.layers] == pytest.approx([t * 1e3 for t in expected])
    assert p.latency_ms == pytest.approx(sum(expected) * 1e3 + 2e-5 * 1e3)
    assert [lp.op_class for lp in p.layers] == ["conv", "bn", "relu"]
    assert p.uncertainty == pytest.approx(0.1)
    doc = p.to_dict()
    assert doc["schema"] == "cnncost.predict/1"
    assert doc["totals"]["latency_ms"] == pytest.approx(p.latency_ms)
    assert sum(lay["share"] for lay in doc["layers"]) == pytest.approx(
        p.layers_ms / p.latency_ms)


def test_a_layer_outside_the_calibrated_range_says_so() -> None:
    fitted = _fitted([1e-6, 1e-11, 1e-10])
    fitted["ranges"][FEATURES.index("cin")] = [8.0, 1024.0]  # calibrated on 8..1024 channels
    cal = _calibration({**{n: _fitted([1e-6, 0, 0]) for n in class_names()}, "conv": fitted})
    p = predict_table(count_spec(parse_spec(SMALL, "<t>"), 1, "float32"), cal)
    assert p.layers[0].note == "outside the calibrated range: cin 3 < 8"
    assert not p.layers[0].in_range and p.layers[1].in_range
    assert p.outside == (p.layers[0],)


def test_the_layers_before_a_layer_are_no_part_of_its_calibrated_range() -> None:
    # every class calibrated with nothing before its layers: the bn after the conv and the
    # relu after both have MACs before them, yet nothing is extrapolated (only trees read
    # macs_before, and hold their edge value past it)
    fitted = _fitted([1e-6, 1e-11, 1e-10])
    fitted["ranges"][FEATURES.index("macs_before")] = [0.0, 0.0]
    cal = _calibration(dict.fromkeys(class_names(), fitted))
    p = predict_table(count_spec(parse_spec(SMALL, "<t>"), 1, "float32"), cal)
    assert [lp.op_class for lp in p.layers] == ["conv", "bn", "relu"]
    assert p.outside == ()


def test_a_layer_in_context_is_scaled_and_pays_its_share_of_the_model() -> None:
    a, b, c = 2e-6, 1e-11, 1e-10
    cal = _calibration({n: _fitted([a, b, c]) for n in class_names()})
    context = {"scale": 1.25, "per_layer_s": 4e-6, "networks": [],
               "error": {"median": 0.03, "p90": 0.07, "rms": 0.05}, "isolated_error": None}
    cal = replace(cal, context=context)
    p = predict_table(count_spec(parse_spec(SMALL, "<t>"), 1, "float32"), cal)
    conv = a + b * 221184 + c * (3 * 1024 + 8 * 1024 + 8 * 3 * 9) * 4  # as above
    assert p.layers[0].latency_ms == pytest.approx((1.25 * conv + 4e-6) * 1e3)
    assert p.uncertainty == pytest.approx(0.07)  # the networks' held-out p90


def test_context_fit_recovers_scale_per_layer_and_call() -> None:
    rng = random.Random(2)
    sums = [rng.uniform(1e-4, 1e-1) for _ in range(20)]
    layers = [float(rng.randint(10, 300)) for _ in range(20)]
    ys = [1.2 * s + 5e-6 * n + 3e-5 for s, n in zip(sums, layers, strict=True)]
    assert fit.fit_context(sums, layers, ys) == pytest.approx((1.2, 5e-6, 3e-5), rel=1e-6)
    assert all(e == pytest.approx(0, abs=1e-9) for e in fit.context_held_out(sums, layers, ys))


@pytest.mark.parametrize("seed", range(6))
def test_random_networks_compile_within_their_bound(seed: int) -> None:
    from cnncost.count.analytic import count_totals
    from cnncost.predict.kernels import MAX_NETWORK_MACS, network

    kernel = network(random.Random(seed))
    spec = parse_spec(kernel.spec, "<network>")
    assert count_totals(spec, kernel.batch).macs <= MAX_NETWORK_MACS
    rows = count_spec(spec, kernel.batch, "float32").layers
    assert all(not layer_features(r, 4).stand_in for r in rows)


def test_a_dtype_not_calibrated_is_refused() -> None:
    table = count_spec(parse_spec(SMALL, "<t>"), 1, "float16")
    with pytest.raises(CnnCostError, match="calibrate --dtype float16"):
        predict_table(table, _calibration())


# --------------------------------------------------------------------------- calibrating


@pytest.mark.slow  # a calibration measures kernels
def test_a_short_calibration_fits_every_class_and_passes_its_own_checks(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from cnncost.measure.timing import Budget
    from cnncost.predict import calibrate

    # a smoke test: each kernel timed once or twice (figures come from benchmarks/)
    monkeypatch.setattr(calibrate, "KERNEL_BUDGET", Budget(min_samples=1, min_time=0,
                                                           max_time=0.005, warmup_time=0))
    cal = calibrate.calibrate(calibrate.CalibrateOptions(device="cpu", threads=1, max_time=5))
    assert set(cal.classes) == set(OP_CLASSES)
    assert all(len(cal.samples[n]) >= 4 for n in OP_CLASSES)
    assert problem(cal.to_dict(), cal.key) is None
    assert cal.key.startswith("cpu:") and cal.key.endswith(f"|torch={cal.torch_version}")
    back = load(cal.key, save(cal, tmp_path / "cal.json"))
    table = count_spec(parse_spec(SMALL, "<t>"), 1, "float32")
    p = predict_table(table, back)
    assert p.latency_ms > 0 and len(p.layers) == 3


@pytest.mark.gpu
def test_a_short_cuda_calibration_times_with_cuda_events(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from cnncost.measure.timing import Budget
    from cnncost.predict import calibrate

    monkeypatch.setattr(calibrate, "KERNEL_BUDGET", Budget(min_samples=2, min_time=0,
                                                           max_time=0.01, warmup_time=0))
    cal = calibrate.calibrate(calibrate.CalibrateOptions(device="cuda", max_time=5))
    assert cal.device == "cuda" and cal.threads == 0 and cal.key.startswith("cuda:")
    assert problem(cal.to_dict(), cal.key) is None
    p = predict_table(count_spec(parse_spec(SMALL, "<t>"), 1, "float32"), cal)
    assert p.latency_ms > 0


def test_a_module_is_predicted_from_its_meta_count_as_its_spec_is() -> None:
    torch = pytest.importorskip("torch")
    from cnncost import api

    cal = _calibration({n: _fitted([2e-6, 1e-11, 1e-10]) for n in class_names()})
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                 torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    from_module = api.predict_target(module, input=(3, 32, 32), calibration=cal)
    from_spec = predict_table(count_spec(parse_spec(SMALL, "<t>"), 1, "float32"), cal)
    assert [lp.op_class for lp in from_module.layers] == ["conv", "bn", "relu"]
    assert [lp.latency_ms for lp in from_module.layers] == pytest.approx(
        [lp.latency_ms for lp in from_spec.layers])
    assert all(p.device.type != "meta" for p in module.parameters())  # left as it came


def test_a_baseline_keeps_only_its_classes_terms() -> None:
    xs, _ = _synthetic(30, seed=9)
    ys = [2e-6 + 1e-12 * x[FEATURES.index("in_bytes")] for x in xs]
    assert fit.fit_baseline(xs, ys, terms=(0,))[1:] == [0.0, 0.0]
    assert OP_CLASSES["view"].terms == (0,)  # a view's time does not grow with its bytes


@pytest.mark.slow  # oracle: torch itself, in fresh interpreters
@pytest.mark.parametrize("env", [{}, {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "3"}],
                         ids=["default", "omp-1", "omp-3"])
def test_default_threads_without_torch_is_what_torch_starts_with(env: dict) -> None:
    pytest.importorskip("torch")
    import os
    import subprocess
    import sys

    code = ("from cnncost.measure.machine import default_threads, torch_version\n"
            "a, v = default_threads(), torch_version()\n"
            "import torch\nprint(a, torch.get_num_threads(), v == torch.__version__)")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                               "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**clean, **env}, check=True).stdout.split()
    assert out[0] == out[1] and out[2] == "True"


# --------------------------------------------------------------------------- bench_predict


def _bench_predict() -> Any:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_predict.py"
    spec = importlib.util.spec_from_file_location("bench_predict", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_predict_rewrites_only_the_readme_part_between_its_markers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench_predict()
    readme = Path(__file__).resolve().parent.parent / "README.md"
    assert readme.read_text(encoding="utf-8").count(bench.BEGIN) == 1  # the part to rewrite
    target = tmp_path / "README.md"
    target.write_text(f"before\n{bench.BEGIN}\nold figures\n{bench.END}\nafter\n",
                      encoding="utf-8")
    rows = [{"model": "a", "batch": 1, "cpu_ms": 10.0, "predicted_ms": 11.0},
            {"model": "a", "batch": 8, "cpu_ms": 50.0, "predicted_ms": 45.0},
            {"model": "b", "batch": 1, "cpu_ms": 4.0, "predicted_ms": 4.0}]
    monkeypatch.setattr("sys.argv", ["bench_predict.py", "--threads", "1", "--json", "/tmp/x",
                                     "--json=/tmp/y"])  # a local file: not shown
    bench.write_readme(target, "a CPU", 0.5, ["summary line"], rows, "cpu_ms")
    text = target.read_text(encoding="utf-8")
    assert text.startswith(f"before\n{bench.BEGIN}\n") and text.endswith(f"{bench.END}\nafter\n")
    assert "old figures" not in text
    assert "$ python benchmarks/bench_predict.py --threads 1\nsummary line\n" in text
    # ratios: 11 / 10 = 1.10, 45 / 50 = 0.90, 4 / 4 = 1.00; b has no batch 8: empty cells
    assert "| a | 10.0 | 11.0 | 1.10 | 50.0 | 45.0 | 0.90 |" in text
    assert "| b | 4.0 | 4.0 | 1.00 |  |  |  |" in text

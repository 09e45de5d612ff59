"""`cnncost advise`: every rule on both sides of its threshold, the lectures' cases, emitted specs.

Expected numbers are the lectures' arithmetic written out here (conv MACs = H_out W_out C_out
x K^2 C_in / groups, params = K^2 C_in C_out / groups + bias), never a figure advise printed.
Where a whole-model total is needed, it is the original spec's count (tested elsewhere)
plus the hand-derived change of the rewritten layers.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from clirun import run

import cnncost
from cnncost.advise.engine import Advice, Finding, advise_spec
from cnncost.advise.registry import ADVICE_RULES, Goal, advice_rule
from cnncost.advise.rewrite import load_doc, nodes
from cnncost.api import advise_target
from cnncost.render.advice import details
from cnncost.sources import bundled_specs
from cnncost.spec import ModelSpec, load_spec, parse_spec

SPECS = Path(__file__).resolve().parent.parent / "specs"
LECTURES = ("Aykut Erdem", "Andrew Ng", "Nazar Khan", "Ando Ki", "Francesca Galassi")


def only(advice: Advice, rule: str, layer: str | None = None) -> Finding:
    found = [f for f in advice.findings if f.rule.name == rule
             and (layer is None or layer in f.proposal.layers)]
    assert len(found) == 1, [(f.rule.name, f.proposal.layers) for f in advice.findings]
    return found[0]


def analyzed(f: Finding, tmp_path: Path) -> cnncost.CostTable:
    """The emitted spec, analyzed from a file like a user would."""
    path = tmp_path / f.spec_file
    path.write_text(f.spec_text)
    return cnncost.analyze(path)


def assert_emitted_matches(f: Finding, tmp_path: Path) -> None:
    t = analyzed(f, tmp_path).totals
    for key, change in f.effect.items():
        assert getattr(t, key) == change.after, key


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", sorted(ADVICE_RULES))
def test_rule_is_documented(name: str) -> None:
    rule = ADVICE_RULES[name]
    assert rule.threshold and rule.summary and rule.guideline
    assert any(who in rule.lecture for who in LECTURES), rule.lecture
    assert "seed" not in rule.lecture + rule.doc and "WORKED" not in rule.lecture + rule.doc
    assert rule.example and rule.near_miss


@pytest.mark.parametrize("name", sorted(ADVICE_RULES))
def test_rule_fires_on_its_example_and_the_emitted_spec_confirms(
        name: str, write_spec, tmp_path: Path) -> None:
    path = write_spec(ADVICE_RULES[name].example, "example.yaml")
    advice = advise_spec(path, min_saving=0.0, rules=[name])
    assert advice.findings, advice.dropped
    for f in advice.findings:
        assert f.proposal.note and f.proposal.found and f.proposal.rewrite
        if f.rule.goal is Goal.COST:
            assert f.saving > 0 and f.layer_saving >= f.rule.min_layer_saving
        assert_emitted_matches(f, tmp_path)


@pytest.mark.parametrize("name", sorted(ADVICE_RULES))
def test_rule_is_silent_just_below_its_threshold(name: str, write_spec) -> None:
    path = write_spec(ADVICE_RULES[name].near_miss, "near_miss.yaml")
    assert advise_spec(path, min_saving=0.0, rules=[name]).findings == ()


# The receptive fields (along H) of each rule's example, by hand: (the model's before and
# after the rewrite, the one after the rewritten layer before and after). L stacked KxK convs
# see 1 + L(K - 1); a layer of kernel K after strides multiplying to J adds (K - 1) J; a global
# pool over an H x W map is a kernel of H; flatten and linear add nothing. The model's is the
# last layer whose output still has a spatial extent (else the last layer's).
RF_BY_HAND = {
    # 5x5 conv (5) -> 3x3 + 3x3 (1 + 2 x 2 = 5), relu after: 5 everywhere
    "small-filter-chain": (5, 5, 5, 5),
    # 3x3 conv (3) -> depthwise 3x3 (3) + pointwise 1x1 (3 + 0)
    "depthwise-separable": (3, 3, 3, 3),
    # 3x3 (3) -> 3x1 (3 along H) + 1x3 (3 + 0 along H)
    "spatially-separable": (3, 3, 3, 3),
    # 5x5 (5) -> 1x1 (1) + 5x5 (1 + 4 = 5)
    "bottleneck-1x1": (5, 5, 5, 5),
    # 3x3 with 4 groups still 3x3
    "grouped-conv": (3, 3, 3, 3),
    # three 3x3 convs (3, 5, 7); the second one narrowed: the model 7, the second 5
    "channel-growth": (7, 7, 5, 5),
    # 3x3 (3), 3x3/2 (5, J = 2), 3x3 (5 + 2 x 2 = 9); the second one widened
    "tight-bottleneck": (9, 9, 5, 5),
    # 3x3, 3x3 on 64x64 (3, 5); a 2x2/2 pool after the first: 3 + 1 = 4 (J = 2), then the
    # second conv 4 + 2 x 2 = 8 (the model's); after conv1 (and its pool): 3 -> 4
    "receptive-field": (5, 8, 3, 4),
    # flatten on 64x8x8, nothing spatial: 1; a global pool first is an 8x8 kernel: 1 + 7 = 8
    "fc-global-pool": (1, 8, 1, 8),
}


def _h(value: Any) -> int:
    return int(value[0] if isinstance(value, list | tuple) else value)


def rf_along_a_chain(spec: ModelSpec) -> tuple[dict[str, int], int]:
    """Every layer's receptive field along H for a spec that is one chain, from its layers'
    kernels, strides and dilations (not the compiler's), and the model's."""
    rf, jump, seen = 1, 1, {}
    for lay in spec.layers:
        p, k, s, d = lay.params, 1, 1, 1
        if lay.kind in ("conv", "max_pool", "avg_pool"):
            k, d = _h(p["kernel"]), _h(p.get("dilation", 1))
            s = _h(p.get("stride") or (k if lay.kind != "conv" else 1))
        elif lay.kind == "global_avg_pool":
            k = lay.in_shapes[0][1]
        rf, jump = rf + (k - 1) * d * jump, jump * s
        seen[lay.path] = rf
    spatial = [lay.path for lay in spec.layers if any(n > 1 for n in lay.out_shape[1:])
               and len(lay.out_shape) > 1]
    return seen, seen[spatial[-1] if spatial else spec.layers[-1].path]


@pytest.mark.parametrize("name", sorted(ADVICE_RULES))
def test_the_model_and_the_rewritten_layers_receptive_fields_are_kept_apart(
        name: str, write_spec) -> None:
    path = write_spec(ADVICE_RULES[name].example, "example.yaml")
    advice = advise_spec(path, min_saving=0.0, rules=[name])
    f = advice.findings[0]
    before, model_before = rf_along_a_chain(load_spec(path))
    after, model_after = rf_along_a_chain(parse_spec(f.spec_text, f.spec_file))
    anchors = f.proposal.anchors or f.proposal.layers
    last_after = [r for r in after if any(r == a or r.startswith(a + ".") for a in anchors)][-1]
    assert (f.model_rf.before, f.model_rf.after) == (model_before, model_after)
    assert (f.layers_rf.before, f.layers_rf.after) == (before[f.proposal.layers[-1]],
                                                       after[last_after])
    if name in RF_BY_HAND:
        assert (f.model_rf.before, f.model_rf.after, f.layers_rf.before,
                f.layers_rf.after) == RF_BY_HAND[name]
    assert advice.totals["receptive_field"] == f.model_rf.before
    # the text: the model's on the model's lines, the layers' on the layers' line
    lines = details(1, f)
    model = next(i for i, t in enumerate(lines) if t.startswith("   model "))
    layers = next(i for i, t in enumerate(lines) if t.startswith("   layers "))
    assert layers == model + 2
    rf = (f"receptive field {f.model_rf.before} =" if f.model_rf.before == f.model_rf.after
          else f"receptive field {f.model_rf.before} -> {f.model_rf.after}")
    assert lines[model + 1].endswith(f"  {rf}"), lines[model + 1]
    at = f"receptive field after {f.proposal.layers[-1]} {f.layers_rf.before}"
    assert at in lines[layers] and lines[layers].count("receptive field") == 1, lines[layers]
    # the JSON: under their own names
    doc = f.to_dict()["receptive_field"]
    assert doc["model"]["before"] == f.model_rf.before and doc["model"]["after"] == \
        f.model_rf.after
    assert doc["layers"]["before"] == f.layers_rf.before and doc["layers"]["after"] == \
        f.layers_rf.after
    assert doc["layers_at"] == f.proposal.layers[-1]
    assert "receptive_field" not in f.to_dict()["effect"]


def test_every_hand_derived_receptive_field_is_a_registered_rule() -> None:
    assert set(RF_BY_HAND) <= set(ADVICE_RULES)


def test_a_rule_name_is_registered_once_and_needs_a_threshold() -> None:
    with pytest.raises(RuntimeError, match="twice"):
        advice_rule("grouped-conv", guideline="x", lecture="y")(lambda ctx: ())
    with pytest.raises(RuntimeError, match="Threshold"):
        def no_threshold(ctx):  # type: ignore[no-untyped-def]
            """Says nothing about when it fires."""
            return ()
        advice_rule("undocumented", guideline="x", lecture="y")(no_threshold)
    assert "undocumented" not in ADVICE_RULES


@pytest.mark.parametrize("name", [n for n in bundled_specs()])
def test_every_layer_of_every_bundled_spec_maps_to_its_yaml_item(name: str) -> None:
    path = bundled_specs()[name]
    spec = load_spec(path)
    found = nodes(spec, load_doc(path.read_text(), str(path)))
    leaves = [lay for lay in spec.layers if not lay.is_op]
    assert sum(len(n.uses) for n in found.values()) == len(leaves)
    for node in found.values():  # the item's kind is the layers' kind
        assert {u.kind for u in node.uses} == {node.kind}


# --------------------------------------------------------------------------- the lectures


@pytest.mark.parametrize("c,h,w", [(64, 56, 56), (16, 13, 9)])
def test_conv5x5_gets_two_3x3_with_25c2_to_18c2(c: int, h: int, w: int, tmp_path) -> None:
    # Erdem, "VGG: Deeper Networks, Regular Design": Conv(5x5, C -> C): params 25C^2,
    # FLOPs 25C^2HW; two Conv(3x3, C -> C): 18C^2, 18C^2HW, "same receptive field".
    advice = advise_target("textbook/conv5x5_CtoC", {"C": c, "H": h, "W": w}, 0.0)
    f = only(advice, "small-filter-chain")
    assert (f.effect["params"].before, f.effect["params"].after) == (25 * c * c, 18 * c * c)
    assert (f.effect["macs"].before, f.effect["macs"].after) == (25 * c * c * h * w,
                                                                 18 * c * c * h * w)
    # one 5x5 sees 5; two stacked 3x3 see 1 + 2 x (3 - 1) = 5: the model's and the layer's
    assert f.layers_rf.before == f.layers_rf.after == 5
    assert f.model_rf.before == f.model_rf.after == 5
    assert f.proposal.expected == "params 25C^2 -> 18C^2"
    assert_emitted_matches(f, tmp_path)


def test_inception_5x5_gets_the_1x1_bottleneck_at_a_tenth(tmp_path) -> None:
    # Andrew Ng, "The problem of computational cost": 28x28x32 outputs x 5x5x192 = 120 million;
    # "Using 1x1 convolution": 28x28x16 x 192 + 28x28x32 x 5x5x16 = 12.4 million, "about a
    # factor of 10".
    advice = advise_target("textbook/inception_5x5")
    f = only(advice, "bottleneck-1x1")
    macs = f.effect["macs"]
    assert macs.before == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert macs.after == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648
    assert 9 < macs.before / macs.after < 10
    # params with biases: 1x1 192 -> 16 (+16), 5x5 16 -> 32 (+32) vs 5x5 192 -> 32 (+32)
    assert f.effect["params"].before == 5 * 5 * 192 * 32 + 32
    assert f.effect["params"].after == 192 * 16 + 16 + 5 * 5 * 16 * 32 + 32
    assert_emitted_matches(f, tmp_path)


@pytest.mark.parametrize("c,h,w", [(64, 56, 56), (24, 15, 7)])
def test_standard_block_gets_depthwise_separable_at_1_over_nc_plus_1_over_f2(
        c: int, h: int, w: int, tmp_path) -> None:
    # Ng, "Cost Summary": depthwise separable / standard = 1/n_c' + 1/f^2; Erdem, "MobileNets":
    # standard 9C^2HW, separable (9C + C^2)HW, with BN + ReLU after each conv.
    advice = advise_target("textbook/mobilenet_standard_block", {"C": c, "H": h, "W": w}, 0.0)
    f = only(advice, "depthwise-separable")
    macs = f.effect["macs"]
    assert Fraction(macs.after, macs.before) == Fraction(1, c) + Fraction(1, 9)
    assert (macs.before, macs.after) == (9 * c * c * h * w, (9 * c + c * c) * h * w)
    bn = 2 * c  # one BN (weight, bias) per conv
    assert f.effect["params"].before == 9 * c * c + bn
    assert f.effect["params"].after == 9 * c + bn + c * c + bn
    assert f.proposal.expected.startswith(f"MACs ratio 1/n_c' + 1/f^2 = 1/{c} + 1/9")
    assert_emitted_matches(f, tmp_path)


@pytest.mark.parametrize("k", [3, 5])
def test_spatially_separable_at_2_over_k(k: int) -> None:
    # Ando Ki, "Separable convolution: spatially separable": K*W*W + K*W*W, "2/K ratio".
    advice = advise_target("textbook/spatial_separable", {"separable": 0, "K": k, "C": 8}, 0.0)
    macs = only(advice, "spatially-separable").effect["macs"]
    assert Fraction(macs.after, macs.before) == Fraction(2, k)
    assert macs.before == k * k * 32 * 32 * 8 * 8


def test_grouped_conv_at_1_over_g() -> None:
    # Erdem, "Grouped Convolution vs Standard Convolution": C_out C_in K^2 HW / G.
    advice = advise_target("textbook/grouped_conv", {"G": 1}, 0.0)
    macs = only(advice, "grouped-conv").effect["macs"]
    assert (macs.before, macs.after) == (128 * 64 * 9 * 56 * 56, 128 * 64 * 9 * 56 * 56 // 4)


def test_already_separated_and_bottlenecked_lecture_specs_get_no_such_advice() -> None:
    separable = advise_target("textbook/spatial_separable", min_saving=0.0)  # Kx1 then 1xK
    assert not [f for f in separable.findings if f.rule.name == "spatially-separable"]
    bottleneck = advise_target("textbook/inception_5x5_bottleneck", min_saving=0.0)
    assert not [f for f in bottleneck.findings if f.rule.name == "bottleneck-1x1"]


# --------------------------------------------------------------------------- classic nets


def test_alexnet_fc_mass_and_large_kernels(tmp_path: Path) -> None:
    advice = advise_target("alexnet")
    first = advice.findings[0]
    assert first.rule.name == "fc-global-pool"  # the largest saving
    # fc6 reads 256x6x6 = 9,216 values; after global pooling 256: 4096 x (9216 - 256) fewer
    # weights. torchvision's AlexNet has 61,100,840 params.
    params = first.effect["params"]
    assert (params.before, params.after) == (61_100_840, 61_100_840 - 4096 * (9216 - 256))
    assert_emitted_matches(first, tmp_path)
    # conv2: 5x5 64 -> 192 (bias) on 27x27 becomes 3x3 64 -> 64 + 3x3 64 -> 192 (width C_in).
    chain = only(advice, "small-filter-chain", "features.conv2")
    layer = chain.layer_effect
    assert layer["params"].before == 25 * 64 * 192 + 192
    assert layer["params"].after == 9 * 64 * 64 + 64 + 9 * 64 * 192 + 192
    assert layer["macs"].before == 27 * 27 * 192 * 25 * 64
    assert layer["macs"].after == 27 * 27 * 64 * 9 * 64 + 27 * 27 * 192 * 9 * 64
    # Receptive fields: a layer of kernel K after strides multiplying to J adds (K - 1) J.
    # conv1 11x11/4: 11, J = 4; pool1 3x3/2: 11 + 2 x 4 = 19, J = 8; conv2 5x5: 19 + 4 x 8 =
    # 51, and two 3x3 convs instead: 19 + 2 x 8 + 2 x 8 = 51 as well.
    assert chain.layers_rf.before == chain.layers_rf.after == 51
    # then pool2: 51 + 2 x 8 = 67, J = 16; conv3, conv4, conv5 (3x3): 99, 131, 163; pool5
    # 3x3/2: 163 + 2 x 16 = 195, AlexNet's last feature map (the model's), unchanged
    assert chain.model_rf.before == chain.model_rf.after == 195 == advice.totals[
        "receptive_field"]
    table = analyzed(chain, tmp_path)
    base = cnncost.analyze("alexnet").totals
    assert table.totals.macs == base.macs - layer["macs"].before + layer["macs"].after
    assert table.totals.params == base.params - layer["params"].before + layer["params"].after
    assert {"features.conv2.conv3x3_1", "features.conv2.conv3x3_2"} <= {
        r.name for r in table.layers}


def test_vgg16_fc_mass_and_a_block_rewrite_that_changes_all_13_uses(tmp_path: Path) -> None:
    advice = advise_target("vgg16")
    fc = only(advice, "fc-global-pool")
    # fc6 reads 512x7x7 = 25,088 values, 512 after global pooling; 138,357,544 params
    # (torchvision's VGG-16).
    assert (fc.effect["params"].before, fc.effect["params"].after) == (
        138_357_544, 138_357_544 - 4096 * (25088 - 512))
    assert_emitted_matches(fc, tmp_path)
    dw = only(advice, "depthwise-separable")
    assert len(dw.proposal.layers) == 13 and "block conv3x3, used 13 times" in dw.proposal.shared
    rows = analyzed(dw, tmp_path).layers
    assert sum(r.name.endswith(".conv.depthwise") for r in rows) == 13
    # every 3x3 conv C_in -> C_out (bias) at H x W becomes 9 C_in HW + C_in C_out HW MACs
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56),
             (256, 256, 56), (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28),
             (512, 512, 14), (512, 512, 14), (512, 512, 14)]
    assert dw.layer_effect["macs"].before == sum(9 * i * o * s * s for i, o, s in convs)
    assert dw.layer_effect["macs"].after == sum((9 * i + i * o) * s * s for i, o, s in convs)


def test_min_saving_filters_cost_findings() -> None:
    # AlexNet's largest conv (conv2, 224M of 714M MACs) is under half the model, so only the
    # FC rewrite (60% of the parameters) saves half of anything.
    advice = advise_target("alexnet", min_saving=0.5)
    assert [f.rule.name for f in advice.findings] == ["fc-global-pool"]


@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnet_b0", "shufflenetv2_x1_0"])
def test_efficient_models_get_few_findings(name: str) -> None:
    advice = advise_target(name)
    assert len(advice.findings) <= 1, [(f.rule.name, f.proposal.layers) for f in
                                       advice.findings]


# --------------------------------------------------------------------------- the CLI


def test_cli_table_json_md_and_emit(tmp_path: Path) -> None:
    code, out, err = run("advise", "textbook/inception_5x5")
    assert code == 0, err
    assert "bottleneck-1x1" in out and "12,443,648" in out and "changes:" in out
    code, out, err = run("advise", "textbook/inception_5x5", "--format", "json",
                         "--emit", tmp_path / "out")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.advice/2"
    assert {r["name"] for r in doc["rules"]} == set(ADVICE_RULES)
    f = next(x for x in doc["findings"] if x["rule"] == "bottleneck-1x1")
    assert f["effect"]["macs"]["after"] == 12_443_648 and f["changes_function"] is True
    text = (SPECS / "textbook" / "inception_5x5.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.strip().startswith("- conv:"))
    assert f["source"] == f"specs/textbook/inception_5x5.yaml:{line}"
    for finding in doc["findings"]:  # every emitted spec analyzes to the advertised totals
        code, out, err = run("analyze", tmp_path / "out" / finding["spec_file"], "--format",
                             "json")
        assert code == 0, err
        totals = json.loads(out)["totals"]
        for key, change in finding["effect"].items():
            assert totals[key] == change["after"], key
    code, out, err = run("advise", "textbook/inception_5x5", "--format", "md")
    assert code == 0 and out.startswith("# inception_5x5: design advice") and "| 1 |" in out


def test_cli_set_is_baked_into_the_emitted_spec(tmp_path: Path) -> None:
    code, _, err = run("advise", "textbook/conv5x5_CtoC", "--set", "C=16", "--emit", tmp_path)
    assert code == 0, err
    emitted = tmp_path / "conv5x5_CtoC.small-filter-chain.conv1.yaml"
    assert cnncost.analyze(emitted).totals.params == 18 * 16 * 16


@pytest.mark.parametrize("args,message", [
    (("advise", "textbook/inception_5x5", "--min-saving", "lots"), "--min-saving"),
    (("advise", "textbook/inception_5x5", "--min-saving", "120%"), "--min-saving"),
    (("advise", "no_such.yaml"), "no such file"),
    (("advise", "os.path:join"), "advise takes a spec"),
    (("advise", "textbook/inception_5x5", "--set", "nope=1"), "no variable"),
])
def test_cli_bad_input_is_one_line(args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err

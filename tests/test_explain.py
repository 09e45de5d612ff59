"""cnncost.render.explain and `cnncost explain`: slide-style derivations and the spec's ratio lines.

Expected texts are the slides' own arithmetic (lecture and slide named in comments), not copies of
what the code printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.count.drivers import count_spec
from cnncost.errors import SpecError, UsageError
from cnncost.render.explain import SELF, Ref, explain_lines, parse_explain, references
from cnncost.spec import load_spec, parse_spec

TEXTBOOK = Path(__file__).resolve().parent.parent / "specs" / "textbook"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["explain", *args])


# --------------------------------------------------------------------------- derivations


def test_conv_derivation_the_way_the_slide_writes_it() -> None:
    """N. Khan, CS-568, "Cost of Convolution Layer": (128 x 128 x 64) x (5 x 5 x 256) = 6710886400.

    Weights 5x5x256x64 + 64 bias.
    """
    spec = load_spec(TEXTBOOK / "conv5x5.yaml")
    text = "\n".join(explain_lines(count_spec(spec), spec.explain, spec.vars, file=spec.file))
    macs = (128 * 128 * 64) * (5 * 5 * 256)
    params = 5 * 5 * 256 * 64 + 64
    out_values = 64 * 128 * 128
    assert f"conv1: (128x128x64) x (5x5x256) = {macs:,} MACs" in text
    assert f"params: 5x5x256x64 + 64 bias = {params:,}" in text
    assert f"output: 64x128x128 = {out_values:,} values x 4 B = {4 * out_values:,} B" in text
    assert "receptive field: 5 (along H)" in text
    # the spec's closed form, checked against the count
    assert f"(128 x 128 x 64) x (5 x 5 x 256) = {macs:,}  (count agrees)" in text


def test_depthwise_separable_ratio_line() -> None:
    """F. Galassi; A. Ng, "Cost Summary": 432 + 240 = 672; 672 / 2160 = 0.31 = 1/5 + 1/9."""
    result = run(str(TEXTBOOK / "dwsep_6x6x3.yaml"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"depthwise: (4x4x3) x (3x3x1) = {3 * 3 * 4 * 4 * 3} MACs" in out
    assert f"pointwise: (4x4x5) x (1x1x3) = {1 * 1 * 3 * 4 * 4 * 5} MACs" in out
    assert "total MACs: 432 + 240 = 672" in out
    assert "672 / 2160 = 0.31 = 1/5 + 1/9" in out
    # the slide's "commonly" case, n_c' = 512: (3*3*4*4*3 + 3*4*4*512) / (3*3*3*4*4*512)
    num, den = 3 * 3 * 4 * 4 * 3 + 3 * 4 * 4 * 512, 3 * 3 * 3 * 4 * 4 * 512
    assert f"{num:,} / {den:,} = {num / den:.3f} = 1/512 + 1/9" in out
    assert "differs" not in out


def test_depthwise_separable_weights_ratio() -> None:
    """N. Khan, "Depthwise Separable Convolution": (3 x 3 x 6) + (6 x 3) = 72 vs 162."""
    result = run(str(TEXTBOOK / "dwsep_6to3.yaml"))
    assert result.exit_code == 0, result.output
    assert "params: 3x3x1x6 = 54" in result.output  # depthwise: one 3x3 filter per channel
    assert "params: 1x1x6x3 = 18" in result.output
    assert "72 / 162 = 0.44 = 1/3 + 1/9" in result.output


def test_one_layer_only() -> None:
    """N. Khan, "1x1 convolution": only the 5x5 layer, (128x128x64) x (5x5x32), with ratios."""
    result = run("textbook/conv1x1_5x5", "conv2")
    assert result.exit_code == 0, result.output
    assert f"conv2: (128x128x64) x (5x5x32) = {128 * 128 * 64 * 5 * 5 * 32:,} MACs" in result.output
    assert "conv1:" not in result.output
    assert "total MACs" not in result.output
    assert f"{973078528:,} / {6710886400:,} = 0.145" in result.output


def test_set_moves_both_sides_of_a_comparison() -> None:
    """A. Erdem, "VGG: Deeper Networks, Regular Design" at C=32, H=W=8.

    18C^2 / 25C^2 params, 18C^2HW / 25C^2HW MACs.
    """
    result = run("textbook/two_conv3x3_CtoC", "--set", "C=32", "--set", "H=8", "--set", "W=8")
    assert result.exit_code == 0, result.output
    assert f"{18 * 32**2:,} / {25 * 32**2:,} = 0.72 = 18C^2 / 25C^2 = 18/25" in result.output
    macs18, macs25 = 18 * 32**2 * 8 * 8, 25 * 32**2 * 8 * 8
    assert f"{macs18:,} / {macs25:,} = 0.72" in result.output
    assert "18C^2 = 2 x 9 x 32^2" in result.output


def test_same_spec_comparison_keeps_other_sets() -> None:
    """A. Erdem, "Grouped Convolution vs Standard Convolution": G groups / groups=1 = 1/G.

    With --set G=8 and C_in=C_out=16.
    """
    result = run("textbook/grouped_conv", "-s", "G=8", "-s", "Cin=16", "-s", "Cout=16",
                 "-s", "H=4", "-s", "W=4")
    assert result.exit_code == 0, result.output
    grouped, standard = 16 * 16 * 9 * 4 * 4 // 8, 16 * 16 * 9 * 4 * 4
    assert f"{grouped} / {standard:,} = 0.12 = 1/G = 1/8" in result.output


def test_symbolic_mobilenet_speedup() -> None:
    """A. Erdem, "MobileNets: Tiny Networks": speedup 9C^2 / (9C + C^2) = 9C/(9 + C).

    At C=16, H=W=4: 144/25 = 5.76.
    """
    result = run("textbook/mobilenet_separable_block", "-s", "C=16", "-s", "H=4", "-s", "W=4")
    assert result.exit_code == 0, result.output
    standard, separable = 9 * 16**2 * 16, (9 * 16 + 16**2) * 16
    assert f"{standard:,} / {separable} = {standard / separable:.2f} = 9C^2 / (9C + C^2)" \
        in result.output
    assert "9 x 16 / (9 + 16)" in result.output


def test_batch_scales_counts_and_closed_forms() -> None:
    """--batch 2: N x (H x W x C_out) x (K x K x C_in); closed forms are per sample x N."""
    result = run("textbook/conv3x3_6x6x3", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert f"conv1: 2 x (4x4x5) x (3x3x3) = {2 * 2160} MACs" in result.output
    assert f"= 2160 per sample; x N=2 = {2 * 2160}  (count agrees)" in result.output


def test_input_option() -> None:
    """--input 3x10x10: a 3x3 valid conv gives 8x8x5: (8x8x5) x (3x3x3)."""
    result = run("textbook/conv3x3_6x6x3", "--input", "3x10x10")
    assert result.exit_code == 0, result.output
    assert f"conv1: (8x8x5) x (3x3x3) = {8 * 8 * 5 * 27} MACs" in result.output
    # the spec's closed form is for the slide's 6x6 input: shown, and flagged
    assert f"(count: {8 * 8 * 5 * 27}, differs)" in result.output


def test_dilated_receptive_fields() -> None:
    """A. Erdem, "Guideline 6: Dilated Convolutions" (Yu & Koltun Fig. 1).

    Dilations 1, 2, 4 -> receptive fields 3, 7, 15.
    """
    result = run("textbook/dilated_convs")
    assert result.exit_code == 0, result.output
    for rf in (3, 7, 15):
        assert f"receptive field: {rf} (along H)" in result.output
    w = 3 * 3 * 16 * 16
    assert f"params, F3 / F1: {w} / {w} = 1.00" in result.output


# --------------------------------------------------------------------------- the explain key

SPEC = """\
name: tiny
input: [3, 8, 8]
vars: {c: 4}
layers:
  - conv: {out: c, kernel: 3, padding: 1}
  - flatten
  - linear: {out: 10}
explain:
  formulas:
    - what: macs
      layers: [conv1]
      formula: "8 x 8 x {c} x 27"
      expr: "8 * 8 * c * 27"
    - what: params
      expr: "999"
  compare:
    - what: macs
      num: {layers: [conv1]}
      den: {set: {c: 2 * c}, layers: [conv1]}
      formula: "1/2"
      expr: "1 / 3"
  notes: ["a note"]
"""


def test_closed_forms_and_ratios_are_checked(write_spec) -> None:
    """A right closed form says so; a wrong one (999, 1/3) is flagged with the count."""
    path = write_spec(SPEC)
    result = run(str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    macs = 8 * 8 * 4 * 27
    params = (27 * 4 + 4) + (4 * 8 * 8 * 10 + 10)
    assert f"MACs of conv1: 8 x 8 x 4 x 27 = {macs}  (count agrees)" in out
    assert f"params: 999  (count: {params}, differs)" in out
    assert f"MACs: {macs} / {2 * macs:,} = 0.50 = 1/2  (closed form gives 0.333333: differs" in out
    # linear layer: in_features x out_features + bias, MACs (N x out) x in
    assert f"linear1: (1x10) x {4 * 8 * 8} = {4 * 8 * 8 * 10} MACs" in out
    assert f"params: {4 * 8 * 8}x10 + 10 bias = {4 * 8 * 8 * 10 + 10}" in out
    assert out.rstrip().endswith("a note")


def test_references_evaluate_set_with_the_spec_vars() -> None:
    spec = parse_spec(SPEC, "t.yaml", overrides={"c": 3})
    assert references(spec.explain, spec.vars) == [Ref(None, (("c", 6),))]
    other = load_spec(TEXTBOOK / "dwsep_6x6x3.yaml")
    refs = references(other.explain, other.vars)
    assert refs == [Ref("conv3x3_6x6x3.yaml"), Ref(None, (("c_out", 512),)),
                    Ref("conv3x3_6x6x3.yaml", (("c_out", 512),))]
    assert SELF not in refs


@pytest.mark.parametrize(("explain", "message"), [
    ("{formulas: [{what: speed, expr: 1}]}", r"what='speed'; expected one of macs"),
    ("{formulas: [{what: macs}]}", r"missing `expr`"),
    ("{compare: [{what: macs}]}", r"missing `den`"),
    ("{compare: [{what: macs, den: {}, digits: -1}]}", r"digits=-1"),
    ("{compare: [{what: macs, den: {spec: 3}}]}", r"`spec` is a path"),
    ("{table: 1}", r"unknown key 'table'"),
    ("[1, 2]", r"expected a mapping"),
])
def test_bad_explain_data(explain: str, message: str) -> None:
    spec = parse_spec(f"input: [3, 8, 8]\nlayers: [relu]\nexplain: {explain}\n", "x.yaml")
    with pytest.raises(SpecError, match=message):
        parse_explain(spec.explain, spec.file)


def test_errors_name_file_and_line(write_spec) -> None:
    """Unknown layer in a side, bad expression: exit 2, one line with file:line, no traceback."""
    bad_layer = SPEC.replace("den: {set: {c: 2 * c}, layers: [conv1]}", "den: {layers: [conv9]}")
    result = run(str(write_spec(bad_layer)))
    assert result.exit_code == 2, result.output
    assert "spec.yaml:19" in result.output and "no layer 'conv9'" in result.output
    assert "Traceback" not in result.output
    bad_expr = SPEC.replace('expr: "8 * 8 * c * 27"', 'expr: "8 * d"')
    result = run(str(write_spec(bad_expr)))
    assert result.exit_code == 2, result.output
    assert "spec.yaml:10" in result.output and "undefined name 'd'" in result.output


def test_unknown_layer_argument() -> None:
    result = run("textbook/conv5x5", "conv7")
    assert result.exit_code == 2, result.output
    assert "no layer 'conv7'" in result.output and "conv1" in result.output


def test_missing_other_spec(write_spec) -> None:
    result = run(str(write_spec(SPEC.replace("den: {set: {c: 2 * c}, layers: [conv1]}",
                                              "den: {spec: nowhere.yaml}"))))
    assert result.exit_code == 2, result.output
    assert "nowhere.yaml" in result.output


def test_layer_argument_in_library() -> None:
    spec = load_spec(TEXTBOOK / "resnet_bottleneck.yaml", overrides={"C": 4, "H": 2, "W": 2})
    lines = explain_lines(count_spec(spec), layer="conv3x3")
    # 3x3 C -> C at 2x2, C = 4: (2x2x4) x (3x3x4) = 576 MACs, 3x3x4x4 = 144 weights
    assert f"conv3x3: (2x2x4) x (3x3x4) = {2 * 2 * 4 * 3 * 3 * 4} MACs" in lines
    assert f"  params: 3x3x4x4 = {3 * 3 * 4 * 4}" in lines
    with pytest.raises(UsageError, match="no layer 'conv9'"):
        explain_lines(count_spec(spec), layer="conv9")


def test_any_module_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pkg.module:factory gets the same derivations (no spec, so no explain data)."""
    (tmp_path / "tiny_net.py").write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("tiny_net:make", "--input", "3x6x6")
    assert result.exit_code == 0, result.output
    # 6x6 -> 4x4 valid: (4x4x8) x (3x3x3) MACs, 3x3x3x8 weights
    assert f"0: (4x4x8) x (3x3x3) = {4 * 4 * 8 * 27} MACs" in result.output
    assert f"params: 3x3x3x8 = {3 * 3 * 3 * 8}" in result.output


def test_every_textbook_spec_explains_without_disagreement() -> None:
    """Every closed form and ratio in specs/textbook/ agrees with the count at its defaults."""
    for path in sorted(TEXTBOOK.glob("*.yaml")):
        result = run(str(path))
        assert result.exit_code == 0, (path.name, result.output)
        assert "differs" not in result.output, (path.name, result.output)
        assert "(count agrees)" in result.output, path.name

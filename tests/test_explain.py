"""cnncost.render.explain and `cnncost explain`: slide-style derivations and the spec's ratio lines.

Expected texts are the slides' own arithmetic (lecture and slide named in comments), not copies of
what the code printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.count.drivers import count_spec
from cnncost.errors import SpecError, UsageError
from cnncost.explain import SELF, Ref, parse_explain, references
from cnncost.render.explain import explain_lines
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
    assert "receptive field: 5x5" in text
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
    assert f"(count: {8 * 8 * 5 * 27}, differs; the default case is input 3x6x6)" in \
        result.output


def test_dilated_receptive_fields() -> None:
    """A. Erdem, "Guideline 6: Dilated Convolutions" (Yu & Koltun Fig. 1).

    Dilations 1, 2, 4 -> receptive fields 3, 7, 15.
    """
    result = run("textbook/dilated_convs")
    assert result.exit_code == 0, result.output
    for rf in (3, 7, 15):
        assert f"receptive field: {rf}x{rf}" in result.output
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


# --------------------------------------------------------------------------- the lecture's prose


def _case_line(default: str, counted: str, notes: bool = True) -> str:
    what = "description and notes describe" if notes else "description describes"
    return (f"(the {what} the default case, {default}, that the source works out; counted "
            f"here: {counted})")


def test_the_lectures_prose_says_which_case_it_describes() -> None:
    """N. Khan, "1x1 convolution" with a 16-channel bottleneck instead of the slide's 32:
    (128 x 128 x 16) x (1 x 1 x 256) + (128 x 128 x 64) x (5 x 5 x 16) = 67,108,864 +
    419,430,400 = 486,539,264 MACs; per pixel 16/(5x5x64) + 16/256 = 1/(409,600 / 29,696)
    = 1/13.8 of the plain 5x5's (128 x 128 x 64) x (5 x 5 x 256) = 6,710,886,400."""
    result = run("textbook/conv1x1_5x5", "--set", "c=16")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[3] == _case_line("c=32", "c=16")
    assert "total MACs: 67,108,864 + 419,430,400 = 486,539,264" in lines
    assert "  MACs, 1x1 bottleneck / plain 5x5 (conv5x5.yaml): 486,539,264 / 6,710,886,400 = " \
        "0.072 = 16/(5x5x64) + 16/256 = 1/13.8  (c/(f^2 n_c') + c/n_c)" in lines
    # the slide's "0.97 billion" and "almost 7 times" only under the heading that says so
    notes = lines.index("notes (the default case, c=32):")
    assert notes == len(lines) - 2 and "0.97 billion" in lines[-1]
    assert not any("0.97 billion" in t or "7 times" in t for t in lines[1:notes])
    # the slide's own case says nothing of the kind
    same = run("textbook/conv1x1_5x5", "--set", "c=32").output
    assert "default case" not in same and "\nnotes:\n" in same


def test_a_filter_size_moves_both_sides_and_every_closed_form() -> None:
    """F. Galassi; A. Ng, "Cost Summary", with f = 5 instead of 3 on the 6x6x3 input: the valid
    5x5 conv leaves 2x2. Depthwise 5 x 5 x 2 x 2 x 3 = 300, pointwise 1 x 1 x 3 x 2 x 2 x 5 =
    60; the standard conv 5 x 5 x 3 x 2 x 2 x 5 = 1500: 360 / 1500 = 0.24 = 1/5 + 1/25. With
    n_c' = 512: (300 + 3 x 2 x 2 x 512) / (5 x 5 x 3 x 2 x 2 x 512) = 6444 / 153,600 = 0.042
    = 1/512 + 1/25 = 1/23.8."""
    result = run("textbook/dwsep_6x6x3", "--set", "f=5")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MACs of depthwise: 5 x 5 x 2 x 2 x 3 = 300  (count agrees)" in out
    assert "MACs of pointwise: 1 x 1 x 3 x 2 x 2 x 5 = 60  (count agrees)" in out
    assert "360 / 1500 = 0.24 = 1/5 + 1/25" in out
    assert "6444 / 153,600 = 0.042 = 1/512 + 1/25 = 1/23.8" in out
    assert _case_line("f=3", "f=5") in out and "notes (the default case, f=3):" in out
    assert "differs" not in out and out.count("10 times") == 1  # the slide's, in the notes


def test_the_mobilenetv2_shapes_follow_the_expansion_factor() -> None:
    """F. Galassi, "MobileNets": n x n x 3 -> n x n x 18 at t = 6; at t = 2 the expansion holds
    n x n x 6 = 56 x 56 x 6 = 18,816 values, and the block costs n^2 (3 x 6 + 9 x 6 + 6 x 3) =
    3136 x 90 = 282,240 MACs."""
    result = run("textbook/mobilenetv2_bottleneck", "--set", "t=2")
    assert result.exit_code == 0, result.output
    assert "memory (values) of expansion: n x n x tc = 56 x 56 x 6 = 18,816  (count agrees)" \
        in result.output
    assert "= 56^2 x (3 x 6 + 9 x 6 + 6 x 3) = 282,240  (count agrees)" in result.output
    assert not re.search(r"(?<![\d,])18(?![\d,])", result.output.split("closed forms:")[1])
    assert _case_line("t=6", "t=2", notes=False) in result.output


def test_another_input_or_batch_is_not_the_lectures_case() -> None:
    """N. Khan, "Cost of Convolution Layer" on a 64x64 input: (64 x 64 x 64) x (5 x 5 x 256) =
    1,677,721,600 MACs a sample, x 2 = 3,355,443,200; the closed form is the slide's 128x128."""
    result = run("textbook/conv5x5", "--input", "256x64x64", "--batch", "2")
    assert result.exit_code == 0, result.output
    default, counted = "input 256x128x128, batch 1", "input 256x64x64, batch 2"
    assert _case_line(default, counted) in result.output
    assert f"(count: 3,355,443,200, differs; the default case is {default})" in result.output
    assert f"notes (the default case, {default}):" in result.output


def _another_value(path: Path, name: str, value: int) -> tuple[str, str] | None:
    for other in (value * 2, value + 1, value - 1):
        if other >= 0 and other != value:
            result = run(str(path), "--set", f"{name}={other}")
            if result.exit_code == 0:
                return str(other), result.output
    return None


def _int_vars() -> list[tuple[Path, str, int]]:
    found = []
    for path in sorted(TEXTBOOK.glob("*.yaml")):
        spec = load_spec(path)
        if spec.explain:
            found += [(path, k, v) for k, v in spec.vars.items()
                      if isinstance(v, int) and not isinstance(v, bool)]
    return found


@pytest.mark.parametrize("path,name,value", _int_vars(),
                         ids=[f"{p.stem}-{k}" for p, k, _ in _int_vars()])
def test_every_closed_form_follows_every_variable(path: Path, name: str, value: int) -> None:
    # A closed form or ratio of a textbook spec is written in its variables (or is true for
    # all of them): another value of any variable never makes it disagree with the count, and
    # the description and notes, the lecture's case, say that they are.
    moved = _another_value(path, name, value)
    assert moved is not None, f"no other value of {name} compiles"
    other, out = moved
    assert "differs" not in out, out
    if load_spec(path).description:
        assert f"default case, {name}={value}, that the source works out; counted here: " \
               f"{name}={other})" in out, out


def test_each_distinct_table_is_counted_once(write_spec, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    # Seven ratio lines naming three distinct tables in nine ways: this spec as counted (also
    # as {set: {w: 4}}, its default, and by its own file name), other.yaml (also as
    # ./other.yaml) and this spec at w = 8 (twice).
    import cnncost.api

    write_spec("input: [3, 8, 8]\nlayers: [{conv: {out: 2, kernel: 3}}]\n", "other.yaml")
    path = write_spec(
        "input: [3, 8, 8]\nvars: {w: 4}\nlayers: [{conv: {out: w, kernel: 3}}]\n"
        "explain:\n  compare:\n"
        "    - {what: macs, den: {spec: other.yaml}}\n"
        "    - {what: params, den: {spec: ./other.yaml}}\n"
        "    - {what: macs, den: {set: {w: 4}}}\n"
        "    - {what: macs, den: {spec: this.yaml}}\n"
        "    - {what: macs, num: {set: {w: 8}}, den: {set: {w: \"2 * w\"}}}\n"
        "    - {what: params, num: {set: {w: 8}}, den: {spec: other.yaml}}\n"
        "    - {what: macs, den: {}}\n", "this.yaml")
    counted = []
    real = cnncost.api.count_loaded

    def counting(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        counted.append(dict(spec.vars))
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(cnncost.api, "count_loaded", counting)
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert counted == [{"w": 4}, {}, {"w": 8}]
    # conv 3 -> w, 3x3 valid on 8x8: 6 x 6 x w x 27 MACs = 972 w; other.yaml: w = 2
    assert "MACs: 3888 / 1944 = 2.00" in result.output
    assert "MACs: 3888 / 3888 = 1.00" in result.output
    assert "MACs: 7776 / 7776 = 1.00" in result.output


def test_the_tables_ratio_lines_read_are_bounded(write_spec) -> None:
    # every other table is counted: 65 ratio lines at 65 values of w would count 65 tables
    from cnncost.explain import MAX_REFERENCES

    lines = "".join(f"    - {{what: macs, den: {{set: {{w: {w}}}}}}}\n"
                    for w in range(1, MAX_REFERENCES + 2))
    path = write_spec("input: [3, 8, 8]\nvars: {w: 4}\nlayers: [{conv: {out: w, kernel: 3}}]\n"
                      f"explain:\n  compare:\n{lines}", "many.yaml")
    result = run(str(path))
    assert result.exit_code == 2, result.output
    # the spec's first ratio line is line 6
    assert f"many.yaml:{6 + MAX_REFERENCES}: explain.compare[{MAX_REFERENCES}].den: more than " \
        f"{MAX_REFERENCES} other tables to count" in result.output
    ok = path.read_text().replace(f"{{w: {MAX_REFERENCES + 1}}}", "{w: 1}")
    assert run(str(write_spec(ok, "enough.yaml"))).exit_code == 0

"""The spec language: every composition form, and every bad input as one located line.

Error tests assert the whole prefix ``FILE:LINE: where.path: `` of the message, so a wrong
line number or a wrong path fails. Shapes are derived by hand in the comments.
"""

from __future__ import annotations

import re
from pathlib import Path
from textwrap import dedent

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.errors import SpecError
from cnncost.spec import (
    MAX_LAYERS,
    MAX_REPEAT,
    MAX_STEPS,
    RESERVED_NAMES,
    LayerSpec,
    ModelSpec,
    load_spec,
    parse_spec,
    spec_files,
)
from cnncost.spec.composites import COMPOSITES

SPECS = Path(__file__).resolve().parent.parent / "specs"


def spec(text: str, **kw: object) -> ModelSpec:
    return parse_spec(dedent(text), "t.yaml", **kw)  # type: ignore[arg-type]


def by_path(model: ModelSpec) -> dict[str, LayerSpec]:
    return {layer.path: layer for layer in model.layers}


def shapes(model: ModelSpec) -> dict[str, tuple[int, ...]]:
    return {layer.path: layer.out_shape for layer in model.layers}


# --------------------------------------------------------------------------- basics


def test_minimal_spec_infers_channels_and_shapes() -> None:
    m = spec("""
        name: tiny
        input: [3, 32, 32]
        layers:
          - conv: {out: 16, kernel: 3, stride: 2, padding: 1}
          - bn
          - relu
          - conv: {out: 8, kernel: 3}
          - global_avg_pool
          - flatten
          - linear: {out: 10}
    """)
    # (32 + 2 - 3) // 2 + 1 = 16; then valid 3x3: 16 - 2 = 14
    assert shapes(m) == {
        "conv1": (16, 16, 16), "bn1": (16, 16, 16), "relu1": (16, 16, 16),
        "conv2": (8, 14, 14), "global_avg_pool1": (8, 1, 1), "flatten1": (8,),
        "linear1": (10,),
    }
    assert m.name == "tiny"
    assert m.input_shape == (3, 32, 32)
    assert m.output == "linear1"
    assert m.output_shape == (10,)
    assert by_path(m)["conv2"].in_shapes == ((16, 16, 16),)
    assert by_path(m)["conv2"].inputs == ("relu1",)
    assert by_path(m)["conv1"].inputs == ("input",)


def test_every_layer_records_its_file_and_line(write_spec) -> None:
    path = write_spec(dedent("""\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3}
          - relu
          - conv:
              out: 4
              kernel: 1
    """))
    m = load_spec(path)
    assert [(layer.loc.file, layer.loc.line) for layer in m.layers] == [
        (str(path), 3), (str(path), 4), (str(path), 5)]
    assert [layer.loc.where for layer in m.layers] == [
        "layers[0].conv", "layers[1].relu", "layers[2].conv"]


def test_default_names_count_per_kind_and_namespace() -> None:
    m = spec("""
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 1}
          - relu
          - conv: {out: 4, kernel: 1}
            name: mine
          - conv: {out: 4, kernel: 1}
          - seq: [{conv: {out: 4, kernel: 1}}, relu]
          - relu
    """)
    assert [layer.path for layer in m.layers] == [
        "conv1", "relu1", "mine", "conv2", "seq1.conv1", "seq1.relu1", "relu2"]


def test_default_names_of_kinds_ending_in_a_digit_get_a_separator() -> None:
    # "relu61" would read as ReLU number 61; the counter is set off with "_".
    m = spec("""
        input: [3, 8, 8]
        layers: [relu6, relu6, relu]
    """)
    assert [layer.path for layer in m.layers] == ["relu6_1", "relu6_2", "relu1"]


def test_default_names_skip_names_taken_explicitly() -> None:
    m = spec("""
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: relu1
          - relu
    """)
    assert [layer.path for layer in m.layers] == ["relu1", "relu2"]


def test_in_is_the_input_channels_of_each_item() -> None:
    m = spec("""
        input: [6, 8, 8]
        layers:
          - conv: {out: "in * 4", kernel: 1}          # 6 * 4 = 24
          - conv: {out: "in // 2", kernel: 3, groups: "in // 2", padding: 1}  # 12, groups 12
          - conv: {out: in, kernel: 1}                # 12
    """)
    assert [layer.out_shape[0] for layer in m.layers] == [24, 12, 12]
    assert m.layers[1].params["groups"] == 12


def test_vars_and_overrides() -> None:
    text = """
        vars: {width: 1.0, res: 32, classes: 10, c: "int(16 * width)"}
        input: [3, res, res]
        layers:
          - conv: {out: c, kernel: 3, padding: 1}
          - global_avg_pool
          - flatten
          - linear: {out: classes}
    """
    m = spec(text)
    assert m.vars == {"width": 1.0, "res": 32, "classes": 10, "c": 16}
    assert m.input_shape == (3, 32, 32)
    # --set values arrive as strings and are evaluated; later vars see the new value
    m = spec(text, overrides={"width": "0.5", "res": "2 * 8", "classes": "3"})
    assert m.vars == {"width": 0.5, "res": 16, "classes": 3, "c": 8}  # int(16 * 0.5) = 8
    assert m.input_shape == (3, 16, 16)
    assert m.output_shape == (3,)
    # Python callers (cnncost.build(spec, width=0.25)) pass values directly
    assert spec(text, overrides={"width": 0.25}).vars["c"] == 4
    # an override may also give a whole var an expression
    assert spec(text, overrides={"c": "classes * 2"}).vars["c"] == 20


def test_input_shape_override() -> None:
    m = spec("""
        input: [3, 32, 32]
        layers: [{conv: {out: 4, kernel: 3}}]
    """, input_shape=(3, 10, 12))
    assert m.output_shape == (4, 8, 10)


def test_literal_and_expression_fields() -> None:
    m = spec("""
        vars: {k: 5, m: "'bilinear'"}
        input: [3, 9, 9]
        layers:
          - conv: {out: 4, kernel: k, padding: same, bias: false}
          - conv: {out: 4, kernel: "[k, 1]", padding: "[(k - 1) // 2, 0]"}
          - upsample: {scale: 2, mode: m}
    """)
    layers = by_path(m)
    assert layers["conv1"].params == {"out": 4, "kernel": 5, "padding": "same", "bias": False}
    assert layers["conv2"].params["kernel"] == [5, 1]
    assert layers["conv2"].out_shape == (4, 9, 9)  # 9 + 2*2 - 5 + 1 = 9; 9 + 0 - 1 + 1 = 9
    assert layers["upsample1"].params["mode"] == "bilinear"
    assert layers["upsample1"].out_shape == (4, 18, 18)


def test_1d_and_3d_inputs() -> None:
    m1 = spec("""
        input: [2, 100]
        layers: [{conv: {out: 8, kernel: 5, stride: 5}}, {max_pool: {kernel: 2}}]
    """)
    assert m1.output_shape == (8, 10)  # (100 - 5) // 5 + 1 = 20, pooled to 10
    m3 = spec("""
        input: [1, 8, 16, 16]
        layers: [{conv: {out: 4, kernel: 3, padding: 1, stride: 2}}]
    """)
    assert m3.output_shape == (4, 4, 8, 8)  # (8 + 2 - 3) // 2 + 1 = 4; (16 - 1) // 2 + 1 = 8


# --------------------------------------------------------------------------- compositions


def test_seq_is_a_namespace() -> None:
    m = spec("""
        input: [3, 8, 8]
        layers:
          - seq:
              - conv: {out: 4, kernel: 1}
              - seq: [relu]
          - seq: [relu]
            name: head
    """)
    assert [layer.path for layer in m.layers] == [
        "seq1.conv1", "seq1.seq1.relu1", "head.relu1"]


def test_residual_identity_list_form() -> None:
    m = spec("""
        input: [4, 8, 8]
        layers:
          - residual:
              - conv: {out: 4, kernel: 3, padding: 1}
              - relu
    """)
    layers = by_path(m)
    # the body is flattened into the parent namespace; the add takes body + input
    assert list(layers) == ["conv1", "relu1", "add1"]
    assert layers["add1"].kind == "add"
    assert layers["add1"].is_op
    assert layers["add1"].inputs == ("relu1", "input")
    assert layers["add1"].out_shape == (4, 8, 8)


def test_residual_projection_shortcut_and_name() -> None:
    m = spec("""
        input: [4, 8, 8]
        layers:
          - residual:
              layers:
                - conv: {out: 8, kernel: 3, stride: 2, padding: 1}
              shortcut:
                - conv: {out: 8, kernel: 1, stride: 2}
                - bn
            name: block
    """)
    layers = by_path(m)
    assert list(layers) == ["block.conv1", "block.shortcut.conv1", "block.shortcut.bn1",
                            "block.add1"]
    assert layers["block.shortcut.conv1"].inputs == ("input",)
    assert layers["block.add1"].inputs == ("block.conv1", "block.shortcut.bn1")
    assert layers["block.add1"].out_shape == (8, 4, 4)  # (8 + 2 - 3) // 2 + 1 = 4


@pytest.mark.parametrize(("c", "has_add"), [(4, True), (8, False)])
def test_residual_when(c: int, has_add: bool) -> None:
    m = spec(f"""
        input: [4, 8, 8]
        layers:
          - residual:
              layers: [{{conv: {{out: {c}, kernel: 1}}}}]
              when: "in == {c}"
    """)
    assert ("add1" in by_path(m)) is has_add
    assert m.output_shape == (c, 8, 8)


def test_concat_and_add_branches() -> None:
    m = spec("""
        input: [8, 6, 6]
        layers:
          - concat:
              b1: [{conv: {out: 4, kernel: 1}}]
              b2: [{conv: {out: 6, kernel: 3, padding: 1}}, relu]
              b3: []
              b4: [{max_pool: {kernel: 3, stride: 1, padding: 1}}, {conv: {out: 2, kernel: 1}}]
          - add:
              - [{conv: {out: 20, kernel: 1}}]
              - []
    """)
    layers = by_path(m)
    # 4 + 6 + 8 (identity) + 2 = 20 channels
    assert layers["concat1"].out_shape == (20, 6, 6)
    assert layers["concat1"].inputs == ("b1.conv1", "b2.relu1", "input", "b4.conv1")
    assert layers["b4.max_pool1"].inputs == ("input",)
    # list form names branches branch1, branch2, ...
    assert layers["branch1.conv1"].inputs == ("concat1",)
    assert layers["add1"].inputs == ("branch1.conv1", "concat1")
    assert m.output_shape == (20, 6, 6)


def test_named_branches_get_their_own_namespace() -> None:
    m = spec("""
        input: [8, 6, 6]
        layers:
          - concat:
              a: [{conv: {out: 4, kernel: 1}}]
              b: [{conv: {out: 4, kernel: 1}}]
            name: mixed
    """)
    assert [layer.path for layer in m.layers] == ["mixed.a.conv1", "mixed.b.conv1",
                                                  "mixed.concat1"]


def test_add_broadcasts_sizes_of_one() -> None:
    m = spec("""
        input: [8, 6, 6]
        layers:
          - add: {x: [], ctx: [global_avg_pool]}
    """)
    assert m.output_shape == (8, 6, 6)


def test_split_chunks_channels_equally() -> None:
    m = spec("""
        input: [8, 4, 4]
        layers:
          - split:
              x1: []
              x2: [{conv: {out: 4, kernel: 1}}, relu]
          - channel_shuffle: {groups: 2}
    """)
    layers = by_path(m)
    assert layers["x1.slice"].params == {"dim": 0, "start": 0, "length": 4}
    assert layers["x2.slice"].params == {"dim": 0, "start": 4, "length": 4}
    assert layers["x2.conv1"].in_shapes == ((4, 4, 4),)
    assert layers["concat1"].inputs == ("x1.slice", "x2.relu1")
    assert m.output_shape == (8, 4, 4)


def test_scale_multiplies_by_a_broadcast_gate() -> None:
    m = spec("""
        input: [16, 8, 8]
        layers:
          - scale:
              - global_avg_pool
              - conv: {out: 4, kernel: 1}
              - relu
              - conv: {out: 16, kernel: 1}
              - sigmoid
    """)
    layers = by_path(m)
    assert layers["scale1.sigmoid1"].out_shape == (16, 1, 1)
    assert layers["mul1"].kind == "mul"
    assert layers["mul1"].inputs == ("input", "scale1.sigmoid1")
    assert layers["mul1"].out_shape == (16, 8, 8)


def test_squeeze_excite_as_a_block_uses_in_for_its_width() -> None:
    m = spec("""
        input: [32, 8, 8]
        blocks:
          se:
            params: {c: in, r: 4}
            layers:
              - scale:
                  - global_avg_pool
                  - conv: {out: "c // r", kernel: 1}
                  - relu
                  - conv: {out: c, kernel: 1}
                  - sigmoid
        layers: [se, {se: {r: 8}}]
    """)
    layers = by_path(m)
    assert layers["se1.scale1.conv1"].out_shape == (8, 1, 1)  # 32 // 4
    assert layers["se2.scale1.conv1"].out_shape == (4, 1, 1)  # 32 // 8
    assert layers["se2.mul1"].out_shape == (32, 8, 8)


def test_tap_and_join_with_crop() -> None:
    m = spec("""
        input: [4, 20, 20]
        layers:
          - conv: {out: 8, kernel: 3}        # 18x18
          - tap: skip
          - conv: {out: 8, kernel: 3}        # 16x16
          - conv: {out: 8, kernel: 3}        # 14x14
          - join: {tap: skip, crop: true}    # crop 18 -> 14 starting at (18 - 14) // 2 = 2
          - tap: wide
          - conv: {out: 16, kernel: 1}
          - join: {tap: wide, mode: add}
    """)
    layers = by_path(m)
    assert layers["crop1"].params == {"tap": "skip", "dim": 1, "start": 2, "length": 14}
    assert layers["crop2"].params == {"tap": "skip", "dim": 2, "start": 2, "length": 14}
    assert layers["crop1"].inputs == ("conv1",)
    assert layers["crop2"].inputs == ("crop1",)
    assert layers["concat1"].inputs == ("crop2", "conv3")
    assert layers["concat1"].out_shape == (16, 14, 14)
    assert layers["concat1"].params == {"tap": "skip"}
    assert layers["add1"].inputs == ("concat1", "conv4")
    assert layers["add1"].params == {"tap": "wide"}


def test_blocks_params_defaults_and_lexical_scope() -> None:
    m = spec("""
        vars: {width: 2}
        input: [8, 8, 8]
        blocks:
          unit:
            params: {c: ~, mid: "c // 2", k: 3}
            layers:
              - conv: {out: "mid * width", kernel: 1}
              - conv: {out: c, kernel: k, padding: "k // 2"}
        layers:
          - unit: {c: 16}
          - unit: {c: "in * 2", k: 5}
            name: big
    """)
    layers = by_path(m)
    assert layers["unit1.conv1"].out_shape == (16, 8, 8)   # mid = 8, * width 2
    assert layers["unit1.conv2"].params["kernel"] == 3
    assert layers["big.conv1"].out_shape == (32, 8, 8)     # c = 16 * 2, mid 16, * 2
    assert layers["big.conv2"].params == {"out": 32, "kernel": 5, "padding": 2}


def test_nested_blocks_see_their_own_params_only(write_spec) -> None:
    path = write_spec(dedent("""\
        input: [8, 8, 8]
        blocks:
          inner:
            layers:
              - conv: {out: c, kernel: 1}
          outer:
            params: {c: ~}
            layers: [inner]
        layers:
          - outer: {c: 4}
    """))
    with pytest.raises(SpecError, match=_at(path, 5, "blocks.inner.layers[0].conv.out",
                                            "outer1.inner1",
                                            r"expected a whole number, got 'c' \(undefined "
                                            r"name 'c'; known: in\)")):
        load_spec(path)


def test_repeat_with_i_and_first() -> None:
    m = spec("""
        input: [4, 16, 16]
        layers:
          - conv: {out: "8 * (i + 1)", kernel: 3, padding: 1}
            repeat: 3
            first: {stride: 2}
    """)
    layers = by_path(m)
    assert list(layers) == ["conv1.0", "conv1.1", "conv1.2"]
    assert layers["conv1.0"].params == {"out": 8, "kernel": 3, "padding": 1, "stride": 2}
    assert layers["conv1.1"].params == {"out": 16, "kernel": 3, "padding": 1}
    # (16 + 2 - 3) // 2 + 1 = 8, then 8 stays
    assert [layer.out_shape for layer in m.layers] == [(8, 8, 8), (16, 8, 8), (24, 8, 8)]


def test_repeat_of_a_block_with_first_overriding_a_param() -> None:
    m = spec("""
        input: [8, 16, 16]
        blocks:
          down:
            params: {c: ~, s: 1}
            layers:
              - conv: {out: c, kernel: 3, stride: s, padding: 1}
        layers:
          - down: {c: 16}
            name: stage
            repeat: 3
            first: {s: 2}
          - down: {c: 16}
            repeat: 0
    """)
    layers = by_path(m)
    assert list(layers) == ["stage.0.conv1", "stage.1.conv1", "stage.2.conv1"]
    assert layers["stage.0.conv1"].params["stride"] == 2
    assert layers["stage.1.conv1"].params["stride"] == 1
    assert m.output_shape == (16, 8, 8)


def test_repeat_count_and_if_may_use_vars_and_in() -> None:
    text = """
        vars: {depth: 2, head: true}
        input: [4, 8, 8]
        layers:
          - relu:
            repeat: "depth * 2"
          - conv: {out: 8, kernel: 1}
            if: "in == 4"
          - global_avg_pool:
            if: head
    """
    m = spec(text)
    assert [layer.path for layer in m.layers] == [
        "relu1.0", "relu1.1", "relu1.2", "relu1.3", "conv1", "global_avg_pool1"]
    m = spec(text, overrides={"depth": "0", "head": "False"})
    assert [layer.path for layer in m.layers] == ["conv1"]


def test_nested_repeats_rebind_i() -> None:
    m = spec("""
        input: [1, 4, 4]
        layers:
          - seq:
              - conv: {out: "10 * (i + 1)", kernel: 1}
                repeat: 2
            repeat: 2
    """)
    assert [(layer.path, layer.out_shape[0]) for layer in m.layers] == [
        ("seq1.0.conv1.0", 10), ("seq1.0.conv1.1", 20),
        ("seq1.1.conv1.0", 10), ("seq1.1.conv1.1", 20)]


def test_receptive_field() -> None:
    # A. Erdem, COMP541, "Receptive Fields": L stacked KxK convs see 1 + L(K - 1) pixels
    m = spec("""
        input: [1, 64, 64]
        layers:
          - conv: {out: 1, kernel: 3, padding: 1}
            repeat: 4
    """)
    assert [layer.receptive_field for layer in m.layers] == [3, 5, 7, 9]  # 1 + L * 2
    # row 16: dilated 3x3 convs with dilation 1, 2, 4 -> 3, 7, 15
    m = spec("""
        input: [1, 64, 64]
        layers:
          - conv: {out: 1, kernel: 3, padding: same, dilation: "2 ** i"}
            repeat: 3
    """)
    assert [layer.receptive_field for layer in m.layers] == [3, 7, 15]
    # a stride multiplies what later kernels add: 3, then 3 + (3 - 1) * 2 = 7
    m = spec("""
        input: [1, 64, 64]
        layers:
          - conv: {out: 1, kernel: 3, stride: 2}
          - conv: {out: 1, kernel: 3}
    """)
    assert [layer.receptive_field for layer in m.layers] == [3, 7]


def test_top_level_metadata() -> None:
    m = spec("""
        name: demo
        description: a demo
        source: somewhere
        reference: {params: 123, source: "a paper"}
        explain: {conv1: "hello"}
        input: [3, 4, 4]
        layers: [relu]
    """)
    assert (m.name, m.description, m.source) == ("demo", "a demo", "somewhere")
    assert m.reference == {"params": 123, "source": "a paper"}
    assert m.explain == {"conv1": "hello"}
    assert spec("input: [3, 4, 4]\nlayers: [relu]").name == "t"  # file stem by default


# --------------------------------------------------------------------------- writing a family once


def test_lists_and_tables_are_indexed_by_expressions() -> None:
    text = """
        name: "net{depth}"
        description: "{depth} stages of {widths}"
        vars:
          depth: 2
          stages: {2: [4, 8], 3: [4, 8, 16]}    # a table: widths by depth
          widths: "stages[depth]"
        input: [3, 8, 8]
        layers:
          - conv: {out: "widths[i]", kernel: 1}
            repeat: "len(widths)"
          - conv: {out: "widths[-1] * 2", kernel: 1}
    """
    m = spec(text)
    assert (m.name, m.description) == ("net2", "2 stages of [4, 8]")
    # 1x1 convs keep 8x8; channels widths[0], widths[1], then 2 x the last
    assert shapes(m) == {"conv1.0": (4, 8, 8), "conv1.1": (8, 8, 8), "conv2": (16, 8, 8)}
    m = spec(text, overrides={"depth": "3"})
    assert m.name == "net3"
    assert shapes(m) == {"conv1.0": (4, 8, 8), "conv1.1": (8, 8, 8), "conv1.2": (16, 8, 8),
                         "conv2": (32, 8, 8)}
    assert m.vars["stages"] == {2: [4, 8], 3: [4, 8, 16]}


def test_group_repeats_items_together_in_the_enclosing_namespace() -> None:
    m = spec("""
        input: [3, 8, 8]
        layers:
          - repeat: 3
            group:
              - {conv: {out: "4 * (i + 1)", kernel: 3, padding: 1}, name: "conv{i + 1}"}
              - relu
              - tap: "t{i}"
          - join: {tap: t0, mode: concat}
    """)
    # no namespace per repetition: default names count on (relu1..3); tap t0 = relu1 (4 ch.)
    assert shapes(m) == {"conv1": (4, 8, 8), "relu1": (4, 8, 8), "conv2": (8, 8, 8),
                         "relu2": (8, 8, 8), "conv3": (12, 8, 8), "relu3": (12, 8, 8),
                         "concat1": (16, 8, 8)}  # 4 + 12
    assert by_path(m)["concat1"].inputs == ("relu1", "relu3")


@pytest.mark.parametrize(("wide", "expected"), [(True, {"conv1": (8, 4, 4), "bn1": (8, 4, 4)}),
                                                (False, {"conv1": (2, 4, 4)})])
def test_if_on_a_group_chooses_between_bodies(wide: bool, expected: dict) -> None:
    m = spec(f"""
        vars: {{wide: {str(wide).lower()}}}
        input: [3, 4, 4]
        layers:
          - if: wide
            group:
              - conv: {{out: 8, kernel: 1}}
              - bn
          - if: "not wide"
            group: [{{conv: {{out: 2, kernel: 1}}}}]
    """)
    assert shapes(m) == expected


def test_taps_and_joins_named_by_expressions_make_a_unet_level_a_repeat() -> None:
    m = spec("""
        vars: {levels: 2}
        input: [1, 16, 16]
        layers:
          - repeat: levels
            group:
              - {conv: {out: "4 * 2**i", kernel: 3, padding: 1}, name: "enc{i + 1}"}
              - tap: "skip{i + 1}"
              - {max_pool: {kernel: 2}, name: "pool{i + 1}"}
          - repeat: levels
            group:
              - {upsample: {scale: 2}, name: "up{levels - i}"}
              - join: {tap: "skip{levels - i}"}
    """)
    # down: enc1 4x16x16 -> pool1 4x8x8 -> enc2 8x8x8 -> pool2 8x4x4
    # up: up2 8x8x8 + skip2 (enc2, 8) = 16x8x8; up1 16x16x16 + skip1 (enc1, 4) = 20x16x16
    assert shapes(m) == {"enc1": (4, 16, 16), "pool1": (4, 8, 8), "enc2": (8, 8, 8),
                         "pool2": (8, 4, 4), "up2": (8, 8, 8), "concat1": (16, 8, 8),
                         "up1": (16, 16, 16), "concat2": (20, 16, 16)}
    assert by_path(m)["concat1"].inputs == ("enc2", "up2")


def test_a_layer_without_fields_is_its_bare_name() -> None:
    m = spec("""
        input: [3, 4, 4]
        layers:
          - relu                      # the way to write it
          - {relu: ~, name: act}      # beside name/if/repeat: no fields (~)
          - relu:                     # the same, in block style
              {}
          - bn                        # a kind whose fields all have defaults
    """)
    assert [(layer.path, layer.kind, dict(layer.params)) for layer in m.layers] == [
        ("relu1", "relu", {}), ("act", "relu", {}), ("relu2", "relu", {}), ("bn1", "bn", {})]


# --------------------------------------------------------------------------- extends


def _files(tmp_path: Path, **texts: str) -> dict[str, Path]:
    paths = {}
    for name, text in texts.items():
        path = tmp_path / f"{name.replace('__', '/')}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
        paths[name] = path
    return paths


BASE = """\
    name: "net{depth}"
    vars: {depth: 2, width: 4}
    input: [3, 8, 8]
    blocks:
      unit:
        params: {c: ~}
        layers: [{conv: {out: c, kernel: 3, padding: 1}}, relu]
    layers:
      - {unit: {c: width}, name: stage, repeat: depth}
      - global_avg_pool
    """


def test_extends_a_base_spec_with_other_vars(tmp_path: Path) -> None:
    f = _files(tmp_path, base=BASE, sub__deep="extends: ../base.yaml\nvars: {depth: 3}\n")
    m = load_spec(f["sub__deep"])
    assert m.name == "net3"
    assert m.file == str(f["sub__deep"])
    assert [layer.path for layer in m.layers] == [
        "stage.0.conv1", "stage.0.relu1", "stage.1.conv1", "stage.1.relu1", "stage.2.conv1",
        "stage.2.relu1", "global_avg_pool1"]
    # conv3x3/pad 1 keeps 8x8 at width 4; the pool leaves 4x1x1
    assert m.output_shape == (4, 1, 1)
    assert by_path(m)["stage.0.conv1"].out_shape == (4, 8, 8)
    # inherited layers are located where they are written: in the base file
    assert {(layer.loc.file, layer.loc.line) for layer in m.layers[:2]} == {
        (str(f["base"]), 7)}
    assert (m.layers[-1].loc.file, m.layers[-1].loc.line) == (str(f["base"]), 10)
    # --set goes on top of the variant's defaults
    assert len(load_spec(f["sub__deep"], overrides={"depth": "1"}).layers) == 3


def test_extends_merges_blocks_by_name_and_replaces_other_keys(tmp_path: Path) -> None:
    f = _files(tmp_path, base=BASE, v="""\
        extends: base.yaml
        name: custom
        blocks:
          unit:                       # replaces the base's unit
            params: {c: ~}
            layers: [{conv: {out: "c * 2", kernel: 1}}]
          head:                       # a new block
            layers: [flatten]
        layers:
          - {unit: {c: width}, name: stage, repeat: depth}
          - head
        """, v2="extends: v.yaml\nvars: {width: 1}\n")
    m = load_spec(f["v"])
    assert m.name == "custom"
    # 1x1 convs to 2c = 8 channels; flatten: 8 x 8 x 8 = 512
    assert shapes(m) == {"stage.0.conv1": (8, 8, 8), "stage.1.conv1": (8, 8, 8),
                         "head1.flatten1": (512,)}
    m = load_spec(f["v2"])  # a variant of a variant: width 1 -> 2 channels, 2 x 8 x 8 = 128
    assert (m.name, m.output_shape) == ("custom", (128,))


def test_extends_errors_name_the_file_and_line(tmp_path: Path) -> None:
    f = _files(tmp_path, base=BASE, typo="extends: base.yaml\nvars:\n  deph: 3\n",
               missing="name: x\nextends: nope.yaml\n", number="extends: 3\n",
               a="extends: b.yaml\n", b="extends: a.yaml\n",
               bad="extends: base.yaml\nvars: {width: 0}\n")
    cases = [
        ("typo", 3, "vars.deph", "base.yaml has no variable 'deph'; known: depth, width "
         r"\(a variant sets new defaults for its base's vars\)"),
        ("missing", 2, "extends", f"no such file {re.escape(repr(str(tmp_path / 'nope.yaml')))}"),
        ("number", 1, "extends", r"expected the spec file this one varies, e\.g\. `extends: "
         r"resnet50\.yaml`"),
        ("b", 1, "extends", "a.yaml extends, directly or not, the spec that extends it"),
    ]
    for name, line, where, reason in cases:
        file = f["b"] if name == "b" else f[name]
        with pytest.raises(SpecError, match=_at(file, line, where, None, reason)):
            load_spec(f["a"] if name == "b" else file)
    # an error in an inherited layer names the base file, and the instance
    with pytest.raises(SpecError, match=_at(f["base"], 7, "blocks.unit.layers[0].conv.out",
                                            "stage.0", "size 0 must be positive|out=0")):
        load_spec(f["bad"])


def test_spec_files_lists_what_a_variant_depends_on(tmp_path: Path) -> None:
    f = _files(tmp_path, base=BASE, v="extends: base.yaml\n", v2="extends: v.yaml\n")
    assert spec_files(f["v2"]) == [str(f["v2"]), str(f["v"]), str(f["base"])]
    assert spec_files(f["base"]) == [str(f["base"])]


def test_reports_name_inherited_layers_by_the_bundled_base() -> None:
    from cnncost.api import analyze_target

    table = analyze_target("resnet18")
    assert table.source == "specs/resnet18.yaml"
    assert {r.source.split(":")[0] for r in table.layers} == {"specs/resnet50.yaml"}


# --------------------------------------------------------------------------- bundled families


@pytest.mark.parametrize("depth", [18, 34, 101, 152])
def test_resnet_variant_files_are_resnet50_at_their_depth(depth: int) -> None:
    def layers(m: ModelSpec) -> list[tuple[object, ...]]:
        return [(x.path, x.kind, dict(x.params), x.inputs, x.out_shape, x.loc) for x in m.layers]

    variant = load_spec(SPECS / f"resnet{depth}.yaml")
    chosen = load_spec(SPECS / "resnet50.yaml", overrides={"depth": depth})
    assert variant.name == chosen.name == f"resnet{depth}"
    assert variant.description == chosen.description
    assert layers(variant) == layers(chosen)


@pytest.mark.parametrize(("depth", "blocks", "convs"), [
    # He et al. 2016, table 1: blocks per stage conv2_x..conv5_x, and convs per block
    (18, [2, 2, 2, 2], 2), (34, [3, 4, 6, 3], 2), (50, [3, 4, 6, 3], 3),
    (101, [3, 4, 23, 3], 3), (152, [3, 8, 36, 3], 3)])
def test_resnet_depth_picks_the_row_of_table_1(depth: int, blocks: list[int], convs: int) -> None:
    m = load_spec(SPECS / "resnet50.yaml", overrides={"depth": depth})
    for stage, n in enumerate(blocks, 1):
        children = {x.path.split(".")[1] for x in m.layers if x.path.startswith(f"layer{stage}.")}
        assert children == {str(j) for j in range(n)}
    body = [x for x in m.layers if x.kind == "conv" and x.path.startswith("layer1.0.conv")]
    assert len(body) == convs
    # the depth is the number of weighted layers: 1 stem conv + blocks x convs + 1 fc
    assert 1 + sum(blocks) * convs + 1 == depth


def test_unknown_resnet_depth_names_the_table(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"resnet50\.yaml:\d+: vars\.blocks: stages\[19\]: no "
                                        r"entry 19 in stages; known: 18, 34, 50, 101, 152"):
        load_spec(SPECS / "resnet50.yaml", overrides={"depth": 19})


def test_unet_levels_are_a_repeat() -> None:
    m = load_spec(SPECS / "unet.yaml", overrides={"levels": 3})
    top = list(dict.fromkeys(x.path.split(".")[0] for x in m.layers))
    assert top == ["enc1", "pool1", "enc2", "pool2", "enc3", "pool3", "bottom",
                   "up3", "crop1", "crop2", "concat1", "dec3", "up2", "crop3", "crop4",
                   "concat2", "dec2", "up1", "crop5", "crop6", "concat3", "dec1", "head"]
    # 572 -4-> 568 /2 284 -4-> 280 /2 140 -4-> 136 /2 68 -4-> bottom 64 (512 channels);
    # up 128 -4-> 124, up 248 -4-> 244, up 488 -4-> 484; head 1x1 to 2 classes
    sizes = shapes(m)
    assert sizes["bottom.relu2"] == (512, 64, 64)
    assert sizes["dec3.relu2"] == (256, 124, 124)
    assert m.output_shape == (2, 484, 484)
    # the crops take the centre of the taps: skip3 136 -> 128 starts at (136 - 128) // 2 = 4
    assert by_path(m)["crop1"].params == {"tap": "skip3", "dim": 1, "start": 4, "length": 128}


def test_unet_with_three_levels_has_the_params_counted_by_hand() -> None:
    from cnncost.count.drivers import count_spec

    m = load_spec(SPECS / "unet.yaml", overrides={"levels": 3, "res": 188})
    # double conv c_in -> c: 9 c_in c + c + 9 c c + c; up-conv c_in -> c: 4 c_in c + c
    double = {(1, 64): 37_568, (64, 128): 221_440, (128, 256): 885_248, (256, 512): 3_539_968,
              (512, 256): 1_769_984, (256, 128): 442_624, (128, 64): 110_720}
    up = {(512, 256): 524_544, (256, 128): 131_200, (128, 64): 32_832}
    head = 64 * 2 + 2
    assert count_spec(m).totals.params == sum(double.values()) + sum(up.values()) + head
    assert sum(double.values()) + sum(up.values()) + head == 7_696_258


@pytest.mark.parametrize("kind", sorted(COMPOSITES))
def test_every_composite_has_an_example_and_is_documented(kind: str) -> None:
    """A new composite fails here until it has an example, a docstring and a README entry."""
    text, expected = COMPOSITE_EXAMPLES[kind]  # input 4x8x8
    m = spec("input: [4, 8, 8]\nlayers:\n" + dedent(text))
    assert m.output_shape == expected
    assert COMPOSITES[kind].doc
    readme = (SPECS.parent / "README.md").read_text()
    language = readme.split("## The spec language by example")[1].split("\n## ")[0]
    assert f"`{kind}:" in language
    import cnncost.spec as spec_module
    assert f"``{kind}:" in (spec_module.__doc__ or "")


COMPOSITE_EXAMPLES: dict[str, tuple[str, tuple[int, ...]]] = {
    "seq": ("- seq: [relu]", (4, 8, 8)),
    "group": ("- group: [{conv: {out: 2, kernel: 1}}]", (2, 8, 8)),
    "residual": ("- residual: [{conv: {out: 4, kernel: 3, padding: 1}}]", (4, 8, 8)),
    "concat": ("- concat: {a: [], b: [{conv: {out: 2, kernel: 1}}]}", (6, 8, 8)),  # 4 + 2
    "add": ("- add: [[], [{conv: {out: 4, kernel: 1}}]]", (4, 8, 8)),
    "split": ("- split: {x1: [], x2: [{conv: {out: 3, kernel: 1}}]}", (5, 8, 8)),  # 2 + 3
    "scale": ("- scale: [global_avg_pool, sigmoid]", (4, 8, 8)),
    "tap": ("- tap: a\n- max_pool: {kernel: 2}", (4, 4, 4)),
    "join": ("- tap: a\n- relu\n- join: {tap: a}", (8, 8, 8)),  # concat 4 + 4
}


def test_bundled_specs_all_compile() -> None:
    root = Path(__file__).resolve().parent.parent / "specs"
    paths = sorted(root.rglob("*.yaml"))
    for path in paths:
        model = load_spec(path)
        assert model.layers, path


# --------------------------------------------------------------------------- bad input


def _at(file: str | Path, line: int | None, where: str | None, context: str | None,
        reason: str) -> str:
    """Regex for ``FILE:LINE: where (in context): reason`` on one line; context is a regex."""
    prefix = re.escape(str(file)) + (f":{line}" if line else "") + ": "
    if where:
        prefix += re.escape(where) + (rf" \(in {context}\)" if context else "") + ": "
    return "^" + prefix + reason + r"[^\n]*$"


BAD: list[tuple[str, str, int | None, str | None, str | None, str]] = [
    # id, spec text, line, where, instance context, reason (regex)
    ("malformed-yaml", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4
          - relu
        """, 5, None, None, r"malformed YAML: expected ',' or '}'"),
    ("malformed-indent", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3}
         - relu
        """, 4, None, None, "malformed YAML: .*; check the indentation"),
    ("malformed-indent-map", """\
        input: [3, 8, 8]
        layers:
          - conv:
            out: 4
             kernel: 3
        """, 5, None, None, "malformed YAML: mapping values are not allowed here; check the "
     "indentation"),
    ("scalar-continuation", """\
        input: [3, 8, 8]
        layers:
          - relu
           - relu
        """, 3, "layers[0].relu - relu", None,
     "layer kind 'relu - relu' is not a name; check the indentation"),
    ("tab", "input: [3, 8, 8]\nlayers:\n\t- relu\n", 3, None, None,
     r"malformed YAML: found character '\\t'.*; indent with spaces, not tabs"),
    ("not-a-mapping", "- relu\n", 1, None, None, "a spec is a mapping with `input` and `layers`"),
    ("empty-file", "", 1, None, None, "a spec is a mapping"),
    ("unknown-top-key", """\
        input: [3, 8, 8]
        layer: [relu]
        """, 2, "layer", None, "unknown key 'layer'; expected one of name, description"),
    ("missing-input", "layers: [relu]\n", 1, None, None, r"missing `input`, e.g. input: \[3"),
    ("missing-layers", "input: [3, 8, 8]\n", 1, None, None, "missing `layers`; expected a list"),
    ("empty-layers", "input: [3, 8, 8]\nlayers: []\n", 2, "layers", None,
     "`layers` is empty; expected at least one layer"),
    ("all-skipped", """\
        input: [3, 8, 8]
        layers:
          - relu:
            if: false
        """, 2, "layers", None, "every layer was skipped"),
    ("layers-not-list", "input: [3, 8, 8]\nlayers: {relu: 1}\n", 2, "layers", None,
     "expected a list of layers, got"),
    ("unknown-kind", """\
        input: [3, 8, 8]
        layers:
          - relu
          - convv: {out: 4, kernel: 3}
        """, 4, "layers[1].convv", None,
     "unknown layer kind 'convv'; did you mean conv.*known: .*conv_transpose"),
    ("unknown-field", """\
        input: [3, 8, 8]
        layers:
          - conv:
              out: 4
              kernal: 3
        """, 5, "layers[0].conv", None,
     "unknown field 'kernal' for conv; accepted: out, kernel, stride"),
    ("two-kinds", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            bn: ~
        """, 3, "layers[0]", None, "a layer entry needs exactly one kind key.*found relu, bn"),
    ("item-not-layer", "input: [3, 8, 8]\nlayers: [relu, 3]\n", 2, "layers[1]", None,
     "expected a layer like `- conv: {out: 64, kernel: 3}` or `- relu`, got 3"),
    ("fields-not-mapping", "input: [3, 8, 8]\nlayers:\n  - conv: 64\n", 3, "layers[0].conv",
     None, r"conv takes a mapping of fields, e.g. `- conv: \{out: 64, kernel: 3\}`; got 64"),
    ("wrong-type-bool", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3, bias: maybe}
        """, 3, "layers[0].conv.bias", None,
     "expected true or false, got 'maybe' \\(undefined name 'maybe'"),
    ("wrong-type-float", "input: [3, 8, 8]\nlayers:\n  - conv: {out: 4.5, kernel: 3}\n", 3,
     "layers[0].conv.out", None, "expected a whole number, got 4.5"),
    ("wrong-type-expr", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: "in / 2", kernel: 3}
        """, 3, "layers[0].conv.out", None, r"expected a whole number, got 'in / 2' = 1.5"),
    ("wrong-type-list", "input: [3, 8, 8]\nlayers:\n  - conv: {out: [4], kernel: 3}\n", 3,
     "layers[0].conv.out", None, r"expected a whole number, got \[4\]"),
    ("wrong-literal", "input: [3, 8, 8]\nlayers:\n  - upsample: {scale: 2, mode: bicubic}\n",
     3, "layers[0].upsample.mode", None,
     "expected 'nearest' or 'bilinear' or 'linear' or 'trilinear', got 'bicubic'"),
    ("missing-out", """\
        input: [3, 8, 8]
        layers:
          - relu
          - conv: {kernel: 3}
        """, 4, "layers[1].conv", None,
     r"missing field 'out' for conv \(e.g. \{out: 64, kernel: 3\}\)"),
    ("groups", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3, groups: 2}
        """, 3, "layers[0].conv", None,
     r"groups=2 does not divide in_channels=3 \(input 3x8x8\)"),
    ("cannot-add", """\
        input: [3, 8, 8]
        layers:
          - residual:
              - conv: {out: 4, kernel: 1}
        """, 3, "layers[0].residual", None,
     r"cannot add 4x8x8 and 3x8x8; expected equal shapes"),
    ("cannot-concat", """\
        input: [3, 8, 8]
        layers:
          - concat:
              a: [{conv: {out: 4, kernel: 3}}]
              b: []
        """, 3, "layers[0].concat", None,
     "cannot concat 4x6x6 and 3x8x8; expected equal sizes apart from channels"),
    ("cannot-scale", """\
        input: [4, 8, 8]
        layers:
          - scale: [{conv: {out: 3, kernel: 1}}]
        """, 3, "layers[0].scale", None,
     "cannot multiply 4x8x8 by a gate of 3x8x8; expected the gate to be 4x8x8 or 4x1x1"),
    ("kernel-too-big", "input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 9}\n", 3,
     "layers[0].conv", None, r"kernel 9 \(dilation 1\) is larger than its padded input 8"),
    ("pool-too-big", """\
        input: [3, 8, 8]
        layers:
          - max_pool: {kernel: 2}
            repeat: 4
        """, 3, "layers[0].max_pool", "max_pool1.3",
     r"kernel 2 \(dilation 1\) is larger than its padded input 1"),  # 8 -> 4 -> 2 -> 1 -> ?
    ("negative-out", "input: [3, 8, 8]\nlayers:\n  - conv: {out: -4, kernel: 3}\n", 3,
     "layers[0].conv", None, "out=-4 must be positive"),
    ("zero-kernel", "input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 0}\n", 3,
     "layers[0].conv", None, "kernel=0 must be positive"),
    ("absurd-out", "input: [3, 8, 8]\nlayers:\n  - conv: {out: 100000000000, kernel: 1}\n", 3,
     "layers[0].conv.out", None, "100000000000 is absurdly large for a layer's field; expected "
     "at most 16777216"),
    ("absurd-tensor", """\
        input: [3, 8, 8]
        layers:
          - upsample: {scale: 4096}
          - conv: {out: 100000, kernel: 1}
        """, 4, "layers[1].conv", None, "a 100000x32768x32768 tensor is absurdly large"),
    ("absurd-expr", "input: [3, 8, 8]\nlayers:\n  - conv: {out: '10 ** 30', kernel: 1}\n", 3,
     "layers[0].conv.out", None, "10 \\*\\* 30 is absurdly large"),
    ("negative-input", "input: [3, -8, 8]\nlayers: [relu]\n", 1, "input", None,
     "size -8 must be positive"),
    ("float-input", "input: [3, 8.5, 8]\nlayers: [relu]\n", 1, "input", None,
     "sizes must be whole numbers, got 8.5"),
    ("input-not-list", "input: 3x8x8\nlayers: [relu]\n", 1, "input", None,
     r"`input` must be a list like \[3, 224, 224\], got '3x8x8'"),
    ("input-batch", "input: [1, 3, 224, 224]\nlayers: [relu]\n", 1, "input", None,
     r"1x3x224x224 looks like it includes the batch dimension; give one sample's shape, "
     r"channels first, e.g. \[3, 224, 224\]"),
    ("input-5d", "input: [2, 3, 8, 16, 16]\nlayers: [relu]\n", 1, "input", None,
     "2x3x8x16x16 looks like it includes the batch dimension"),
    ("undefined-var", """\
        vars: {width: 1}
        input: [3, 8, 8]
        layers:
          - conv: {out: "widht * 4", kernel: 3}
        """, 4, "layers[0].conv.out", None, "undefined name 'widht'; known: in, width"),
    ("undefined-in-vars", "vars: {a: b, b: 1}\ninput: [3, 8, 8]\nlayers: [relu]\n", 1,
     "vars.a", None, "undefined name 'b'; known: \\(none\\)"),
    ("bad-var-name", "vars: {in: 1}\ninput: [3, 8, 8]\nlayers: [relu]\n", 1, "vars", None,
     "bad variable name 'in'; expected an identifier other than `in` and `i`"),
    ("recursive-block", """\
        input: [3, 8, 8]
        blocks:
          loop:
            layers:
              - relu
              - loop
        layers: [loop]
        """, 6, "blocks.loop.layers[1].loop", "loop1",
     r"block 'loop' uses itself \(loop -> loop\)"),
    ("indirect-recursion", """\
        input: [3, 8, 8]
        blocks:
          a:
            layers: [b]
          b:
            layers:
              - relu
              - a
        layers:
          - a
        """, 8, "blocks.b.layers[1].a", "a1.b1", r"block 'a' uses itself \(a -> b -> a\)"),
    ("block-missing-param", """\
        input: [3, 8, 8]
        blocks:
          unit:
            params: {c: ~}
            layers: [{conv: {out: c, kernel: 1}}]
        layers:
          - relu
          - unit
        """, 8, "layers[1].unit", None, r"block unit needs param 'c', e.g. `- unit: \{c: ...\}`"),
    ("block-unknown-param", """\
        input: [3, 8, 8]
        blocks:
          unit:
            params: {c: ~}
            layers: [{conv: {out: c, kernel: 1}}]
        layers:
          - unit:
              c: 4
              d: 5
        """, 9, "layers[0].unit", None, "unknown param 'd' for block unit; accepted: c"),
    ("blocks-too-deep",
     "input: [3, 8, 8]\nblocks:\n"
     + "".join(f"  b{i}:\n    layers: [b{i + 1}]\n" for i in range(40))
     + "  b40:\n    layers: [relu]\nlayers: [b0]\n",
     66, "blocks.b31.layers[0].b32", r"b0_1\.b1_1\..*\.b31_1",  # line 3 + 2 * 31 + 1
     "blocks nested deeper than 32 levels; expected at most 32"),
    ("name-not-string", "name: [a]\ninput: [3, 8, 8]\nlayers: [relu]\n", 1, "name", None,
     r"`name` must be a string, got \['a'\]"),
    ("block-shadows-kind", """\
        input: [3, 8, 8]
        blocks:
          conv:
            layers: [relu]
        layers: [relu]
        """, 3, "blocks.conv", None, "block name 'conv' hides a built-in layer kind"),
    ("block-without-layers", """\
        input: [3, 8, 8]
        blocks:
          unit:
            params: {c: 1}
        layers: [relu]
        """, 3, "blocks.unit", None, "a block is a mapping with `layers`"),
    ("error-inside-block", """\
        input: [8, 8, 8]
        blocks:
          bottleneck:
            params: {c: ~}
            layers:
              - conv: {out: c, kernel: 1}
              - conv: {out: c, kernel: 3, groups: 3}
        layers:
          - bottleneck: {c: 4}
            name: layer1
          - bottleneck: {c: 6}
            name: layer2
            repeat: 2
        """, 7, "blocks.bottleneck.layers[1].conv", "layer1",
     "groups=3 does not divide in_channels=4"),
    ("error-in-second-instance", """\
        input: [8, 16, 16]
        blocks:
          down:
            params: {c: ~}
            layers:
              - max_pool: {kernel: 4}
        layers:
          - down: {c: 4}
            name: layer
            repeat: 3
        """, 6, "blocks.down.layers[0].max_pool", "layer.2",
     "kernel 4 .* larger than its padded input 1"),  # 16 -> 4 -> 1 -> ?
    ("error-in-first-override", """\
        input: [4, 8, 8]
        layers:
          - conv: {out: 4, kernel: 1}
            repeat: 2
            first:
              kernel: 3
              strid: 2
        """, 7, "layers[0].conv", "conv1.0", "unknown field 'strid' for conv"),
    ("first-without-repeat", """\
        input: [4, 8, 8]
        layers:
          - conv: {out: 4, kernel: 1}
            first: {stride: 2}
        """, 4, "layers[0].conv.first", None, "`first` only makes sense with `repeat`"),
    ("first-on-a-list", """\
        input: [4, 8, 8]
        layers:
          - seq: [relu]
            repeat: 2
            first: {stride: 2}
        """, 5, "layers[0].seq.first", None,
     "`first` overrides fields, but this seq is not given as a mapping"),
    ("huge-repeat", """\
        input: [3, 8, 8]
        layers:
          - relu:
            repeat: 100000000
        """, 4, "layers[0].relu.repeat", None,
     f"repeat=100000000; expected a whole number from 0 to {MAX_REPEAT}"),
    ("repeat-float", "input: [3, 8, 8]\nlayers:\n  - relu:\n    repeat: 2.5\n", 4,
     "layers[0].relu.repeat", None, "repeat=2.5; expected a whole number"),
    ("nested-repeat-bomb", """\
        input: [3, 8, 8]
        layers:
          - seq:
              - relu:
                repeat: 10000
            repeat: 10000
        """, 4, "layers[0].seq[0].relu", r"seq1\.\d+\.relu1\.\d+",
     f"the spec expands to more than {MAX_LAYERS} layers"),
    ("empty-repeat-bomb", """\
        input: [3, 8, 8]
        layers:
          - relu
          - seq:
              - seq: []
                repeat: 10000
            repeat: 10000
        """, 5, "layers[1].seq[0].seq", r"seq1\.\d+\.seq1\.\d+",
     f"the spec expands to more than {MAX_STEPS} items"),
    ("if-not-bool", "input: [3, 8, 8]\nlayers:\n  - relu:\n    if: '3'\n", 4,
     "layers[0].relu.if", None, "expected a condition that is true or false, got 3"),
    ("when-not-bool", """\
        input: [3, 8, 8]
        layers:
          - residual:
              layers: [relu]
              when: in
        """, 5, "layers[0].residual.when", None, "expected a condition that is true or false"),
    ("bad-name", "input: [3, 8, 8]\nlayers:\n  - relu:\n    name: a.b\n", 4,
     "layers[0].relu.name", None, "name 'a.b' must be an identifier"),
    ("reserved-name", "input: [3, 8, 8]\nlayers:\n  - relu:\n    name: forward\n", 4,
     "layers[0].relu.name", None, "name 'forward' is reserved"),
    ("keyword-name", "input: [3, 8, 8]\nlayers:\n  - relu:\n    name: class\n", 4,
     "layers[0].relu.name", None, "name 'class' is reserved"),
    ("dunder-name", "input: [3, 8, 8]\nlayers:\n  - relu:\n    name: __init__\n", 4,
     "layers[0].relu.name", None, "name '__init__' must be an identifier .* not starting"),
    ("duplicate-name", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: act
          - relu: ~
            name: act
        """, 5, "layers[1].relu", None,
     "name 'act' is used twice in the top level; names of layers and branches must be unique"),
    ("name-takes-default", """\
        input: [3, 8, 8]
        layers:
          - relu
          - relu: ~
            name: relu1
        """, 4, "layers[1].relu", None,
     "name 'relu1' is already the default name of an earlier layer in the top level"),
    ("branch-collides-with-layer", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: a
          - concat:
              a: []
              b: []
        """, 6, "layers[1].concat.a", None, "name 'a' is used twice in the top level"),
    ("layer-collides-with-branch", """\
        input: [3, 8, 8]
        layers:
          - concat:
              a: []
              b: []
          - relu: ~
            name: b
        """, 6, "layers[1].relu", None, "name 'b' is used twice in the top level"),
    ("named-residual-collides", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: blk
          - residual: [relu]
            name: blk
        """, 5, "layers[1].residual", None, "name 'blk' is used twice"),
    ("join-unknown-tap", """\
        input: [3, 8, 8]
        layers:
          - tap: skip
          - join:
              tap: skp
        """, 5, "layers[1].join.tap", None,
     "unknown tap 'skp'; expected a tap defined above: skip"),
    ("join-before-tap", """\
        input: [3, 8, 8]
        layers:
          - join: {tap: skip}
          - tap: skip
        """, 3, "layers[0].join.tap", None, r"unknown tap 'skip'; .*\(none yet\)"),
    ("join-no-tap", "input: [3, 8, 8]\nlayers:\n  - tap: t\n  - join: {}\n", 4,
     "layers[1].join", None, "missing field 'tap' for join"),
    ("join-mode", "input: [3, 8, 8]\nlayers:\n  - tap: t\n  - join: {tap: t, mode: mul}\n", 4,
     "layers[1].join.mode", None, "expected concat or add, got 'mul'"),
    ("join-cannot-crop", """\
        input: [3, 8, 8]
        layers:
          - tap: t
          - upsample: {scale: 2}
          - join: {tap: t, crop: true}
        """, 5, "layers[2].join", None, "cannot crop tap 't' \\(3x8x8\\) to 3x16x16"),
    ("join-cannot-add", """\
        input: [3, 8, 8]
        layers:
          - tap: t
          - conv: {out: 4, kernel: 1}
          - join: {tap: t, mode: add}
        """, 5, "layers[2].join", None, "cannot add 3x8x8 and 4x8x8"),
    ("tap-twice", """\
        input: [3, 8, 8]
        layers:
          - tap: t
            repeat: 2
        """, 3, "layers[0].tap", "tap1.1", "tap 't' is defined twice"),
    ("split-uneven", "input: [3, 8, 8]\nlayers:\n  - split: {a: [], b: []}\n", 3,
     "layers[0].split", None, "cannot split 3 channels into 2 equal parts"),
    ("one-branch", "input: [4, 8, 8]\nlayers:\n  - concat: {a: []}\n", 3, "layers[0].concat",
     None, "concat needs at least two branches, got 1"),
    ("residual-field", "input: [4, 8, 8]\nlayers:\n  - residual: {layer: []}\n", 3,
     "layers[0].residual", None, "unknown field 'layer'; accepted: layers, shortcut, when"),
    ("linear-before-flatten-ok-but-conv-after-flatten", """\
        input: [4, 8, 8]
        layers:
          - flatten
          - conv: {out: 3, kernel: 1}
        """, 4, "layers[1].conv", None,
     r"conv needs an input shaped \(C, L\) or \(C, H, W\) or \(C, D, H, W\), got 256"),
    ("reference-not-mapping", "input: [4, 8, 8]\nlayers: [relu]\nreference: 12\n", 3,
     "reference", None, "`reference` must be a mapping"),
    # attacks
    ("python-object-apply", """\
        input: [3, 8, 8]
        layers:
          - !!python/object/apply:os.system ["echo hacked"]
        """, 3, None, None,
     "YAML tag !!python/object/apply:os.system is not allowed; specs may only hold plain"),
    ("python-name", "input: !!python/name:os.system\nlayers: [relu]\n", 1, None, None,
     "YAML tag !!python/name:os.system is not allowed"),
    ("python-object-new", "input: [3, 8, 8]\nlayers:\n  - !!python/object/new:dict {}\n", 3,
     None, None, "YAML tag !!python/object/new:dict is not allowed"),
    ("custom-tag", "input: [3, 8, 8]\nlayers:\n  - !relu {}\n", 3, None, None,
     "YAML tag !relu is not allowed"),
    ("merge-key", "input: [3, 8, 8]\nlayers:\n  - conv: {<<: {out: 4}, kernel: 3}\n", 3, None,
     None, "YAML tag !!merge is not allowed"),
    ("billion-laughs", """\
        a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
        input: [3, 8, 8]
        layers: [relu]
        """, 1, None, None, r"YAML anchors \(&name\) are not supported; use `blocks`"),
    ("alias-only", "input: [3, 8, 8]\nlayers: [*x]\n", 2, None, None, "malformed YAML|alias"),
    ("duplicate-key", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3, out: 5}
        """, 3, None, None, "duplicate key 'out'; each key may appear once"),
    ("duplicate-top-key", "input: [3, 8, 8]\nlayers: [relu]\nlayers: [relu]\n", 3, None, None,
     "duplicate key 'layers'"),
    ("deep-nesting", "input: [3,8,8]\nlayers: " + "[" * 1000 + "]" * 1000 + "\n", 2, None,
     None, "YAML nested more than 200 levels deep"),
    ("deep-seq", "input: [3, 8, 8]\nlayers: " + "[{seq: " * 70 + "[relu]" + "}]" * 70 + "\n",
     2, "layers" + "[0].seq" * 64 + "[0]", None, "layers nested more than 64 levels deep"),
    ("attribute", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: "(4).__class__", kernel: 3}
        """, 3, "layers[0].conv.out", None, r"attribute access \(a\.b\) is not allowed"),
    ("dunder-call", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: "__import__('os').system('echo hacked')", kernel: 3}
        """, 3, "layers[0].conv.out", None, "only plain function calls are allowed"),
    ("lambda", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: "(lambda: 4)()", kernel: 3}
        """, 3, "layers[0].conv.out", None, "only plain function calls are allowed"),
    ("comprehension", """\
        input: [3, 8, 8]
        layers:
          - conv: {out: "max([x for x in [4]])", kernel: 3}
        """, 3, "layers[0].conv.out", None, "a comprehension is not allowed"),
    ("slice", """\
        vars: {sizes: [4, 8]}
        input: [3, 8, 8]
        layers:
          - conv: {out: "sizes[0:1]", kernel: 3}
        """, 4, "layers[0].conv.out", None, r"slicing \(a\[i:j\]\) is not allowed"),
    ("index-out-of-range", """\
        vars: {depths: [1, 2]}
        input: [3, 8, 8]
        layers:
          - relu: ~
            repeat: "depths[2]"
        """, 5, "layers[0].relu.repeat", None,
     r"depths\[2\]: index out of range; depths has 2 elements, 0 to 1"),
    ("table-no-entry", """\
        vars:
          depth: 19
          stages: {18: [2, 2], 34: [3, 4]}
          blocks: "stages[depth]"
        input: [3, 8, 8]
        layers: [relu]
        """, 4, "vars.blocks", None, r"stages\[19\]: no entry 19 in stages; known: 18, 34"),
    ("table-value", """\
        vars:
          t:
            a: 1
            b: "nope + 1"
        input: [3, 8, 8]
        layers: [relu]
        """, 4, "vars.t.b", None, "undefined name 'nope'"),
    ("name-template-undefined", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: "act{j}"
        """, 4, "layers[0].relu.name", None, r"\{j\} in 'act\{j\}': undefined name 'j'"),
    ("name-template-not-a-name", """\
        input: [3, 8, 8]
        layers:
          - relu: ~
            name: "act{0.5}"
        """, 4, "layers[0].relu.name", None, "name 'act0.5' must be an identifier"),
    ("spec-name-template", 'name: "net{k}"\ninput: [3, 8, 8]\nlayers: [relu]\n', 1, "name",
     None, r"\{k\} in 'net\{k\}': undefined name 'k'"),
    ("tap-template", """\
        input: [3, 8, 8]
        layers:
          - tap: "skip{i"
        """, 3, "layers[0].tap", None, r"unbalanced brace in 'skip\{i'"),
    ("join-template-unknown", """\
        input: [3, 8, 8]
        layers:
          - tap: "skip{1 + 1}"
          - join: {tap: "skip{1}", mode: add}
        """, 4, "layers[1].join.tap", None,
     "unknown tap 'skip1'; expected a tap defined above: skip2"),
    ("group-named", """\
        input: [3, 8, 8]
        layers:
          - group: [relu]
            name: g
        """, 4, "layers[0].group.name", None,
     "a group has no name: its items are named in the enclosing namespace; expected no `name`"),
    ("group-not-list", "input: [3, 8, 8]\nlayers:\n  - group: {relu: ~}\n", 3,
     "layers[0].group", None, "expected a list of layers, got"),
    ("group-names-clash", """\
        input: [3, 8, 8]
        layers:
          - repeat: 2
            group:
              - {relu: ~, name: act}
        """, 5, "layers[0].group[0].relu", "i=1",
     r"name 'act' is used twice in the top level.*build it from i, e.g. \"act\{i \+ 1\}\""),
    ("no-fields-list", "input: [3, 8, 8]\nlayers:\n  - relu: []\n", 3, "layers[0].relu", None,
     r"relu has no fields; write it as a bare name, `- relu` \(or `relu: ~` beside name, if or "
     r"repeat\); got \[\]"),
    ("no-fields-number", """\
        input: [3, 8, 8]
        layers:
          - relu: 0
            name: act
        """, 3, "layers[0].relu", None, "relu has no fields; write it as a bare name, `- relu`"),
    ("defaults-only", "input: [3, 8, 8]\nlayers:\n  - bn: 3\n", 3, "layers[0].bn", None,
     r"bn takes a mapping of fields, e.g. `- bn: \{eps: ..., momentum: ...\}`, or none for "
     r"the defaults, `- bn`"),
    ("call-syntax", "input: [3, 8, 8]\nlayers:\n  - relu(inplace=True)\n", 3,
     "layers[0].relu(inplace=True)", None,
     r"layer kind 'relu\(inplace=True\)' is not a name; a layer without fields is its bare "
     r"name, `- relu`"),
]


# Bombs that take a second each to be refused: the slow tier.
BIG_CASES = {"nested-repeat-bomb", "empty-repeat-bomb", "deep-nesting"}


@pytest.mark.parametrize(("text", "line", "where", "context", "reason"), [
    pytest.param(*case[1:], id=case[0],
                 marks=[pytest.mark.slow] if case[0] in BIG_CASES else [])
    for case in BAD])
def test_bad_input_gives_one_located_line(write_spec, text: str, line: int | None,
                                          where: str | None, context: str | None,
                                          reason: str) -> None:
    path = write_spec(dedent(text))
    with pytest.raises(SpecError, match=_at(path, line, where, context, reason)) as info:
        load_spec(path)
    assert "\n" not in str(info.value)
    assert info.value.file == str(path)
    assert info.value.line == line


def test_nothing_from_a_spec_executes(write_spec, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for text in [
        f"input: !!python/object/apply:os.system ['touch {marker}']\nlayers: [relu]\n",
        f"input: [3, 8, 8]\nlayers:\n  - !!python/object/apply:subprocess.call [[touch, "
        f"{marker}]]\n",
        f"input: [3, 8, 8]\nlayers:\n  - conv: {{out: \"__import__('os').system('touch "
        f"{marker}')\", kernel: 1}}\n",
        f"vars: {{x: \"open('{marker}', 'w')\"}}\ninput: [3, 8, 8]\nlayers: [relu]\n",
    ]:
        with pytest.raises(SpecError):
            load_spec(write_spec(text))
    assert not marker.exists()


def test_overrides_errors(write_spec) -> None:
    path = write_spec("vars: {width: 1.0}\ninput: [3, 8, 8]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=_at(path, None, None, None,
                                            "--set depth: the spec has no variable 'depth'; "
                                            "known: width")):
        load_spec(path, overrides={"depth": "3"})
    with pytest.raises(SpecError, match=_at(path, None, None, None,
                                            "--set width=abc: undefined name 'abc'.*expected a "
                                            "number or an expression, e.g. --set width=0.5")):
        load_spec(path, overrides={"width": "abc"})
    with pytest.raises(SpecError, match=_at(path, None, None, None,
                                            r"--set width=\(1: cannot parse expression")):
        load_spec(path, overrides={"width": "(1"})
    with pytest.raises(SpecError, match=_at(path, None, None, None,
                                            "--set width=: empty expression")):
        load_spec(path, overrides={"width": ""})
    with pytest.raises(SpecError, match=_at(path, None, None, None,
                                            "width=<object.*expected a number")):
        load_spec(path, overrides={"width": object()})


def test_override_with_a_value_the_spec_cannot_use_names_the_layer(write_spec) -> None:
    path = write_spec("vars: {c: 4}\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: c, kernel: 1}\n")
    with pytest.raises(SpecError, match=_at(path, 4, "layers[0].conv.out", None,
                                            "expected a whole number, got 'c' = 0.5")):
        load_spec(path, overrides={"c": "0.5"})


def test_input_override_with_batch_dim(write_spec) -> None:
    path = write_spec("input: [3, 8, 8]\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=_at(path, None, "--input", None,
                                            "1x3x8x8 looks like it includes the batch "
                                            "dimension; .* e.g. 3x224x224")):
        load_spec(path, input_shape=(1, 3, 8, 8))


def test_input_override_must_keep_the_specs_rank(write_spec) -> None:
    # A 2-D net given a (C, L) input would silently compile to 1-D convs.
    path = write_spec("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n")
    with pytest.raises(SpecError, match=_at(path, None, "--input", None,
                                            "3x8 has 2 dims but the spec's input has 3")):
        load_spec(path, input_shape=(3, 8))
    assert load_spec(path, input_shape=(3, 16, 16)).output_shape == (4, 14, 14)  # 16 - 3 + 1


def test_input_override_must_keep_fixed_channels(write_spec) -> None:
    # 224x224x3 on a 3-channel spec is a channels-last image, not 224 channels.
    path = write_spec("vars: {res: 8}\ninput: [3, res, res]\nlayers:\n"
                      "  - conv: {out: 4, kernel: 3}\n")
    with pytest.raises(SpecError, match=_at(path, None, "--input", None,
                                            "224x224x3 has 224 input channels but the spec's "
                                            r"input has 3; inputs are channels-first \(CxHxW\): "
                                            "--input 3x224x224")):
        load_spec(path, input_shape=(224, 224, 3))
    with pytest.raises(SpecError, match="--input 3x16x16"):
        load_spec(path, input_shape=(1, 16, 16))
    assert load_spec(path, input_shape=(3, 16, 16)).output_shape == (4, 14, 14)  # 16 - 3 + 1
    # channels given by a variable are the spec's to vary
    path = write_spec("vars: {c: 3}\ninput: [c, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n")
    assert load_spec(path, input_shape=(5, 8, 8)).layers[0].in_shapes == ((5, 8, 8),)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"input: [3, 8, 8]\nlayers: [relu]\n# \xff\xfe\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: cannot read spec"):
        load_spec(bad)


def test_huge_file_is_refused(write_spec) -> None:
    path = write_spec("input: [3, 8, 8]\nlayers:\n" + "  - relu\n" * 200_000)
    with pytest.raises(SpecError, match="spec is larger than 1024 KiB"):
        load_spec(path)


def test_reserved_names_are_refused_for_branches_too() -> None:
    with pytest.raises(SpecError, match=r"t.yaml:3: layers\[0\].concat: name 'eval' is "
                                        "reserved"):
        spec("input: [4, 8, 8]\nlayers:\n  - concat: {eval: [], b: []}\n")
    assert "training" in RESERVED_NAMES and "self" in RESERVED_NAMES


# --------------------------------------------------------------------------- CLI


def test_cli_validate_bad_spec_exits_2_with_one_line(write_spec) -> None:
    path = write_spec(dedent("""\
        input: [3, 8, 8]
        layers:
          - conv: {out: 4, kernel: 3}
          - conv: {out: 4, kernel: 3, groups: 3}
    """))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {path}:4: layers[1].conv: groups=3 does not divide "
                     "in_channels=4 (input 4x6x6)"]


@pytest.mark.parametrize("case", ["python-object-apply", "billion-laughs", "recursive-block",
                                  "malformed-yaml", "error-inside-block", "dunder-call"])
def test_cli_validate_attacks_exit_2(write_spec, case: str) -> None:
    text, line = next((c[1], c[2]) for c in BAD if c[0] == case)
    path = write_spec(dedent(text))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:{line}: "), lines


def test_cli_validate_bad_set_exits_2(write_spec) -> None:
    path = write_spec("vars: {width: 1.0}\ninput: [3, 8, 8]\nlayers: [relu]\n")
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "width=abc"])
    assert result.exit_code == 2, result.output
    assert f"error: {path}: --set width=abc: undefined name 'abc'" in result.output
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "depth=1"])
    assert result.exit_code == 2, result.output
    assert "the spec has no variable 'depth'; known: width" in result.output


def test_cli_validate_prints_the_tree_with_taps_and_joins(write_spec) -> None:
    path = write_spec(dedent("""\
        name: unetish
        input: [3, 16, 16]
        layers:
          - conv: {out: 8, kernel: 3, padding: 1}
          - tap: skip
          - max_pool: {kernel: 2}
          - upsample: {scale: 2}
          - join: {tap: skip}
    """))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "unetish" in result.output
    assert "conv(out=8, kernel=3, padding=1)  -> 8x16x16" in result.output
    assert "concat1  concat(tap=skip)  -> 16x16x16" in result.output
    assert "ok: 4 layers, output 16x16x16" in result.output


def test_docstring_example_compiles() -> None:
    import cnncost.spec as spec_module

    doc = spec_module.__doc__ or ""
    example = dedent(doc.split("The language, in short::")[1].split("Fields hold")[0])
    example = example.replace(
        "layers: [...]", "layers: [{conv: {out: c, kernel: 3, stride: s, padding: 1}}]")
    m = parse_spec(example, "doc.yaml")
    assert [layer.path for layer in m.layers] == [
        "conv1", "relu1", "layer1.0.conv1", "layer1.1.conv1", "mix1", "mix2"]
    # 32 -> (32 + 2 - 3) // 2 + 1 = 16 (stem) -> 8 (first repetition, s = 2) -> 8 -> 1x1: 8
    assert m.output_shape == (64, 8, 8)


def test_a_composite_registered_twice_is_refused() -> None:
    from cnncost.spec.composites import register_composite

    with pytest.raises(RuntimeError, match="composite 'seq' registered twice"):
        register_composite("seq")(lambda ctx, args, x, name: x)

"""Hostile specs: every evaluation and every expansion is bounded, and what torch could not
hold is refused when the spec is read, each as one located SpecError.

Each case here took minutes, gigabytes or a traceback before it was bounded; each now
fails after a bounded amount of work (no timing is asserted: see benchmarks/bench_hostile.py
for the times).
"""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

from cnncost.errors import SpecError
from cnncost.spec import MAX_STEPS, context, parse_spec
from cnncost.spec.model import (
    MAX_BRANCHES,
    MAX_DIM,
    MAX_NAME_CHARS,
    MAX_SAMPLE_ELEMENTS,
    MAX_WEIGHT_ELEMENTS,
    MAX_WORK,
    MAX_YAML_DEPTH,
)


def spec(text: str, **kw: object) -> object:
    return parse_spec(dedent(text), "t.yaml", **kw)  # type: ignore[arg-type]


def conv_out(expr: str) -> str:
    return f'input: [3, 8, 8]\nlayers:\n  - conv: {{out: "{expr}", kernel: 1}}\n'


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # round(4, -10**8) would build 10**(10**8) (100 million digits, minutes)
        (conv_out("round(4, -100000000)"),
         r"t.yaml:3: layers\[0\].conv.out: round\(\): ndigits must be a whole number from -16 "
         "to 16"),
        # a float power that overflows raised OverflowError (a traceback)
        (conv_out("9e15 ** 20"), r"t.yaml:3: layers\[0\].conv.out: 9000000000000000.0 \*\* 20 "
                                 "is absurdly large"),
        (conv_out("2 ** 53 * 2 ** 53"), r"value a number of about 33 digits is absurdly large"),
        (conv_out("float('nan')"), r"layers\[0\].conv.out: the result is not a number \(NaN\)"),
        # Python refuses int() of more than 4300 digits with a ValueError (a traceback)
        ("input: [3, 8, 8]\nlayers:\n  - conv: {out: " + "9" * 5000 + ", kernel: 1}\n",
         "t.yaml:3: a number written with 5000 characters is absurdly large"),
        # a hex literal has no digit limit, but its message would print 6000 digits
        ("input: [3, 8, 8]\nlayers:\n  - conv: {out: 0x" + "f" * 5000 + ", kernel: 1}\n",
         "t.yaml:3: a number written with 5002 characters"),
        ("input: [3, 8, 8]\nlayers:\n  - conv: {out: 0x" + "f" * 40 + ", kernel: 1}\n",
         r"layers\[0\].conv.out: value a number of about 49 digits is absurdly large"),
        ("input: [3, 8, 8]\nlayers:\n  - bn: {eps: .nan}\n",
         r"t.yaml:3: layers\[0\].bn.eps: the result is not a number \(NaN\)"),
        ("input: [3, 8, 8]\nlayers:\n  - bn: {eps: .inf}\n",
         r"t.yaml:3: layers\[0\].bn.eps: value inf is absurdly large"),
        ("input: [3, 8, 8]\nlayers:\n  - bn: {momentum: \"float('inf')\"}\n",
         r"layers\[0\].bn.momentum: value inf is absurdly large"),
        ("input: [3, 8, 8]\nlayers:\n  - leaky_relu: {negative_slope: .nan}\n",
         r"layers\[0\].leaky_relu.negative_slope: the result is not a number"),
        ("input: [3, 8, 8]\nlayers:\n  - dropout: {p: -.inf}\n", "value -inf is absurdly large"),
        ("input: [3, 8, 8]\nlayers:\n  - bn: {eps: -0.1}\n", r"eps=-0.1 must be >= 0"),
        ("input: [3, 8, 8]\nlayers:\n  - bn: {momentum: 2}\n", r"momentum=2.0 must be between"),
        ("input: [3, 8, 8]\nlayers:\n  - group_norm: {groups: 1, eps: -1}\n", "eps=-1.0 must"),
        # every whole-number field is at most MAX_DIM, so no shape arithmetic overflows
        ("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 1, stride: 1000000000}\n",
         rf"layers\[0\].conv.stride: 1000000000 is absurdly large for a layer's field; "
         rf"expected at most {MAX_DIM}"),
        ("input: [3, 8, 8]\nlayers:\n  - max_pool: {kernel: 2, padding: [0, -100000000000]}\n",
         r"layers\[0\].max_pool.padding: \[0, -100000000000\] is absurdly large"),
    ],
    ids=["round-digits", "float-pow", "big-product", "nan", "5000-digits", "5000-hex",
         "40-hex", "nan-eps", "inf-eps", "inf-momentum", "nan-slope", "inf-p", "negative-eps",
         "momentum-2", "gn-eps", "huge-stride", "huge-padding"],
)
def test_no_number_is_absurd_or_undefined(text: str, message: str) -> None:
    """Fields, whether numbers or expressions, hold finite numbers of sensible size."""
    with pytest.raises(SpecError, match=message):
        spec(text)


def test_set_values_are_bounded_like_fields() -> None:
    text = "input: [3, 8, 8]\nvars: {w: 1}\nlayers:\n  - conv: {out: 'w', kernel: 1}\n"
    with pytest.raises(SpecError, match=r"^t.yaml: --set w=round\(4, -100000000\): round\(\): "
                                        "ndigits must be a whole number"):
        spec(text, overrides={"w": "round(4, -100000000)"})
    # the Python API passes values, not text: they are checked the same way
    with pytest.raises(SpecError, match=r"w=nan: the result is not a number"):
        spec(text, overrides={"w": float("nan")})
    with pytest.raises(SpecError, match=r"w=a number of about 1506 digits: value a number of"):
        spec(text, overrides={"w": 1 << 5000})


def test_an_input_shape_of_absurd_numbers_is_one_line() -> None:
    with pytest.raises(SpecError, match=r"--input: size a number of about 1506 digits in 3xa "
                                        r"number of about 1506 digits is absurd"):
        spec("input: [3, 8]\nlayers: [relu]\n", input_shape=(3, 1 << 5000))


def test_the_receptive_field_arithmetic_cannot_overflow() -> None:
    # torch takes a stride of 2**24 on a 1x1 map, but 45 of them multiply to 2**1080: the
    # receptive field's float turned inf and then NaN (ValueError in round(), a traceback)
    layers = "  - conv: {out: 4, kernel: 3, padding: 1, stride: 16777216}\n" * 45
    with pytest.raises(SpecError, match=r"t.yaml:\d+: layers\[\d+\].conv: the receptive field "
                                        "grows beyond any number"):
        spec("input: [4, 1, 1]\nlayers:\n" + layers)
    # 20 of them (2**480) still count: the receptive field is a plain (big) whole number
    model = spec("input: [4, 1, 1]\nlayers:\n" + layers[: len(layers) * 20 // 45])
    assert model.layers[-1].receptive_field > 2**400  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- expansion


@pytest.mark.slow  # big hostile input
def test_an_add_of_many_empty_branches_is_refused_at_once() -> None:
    # 20,000 empty branches under repeat: 10000 took 700 s and 3.1 GB, no layer was ever made
    text = ("input: [4, 8, 8]\nlayers:\n  - repeat: 10000\n    add: ["
            + ", ".join(["[]"] * 20_000) + "]\n")
    with pytest.raises(SpecError, match=rf"t.yaml:3: layers\[0\].add \(in add1.0\): add of "
                                        rf"20000 branches; expected at most {MAX_BRANCHES}"):
        spec(text)


@pytest.mark.slow  # big hostile input
def test_every_branch_counts_toward_the_expansion_limit() -> None:
    # 1000 empty branches (identities) x 10,000 repeats: no layer made, 10 million branches
    text = ("input: [1000, 8, 8]\nlayers:\n  - repeat: 10000\n    add: ["
            + ", ".join(["[]"] * MAX_BRANCHES) + "]\n")
    with pytest.raises(SpecError, match=rf"t.yaml:4: layers\[0\].add.branch\d+ \(in add1.\d+\): "
                                        rf"the spec expands to more than {MAX_STEPS} items"):
        spec(text)


@pytest.mark.parametrize(("kind", "channels"), [("concat", 1), ("split", 40)])
def test_branches_of_every_parallel_form_count(monkeypatch: pytest.MonkeyPatch, kind: str,
                                               channels: int) -> None:
    # the counting, not the size, matters: a concat of identities multiplies the channels
    monkeypatch.setattr(context, "MAX_STEPS", 100)
    text = (f"input: [{channels}, 8, 8]\nlayers:\n  - repeat: 100\n    {kind}: ["
            + ", ".join(["[]"] * 40) + "]\n")
    with pytest.raises(SpecError, match=r"t.yaml:4: layers\[0\]\.\w+\.branch\d+ \(in \w+1.2\): "
                                        "the spec expands to more than 100 items"):
        spec(text)


def test_taps_and_groups_count_toward_the_expansion_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "MAX_STEPS", 1_000)
    groups = """\
        input: [4, 8, 8]
        layers:
          - repeat: 100
            group:
              - repeat: 100
                group: []
        """
    with pytest.raises(SpecError, match=r"t.yaml:5: layers\[0\].group\[0\].group \(in i=\d+, "
                                        r"i=\d+\): the spec expands to more than 1000 items"):
        spec(groups)
    taps = """\
        input: [4, 8, 8]
        blocks:
          taps:
            params: {o: ~}
            layers:
              - repeat: 100
                tap: "t{o}_{i}"
        layers:
          - repeat: 100
            taps: {o: i}
        """
    with pytest.raises(SpecError, match="the spec expands to more than 1000 items"):
        spec(taps)


@pytest.mark.slow  # big hostile input
def test_arithmetic_has_one_budget_for_the_whole_spec() -> None:
    # each condition is 123 terms; 10,000 repeats of two of them need 2.5 million
    cond = "max(" + ",".join(["in"] * 120) + ") > 0"
    text = f"""\
        input: [4, 8, 8]
        layers:
          - repeat: 10000
            group:
              - {{relu: ~, if: "{cond}"}}
              - {{relu: ~, if: "{cond}"}}
        """
    with pytest.raises(SpecError, match=rf"t.yaml:\d: layers\[0\].group\[\d\].relu.if "
                                        rf"\(in i=\d+\): the spec needs more than {MAX_WORK} "
                                        "steps of arithmetic"):
        spec(text)


def test_block_params_and_list_elements_are_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    # (budgets lowered to match: the sizes that matter are the ratios, not the figures)
    monkeypatch.setattr(context, "MAX_WORK", 2_000)
    # a block of 500 params evaluates them all per use; a var of 2,000 elements is walked
    # by max() in every repetition
    params = ", ".join(f"p{i}: 1" for i in range(500))
    text = (f"input: [4, 8, 8]\nblocks:\n  b:\n    params: {{{params}}}\n    layers: [relu]\n"
            "layers:\n  - repeat: 10000\n    b: ~\n")
    with pytest.raises(SpecError, match=r"blocks.b.params.p\d+ \(in b1.\d+\): the spec needs "
                                        "more than 2000 steps"):
        spec(text)
    monkeypatch.setattr(context, "MAX_WORK", 3_000)
    big = ",".join(["1"] * 2_000)
    text = (f"input: [4, 8, 8]\nvars:\n  big: [{big}]\nlayers:\n  - repeat: 10000\n"
            "    group:\n      - {relu: ~, name: \"r{max(big) + i}\"}\n")
    with pytest.raises(SpecError, match=r"layers\[0\].group\[0\].relu.name \(in i=\d+\): "
                                        r"\{max\(big\) \+ i\} in .*: the spec needs more than"):
        spec(text)


@pytest.mark.parametrize(("condition", "charged"), [
    ("big == big", "comparing lists"),                      # 2 x 200 elements each time
    ("big != same", "comparing lists"),
    ("table == table", "comparing tables"),                  # 2 x 200 entries
    ("nested < nested", "comparing nested lists"),           # 2 x (20 + 20 x 10)
    ("max(nested) != 0", "max() of nested lists"),           # 20 + 200 each time
], ids=lambda v: v.replace(" ", ""))
def test_comparisons_are_charged_by_what_they_compare(monkeypatch: pytest.MonkeyPatch,
                                                     condition: str, charged: str) -> None:
    # 100 repetitions of a comparison of ~200-400 elements walk 20,000-40,000; the same 100
    # comparisons of numbers are ~5 steps each. With the budget at 5,000 the first fails, the
    # second passes: the charge is the size of what is compared (the sizes that matter are
    # the ratios, not the figures).
    monkeypatch.setattr(context, "MAX_WORK", 5_000)
    row = ",".join(["1"] * 10)
    ones = ",".join(["1"] * 200)
    vars_ = (f"  big: [{ones}]\n  same: [{ones}]\n"
             f"  table: {{{', '.join(f'k{i}: {i}' for i in range(200))}}}\n"
             f"  nested: [{','.join([f'[{row}]'] * 20)}]\n")
    text = (f"input: [4, 8, 8]\nvars:\n{vars_}layers:\n  - repeat: 100\n    group:\n"
            f"      - {{relu: ~, if: \"{condition}\"}}\n")
    with pytest.raises(SpecError, match=r"layers\[0\].group\[0\].relu.if \(in i=\d+\): the "
                                        "spec needs more than 5000 steps"):
        spec(text)
    assert len(spec(text.replace(condition, "1 == 1")).layers) == 100  # type: ignore[attr-defined]


def test_size_counts_every_element_and_stops_at_its_limit() -> None:
    from cnncost.spec.expr import size

    assert size([1, 2, 3], 100) == 3
    assert size([[1, 2], [3, 4, 5]], 100) == 2 + 2 + 3
    assert size({"a": [1, 2], "b": 3}, 100) == 2 + 2
    assert size("x" * 640, 100) == 10 and size(7, 100) == 0
    assert size([[0] * 1000] * 1000, 50) < 2_000  # stops soon after the limit, not at 10^6


@pytest.mark.slow  # big hostile input
def test_names_and_paths_are_bounded() -> None:
    long = "a" * (MAX_NAME_CHARS + 1)
    with pytest.raises(SpecError, match=rf"layers\[0\].relu.name: name 'a+\.\.\. is "
                                        rf"{MAX_NAME_CHARS + 1} characters long; expected at "
                                        rf"most {MAX_NAME_CHARS}"):
        spec(f"input: [4]\nlayers:\n  - {{relu: ~, name: {long}}}\n")
    # a template of 100,000 fields renders a 100,001-character name per repetition
    with pytest.raises(SpecError, match="characters long; expected at most"):
        spec("input: [4]\nlayers:\n  - repeat: 1000\n    group:\n      - {relu: ~, name: 'a"
             + "{i}" * 100_000 + "'}\n")
    # 12 nested seqs named with 60 characters: a 732-character path
    deep = "input: [4]\nlayers:\n" + "".join(
        f"{'    ' * d}  - name: {'n' * 60}\n{'    ' * d}    seq:\n" for d in range(12)
    ) + f"{'    ' * 12}  - relu\n"
    with pytest.raises(SpecError, match=r"the path 'n+\.\.\. is longer than 512 characters"):
        spec(deep)


@pytest.mark.slow  # big hostile input
def test_yaml_nesting_is_bounded_before_parsing_it() -> None:
    # libyaml's composer recurses in C: 400,000 nested lists crashed the interpreter
    text = "input: [3, 8, 8]\nlayers: " + "[" * 400_000 + "]" * 400_000 + "\n"
    with pytest.raises(SpecError, match=rf"t.yaml:2: YAML nested more than {MAX_YAML_DEPTH} "
                                        "levels deep"):
        spec(text)


def test_long_names_in_messages_are_cut() -> None:
    kind = "x" * 100_000
    with pytest.raises(SpecError) as info:
        spec(f"input: [4]\nlayers:\n  - {kind}\n")
    assert len(str(info.value)) < 2_000, str(info.value)[:200]


# --------------------------------------------------------------------------- torch's limits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # 2**24 x 4096 x 3 x 3 = 2**39.2 weights: torch's storage size overflows at 2**63 bytes
        # long before Python's arithmetic does, so the spec bounds each weight tensor
        ("input: [4096, 1, 1]\nlayers:\n  - conv: {out: 16777216, kernel: 3, padding: 1}\n",
         rf"layers\[0\].conv: its weight tensor would hold 618,475,290,624 elements, more than "
         rf"torch can allocate sensibly; expected at most {MAX_WEIGHT_ELEMENTS:,}"),
        ("input: [4096, 1, 1]\nlayers:\n  - conv_transpose: {out: 16777216, kernel: 3}\n",
         r"its weight tensor would hold 618,475,290,624 elements"),
        # 2**24 x 2**24 = 2**48 weights
        ("input: [16777216]\nlayers:\n  - linear: {out: 16777216}\n",
         r"its weight tensor would hold 281,474,976,710,656 elements"),
        # 2**24 channels x 128 x 128 = 2**38 elements in one sample
        ("input: [4, 128, 128]\nlayers:\n  - conv: {out: 16777216, kernel: 1}\n",
         rf"a 16777216x128x128 tensor is absurdly large; expected at most "
         rf"{MAX_SAMPLE_ELEMENTS} elements per sample"),
    ],
    ids=["conv-weight", "conv-transpose-weight", "linear-weight", "activation"],
)
def test_what_torch_cannot_hold_is_refused(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(text)


def test_the_largest_weight_allowed_is_a_meta_tensor_torch_can_make() -> None:
    """The bounds are below torch's: a weight of MAX_WEIGHT_ELEMENTS in float64 and a
    batch of 2**20 samples of MAX_SAMPLE_ELEMENTS are valid meta tensors."""
    import torch

    assert torch.empty(MAX_WEIGHT_ELEMENTS, dtype=torch.float64, device="meta").numel() == (
        MAX_WEIGHT_ELEMENTS)
    assert torch.empty((1 << 20, MAX_SAMPLE_ELEMENTS), dtype=torch.complex128,
                       device="meta").nbytes == (1 << 20) * MAX_SAMPLE_ELEMENTS * 16
    with pytest.raises(RuntimeError, match="overflow"):  # what the bound protects against
        torch.empty((1 << 20, MAX_SAMPLE_ELEMENTS << 8), dtype=torch.complex128,
                    device="meta")


# --------------------------------------------------------------------------- validate = run


@pytest.mark.parametrize(
    ("text", "message", "module", "shape"),
    [
        # torch's channel_shuffle needs (N, C, *spatial): "expects input with > 2 dims"
        ("input: [4]\nlayers:\n  - channel_shuffle: {groups: 2}\n",
         r"t.yaml:3: layers\[0\].channel_shuffle: channel_shuffle needs an input shaped \(C, L\)",
         lambda: __import__("torch").nn.ChannelShuffle(2), (1, 4)),
        # avg_pool3d checks the unpadded input against the kernel (its meta kernel does not:
        # analyze counted it, bench and build crashed)
        ("input: [2, 1, 4, 4]\nlayers:\n  - avg_pool: {kernel: 2, padding: 1, ceil_mode: true}\n",
         r"t.yaml:3: layers\[0\].avg_pool: a 3-D avg_pool needs an input at least as large as "
         "its kernel 2x2x2",
         lambda: __import__("torch").nn.AvgPool3d(2, 2, 1, ceil_mode=True), (1, 2, 1, 4, 4)),
    ],
    ids=["channel-shuffle-rank-1", "avg-pool-3d"],
)
def test_what_torch_refuses_is_refused_by_validate(text: str, message: str, module: Any,
                                                    shape: tuple[int, ...]) -> None:
    import torch

    with pytest.raises(SpecError, match=message):
        spec(text)
    with pytest.raises((RuntimeError, ValueError)):  # the oracle: torch does refuse it
        module()(torch.randn(shape))


def test_what_torch_accepts_beside_those_is_accepted() -> None:
    # the same kinds where torch runs them: a spatial input, two values per group, an input
    # as large as the kernel (1-D and 2-D avg_pool take padding into account)
    for text in ("input: [4, 3]\nlayers:\n  - channel_shuffle: {groups: 2}\n",
                 "input: [4]\nlayers:\n  - group_norm: {groups: 2}\n",
                 "input: [2, 2, 4, 4]\nlayers:\n  - avg_pool: {kernel: 2, ceil_mode: true}\n",
                 "input: [2, 1, 4]\nlayers:\n  - avg_pool: {kernel: 2, padding: 1}\n"):
        spec(text)


@pytest.mark.parametrize("engine", ["analytic", "torch"])
@pytest.mark.parametrize(("text", "shape", "groups"), [
    ("input: [4]\nlayers:\n  - group_norm: {groups: 4}\n", (4,), 4),
    ("input: [3, 1, 1]\nlayers:\n  - group_norm: {groups: 3}\n", (3, 1, 1), 3),
], ids=["rank-1", "1x1"])
def test_one_value_per_group_is_refused_at_batch_1_only(text: str, shape: tuple[int, ...],
                                                        groups: int, engine: str) -> None:
    """PyTorch counts the batch in a group's values: one value per group per sample is
    refused at batch 1 and runs from batch 2 (every output 0). So does the count."""
    import torch

    import cnncost

    model = spec(text)  # valid: what it needs is a batch
    with pytest.raises(SpecError, match=rf"t.yaml:3: layers\[0\].group_norm: groups={groups} "
                       r"leaves one value per group .* at batch 1; expected --batch 2"):
        cnncost.analyze(model, engine=engine)
    with pytest.raises(ValueError, match="more than 1 value"):  # the oracle, at batch 1
        torch.nn.GroupNorm(groups, groups)(torch.randn(1, *shape))
    torch.nn.GroupNorm(groups, groups)(torch.randn(2, *shape))  # and at batch 2
    report = cnncost.analyze(model, batch=2, engine=engine)
    # group norm: 5 FLOPs per element (mean, variance, normalise, scale, shift); 2 samples
    assert report.totals.flops == 5 * 2 * groups
    assert report.totals.params == 2 * groups  # a scale and a shift per channel


@pytest.mark.parametrize("batch", [1, 2])
def test_a_training_step_of_batch_norm_without_spatial_extent_needs_two_samples(
        batch: int) -> None:
    import torch

    import cnncost

    model = spec("input: [3, 1, 1]\nlayers:\n  - conv: {out: 3, kernel: 1}\n  - bn\n")
    assert cnncost.analyze(model, batch=batch).totals.flops  # inference: any batch
    bn = torch.nn.BatchNorm2d(3).train()
    if batch == 1:
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            bn(torch.randn(1, 3, 1, 1))
        with pytest.raises(SpecError, match=r"t.yaml:4: layers\[1\].bn: a 3x1x1 input has one "
                           r"value per channel per sample, which PyTorch refuses at batch 1 in "
                           r"a training step; expected --batch 2"):
            cnncost.analyze(model, batch=batch, mode="train")
    else:
        bn(torch.randn(2, 3, 1, 1))
        assert cnncost.analyze(model, batch=batch, mode="train").train


def test_an_add_of_three_branches_adds_all_three() -> None:
    """build() used to drop the third branch (fx's add takes two), analyze raised."""
    import torch

    from cnncost.count.drivers import count_spec
    from cnncost.graph.build import build_module

    model = parse_spec("input: [2, 3, 3]\nlayers:\n  - add: [[], [relu], [sigmoid], [tanh]]\n",
                       "t.yaml")
    x = torch.randn(2, 2, 3, 3)
    y = build_module(model)(x)
    torch.testing.assert_close(y, x + x.relu() + x.sigmoid() + x.tanh())
    add = count_spec(model, batch=2).layers[-1]
    # three additions of 2 x 2 x 3 x 3 = 36 elements: 108 FLOPs, no MACs
    assert (add.kind, add.macs, add.flops) == ("add", 0, 108)

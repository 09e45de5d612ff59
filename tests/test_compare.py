"""compare --set: a variable goes to every model that declares it, and is an error only when
no model does (the command line and the Python API alike).

Figures by hand from conv MACs = C_out x H_out x W_out x C_in x K x K (batch 1), for the
1x1-convolution slides of Nazar Khan, CS-568 Deep Learning (PUCIT), "Variations of
Convolutional Neural Networks" ("Cost of Convolution Layer", "1x1 convolution"):
a 5x5 conv 256 -> 64 at 128x128 costs (128 x 128 x 64) x (5 x 5 x 256) = 6,710,886,400 MACs;
a 1x1 conv 256 -> c then a 5x5 conv c -> 64 costs 128 x 128 x c x 256 + 128 x 128 x 64 x 25 x c
= 4,194,304 c + 26,214,400 c = 30,408,704 c: 973,078,528 at the slide's c = 32, 486,539,264 at
c = 16.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run
from small_spec import small

from cnncost.api import compare_targets
from cnncost.errors import UsageError

PLAIN, BOTTLENECK = "textbook/conv5x5", "textbook/conv1x1_5x5"
PLAIN_MACS = 128 * 128 * 64 * 5 * 5 * 256                      # 6,710,886,400


def bottleneck_macs(c: int) -> int:
    return 128 * 128 * c * 256 + 128 * 128 * 64 * 5 * 5 * c


def test_hand_figures() -> None:
    assert PLAIN_MACS == 6_710_886_400
    assert bottleneck_macs(32) == 973_078_528 and bottleneck_macs(16) == 486_539_264


@pytest.mark.parametrize("c", [32, 16])
def test_set_goes_to_the_model_that_declares_it(c: int) -> None:
    code, out, err = run("compare", PLAIN, BOTTLENECK, "--set", f"c={c}", "--format", "json")
    assert code == 0, err
    plain, bottleneck = json.loads(out)["models"]
    assert plain["vars"] == {} and plain["macs"] == PLAIN_MACS
    # vars: the --set text as given (what `check` applies again)
    assert bottleneck["vars"] == {"c": str(c)} and bottleneck["macs"] == bottleneck_macs(c)
    assert bottleneck["ratios"]["macs"] == bottleneck_macs(c) / PLAIN_MACS


def test_the_api_twin_shares_the_sets_the_same_way() -> None:
    rows = compare_targets([BOTTLENECK, PLAIN, BOTTLENECK], overrides={"c": 16}).rows
    assert [r.values["macs"] for r in rows] == [bottleneck_macs(16), PLAIN_MACS,
                                                bottleneck_macs(16)]
    assert [dict(r.vars) for r in rows] == [{"c": 16}, {}, {"c": 16}]


def test_a_variable_no_model_declares_is_one_line_naming_it_and_the_models() -> None:
    code, out, err = run("compare", PLAIN, BOTTLENECK, "--set", "c=16", "--set", "width=2")
    assert code == 2 and out == "", (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "'width'" in err and "conv5x5" in err and "conv1x1_5x5" in err, err
    with pytest.raises(UsageError, match=r"width.*conv5x5.*\(none\).*conv1x1_5x5.*: c\b"):
        compare_targets([PLAIN, BOTTLENECK], overrides={"width": 2})


def test_a_module_factory_takes_no_variable_and_does_not_block_the_spec(tmp_path: Path
                                                                        ) -> None:
    # small.yaml at width 8 (small_spec's figures): conv 3 -> 8, 3x3 on 8x8: 8*8*8*27 =
    # 13,824 MACs, linear 8 -> 10: 80; the module is the same network at width 4: 6,912 + 40.
    spec = tmp_path / "small.yaml"
    spec.write_text(small("name: small"))
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),\n"
        "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))\n")
    code, out, err = run("compare", spec, f"{tmp_path / 'net.py'}:make", "--input", "3x8x8",
                         "--set", "width=8", "--format", "json")
    assert code == 0, err
    first, module = json.loads(out)["models"]
    assert (first["vars"], first["macs"]) == ({"width": "8"}, 13_824 + 80)
    assert (module["vars"], module["macs"]) == ({}, 6_912 + 40)

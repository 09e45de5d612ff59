"""Models whose forward needs real values (detection networks) are counted on CPU with real
tensors, and the table says so; everything else stays on meta.

The oracle for what such a count must be is the same forward run for real: the number of
kept elements, and PyTorch's FlopCounterMode (2 FLOPs per multiply-add of conv, linear and
matrix products, bias adds not counted: exactly 2 x cnncost's MACs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.count import memory
from cnncost.errors import ModelRunError
from cnncost.table import CostTable


def counter_input(shape: tuple[int, ...]) -> torch.Tensor:
    """The input cnncost counts on CPU: torch.randn seeded with 0 (one sample, batch 1)."""
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))


class KeepPositive(nn.Module):
    """A data-dependent op, as detection heads have: a linear layer on the pixels whose
    score is positive (``nonzero``: how many there are depends on the values)."""

    def __init__(self) -> None:
        super().__init__()
        self.score = nn.Conv2d(3, 1, 1)
        self.head = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (self.score(x) > 0).flatten().nonzero().squeeze(1)
        return self.head(x.permute(0, 2, 3, 1).reshape(-1, 3)[keep])


class CountsPositives(nn.Module):
    """Reads a value in Python (``int(tensor)``, an ``.item()``), then sizes a layer's input
    by it."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int((x[0, 0] > 0).sum())
        return self.head(x.flatten(1)[:, : 3 * (n // 3)].reshape(-1, 3))


def test_a_data_dependent_op_is_counted_on_real_tensors() -> None:
    torch.manual_seed(0)
    model = KeepPositive().eval()
    x = counter_input((3, 6, 6))
    with torch.no_grad():
        kept = int((model.score(x) > 0).sum())
    assert 0 < kept < 36
    report = cnncost.analyze(model, input=(3, 6, 6))
    # score: 6 x 6 outputs x 3 MACs; head: kept rows x 3 x 5
    assert report.totals.macs == 6 * 6 * 3 + kept * 3 * 5
    assert report.counted_on == "cpu"
    assert "aten::nonzero" in report.counted_on_reason
    doc = report.to_dict()
    assert doc["counted_on"] == "cpu" and "aten::nonzero" in doc["counted_on_reason"]
    assert CostTable.from_json(report.to_json()) == report


def test_reading_a_value_is_counted_on_real_tensors() -> None:
    model = CountsPositives().eval()
    x = counter_input((3, 4, 4))
    n = int((x[0, 0] > 0).sum())
    report = cnncost.analyze(model, input=(3, 4, 4))
    # the head reads n // 3 rows of 3 values: (n // 3) x 3 x 2 MACs
    assert report.totals.macs == (n // 3) * 3 * 2
    assert report.counted_on == "cpu" and "_local_scalar_dense" in report.counted_on_reason


def test_models_without_such_ops_stay_on_meta_and_their_json_keeps_its_keys() -> None:
    report = cnncost.analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input=(3, 8, 8))
    assert report.counted_on == "meta"
    assert "counted_on" not in report.to_dict()  # committed reports keep their bytes


def test_the_table_header_says_where_it_was_counted() -> None:
    report = cnncost.analyze(KeepPositive(), input=(3, 6, 6))
    from cnncost.render.cost import header, to_markdown

    assert "counted on cpu with real tensors (aten::nonzero" in header(report)
    assert "counted on cpu with real tensors" in to_markdown(report)


def test_too_little_free_memory_refuses_the_real_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "free_ram_bytes", lambda: 100)
    with pytest.raises(ModelRunError, match=r"needs real tensors \(aten::nonzero.*only 100 "
                                            "bytes of RAM are free"):
        cnncost.analyze(KeepPositive(), input=(3, 6, 6))


class ReadsThenGrows(nn.Module):
    """Reads a value first (so the meta run stops at once, having allocated nearly nothing),
    then upsamples 16x and convolves: the real run's activations are far larger than what
    ran before the meta run stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x > 1e9).any()):  # a value read: no meta version
            x = x * 0
        y = nn.functional.interpolate(x, scale_factor=16)
        out: torch.Tensor = self.conv(y)
        return out


# at 3x32x32: the upsampled 3 x 512 x 512 float32 input is 3,145,728 bytes; the conv's
# 64 x 512 x 512 output 67,108,864 bytes
UPSAMPLED, CONV_OUT = 3 * 512 * 512 * 4, 64 * 512 * 512 * 4


def test_the_whole_real_run_is_held_to_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.count.limits import Free

    # 30 MB free: the first check (the meta run's bytes, the input) passes; at 1.5x
    # headroom the run may take 20 MB, enough for the upsampled input, not the conv's
    # output, which is refused before its kernel allocates it
    monkeypatch.setattr(memory, "free_limit", lambda: Free(30_000_000, "a test's limit"))
    with pytest.raises(ModelRunError, match=r"ReadsThenGrows: counting on real tensors "
                       r"\(aten::.* would take more than 20,000,000 bytes of activations, "
                       r"the memory free when it started \(limit: a test's limit\)"):
        cnncost.analyze(ReadsThenGrows(), input=(3, 32, 32))
    # given room for both, it is counted: conv 64 x 512 x 512 outputs x 3 x 9
    monkeypatch.setattr(memory, "free_limit",
                        lambda: Free(int(1.5 * (UPSAMPLED + CONV_OUT)) + (1 << 20), "room"))
    report = cnncost.analyze(ReadsThenGrows(), input=(3, 32, 32))
    assert report.counted_on == "cpu" and report.totals.macs == 64 * 512 * 512 * 27


def test_weights_on_meta_cannot_be_counted_for_real() -> None:
    with torch.device("meta"):
        model = KeepPositive()
    with pytest.raises(ModelRunError, match=r"needs real tensors .* weights are on meta"):
        cnncost.analyze(model, input=(3, 6, 6))


def test_a_real_error_is_not_retried_on_cpu() -> None:
    # 4 channels into a 3-channel conv: wrong on any device, reported from the meta run
    with pytest.raises(ModelRunError, match=r"1x4x6x6 in score"):
        cnncost.analyze(KeepPositive(), input=(4, 6, 6))


def test_cli_json_of_a_cpu_count(tmp_path: Any) -> None:
    (tmp_path / "nets.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Keep(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        torch.manual_seed(0)\n        self.head = nn.Linear(3, 5)\n\n"
        "    def forward(self, x):\n"
        "        return self.head(x.flatten(2).transpose(1, 2)[0][x[0, 0].flatten() > 0])\n\n"
        "def keep():\n    return Keep()\n")
    result = CliRunner().invoke(app, ["analyze", f"{tmp_path / 'nets.py'}:keep", "--input",
                                      "3x4x4", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["counted_on"] == "cpu"
    positives = int((counter_input((3, 4, 4))[0, 0] > 0).sum())
    assert doc["totals"]["macs"] == positives * 3 * 5


@pytest.mark.slow  # oracle: a real detection model
def test_faster_rcnn_matches_flop_counter_mode_on_the_same_real_tensors(
        tv_models: Any) -> None:
    # At a small input (the transform resizes to 64 x 64): the count depends on how many
    # proposals survive NMS, so the oracle runs the same model on the same input.
    torch.manual_seed(0)
    model = tv_models.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None,
                                weights_backbone=None, min_size=64, max_size=64).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as oracle:
        model(counter_input((3, 64, 64)))
    report = cnncost.analyze(model, input=(3, 64, 64))
    assert report.totals.macs * 2 == oracle.get_total_flops()
    assert report.counted_on == "cpu" and "nonzero" in report.counted_on_reason
    assert report.totals.params == sum(p.numel() for p in model.parameters())


def test_an_op_over_the_budget_is_refused_before_its_kernel_allocates() -> None:
    import resource

    from cnncost.count.mode import CostCounterMode, OverBudget

    mode = CostCounterMode()
    mode.budget = (1_000_000, "1 MB")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(OverBudget), torch.no_grad(), mode:
        torch.ones(100_000_000)  # 400 MB of float32 ones, written: resident if it ran
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000

"""Trainable and frozen parameters apart: rows, totals, JSON, table, CSV, Markdown, compare;
training memory has gradients and optimizer state for the trainable ones only.

The conventions say params = trainable parameters: a layer with requires_grad=False has
frozen parameters instead, and the documents of models that train everything keep their
bytes (no "frozen_params" key where there are none).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from torch import nn

import cnncost
from cnncost.compare import compare_tables
from cnncost.render.compare import render_text
from cnncost.render.cost import rich_table, to_csv, to_markdown
from cnncost.render.formats import Format
from cnncost.render.terminal import to_text as text_of
from cnncost.table import CostTable

CONV = 4 * 3 * 3 * 3 + 4  # conv 3->4, 3x3, bias
BN = 2 * 4  # scale and shift
FC = 4 * 6 * 6 * 2 + 2  # linear 144 -> 2, bias


def net(freeze_conv: bool) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2))
    if freeze_conv:
        model[0].requires_grad_(False)  # a frozen stem, as when fine-tuning
    return model


def test_frozen_parameters_are_counted_apart() -> None:
    report = cnncost.analyze(net(True), input=(3, 8, 8))
    assert (report.totals.params, report.totals.frozen_params) == (BN + FC, CONV)
    rows = {r.name: (r.params, r.frozen_params) for r in report.layers}
    assert rows["0"] == (0, CONV) and rows["1"] == (BN, 0) and rows["3"] == (FC, 0)


def test_training_memory_has_gradients_and_adam_state_for_trainable_only() -> None:
    frozen = cnncost.analyze(net(True), input=(3, 8, 8)).totals
    trainable = cnncost.analyze(net(False), input=(3, 8, 8)).totals
    assert frozen.param_bytes == trainable.param_bytes == 4 * (CONV + BN + FC)  # float32
    # the frozen conv has no gradient (SGD: 1 copy), no momentum (2), no Adam moments (3)
    for optimizer, copies in (("sgd", 1), ("sgd_momentum", 2), ("adam", 3)):
        assert (trainable.training_memory_bytes[optimizer]
                - frozen.training_memory_bytes[optimizer]) == copies * 4 * CONV


def test_json_has_frozen_params_only_where_there_are_some() -> None:
    frozen = cnncost.analyze(net(True), input=(3, 8, 8))
    doc = frozen.to_dict()
    assert list(doc["totals"])[:2] == ["params", "frozen_params"]
    assert doc["totals"]["frozen_params"] == CONV
    layers = {row["name"]: row for row in doc["layers"]}
    assert layers["0"]["frozen_params"] == CONV and "frozen_params" not in layers["3"]
    assert CostTable.from_json(frozen.to_json()) == frozen
    plain = cnncost.analyze(net(False), input=(3, 8, 8)).to_json()
    assert "frozen_params" not in plain


def test_table_csv_markdown_and_compare_show_frozen_apart() -> None:
    frozen = cnncost.analyze(net(True), input=(3, 8, 8))
    text = text_of(rich_table(frozen), width=140)
    assert f"params {BN + FC:,} trainable + {CONV:,} frozen" in text
    columns = next(line for line in text.splitlines() if line.strip().startswith("layer"))
    assert columns.split()[:5] == ["layer", "kind", "output", "params", "frozen"]
    csv_header = to_csv(frozen).splitlines()[0].split(",")
    assert csv_header[4:6] == ["params", "frozen_params"]
    assert f"{CONV:,} frozen" in to_markdown(frozen)
    plain = cnncost.analyze(net(False), input=(3, 8, 8))
    assert "frozen" not in text_of(rich_table(plain), width=140)
    cmp = json.loads(render_text(compare_tables([plain, frozen]), Format.JSON))
    assert [c["key"] for c in cmp["columns"]][:2] == ["params", "frozen_params"]
    assert [m["frozen_params"] for m in cmp["models"]] == [0, CONV]
    assert [m["params"] for m in cmp["models"]] == [CONV + BN + FC, BN + FC]


@pytest.mark.slow  # a real torchvision model
def test_torchvision_backbone_frozen_for_fine_tuning(tv_models: Any) -> None:
    model = tv_models.get_model("mobilenet_v3_small", weights=None)
    model.features.requires_grad_(False)  # train the classifier only
    report = cnncost.analyze(model, input=(3, 64, 64))
    assert report.totals.params == sum(p.numel() for p in model.classifier.parameters())
    assert report.totals.frozen_params == sum(p.numel() for p in model.features.parameters())
    assert all(p.requires_grad is False for p in model.features.parameters())  # untouched

"""Real torchvision models (skipped without torchvision): the registry, counted figures
against torchvision's published ones, and nothing downloaded.

The published figures are the ones torchvision ships with each model's weights (its model
docs list them): ``meta["num_params"]``, and ``meta["_ops"]``, GFLOPS in the docs but
multiply-adds (ResNet-50: 4.089 at 224, as cnncost's MACs), at the input size of the
weights' preset transforms (classification 224, segmentation 520, video 16 x 112 x 112).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

import cnncost
from cnncost.errors import UsageError
from cnncost.sources import load_factory, torchvision_config, torchvision_family

# One small model of each family of the registry.
FAMILY_CASES = [
    ("mobilenet_v3_small", "classification"),
    ("lraspp_mobilenet_v3_large", "segmentation"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", "detection"),
    ("r3d_18", "video"),
    ("raft_small", "optical_flow"),
]


def published(tv_models: Any, name: str) -> dict[str, Any]:
    """The meta of a model's first weights: torchvision's published figures."""
    return next(iter(tv_models.get_model_weights(name))).meta


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch, tv_models: Any) -> None:
    """Any attempt to fetch weights fails the test."""
    import torchvision.models._api as api

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(api, "load_state_dict_from_url", refuse)


@pytest.mark.slow  # real torchvision models
@pytest.mark.parametrize(("name", "family"), FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_every_family_is_built_without_weights(tv_models: Any, no_download: None, name: str,
                                               family: str) -> None:
    model = load_factory(f"torchvision:{name}")
    assert torchvision_family(name) == family
    params = sum(p.numel() for p in model.parameters())
    if family == "detection":
        # The published model (with weights) normalises its backbone with
        # FrozenBatchNorm2d, whose scale and shift are buffers; built without weights the
        # backbone has plain BatchNorm2d, with 2 parameters per channel.
        bn = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        params -= 2 * sum(m.num_features for m in bn)
    assert params == published(tv_models, name)["num_params"]


@pytest.mark.slow  # real torchvision models
def test_every_registered_builder_takes_the_no_weights_config(tv_models: Any) -> None:
    # Over the whole registry, without building anything: the arguments bind to the builder
    # and ask for no weights, nor backbone weights wherever the builder would load them.
    names = tv_models.list_models()
    assert len(names) > 100
    for name in names:
        builder = tv_models.get_model_builder(name)
        config = torchvision_config(builder)
        inspect.signature(builder).bind(**config)
        assert config["weights"] is None
        backbone = inspect.signature(builder).parameters.get("weights_backbone")
        assert backbone is None or config["weights_backbone"] is None, name


# (name, one sample's input or None for cnncost's default, where torchvision counted _ops)
OPS_CASES = [
    ("mobilenet_v3_small", None),
    ("lraspp_mobilenet_v3_large", (3, 520, 520)),
    ("r3d_18", None),  # the default input of a video model: 16 frames of 112 x 112
]


@pytest.mark.slow  # real torchvision models
@pytest.mark.parametrize(("name", "shape"), OPS_CASES, ids=[c[0] for c in OPS_CASES])
def test_counts_match_torchvision_published_figures(tv_models: Any, name: str,
                                                    shape: tuple[int, ...] | None) -> None:
    meta = published(tv_models, name)
    report = cnncost.analyze(f"torchvision:{name}", input=shape)
    assert report.totals.params == meta["num_params"]
    assert round(report.totals.macs / 1e9, 3) == meta["_ops"]


@pytest.mark.slow  # imports torchvision
def test_unknown_torchvision_name_suggests_close_ones(tv_models: Any) -> None:
    with pytest.raises(UsageError, match=r"no model 'r3d18'; did you mean r3d_18"):
        load_factory("torchvision:r3d18")


@pytest.mark.slow  # real torchvision models
def test_optical_flow_models_get_two_frames(tv_models: Any) -> None:
    # RAFT's forward(image1, image2): the same frame twice; its cost does not depend on the
    # values (a fixed number of flow updates), so FlopCounterMode on a real run is the oracle.
    from torch.utils.flop_counter import FlopCounterMode

    # 128 x 128: the smallest input RAFT takes (its weights' meta["min_size"])
    report = cnncost.analyze("torchvision:raft_small", input=(3, 128, 128))
    model = load_factory("torchvision:raft_small").eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad(), FlopCounterMode(display=False) as oracle:
        model(x, x)
    assert report.totals.macs * 2 == oracle.get_total_flops()
    assert report.counted_on == "meta" and "2 frames" in report.description

"""A counted model comes back exactly as it went in: parameters, buffers, plain attributes,
containers, training flags and hooks; on meta and on CPU; after a count that failed too.

Each stand-in writes to itself in its forward the way real models do (a positional table
cached in a plain attribute, detection anchors moved to the input's device, a list it
appends to, a step counter buffer, a buffer it reassigns).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from tiers import tiered
from torch import nn

import cnncost
from cnncost.count.drivers import count_module
from cnncost.errors import ModelRunError


class CachedTable(nn.Module):
    """Caches a positional table in a plain attribute on the first forward (as ViTs do)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.table: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None or self.table.shape[0] != x.shape[-1]:
            self.table = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device)
        self.made = torch.ones(1, device=x.device)  # an attribute the forward creates
        return self.conv(x) + self.table


class Anchors(nn.Module):
    """Keeps its anchors in a list and moves them to the input's device on every call
    (torchvision's AnchorGenerator.set_cell_anchors)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells = [torch.tensor([1.0, 2.0, 3.0])]
        self.shapes: list[tuple[int, ...]] = []
        self.by_size: dict[int, list[torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.cells = [c.to(dtype=x.dtype, device=x.device) for c in self.cells]
        self.shapes.append(tuple(x.shape))
        self.by_size.setdefault(x.shape[-1], []).append(self.cells[0])
        return x * self.cells[0].sum()


class Stateful(nn.Module):
    """A step counter written in place, and a buffer reassigned."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        self.last = x.mean()
        return self.bn(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cached = CachedTable()
        self.anchors = Anchors()
        self.state = Stateful()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.state(self.anchors(self.cached(x)[:, :3]))


def fingerprint(model: nn.Module) -> dict[str, Any]:
    """Everything a count could change, by identity and by value."""
    out: dict[str, Any] = {}
    for name, m in model.named_modules():
        out[name] = {k: (id(v), v.clone() if isinstance(v, torch.Tensor) else
                         copy.copy(v) if isinstance(v, list | dict) else v)
                     for k, v in m.__dict__.items()
                     if k not in ("_parameters", "_buffers", "_modules")}
        out[name]["params"] = {k: (id(p), p.detach().clone())
                               for k, p in m._parameters.items()}
        out[name]["buffers"] = {k: (id(b), None if b is None else b.clone())
                                for k, b in m._buffers.items()}
        out[name]["modules"] = {k: id(c) for k, c in m._modules.items()}
    return out


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.device == b.device and a.shape == b.shape and bool((a == b).all()))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (isinstance(b, list | tuple) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    return bool(a == b)


def prepared() -> Net:
    """A net in training mode, one child in eval, one user hook, forwarded once for real."""
    torch.manual_seed(0)
    model = Net().train()
    model.anchors.eval()
    model.cached.register_forward_hook(lambda m, i, o: None)
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8))
    return model


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_the_model_comes_back_exactly_as_it_went_in(device: str) -> None:
    model = prepared()
    twin = copy.deepcopy(model)
    before = fingerprint(model)
    count_module(model, (3, 16, 16), device=device)  # another size: a new table is made
    assert same(fingerprint(model), before)
    assert not hasattr(model.cached, "made") or model.cached.made.device.type == "cpu"
    assert model.training and not model.anchors.training
    assert len(model.cached._forward_hooks) == 1 and not model.cached._forward_pre_hooks
    # the next real forward works and computes what an untouched twin computes
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), twin.eval()(x))


def test_the_model_comes_back_after_a_count_that_failed() -> None:
    model = prepared()
    before = fingerprint(model)
    with pytest.raises(ModelRunError, match=r"1x5x8x8 in cached\.conv"):
        cnncost.analyze(model, input=(5, 8, 8))  # 5 channels into a 3-channel conv
    assert same(fingerprint(model), before)


def test_a_lazily_cached_table_is_not_left_on_meta() -> None:
    # The failure the issue reports: after a count, the next real forward raised
    # "Cannot copy out of meta tensor".
    model = CachedTable()
    cnncost.analyze(model, input=(3, 8, 8))
    assert model.table is None
    model(torch.randn(1, 3, 8, 8))
    assert model.table is not None and model.table.device.type == "cpu"
    cnncost.analyze(model, input=(3, 8, 8))
    assert model.table.device.type == "cpu"
    model(torch.randn(1, 3, 8, 8))


@pytest.mark.slow  # a real detection model
def test_torchvision_detection_model_runs_after_a_count(tv_models: Any) -> None:
    # Faster R-CNN moves its anchors to the input's device in a plain list attribute.
    torch.manual_seed(0)
    model = tv_models.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None,
                                weights_backbone=None, min_size=64, max_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    anchors = model.rpn.anchor_generator.cell_anchors
    cnncost.analyze(model, input=(3, 64, 64))
    assert model.rpn.anchor_generator.cell_anchors is anchors
    with torch.no_grad():
        got = model(x)
    assert all(torch.equal(expected[0][k], got[0][k]) for k in expected[0])


# --------------------------------------------------------------------------- outside kinds


def _small() -> nn.Sequential:
    """conv 3 -> 4 (3x3 on 8x8: 6x6 out), batch norm, ReLU, a linear 144 -> 5."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5))


# conv 4 x 6 x 6 outputs x 3 x 3 x 3 = 3,888; linear 144 x 5 = 720
SMALL_MACS = 4 * 6 * 6 * 3 * 9 + 144 * 5
# conv 4 x 27 + 4, batch norm 4 + 4, linear 144 x 5 + 5
SMALL_PARAMS = 4 * 27 + 4 + 8 + 144 * 5 + 5


def _torchscript(how: str) -> nn.Module:
    made: nn.Module = torch.jit.script(_small()) if how == "script" else torch.jit.trace(
        _small(), torch.randn(2, 3, 8, 8))
    list(made.children())[1].eval()  # one submodule's flag differs from the others'
    return made


SCRIPTED = [(how, mode, device) for how in ("script", "trace") for mode in ("inference", "train")
            for device in ("meta", "cpu")]


# the fast tier: each mode and device on a scripted model, and one traced model
@pytest.mark.parametrize(("how", "mode", "device"), tiered(
    SCRIPTED, {"script-inference-meta", "script-inference-cpu", "script-train-meta",
               "script-train-cpu", "trace-inference-meta"}, ids=["-".join(c) for c in SCRIPTED]))
def test_a_torchscript_model_is_counted_and_comes_back(how: str, mode: str,
                                                       device: str) -> None:
    model = _torchscript(how)
    flags = [m.training for m in model.modules()]
    params = [(id(p), p.detach().clone()) for p in model.parameters()]
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
    report = count_module(model, (3, 8, 8), device=device, mode=mode)
    # its submodules run inside TorchScript, where no hook fires: one row holds them
    assert [r.name for r in report.layers] == ["(model)"]
    assert report.layers[0].kind == "Sequential (TorchScript)"
    assert (report.totals.macs, report.totals.params) == (SMALL_MACS, SMALL_PARAMS)
    assert [m.training for m in model.modules()] == flags
    assert all(id(p) == i and torch.equal(p, q)
               for p, (i, q) in zip(model.parameters(), params, strict=True))
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_a_scripted_submodule_is_part_of_its_callers_row() -> None:
    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Conv2d(3, 3, 1)
            self.body = torch.jit.script(_small())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.body(self.head(x))
            return out

    report = cnncost.analyze(Wrap(), input=(3, 8, 8))
    rows = {r.name: r for r in report.layers}
    # head: 3 x 8 x 8 outputs x 3 inputs = 576 MACs, 9 + 3 params
    assert (rows["head"].macs, rows["head"].params) == (3 * 64 * 3, 12)
    assert (rows["(model)"].macs, rows["(model)"].params) == (SMALL_MACS, SMALL_PARAMS)
    assert report.totals.macs == SMALL_MACS + 576


class LazyNet(nn.Module):
    """A lazy conv and a lazy linear: their weights are made at the first forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.LazyConv2d(4, 3)
        self.fc = nn.LazyLinear(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.conv(x).flatten(1))
        return out


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("mode", ["inference", "train"])
def test_a_lazy_model_is_counted_and_stays_lazy(device: str, mode: str) -> None:
    model = LazyNet()
    report = count_module(model, (3, 8, 8), device=device, mode=mode)
    # conv 3 -> 4, 3x3 on 8x8: 4 x 6 x 6 x 27 = 3,888 MACs; fc 144 -> 5: 720
    assert report.totals.macs == 3888 + 720
    assert report.totals.params == (4 * 27 + 4) + (144 * 5 + 5)
    # and every figure, memory included, is the eager twin's (its weights made up front)
    twin = LazyNet()
    twin.conv, twin.fc = nn.Conv2d(3, 4, 3), nn.Linear(144, 5)
    assert report.totals == count_module(twin, (3, 8, 8), device=device, mode=mode).totals
    # the user's model is as it was: lazy, its weights not made, its hooks in place
    assert type(model.conv) is nn.LazyConv2d and type(model.fc) is nn.LazyLinear
    assert all(nn.parameter.is_lazy(p) for p in model.parameters())
    assert model.fc._forward_pre_hooks  # the hook that makes the weights at the first call
    out = model(torch.randn(2, 3, 8, 8))  # which still works
    assert out.shape == (2, 5) and type(model.fc) is nn.Linear


class Grows(nn.Module):
    """Adds a submodule to itself during a training step (and calls it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.add_module("extra", nn.Linear(3, 3, device=x.device, dtype=x.dtype))
            self.extra.register_forward_hook(lambda m, i, o: None)
            return self.extra(self.lin(x))
        return self.lin(x)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_submodule_added_during_a_training_step_is_gone_afterwards(device: str) -> None:
    model = Grows()
    before = fingerprint(model)
    report = count_module(model, (3,), mode="train", device=device)
    # two linear layers 3 -> 3: 9 MACs each
    assert report.totals.macs == 18
    assert not hasattr(model, "extra") and list(model._modules) == ["lin"]
    assert same(fingerprint(model), before)


class Closes(nn.Module):
    """A forward that raises GeneratorExit (a generator closed under it): not an Exception,
    so it went past the count's handling as a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv(x)
        raise GeneratorExit


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_a_forward_raising_generator_exit_is_the_models_failure(mode: str) -> None:
    model = Closes().train()
    before = fingerprint(model)
    with pytest.raises(ModelRunError, match=r"Closes: the model failed on an input of shape "
                       r"1x3x4x4 in \(model\) \(Closes\): GeneratorExit"):
        cnncost.analyze(model, input=(3, 4, 4), mode=mode)
    assert same(fingerprint(model), before) and model.training

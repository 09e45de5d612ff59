"""Resolving what a user names: spec files, bundled specs, pkg.module:factory, torchvision:NAME."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from torch import nn

import cnncost
from cnncost.errors import SpecError, UsageError
from cnncost.sources import bundled_specs, load_factory, resolve

FACTORY_MODULE = '''
from torch import nn

def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))

not_a_model = 42

def returns_int():
    return 7

def broken():
    return 1 / 0
'''


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "cnncost_test_models.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cnncost_test_models", raising=False)
    return "cnncost_test_models"


def test_bundled_names_cover_the_zoo_and_the_textbook() -> None:
    names = bundled_specs()
    assert "resnet50" in names and "textbook/conv5x5" in names
    assert resolve("resnet50").spec_path == names["resnet50"]
    assert resolve("resnet50").display == "specs/resnet50.yaml"


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UsageError, match=r"did you mean .*resnet50"):
        resolve("resnet5")
    with pytest.raises(UsageError, match="cnncost list"):
        resolve("zzz_no_such_model")


def test_missing_yaml_file_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file"):
        resolve("nope.yaml")


def test_factory_is_imported_called_and_counted(factory_module: str) -> None:
    target = resolve(f"{factory_module}:tiny")
    assert target.factory == f"{factory_module}:tiny" and not target.is_spec
    report = cnncost.analyze(f"{factory_module}:tiny", input=(3, 8, 8))
    # conv 3->8, 3x3, bias: 8*(27+1) = 224; linear 288->10: 10*(288+1) = 2,890
    assert report.totals.params == 224 + 2890
    # conv: 6x6 outputs x 8 channels x 27 MACs; linear: 288 x 10
    assert report.totals.macs == 6 * 6 * 8 * 27 + 288 * 10


@pytest.mark.parametrize(("attr", "message"), [
    ("missing", "has no attribute 'missing'"),
    ("returns_int", "returned int, not a torch.nn.Module"),
    ("not_a_model", "not_a_model is a int, not a callable returning an nn.Module"),
    ("broken", r"calling broken\(\) failed: ZeroDivisionError"),
], ids=["missing", "returns-int", "not-callable", "raises"])
def test_bad_factories_are_usage_errors(factory_module: str, attr: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_factory(f"{factory_module}:{attr}")


def test_unimportable_factory_module() -> None:
    with pytest.raises(UsageError, match="cannot import no_such_pkg_xyz"):
        load_factory("no_such_pkg_xyz.models:net")


def test_torchvision_models_are_built_without_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision is optional and not installed in CI: a stand-in records the call.
    calls: list[tuple[str, object]] = []

    def get_model(name: str, weights: object = "default") -> nn.Module:
        calls.append((name, weights))
        return nn.Linear(4, 2)

    models = types.ModuleType("torchvision.models")
    models.get_model = get_model  # type: ignore[attr-defined]
    models.resnet18 = object()  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    module = load_factory("torchvision:resnet18")
    assert isinstance(module, nn.Linear)
    assert calls == [("resnet18", None)]  # weights=None: nothing is downloaded
    with pytest.raises(UsageError, match="no model 'resnet9000'"):
        load_factory("torchvision:resnet9000")


def test_torchvision_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(UsageError, match=r"cnncost\[torchvision\]"):
        load_factory("torchvision:resnet18")

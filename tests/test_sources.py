"""Resolving what a user names: spec files, bundled specs, pkg.module:factory, torchvision:NAME."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from torch import nn
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.errors import SpecError, UsageError
from cnncost.sources import bundled_specs, default_input, load_factory, resolve

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


class Registry(types.ModuleType):
    """A stand-in for torchvision.models: list_models/get_model_builder, recording calls."""

    def __init__(self) -> None:
        super().__init__("torchvision.models")
        self.calls: list[tuple[str, dict[str, object]]] = []

    def list_models(self) -> list[str]:
        return ["resnet18", "fasterrcnn_resnet50_fpn", "r3d_18"]

    def get_model_builder(self, name: str) -> object:
        def classifier(*, weights: object = "IMAGENET1K_V1", progress: bool = True,
                       **kwargs: object) -> nn.Module:
            self.calls.append((name, {"weights": weights, **kwargs}))
            return nn.Linear(4, 2)

        def detector(*, weights: object = "COCO_V1", progress: bool = True,
                     weights_backbone: object = "IMAGENET1K_V1", **kwargs: object) -> nn.Module:
            self.calls.append((name, {"weights": weights, "weights_backbone": weights_backbone,
                                      **kwargs}))
            return nn.Linear(4, 2)

        builder = detector if name.startswith("faster") else classifier
        builder.__module__ = ("torchvision.models.video.resnet" if name == "r3d_18" else
                              "torchvision.models.detection.faster_rcnn"
                              if name.startswith("faster") else "torchvision.models.resnet")
        return builder


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    models = Registry()
    package = types.ModuleType("torchvision")
    package.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    return models


def test_torchvision_registry_builds_every_family_without_weights(registry: Registry) -> None:
    assert isinstance(load_factory("torchvision:resnet18"), nn.Linear)
    load_factory("torchvision:fasterrcnn_resnet50_fpn")
    load_factory("torchvision:r3d_18")  # a video model: not an attribute of torchvision.models
    # weights=None: no weights; and no ImageNet backbone either where the builder takes one
    assert registry.calls == [("resnet18", {"weights": None}),
                              ("fasterrcnn_resnet50_fpn",
                               {"weights": None, "weights_backbone": None}),
                              ("r3d_18", {"weights": None})]
    with pytest.raises(UsageError, match=r"no model 'resnet9000'; did you mean resnet18"):
        load_factory("torchvision:resnet9000")


def test_torchvision_video_models_get_a_clip_by_default(registry: Registry) -> None:
    # 16 frames of 112 x 112: the clips torchvision's video presets crop
    assert default_input("torchvision:r3d_18") == (3, 16, 112, 112)
    assert default_input("torchvision:resnet18") is None
    assert default_input("pkg.mod:net") is None


def test_torchvision_missing_says_how_to_install_without_replacing_torch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    # torchvision 0.N is the release made for torch 2.(N - 15): 0.15 for 2.0, 0.20 for 2.5
    # (torchvision's README, "Installation": the compatibility table)
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(UsageError, match=r"not installed; .*pip install --no-deps "
                                         r"'torchvision==0\.20\.\*'$"):
        load_factory("torchvision:resnet18")
    # a CPU torch comes from PyTorch's own index, whose torchvision build it needs
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    with pytest.raises(UsageError, match=r"'torchvision==0\.28\.\*' from the wheel index your "
                                         r"torch 2\.13\.0\+cpu came from"):
        load_factory("torchvision:resnet18")


def test_torchvision_made_for_another_torch_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise AssertionError('imported')\n")
    (fake / "version.py").write_text("__version__ = '0.29.1+cu130'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n.partition(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(metadata, "requires", lambda name: ["numpy", "torch (==2.14.1)"])
    monkeypatch.setattr(torch, "__version__", "2.13.0")
    with pytest.raises(UsageError, match=r"torchvision 0\.29\.1\+cu130 was built for torch "
                                         r"2\.14\.1, but torch is 2\.13\.0; .*0\.28"):
        load_factory("torchvision:resnet18")


def test_torchvision_that_fails_to_import_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    # torchvision 0.28's CUDA wheel beside a CPU torch: its C++ ops do not load, and its
    # import raises RuntimeError (operator torchvision::nms does not exist)
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n.partition(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(metadata, "requires", lambda name: None)
    with pytest.raises(UsageError, match=r"torchvision .* does not load with torch .*"
                                         r"RuntimeError: operator torchvision::nms does not "
                                         r"exist.*pip install --no-deps"):
        load_factory("torchvision:resnet18")


@pytest.mark.slow  # a fresh interpreter importing torchvision
def test_installed_torchvision_without_its_ops_exits_2_in_one_line() -> None:
    # The real thing, where it happens (PyPI's CUDA torchvision beside a CPU torch).
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    result = subprocess.run([sys.executable, "-m", "cnncost", "analyze", "torchvision:resnet18",
                             "--input", "3x32x32"], capture_output=True, text=True,
                            check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode == 0:
        pytest.skip("torchvision's C++ ops load beside this torch")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "does not load with torch" in result.stderr and "--no-deps" in result.stderr


# --------------------------------------------------------------------------- factories in files


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    folder = tmp_path / "nets"
    folder.mkdir()
    (folder / "blocks.py").write_text("from torch import nn\n\n"
                                      "def head():\n    return nn.Linear(8 * 6 * 6, 10)\n")
    # imports its neighbour, as a script in that folder could
    (folder / "model.py").write_text(FACTORY_MODULE + "\nfrom blocks import head\n\n"
                                     "def with_head():\n    return nn.Sequential(nn.Conv2d(3, "
                                     "8, 3), nn.Flatten(), head())\n")
    return folder / "model.py"


def test_factory_from_a_file(model_file: Path) -> None:
    report = cnncost.analyze(f"{model_file}:tiny", input=(3, 8, 8))
    # conv 3->8, 3x3, bias: 8*(27+1) = 224; linear 288->10: 10*(288+1) = 2,890
    assert report.totals.params == 224 + 2890
    assert report.source == f"{model_file}:tiny"
    assert cnncost.analyze(f"{model_file}:with_head", input=(3, 8, 8)).totals.params == 224 + 2890
    assert resolve(f"{model_file}:tiny").stem == "model.tiny"


def test_cli_file_factory_report_and_check(model_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", f"{model_file}:tiny", "--input", "3x8x8"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reports"
    result = runner.invoke(app, ["report", f"{model_file}:tiny", "--input", "3x8x8", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "model.tiny.html",
                                                     "model.tiny.json", "model.tiny.md"]
    result = runner.invoke(app, ["check", str(out)])  # runs no code unless allowed
    assert result.exit_code == 2 and "is Python code" in result.output, result.output
    result = runner.invoke(app, ["check", str(out), "--allow-factory", f"{model_file}:tiny"])
    assert result.exit_code == 0, result.output


def test_a_python_file_alone_says_how_to_name_the_factory(model_file: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", str(model_file)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())  # rich may fold a long line
    assert "not a spec: name the function in it that returns the nn.Module" in message
    assert f"{model_file}:tiny" in message and "malformed" not in message


@pytest.mark.parametrize(("source", "message"), [
    ("def broken(:\n    pass\n", r"importing .*bad\.py failed: SyntaxError: .*line 1"),
    ("import torch\n\nraise RuntimeError('needs a GPU')\n",
     r"importing .*bad\.py failed: RuntimeError: needs a GPU \(at .*bad\.py:3\)"),
    ("import sys\nsys.exit(3)\n", r"importing .*bad\.py failed: SystemExit: 3"),
], ids=["syntax-error", "runtime-error", "exit"])
def test_a_factory_file_that_fails_to_import_is_one_line_exit_2(
        tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "bad.py").write_text(source)
    with pytest.raises(UsageError, match=message):
        load_factory(f"{tmp_path / 'bad.py'}:net")
    result = CliRunner().invoke(app, ["analyze", f"{tmp_path / 'bad.py'}:net"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_factory_module_that_raises_at_import_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cnncost_raises_at_import.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match=r"importing cnncost_raises_at_import failed: "
                                         r"RuntimeError: no config \(at .*:1\)"):
        load_factory("cnncost_raises_at_import:net")


def test_missing_factory_file() -> None:
    with pytest.raises(UsageError, match=r"no such file nowhere/model\.py"):
        resolve("nowhere/model.py:net")


def test_no_extra_can_replace_torch() -> None:
    # pip meets torchvision's exact torch pin by replacing the user's torch: no extra may pull
    # torchvision in (the README says `pip install --no-deps`). torch itself only as a lower
    # bound (the `torch` and `test` extras: `torch>=2.2`), which any installed torch of that
    # version or later satisfies, so pip leaves it alone; a pin or an upper bound would not.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert "torch" in extras  # `pip install 'cnncost[torch]'` (README, Set-up)
    for name, requirements in extras.items():
        for req in requirements:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(.*)", req.replace(" ", ""))
            assert match, (name, req)
            project, spec = match[1].lower(), match[2]
            assert project != "torchvision", (name, req)
            if project == "torch":
                assert re.fullmatch(r">=[0-9.]+", spec), (name, req)

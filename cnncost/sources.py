"""Resolve what a user names on the command line: a spec file, a bundled spec, or a module.

- ``specs/x.yaml`` or any path ending in .yaml/.yml: a spec file;
- ``resnet50`` or ``textbook/bottleneck``: a bundled spec, also after a non-editable install;
- ``pkg.module:factory``: a callable returning an ``nn.Module`` (imported, then called);
- ``path/to/model.py:factory``: the same, from a Python file;
- ``torchvision:NAME``: any model in torchvision's registry (classification, detection,
  segmentation, video, optical flow), built without weights (torchvision is optional);
- ``path/to/model.onnx``: an ONNX file, counted by cnncost.onnx (no torch).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.errors import SpecError, UsageError

if TYPE_CHECKING:
    from torch import nn

    from cnncost.spec import ModelSpec

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FILE_FACTORY_RE = re.compile(r"^(?P<file>.+\.py):(?P<attr>[A-Za-z_]\w*)$")
DEFAULT_INPUT = (3, 224, 224)  # one sample's shape for a module (a spec has its own)


def specs_dir() -> Path:
    """Where the bundled specs live: inside the installed package, or the source tree."""
    installed = Path(__file__).parent / "specs"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "specs"


def bundled_specs() -> dict[str, Path]:
    """Bundled spec names (``resnet50``, ``textbook/conv5x5``) and their files, sorted."""
    root = specs_dir()
    found = {}
    for path in sorted(root.rglob("*.yaml")):
        name = path.relative_to(root).with_suffix("").as_posix()
        found[name] = path
    return found


@dataclass(frozen=True)
class Target:
    """A resolved command-line target: a spec file, a module factory, or an ONNX file."""

    label: str
    spec_path: Path | None = None
    factory: str | None = None
    onnx_path: Path | None = None

    @property
    def is_spec(self) -> bool:
        return self.spec_path is not None

    @property
    def stem(self) -> str:
        """A file name for a factory's report: ``mod.factory`` (``model.factory`` for a file)."""
        if self.onnx_path is not None:
            return self.onnx_path.stem
        ref = self.factory or self.label
        match = _FILE_FACTORY_RE.match(ref)
        if match:
            return f"{Path(match['file']).stem}.{match['attr']}"
        return ref.replace(":", ".")

    @property
    def display(self) -> str:
        """A stable name for reports: ``specs/x.yaml`` for bundled specs, else as given."""
        if self.onnx_path is not None:
            return str(self.onnx_path)
        if self.spec_path is None:
            return self.factory or self.label
        try:
            return "specs/" + self.spec_path.resolve().relative_to(specs_dir().resolve()).as_posix()
        except ValueError:
            return str(self.spec_path)


def resolve(target: str) -> Target:
    """Turn a command-line name into a Target; unknown names say what is known."""
    path = Path(target)
    file_factory = _FILE_FACTORY_RE.match(target)
    if file_factory:
        if not Path(file_factory["file"]).is_file():
            raise UsageError(f"{target}: no such file {file_factory['file']}")
        return Target(file_factory["attr"], factory=target)
    if target.endswith(".py"):
        raise UsageError(_name_a_factory(path))
    if target.lower().endswith(".onnx"):
        if not path.exists():
            raise UsageError(f"{target}: no such file")
        return Target(path.stem, onnx_path=path)
    if target.endswith((".yaml", ".yml")) or path.is_file():
        if not path.exists():
            bundled = path.with_suffix("").as_posix().removeprefix("specs/")
            hint = (f"; the bundled spec of that name runs from anywhere: `{bundled}`"
                    if bundled in bundled_specs() else "")
            raise SpecError("no such file" + hint, target)
        return Target(path.stem, spec_path=path)
    if _FACTORY_RE.match(target):
        return Target(target.split(":")[1], factory=target)
    specs = bundled_specs()
    if target in specs:
        return Target(target.split("/")[-1], spec_path=specs[target])
    close = [n for n in specs if target.lower() in n.lower()][:6]
    hint = f"; did you mean {', '.join(close)}" if close else (
        "; run `cnncost list` for the bundled specs")
    raise UsageError(f"{target}: not a spec file, a bundled spec, pkg.module:factory, "
                     f"file.py:factory or an .onnx file{hint}")


def _name_a_factory(path: Path) -> str:
    """What to say for ``cnncost analyze model.py``: name the function that builds the model."""
    if not path.is_file():
        return f"{path}: no such file"
    import ast

    found: list[str] = []
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                and not n.name.startswith("_")]
        # functions first: a factory is usually one; a class is called with no arguments
        found = [n.name for n in sorted(defs, key=lambda n: isinstance(n, ast.ClassDef))]
    except (SyntaxError, ValueError):
        pass  # importing it will say what is wrong
    example = found[0] if found else "build"
    listed = f" (defined there: {', '.join(found[:8])})" if found else ""
    return (f"{path} is Python, not a spec: name the function in it that returns the "
            f"nn.Module, e.g. {path}:{example}{listed}")


def load_factory(ref: str) -> nn.Module:
    """Import ``pkg.module:factory``, ``file.py:factory`` or ``torchvision:name`` and call it
    for a module. Anything the user's code raises becomes a one-line UsageError."""
    from torch import nn

    module_name, _, attr = ref.rpartition(":")
    if module_name == "torchvision":
        model: Any = build_torchvision(attr)
    else:
        module = _import_file(ref, Path(module_name)) if module_name.endswith(".py") else (
            _import_module(ref, module_name))
        shown = Path(module_name).name if module_name.endswith(".py") else module_name
        factory = getattr(module, attr, None)
        if factory is None:
            raise UsageError(f"{ref}: {shown} has no attribute {attr!r}")
        if isinstance(factory, nn.Module):
            model = factory
        elif not callable(factory):
            raise UsageError(f"{ref}: {attr} is a {type(factory).__name__}, not a callable "
                             "returning an nn.Module")
        else:
            try:
                model = factory()
            # the user's code: report it in one line; its sys.exit() must not end cnncost
            except (Exception, SystemExit) as exc:
                raise UsageError(f"{ref}: calling {attr}() failed: "
                                 f"{user_error(exc)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{ref} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def is_factory_ref(text: str) -> bool:
    """Whether ``text`` names Python code to import and call (``pkg.module:factory`` or
    ``file.py:factory``); ``torchvision:NAME`` is a registry lookup, not code it names."""
    if _FILE_FACTORY_RE.match(text):
        return True
    return bool(_FACTORY_RE.match(text)) and not text.startswith("torchvision:")


@contextlib.contextmanager
def without_current_folder() -> Iterator[None]:
    """While inside: the current folder is not importable, unless PYTHONPATH names it.

    ``python -m`` and ``python -c`` put it first on sys.path, so a ``torch.py`` or ``yaml.py``
    in the folder being checked would be imported in place of the real package."""
    cwd = os.getcwd()
    explicit = {os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                if p}
    saved = list(sys.path)
    sys.path[:] = [p for p in saved
                   if os.path.abspath(p or ".") != cwd or os.path.abspath(p or ".") in explicit]
    try:
        yield
    finally:
        sys.path[:] = saved


def user_error(exc: BaseException) -> str:
    """``TypeName: first line`` of an exception from the user's code, with the ``file:line``
    of the innermost frame outside the standard library where it has one."""
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    libraries = _library_dirs()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(libraries)]
    if frames and not isinstance(exc, SyntaxError):  # a SyntaxError names its line already
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def _library_dirs() -> tuple[str, ...]:
    """Folders of code that is not the user's: the standard library, torch, cnncost."""
    import sysconfig

    import torch

    dirs = {sysconfig.get_paths()["stdlib"], str(Path(torch.__file__).parent),
            str(Path(__file__).parent), "<frozen"}
    return tuple(sorted(dirs))


def _import_module(ref: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{ref}: cannot import {module_name}: {exc}") from None
    except (Exception, SystemExit) as exc:  # the module's own code failed while importing
        raise UsageError(f"{ref}: importing {module_name} failed: {user_error(exc)}") from None


def _import_file(ref: str, path: Path) -> Any:
    """Import a Python file as a module; its folder is importable while it loads (so it can
    import its neighbours), as ``python path/to/model.py`` would allow."""
    if not path.is_file():
        raise UsageError(f"{ref}: no such file {path}")
    from cnncost.io import note_input

    note_input(path, "module")  # --output must not replace it
    name = "cnncost_factory_" + re.sub(r"\W", "_", str(path.resolve().with_suffix("")))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # as an import would: dataclasses and pickling look here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise UsageError(f"{ref}: importing {path} failed: {user_error(exc)}") from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


# --------------------------------------------------------------------------- torchvision


def build_torchvision(name: str) -> nn.Module:
    """A model of torchvision's registry (``list_models()``: classification, detection,
    segmentation, video, optical flow, quantized), built with ``weights=None`` and, where the
    builder takes one, ``weights_backbone=None``: nothing is ever downloaded."""
    models = _torchvision_models()
    known = models.list_models()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise UsageError(f"torchvision has no model {name!r}{hint} (its {len(known)} models: "
                         "torchvision.models.list_models())")
    import torch

    builder = models.get_model_builder(name)
    try:
        # Seeded: a detection model's count depends on its weights (how many proposals
        # survive), so the same name gives the same weights, and the same count, every time.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model: nn.Module = builder(**torchvision_config(builder))
        return model
    except Exception as exc:
        raise UsageError(f"torchvision:{name}: building it failed: {user_error(exc)}") from None


def torchvision_config(builder: Any) -> dict[str, Any]:
    """The arguments a torchvision builder gets: no weights, and no ImageNet backbone weights
    where it takes them (detection and segmentation models)."""
    import inspect

    config: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        config["weights_backbone"] = None
    return config


def torchvision_family(name: str) -> str:
    """The registry submodule a torchvision model comes from: ``classification``,
    ``detection``, ``segmentation``, ``video``, ``optical_flow`` or ``quantization``."""
    module = _torchvision_models().get_model_builder(name).__module__
    family = module.removeprefix("torchvision.models").lstrip(".").split(".")[0]
    if family in ("detection", "segmentation", "video", "optical_flow", "quantization"):
        return family
    return "classification"


# One sample of torchvision's video models: 16 frames of 112 x 112 (the clips their
# published "_ops" were counted on; VideoClassification presets crop 112 x 112).
VIDEO_INPUT = (3, 16, 112, 112)


def frames(ref: str | None) -> int:
    """How many frames a factory's model takes: 2 for torchvision's optical-flow models
    (``forward(image1, image2)``), else 1."""
    if ref and ref.startswith("torchvision:") and torchvision_family(ref[12:]) == "optical_flow":
        return 2
    return 1


def default_input(ref: str | None) -> tuple[int, ...] | None:
    """The input a factory's model needs when none is given (video models: a clip), or None."""
    if ref and ref.startswith("torchvision:") and torchvision_family(ref[12:]) == "video":
        return VIDEO_INPUT
    return None


def _torchvision_models() -> Any:
    """torchvision.models, or a one-line error saying how to install a matching torchvision."""
    import torch

    if sys.modules.get("torchvision") is None:  # not imported yet: check before importing
        try:
            installed = importlib.util.find_spec("torchvision") is not None
        except (ImportError, ValueError):
            installed = False
        if not installed:
            raise UsageError(f"torchvision is not installed; {torchvision_install_hint()}")
        mismatch = _torchvision_mismatch(torch.__version__)
        if mismatch:
            raise UsageError(f"{mismatch}; {torchvision_install_hint()}")
    try:
        return importlib.import_module("torchvision.models")
    except (Exception, SystemExit) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UsageError(f"torchvision {_torchvision_version()} does not load with torch "
                         f"{torch.__version__} ({type(exc).__name__}: {first}); "
                         f"{torchvision_install_hint()}") from None


def _torchvision_version() -> str:
    """torchvision's full version (``0.28.0+cu130``: its build too), read without importing
    it (an import is what may fail)."""
    from importlib import metadata

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin:
        version_file = Path(spec.origin).parent / "version.py"
        if version_file.is_file():
            found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]",
                              version_file.read_text(encoding="utf-8", errors="replace"), re.M)
            if found:
                return found[1]
    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return "(unknown version)"


def _torchvision_mismatch(torch_version: str) -> str | None:
    """Why the installed torchvision was not made for this torch (from the ``torch==X`` it
    requires), or None when it was (or says nothing)."""
    from importlib import metadata

    try:
        requires = metadata.requires("torchvision") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requires:
        pinned = re.fullmatch(r"torch\s*\(?==\s*([\w.]+)\)?", req.split(";")[0].strip())
        if pinned and _minor(pinned[1]) != _minor(torch_version):
            return (f"torchvision {_torchvision_version()} was built for torch {pinned[1]}, "
                    f"but torch is {torch_version}")
    return None


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def torchvision_install_hint() -> str:
    """How to install the torchvision made for the installed torch without replacing it."""
    import torch

    release, _, build = torch.__version__.partition("+")
    major, minor = [*release.split("."), "0"][:2]
    wanted = (f"torchvision==0.{int(minor) + 15}.*" if major == "2" and minor.isdigit()
              else "torchvision (the release made for this torch)")
    where = (f" from the wheel index your torch {torch.__version__} came from (a {build} build; "
             "PyPI's Linux torchvision wheels are CUDA builds)" if build else "")
    return (f"install the torchvision made for torch {release}, keeping your torch: "
            f"pip install --no-deps '{wanted}'{where}")
def load_target(target: Target, overrides: Mapping[str, Any] | None = None,
                input: tuple[int, ...] | None = None) -> ModelSpec | nn.Module:
    """The resolved spec (with ``overrides`` and ``input``), or the module a factory returns.
    An ONNX file is neither (cnncost.onnx counts it; commands that build a module refuse it)."""
    if target.onnx_path is not None:
        raise UsageError(f"{target.display}: an ONNX file is not a spec or a module; this "
                         "command needs one of those")
    if target.spec_path is not None:
        from cnncost.spec import load_spec

        return load_spec(target.spec_path, overrides=overrides, input_shape=input)
    if overrides:
        raise UsageError("--set only applies to specs, not to module factories")
    assert target.factory is not None
    return load_factory(target.factory)

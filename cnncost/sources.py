"""Resolve what a user names on the command line: a spec file, a bundled spec, or a module.

- ``specs/x.yaml`` or any path ending in .yaml/.yml: a spec file;
- ``resnet50`` or ``textbook/bottleneck``: a bundled spec, also after a non-editable install;
- ``pkg.module:factory``: a callable returning an ``nn.Module`` (imported, then called);
- ``torchvision:resnet50``: a torchvision model built without weights (torchvision optional).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.errors import SpecError, UsageError

if TYPE_CHECKING:
    from torch import nn

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


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
    """A resolved command-line target: a spec file, or a module factory."""

    label: str
    spec_path: Path | None = None
    factory: str | None = None

    @property
    def is_spec(self) -> bool:
        return self.spec_path is not None

    @property
    def display(self) -> str:
        """A stable name for reports: ``specs/x.yaml`` for bundled specs, else as given."""
        if self.spec_path is None:
            return self.factory or self.label
        try:
            return "specs/" + self.spec_path.resolve().relative_to(specs_dir().resolve()).as_posix()
        except ValueError:
            return str(self.spec_path)


def resolve(target: str) -> Target:
    """Turn a command-line name into a Target; unknown names say what is known."""
    path = Path(target)
    if target.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
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
    raise UsageError(f"{target}: not a spec file, a bundled spec or pkg.module:factory{hint}")


def load_factory(ref: str) -> nn.Module:
    """Import ``pkg.module:factory`` (or ``torchvision:name``) and call it for a module."""
    from torch import nn

    module_name, attr = ref.split(":")
    if module_name == "torchvision":
        try:
            models = importlib.import_module("torchvision.models")
        except ImportError:
            raise UsageError("torchvision is not installed (pip install 'cnncost[torchvision]')"
                             ) from None
        if not hasattr(models, attr):
            raise UsageError(f"torchvision.models has no model {attr!r}")
        model: Any = models.get_model(attr, weights=None)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(f"{ref}: cannot import {module_name}: {exc}") from None
        factory = getattr(module, attr, None)
        if factory is None:
            raise UsageError(f"{ref}: {module_name} has no attribute {attr!r}")
        if isinstance(factory, nn.Module):
            model = factory
        elif not callable(factory):
            raise UsageError(f"{ref}: {attr} is a {type(factory).__name__}, not a callable "
                             "returning an nn.Module")
        else:
            try:
                model = factory()
            except Exception as exc:  # the user's code: report it in one line
                raise UsageError(f"{ref}: calling {attr}() failed: "
                                 f"{type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{ref} returned {type(model).__name__}, not a torch.nn.Module")
    return model

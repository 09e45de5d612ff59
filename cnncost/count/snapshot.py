"""Give a user's module back exactly as it came: what a count may change, and its undoing.

Counting runs the module's own forward, and a forward may write to its module: a positional
table or detection anchors cached in a plain attribute (made on the meta device during a
count, so the next real forward fails with "Cannot copy out of meta tensor"), a list it
appends to, a buffer it reassigns, a hook it registers, ``self.training`` (the count runs
in eval mode). :class:`ModuleState` records, for every module of the tree, its ``__dict__``
(parameters, buffers, submodules, hooks, flags and plain attributes), its class and
training flag, and the contents of every container reachable from it, and puts all of it
back: the same objects, in the same containers. Tensor *values* are not copied: on the
meta device nothing can write to a real tensor, and on CPU the counter runs on copies of
the buffers (see the drivers); the few plain tensor attributes written in place on CPU are
restored from copies taken here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_CONTAINERS = (dict, list, set)
_MAX_DEPTH = 4  # containers inside containers inside a module attribute: deep enough


class ModuleState:
    """The state of every module of a tree, taken now; :meth:`restore` puts it back."""

    def __init__(self, model: nn.Module, copy_tensors: bool = False) -> None:
        self._dicts = [(m, dict(m.__dict__)) for m in model.modules()]
        # What lives outside __dict__: a TorchScript module's training flag (held by its
        # C++ module: a traced model came back with every flag flipped) and the class (a
        # lazy module becomes its non-lazy class when its parameters are made).
        self._flags = [(m, m.training, type(m)) for m, _ in self._dicts]
        self._tables = {id(m.__dict__[k]) for m, _ in self._dicts
                        for k in ("_parameters", "_buffers", "_modules") if k in m.__dict__}
        self._contents: list[tuple[Any, Any]] = []
        self._values: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        seen: set[int] = set()
        for _, attrs in self._dicts:
            for key, value in attrs.items():
                if key in ("_parameters", "_buffers", "_modules"):
                    if isinstance(value, dict):  # (a TorchScript module's are C++ views)
                        self._contents.append((value, dict(value)))
                    continue
                self._walk(value, 0, seen, copy_tensors)
        del seen

    def _walk(self, value: Any, depth: int, seen: set[int], copy_tensors: bool) -> None:
        if isinstance(value, torch.Tensor):
            if copy_tensors and not isinstance(value, nn.Parameter) and not value.is_meta:
                self._values.append((value, value._version, value.detach().clone()))
            return
        if not isinstance(value, _CONTAINERS) or id(value) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(value))
        if isinstance(value, dict):
            self._contents.append((value, dict(value)))
            items: Any = value.values()
        elif isinstance(value, list):
            self._contents.append((value, list(value)))
            items = value
        else:
            self._contents.append((value, set(value)))
            items = value
        for item in list(items):
            self._walk(item, depth + 1, seen, copy_tensors)

    def meta_attributes(self, dtype: torch.dtype) -> None:
        """Give the plain tensor attributes (not parameters or buffers) meta stand-ins for a
        count on meta, as its parameters and buffers get: a real table added to a meta
        activation would fail. :meth:`restore` puts the real ones back."""
        for module, attrs in self._dicts:
            for key, value in attrs.items():
                if isinstance(value, torch.Tensor) and not value.is_meta:
                    module.__dict__[key] = _meta_like(value, dtype)
        for container, contents in self._contents:
            if isinstance(container, list) and id(container) not in self._tables:
                container[:] = [_meta_like(v, dtype) if isinstance(v, torch.Tensor) else v
                                for v in contents]
            elif isinstance(container, dict) and id(container) not in self._tables:
                for key, value in contents.items():
                    if isinstance(value, torch.Tensor):
                        container[key] = _meta_like(value, dtype)

    def restore(self) -> None:
        """Put every attribute, container content and written tensor value back."""
        for module, attrs in self._dicts:
            current = module.__dict__
            for key in [k for k in current if k not in attrs]:
                del current[key]  # added by the forward (a lazily made cache)
            for key, value in attrs.items():
                if current.get(key, _MISSING) is not value:
                    current[key] = value
        self._restore_flags()
        for container, contents in self._contents:
            if isinstance(container, dict):
                container.clear()
                container.update(contents)
            elif isinstance(container, list):
                container[:] = contents
            else:
                container.clear()
                container.update(contents)
        with torch.no_grad():
            for tensor, version, copy in self._values:
                if tensor._version != version:
                    tensor.copy_(copy)


    def _restore_flags(self) -> None:
        for module, training, cls in self._flags:
            if type(module) is not cls:
                module.__class__ = cls
            if module.training != training:
                module.training = training


_MISSING = object()


def _meta_like(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype,
                       device="meta")

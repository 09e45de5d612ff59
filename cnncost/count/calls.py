"""Which module is running: forward hooks on every module of a model, one row per module.

:class:`ModuleCalls` charges the ops of each module call (through the dispatch mode's
current row) to the innermost module in progress, and assembles the rows afterwards: leaf
modules, containers with functional ops of their own, modules with parameters that never
ran. A TorchScript module is one row (no hook fires inside its compiled graph).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from cnncost.count.mode import Acc, CostCounterMode, tensors
from cnncost.count.snapshot import ModuleState


class ModuleCalls:
    """Forward hooks on every module of a model: one row (Acc) per module name, and the
    ops of each call charged to the innermost module in progress.

    A TorchScript module (``torch.jit.script`` or ``torch.jit.trace``) runs its submodules
    inside its compiled graph, where no Python hook fires (and a scripted one refuses
    hooks): it is one row, holding its submodules' parameters and ops. A scripted module
    that refuses hooks, called by a Python module, is part of its caller's row."""

    def __init__(self, model: nn.Module, mode: CostCounterMode, train: bool = False) -> None:
        self.model = model
        self.mode = mode
        self.train = train
        self.modules = dict(model.named_modules())  # a shared module goes by its first name
        self.names = {id(m): n for n, m in self.modules.items()}
        # Each module's row: its own, or (inside TorchScript) the enclosing unit's.
        self.owner = _owners(self.modules)
        self.leaf_ids = {id(m) for n, m in self.modules.items() if self.owner[n] == n
                         and not any(self._owns(c) for c in m.children())}
        self.manual = False  # the model itself refuses hooks: its row is entered by hand
        self.accs: dict[str, Acc] = {}
        self.pre_order: dict[str, int] = {}
        self.stack: list[Acc] = []  # the rows of the module calls in progress, innermost last

    @contextmanager
    def hooked(self, device: str, dtype: torch.dtype) -> Iterator[None]:
        """The hooks in place and the model in eval mode; afterwards the model is put back
        exactly as it was (cnncost.count.snapshot): flags, hooks, attributes the forward
        wrote. On meta its plain tensor attributes get meta stand-ins meanwhile."""
        saved = ModuleState(self.model, copy_tensors=device == "cpu")
        handles = []
        try:
            for name, m in self.modules.items():
                if self.owner[name] != name:
                    continue
                try:
                    pre = m.register_forward_pre_hook(self._pre)
                except RuntimeError:  # a scripted module: "not supported on ScriptModules"
                    self._fold(name)
                    continue
                handles += [pre, m.register_forward_hook(self._post)]
            self.model.train(self.train)
            if device == "meta":
                saved.meta_attributes(dtype)
            yield
        finally:
            for h in handles:
                h.remove()
            saved.restore()

    def _owns(self, module: nn.Module) -> bool:
        """Whether a module has a row of its own (it is not inside TorchScript)."""
        name = self.names[id(module)]
        return self.owner[name] == name

    def _fold(self, name: str) -> None:
        """A module that refuses hooks: its rows go to its caller's (the model's own, which
        is then entered by hand)."""
        if name == "":
            self.manual = True
            return
        parent = self.owner[name.rpartition(".")[0]]
        for n, o in self.owner.items():
            if o == name:
                self.owner[n] = parent
        self.leaf_ids.discard(id(self.modules[name]))

    def call(self, inputs: list[torch.Tensor]) -> Any:
        """The model's forward, its own row entered by hand where it refuses hooks."""
        if not self.manual:
            return self.model(*inputs)
        self._pre(self.model, tuple(inputs))
        out = self.model(*inputs)
        self._post(self.model, tuple(inputs), out)
        return out

    def _pre(self, module: nn.Module, args: Any) -> None:
        mname = self.names.get(id(module), "")
        acc = self.accs.get(mname)
        if acc is None:
            acc = self.accs[mname] = Acc(mname or "(model)", _kind(module))
        acc.calls += 1
        self.pre_order.setdefault(mname, self.mode.ops)
        if not acc.input_shape:
            acc.input_shape = tuple(tuple(a.shape) for a in tensors(args))
        self.stack.append(acc)
        self.mode.acc = acc

    def _post(self, module: nn.Module, args: Any, out: Any) -> None:
        acc = self.stack.pop()
        outs = tensors(out)
        if not acc.output_shape and outs:
            acc.output_shape = tuple(outs[0].shape)
        if id(module) in self.leaf_ids:
            acc.output_bytes += sum(t.numel() * t.element_size() for t in outs)
        self.mode.acc = self.stack[-1] if self.stack else None

    def rows(self) -> list[Acc]:
        """Modules that ran ops themselves (leaves, and containers with functional ops) in
        execution order, then modules owning parameters that never ran: rows always sum
        to the totals."""
        rows: list[Acc] = []
        seen_params: set[int] = set()
        order: dict[int, int] = {}
        owned: dict[str, list[nn.Module]] = {}
        for mname, module in self.modules.items():
            owned.setdefault(self.owner[mname], []).append(module)
        for mname, acc in self.accs.items():
            module = self.modules[mname]
            own_p, own_b, frozen = _weights_of(owned.get(mname, [module]), seen_params)
            leaf = id(module) in self.leaf_ids
            if leaf or _has_ops(acc) or own_p or own_b or frozen:
                acc.params, acc.buffers, acc.frozen = own_p, own_b, frozen
                if not leaf:
                    # A container's row holds its own functional ops (e.g. a residual add):
                    # their new tensors are its output bytes; its children have rows of
                    # their own.
                    acc.kind += " (own ops)"
                    acc.output_bytes = acc.op_bytes
                # Where its first op ran (a residual add after its branch), else its call.
                order[id(acc)] = acc.order if acc.order >= 0 else self.pre_order[mname]
                rows.append(acc)
        rows.sort(key=lambda a: order[id(a)])
        for mname, members in owned.items():
            if mname in self.accs:
                continue
            own_p, own_b, frozen = _weights_of(members, seen_params)
            if own_p or own_b or frozen:
                rows.append(Acc(mname, _kind(self.modules[mname]) + " (not called)",
                                params=own_p, buffers=own_b, frozen=frozen))
        return rows


def _owners(modules: Mapping[str, nn.Module]) -> dict[str, str]:
    """Each module's row: its own name, or inside a TorchScript module that module's."""
    owner: dict[str, str] = {}
    for name in modules:  # parents come before their children
        parent = owner.get(name.rpartition(".")[0]) if name else None
        inside = parent is not None and isinstance(modules[parent], torch.jit.ScriptModule)
        owner[name] = parent if inside and parent is not None else name
    return owner


def _kind(module: nn.Module) -> str:
    """A row's kind: the class, or what a TorchScript module was made from."""
    if isinstance(module, torch.jit.ScriptModule):
        return f"{getattr(module, 'original_name', type(module).__name__)} (TorchScript)"
    return type(module).__name__


def _weights_of(modules: Iterable[nn.Module], seen: set[int]) -> tuple[int, int, int]:
    """(trainable params, buffers, frozen params) the modules hold themselves, each
    parameter counted once (a shared one where first seen)."""
    trainable = buffers = frozen = 0
    for m in modules:
        t, f = _own(m.parameters(recurse=False), seen)
        trainable, frozen = trainable + t, frozen + f
        buffers += sum(b.numel() for b in m.buffers(recurse=False))
    return trainable, buffers, frozen


def _has_ops(acc: Acc) -> bool:
    """Whether a module's own ops did anything (forward, or backward in train mode)."""
    return bool(acc.macs or acc.elem_flops or acc.uncounted or acc.factors or acc.op_bytes
                or acc.grad_input_macs or acc.grad_weight_macs or acc.grad_input_flops
                or acc.grad_weight_flops or acc.saved_bytes)


def _own(params: Iterator[nn.Parameter], seen: set[int]) -> tuple[int, int]:
    """(trainable, frozen) parameters not counted before (a shared one counts once)."""
    trainable = frozen = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
    return trainable, frozen

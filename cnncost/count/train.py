"""Train mode: one training step (forward, loss, backward) counted on the meta device.

The forward runs with autograd on, in training behaviour (batch norm on batch statistics,
dropout active), under :class:`TrainCounterMode`. Then the loss (the sum of the model's
outputs: its gradient is all ones and costs nothing) is backpropagated, still on meta, and
every ATen op autograd runs is counted by the formula table (the backward ops' formulas,
cnncost.count.backward, are registered into it by this module's import of them) and
charged to the layer whose forward created the autograd node that runs it:

- **attribution**: the mode records which layer is current at each autograd sequence
  number during the forward (nodes are numbered as they are created); after the forward
  each node of the graph is labelled with the layer current at its number, and a pre-hook
  on the node makes that layer current again while the node runs in the backward;
- **gradient of the input or of the weights**: a backward result that reaches a
  parameter's ``.grad`` (it arrives at the parameter's AccumulateGrad node, perhaps
  through views such as the transpose of a linear layer's weight) computes a gradient of
  the weights; every other result is part of a gradient of an input. The first layer
  computes no gradient of its input (the input needs none) and frozen parameters none of
  theirs: autograd's ``output_mask`` says so, and the formulas count only what is asked;
- **memory**: live bytes are tracked per storage (views and the tensors autograd saves
  share their producer's storage), so the peak is that of the real step in execution
  order: activations kept for the backward, gradients as they are made, the temporaries
  of each backward op. What autograd saves is read with saved_tensors_hooks and counted
  once per storage (a ReLU saves its output, the next conv saves the same storage as its
  input; an in-place ReLU saves the batch norm's output storage it overwrote).
"""

from __future__ import annotations

import bisect
import itertools
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.nn.parameter import is_lazy

import cnncost.count.backward  # noqa: F401  (registers the backward ops' formulas: a step runs them)
from cnncost.count.formulas import OpCost
from cnncost.count.memory import StepRecord
from cnncost.count.mode import Acc, CostCounterMode, OverBudget, _OpInfo, tensors
from cnncost.errors import UsageError

WEIGHT, INPUT = "weight", "input"


def _storage_key(t: Any) -> int | None:
    return t.untyped_storage()._cdata if isinstance(t, torch.Tensor) else None


class TrainCounterMode(CostCounterMode):
    """The counter of a training step: charges backward ops to the layer whose node runs."""

    def __init__(self) -> None:
        self._acc: Acc | None = None
        self._seqs: list[int] = [0]
        self._accs: list[Acc | None] = [None]
        super().__init__()
        self.excluded: set[int | None] = set()
        self.serials: dict[int, int] = {}  # live storage -> a serial never reused
        self._serial = itertools.count()
        self.running: Acc | None = None  # the layer whose node runs (backward)
        self.backward = False
        self.pending: list[tuple[Acc, OpCost, int | None]] = []
        self.to_weights: set[int] = set()  # serials of results that reached a .grad
        self.saved: set[int] = set()
        self.saved_bytes = 0
        self.nodes: list[Any] = []  # the graph's nodes, parents first (label, release)

    def exclude(self, weights: Iterable[torch.Tensor]) -> None:
        """Storages that are not activations (input, parameters, buffers) when saved (a
        lazy parameter, not made yet, has none: it is excluded when it is made)."""
        self.excluded.update(_storage_key(t) for t in weights if not is_lazy(t))

    @property
    def acc(self) -> Acc | None:
        return self._acc

    @acc.setter
    def acc(self, value: Acc | None) -> None:
        self._acc = value
        if not getattr(self, "backward", False):
            self._seqs.append(torch._C._autograd._get_sequence_nr())
            self._accs.append(value)

    def layer_at(self, sequence_nr: int) -> Acc | None:
        """The layer that was current when the autograd node numbered so was created."""
        return self._accs[bisect.bisect_right(self._seqs, sequence_nr) - 1]

    # ----------------------------------------------------------------------- costs

    def _charge(self, info: _OpInfo, cost: OpCost | tuple[OpCost, ...] | None,
                out: Any) -> None:
        if not self.backward:
            super()._charge(info, cost, out)
            return
        acc = self.running
        if acc is None:
            return
        if cost is None:
            if info.formula is not None or not info.zero_cost:
                acc.uncounted[info.name] += 1
            return
        outs = out if isinstance(out, tuple | list) else (out,)
        for part, t in zip(cost if isinstance(cost, tuple) else (cost,), outs, strict=False):
            if part.macs or part.elem_flops:
                key = _storage_key(t)
                self.pending.append((acc, part, None if key is None else self.serials.get(key)))

    def classify(self) -> None:
        """Split the backward's costs: results that reached a .grad are weight gradients."""
        for acc, part, serial in self.pending:
            side = WEIGHT if serial is not None and serial in self.to_weights else INPUT
            if side == WEIGHT:
                acc.grad_weight_macs += part.macs
                acc.grad_weight_flops += part.elem_flops
            else:
                acc.grad_input_macs += part.macs
                acc.grad_input_flops += part.elem_flops
            if part.factors is not None:
                acc.grad_factors.append((side, part.factors))
        self.pending.clear()

    # ----------------------------------------------------------------------- memory

    def _track(self, info: _OpInfo, out: Any, acc: Acc | None) -> None:
        outs = out if isinstance(out, tuple | list) else (out,)
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor) or (i < len(info.aliases) and info.aliases[i]):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.serials:
                continue
            nbytes = storage.nbytes()
            self.serials[key] = next(self._serial)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            if acc is not None and not self.backward:
                acc.op_bytes += nbytes
            weakref.finalize(storage, self._free, key, nbytes)
        if self.budget is not None and self.live > self.budget[0]:
            raise OverBudget(*self.budget)

    def _free(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self.serials.pop(key, None)

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        """saved_tensors_hooks' pack: count a saved storage once, for the current layer."""
        key = _storage_key(t)
        if key is not None and key not in self.saved and key not in self.excluded:
            self.saved.add(key)
            nbytes = t.untyped_storage().nbytes()
            self.saved_bytes += nbytes
            if self._acc is not None:
                self._acc.saved_bytes += nbytes
        return t.detach()  # the storage, without the graph: as autograd keeps an output

    # ----------------------------------------------------------------------- the graph

    def label(self, outputs: list[torch.Tensor]) -> None:
        """Hook every node of the graph: while it runs, its layer is current. The nodes
        are kept, parents before children, for :meth:`release`."""
        stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
        seen: set[Any] = set()
        parents: dict[Any, int] = {}
        children: dict[Any, list[Any]] = {}
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            acc = self.layer_at(node._sequence_nr())
            node.register_prehook(_Enter(self, acc))
            below = children[node] = []
            for nxt, _ in node.next_functions:
                if nxt is None:
                    continue
                below.append(nxt)
                parents[nxt] = parents.get(nxt, 0) + 1
                if nxt in seen:
                    continue
                if hasattr(nxt, "variable"):  # a parameter's AccumulateGrad
                    seen.add(nxt)
                    children[nxt] = []
                    nxt.register_prehook(_Reach(self, acc))
                else:
                    stack.append(nxt)
        self.nodes = _parents_first(children, parents)

    def release(self) -> None:
        """Free the graph one node at a time, parents first: a node with a Python object
        (the hooks need one) frees its inputs' nodes in turn, a recursion that overflowed
        the C stack through 50,000 layers; so each node goes alone (its inputs' nodes are
        still held here)."""
        nodes = self.nodes
        for i in range(len(nodes)):
            nodes[i] = None
        self.nodes = []


def _parents_first(children: dict[Any, list[Any]], parents: dict[Any, int]) -> list[Any]:
    """The graph's nodes in an order where every node comes after all its parents."""
    left = dict(parents)
    order = [n for n in children if not left.get(n)]
    for node in order:  # grows while it is walked
        for nxt in children[node]:
            left[nxt] -= 1
            if not left[nxt]:
                order.append(nxt)
    return order


class _Enter:
    """A node's pre-hook: its layer is current while it runs."""

    def __init__(self, mode: TrainCounterMode, acc: Acc | None) -> None:
        self.mode, self.acc = mode, acc

    def __call__(self, grad_outputs: Any) -> None:
        self.mode.running = self.acc


class _Reach(_Enter):
    """An AccumulateGrad's pre-hook: what arrives is a gradient of the weights."""

    def __call__(self, grad_outputs: Any) -> None:
        self.mode.running = self.acc
        for g in grad_outputs:
            key = _storage_key(g)
            if key is not None and key in self.mode.serials:
                self.mode.to_weights.add(self.mode.serials[key])


def run_step(mode: TrainCounterMode, forward: Callable[[], Any], label: str) -> StepRecord:
    """Count one training step: ``forward()`` (under ``mode``), the loss, the backward."""
    with torch.enable_grad(), mode:
        with torch.autograd.graph.saved_tensors_hooks(mode.pack, _unpack):
            out = forward()
        outs = [t for t in tensors(out) if t.requires_grad and t.is_floating_point()]
        if not outs:
            raise UsageError(f"{label}: nothing to train: no output depends on a parameter "
                             "that requires a gradient")
        mode.label(outs)
        loss: Any = None
        try:
            loss = outs[0].sum()
            for t in outs[1:]:
                loss = loss + t.sum()
            mode.backward = True
            try:
                loss.backward()
            finally:
                mode.running = None
            mode.classify()
            end = mode.live
        finally:
            del out, outs, loss
            mode.release()
    return StepRecord(mode.peak, end, mode.saved_bytes)


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t

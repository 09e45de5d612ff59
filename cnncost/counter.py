"""Counting engine: runs a model on the meta device and attributes every ATen op to a layer.

Compiled specs are walked node by node (an fx Interpreter), so residual adds and concats
get rows of their own. Any other ``nn.Module`` is run with forward hooks that tell which
module issued each op; its weights are replaced by meta tensors for the run
(``torch.func.functional_call``), so nothing is copied and no real activation is allocated.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from cnncost.builder import META_KEY, build_module
from cnncost.errors import UnsupportedOpError, UsageError
from cnncost.formulas import FORMULAS, ZERO_COST_OPS, policy_flops
from cnncost.spec import LayerSpec, ModelSpec
from cnncost.table import CostRow, CostTable, Totals, sum_rows


class Policy(str, Enum):
    """Which ops count toward FLOPs."""

    ALL = "all"
    CONV_LINEAR = "conv+linear"


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from its name (float32, float16, bfloat16, float64)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = dtype.removeprefix("torch.")
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def conventions(policy: Policy, dtype: torch.dtype) -> tuple[str, ...]:
    """The counting conventions printed in every report's header."""
    size = torch.empty((), dtype=dtype, device="meta").element_size()
    flops = ("FLOPs = 2 x MACs (policy conv+linear: only conv/linear/matmul count)"
             if policy is Policy.CONV_LINEAR else
             "FLOPs = 2 x MACs + bias adds + per-element costs of norm, activation, pooling "
             "and elementwise ops (policy all; costs in cnncost.formulas)")
    return (
        "1 MAC = 1 multiply + 1 add; MACs come from conv, linear and matrix products only",
        flops,
        "conv MACs = N x C_out x H_out x W_out x (C_in/groups) x K_h x K_w; transposed conv "
        "counts per input element; dilation changes the receptive field, not MACs",
        "params = trainable parameters; buffers (e.g. BN running stats) are counted apart",
        f"memory at {dtype_name(dtype)} ({size} bytes/element); activation_bytes = sum of "
        "every layer's output; peak = input + parameters + live activations in execution "
        "order (inference)",
        "training memory = parameters + gradients + optimizer state + saved activations "
        "(estimate)",
    )


# --------------------------------------------------------------------------- the dispatch mode


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else x


@dataclass
class _Acc:
    """Accumulates what one layer costs while its ops run."""

    name: str
    kind: str
    source: str = ""
    receptive_field: int | None = None
    macs: int = 0
    elem_flops: int = 0
    formulas: list[str] = field(default_factory=list)
    uncounted: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    input_shape: tuple[tuple[int, ...], ...] = ()
    output_shape: tuple[int, ...] = ()
    output_bytes: int = 0
    params: int = 0
    buffers: int = 0


class CostCounterMode(TorchDispatchMode):
    """Sees every ATen op, adds its formula's cost to the current layer, tracks live bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.acc: _Acc | None = None
        self.live = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        acc = self.acc
        if acc is not None:
            name = func._overloadpacket._qualified_op_name
            formula = FORMULAS.get(name)
            if formula is not None:
                cost = formula(*tree_map(_shape, args), **tree_map(_shape, kwargs),
                               out_shape=tree_map(_shape, out))
                acc.macs += cost.macs
                acc.elem_flops += cost.elem_flops
                if cost.formula:
                    acc.formulas.append(cost.formula)
            elif name not in ZERO_COST_OPS:
                acc.uncounted[name] += 1
        self._track(func, out)
        return out

    def _track(self, func: Any, out: Any) -> None:
        returns = func._schema.returns
        outs = out if isinstance(out, tuple | list) else (out,)
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor):
                continue
            # Views and in-place results alias an input: no new memory.
            if i < len(returns) and returns[i].alias_info is not None:
                continue
            nbytes = t.numel() * t.element_size()
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._release, nbytes)

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes


# --------------------------------------------------------------------------- compiled specs


class _SpecInterpreter(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, mode: CostCounterMode) -> None:
        super().__init__(gm)
        self.mode = mode
        self.accs: list[_Acc] = []

    def run_node(self, n: fx.Node) -> Any:
        layer: LayerSpec | None = n.meta.get(META_KEY)
        if layer is None:
            return super().run_node(n)
        acc = _Acc(layer.path, layer.kind, f"{layer.loc.file}:{layer.loc.line}",
                   layer.receptive_field, calls=1)
        args, _ = tree_flatten(self.fetch_args_kwargs_from_env(n))
        acc.input_shape = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
        if n.op == "call_module":
            module = self.module.get_submodule(str(n.target))
            acc.params = sum(p.numel() for p in module.parameters())
            acc.buffers = sum(b.numel() for b in module.buffers())
        self.mode.acc = acc
        try:
            out = super().run_node(n)
        finally:
            self.mode.acc = None
        _set_output(acc, out)
        self.accs.append(acc)
        return out


def _set_output(acc: _Acc, out: Any) -> None:
    tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    if tensors:
        acc.output_shape = tuple(tensors[0].shape)
        acc.output_bytes = sum(t.numel() * t.element_size() for t in tensors)


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None) -> CostTable:
    """Count a resolved spec on the meta device, one row per graph node."""
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    _check_batch(batch)
    gm = build_module(spec, device="meta", dtype=dt)
    x = torch.empty((batch, *spec.input_shape), dtype=dt, device="meta")
    mode = CostCounterMode()
    interp = _SpecInterpreter(gm, mode)
    with torch.no_grad(), mode:
        interp.run(x)
    return _table(spec.name, source or spec.file, spec.description, gm, x, interp.accs, mode,
                  pol, dt, strict)


# --------------------------------------------------------------------------- any nn.Module


def count_module(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1,
                 dtype: str | torch.dtype = "float32", policy: Policy | str = Policy.ALL,
                 strict: bool = False, name: str | None = None,
                 source: str = "") -> CostTable:
    """Count any nn.Module on the meta device without copying its weights."""
    if isinstance(model, fx.GraphModule) and any(
            META_KEY in n.meta for n in model.graph.nodes):
        return _count_graph(model, input_shape, batch, dtype, policy, strict, name, source)
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    _check_batch(batch)
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    accs: dict[str, _Acc] = {}
    mode = CostCounterMode()
    stack: list[_Acc] = []

    def acc_for(module: nn.Module) -> _Acc:
        mname = names.get(id(module), type(module).__name__)
        if mname not in accs:
            accs[mname] = _Acc(mname or "(model)", type(module).__name__)
        return accs[mname]

    def pre(module: nn.Module, args: Any) -> None:
        acc = acc_for(module)
        acc.calls += 1
        if not acc.input_shape:
            acc.input_shape = tuple(tuple(a.shape) for a in tree_flatten(args)[0]
                                    if isinstance(a, torch.Tensor))
        stack.append(acc)
        mode.acc = acc

    def post(module: nn.Module, args: Any, out: Any) -> None:
        acc = stack.pop()
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not acc.output_shape and tensors:
            acc.output_shape = tuple(tensors[0].shape)
        acc.output_bytes += sum(t.numel() * t.element_size() for t in tensors)
        mode.acc = stack[-1] if stack else None

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    state = {k: _meta_like(v, dt) for k, v in
             [*model.named_parameters(remove_duplicate=False),
              *model.named_buffers(remove_duplicate=False)]}
    x = torch.empty((batch, *input_shape), dtype=dt, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mode:
            torch.func.functional_call(model, state, (x,), strict=False)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # Rows: modules that ran ops themselves (leaves, and containers with functional ops),
    # plus modules owning parameters that never ran, so rows always sum to the totals.
    leaf_ids = {id(m) for m in model.modules() if not list(m.children())}
    rows: list[_Acc] = []
    seen_params: set[int] = set()
    modules = dict(model.named_modules())
    for mname, acc in accs.items():
        module = modules.get(mname, model)
        own_p = _own(module.parameters(recurse=False), seen_params)
        own_b = sum(b.numel() for b in module.buffers(recurse=False))
        has_ops = acc.macs or acc.elem_flops or acc.uncounted or acc.formulas
        if id(module) in leaf_ids or has_ops or own_p or own_b:
            acc.params, acc.buffers = own_p, own_b
            if id(module) not in leaf_ids:
                # A container's output is its last child's: counted there already.
                acc.kind += " (own ops)"
                acc.output_bytes = 0
            rows.append(acc)
    for mname, module in modules.items():
        if mname in accs:
            continue
        own_p = _own(module.parameters(recurse=False), seen_params)
        own_b = sum(b.numel() for b in module.buffers(recurse=False))
        if own_p or own_b:
            rows.append(_Acc(mname, type(module).__name__ + " (not called)", params=own_p,
                             buffers=own_b))
    label = name or type(model).__name__
    return _table(label, source or label, "", model, x, rows, mode, pol, dt, strict)


def _count_graph(gm: fx.GraphModule, input_shape: tuple[int, ...], batch: int,
                 dtype: str | torch.dtype, policy: Policy | str, strict: bool,
                 name: str | None, source: str) -> CostTable:
    dt = parse_dtype(dtype)
    _check_batch(batch)
    state = {k: _meta_like(v, dt) for k, v in [*gm.named_parameters(), *gm.named_buffers()]}
    x = torch.empty((batch, *input_shape), dtype=dt, device="meta")
    mode = CostCounterMode()
    with _swapped(gm, state):
        interp = _SpecInterpreter(gm, mode)
        with torch.no_grad(), mode:
            interp.run(x)
        label = name or type(gm).__name__
        return _table(label, source or label, "", gm, x, interp.accs, mode, Policy(policy), dt,
                      strict)


@contextmanager
def _swapped(module: nn.Module, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily replace parameters and buffers by meta tensors (no copy of the weights)."""
    from torch.nn.utils import stateless

    with stateless._reparametrize_module(module, dict(state)):
        yield


def _meta_like(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    dt = dtype if t.is_floating_point() else t.dtype
    return torch.empty(t.shape, dtype=dt, device="meta")


def _own(params: Iterator[nn.Parameter], seen: set[int]) -> int:
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1 << 20:
        raise UsageError(f"batch={batch!r} must be a whole number from 1 to {1 << 20}")


# --------------------------------------------------------------------------- the table


def _table(model_name: str, source: str, description: str, model: nn.Module, x: torch.Tensor,
           accs: list[_Acc], mode: CostCounterMode, policy: Policy, dtype: torch.dtype,
           strict: bool) -> CostTable:
    rows = tuple(
        CostRow(
            name=a.name,
            kind=a.kind,
            input_shape=a.input_shape,
            output_shape=a.output_shape,
            params=a.params,
            buffers=a.buffers,
            macs=a.macs,
            flops=policy_flops(a.macs, a.elem_flops, policy.value),
            output_bytes=a.output_bytes,
            receptive_field=a.receptive_field,
            formula=" + ".join(a.formulas),
            uncounted=dict(a.uncounted),
            calls=max(a.calls, 1),
            source=a.source,
        )
        for a in accs
    )
    uncounted: Counter[str] = Counter()
    for a in accs:
        uncounted.update(a.uncounted)
    if strict and uncounted:
        ops = ", ".join(f"{op} ({n}x)" for op, n in sorted(uncounted.items()))
        raise UnsupportedOpError(f"ops without a counting formula: {ops}")
    sums = sum_rows(rows)
    elem = x.element_size()
    param_bytes = sum(p.numel() * (elem if p.is_floating_point() else p.element_size())
                      for p in model.parameters())
    buffer_bytes = sum(b.numel() * (elem if b.is_floating_point() else b.element_size())
                       for b in model.buffers())
    input_bytes = x.numel() * elem
    saved = sums["output_bytes"] + input_bytes
    totals = Totals(
        params=sums["params"],
        buffers=sums["buffers"],
        macs=sums["macs"],
        flops=sums["flops"],
        activation_bytes=sums["output_bytes"],
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        input_bytes=input_bytes,
        peak_activation_bytes=mode.peak,
        peak_memory_bytes=param_bytes + buffer_bytes + input_bytes + mode.peak,
        training_memory_bytes={
            "sgd": 2 * param_bytes + buffer_bytes + saved,
            "sgd_momentum": 3 * param_bytes + buffer_bytes + saved,
            "adam": 4 * param_bytes + buffer_bytes + saved,
        },
    )
    return CostTable(
        model=model_name,
        source=source,
        input=tuple(x.shape),
        dtype=dtype_name(dtype),
        policy=policy.value,
        conventions=conventions(policy, dtype),
        layers=rows,
        totals=totals,
        uncounted=dict(uncounted),
        description=description,
    )

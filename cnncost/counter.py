"""Counting engine: runs a model on the meta device and attributes every ATen op to a layer.

Compiled specs are walked node by node, so residual adds and concats get rows of their
own. Any other ``nn.Module`` is run with forward hooks that tell which module issued each
op; its weights are replaced by meta tensors for the run (reparametrized, as
``torch.func.functional_call`` does), so nothing is copied and no real activation is
allocated. ``device="cpu"`` runs the same count on real tensors (the oracle for tests).
"""

from __future__ import annotations

import functools
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from cnncost.builder import META_KEY, build_module
from cnncost.errors import UnsupportedOpError, UsageError
from cnncost.formulas import FORMULAS, ZERO_COST_OPS, Formula, OpCost, policy_flops
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
    # Bytes of new (non-aliasing) tensors its own ops created: a container's row uses this.
    op_bytes: int = 0
    params: int = 0
    buffers: int = 0
    # Position in execution order: the index of its first op (or of its first call).
    order: int = -1


@dataclass(frozen=True)
class _OpInfo:
    """What the counter needs to know about one ATen overload, computed once."""

    name: str
    formula: Formula | None
    zero_cost: bool
    aliases: tuple[bool, ...]  # per return: does it alias an input (view / in-place)?
    fresh: bool  # no return aliases an input: the output is a new tensor
    inplace: bool  # elementwise in-place op returning its first argument (relu_, add_)


_OP_INFO: dict[Any, _OpInfo] = {}


def _op_info(func: Any) -> _OpInfo:
    info = _OP_INFO.get(func)
    if info is None:
        name = func._overloadpacket._qualified_op_name
        schema = func._schema
        aliases = tuple(r.alias_info is not None for r in schema.returns)
        first = schema.arguments[0].alias_info if schema.arguments else None
        inplace = (name in FORMULAS and name.endswith("_") and len(aliases) == 1
                   and aliases[0] and first is not None and first.is_write)
        info = _OpInfo(name, FORMULAS.get(name), name in ZERO_COST_OPS, aliases,
                       not any(aliases), inplace)
        _OP_INFO[func] = info
    return info


# Meta kernels are pure functions of shapes, strides, dtypes and the other arguments, but
# some are slow Python decompositions (batch norm, hardtanh_: ~2 ms a call). The counter
# therefore remembers, per op and argument metadata, the output's metadata and its cost;
# a repeated block is then counted without running the kernel again.
_MAX_CACHE = 100_000
_CACHE: dict[Any, tuple[Any, OpCost | None]] = {}
_VALID_INPLACE: dict[Any, OpCost | None] = {}
_LEAF_TYPES = (bool, int, float, str, torch.dtype, torch.device, torch.memory_format,
               torch.layout)


class _NoKey(Exception):
    """The arguments cannot be cached (a non-meta tensor, or an unhashable value)."""


def _key(x: Any) -> Any:
    # Hot path: written for speed (type() checks first, int lists kept as they are).
    tx = type(x)
    if tx is list or tx is tuple:
        if all(type(v) is int for v in x):
            return (tx, tuple(x))
        return (tx, *map(_key, x))
    if tx is int or tx is float or tx is bool:
        return (tx, x)
    if isinstance(x, torch.Tensor):
        if not x.is_meta:
            raise _NoKey
        return (x.dtype, x.shape, x.stride(), x.storage_offset())
    if x is None:
        return None
    if isinstance(x, _LEAF_TYPES):
        return (tx, x)
    raise _NoKey


class _T:
    """A tensor's metadata in a cached output."""

    __slots__ = ("dtype", "shape", "stride")

    def __init__(self, t: torch.Tensor) -> None:
        if t.storage_offset() != 0:
            raise _NoKey
        self.shape, self.stride, self.dtype = t.shape, t.stride(), t.dtype


def _template(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return _T(out)
    if isinstance(out, list | tuple):
        return type(out)(_template(o) for o in out)
    if out is None or isinstance(out, _LEAF_TYPES):
        return out
    raise _NoKey


def _instantiate(tmpl: Any) -> Any:
    if isinstance(tmpl, _T):
        return torch.empty_strided(tmpl.shape, tmpl.stride, dtype=tmpl.dtype, device="meta")
    if isinstance(tmpl, list | tuple):
        return type(tmpl)(_instantiate(o) for o in tmpl)
    return tmpl


def _batch_norm_meta(x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
                     training: Any, *rest: Any) -> Any:
    """native_batch_norm on meta, as the CPU kernel shapes it (eval: empty saved stats)."""
    c = x.shape[1] if x.dim() > 1 else 0
    ok = all(t is None or (isinstance(t, torch.Tensor) and t.shape == (c,))
             for t in (weight, bias, running_mean, running_var))
    if not ok or x.dim() < 2:
        return None  # let the real meta kernel raise its error
    saved = c if training else 0
    return (torch.empty_like(x), x.new_empty((saved,)), x.new_empty((saved,)))


_FAST_META: dict[Any, Callable[..., Any]] = {
    torch.ops.aten.native_batch_norm.default: _batch_norm_meta,
}


class CostCounterMode(TorchDispatchMode):
    """Sees every ATen op, adds its formula's cost to the current layer, tracks live bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.acc: _Acc | None = None
        self.live = 0
        self.peak = 0
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        info = _op_info(func)
        cost: OpCost | None = None
        key = None
        if info.fresh or info.inplace:
            try:
                key = (func, _key(args), _key(tuple(kwargs.items())) if kwargs else None)
            except _NoKey:
                key = None
        if key is not None and info.inplace and key in _VALID_INPLACE:
            out = args[0]  # on meta an elementwise in-place op only checks its arguments
            cost = _VALID_INPLACE[key]
        elif key is not None and info.fresh and key in _CACHE:
            tmpl, cost = _CACHE[key]
            out = _instantiate(tmpl)
        else:
            fast = _FAST_META.get(func) if key is not None else None
            out = fast(*args, **kwargs) if fast is not None else None
            if out is None:
                out = func(*args, **kwargs)
            if info.formula is not None:
                cost = self._cost(info, args, kwargs, out)
            if key is not None and len(_CACHE) < _MAX_CACHE:
                if info.inplace:
                    _VALID_INPLACE[key] = cost
                else:
                    with suppress(_NoKey):
                        _CACHE[key] = (_template(out), cost)
        acc = self.acc
        self.ops += 1
        if acc is not None:
            if acc.order < 0:
                acc.order = self.ops
            if cost is not None:
                acc.macs += cost.macs
                acc.elem_flops += cost.elem_flops
                if cost.formula:
                    acc.formulas.append(cost.formula)
            elif info.formula is not None or not info.zero_cost:
                acc.uncounted[info.name] += 1
        self._track(info, out, acc)
        return out

    @staticmethod
    def _cost(info: _OpInfo, args: Any, kwargs: Any, out: Any) -> OpCost | None:
        assert info.formula is not None
        try:
            return info.formula(*tree_map(_shape, args), **tree_map(_shape, kwargs),
                                out_shape=tree_map(_shape, out))
        except (TypeError, ValueError, IndexError):
            return None  # an unexpected call form: listed as uncounted, never zero

    def _track(self, info: _OpInfo, out: Any, acc: _Acc | None) -> None:
        outs = out if isinstance(out, tuple | list) else (out,)
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor):
                continue
            # Views and in-place results alias an input: no new memory.
            if i < len(info.aliases) and info.aliases[i]:
                continue
            nbytes = t.numel() * t.element_size()
            self.live += nbytes
            if self.live > self.peak:
                self.peak = self.live
            if acc is not None:
                acc.op_bytes += nbytes
            weakref.finalize(t, self._release, nbytes)

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _input_tensor(shape: tuple[int, ...], dtype: torch.dtype, device: str) -> torch.Tensor:
    if device == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    gen = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=gen, dtype=dtype)


def _check_device(device: str | torch.device) -> str:
    dev = str(device)
    if dev not in ("meta", "cpu"):
        raise UsageError(f"device={dev!r}: counting runs on 'meta' (default) or 'cpu'")
    return dev


# --------------------------------------------------------------------------- compiled specs


def _run_graph(gm: fx.GraphModule, x: torch.Tensor, mode: CostCounterMode) -> list[_Acc]:
    """Run a spec's graph node by node, one row per layer; values die after their last use."""
    nodes = list(gm.graph.nodes)
    last_use: dict[fx.Node, fx.Node] = {}
    for n in reversed(nodes):
        for inp in n.all_input_nodes:
            last_use.setdefault(inp, n)
    dying: dict[fx.Node, list[fx.Node]] = {}
    for value, user in last_use.items():
        dying.setdefault(user, []).append(value)
    modules = dict(gm.named_modules())
    env: dict[fx.Node, Any] = {}
    accs: list[_Acc] = []
    for n in nodes:
        if n.op == "placeholder":
            env[n] = x
            continue
        if n.op == "output":
            break
        args = fx.node.map_arg(n.args, env.__getitem__)
        kwargs = fx.node.map_arg(n.kwargs, env.__getitem__)
        layer: LayerSpec | None = n.meta.get(META_KEY)
        acc = None
        if layer is not None:
            acc = _Acc(layer.path, layer.kind, f"{layer.loc.file}:{layer.loc.line}",
                       layer.receptive_field, calls=1)
            acc.input_shape = tuple(tuple(a.shape) for a in _tensors((args, kwargs)))
        if n.op == "call_module":
            module = modules[str(n.target)]
            if acc is not None:
                acc.params = sum(p.numel() for p in module.parameters())
                acc.buffers = sum(b.numel() for b in module.buffers())
            call: Callable[..., Any] = module
        elif n.op == "call_function":
            call = n.target
        elif n.op == "call_method":
            call = getattr(args[0], str(n.target))
            args = args[1:]
        else:  # get_attr
            call = functools.partial(_fetch_attr, gm, str(n.target))
        mode.acc = acc
        try:
            out = call(*args, **kwargs)
        finally:
            mode.acc = None
        del args, kwargs
        if acc is not None:
            tensors = _tensors(out)
            if tensors:
                acc.output_shape = tuple(tensors[0].shape)
                acc.output_bytes = sum(t.numel() * t.element_size() for t in tensors)
            accs.append(acc)
        env[n] = out
        del out
        for value in dying.get(n, ()):
            del env[value]
    return accs


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None, device: str = "meta") -> CostTable:
    """Count a resolved spec, one row per graph node (``device="cpu"`` runs real tensors)."""
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    dev = _check_device(device)
    _check_batch(batch)
    gm = build_module(spec, device=dev, dtype=dt)
    x = _input_tensor((batch, *spec.input_shape), dt, dev)
    mode = CostCounterMode()
    with torch.no_grad(), mode:
        accs = _run_graph(gm, x, mode)
    return _table(spec.name, source or spec.file, spec.description, gm, x, accs, mode,
                  pol, dt, strict)


# --------------------------------------------------------------------------- any nn.Module


def count_module(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1,
                 dtype: str | torch.dtype = "float32", policy: Policy | str = Policy.ALL,
                 strict: bool = False, name: str | None = None,
                 source: str = "", device: str = "meta") -> CostTable:
    """Count any nn.Module without copying its weights (on meta; ``device="cpu"``: for real).

    One row per module that ran ops or owns parameters: leaf modules, containers whose
    forward has functional ops of its own (``x + self.conv(x)``: kind ``... (own ops)``),
    and modules with parameters that were never called (``(not called)``). A module
    called twice is one row with ``calls=2``.
    """
    dev = _check_device(device)
    if isinstance(model, fx.GraphModule) and any(
            META_KEY in n.meta for n in model.graph.nodes):
        return _count_graph(model, input_shape, batch, dtype, policy, strict, name, source,
                            dev)
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    _check_batch(batch)
    modules = dict(model.named_modules())  # a shared module goes by its first name
    names = {id(m): n for n, m in modules.items()}
    leaf_ids = {id(m) for m in modules.values() if not m._modules}
    accs: dict[str, _Acc] = {}
    pre_order: dict[str, int] = {}
    mode = CostCounterMode()
    stack: list[_Acc] = []  # the rows of the module calls in progress, innermost last

    def pre(module: nn.Module, args: Any) -> None:
        mname = names.get(id(module), "")
        acc = accs.get(mname)
        if acc is None:
            acc = accs[mname] = _Acc(mname or "(model)", type(module).__name__)
        acc.calls += 1
        pre_order.setdefault(mname, mode.ops)
        if not acc.input_shape:
            acc.input_shape = tuple(tuple(a.shape) for a in _tensors(args))
        stack.append(acc)
        mode.acc = acc

    def post(module: nn.Module, args: Any, out: Any) -> None:
        acc = stack.pop()
        tensors = _tensors(out)
        if not acc.output_shape and tensors:
            acc.output_shape = tuple(tensors[0].shape)
        if id(module) in leaf_ids:
            acc.output_bytes += sum(t.numel() * t.element_size() for t in tensors)
        mode.acc = stack[-1] if stack else None

    handles = []
    for m in modules.values():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    x = _input_tensor((batch, *input_shape), dt, dev)
    flags = {m: m.training for m in modules.values()}
    model.eval()
    try:
        if dev == "meta":
            state = {k: _meta_like(v, dt) for k, v in
                     [*model.named_parameters(remove_duplicate=False),
                      *model.named_buffers(remove_duplicate=False)]}
            with _swapped(model, state), torch.no_grad(), mode:
                model(x)
            del state
        else:
            with torch.no_grad(), mode:
                model(x)
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.training = flag
    # Rows: modules that ran ops themselves (leaves, and containers with functional ops),
    # plus modules owning parameters that never ran, so rows always sum to the totals.
    rows: list[_Acc] = []
    seen_params: set[int] = set()
    names_by_acc = {id(a): n for n, a in accs.items()}
    for mname, acc in accs.items():
        module = modules[mname]
        own_p = _own(module.parameters(recurse=False), seen_params)
        own_b = sum(b.numel() for b in module.buffers(recurse=False))
        has_ops = acc.macs or acc.elem_flops or acc.uncounted or acc.formulas or acc.op_bytes
        if id(module) in leaf_ids or has_ops or own_p or own_b:
            acc.params, acc.buffers = own_p, own_b
            if id(module) not in leaf_ids:
                # A container's row holds its own functional ops (e.g. a residual add):
                # their new tensors are its output bytes; its children have rows of their own.
                acc.kind += " (own ops)"
                acc.output_bytes = acc.op_bytes
            rows.append(acc)
    # Execution order: where each row's first op ran (a residual add after its branch).
    rows.sort(key=lambda a: a.order if a.order >= 0 else pre_order[names_by_acc[id(a)]])
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
                 name: str | None, source: str, device: str) -> CostTable:
    dt = parse_dtype(dtype)
    _check_batch(batch)
    x = _input_tensor((batch, *input_shape), dt, device)
    mode = CostCounterMode()
    label = name or type(gm).__name__
    if device != "meta":
        with torch.no_grad(), mode:
            accs = _run_graph(gm, x, mode)
        return _table(label, source or label, "", gm, x, accs, mode, Policy(policy), dt,
                      strict)
    state = {k: _meta_like(v, dt) for k, v in [*gm.named_parameters(), *gm.named_buffers()]}
    with _swapped(gm, state):
        with torch.no_grad(), mode:
            accs = _run_graph(gm, x, mode)
        return _table(label, source or label, "", gm, x, accs, mode, Policy(policy), dt,
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

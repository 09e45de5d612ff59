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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from cnncost.count.formulas import (
    FORMULAS,
    PER_ELEMENT,
    ZERO_COST_OPS,
    Formula,
    OpCost,
    policy_flops,
)
from cnncost.errors import CnnCostError, ModelRunError, UnsupportedOpError, UsageError
from cnncost.graph.build import META_KEY, fetch_attr, op_args, op_target
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
        "every layer's output; peak = input + parameters + buffers + live activations in "
        "execution order (inference)",
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
    elementwise: bool  # listed in PER_ELEMENT: output shaped like its first input


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
                       not any(aliases), inplace, name.removeprefix("aten::") in PER_ELEMENT)
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
        if not t.is_meta or t.storage_offset() != 0:
            raise _NoKey  # only meta results are remembered (e.g. not torch.empty on cpu)
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


# --------------------------------------------------------------------------- meta shortcuts
# For the common CNN ops, the output's metadata is computed here instead of by PyTorch's
# meta kernel. Many of those kernels are Python (batch norm, conv, pooling, add, relu); the
# first call of any of them imports sympy and torch._dynamo (seconds), and each call costs
# 0.1-2 ms. Every shortcut handles the plain cases only and returns None for anything
# else, so unusual calls (and every error) still go to PyTorch. tests/test_counter.py
# checks each shortcut against the CPU kernel.


def _empty_like(x: torch.Tensor) -> torch.Tensor | None:
    """torch.empty_like for the dense layouts (whose meta kernel is a Python reference)."""
    if x.is_contiguous():
        return x.new_empty(x.shape)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.empty(x.shape, dtype=x.dtype, device=x.device,
                           memory_format=torch.channels_last)
    return None


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The broadcast shape of two shapes, or None (torch.broadcast_shapes imports sympy)."""
    n = max(len(a), len(b))
    out = []
    for i, j in zip((1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b),
                    strict=True):
        if i == j or j == 1:
            out.append(i)
        elif i == 1:
            out.append(j)
        else:
            return None
    return tuple(out)


def _batch_norm_meta(x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
                     training: Any, *rest: Any) -> Any:
    """native_batch_norm on meta, as the CPU kernel shapes it (eval: empty saved stats)."""
    c = x.shape[1] if x.dim() > 1 else 0
    ok = all(t is None or (isinstance(t, torch.Tensor) and t.shape == (c,))
             for t in (weight, bias, running_mean, running_var))
    if not ok or x.dim() < 2:
        return None  # let the real meta kernel raise its error
    saved = c if training else 0
    out = _empty_like(x)
    return None if out is None else (out, x.new_empty((saved,)), x.new_empty((saved,)))


def _elementwise_meta(info: _OpInfo, args: Any, kwargs: Any) -> Any:
    """An elementwise op on floating meta tensors of one dtype (a residual add, an SE
    gate, an activation): its output's metadata, without the meta kernel.

    Many of these kernels are Python references (add, mul, silu, hardswish) whose first call
    imports torch._dynamo (seconds); this keeps a plain count from ever needing it. The
    output takes the broadcast shape and the layout of the input of that shape; in place
    it is the input itself. Anything else goes to the real kernel (and its errors).
    """
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    others = [a for a in (*args[1:], *kwargs.values())
              if isinstance(a, torch.Tensor | list | tuple)]
    if not others:
        return x if info.inplace else _empty_like(x)
    y = others[0]
    if (len(others) > 1 or len(args) < 2 or args[1] is not y
            or not isinstance(y, torch.Tensor) or y.dtype != x.dtype):
        return None
    shape = _broadcast(x.shape, y.shape)
    if shape is None:
        return None
    if info.inplace:
        return x if shape == x.shape else None
    if shape == x.shape:
        return _empty_like(x)
    if shape == y.shape:
        return _empty_like(y)
    return x.new_empty(shape)


def _matmul_meta(*args: Any, **kwargs: Any) -> Any:
    """mm / addmm / bmm on meta: a new contiguous (B x) M x N tensor (a Python meta kernel
    otherwise). Anything unusual goes to the real kernel, which raises its own errors."""
    if len(args) == 2:
        a, b = args
    elif len(args) == 3 and isinstance(args[0], torch.Tensor):
        a, b = args[1], args[2]  # addmm(bias, a, b): bias broadcast-checked by shape only
        out_shape = (a.shape[0], b.shape[1]) if a.dim() == 2 and b.dim() == 2 else None
        if out_shape is None or _broadcast(args[0].shape, out_shape) != out_shape:
            return None
    else:
        return None
    if (a.dtype != b.dtype or not a.is_floating_point() or a.dim() != b.dim()
            or a.dim() not in (2, 3) or a.shape[-1] != b.shape[-2]
            or (a.dim() == 3 and a.shape[0] != b.shape[0])):
        return None
    return a.new_empty((*a.shape[:-1], b.shape[-1]))


def _cat_meta(tensors: Any, dim: int = 0) -> Any:
    """cat on meta (a Python reference kernel otherwise) for same-dtype, same-rank inputs."""
    if not isinstance(tensors, list | tuple) or not tensors:
        return None
    first = tensors[0]
    if not all(isinstance(t, torch.Tensor) for t in tensors) or not -first.dim() <= dim < (
            first.dim()):
        return None
    dim %= first.dim()
    shape = list(first.shape)
    for t in tensors[1:]:
        if t.dtype != first.dtype or t.dim() != first.dim() or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if i != dim):
            return None
        shape[dim] += t.shape[dim]
    fmt = (torch.channels_last if first.dim() == 4 and all(
        t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
        for t in tensors) else torch.contiguous_format)
    return first.new_empty(shape).contiguous(memory_format=fmt)


def _mean_meta(x: Any, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Any:
    """mean over dims on meta (global average pooling; a Python reference otherwise)."""
    if kwargs.get("dtype") is not None or not x.is_floating_point() or x.dim() == 0:
        return None
    dims = dim if dim else range(x.dim())
    try:
        reduced = {d % x.dim() for d in dims if -x.dim() <= d < x.dim()}
    except TypeError:
        return None
    if len(reduced) != len(list(dims)):
        return None  # out of range or repeated: the real kernel raises the error
    shape = [1 if i in reduced else n for i, n in enumerate(x.shape)
             if keepdim or i not in reduced]
    return x.new_empty(shape)


def _per_dim(nd: int, *values: Any) -> list[list[int]] | None:
    """Each aten int-list argument as ``nd`` ints (one int repeats); None if malformed."""
    out = []
    for value in values:
        v = list(value) if isinstance(value, list | tuple) else [value]
        if len(v) == 1:
            v *= nd
        if len(v) != nd or not all(type(i) is int for i in v):
            return None
        out.append(v)
    return out


def _conv_meta(x: Any, w: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
               transposed: Any, output_padding: Any, groups: Any, *rest: Any) -> Any:
    """aten.convolution on meta for contiguous inputs (a Python meta kernel otherwise, whose
    first call imports sympy): the output shape by PyTorch's documented size formulas."""
    nd = x.dim() - 2
    if (nd not in (1, 2, 3) or w.dim() != nd + 2 or x.dtype != w.dtype
            or not x.is_floating_point() or not x.is_contiguous() or not w.is_contiguous()
            or not isinstance(groups, int) or groups < 1):
        return None
    params = _per_dim(nd, stride, padding, dilation, output_padding)
    if params is None:
        return None
    s, p, d, op = params
    k = w.shape[2:]
    if transposed:
        if x.shape[1] != w.shape[0] or w.shape[0] % groups:
            return None
        channels = w.shape[1] * groups
        sizes = [(i - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
                 for i, kk, ss, pp, dd, oo in zip(x.shape[2:], k, s, p, d, op, strict=True)]
    else:
        if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
            return None
        channels = w.shape[0]
        sizes = [(i + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                 for i, kk, ss, pp, dd in zip(x.shape[2:], k, s, p, d, strict=True)]
    if min(sizes) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0 or (
            bias is not None and tuple(bias.shape) != (channels,)):
        return None
    return x.new_empty((x.shape[0], channels, *sizes))


def _max_pool_meta(x: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                   dilation: Any = 1, ceil_mode: bool = False) -> Any:
    """max_pool*_with_indices on meta for contiguous inputs (a Python meta kernel otherwise):
    output and int64 indices sized by PyTorch's pooling_output_shape."""
    nd = x.dim() - 2
    if nd not in (1, 2, 3) or not x.is_floating_point() or not x.is_contiguous():
        return None
    params = _per_dim(nd, kernel_size, stride or kernel_size, padding, dilation)
    if params is None:
        return None
    sizes = []
    for size, k, s, p, d in zip(x.shape[2:], *params, strict=True):
        if k < 1 or s < 1 or d < 1 or p < 0 or p > k // 2:
            return None
        out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        if out < 1:
            return None
        sizes.append(out)
    shape = (*x.shape[:2], *sizes)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)


def _avg_pool_meta(x: Any, kernel_size: Any, stride: Any = (), padding: Any = 0,
                   ceil_mode: bool = False, *rest: Any) -> Any:
    """avg_pool*d on meta: sized like max pooling without dilation, no indices."""
    out = _max_pool_meta(x, kernel_size, stride, padding, 1, ceil_mode)
    return None if out is None else out[0]


def _channel_shuffle_meta(x: Any, groups: Any) -> Any:
    """channel_shuffle on meta: a permutation of the channels, shaped like its input."""
    if x.dim() < 3 or type(groups) is not int or groups < 1 or x.shape[1] % groups:
        return None
    return _empty_like(x)


def _adaptive_pool_meta(x: Any, output_size: Any) -> Any:
    """_adaptive_avg_pool2d/3d on meta for contiguous inputs (a Python meta kernel)."""
    nd = x.dim() - 2
    sizes = list(output_size) if isinstance(output_size, list | tuple) else [output_size]
    if (nd not in (2, 3) or len(sizes) != nd or not all(type(v) is int and v > 0 for v in sizes)
            or not x.is_floating_point() or not x.is_contiguous() or 0 in x.shape):
        return None
    return x.new_empty((*x.shape[:2], *sizes))


_FAST_META: dict[Any, Callable[..., Any]] = {
    torch.ops.aten.avg_pool1d.default: _avg_pool_meta,
    torch.ops.aten.avg_pool2d.default: _avg_pool_meta,
    torch.ops.aten.avg_pool3d.default: _avg_pool_meta,
    torch.ops.aten.native_channel_shuffle.default: _channel_shuffle_meta,
    torch.ops.aten.channel_shuffle.default: _channel_shuffle_meta,
    torch.ops.aten._adaptive_avg_pool2d.default: _adaptive_pool_meta,
    torch.ops.aten._adaptive_avg_pool3d.default: _adaptive_pool_meta,
    torch.ops.aten.max_pool1d_with_indices.default: _max_pool_meta,
    torch.ops.aten.max_pool2d_with_indices.default: _max_pool_meta,
    torch.ops.aten.max_pool3d_with_indices.default: _max_pool_meta,
    torch.ops.aten.convolution.default: _conv_meta,
    torch.ops.aten.mean.dim: _mean_meta,
    torch.ops.aten.cat.default: _cat_meta,
    torch.ops.aten.native_batch_norm.default: _batch_norm_meta,
    torch.ops.aten.mm.default: _matmul_meta,
    torch.ops.aten.addmm.default: _matmul_meta,
    torch.ops.aten.bmm.default: _matmul_meta,
}


class CostCounterMode(TorchDispatchMode):
    """Sees every ATen op, adds its formula's cost to the current layer, tracks live bytes."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # TorchDispatchMode wraps __torch_dispatch__ in torch._dynamo.disable by default:
        # that imports torch._dynamo on the first op (seconds) and adds a wrapper to every
        # op. Counting never compiles anything, so the wrapper buys nothing here.
        return False

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
            out = None
            if key is not None:  # meta arguments: try a shortcut to the output's metadata
                fast = _FAST_META.get(func)
                if fast is not None:
                    out = fast(*args, **kwargs)
                elif info.elementwise:
                    out = _elementwise_meta(info, args, kwargs)
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


@dataclass(frozen=True)
class _Step:
    """One call of a spec layer or graph node, with the keys of the values it reads."""

    key: Any
    inputs: tuple[Any, ...]
    call: Callable[..., Any]
    layer: LayerSpec | None = None
    params: int = 0
    buffers: int = 0


def _execute(steps: Sequence[_Step], env: dict[Any, Any], output: Any,
             mode: CostCounterMode) -> list[_Acc]:
    """Run the steps in order, one row per spec layer; a value dies after its last use,
    as in a GraphModule's generated code, so the mode's liveness peak is the real one."""
    last_use: dict[Any, int] = {}
    for i, step in enumerate(steps):
        for key in step.inputs:
            last_use[key] = i
    last_use.pop(output, None)  # the result stays alive: it is returned
    dying: dict[int, list[Any]] = {}
    for key, i in last_use.items():
        dying.setdefault(i, []).append(key)
    accs: list[_Acc] = []
    for i, step in enumerate(steps):
        args = [env[key] for key in step.inputs]
        acc = None
        layer = step.layer
        if layer is not None:
            acc = _Acc(layer.path, layer.kind, f"{layer.loc.file}:{layer.loc.line}",
                       layer.receptive_field, calls=1, params=step.params,
                       buffers=step.buffers,
                       input_shape=tuple(tuple(a.shape) for a in _tensors(args)))
        mode.acc = acc
        try:
            out = step.call(*args)
        finally:
            mode.acc = None
        del args
        if acc is not None:
            tensors = [out] if isinstance(out, torch.Tensor) else _tensors(out)
            if tensors:
                acc.output_shape = tuple(tensors[0].shape)
                acc.output_bytes = sum(t.numel() * t.element_size() for t in tensors)
            del tensors
            accs.append(acc)
        env[step.key] = out
        del out
        for key in dying.get(i, ()):
            del env[key]
    return accs


def _run_graph(gm: fx.GraphModule, x: torch.Tensor, mode: CostCounterMode) -> list[_Acc]:
    """Run a compiled spec's graph node by node, one row per spec layer."""
    modules = dict(gm.named_modules())
    env: dict[Any, Any] = {}
    steps: list[_Step] = []
    output: Any = None
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            env[n] = x
            continue
        if n.op == "output":
            output = n.args[0]
            break
        inputs: list[fx.Node] = []
        fx.node.map_arg((n.args, n.kwargs), inputs.append)
        layer: LayerSpec | None = n.meta.get(META_KEY)
        params = buffers = 0
        if n.op == "call_module":
            module = modules[str(n.target)]
            target: Callable[..., Any] = module
            if layer is not None:
                params = sum(p.numel() for p in module.parameters())
                buffers = sum(b.numel() for b in module.buffers())
        elif n.op == "get_attr":
            target = functools.partial(fetch_attr, gm, str(n.target))
        else:
            target = n.target
        steps.append(_Step(n, tuple(inputs), functools.partial(_call_node, n, target, inputs),
                           layer, params, buffers))
    return _execute(steps, env, output, mode)


def _call_node(n: fx.Node, target: Callable[..., Any], inputs: list[fx.Node],
               *values: Any) -> Any:
    """Call a node's target with its argument structure filled in from ``values``."""
    lookup = dict(zip(inputs, values, strict=True))
    args = fx.node.map_arg(n.args, lookup.__getitem__)
    kwargs = fx.node.map_arg(n.kwargs, lookup.__getitem__)
    if n.op == "call_method":
        return getattr(args[0], str(n.target))(*args[1:], **kwargs)
    if n.op == "get_attr":
        return target()
    return target(*args, **kwargs)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _spec_modules(spec: ModelSpec, dtype: torch.dtype, device: str,
                  elem: int) -> dict[str, tuple[nn.Module, int, int, int, int]]:
    """Each layer's module with its (params, buffers, param bytes, buffer bytes).

    A layer's module depends only on its kind, fields and input shape, so identical layers
    (the blocks of a deep net) share one instance: building nn.Modules, not counting,
    dominated the time of deep specs. Built before counting starts, so their weights are
    never mistaken for activations.
    """
    built: dict[Any, tuple[nn.Module, int, int, int, int]] = {}
    by_path = {}
    for layer in spec.layers:
        if layer.built is None:
            continue
        key = (layer.kind, _freeze(layer.params), layer.in_shapes)
        entry = built.get(key)
        if entry is None:
            with torch.device(device):
                module = layer.built.make()
            if dtype != torch.get_default_dtype():
                module = module.to(dtype)
            module.eval()
            entry = (module, sum(p.numel() for p in module.parameters()),
                     sum(b.numel() for b in module.buffers()),
                     _nbytes(module.parameters(), elem), _nbytes(module.buffers(), elem))
            built[key] = entry
        by_path[layer.path] = entry
    return by_path


def _run_spec(spec: ModelSpec, x: torch.Tensor, mode: CostCounterMode,
              modules: Mapping[str, tuple[nn.Module, int, int, int, int]]) -> list[_Acc]:
    """Run a spec layer by layer, exactly as its compiled GraphModule would, without one."""
    steps = []
    for layer in spec.layers:
        entry = modules.get(layer.path)
        if entry is not None:
            steps.append(_Step(layer.path, layer.inputs, entry[0], layer, entry[1], entry[2]))
        else:
            target, kwargs = op_target(layer)
            steps.append(_Step(layer.path, layer.inputs,
                               functools.partial(_call_op, layer, target, kwargs), layer))
    return _execute(steps, {"input": x}, spec.output, mode)


def _call_op(layer: LayerSpec, target: Callable[..., Any], kwargs: Mapping[str, Any],
             *values: Any) -> Any:
    """Call a graph op (add, concat, mul, slice) of a spec on its input values."""
    return target(*op_args(layer, values), **kwargs)


def _nbytes(tensors: Iterator[torch.Tensor], elem: int) -> int:
    """Bytes of weights at the analysis dtype (floating point) or their own (integer)."""
    return sum(t.numel() * (elem if t.is_floating_point() else t.element_size())
               for t in tensors)


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None, device: str = "meta") -> CostTable:
    """Count a resolved spec, one row per graph node (``device="cpu"`` runs real tensors)."""
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    dev = _check_device(device)
    _check_batch(batch)
    x = _input_tensor((batch, *spec.input_shape), dt, dev)
    modules = _spec_modules(spec, dt, dev, x.element_size())
    weights = (sum(m[3] for m in modules.values()), sum(m[4] for m in modules.values()))
    mode = CostCounterMode()
    with torch.no_grad(), mode:
        accs = _run_spec(spec, x, mode, modules)
    return _table(spec.name, source or spec.file, spec.description, weights, x, accs, mode,
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
    if dev == "cpu" and any(p.dtype != dt for p in model.parameters() if p.is_floating_point()):
        raise UsageError(f"device='cpu' runs the module's own weights: convert it to "
                         f"{dtype_name(dt)} first, or count on 'meta'")
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
                _forward(model, x, stack, name or type(model).__name__)
            del state
        else:
            with torch.no_grad(), mode:
                _forward(model, x, stack, name or type(model).__name__)
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


def _forward(model: nn.Module, x: torch.Tensor, stack: list[_Acc], label: str) -> None:
    """Run the user's module; its own errors (wrong input shape, ...) become one line that
    names the module that failed."""
    try:
        model(x)
    except CnnCostError:
        raise
    except Exception as exc:
        where = f" in {stack[-1].name} ({stack[-1].kind})" if stack else ""
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelRunError(f"{label}: the model failed on an input of shape "
                            f"{'x'.join(map(str, x.shape))}{where}: {type(exc).__name__}: "
                            f"{first}") from exc


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


def _table(model_name: str, source: str, description: str,
           weights: nn.Module | tuple[int, int], x: torch.Tensor, accs: list[_Acc],
           mode: CostCounterMode, policy: Policy, dtype: torch.dtype,
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
    if isinstance(weights, nn.Module):
        param_bytes = _nbytes(weights.parameters(), elem)
        buffer_bytes = _nbytes(weights.buffers(), elem)
    else:
        param_bytes, buffer_bytes = weights
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

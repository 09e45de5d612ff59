"""The dispatch mode: sees every ATen op, charges its formula's cost to the current layer.

:class:`CostCounterMode` looks each op up in the formula table, adds its cost to the
layer whose call is in progress (an :class:`Acc`), lists ops without a formula, and
tracks the bytes of live tensors (peak activation memory). Meta kernels are pure
functions of shapes, strides, dtypes and the other arguments, but some are slow Python
decompositions (batch norm, hardtanh_: ~2 ms a call), so the mode remembers, per op and
argument metadata, the output's metadata and its cost: a repeated block is then counted
without running the kernel again. Common ops skip PyTorch's meta kernels altogether
(cnncost.count.meta).
"""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from cnncost.caches import cache, gc_paused
from cnncost.count.formulas import (
    BROADCAST,
    FORMULAS,
    SHAPE_RULES,
    ZERO_COST_OPS,
    Formula,
    OpCost,
    apply_formula,
)
from cnncost.count.meta import FAST_META, elementwise_meta
from cnncost.errors import CnnCostError
from cnncost.table import Factors


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else x


@dataclass
class Acc:
    """Accumulates what one layer costs while its ops run."""

    name: str
    kind: str
    source: str = ""
    receptive_field: int | None = None
    receptive_field_axes: tuple[int, ...] | None = None  # per dim, where they differ
    macs: int = 0
    elem_flops: int = 0
    factors: list[Factors] = field(default_factory=list)  # of its ops' MACs
    uncounted: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    input_shape: tuple[tuple[int, ...], ...] = ()
    output_shape: tuple[int, ...] = ()
    output_bytes: int = 0
    # Bytes of new (non-aliasing) tensors its own ops created: a container's row uses this.
    op_bytes: int = 0
    params: int = 0  # trainable
    buffers: int = 0
    frozen: int = 0  # parameters with requires_grad=False
    # Position in execution order: the index of its first op (or of its first call).
    order: int = -1
    # Train mode (cnncost.count.train): its backward ops' cost, split by the gradient they
    # compute (of the layer's input, or of its weights), and the bytes autograd saved.
    grad_input_macs: int = 0
    grad_weight_macs: int = 0
    grad_input_flops: int = 0  # elementwise FLOPs (policy "all") beside the MACs
    grad_weight_flops: int = 0
    grad_factors: list[tuple[str, Factors]] = field(default_factory=list)  # ("input", f)
    saved_bytes: int = 0


@dataclass(frozen=True)
class _OpInfo:
    """What the counter needs to know about one ATen overload, computed once."""

    name: str
    formula: Formula | None
    zero_cost: bool
    aliases: tuple[bool, ...]  # per return: does it alias an input (view / in-place)?
    fresh: bool  # no return aliases an input: the output is a new tensor
    inplace: bool  # elementwise in-place op returning its first argument (relu_, add_)
    elementwise: bool  # declared shape rule BROADCAST: one output, broadcast inputs


_OP_INFO: dict[Any, _OpInfo] = cache("torch: op schemas")
# Views whose schema does not say so (an LSTM splits its gates with them): no new memory.
_UNSAFE_VIEWS = frozenset({"aten::unsafe_split", "aten::unsafe_split_with_sizes",
                           "aten::unsafe_chunk"})


def _op_info(func: Any) -> _OpInfo:
    info = _OP_INFO.get(func)
    if info is None:
        name = func._overloadpacket._qualified_op_name
        schema = func._schema
        aliases = tuple(r.alias_info is not None or name in _UNSAFE_VIEWS
                        for r in schema.returns)
        first = schema.arguments[0].alias_info if schema.arguments else None
        elementwise = SHAPE_RULES.get(name) is BROADCAST
        inplace = (elementwise and name.endswith("_") and len(aliases) == 1
                   and aliases[0] and first is not None and first.is_write)
        info = _OpInfo(name, FORMULAS.get(name),
                       name in ZERO_COST_OPS or _computes_nothing(func, schema), aliases,
                       not any(aliases), inplace, elementwise)
        _OP_INFO[func] = info
    return info


def _computes_nothing(func: Any, schema: Any) -> bool:
    """Ops zero-cost by their schema, beyond the ones ZERO_COST_OPS names (an op with a
    formula is counted by it all the same):

    - views: every output aliases an input it does not write (``view_as_real``,
      ``diagonal``, ``unfold``), and the in-place views, which only rewrite an input's
      sizes and strides (``transpose_``, ``squeeze_``: ATen tags them ``inplace_view``);
    - factories: no tensor among the arguments, the values made from nothing (``arange``,
      ``linspace``, ``eye``, ``scalar_tensor``).
    """
    returns = schema.returns
    if returns and all(r.alias_info is not None and not r.alias_info.is_write
                       for r in returns):
        return True
    if torch.Tag.inplace_view in func.tags:
        return True
    return bool(returns) and not any("Tensor" in str(a.type) for a in schema.arguments)


# The caches (see the module docstring): per op and argument metadata.
_MAX_CACHE = 100_000
# An op's cost: one OpCost, one per output (backward ops), or None (no formula fits).
Cost = OpCost | tuple[OpCost, ...] | None
_CACHE: dict[Any, tuple[Any, Cost]] = cache("torch: op costs")
_VALID_INPLACE: dict[Any, Cost] = cache("torch: in-place op costs")
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


class CostCounterMode(TorchDispatchMode):
    """Sees every ATen op, adds its formula's cost to the current layer, tracks live bytes."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # TorchDispatchMode wraps __torch_dispatch__ in torch._dynamo.disable by default:
        # that imports torch._dynamo on the first op (seconds) and adds a wrapper to every
        # op. The handler is kept out of dynamo's sight another way (_invisible_to_dynamo).
        return False

    def __init__(self) -> None:
        super().__init__()
        self.acc: Acc | None = None
        self.live = 0
        self.peak = 0
        self.ops = 0
        self.failed: str | None = None  # the op that raised, if one did
        self._paused = gc_paused()
        # On real tensors: (bytes, the limit's name) the live activations may not outgrow
        # (cnncost.count.memory.real_run_budget); each op's new outputs are sized on meta
        # before its kernel allocates them.
        self.budget: tuple[int, str] | None = None

    def __enter__(self) -> CostCounterMode:
        # Liveness is tracked by weakref finalizers: a tensor caught in a reference cycle
        # is released whenever the cyclic collector happens to run, which another thread
        # (a Dask worker, a progress bar) can trigger mid-count. With the collector paused
        # while counting, every run frees tensors at the same points: the same peak.
        self._paused.__enter__()  # cnncost.caches.gc_paused
        _invisible_to_dynamo(type(self).__torch_dispatch__)
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._paused.__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        info = _op_info(func)
        out, cost = self._run(func, info, args, kwargs)
        self.ops += 1
        self._track(info, out, self.acc)
        self._charge(info, cost, out)
        return out

    def _charge(self, info: _OpInfo, cost: Cost, out: Any) -> None:
        """Add an op's cost (or each of its outputs' costs) to the current layer, or list
        the op as uncounted."""
        acc = self.acc
        if acc is None:
            return
        if acc.order < 0:
            acc.order = self.ops
        if cost is None:
            if info.formula is not None or not info.zero_cost:
                acc.uncounted[info.name] += 1
            return
        for part in cost if isinstance(cost, tuple) else (cost,):
            acc.macs += part.macs
            acc.elem_flops += part.elem_flops
            if part.factors is not None:
                acc.factors.append(part.factors)

    def _run(self, func: Any, info: _OpInfo, args: Any,
             kwargs: dict[str, Any]) -> tuple[Any, Cost]:
        """The op's output and cost: remembered, by a meta shortcut, or by PyTorch."""
        key = None
        if info.fresh or info.inplace:
            try:
                key = (func, _key(args), _key(tuple(kwargs.items())) if kwargs else None)
            except _NoKey:
                key = None
        if key is not None and info.inplace and key in _VALID_INPLACE:
            # on meta an elementwise in-place op only checks its arguments
            return args[0], _VALID_INPLACE[key]
        if key is not None and info.fresh and key in _CACHE:
            tmpl, cost = _CACHE[key]
            return _instantiate(tmpl), cost
        out = None
        if key is not None:  # meta arguments: try a shortcut to the output's metadata
            fast = FAST_META.get(func)
            if fast is not None:
                out = fast(*args, **kwargs)
            elif info.elementwise:
                out = elementwise_meta(info.inplace, args, kwargs)
        if out is None:
            out = self._kernel(func, info, args, kwargs)
        cost = self._cost(info, args, kwargs, out) if info.formula is not None else None
        if key is not None and len(_CACHE) < _MAX_CACHE:
            if info.inplace:
                _VALID_INPLACE[key] = cost
            else:
                with suppress(_NoKey):
                    _CACHE[key] = (_template(out), cost)
        return out, cost

    def _kernel(self, func: Any, info: _OpInfo, args: Any, kwargs: dict[str, Any]) -> Any:
        """Run PyTorch's kernel (on real tensors, within the budget)."""
        if self.budget is not None and self.live + _new_bytes(func, info, args, kwargs) > \
                self.budget[0]:
            raise OverBudget(*self.budget)
        try:
            out = func(*args, **kwargs)
        except Exception:
            # remembered: a meta count failing on an op that needs real values is
            # counted again on CPU
            self.failed = info.name
            raise
        # A kernel's first call may leave garbage cycles (lazy set-up, Python meta
        # kernels' frames) that hold its arguments and results; with the collector
        # paused they would live to the end of the count and inflate the peak. The
        # young generation holds only what was made since counting began.
        gc.collect(0)
        return out

    @staticmethod
    def _cost(info: _OpInfo, args: Any, kwargs: Any, out: Any) -> Cost:
        assert info.formula is not None
        return apply_formula(info.formula, tree_map(_shape, args), tree_map(_shape, kwargs),
                             tree_map(_shape, out))

    def _track(self, info: _OpInfo, out: Any, acc: Acc | None) -> None:
        outs = out if isinstance(out, tuple | list) else (out,)
        # One return may be a list of views (split, unbind: Tensor(a)[]): it covers them all.
        listed = len(info.aliases) == 1 and len(outs) > 1
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor):
                continue
            # Views and in-place results alias an input: no new memory.
            if info.aliases[0] if listed else i < len(info.aliases) and info.aliases[i]:
                continue
            nbytes = t.numel() * t.element_size()
            self.live += nbytes
            if self.live > self.peak:
                self.peak = self.live
            if acc is not None:
                acc.op_bytes += nbytes
            weakref.finalize(t, self._release, nbytes)
        if self.budget is not None and self.live > self.budget[0]:
            raise OverBudget(*self.budget)

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes


def _invisible_to_dynamo(handler: Any) -> None:
    """Keep torch.compile out of the counter's handler and of everything it calls.

    A ``torch.compile``'d function called inside a forward (torchvision's Python
    ``roi_align``, a user's own) runs eagerly while a dispatch mode is on the stack, so the
    counter sees its ATen ops as any other. But the mode leaves the stack while its handler
    runs, and dynamo, still active for the compiled call, then traces the handler itself
    (the counter's caches and weakref bookkeeping) and fails on its own guards. Marking the
    handler's code "skip, and skip everything it calls" (what ``torch._dynamo.disable`` does,
    without importing torch._dynamo: seconds, and a wrapper on every op) hides it. Marked
    at every count: ``torch._dynamo.reset()`` forgets such marks.
    """
    if _SKIP is not None:
        with suppress(Exception):
            _SKIP[0](handler.__code__, _SKIP[1])


def _skip_strategy() -> tuple[Any, Any] | None:
    """torch's C hook that marks a code object for dynamo, and the "skip recursively" mark
    (None where this torch has neither: nothing to hide from then)."""
    try:
        from torch._C._dynamo import eval_frame

        skip = eval_frame._FrameAction.SKIP
        return eval_frame.set_code_exec_strategy, eval_frame._FrameExecStrategy(skip, skip)
    except (ImportError, AttributeError):
        return None


_SKIP = _skip_strategy()


def _new_bytes(func: Any, info: _OpInfo, args: Any, kwargs: dict[str, Any]) -> int:
    """The bytes of the new tensors an op on real tensors is about to make, sized by its
    meta kernel before its own allocates them (0 for an op without one, whose output
    depends on the values: its bytes are checked once they exist)."""
    try:
        out = func(*tree_map(_meta_of, args), **tree_map(_meta_of, kwargs))
    except Exception:
        return 0
    outs = out if isinstance(out, tuple | list) else (out,)
    listed = len(info.aliases) == 1 and len(outs) > 1
    return sum(t.numel() * t.element_size() for i, t in enumerate(outs)
               if isinstance(t, torch.Tensor) and not (
                   info.aliases[0] if listed else i < len(info.aliases) and info.aliases[i]))


class OverBudget(CnnCostError):
    """A count on real tensors would outgrow the memory free when it started."""

    def __init__(self, budget: int, limit: str) -> None:
        super().__init__(f"more than {budget:,} bytes ({limit})")
        self.budget = budget
        self.limit = limit


def _meta_of(x: Any) -> Any:
    """A real tensor's meta stand-in (same sizes, strides, dtype), a device: meta."""
    if isinstance(x, torch.Tensor) and not x.is_meta:
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    if isinstance(x, torch.device):
        return torch.device("meta")
    return x


def tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


"""The drivers: count a spec, a compiled spec's graph, or any nn.Module, on meta or CPU.

Compiled specs are walked node by node, so residual adds and concats get rows of their
own. Any other ``nn.Module`` is run with forward hooks that tell which module issued each
op; its weights are replaced by meta tensors for the run (reparametrized, as
``torch.func.functional_call`` does), so nothing is copied and no real activation is
allocated. ``device="cpu"`` runs the same count on real tensors (the oracle for tests).
``mode="train"`` counts a training step instead: forward in training behaviour, then the
backward (cnncost.count.train).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import fx, nn
from torch.nn.parameter import is_lazy
from torch.utils._python_dispatch import _disable_current_modes, _get_current_dispatch_mode

from cnncost.count.calls import ModuleCalls
from cnncost.count.conventions import (
    Mode,
    Policy,
    check_batch,
    check_layer_batch,
    dtype_name,
    parse_dtype,
)
from cnncost.count.memory import (
    StepRecord,
    Trainable,
    build_table,
    check_free_memory,
    nbytes,
    real_run_budget,
)
from cnncost.count.mode import Acc, CostCounterMode, OverBudget, tensors
from cnncost.count.snapshot import ModuleState
from cnncost.count.train import TrainCounterMode, run_step
from cnncost.errors import CnnCostError, ModelRunError, UsageError
from cnncost.graph.build import META_KEY, TORCH_REFUSALS, op_args, op_target, torch_refused
from cnncost.graph.walk import Step, Walk, graph_walk
from cnncost.spec import LayerSpec, ModelSpec
from cnncost.table import CostTable


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


class _LayerRows:
    """The counting hook of a walk: one row per spec layer, charged with the ops it runs."""

    def __init__(self, mode: CostCounterMode, weights: Mapping[Any, tuple[int, int]]) -> None:
        self.mode = mode
        self.weights = weights  # (params, buffers) of each step that runs a module
        self.accs: list[Acc] = []

    def __call__(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        layer = step.layer
        assert layer is not None  # the walk hooks spec layers only
        params, buffers = self.weights.get(step.key, (0, 0))
        acc = Acc(layer.path, layer.kind, f"{layer.loc.file}:{layer.loc.line}",
                  layer.receptive_field, layer.receptive_field_axes, calls=1, params=params,
                  buffers=buffers,
                  input_shape=tuple(tuple(a.shape) for a in tensors((args, kwargs))))
        self.mode.acc = acc
        try:
            out = step.target(*args, **kwargs)
        except TORCH_REFUSALS as exc:
            raise torch_refused(layer, "run", exc) from None
        finally:
            self.mode.acc = None
        outs = [out] if isinstance(out, torch.Tensor) else tensors(out)
        if outs:
            acc.output_shape = tuple(outs[0].shape)
            acc.output_bytes = sum(t.numel() * t.element_size() for t in outs)
        self.accs.append(acc)
        return out


def _run_graph(gm: fx.GraphModule, x: torch.Tensor, mode: CostCounterMode,
               accs: list[Acc]) -> Any:
    """Run a compiled spec's graph node by node, one row per spec layer (into ``accs``);
    the graph's output."""
    walk = graph_walk(gm)
    weights = {step.key: (sum(p.numel() for p in step.target.parameters()),
                          sum(b.numel() for b in step.target.buffers()))
               for step in walk.steps
               if step.layer is not None and isinstance(step.target, nn.Module)}
    rows = _LayerRows(mode, weights)
    rows.accs = accs
    return walk.run(dict.fromkeys(walk.inputs, x), rows)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _spec_modules(spec: ModelSpec, dtype: torch.dtype, device: str, elem: int,
                  train: bool = False) -> dict[str, tuple[nn.Module, int, int, int, int]]:
    """Each layer's module with its (params, buffers, param bytes, buffer bytes).

    A layer's module depends only on its kind, fields and input shape, so identical layers
    (the blocks of a deep net) share one instance: building nn.Modules, not counting,
    dominated the time of deep specs. Built before counting starts, so their weights are
    never mistaken for activations. In train mode every layer has weights of its own (their
    gradients are separate tensors) and runs in training behaviour.
    """
    built: dict[Any, tuple[nn.Module, int, int, int, int]] = {}
    by_path = {}
    for layer in spec.layers:
        if layer.built is None:
            continue
        key = (layer.kind, _freeze(layer.params), layer.in_shapes, layer.path if train else "")
        entry = built.get(key)
        if entry is None:
            try:
                with torch.device(device):
                    module = layer.built.make()
                if dtype != torch.get_default_dtype():
                    module = module.to(dtype)
            except TORCH_REFUSALS as exc:
                raise torch_refused(layer, "build", exc) from None
            module.train(train)
            entry = (module, sum(p.numel() for p in module.parameters()),
                     sum(b.numel() for b in module.buffers()),
                     nbytes(module.parameters(), elem), nbytes(module.buffers(), elem))
            built[key] = entry
        by_path[layer.path] = entry
    return by_path


def _run_spec(spec: ModelSpec, x: torch.Tensor, mode: CostCounterMode,
              modules: Mapping[str, tuple[nn.Module, int, int, int, int]],
              accs: list[Acc]) -> Any:
    """Run a spec layer by layer, exactly as its compiled GraphModule would, without one:
    one row per layer (into ``accs``); the spec's output."""
    steps = []
    for layer in spec.layers:
        entry = modules.get(layer.path)
        if entry is not None:
            steps.append(Step(layer.path, layer.inputs, entry[0],
                              functools.partial(_bind_module, layer), layer))
        else:
            target, kwargs = op_target(layer)
            steps.append(Step(layer.path, layer.inputs, target,
                              functools.partial(_bind_op, layer, kwargs), layer))
    rows = _LayerRows(mode, {path: (m[1], m[2]) for path, m in modules.items()})
    rows.accs = accs
    return Walk.of(steps, ["input"], spec.output).run({"input": x}, rows)


def _bind_module(layer: LayerSpec, env: Mapping[Any, Any]) -> tuple[tuple[Any, ...],
                                                                    dict[str, Any]]:
    return tuple(env[key] for key in layer.inputs), {}


def _bind_op(layer: LayerSpec, kwargs: Mapping[str, Any],
             env: Mapping[Any, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A graph op's (add, concat, mul, slice) arguments from its input values."""
    return op_args(layer, tuple(env[key] for key in layer.inputs)), dict(kwargs)


def count_spec(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
               policy: Policy | str = Policy.ALL, strict: bool = False,
               source: str | None = None, device: str = "meta",
               mode: Mode | str = Mode.INFERENCE) -> CostTable:
    """Count a resolved spec, one row per graph node (``device="cpu"`` runs real tensors;
    ``mode="train"`` counts a training step)."""
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    dev = _check_device(device)
    train = _mode(mode) is Mode.TRAIN
    check_batch(batch)
    check_layer_batch(spec, batch, train)
    x = _input_tensor((batch, *spec.input_shape), dt, dev)
    modules = _spec_modules(spec, dt, dev, x.element_size(), train)
    weights = (sum(m[3] for m in modules.values()), sum(m[4] for m in modules.values()))
    counter = _counter(train)
    accs: list[Acc] = []
    step = _execute(counter, lambda: _run_spec(spec, x, counter, modules, accs), spec.name,
                    [x, *(t for m in modules.values()
                          for t in itertools.chain(m[0].parameters(), m[0].buffers()))])
    trained = _trainable((m[0] for m in modules.values()), x.element_size()) if train \
        else None
    return build_table(spec.name, source or spec.file, spec.description, weights, x, accs,
                       counter, pol, dt, strict, step, trained)


def _mode(mode: Mode | str) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        raise UsageError(f"mode={mode!r}: expected 'inference' or 'train'") from None


def _counter(train: bool) -> CostCounterMode:
    """The dispatch mode of a count: a training step's, or the inference one."""
    return TrainCounterMode() if train else CostCounterMode()


def _execute(counter: CostCounterMode, forward: Callable[[], Any], label: str,
             weights: Iterable[torch.Tensor] = ()) -> StepRecord | None:
    """Run ``forward`` under the counter (on the plain kernels): without autograd, or as a
    whole training step (``weights``: the input, parameters and buffers, whose storages are
    not activations)."""
    with plain_kernels():
        if isinstance(counter, TrainCounterMode):
            counter.exclude(weights)
            return run_step(counter, forward, label)
        with torch.no_grad(), counter:
            forward()
    return None


@contextmanager
def plain_kernels() -> Iterator[None]:
    """Attention and recurrent layers on their plain paths, and compiled functions eager,
    while a count runs.

    On real CPU tensors PyTorch picks fused kernels the meta device never takes: one op for
    a whole scaled-dot-product attention (``_scaled_dot_product_flash_attention_for_cpu``),
    for nn.MultiheadAttention's inference fast path (``_native_multi_head_attention``,
    projections included) and for each LSTM layer (``mkldnn_rnn_layer``). Each would reach
    the counter as a single op of its own, where meta shows the matrix products, softmax
    and gates it is made of. With the math attention backend, the attention fast path off
    and oneDNN off, a count on CPU runs the same ATen ops as one on meta: the same formulas
    count them, and the two agree. (oneDNN off changes which kernel computes a convolution
    on CPU, not the ``aten.convolution`` call the counter sees.)

    A ``torch.compile``'d function called by the forward runs eagerly (the compiler's
    "force_eager" stance), so the counter sees its ATen ops as any other's, with nothing
    compiled; where torch._dynamo is not loaded yet nothing is compiled so far, and the
    counter keeps itself out of sight of a compile that starts mid-count
    (cnncost.count.mode). Process-wide flags, put back afterwards.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fastpath = torch.backends.mha.get_fastpath_enabled()
    mkldnn = torch._C._get_mkldnn_enabled()  # torch.backends.mkldnn.enabled's own calls
    eager: Any = contextlib.nullcontext()
    if "torch._dynamo" in sys.modules:  # importing it costs seconds: only when it is there
        eager = torch.compiler.set_stance("force_eager")
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        torch._C._set_mkldnn_enabled(False)
        with sdpa_kernel(SDPBackend.MATH), eager:
            yield
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _trainable(modules: Iterable[nn.Module], elem: int | None) -> Trainable:
    """The parameters that get a gradient (each once, however often it is shared), their
    bytes at ``elem`` per element (floating point; None: each at its own dtype)."""
    seen: dict[int, nn.Parameter] = {}
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                seen.setdefault(id(p), p)
    sizes = [p.numel() * (elem if elem and p.is_floating_point() else p.element_size())
             for p in seen.values()]
    return Trainable(sum(p.numel() for p in seen.values()), sum(sizes), max(sizes, default=0))


# --------------------------------------------------------------------------- any nn.Module


def count_module(model: nn.Module, input_shape: tuple[int, ...], batch: int = 1,
                 dtype: str | torch.dtype = "float32", policy: Policy | str = Policy.ALL,
                 strict: bool = False, name: str | None = None,
                 source: str = "", device: str = "meta", frames: int = 1,
                 mode: Mode | str = Mode.INFERENCE) -> CostTable:
    """Count any nn.Module without copying its weights (on meta; ``device="cpu"``: for real).

    One row per module that ran ops or owns parameters: leaf modules, containers whose
    forward has functional ops of its own (``x + self.conv(x)``: kind ``... (own ops)``),
    and modules with parameters that were never called (``(not called)``). A module
    called twice is one row with ``calls=2``. ``frames``: how many times the forward gets
    the input (2 for optical-flow models, whose forward takes two frames: the same tensor
    is given as both).

    A model whose forward needs real values (``nonzero``, ``.item()``, data-dependent
    shapes: detection networks) cannot run on meta: it is then counted again on CPU with
    real tensors and its own weights, when free memory allows, and the table says so
    (``counted_on``). Either way the model comes back exactly as it went in.
    ``mode="train"`` counts a training step: parameters with ``requires_grad=False`` are
    frozen (no gradient of their own).
    """
    dev = _check_device(device)
    if isinstance(model, fx.GraphModule) and any(
            META_KEY in n.meta for n in model.graph.nodes):
        return _count_graph(model, input_shape, batch, dtype, policy, strict, name, source,
                            dev, mode)
    dt = parse_dtype(dtype)
    pol = Policy(policy)
    train = _mode(mode) is Mode.TRAIN
    check_batch(batch)
    label = name or type(model).__name__
    shape = (batch, *input_shape)
    own = _fixed_dtypes(model)
    if dev == "cpu":
        _check_real_weights(model, dt, "device='cpu' runs the module's own weights", own)
    # A lazy model is counted on a copy (_lazy_ready); whatever its hooks reach of the
    # original is put back too.
    kept = ModuleState(model) if any(map(is_lazy, model.parameters())) else None
    try:
        counted = _lazy_ready(model, dt, dev, label)
        x, calls, step = _count_once(counted, shape, dt, dev, label, frames, train, bool(own))
        counted_on, why = "meta", ""  # an explicit device="cpu" (the tests' oracle): unmarked
    except NeedsData as need:
        _check_real_weights(model, dt, f"{label} needs real tensors ({need.reason})", own)
        check_free_memory(label, need.partial_bytes + _nbytes_of(shape, dt), need.reason)
        counted = _lazy_ready(model, dt, "cpu", label)
        x, calls, step = _count_once(counted, shape, dt, "cpu", label, frames, train,
                                     bool(own), need.reason)
        counted_on, why = "cpu", need.reason
    finally:
        if kept is not None:
            kept.restore()
    elem = None if own else x.element_size()
    trained = _trainable([counted], elem) if train else None
    table = build_table(label, source or label, "", counted, x, calls.rows(), calls.mode, pol,
                        dt, strict, step, trained, own_dtypes=bool(own))
    if own:
        table = dataclasses.replace(table, conventions=(
            *table.conventions, "weights at the dtypes the module fixes itself "
            f"({', '.join(dtype_name(d) for d in own)}), each tensor's bytes at its own; "
            f"the input at {dtype_name(dt)}"))
    if counted_on == "meta":
        return table
    return dataclasses.replace(table, counted_on=counted_on, counted_on_reason=why)


def _fixed_dtypes(model: nn.Module) -> list[torch.dtype]:
    """The floating dtypes of a module's weights where it mixes several (a half conv, then
    a double one): the module fixes them, a count keeps them (empty: one dtype, which the
    count replaces by the analysis dtype)."""
    found = {t.dtype for t in itertools.chain(model.parameters(), model.buffers())
             if t.is_floating_point() and not is_lazy(t)}
    return sorted(found, key=str) if len(found) > 1 else []


def _lazy_ready(model: nn.Module, dtype: torch.dtype, device: str, label: str) -> nn.Module:
    """The module to count: itself, or where it has lazy parameters (nn.LazyLinear before
    its first forward) a copy of it whose lazy ones are made on ``device`` at ``dtype`` when
    the forward infers their shapes. The user's stay uninitialized; the other weights are
    shared with the copy, not copied."""
    weights = [*model.parameters(), *model.buffers()]
    lazy = [t for t in weights if is_lazy(t)]
    if not lazy:
        return model
    memo: dict[int, Any] = {id(t): t for t in weights if not is_lazy(t)}
    for t in lazy:
        dt = dtype if t.is_floating_point() else t.dtype
        make: Any = type(t)  # UninitializedParameter or UninitializedBuffer
        stand_in = memo[id(t)] = make(requires_grad=t.requires_grad, device=device, dtype=dt)
        stand_in.materialize = _made_outside_count(stand_in)
    try:
        copied: nn.Module = copy.deepcopy(model, memo)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelRunError(f"{label} has lazy parameters (made at its first forward), and a "
                            "copy to make them in could not be taken "
                            f"({type(exc).__name__}: {first}); run one forward first") from exc
    return copied


def _made_outside_count(t: torch.Tensor) -> Callable[..., None]:
    """A lazy stand-in's ``materialize``, run outside the counter: its weights are made at
    the first forward, under the count, and are weights, not activations (a training step
    does not count their storage among what autograd saves)."""
    lazy: Any = type(t)  # UninitializedParameter or UninitializedBuffer
    made = lazy.materialize

    def materialize(*args: Any, **kwargs: Any) -> None:
        counter = _get_current_dispatch_mode()
        with _disable_current_modes():
            made(t, *args, **kwargs)
        if isinstance(counter, TrainCounterMode):
            counter.exclude([t])

    return materialize


def _count_once(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, device: str,
                label: str, frames: int, train: bool = False, own_dtypes: bool = False,
                why: str = "") -> tuple[torch.Tensor, ModuleCalls, StepRecord | None]:
    """One counted forward (train: step) on ``device``; the model is restored whatever
    happens (on CPU a training step's gradients too). ``own_dtypes``: the weights keep
    their dtypes on meta. On real tensors the run may not outgrow the memory free when it
    starts (``why``: what made it run on them, for the message)."""
    mode = _counter(train)
    calls = ModuleCalls(model, mode, train)
    x = _input_tensor(shape, dtype, device)
    grads = {p: p.grad for p in model.parameters()} if device != "meta" else {}
    with calls.hooked(device, dtype):
        named = [(k, v) for k, v in model.named_buffers(remove_duplicate=False)
                 if not is_lazy(v)]
        if device == "meta":
            named += [(k, v) for k, v in model.named_parameters(remove_duplicate=False)
                      if not is_lazy(v)]
            state = {k: _meta_like(v, v.dtype if own_dtypes else dtype, train)
                     for k, v in named}
        else:
            # Buffers a forward writes in place (running statistics, step counters) are
            # written to copies: the model's own stay as they were.
            state = {k: v.clone() for k, v in named}
            mode.budget = real_run_budget()
        real = [] if device == "meta" else list(model.parameters())
        try:
            with _swapped(model, state):
                step = _execute(mode, lambda: _forward(model, [x] * frames, calls, label,
                                                       device), label,
                                [x, *state.values(), *real])
        except OverBudget as over:
            raise ModelRunError(
                f"{label}: counting on real tensors" + (f" ({why})" if why else "") +
                f" would take more than {over.budget:,} bytes of activations, the memory "
                f"free when it started (limit: {over.limit}); use a smaller --batch or "
                "--input") from None
        finally:
            for p, g in grads.items():
                p.grad = g
        del state
    return x, calls, step


def _nbytes_of(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    return math.prod(shape) * torch.empty((), dtype=dtype, device="meta").element_size()


def _check_real_weights(model: nn.Module, dtype: torch.dtype, why: str,
                        own: list[torch.dtype] | None = None) -> None:
    """A count on CPU runs the module's own weights: they must be real, on CPU, at ``dtype``
    (or at the dtypes ``own`` the module mixes itself)."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.device.type != "cpu":
            raise ModelRunError(f"{why}, but its weights are on {t.device.type}; move it to "
                                "the CPU first")
        if t.is_floating_point() and t.dtype != dtype and not own and not is_lazy(t):
            raise UsageError(f"{why}: counting on CPU runs its own {dtype_name(t.dtype)} "
                             f"weights; convert it to {dtype_name(dtype)} first, or count at "
                             f"--dtype {dtype_name(t.dtype)}")


class NeedsData(CnnCostError):
    """The module's forward needs real values, which meta tensors do not have."""

    def __init__(self, reason: str, partial_bytes: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial_bytes = partial_bytes  # peak activations before it stopped


def _forward(model: nn.Module, inputs: list[torch.Tensor], calls: ModuleCalls, label: str,
             device: str) -> Any:
    """Run the user's module; its own errors (wrong input shape, ...) become one line that
    names the module that failed, or NeedsData when meta tensors were the cause."""
    try:
        return calls.call(inputs)
    except CnnCostError:
        raise
    # A forward's sys.exit() or stray GeneratorExit is its failure too: let through, it would
    # end cnncost with that status (0: no output, "success") or a traceback.
    except (Exception, SystemExit, GeneratorExit) as exc:
        stack, mode = calls.stack, calls.mode
        if device == "meta" and isinstance(exc, Exception) and _needs_data(
                exc, mode.failed is not None):
            where = f" in {stack[-1].name}" if stack else ""
            op = f"{mode.failed} " if mode.failed else ""
            raise NeedsData(f"{op}has no meta-device version{where}: its result depends on "
                            "the values", mode.peak) from exc
        where = f" in {stack[-1].name} ({stack[-1].kind})" if stack else ""
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelRunError(f"{label}: the model failed on an input of shape "
                            f"{'x'.join(map(str, inputs[0].shape))}{where}: "
                            f"{type(exc).__name__}" + (f": {first}" if first else "")
                            ) from exc


# What a forward that needs real values raises on meta: an op without a meta kernel
# (nonzero, unique: NotImplementedError), reading a value (.item(), if x.any():), copying
# a meta tensor to real memory ("Cannot copy out of meta tensor"), a data-dependent shape,
# a real tensor the count could not give a meta stand-in (held outside the module tree).
_NEEDS_DATA = ("meta tensor", "on meta", "data-dependent", "data dependent", "meta device",
               "device meta")


def _needs_data(exc: BaseException, op_failed: bool) -> bool:
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, NotImplementedError) and op_failed:
            return True
        if e is not None and any(s in str(e).lower() for s in _NEEDS_DATA):
            return True
    return False


def _count_graph(gm: fx.GraphModule, input_shape: tuple[int, ...], batch: int,
                 dtype: str | torch.dtype, policy: Policy | str, strict: bool,
                 name: str | None, source: str, device: str,
                 mode: Mode | str = Mode.INFERENCE) -> CostTable:
    dt = parse_dtype(dtype)
    check_batch(batch)
    train = _mode(mode) is Mode.TRAIN
    x = _input_tensor((batch, *input_shape), dt, device)
    counter = _counter(train)
    label = name or type(gm).__name__
    trained = _trainable([gm], x.element_size()) if train else None
    accs: list[Acc] = []
    flag = gm.training
    if train:
        gm.train()
    try:
        if device != "meta":
            step = _execute(counter, lambda: _run_graph(gm, x, counter, accs), label,
                            [x, *gm.parameters(), *gm.buffers()])
        else:
            state = {k: _meta_like(v, dt, train)
                     for k, v in [*gm.named_parameters(), *gm.named_buffers()]}
            with _swapped(gm, state):
                step = _execute(counter, lambda: _run_graph(gm, x, counter, accs), label,
                                [x, *state.values()])
            del state
    finally:
        gm.train(flag)
    # after the swap: the real parameters say which ones train
    return build_table(label, source or label, "", gm, x, accs, counter, Policy(policy), dt,
                       strict, step, trained)


@contextmanager
def _swapped(module: nn.Module, state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily replace parameters and buffers by meta tensors (no copy of the weights)."""
    from torch.nn.utils import stateless

    with stateless._reparametrize_module(module, dict(state)):
        yield


def _meta_like(t: torch.Tensor, dtype: torch.dtype, train: bool = False) -> torch.Tensor:
    dt = dtype if t.is_floating_point() else t.dtype
    out = torch.empty(t.shape, dtype=dt, device="meta")
    # Train mode: a parameter keeps its requires_grad (False: frozen, no gradient).
    return out.requires_grad_(True) if train and isinstance(t, nn.Parameter) and \
        t.requires_grad else out

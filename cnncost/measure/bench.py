"""Measured runtime: warm-up, adaptive repetitions, median and IQR, next to the roofline.

Counting says how much work a network does; this module says how long it takes on the
device at hand, and ``cnncost.measure.roofline`` says how long it could take at best. Method:

- the model runs for real (random weights, ``eval()``, ``torch.inference_mode``) on a
  random input; a warm-up of at least two calls (and ~0.25 s) comes first;
- each sample times a block of calls long enough (>= 1 ms) for the clock to resolve;
  samples are taken until there are at least ``min_samples`` of them and ``min_time`` has
  passed and the spread (IQR / median) is below 5%, or until ``max_time`` (never fewer than 3);
- on CUDA, blocks are timed with CUDA events and the device is synchronised around them;
- ``per_layer`` times every layer on real tensors (an fx Interpreter over a compiled spec,
  forward hooks on any other module; a module's own time excludes its children's), one
  pass per sample, and reports each layer's median next to its roofline time.

On the CPU, subnormal floats are flushed to zero while timing, so random weights cannot
trigger the slow subnormal path that trained weights do not take.

Before anything real is allocated, the memory the run needs (parameters + buffers + input +
peak live activations, from the meta-device count, plus 25% headroom) is compared with the
free RAM or GPU memory; a run that would not fit raises InsufficientMemoryError.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from cnncost.api import DEFAULT_INPUT, load_target
from cnncost.count.conventions import dtype_name, parse_dtype
from cnncost.count.drivers import count_module, count_spec
from cnncost.errors import CnnCostError, UsageError
from cnncost.graph.build import META_KEY, build_module
from cnncost.graph.walk import Step, graph_walk
from cnncost.measure.roofline import (
    Bound,
    LayerRoofline,
    Progress,
    Roofline,
    free_memory,
    get_roofline,
    layer_rooflines,
    load_average,
)
from cnncost.sources import Target, resolve
from cnncost.spec import ModelSpec
from cnncost.table import CostTable

SCHEMA = "cnncost.bench/1"
HEADROOM = 1.25  # allocator slack, workspaces and the framework's own buffers
TARGET_REL_IQR = 0.05
MIN_BLOCK_S = 1e-3


class InsufficientMemoryError(CnnCostError):
    """The real run would not fit in the free RAM / GPU memory (refused before allocating)."""


class Device(str, Enum):
    """Where to run."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def resolve_device(device: Device | str) -> torch.device:
    """auto -> cuda when available, else cpu; cuda without a GPU is a usage error."""
    try:
        choice = Device(device)
    except ValueError:
        raise UsageError(f"device {device!r}: expected auto, cpu or cuda") from None
    if choice is Device.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here (torch "
                         f"{torch.__version__}, no GPU found); use --device cpu")
    return torch.device(choice.value)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Per-call times of one benchmark (seconds) and their summary statistics."""

    samples_s: tuple[float, ...]
    number: int  # calls per sample
    warmup: int  # warm-up calls before the first sample
    median_s: float
    q1_s: float
    q3_s: float
    mean_s: float
    min_s: float
    # Process CPU time per call (all threads), CPU device only: unlike wall time it does
    # not grow while other processes hold the cores (with one thread it is the run time
    # without preemption; with several it also counts their spin-waiting).
    cpu_samples_s: tuple[float, ...] = ()

    @property
    def cpu_median_s(self) -> float | None:
        return statistics.median(self.cpu_samples_s) if self.cpu_samples_s else None

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread of the samples (0.02 = 2%)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    @property
    def stable(self) -> bool:
        return self.rel_iqr <= TARGET_REL_IQR

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median_s, "q1_s": self.q1_s, "q3_s": self.q3_s,
                "iqr_s": self.iqr_s, "rel_iqr": self.rel_iqr, "mean_s": self.mean_s,
                "min_s": self.min_s, "samples": len(self.samples_s), "number": self.number,
                "warmup": self.warmup, "stable": self.stable, "cpu_median_s": self.cpu_median_s,
                "samples_s": list(self.samples_s), "cpu_samples_s": list(self.cpu_samples_s)}


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """(Q1, median, Q3) with linear interpolation between order statistics."""
    if not xs:
        raise ValueError("no samples")
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def summarize(samples: Sequence[float], number: int = 1, warmup: int = 0,
              cpu_samples: Sequence[float] = ()) -> Timing:
    """Median, quartiles, mean and minimum of per-call times."""
    q1, med, q3 = quartiles(samples)
    return Timing(tuple(samples), number, warmup, med, q1, q3, statistics.fmean(samples),
                  min(samples), tuple(cpu_samples))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_block(fn: Callable[[], Any], number: int, device: torch.device) -> float:
    """Seconds for ``number`` calls; CUDA events on GPU, perf_counter on CPU."""
    return _run_block_cpu(fn, number, device)[0]


def _run_block_cpu(fn: Callable[[], Any], number: int,
                   device: torch.device) -> tuple[float, float | None]:
    """(wall seconds, process CPU seconds or None on GPU) for ``number`` calls."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, None
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0


@dataclass(frozen=True)
class Budget:
    """How long to measure: at least min_samples and min_time, at most max_time."""

    min_samples: int = 7
    min_time: float = 0.5
    max_time: float = 10.0
    warmup_time: float = 0.25
    max_samples: int = 1000

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.max_time <= 0 or self.min_time < 0:
            raise UsageError(f"bad timing budget {self}: need min_samples >= 1, max_time > 0")

    def done(self, n: int, elapsed: float, rel_iqr: float) -> bool:
        if n >= self.min_samples and elapsed >= self.min_time and rel_iqr <= TARGET_REL_IQR:
            return True
        return n >= min(3, self.min_samples) and (elapsed >= self.max_time
                                                  or n >= self.max_samples)

    def fraction(self, n: int, elapsed: float) -> float:
        """Progress toward the earliest possible stop (for a progress bar)."""
        soonest = min(n / self.min_samples, elapsed / self.min_time if self.min_time else 1.0)
        return min(1.0, max(soonest, elapsed / self.max_time))


def _rel_iqr(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return math.inf
    q1, med, q3 = quartiles(xs)
    return (q3 - q1) / med if med > 0 else 0.0


def time_fn(fn: Callable[[], Any], device: torch.device, budget: Budget = Budget(),
            progress: Progress | None = None, label: str = "timing") -> Timing:
    """Warm up, then time ``fn`` in blocks until the budget's stopping rule is met."""
    calls, best = 0, math.inf
    t_start = time.perf_counter()
    while calls < 2 or (time.perf_counter() - t_start < budget.warmup_time and calls < 50):
        best = min(best, _run_block(fn, 1, device))
        calls += 1
    number = max(1, math.ceil(MIN_BLOCK_S / best)) if best > 0 else 1000
    samples: list[float] = []
    cpu: list[float] = []
    t_begin = time.perf_counter()
    while True:
        wall, cpu_s = _run_block_cpu(fn, number, device)
        samples.append(wall / number)
        if cpu_s is not None:
            cpu.append(cpu_s / number)
        elapsed = time.perf_counter() - t_begin
        if progress:
            progress(label, budget.fraction(len(samples), elapsed))
        if budget.done(len(samples), elapsed, _rel_iqr(samples)):
            break
    return summarize(samples, number, calls, cpu)


# --------------------------------------------------------------------------- per layer


class _Clock:
    """Marks time points: (perf_counter, process CPU time) on CPU; CUDA events on GPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter(), time.process_time()

    def seconds(self, start: Any, end: Any) -> float:
        """Wall seconds between two marks (CUDA: read after a synchronize)."""
        if self.cuda:
            return float(start.elapsed_time(end)) / 1e3
        return float(end[0] - start[0])

    def cpu_seconds(self, start: Any, end: Any) -> float | None:
        """Process CPU seconds between two marks; None on GPU."""
        return None if self.cuda else float(end[1] - start[1])


# Per-layer times of one pass: {layer: wall seconds}, {layer: CPU seconds} (empty on GPU).
PassTimes = tuple[dict[str, float], dict[str, float]]


def _add(times: dict[str, float], name: str, value: float | None) -> None:
    if value is not None:
        times[name] = times.get(name, 0.0) + value


class _GraphPlan:
    """A compiled spec's graph prepared once for timed passes (lean: only the call is timed)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.walk = graph_walk(gm)

    def run(self, x: torch.Tensor, clock: _Clock) -> list[tuple[str, Any, Any]]:
        """One pass; (layer, start mark, end mark) for every spec layer, in order."""
        marks = []

        def timed(step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = clock.mark()
            out = step.target(*args, **kwargs)
            marks.append((step.layer.path if step.layer else "", start, clock.mark()))
            return out

        self.walk.run(dict.fromkeys(self.walk.inputs, x), timed)
        return marks


def _is_spec_graph(model: nn.Module) -> bool:
    return isinstance(model, fx.GraphModule) and any(META_KEY in n.meta
                                                     for n in model.graph.nodes)


def _spec_pass(plan: _GraphPlan, x: torch.Tensor, clock: _Clock,
               device: torch.device) -> PassTimes:
    marks = plan.run(x, clock)
    _sync(device)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name, start, end in marks:
        _add(wall, name, clock.seconds(start, end))
        _add(cpu, name, clock.cpu_seconds(start, end))
    return wall, cpu


@contextlib.contextmanager
def _module_hooks(model: nn.Module, clock: _Clock,
                  calls: list[list[Any]]) -> Iterator[None]:
    """Record [name, start, end, parent index] for every module call (nesting kept)."""
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    stack: list[int] = []

    def pre(module: nn.Module, args: Any) -> None:
        parent = stack[-1] if stack else -1
        calls.append([names.get(id(module)) or "(model)", clock.mark(), None, parent])
        stack.append(len(calls) - 1)

    def post(module: nn.Module, args: Any, out: Any) -> None:
        calls[stack.pop()][2] = clock.mark()

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _module_pass(model: nn.Module, x: torch.Tensor, clock: _Clock,
                 device: torch.device) -> PassTimes:
    """Exclusive time per module name: its own call minus the calls of its children."""
    calls: list[list[Any]] = []
    with _module_hooks(model, clock, calls):
        model(x)
    _sync(device)

    def exclusive(measure: Callable[[Any, Any], float | None]) -> dict[str, float]:
        measured = [measure(c[1], c[2]) for c in calls]
        inclusive = [t for t in measured if t is not None]
        if len(inclusive) != len(calls):
            return {}  # no CPU time on GPU
        own = list(inclusive)
        for i, c in enumerate(calls):
            if c[3] >= 0:
                own[c[3]] -= inclusive[i]
        times: dict[str, float] = {}
        for c, t in zip(calls, own, strict=True):
            _add(times, c[0], t)
        return times

    return exclusive(clock.seconds), exclusive(clock.cpu_seconds)


def time_layers(model: nn.Module, x: torch.Tensor, device: torch.device,
                budget: Budget = Budget(), progress: Progress | None = None,
                label: str = "per layer") -> tuple[dict[str, Timing], Timing, Timing]:
    """Per-layer medians over instrumented passes; the passes; and plain calls between them.

    Each instrumented pass is followed by one uninstrumented call of the same (eager)
    model, so the sum of the layers and the whole model are measured under the same
    conditions, even when the load of a shared machine changes during the run.
    """
    clock = _Clock(device)
    plan = _GraphPlan(model) if isinstance(model, fx.GraphModule) and _is_spec_graph(model) else (
        None)

    def one_pass() -> tuple[PassTimes, float]:
        _sync(device)
        t0 = time.perf_counter()
        times = (_spec_pass(plan, x, clock, device) if plan is not None
                 else _module_pass(model, x, clock, device))
        return times, time.perf_counter() - t0

    one_pass()  # warm-up
    passes: list[PassTimes] = []
    walls: list[float] = []
    wholes: list[float] = []
    wholes_cpu: list[float] = []
    t_begin = time.perf_counter()
    while True:
        times, wall = one_pass()
        passes.append(times)
        walls.append(wall)
        wall, cpu_s = _run_block_cpu(lambda: model(x), 1, device)
        wholes.append(wall)
        if cpu_s is not None:
            wholes_cpu.append(cpu_s)
        elapsed = time.perf_counter() - t_begin
        if progress:
            progress(label, budget.fraction(len(passes), elapsed))
        if budget.done(len(passes), elapsed, _rel_iqr(walls)):
            break
    names = list(passes[0][0])
    per_layer = {n: summarize([w.get(n, 0.0) for w, _ in passes], 1, 1,
                              [c[n] for _, c in passes if n in c]) for n in names}
    return per_layer, summarize(walls, 1, 1), summarize(wholes, 1, 1, wholes_cpu)


# --------------------------------------------------------------------------- memory guard


@dataclass(frozen=True)
class MemoryEstimate:
    """What the real run needs (from the meta-device count) and what is free."""

    param_bytes: int
    input_bytes: int
    peak_activation_bytes: int
    required_bytes: int  # (params + buffers + input + peak activations) x HEADROOM
    free_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Memory the real forward pass needs, from a CostTable counted at the run's batch/dtype."""
    t = table.totals
    need = t.param_bytes + t.buffer_bytes + t.input_bytes + t.peak_activation_bytes
    return MemoryEstimate(t.param_bytes + t.buffer_bytes, t.input_bytes,
                          t.peak_activation_bytes, math.ceil(need * HEADROOM),
                          free_memory(device))


def check_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Raise InsufficientMemoryError when the run would not fit in free memory."""
    from cnncost.render.report import human_bytes

    est = estimate_memory(table, device)
    if est.free_bytes is not None and est.required_bytes > est.free_bytes:
        where = "GPU memory" if device.type == "cuda" else "RAM"
        raise InsufficientMemoryError(
            f"{table.model}: batch {table.input[0]} at {table.dtype} needs about "
            f"{human_bytes(est.required_bytes)} (weights {human_bytes(est.param_bytes)}, input "
            f"{human_bytes(est.input_bytes)}, peak activations "
            f"{human_bytes(est.peak_activation_bytes)}, +{round((HEADROOM - 1) * 100)}% "
            f"headroom) but only {human_bytes(est.free_bytes)} of {where} is free; "
            "use a smaller --batch or --input")
    return est


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerResult:
    """A layer's roofline figures, and its measured median time with --per-layer."""

    roof: LayerRoofline
    measured_s: float | None = None  # median wall time
    measured_cpu_s: float | None = None  # median process CPU time (CPU device)

    @property
    def efficiency(self) -> float | None:
        """Roofline time / measured time: the fraction of the roof attained (1 = at the roof)."""
        if self.measured_s is None or self.measured_s <= 0:
            return None
        return self.roof.predicted_s / self.measured_s

    def to_dict(self) -> dict[str, Any]:
        d = self.roof.to_dict()
        d["measured_s"] = self.measured_s
        d["measured_cpu_s"] = self.measured_cpu_s
        d["efficiency"] = self.efficiency
        return d


@dataclass(frozen=True)
class BenchRun:
    """One batch size: whole-model timing, throughput and the layers on the roofline."""

    batch: int
    input: tuple[int, ...]
    macs: int
    flops: int
    bytes: int
    timing: Timing
    predicted_s: float  # sum over layers of max(flops/peak, bytes/bandwidth)
    compute_only_s: float  # flops / peak: what MACs alone would predict
    memory: MemoryEstimate
    layers: tuple[LayerResult, ...]
    layer_pass: Timing | None = None  # instrumented passes (--per-layer)
    layer_whole: Timing | None = None  # eager whole-model calls interleaved with those passes
    cuda_peak_bytes: int | None = None

    @property
    def images_per_s(self) -> float:
        return self.batch / self.timing.median_s

    @property
    def achieved_flops(self) -> float:
        """Counted FLOPs / median time (FLOP/s)."""
        return self.flops / self.timing.median_s

    @property
    def layer_sum_s(self) -> float | None:
        """Sum of the per-layer medians (--per-layer), to compare with the whole model."""
        if self.layer_pass is None:
            return None
        return sum(r.measured_s or 0.0 for r in self.layers)

    @property
    def layer_cpu_sum_s(self) -> float | None:
        """Sum of the per-layer CPU-time medians (--per-layer on CPU)."""
        if self.layer_pass is None or any(r.measured_s is not None and r.measured_cpu_s is None
                                          for r in self.layers):
            return None
        return sum(r.measured_cpu_s or 0.0 for r in self.layers)

    def memory_bound(self) -> list[LayerResult]:
        return [r for r in self.layers if r.roof.bound is Bound.MEMORY]

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch, "input": list(self.input), "macs": self.macs,
            "flops": self.flops, "bytes": self.bytes, "timing": self.timing.to_dict(),
            "latency_ms": self.timing.median_s * 1e3, "iqr_ms": self.timing.iqr_s * 1e3,
            "images_per_s": self.images_per_s, "achieved_gflops": self.achieved_flops / 1e9,
            "predicted_s": self.predicted_s, "compute_only_s": self.compute_only_s,
            "memory": self.memory.to_dict(), "cuda_peak_bytes": self.cuda_peak_bytes,
            "layer_sum_s": self.layer_sum_s, "layer_cpu_sum_s": self.layer_cpu_sum_s,
            "layer_pass": None if self.layer_pass is None else self.layer_pass.to_dict(),
            "layer_whole": None if self.layer_whole is None else self.layer_whole.to_dict(),
            "layers": [r.to_dict() for r in self.layers],
        }


@dataclass(frozen=True)
class BenchReport:
    """A benchmark of one model at one or more batch sizes on one device."""

    model: str
    source: str
    device: str
    device_name: str
    dtype: str
    threads: int
    channels_last: bool
    compiled: bool
    torch_version: str
    roofline: Roofline
    runs: tuple[BenchRun, ...]
    notes: tuple[str, ...] = field(default=())

    def run(self, batch: int) -> BenchRun:
        for r in self.runs:
            if r.batch == batch:
                return r
        raise KeyError(f"no run at batch {batch}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "model": self.model, "source": self.source,
            "device": self.device, "device_name": self.device_name, "dtype": self.dtype,
            "threads": self.threads, "channels_last": self.channels_last,
            "compile": self.compiled, "torch": self.torch_version,
            "roofline": {**self.roofline.to_dict(), "ridge": self.roofline.ridge,
                         "from_cache": self.roofline.from_cache},
            "notes": list(self.notes),
            "runs": [r.to_dict() for r in self.runs],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"


# --------------------------------------------------------------------------- the benchmark


@dataclass(frozen=True)
class BenchOptions:
    """How to run: device, dtype, threads, layout, compilation, per-layer timing, budget."""

    device: Device | str = Device.AUTO
    dtype: str = "float32"
    threads: int | None = None
    channels_last: bool = False
    compile: bool = False
    per_layer: bool = False
    recalibrate: bool = False
    budget: Budget = Budget()
    quick_roofline: bool = False  # tiny calibration (tests); not for real figures


@contextlib.contextmanager
def _cpu_settings(device: torch.device, threads: int) -> Iterator[None]:
    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if device.type == "cpu":
            torch.set_flush_denormal(False)
        torch.set_num_threads(old_threads)


def _count(loaded: ModelSpec | nn.Module, input_shape: tuple[int, ...], batch: int,
           dtype: torch.dtype, label: str, source: str) -> CostTable:
    if isinstance(loaded, ModelSpec):
        return count_spec(loaded, batch, dtype, source=source)
    return count_module(loaded, input_shape, batch, dtype, name=label, source=source)


def _materialize(loaded: ModelSpec | nn.Module, device: torch.device,
                 dtype: torch.dtype, channels_last: bool) -> nn.Module:
    if isinstance(loaded, ModelSpec):
        model: nn.Module = build_module(loaded, device=device, dtype=dtype)
    else:
        model = loaded.to(device=device, dtype=dtype)
    model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def _compile(model: nn.Module) -> Callable[[torch.Tensor], Any]:
    try:
        return torch.compile(model)
    except Exception as exc:  # any failure becomes one line
        raise UsageError(f"--compile: torch.compile failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def bench(model_or_spec: nn.Module | str | Path | Target, batches: Sequence[int] = (1,),
          options: BenchOptions = BenchOptions(), input: tuple[int, ...] | None = None,
          overrides: Mapping[str, Any] | None = None,
          progress: Progress | None = None) -> BenchReport:
    """Time a spec, bundled name, factory reference or nn.Module at each batch size.

    A module passed in is moved to the device and dtype in place (no copy of its weights).
    """
    if not batches:
        raise UsageError("no batch sizes given")
    device = resolve_device(options.device)
    dt = parse_dtype(options.dtype)
    threads = options.threads or torch.get_num_threads()
    if threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    notes: list[str] = []
    load, cpus = load_average(), os.cpu_count() or 1
    if device.type == "cpu" and load is not None and load > 0.5 * cpus:
        notes.append(f"machine busy before the run: load average {load:.2f} on {cpus} CPUs; "
                     "expect noisy wall times (see IQR/median; CPU ms is steadier)"
                     + ("; several threads wait on each other when a core is taken, "
                        "--threads 1 is steadier" if threads > 1 else ""))
    if isinstance(model_or_spec, nn.Module):
        loaded: ModelSpec | nn.Module = model_or_spec
        label, source = type(model_or_spec).__name__, type(model_or_spec).__name__
    else:
        target = (model_or_spec if isinstance(model_or_spec, Target)
                  else resolve(str(model_or_spec)))
        loaded = load_target(target, overrides, input)
        label, source = target.label, target.display
    input_shape = (loaded.input_shape if isinstance(loaded, ModelSpec)
                   else input or DEFAULT_INPUT)
    if options.channels_last and len(input_shape) != 3:
        raise UsageError(f"--channels-last needs a 4-D input (N, C, H, W); this model's "
                         f"input is {len(input_shape) + 1}-D")

    # Count (meta device, no memory), then refuse before allocating anything real.
    tables = {b: _count(loaded, input_shape, b, dt, label, source) for b in batches}
    estimates = {b: check_memory(tables[b], device) for b in sorted(set(batches))}
    if isinstance(loaded, ModelSpec):
        label = tables[batches[0]].model

    with _cpu_settings(device, threads):
        roof = get_roofline(device, dt, threads, recalibrate=options.recalibrate,
                            quick=options.quick_roofline, progress=progress)
        model = _materialize(loaded, device, dt, options.channels_last)
        forward: Callable[[torch.Tensor], Any] = _compile(model) if options.compile else model
        if options.compile:
            notes.append("whole-model times use torch.compile; per-layer times are eager")
        runs = []
        for b in batches:
            with torch.inference_mode():
                runs.append(_bench_batch(model, forward, tables[b], estimates[b], roof, device,
                                         dt, options, progress))
    return BenchReport(
        model=label, source=source, device=device.type, device_name=roof.device_name,
        dtype=dtype_name(dt), threads=threads if device.type == "cpu" else 0,
        channels_last=options.channels_last, compiled=options.compile,
        torch_version=torch.__version__, roofline=roof, runs=tuple(runs), notes=tuple(notes))


def _bench_batch(model: nn.Module, forward: Callable[[torch.Tensor], Any], table: CostTable,
                 memory: MemoryEstimate, roof: Roofline, device: torch.device,
                 dtype: torch.dtype, options: BenchOptions,
                 progress: Progress | None) -> BenchRun:
    batch = table.input[0]
    x = torch.randn(table.input, device=device).to(dtype)
    if options.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if options.compile:
        try:
            forward(x)
        except Exception as exc:  # compilation happens here
            raise UsageError(f"--compile: torch.compile failed: {_first_line(exc)}") from None
    timing = time_fn(lambda: forward(x), device, options.budget, progress,
                     f"batch {batch}: whole model")
    cuda_peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    roofs = layer_rooflines(table, roof)
    layer_pass = layer_whole = None
    measured: dict[str, Timing] = {}
    if options.per_layer:
        measured, layer_pass, layer_whole = time_layers(model, x, device, options.budget, progress,
                                           f"batch {batch}: per layer")
    layers = tuple(LayerResult(r, measured[r.name].median_s, measured[r.name].cpu_median_s)
                   if r.name in measured else LayerResult(r) for r in roofs)
    return BenchRun(
        batch=batch, input=table.input, macs=table.totals.macs, flops=table.totals.flops,
        bytes=sum(r.bytes for r in roofs), timing=timing,
        predicted_s=sum(r.predicted_s for r in roofs),
        compute_only_s=table.totals.flops / roof.peak_flops, memory=memory, layers=layers,
        layer_pass=layer_pass, layer_whole=layer_whole, cuda_peak_bytes=cuda_peak)


# --------------------------------------------------------------------------- rendering


def _ms(s: float | None) -> str:
    if s is None:
        return ""
    ms = s * 1e3
    return f"{ms:.3f}" if ms >= 0.01 or ms == 0 else f"{ms:.2g}"


def _mflops(flops: int) -> str:
    return f"{flops / 1e6:.2f}" if flops >= 1e4 or flops == 0 else f"{flops / 1e6:.2g}"


def _pct(x: float | None) -> str:
    if x is None:
        return ""
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1g}%"


def _intensity(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def roofline_line(roof: Roofline) -> str:
    """One line describing the machine's roofline and where it came from."""
    origin = "cached" if roof.from_cache else "measured now"
    load = "" if roof.load_avg is None else f", load {roof.load_avg:.2f}"
    return (f"roofline ({origin} {roof.measured_at}{load}): peak "
            f"{roof.peak_flops / 1e9:.1f} GFLOP/s (matmul n={roof.matmul_n}), bandwidth "
            f"{roof.bandwidth / 1e9:.1f} GB/s (copy "
            f"{roof.copy_bytes >> 20} MiB), ridge {roof.ridge:.2f} FLOP/byte")


def header_lines(report: BenchReport) -> list[str]:
    flags = [f for f, on in (("channels-last", report.channels_last),
                             ("torch.compile", report.compiled)) if on]
    threads = f", {report.threads} threads" if report.device == "cpu" else ""
    return [
        f"{report.model} ({report.source}) on {report.device} [{report.device_name}]"
        f"{threads}, {report.dtype}{', ' + ', '.join(flags) if flags else ''}, "
        f"torch {report.torch_version}",
        roofline_line(report.roofline),
    ]


def _sorted_layers(run: BenchRun, top: int | None) -> list[LayerResult]:
    rows = list(run.layers)
    if top:
        key = (lambda r: r.measured_s or 0.0) if run.layer_pass else (
            lambda r: r.roof.predicted_s)
        rows = sorted(rows, key=key, reverse=True)[:top]
    return rows


def rich_report(report: BenchReport, top: int | None = None) -> Any:
    """Summary table (one row per batch) and each batch's per-layer roofline table."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from cnncost.render.report import human, human_bytes

    parts: list[Any] = [Text("\n".join(header_lines(report)), style="bold")]
    summary = Table(box=box.SIMPLE_HEAVY, title="whole model", title_justify="left")
    for col in ("batch", "median ms", "IQR ms", "IQR/med", "min ms", "CPU ms", "samples",
                "images/s",
                "GFLOP/s", "% peak", "roofline ms", "MACs-only ms", "MACs", "memory est."):
        summary.add_column(col, justify="right")
    for r in report.runs:
        summary.add_row(str(r.batch), _ms(r.timing.median_s), _ms(r.timing.iqr_s),
                        _pct(r.timing.rel_iqr), _ms(r.timing.min_s), _ms(r.timing.cpu_median_s),
                        f"{len(r.timing.samples_s)}x{r.timing.number}",
                        f"{r.images_per_s:.1f}", f"{r.achieved_flops / 1e9:.1f}",
                        _pct(r.achieved_flops / report.roofline.peak_flops),
                        _ms(r.predicted_s), _ms(r.compute_only_s), human(r.macs),
                        human_bytes(r.memory.required_bytes))
    parts.append(summary)
    for r in report.runs:
        per = r.layer_pass is not None
        title = f"batch {r.batch}: layers on the roofline" + (f" (top {top})" if top else "")
        t = Table(box=box.SIMPLE_HEAVY, title=title, title_justify="left", show_footer=True)
        t.add_column("layer", footer="total")
        t.add_column("kind")
        t.add_column("MFLOPs", justify="right", footer=_mflops(r.flops))
        t.add_column("bytes", justify="right", footer=human_bytes(r.bytes))
        t.add_column("FLOP/B", justify="right", footer=_intensity(r.flops / r.bytes)
                     if r.bytes else "")
        t.add_column("bound", footer=f"{len(r.memory_bound())} mem")
        t.add_column("roofline ms", justify="right", footer=_ms(r.predicted_s))
        if per:
            t.add_column("measured ms", justify="right", footer=_ms(r.layer_sum_s))
            t.add_column("efficiency", justify="right",
                         footer=_pct(r.predicted_s / r.layer_sum_s) if r.layer_sum_s else "")
        for lr in _sorted_layers(r, top):
            row = [lr.roof.name, lr.roof.kind, _mflops(lr.roof.flops),
                   human_bytes(lr.roof.bytes), _intensity(lr.roof.intensity),
                   lr.roof.bound.value, _ms(lr.roof.predicted_s)]
            if per:
                row += [_ms(lr.measured_s), _pct(lr.efficiency)]
            t.add_row(*row, style="yellow" if lr.roof.bound is Bound.MEMORY else None)
        parts.append(t)
        if per and r.layer_sum_s:
            parts.append(Text(_layer_sum_note(r), style="dim"))
    parts.extend(Text(n, style="dim") for n in report.notes)
    parts.append(Text(
        "efficiency = roofline time / measured time; bytes = inputs + weights + outputs, "
        "each touched once (a lower bound on traffic)", style="dim"))
    return Group(*parts)


def table_width(rendered: Any) -> int:
    """The width the tables of a rich_report need to print without folding a column."""
    from rich.console import Console
    from rich.table import Table

    probe = Console(width=10_000, file=io.StringIO(), color_system=None)
    return max([0, *(int(probe.measure(r).maximum) for r in rendered.renderables
                     if isinstance(r, Table))])


def _layer_sum_note(r: BenchRun) -> str:
    assert r.layer_sum_s is not None and r.layer_whole is not None
    paired = r.layer_whole.median_s
    cpu, cpu_sum = r.layer_whole.cpu_median_s, r.layer_cpu_sum_s
    text = (f"batch {r.batch}: per-layer medians sum to {_ms(r.layer_sum_s)} ms wall, "
            f"{100 * (r.layer_sum_s / paired - 1):+.1f}% vs the eager whole model timed between "
            f"the per-layer passes ({_ms(paired)} ms)")
    if cpu and cpu_sum is not None:
        text += (f"; in CPU time {_ms(cpu_sum)} ms vs {_ms(cpu)} ms "
                 f"({100 * (cpu_sum / cpu - 1):+.1f}%)")
    return text


CSV_FIELDS = ("batch", "layer", "kind", "macs", "flops", "bytes", "intensity", "bound",
              "roofline_ms", "measured_ms", "efficiency", "iqr_ms", "images_per_s",
              "achieved_gflops", "cpu_ms")


def to_csv(report: BenchReport) -> str:
    """One row per batch and layer, plus a '(model)' row per batch with the whole-model time."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in report.runs:
        w.writerow([r.batch, "(model)", "total", r.macs, r.flops, r.bytes,
                    f"{r.flops / r.bytes:.4g}" if r.bytes else "", "",
                    f"{r.predicted_s * 1e3:.6g}", f"{r.timing.median_s * 1e3:.6g}",
                    f"{r.predicted_s / r.timing.median_s:.4g}",
                    f"{r.timing.iqr_s * 1e3:.6g}", f"{r.images_per_s:.6g}",
                    f"{r.achieved_flops / 1e9:.6g}",
                    "" if r.timing.cpu_median_s is None else f"{r.timing.cpu_median_s * 1e3:.6g}"])
        for lr in r.layers:
            f = lr.roof
            w.writerow([r.batch, f.name, f.kind, f.macs, f.flops, f.bytes,
                        "" if math.isinf(f.intensity) else f"{f.intensity:.4g}", f.bound.value,
                        f"{f.predicted_s * 1e3:.6g}",
                        "" if lr.measured_s is None else f"{lr.measured_s * 1e3:.6g}",
                        "" if lr.efficiency is None else f"{lr.efficiency:.4g}", "", "", "", ""])
    return buf.getvalue()


def to_markdown(report: BenchReport, top: int | None = None) -> str:
    """The summary and per-layer tables in Markdown."""
    lines = [f"# bench: {report.model}", "", *[f"- {h}" for h in header_lines(report)],
             *[f"- {n}" for n in report.notes], "",
             "| batch | median ms | IQR ms | IQR/median | images/s | GFLOP/s | roofline ms |"
             " MACs |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.runs:
        lines.append(f"| {r.batch} | {_ms(r.timing.median_s)} | {_ms(r.timing.iqr_s)} | "
                     f"{_pct(r.timing.rel_iqr)} | {r.images_per_s:.1f} | "
                     f"{r.achieved_flops / 1e9:.1f} | {_ms(r.predicted_s)} | {r.macs:,} |")
    for r in report.runs:
        per = r.layer_pass is not None
        lines += ["", f"## batch {r.batch}", "",
                  "| layer | kind | FLOPs | bytes | FLOP/B | bound | roofline ms |"
                  + (" measured ms | efficiency |" if per else ""),
                  "|---|---|---:|---:|---:|---|---:|" + ("---:|---:|" if per else "")]
        for lr in _sorted_layers(r, top):
            f = lr.roof
            extra = f" {_ms(lr.measured_s)} | {_pct(lr.efficiency)} |" if per else ""
            lines.append(f"| `{f.name}` | {f.kind} | {f.flops:,} | {f.bytes:,} | "
                         f"{_intensity(f.intensity)} | {f.bound.value} | "
                         f"{_ms(f.predicted_s)} |{extra}")
        if per and r.layer_sum_s:
            lines += ["", _layer_sum_note(r)]
    return "\n".join(lines) + "\n"


def with_notes(report: BenchReport, *notes: str) -> BenchReport:
    """A copy of the report with more notes."""
    return replace(report, notes=(*report.notes, *notes))

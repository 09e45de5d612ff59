"""Measured runtime of a whole model and of each layer, next to the roofline.

Counting says how much work a network does; this module says how long it takes on the
device at hand, and ``cnncost.measure.roofline`` says how long it could take at best. Method:

- the model runs for real (random weights, ``eval()``, ``torch.inference_mode``) on a
  random input, timed by ``cnncost.measure.timing`` (warm-up, adaptive repetitions,
  median and IQR);
- ``per_layer`` times every layer on real tensors (an fx Interpreter over a compiled spec,
  forward hooks on any other module; a module's own time excludes its children's), one
  pass per sample, and reports each layer's median next to its roofline time.

On the CPU, subnormal floats are flushed to zero while timing, so random weights cannot
trigger the slow subnormal path that trained weights do not take.

Before anything real is allocated, ``cnncost.measure.memory`` checks that the run fits in
free memory. Renderings are in ``cnncost.render.bench``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from cnncost.count.conventions import dtype_name, parse_dtype
from cnncost.count.drivers import count_module, count_spec
from cnncost.display import repr_html
from cnncost.errors import UsageError
from cnncost.graph.build import META_KEY, build_module
from cnncost.graph.walk import Step, graph_walk
from cnncost.measure.machine import check_threads
from cnncost.measure.memory import MemoryEstimate, check_memory
from cnncost.measure.roofline import (
    Bound,
    LayerRoofline,
    Roofline,
    get_roofline,
    layer_rooflines,
    load_average,
)
from cnncost.measure.timing import (
    Budget,
    Progress,
    Timing,
    rel_iqr,
    run_block,
    summarize,
    sync,
    time_fn,
)
from cnncost.sources import DEFAULT_INPUT, Target, load_target, resolve
from cnncost.spec import ModelSpec
from cnncost.table import CostTable

SCHEMA = "cnncost.bench/1"


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
    sync(device)
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
    sync(device)

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
        sync(device)
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
        wall, cpu_s = run_block(lambda: model(x), 1, device)
        wholes.append(wall)
        if cpu_s is not None:
            wholes_cpu.append(cpu_s)
        elapsed = time.perf_counter() - t_begin
        if progress:
            progress(label, budget.fraction(len(passes), elapsed))
        if budget.done(len(passes), elapsed, rel_iqr(walls)):
            break
    names = list(passes[0][0])
    per_layer = {n: summarize([w.get(n, 0.0) for w, _ in passes], 1, 1,
                              [c[n] for _, c in passes if n in c]) for n in names}
    return per_layer, summarize(walls, 1, 1), summarize(wholes, 1, 1, wholes_cpu)


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
    runtime: str = "torch"  # or "onnxruntime" (cnncost.measure.ort)

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
            "runtime": self.runtime,
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
class BenchSetting:
    """What every benchmark records beside its runs: the model, the machine's settings,
    torch's version and the roofline (inference here, training steps in bench_train)."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    model: str
    source: str
    device: str
    device_name: str
    dtype: str
    threads: int
    channels_last: bool
    torch_version: str
    roofline: Roofline

    @staticmethod
    def fields(model: str, source: str, device: torch.device, dtype: torch.dtype,
               threads: int | None, channels_last: bool, roofline: Roofline) -> dict[str, Any]:
        """The setting of a benchmark run on ``device`` (threads only on a CPU), as keywords
        for a report's constructor."""
        return {"model": model, "source": source, "device": device.type,
                "device_name": roofline.device_name, "dtype": dtype_name(dtype),
                "threads": threads if device.type == "cpu" else 0,
                "channels_last": channels_last, "torch_version": torch.__version__,
                "roofline": roofline}


@dataclass(frozen=True)
class BenchReport(BenchSetting):
    """A benchmark of one model at one or more batch sizes on one device."""

    compiled: bool
    runs: tuple[BenchRun, ...]
    notes: tuple[str, ...] = field(default=())
    ort_version: str = ""  # where runs are on onnxruntime

    def run(self, batch: int, runtime: str | None = None) -> BenchRun:
        """The run at ``batch`` (on ``runtime``: the first one's by default)."""
        for r in self.runs:
            if r.batch == batch and runtime in (None, r.runtime):
                return r
        raise KeyError(f"no run at batch {batch}")

    def to_dict(self) -> dict[str, Any]:
        return bench_document(self, SCHEMA, {"compile": self.compiled})

    def to_json(self) -> str:
        return finite_json(self.to_dict())


def bench_document(report: Any, schema: str, own: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document of a benchmark report (inference or training steps): the model, the
    machine's settings, then ``own`` (what this kind of benchmark adds), torch's version, the
    roofline, notes and runs."""
    roofline = report.roofline
    return {
        "schema": schema, "model": report.model, "source": report.source,
        "device": report.device, "device_name": report.device_name, "dtype": report.dtype,
        "threads": report.threads, "channels_last": report.channels_last, **own,
        "torch": report.torch_version,
        **({"onnxruntime": report.ort_version} if getattr(report, "ort_version", "") else {}),
        "roofline": {**roofline.to_dict(), "ridge": roofline.ridge,
                     "from_cache": roofline.from_cache},
        "notes": list(report.notes), "runs": [r.to_dict() for r in report.runs],
    }


def finite_json(doc: Mapping[str, Any]) -> str:
    """Valid JSON: a figure that is not finite (a time too short to divide by) is null."""
    return json.dumps(_finite(doc), indent=1, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
    optimizer: str = "sgd"  # training steps (cnncost.measure.bench_train) only


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
    threads = check_threads(options.threads or torch.get_num_threads())
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
        **BenchSetting.fields(label, source, device, dt, threads, options.channels_last, roof),
        compiled=options.compile, runs=tuple(runs), notes=tuple(notes))


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


def with_notes(report: BenchReport, *notes: str) -> BenchReport:
    """A copy of the report with more notes."""
    return replace(report, notes=(*report.notes, *notes))

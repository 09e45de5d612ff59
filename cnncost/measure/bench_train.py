"""Measured training steps (``cnncost bench MODEL --train``): time, FLOP/s, peak memory.

A step is what a training loop does per batch: ``optimizer.zero_grad(set_to_none=True)``,
forward (``model.train()``: batch statistics, dropout), the loss (the sum of the outputs,
as the count takes it), ``loss.backward()``, ``optimizer.step()``. The model has random
weights and sees a random input; the optimizer is torch.optim's with its defaults (its
update as the conventions count it: cnncost.count.conventions.OPTIMIZERS) and a small
learning rate. Timing uses the inference benchmark's method (cnncost.measure.bench.time_fn:
warm-up, blocks of calls, median and IQR, CUDA events on GPU).

After the timing (the optimizer's state exists, as in any step but the first), one more
step is measured for its peak memory, gradients set to None first:

- CUDA: ``torch.cuda.max_memory_allocated`` over the step (reset just before it): every
  byte the caching allocator hands out, parameters, state and input included;
- CPU: torch.profiler's memory events (every allocation and free of PyTorch's CPU
  allocator, in time order) summed over the step, the largest running sum, plus the bytes
  that exist before the step (parameters, buffers, optimizer state, input, read off the
  tensors), as benchmarks/bench_peak_memory.py measures a forward.

The estimate beside it is the count's (``training_memory_bytes`` of a train-mode table at
the run's batch and dtype), and achieved FLOP/s are its ``step_flops`` (policy all) over
the measured median.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnncost.count.conventions import OPTIMIZERS, parse_dtype
from cnncost.count.drivers import count_module, count_spec
from cnncost.errors import UsageError
from cnncost.measure.bench import (
    BenchOptions,
    BenchSetting,
    _cpu_settings,
    _materialize,
    bench_document,
    finite_json,
    resolve_device,
)
from cnncost.measure.machine import check_threads
from cnncost.measure.memory import InsufficientMemoryError, free_limit, workspace_bytes
from cnncost.measure.roofline import Roofline, get_roofline, load_average
from cnncost.measure.timing import Progress, Timing, time_fn
from cnncost.sources import DEFAULT_INPUT, Target, load_target, resolve
from cnncost.spec import ModelSpec
from cnncost.table import CostTable

SCHEMA = "cnncost.bench-train/1"
DEFAULT_OPTIONS = BenchOptions()
LEARNING_RATE = 1e-5  # small: random weights stay in range over many timed steps


@dataclass(frozen=True)
class TrainRun:
    """One batch size: the step's timing, its counted work and its memory, both ways."""

    batch: int
    input: tuple[int, ...]
    optimizer: str
    macs: int  # forward + backward
    step_flops: int  # forward + backward + update (policy all)
    timing: Timing
    estimated_peak_bytes: int  # the count's training_memory_bytes[optimizer]
    measured_peak_bytes: int | None
    compute_only_s: float  # step_flops / the roofline's peak FLOP/s

    @property
    def images_per_s(self) -> float:
        return self.batch / self.timing.median_s

    @property
    def achieved_flops(self) -> float:
        """Counted step FLOPs / median step time (FLOP/s)."""
        return self.step_flops / self.timing.median_s

    @property
    def memory_ratio(self) -> float | None:
        """Estimated / measured peak memory."""
        if not self.measured_peak_bytes:
            return None
        return self.estimated_peak_bytes / self.measured_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "input": list(self.input), "optimizer": self.optimizer,
                "macs": self.macs, "step_flops": self.step_flops,
                "timing": self.timing.to_dict(), "step_ms": self.timing.median_s * 1e3,
                "images_per_s": self.images_per_s,
                "achieved_gflops": self.achieved_flops / 1e9,
                "compute_only_s": self.compute_only_s,
                "estimated_peak_bytes": self.estimated_peak_bytes,
                "measured_peak_bytes": self.measured_peak_bytes,
                "memory_ratio": self.memory_ratio}


@dataclass(frozen=True)
class TrainBenchReport(BenchSetting):
    """Training steps of one model at one or more batch sizes on one device."""

    optimizer: str
    peak_method: str
    runs: tuple[TrainRun, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return bench_document(self, SCHEMA, {"optimizer": self.optimizer,
                                             "peak_method": self.peak_method})

    def to_json(self) -> str:
        return finite_json(self.to_dict())


# --------------------------------------------------------------------------- a step


def make_optimizer(name: str, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """torch.optim's optimizer for one of OPTIMIZERS, with its defaults."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=LEARNING_RATE)
    if name == "sgd_momentum":
        return torch.optim.SGD(params, lr=LEARNING_RATE, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=LEARNING_RATE)
    raise UsageError(f"--optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")


def make_step(model: nn.Module, x: torch.Tensor,
              optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """One training step: zero_grad (to None), forward, loss = sum of outputs, backward,
    update."""
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        outs = [out] if isinstance(out, torch.Tensor) else [
            t for t in (out.values() if isinstance(out, Mapping) else out)
            if isinstance(t, torch.Tensor)]
        loss = sum(t.float().sum() for t in outs if t.requires_grad)
        if not isinstance(loss, torch.Tensor):
            raise UsageError("nothing to train: no output depends on a parameter that "
                             "requires a gradient")
        loss.backward()
        optimizer.step()

    return step


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for state in optimizer.state.values()
               for v in state.values() if isinstance(v, torch.Tensor))


def measure_peak(model: nn.Module, x: torch.Tensor, optimizer: torch.optim.Optimizer,
                 step: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated during one step (after at least one: state exists)."""
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    from torch.profiler import ProfilerActivity, profile

    before = (sum(t.numel() * t.element_size() for t in model.state_dict().values())
              + _state_bytes(optimizer) + x.numel() * x.element_size())
    optimizer.zero_grad(set_to_none=True)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU],
                                  profile_memory=True) as prof:
        step()
    return before + profiled_peak_bytes(prof)


def profiled_peak_bytes(prof: Any) -> int:
    """The peak of live bytes in a ``torch.profiler.profile(profile_memory=True)`` run: its
    ``[memory]`` events (+bytes on allocation, -bytes on free) summed in time order."""
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints a line on stderr as it starts and stops: not ours to
    show (exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


PEAK_METHOD = {"cuda": "torch.cuda.max_memory_allocated over one step",
               "cpu": "torch.profiler memory events over one step + parameters, buffers, "
                      "optimizer state and input"}


# --------------------------------------------------------------------------- the benchmark


def count_step(loaded: ModelSpec | nn.Module, input_shape: tuple[int, ...], batch: int,
               dtype: torch.dtype, label: str, source: str) -> CostTable:
    """The train-mode count of one step at ``batch`` (policy all: every FLOP)."""
    if isinstance(loaded, ModelSpec):
        return count_spec(loaded, batch, dtype, source=source, mode="train")
    return count_module(loaded, input_shape, batch, dtype, name=label, source=source,
                        mode="train")


def _check_fits(table: CostTable, optimizer: str, device: torch.device) -> None:
    """The step's estimate plus the backend's workspace (cnncost.measure.memory, as bench
    checks a forward pass) against the tightest limit on this process."""
    from cnncost.fmt import human_bytes

    work = workspace_bytes(table, device)
    need = table.totals.training_memory_bytes[optimizer] + work
    free = free_limit(device)
    if free is not None and need > free.bytes:
        raise InsufficientMemoryError(
            f"{table.model}: a training step at batch {table.input[0]} ({optimizer}) needs "
            f"about {human_bytes(need)} (runtime and allocator {human_bytes(work)}) but only "
            f"{human_bytes(free.bytes)} is free ({free.limit}); use a smaller --batch or "
            "--input")


def bench_train(model_or_spec: nn.Module | str | Path | Target, batches: Sequence[int] = (1,),
                options: BenchOptions = DEFAULT_OPTIONS, input: tuple[int, ...] | None = None,
                overrides: Mapping[str, Any] | None = None,
                progress: Progress | None = None) -> TrainBenchReport:
    """Time training steps of a spec, bundled name, factory or nn.Module at each batch, with
    ``options.optimizer``."""
    optimizer = options.optimizer
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    if options.compile or options.per_layer:
        raise UsageError("bench --train times whole eager steps: --compile and --per-layer "
                         "apply to inference only")
    if not batches:
        raise UsageError("no batch sizes given")
    device = resolve_device(options.device)
    dt = parse_dtype(options.dtype)
    threads = check_threads(options.threads or torch.get_num_threads())
    if isinstance(model_or_spec, nn.Module):
        loaded: ModelSpec | nn.Module = model_or_spec
        label = source = type(model_or_spec).__name__
    else:
        target = (model_or_spec if isinstance(model_or_spec, Target)
                  else resolve(str(model_or_spec)))
        loaded = load_target(target, overrides, input)
        label, source = target.label, target.display
    input_shape = (loaded.input_shape if isinstance(loaded, ModelSpec)
                   else input or DEFAULT_INPUT)
    tables = {b: count_step(loaded, input_shape, b, dt, label, source) for b in batches}
    for b in sorted(set(batches)):
        _check_fits(tables[b], optimizer, device)
    label = tables[batches[0]].model
    notes = _notes(device, threads)
    with _cpu_settings(device, threads):
        roof = get_roofline(device, dt, threads, recalibrate=options.recalibrate,
                            quick=options.quick_roofline, progress=progress)
        model = _materialize(loaded, device, dt, options.channels_last).train()
        runs = tuple(_bench_batch(model, tables[b], optimizer, roof, device, dt, options,
                                  progress) for b in batches)
    return TrainBenchReport(
        **BenchSetting.fields(label, source, device, dt, threads, options.channels_last, roof),
        optimizer=optimizer, peak_method=PEAK_METHOD[device.type], runs=runs, notes=notes)


def _notes(device: torch.device, threads: int) -> tuple[str, ...]:
    load, cpus = load_average(), os.cpu_count() or 1
    if device.type == "cpu" and load is not None and load > 0.5 * cpus:
        return (f"machine busy before the run: load average {load:.2f} on {cpus} CPUs; "
                "expect noisy wall times (see IQR/median)",)
    return ()


def _bench_batch(model: nn.Module, table: CostTable, optimizer: str, roof: Roofline,
                 device: torch.device, dtype: torch.dtype, options: BenchOptions,
                 progress: Progress | None) -> TrainRun:
    tr = table.totals.train
    assert tr is not None
    batch = table.input[0]
    x = torch.randn(table.input, device=device).to(dtype)
    if options.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    step = make_step(model, x, opt)
    timing = time_fn(step, device, options.budget, progress, f"batch {batch}: training step")
    measured = measure_peak(model, x, opt, step, device)
    del opt, step
    return TrainRun(batch=batch, input=table.input, optimizer=optimizer,
                    macs=table.totals.macs + tr.backward_macs,
                    step_flops=tr.step_flops[optimizer], timing=timing,
                    estimated_peak_bytes=table.totals.training_memory_bytes[optimizer],
                    measured_peak_bytes=measured,
                    compute_only_s=tr.step_flops[optimizer] / roof.peak_flops)

"""Calibrating this machine: time kernels of every op class, adaptively, then fit.

Method (after nn-Meter's adaptive data sampling, Zhang et al., MobiSys 2021):

1. **Prior round** (about half the budget): kernels drawn from each class's ranges
   (``cnncost.predict.kernels``), the time spent on a class in proportion to its share;
2. **Adaptive rounds**: each class's baseline is fitted, every sample predicted by a fit that
   did not see it (k-fold), and the time left is spent where the held-out error is high: on
   the classes with the largest error, on new kernels drawn near (in log-feature space) their
   worst-predicted samples;
3. **Networks** (a sixth of the budget): random whole CNNs made of the same families of layers
   (``kernels.network``), each timed as ``bench`` times a model;
4. **Fit**: each class's predictor on all its samples (``cnncost.predict.fit``); then, on the
   networks, what a layer costs inside a model beyond its isolated prediction (a scale and a
   time per layer: the caches it shares, the graph's own calls) and the cost of the
   whole-model call, each network predicted by a fit without it for the held-out error. With
   too few networks the call is a compiled spec of one identity layer against that layer.

Every kernel is a one-layer spec counted by the analytic engine (its features come from the
same code as a predicted layer's), built by the same layer factories a benchmark builds, and
timed with the bench's method (``cnncost.measure.timing.time_fn``: warm-up, blocks of >= 1 ms,
median; CUDA events on a GPU) under the bench's CPU settings (threads pinned, subnormals
flushed), in ``torch.inference_mode`` as bench runs models. With one CPU thread a kernel's
time is its process CPU time where that is shorter than the wall clock (the roofline's rule):
a calibration on a shared machine then measures the work, not the other processes.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from cnncost.count.analytic import count_spec
from cnncost.count.conventions import dtype_name, parse_dtype
from cnncost.errors import SpecError, UsageError
from cnncost.graph.build import build_module, op_args, op_target
from cnncost.measure.bench import _cpu_settings, resolve_device
from cnncost.measure.machine import check_threads, load_average, machine_key
from cnncost.measure.roofline import device_name, element_size
from cnncost.measure.timing import Budget, Progress, time_fn
from cnncost.predict import fit
from cnncost.predict.calibration import Calibration, calibration_key
from cnncost.predict.features import FEATURES, layer_features
from cnncost.predict.kernels import OP_CLASSES, Kernel, network
from cnncost.spec import LayerSpec, ModelSpec, parse_spec

DEFAULT_MAX_TIME = 180.0
MIN_MAX_TIME = 5.0
# One kernel's timing: short, as each sample is one of hundreds (the bench's own default is
# for one model).
KERNEL_BUDGET = Budget(min_samples=5, min_time=0.02, max_time=0.1, warmup_time=0.01,
                       max_samples=200)
PRIOR_SHARE = 0.5  # of the budget, before the adaptive rounds
NETWORK_SHARE = 0.15  # random whole networks, for what a layer costs in context
MIN_NETWORKS = 8  # fewer: no context fit (a layer is its isolated prediction)
FIT_SHARE = 0.1  # kept for the final fit
ADAPTIVE_ROUNDS = 3
POOL = 8  # prior draws per new adaptive kernel, of which the nearest to a bad sample is kept
MAX_POOL = 400
MAX_NEW = 200  # new kernels of one class in one adaptive round


@dataclass(frozen=True)
class CalibrateOptions:
    """Where and how long: device, dtype, threads (CPU), the time budget (s), the seed."""

    device: str = "auto"
    dtype: str = "float32"
    threads: int | None = None
    max_time: float = DEFAULT_MAX_TIME
    seed: int = 0
    trees: bool = True  # fit trees where scikit-learn is installed


@dataclass
class _Samples:
    """What has been measured so far, per class: feature vectors, seconds, time spent."""

    xs: dict[str, list[tuple[float, ...]]]
    ys: dict[str, list[float]]
    spent: dict[str, float]

    @classmethod
    def empty(cls) -> _Samples:
        return cls({n: [] for n in OP_CLASSES}, {n: [] for n in OP_CLASSES},
                   dict.fromkeys(OP_CLASSES, 0.0))


class _Timer:
    """Prepares and times kernels on one device at one dtype."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.elem = element_size(dtype_name(dtype))
        self.single = device.type == "cpu" and torch.get_num_threads() == 1

    def prepare(self, op_class: str, kernel: Kernel) -> tuple[tuple[float, ...], LayerSpec,
                                                              ModelSpec]:
        """The features of a kernel's timed layer (its last one of ``op_class``)."""
        spec = parse_spec(kernel.spec, "<kernel>")
        table = count_spec(spec, kernel.batch, self.dtype)
        for row, layer in zip(reversed(table.layers), reversed(spec.layers), strict=True):
            feats = layer_features(row, self.elem)
            if feats.op_class == op_class and not feats.stand_in:
                return feats.values, layer, spec
        raise AssertionError(f"kernel of {op_class} has no layer of it: {kernel.spec}")

    def call(self, layer: LayerSpec, batch: int) -> Callable[[], Any]:
        """The layer's call on random inputs, as the model's graph makes it."""
        inputs = tuple(torch.randn((batch, *s), device=self.device).to(self.dtype)
                       for s in layer.in_shapes)
        if layer.built is not None:
            module = layer.built.make().to(device=self.device, dtype=self.dtype).eval()
            return lambda: module(*inputs)
        target, kwargs = op_target(layer)
        args = op_args(layer, inputs)
        return lambda: target(*args, **kwargs)

    def median(self, fn: Callable[[], Any]) -> float:
        """The median time of a call. With one CPU thread, its process CPU time when that is
        shorter (as the roofline's): other processes holding the core stretch the wall
        clock, not the work; with several threads CPU time sums their spin-waits too."""
        t = time_fn(fn, self.device, KERNEL_BUDGET)
        cpu = t.cpu_median_s
        if self.single and cpu is not None and 0 < cpu < t.median_s:
            return cpu
        return t.median_s

    def seconds(self, layer: LayerSpec, batch: int) -> float:
        return self.median(self.call(layer, batch))

    def overhead(self) -> float:
        """A compiled spec's call beyond its one layer's: what a whole model adds."""
        spec = parse_spec("name: k\ninput: [8]\nlayers:\n  - identity\n", "<kernel>")
        gm = build_module(spec, device=self.device, dtype=self.dtype)
        x = torch.randn(1, 8, device=self.device).to(self.dtype)
        layer = self.call(spec.layers[0], 1)
        return max(0.0, self.median(lambda: gm(x)) - self.median(layer))


def _log_features(x: tuple[float, ...]) -> list[float]:
    return [math.log1p(v) if v >= 0 else 0.0 for v in x]


def _nearest(pool: list[tuple[tuple[float, ...], Any]],
             targets: list[tuple[float, ...]]) -> list[Any]:
    """For each target, the pool entry nearest to it in log-feature space (each used once)."""
    left = [(_log_features(x), item) for x, item in pool]
    chosen = []
    for t in targets:
        if not left:
            break
        lt = _log_features(t)
        best = min(range(len(left)), key=lambda i: sum(
            (a - b) ** 2 for a, b in zip(left[i][0], lt, strict=True)))
        chosen.append(left.pop(best)[1])
    return chosen


class Calibrator:
    """One calibration run (see the module docstring)."""

    def __init__(self, options: CalibrateOptions, timer: _Timer,
                 progress: Progress | None) -> None:
        self.options, self.timer, self.progress = options, timer, progress
        self.rng = random.Random(options.seed)
        self.samples = _Samples.empty()
        self.t0 = time.perf_counter()
        self.use_trees = options.trees and fit.sklearn_version() is not None
        # random networks: each layer's (class, features, calls), and the measured seconds
        self.networks: list[tuple[list[tuple[str, tuple[float, ...], int]], float]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _tick(self, label: str) -> None:
        if self.progress:
            self.progress(label, min(1.0, self.elapsed() / self.options.max_time))

    def measure(self, op_class: str, kernel: Kernel) -> None:
        start = time.perf_counter()
        try:
            x, layer, _ = self.timer.prepare(op_class, kernel)
        except SpecError:  # a kernel drawn past a spec's bounds: drawn again, never fatal
            return
        seconds = self.timer.seconds(layer, kernel.batch)
        s = self.samples
        s.xs[op_class].append(x)
        s.ys[op_class].append(seconds)
        s.spent[op_class] += time.perf_counter() - start
        self._tick(f"calibrating: {op_class}")

    def prior_round(self, until: float) -> None:
        """Kernels from the prior, each class's time in proportion to its share; every class
        gets at least a few samples."""
        shares = {n: c.share for n, c in OP_CLASSES.items()}
        while True:
            few = [n for n in OP_CLASSES if len(self.samples.ys[n]) < 4]
            if not few and self.elapsed() >= until:
                return
            name = few[0] if few else min(shares, key=lambda n: self.samples.spent[n] / shares[n])
            self.measure(name, OP_CLASSES[name].sample(self.rng))

    def adaptive_round(self, until: float) -> None:
        """Time left until ``until``, spent on the classes with the highest held-out error
        (their baseline's: cheap to cross-validate, and high where a class's time is hard to
        follow), near their worst-predicted samples."""
        priority = {}
        worst: dict[str, list[tuple[float, ...]]] = {}
        for name in OP_CLASSES:
            xs, ys = self.samples.xs[name], self.samples.ys[name]
            errors = fit.held_out(xs, ys, False, terms=OP_CLASSES[name].terms)
            if not errors:
                continue
            rms = math.sqrt(sum(e * e for e in errors) / len(errors))
            priority[name] = OP_CLASSES[name].share * rms
            order = sorted(range(len(errors)), key=lambda i: -abs(errors[i]))
            worst[name] = [xs[i] for i in order[:max(2, len(order) // 5)]]
        total = sum(priority.values()) or 1.0
        budget = max(0.0, until - self.elapsed())
        for name in sorted(priority, key=lambda n: -priority[n]):
            share = budget * priority[name] / total
            cost = self.samples.spent[name] / max(1, len(self.samples.ys[name]))
            wanted = max(1, min(MAX_NEW, int(share / max(cost, 1e-3)) + 1))
            stop = self.elapsed() + share
            for kernel in self._near(name, worst[name], wanted):
                if self.elapsed() >= min(stop, until):
                    break
                self.measure(name, kernel)

    def _near(self, name: str, targets: list[tuple[float, ...]], wanted: int) -> list[Kernel]:
        """``wanted`` new kernels of a class, each the nearest of a pool of prior draws to one
        of ``targets`` in turn."""
        pool = []
        for _ in range(min(POOL * wanted, MAX_POOL)):
            kernel = OP_CLASSES[name].sample(self.rng)
            try:
                pool.append((self.timer.prepare(name, kernel)[0], kernel))
            except SpecError:
                continue
        return _nearest(pool, [targets[i % len(targets)] for i in range(wanted)])

    def network_round(self, until: float) -> None:
        """Random whole networks (``kernels.network``), each compiled and timed as ``bench``
        times a model, until ``until``."""
        timer = self.timer
        while self.elapsed() < until:
            kernel = network(self.rng)
            spec = parse_spec(kernel.spec, "<network>")
            table = count_spec(spec, kernel.batch, timer.dtype)
            layers = [(f.op_class, f.values, f.calls)
                      for f in (layer_features(r, timer.elem) for r in table.layers)]
            gm = build_module(spec, device=timer.device, dtype=timer.dtype)
            x = torch.randn((kernel.batch, *spec.input_shape), device=timer.device).to(
                timer.dtype)
            self.networks.append((layers, timer.median(functools.partial(gm, x))))
            self._tick("calibrating: networks")

    def fit_context(self, classes: dict[str, dict[str, Any]],
                    overhead: float) -> tuple[dict[str, Any], float]:
        """What the layers' isolated predictions miss inside the networks (a scale, a time per
        layer, a time per call), and its held-out error; the call's time."""
        sums, counts, ys = [], [], []
        for layers, seconds in self.networks:
            sums.append(sum(fit.predict_seconds(classes[c], x) * calls
                            for c, x, calls in layers if c in classes))
            counts.append(float(sum(calls for _, _, calls in layers)))
            ys.append(seconds)
        context: dict[str, Any] = {**fit.NO_CONTEXT, "networks": [
            list(v) for v in zip(sums, counts, ys, strict=True)], "error": None,
            "isolated_error": fit.error_summary(
                [math.log((s + overhead) / y) for s, y in zip(sums, ys, strict=True)])
            if ys else None}
        if len(ys) < MIN_NETWORKS:
            return context, overhead
        scale, per_layer, call = fit.fit_context(sums, counts, ys)
        context.update(scale=scale, per_layer_s=per_layer,
                       error=fit.error_summary(fit.context_held_out(sums, counts, ys)))
        return context, call

    def fit_all(self) -> dict[str, dict[str, Any]]:
        classes = {}
        for name in OP_CLASSES:
            xs, ys = self.samples.xs[name], self.samples.ys[name]
            if ys:
                self._tick(f"fitting: {name}")
                classes[name] = fit.fit_class(xs, ys, self.use_trees, OP_CLASSES[name].terms)
        return classes


def calibrate(options: CalibrateOptions = CalibrateOptions(),
              progress: Progress | None = None) -> Calibration:
    """Time kernels of every op class on this machine within ``options.max_time`` seconds and
    fit a predictor per class (the caller saves it: ``cnncost.predict.calibration.save``)."""
    if not options.max_time >= MIN_MAX_TIME:
        raise UsageError(f"--max-time {options.max_time:g}: a calibration needs at least "
                         f"{MIN_MAX_TIME:g} seconds (default {DEFAULT_MAX_TIME:g})")
    device = resolve_device(options.device)
    dt = parse_dtype(options.dtype)
    threads = check_threads(options.threads or torch.get_num_threads())
    load_before = load_average()
    with _cpu_settings(device, threads), torch.inference_mode():
        timer = _Timer(device, dt)  # once the threads are set
        run = Calibrator(options, timer, progress)
        overhead = timer.overhead()
        budget = options.max_time
        run.prior_round(budget * PRIOR_SHARE)
        run.network_round(budget * (PRIOR_SHARE + NETWORK_SHARE))
        span = budget * (1 - FIT_SHARE) - run.elapsed()
        for r in range(ADAPTIVE_ROUNDS):
            run.adaptive_round(run.elapsed() + span / ADAPTIVE_ROUNDS if r < ADAPTIVE_ROUNDS - 1
                               else budget * (1 - FIT_SHARE))
        classes = run.fit_all()
        context, overhead = run.fit_context(classes, overhead)
    name = device_name(device)
    threads_key = threads if device.type == "cpu" else 0
    key = calibration_key(machine_key(device.type, name, dtype_name(dt), threads_key),
                          torch.__version__)
    sk = fit.sklearn_version() if run.use_trees else None
    return Calibration(
        key=key, device=device.type, device_name=name, dtype=dtype_name(dt),
        threads=threads_key, torch_version=torch.__version__,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        overhead_s=overhead, classes=classes, context=context,
        samples={n: [[*x, y] for x, y in zip(run.samples.xs[n], run.samples.ys[n],
                                             strict=True)]
                 for n in OP_CLASSES if run.samples.ys[n]},
        budget_s=budget, elapsed_s=run.elapsed(), load_avg=load_before,
        load_avg_after=load_average(), trees=f"scikit-learn {sk}" if sk else None)


__all__ = ["DEFAULT_MAX_TIME", "FEATURES", "CalibrateOptions", "calibrate"]

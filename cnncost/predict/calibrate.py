"""Calibrating this machine: time kernels of every op class, adaptively, then fit.

Method (after nn-Meter's adaptive data sampling, Zhang et al., MobiSys 2021):

1. **Prior round** (two fifths of the budget): kernels drawn from each class's ranges
   (``cnncost.predict.kernels``), the time spent on a class in proportion to its share; the
   classes of MACs spend a part of theirs on heavy kernels (of at least
   ``kernels.HEAVY_WORK`` MACs), which would otherwise be few;
2. **Networks** (a quarter): random whole CNNs made of the same families of layers
   (``kernels.network``);
3. **Adaptive rounds**: each class's baseline is fitted, every sample predicted by a fit that
   did not see it (k-fold), and the time left is spent where the held-out error is high: on
   the classes with the largest error, on new kernels drawn near (in log-feature space) their
   worst-predicted samples (errors weighed as the fit weighs them: each half decade of
   measured time alike, ``fit.time_weights``);
4. **Fit**: each class's predictor on all its samples (``cnncost.predict.fit``); then, on the
   networks, what a whole model's call costs beyond its layers' (a time per layer: the
   graph's own calls; a time per call; a scale), each network predicted by a fit without it
   for the held-out error.

A kernel is a short spec: the drawn layer in the context a network gives it (a layer before
it, a batch norm and an activation after a convolution). Kernels and networks are compiled
as ``bench`` compiles a model and timed as ``bench --per-layer`` times one: passes over the
graph, layer by layer, after a warm-up pass, each layer's median over the passes; every
layer is a sample of its class, timed where it runs (its input just written by the layer
before it, its output in memory the allocator hands a network), since a layer costs more
there than alone, repeating on inputs its own last call left in the caches (two to three
times more for a batch norm on this repository's 2-core Xeon). A network is also timed as a
whole, between its passes. Threads are pinned and subnormals flushed as ``bench`` does, in
``torch.inference_mode``. With one CPU thread a time is the process CPU time (the
roofline's rule): a calibration on a shared machine then measures the work, not the other
processes; otherwise the wall clock (CUDA events on a GPU).

Every kernel is counted by the analytic engine (its features come from the same code as a
predicted layer's), never one of the bundled models' layers.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from cnncost.count.analytic import count_spec
from cnncost.count.conventions import dtype_name, parse_dtype
from cnncost.errors import SpecError, UsageError
from cnncost.graph.build import build_module
from cnncost.measure.bench import _Clock, _cpu_settings, _GraphPlan, _spec_pass, resolve_device
from cnncost.measure.machine import check_threads, load_average, machine_key
from cnncost.measure.roofline import device_name, element_size
from cnncost.measure.timing import Budget, Progress, run_block
from cnncost.predict import fit
from cnncost.predict.calibration import Calibration, calibration_key
from cnncost.predict.features import FEATURES, LayerFeatures, table_features
from cnncost.predict.kernels import OP_CLASSES, Kernel, network
from cnncost.spec import ModelSpec, parse_spec

DEFAULT_MAX_TIME = 240.0  # with the fit, within the 5 minutes issue 24 allows
MIN_MAX_TIME = 5.0
# One kernel's passes: short, as each kernel is one of hundreds (the bench's own default is
# for one model); at least 5 passes where they take under 0.1 s each.
KERNEL_BUDGET = Budget(min_samples=5, min_time=0.03, max_time=0.5, warmup_time=0.01,
                       max_samples=60)
PRIOR_SHARE = 0.4  # of the budget, before the networks and the adaptive rounds
NETWORK_SHARE = 0.25  # random whole networks: layers in context, and the model's call
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
    """Compiles and times kernels on one device at one dtype, layer by layer."""

    def __init__(self, device: torch.device, dtype: torch.dtype, threads: int) -> None:
        self.device, self.dtype = device, dtype
        self.elem = element_size(dtype_name(dtype))
        self.threads = threads if device.type == "cpu" else 0
        self.single = device.type == "cpu" and threads == 1

    def features(self, spec: ModelSpec, batch: int) -> list[LayerFeatures]:
        """Every layer's class and features, in the spec's order."""
        table = count_spec(spec, batch, self.dtype)
        return table_features(table.layers, self.elem, self.threads)

    def target(self, op_class: str, kernel: Kernel) -> tuple[float, ...]:
        """The features of a kernel's drawn layer: its last of ``op_class`` before the
        ``follow`` layers of its context."""
        feats = self.features(parse_spec(kernel.spec, "<kernel>"), kernel.batch)
        for f in reversed(feats[:len(feats) - kernel.follow]):
            if f.op_class == op_class and not f.stand_in:
                return f.values
        raise AssertionError(f"kernel of {op_class} has no layer of it: {kernel.spec}")

    def layers(self, spec: ModelSpec, batch: int, whole: bool = False,
               budget: Budget | None = None) -> tuple[list[float], float | None]:
        """Each layer's median time over passes of the compiled spec (in the spec's order)
        and, when ``whole``, the median of plain calls of the model between the passes."""
        budget = budget or KERNEL_BUDGET
        gm = build_module(spec, device=self.device, dtype=self.dtype)
        x = torch.randn((batch, *spec.input_shape), device=self.device).to(self.dtype)
        plan, clock = _GraphPlan(gm), _Clock(self.device)
        t0 = time.perf_counter()
        while True:  # warm-up: the libraries make their kernels at the first call
            _spec_pass(plan, x, clock, self.device)
            if time.perf_counter() - t0 >= budget.warmup_time:
                break
        passes: list[dict[str, float]] = []
        calls: list[float] = []
        t0 = time.perf_counter()
        while True:
            wall, cpu = _spec_pass(plan, x, clock, self.device)
            passes.append(cpu if self.single else wall)
            if whole:
                w, c = run_block(functools.partial(gm, x), 1, self.device)
                calls.append(c if self.single and c is not None else w)
            n, elapsed = len(passes), time.perf_counter() - t0
            if (n >= budget.min_samples and elapsed >= budget.min_time) or n >= \
                    budget.max_samples or (n >= 3 and elapsed >= budget.max_time):
                break
        times = [statistics.median(p.get(layer.path, 0.0) for p in passes)
                 for layer in spec.layers]
        return times, statistics.median(calls) if calls else None


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
        self.beyond: list[float] = []  # each network's call beyond its layers' times

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def _tick(self, label: str) -> None:
        if self.progress:
            self.progress(label, min(1.0, self.elapsed() / self.options.max_time))

    def _add(self, feats: list[LayerFeatures], times: list[float]) -> None:
        """Each layer of a timed spec as a sample of its class (a kind no class covers,
        predicted by a stand-in, is not one; nor a layer of no time: a repeated one)."""
        s = self.samples
        for f, t in zip(feats, times, strict=True):
            if not f.stand_in and t > 0 and f.op_class in s.xs:
                s.xs[f.op_class].append(f.values)
                s.ys[f.op_class].append(t / f.calls)

    def measure(self, op_class: str, kernel: Kernel) -> None:
        start = time.perf_counter()
        try:
            spec = parse_spec(kernel.spec, "<kernel>")
            feats = self.timer.features(spec, kernel.batch)
        except SpecError:  # a kernel drawn past a spec's bounds: drawn again, never fatal
            return
        times, _ = self.timer.layers(spec, kernel.batch)
        self._add(feats, times)
        self.samples.spent[op_class] += time.perf_counter() - start
        self._tick(f"calibrating: {op_class}")

    def prior_round(self, until: float) -> None:
        """Kernels from the prior, each class's time in proportion to its share, of which its
        ``heavy`` part on heavy kernels (``OpClass.sample_heavy``); every class gets at least
        a few samples."""
        shares = {n: c.share for n, c in OP_CLASSES.items()}
        heavy = dict.fromkeys(OP_CLASSES, 0.0)  # time spent on heavy kernels, per class
        while True:
            few = [n for n in OP_CLASSES if len(self.samples.ys[n]) < 4]
            if not few and self.elapsed() >= until:
                return
            name = few[0] if few else min(shares, key=lambda n: self.samples.spent[n] / shares[n])
            op = OP_CLASSES[name]
            if heavy[name] < op.heavy * self.samples.spent[name]:
                before = self.samples.spent[name]
                self.measure(name, op.sample_heavy(self.rng))
                heavy[name] += self.samples.spent[name] - before
            else:
                self.measure(name, op.sample(self.rng))

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
            weights = fit.time_weights(ys)  # as the fit weighs them
            priority[name] = OP_CLASSES[name].share * fit.rms(errors, weights)
            order = sorted(range(len(errors)), key=lambda i: -weights[i] * errors[i] ** 2)
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
                pool.append((self.timer.target(name, kernel), kernel))
            except SpecError:
                continue
        return _nearest(pool, [targets[i % len(targets)] for i in range(wanted)])

    def network_round(self, until: float) -> None:
        """Random whole networks (``kernels.network``), each timed layer by layer (every
        layer a sample of its class) and as a whole model, until ``until``."""
        timer = self.timer
        while self.elapsed() < until:
            kernel = network(self.rng)
            spec = parse_spec(kernel.spec, "<network>")
            feats = timer.features(spec, kernel.batch)
            times, whole = timer.layers(spec, kernel.batch, whole=True)
            self._add(feats, times)
            layers = [(f.op_class, f.values, f.calls) for f in feats]
            self.networks.append((layers, float(whole or 0.0)))
            self.beyond.append(max(0.0, float(whole or 0.0) - sum(times)))
            self._tick("calibrating: networks")

    def fit_context(self, classes: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], float]:
        """What the layers' predictions miss in the networks' whole calls (a scale, a time per
        layer, a time per call), and its held-out error; the call's time (with too few
        networks: what their calls took beyond their layers' measured times)."""
        sums, counts, ys = [], [], []
        overhead = statistics.median(self.beyond) if self.beyond else 0.0
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
        timer = _Timer(device, dt, threads)  # once the threads are set
        run = Calibrator(options, timer, progress)
        budget = options.max_time
        run.prior_round(budget * PRIOR_SHARE)
        run.network_round(budget * (PRIOR_SHARE + NETWORK_SHARE))
        span = budget * (1 - FIT_SHARE) - run.elapsed()
        for r in range(ADAPTIVE_ROUNDS):
            run.adaptive_round(run.elapsed() + span / ADAPTIVE_ROUNDS if r < ADAPTIVE_ROUNDS - 1
                               else budget * (1 - FIT_SHARE))
        classes = run.fit_all()
        context, overhead = run.fit_context(classes)
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

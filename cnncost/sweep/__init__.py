"""Sweeps: one spec counted over a grid of variable values (domain only: no rendering).

    >>> from cnncost.sweep import run_sweep
    >>> s = run_sweep("resnet50", ["res=128..640:32"], batch="1,8", jobs=2)
    >>> [r.macs for r in s.results], [(e.var, e.metric, e.exponent) for e in s.exponents]

A sweep is planned from the command line's text (:mod:`cnncost.sweep.plan`: the value
grammar, ``--zip``, the cartesian product, ``--max-points``), checked against the spec
before any point is counted (unknown variables, values of the wrong type, a spec that does
not load with the fixed values: UsageError or SpecError, exit 2), then counted serially, in
a local process pool (``jobs``) or on a Dask distributed cluster (``dask``) with identical
results in the same order (:mod:`cnncost.sweep.run`). A point that fails (a shape that no
longer fits) is reported with its one-line error and the others go on. The scaling exponents
are fitted last (:mod:`cnncost.sweep.fit`, which says how).

``engine`` is handed to the counting API as is (None: its default engine); ``mode="train"``
counts a training step at each point (forward and backward MACs, Adam's step FLOPs and
training memory: :data:`TRAIN_METRICS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnncost.display import repr_html
from cnncost.errors import UsageError
from cnncost.io import read_text
from cnncost.sweep.fit import Exponent, fit_exponents, fit_loglog
from cnncost.sweep.plan import (
    BATCH,
    DEFAULT_MAX_POINTS,
    Axis,
    Plan,
    Point,
    Value,
    check_plan,
    parse_values,
    plan_sweep,
)
from cnncost.sweep.run import (
    METRICS,
    TRAIN_METRICS,
    Job,
    PointResult,
    Progress,
    dask_address,
    evaluate,
    pool_size,
    run_dask,
    run_pool,
    run_serial,
)

__all__ = ["BATCH", "DEFAULT_MAX_POINTS", "METRICS", "TRAIN_METRICS", "Axis", "Exponent",
           "Job", "Plan", "Point", "PointResult", "Prepared", "Progress", "Sweep", "Value",
           "check_plan", "dask_address", "evaluate", "fit_exponents", "fit_loglog",
           "parse_values", "plan_sweep", "pool_size", "prepare_onnx", "prepare_sweep",
           "run_sweep"]


@dataclass(frozen=True)
class Sweep:
    """A finished sweep: the plan, every point's result in order, the fitted exponents."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    model: str
    source: str
    plan: Plan
    job: Job
    results: tuple[PointResult, ...]
    exponents: tuple[Exponent, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The figures each point reports (a training step's in train mode)."""
        return self.job.metrics

    @property
    def baseline(self) -> PointResult | None:
        """The point ratios are taken against: the first point that did not fail."""
        return next((r for r in self.results if r.ok), None)

    @property
    def failed(self) -> tuple[PointResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def ratio(self, result: PointResult, metric: str) -> float | None:
        """``result``'s metric over the baseline's (None for failures and a zero baseline)."""
        base = self.baseline
        if base is None or not result.ok or getattr(base, metric) == 0:
            return None
        return float(getattr(result, metric) / getattr(base, metric))  # latency_ms: a float


@dataclass(frozen=True)
class Prepared:
    """A sweep checked against its spec and ready to count; nothing is counted yet."""

    model: str
    source: str
    plan: Plan
    job: Job

    def run(self, jobs: int = 1, dask: str | None = None,
            progress: Progress | None = None) -> Sweep:
        """Count every point: here, in ``jobs`` local processes, or on the Dask scheduler
        at ``dask`` (``tcp://HOST:PORT``); the result is the same. ``progress(done, total)``
        follows the points."""
        if jobs < 1:
            raise UsageError(f"--jobs {jobs}: expected 1 or more processes")
        if dask is not None and jobs > 1:
            raise UsageError("--jobs and --dask: choose one (a Dask cluster has its own "
                             "workers)")
        if dask is not None:
            dask_address(dask)  # a malformed address, before anything is counted
        points = list(self.plan.points())
        if dask is not None:
            results = run_dask(self.job, points, dask, progress)
        elif jobs > 1:
            results = run_pool(self.job, points, jobs, progress)
        else:
            results = run_serial(self.job, points, progress)
        return Sweep(self.model, self.source, self.plan, self.job, tuple(results),
                     fit_exponents(self.plan, results, self.job.metrics))


def prepare_sweep(model: str, sets: Sequence[str], zips: Sequence[str] = (),
                  batch: str | None = None, *, input: tuple[int, ...] | None = None,
                  dtype: str | None = None, policy: str = "all", strict: bool = False,
                  engine: str | None = None, mode: str = "inference",
                  max_points: int = DEFAULT_MAX_POINTS, latency: bool = False) -> Prepared:
    """Plan a sweep of a spec (file or bundled name) and check it against the spec, which
    is loaded once with the fixed ``--set`` values; any bad input raises here. ``latency``:
    each point's latency is predicted too, from this machine's calibration. An ONNX file is
    swept over its batch and its inputs' symbolic dims (:func:`prepare_onnx`)."""
    from cnncost.count.engines import engine_for
    from cnncost.sources import resolve
    from cnncost.spec import MAX_FILE_BYTES, parse_spec

    if mode not in ("inference", "train"):
        raise UsageError(f"--mode {mode!r}: expected 'inference' or 'train'")
    plan = plan_sweep(sets, zips, batch, max_points)
    target = resolve(model)
    if target.onnx_path is not None:
        if latency:
            raise UsageError(f"{model}: sweep --latency predicts a spec's latency from the "
                             "calibration; not for ONNX files")
        return prepare_onnx(str(target.onnx_path), plan, input=input, dtype=dtype,
                            policy=policy, strict=strict, engine=engine, mode=mode)
    # A bad engine name, or the analytic engine for a training step, fails before any point.
    engine_for(engine, True, model, mode)
    if target.spec_path is None:
        raise UsageError(f"{model}: sweep takes a spec (file or bundled name) or an ONNX file, "
                         "not a module factory: only those have sizes or variables to sweep")
    path: Path = target.spec_path
    text = read_text(path, MAX_FILE_BYTES, "spec")
    spec = parse_spec(text, str(path), plan.fixed, input)
    check_plan(plan, spec.vars)
    # Errors name the spec as reports do (specs/x.yaml for a bundled one): stable anywhere.
    calibration = None
    if latency:
        if mode != "inference":
            raise UsageError("sweep --latency predicts inference; a training step is not "
                             "calibrated")
        from cnncost.predict.calibration import find

        calibration = find(dtype or "float32")
    job = Job(text, target.display, dict(plan.fixed), input, dtype or "float32", policy, strict,
              engine, mode, calibration)
    return Prepared(spec.name, target.display, plan, job)


def prepare_onnx(file: str, plan: Plan, *, input: tuple[int, ...] | None = None,
                 dtype: str | None = None, policy: str = "all", strict: bool = False,
                 engine: str | None = None, mode: str = "inference") -> Prepared:
    """A sweep of an ONNX file: ``--batch`` and the inputs' symbolic dims by name (``--set
    height=224..640:32 --zip height,width``), checked against the file's inputs."""
    from cnncost.onnx.graph import TYPE_NAMES
    from cnncost.onnx.model import read
    from cnncost.onnx.sizes import input_sizes

    if engine == "torch":
        raise UsageError(f"{file}: an ONNX file is counted from its graph (the analytic "
                         "engine); --engine torch counts specs and modules")
    if mode != "inference":
        raise UsageError(f"{file}: --mode {mode} is not for ONNX files")
    source = read(file)
    symbols = source.symbols
    fixed: dict[str, int] = {}
    for name, text in plan.fixed.items():
        if not text.isdigit() or int(text) < 1:
            raise UsageError(f"--set {name}={text}: a dim's size is a positive whole number")
        fixed[name] = int(text)
    for name in [*fixed, *(n for n in plan.names if n != BATCH)]:
        if name not in symbols:
            raise UsageError(f"--set {name}: {file} has no symbolic input dim {name!r}; its "
                             f"inputs' symbolic dims: {', '.join(symbols) or '(none)'}")
    for axis in plan.axes:
        for step in axis.values:
            for name, value in zip(axis.names, step, strict=True):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UsageError(f"--set {name}: {value!r} is not a positive whole "
                                     "number (a dim's size)")
    first = next(plan.points())
    input_sizes(file, source.feeds, first.batch, input,
                {**fixed, **{k: int(v) for k, v in first.vars.items()}})
    own = next((f.type.tensor_type.elem_type for f in source.feeds
                if f.type.tensor_type.elem_type in TYPE_NAMES), 1)
    job = Job("", file, {k: str(v) for k, v in fixed.items()}, input,
              dtype or TYPE_NAMES[own], policy, strict, None, mode, onnx=True)
    return Prepared(Path(file).stem, file, plan, job)


def run_sweep(model: str, sets: Sequence[str], zips: Sequence[str] = (),
              batch: str | None = None, *, input: tuple[int, ...] | None = None,
              dtype: str | None = None, policy: str = "all", strict: bool = False,
              engine: str | None = None, mode: str = "inference", jobs: int = 1,
              dask: str | None = None, max_points: int = DEFAULT_MAX_POINTS,
              progress: Progress | None = None) -> Sweep:
    """prepare_sweep(...).run(jobs, dask, progress): plan, check, count, fit."""
    prepared = prepare_sweep(model, sets, zips, batch, input=input, dtype=dtype,
                             policy=policy, strict=strict, engine=engine, mode=mode,
                             max_points=max_points)
    return prepared.run(jobs, dask, progress)

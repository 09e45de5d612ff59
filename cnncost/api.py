"""What the CLI and the Python API share: from "what the user named" to finished results.

Each command's work lives here (the CLI only parses, calls one of these, and renders):
analyze and compare (``analyze_target``, ``compare_targets``), ``predict``'s and
``calibrate``'s (``predict_target``, ``calibrate_here``), ``bench``'s run, ``plot``'s figures,
``validate``'s spec, ``explain``'s tables, ``check``'s recount (``recheck``; the reports'
files are ``cnncost.reports``'s). The engine choice is ``cnncost.count.engines``'s.
Nothing here prints; torch is imported only by the functions that run a model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.count.engines import Engine, count_loaded, engine_for
from cnncost.errors import CnnCostError, UsageError
from cnncost.sources import DEFAULT_INPUT, Target, default_input, frames, load_target, resolve
from cnncost.table import CostTable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnncost.advise.engine import Advice
    from cnncost.check import Regression
    from cnncost.compare import Comparison
    from cnncost.explain import Case, Ref
    from cnncost.measure.bench import BenchOptions, BenchReport
    from cnncost.measure.bench_train import TrainBenchReport
    from cnncost.measure.timing import Progress
    from cnncost.onnx.export import Exported
    from cnncost.plotting import PlotData, PlotKind
    from cnncost.predict.calibrate import CalibrateOptions
    from cnncost.predict.calibration import Calibration
    from cnncost.predict.model import Prediction
    from cnncost.predict.versus import Versus
    from cnncost.spec import ModelSpec
    from cnncost.sweep import Sweep


def analyze_target(model_or_spec: nn.Module | ModelSpec | str | Path | Target,
                   input: tuple[int, ...] | None = None,
                   batch: int | None = None, dtype: str | torch.dtype | None = None,
                   policy: str = "all", strict: bool = False,
                   overrides: Mapping[str, Any] | None = None,
                   engine: Engine | str | None = None,
                   mode: str = "inference") -> CostTable:
    """Analyze a spec path, bundled name, factory reference, ONNX file, Target, nn.Module, or
    a loaded ModelSpec (counted as loaded: its variables and input are already resolved).
    Specs are counted by ``engine`` (default analytic; torch in train mode), modules by
    torch, ONNX files by their graph (cnncost.onnx). ``mode="train"`` counts one training
    step (forward, backward, optimizer update). ``batch`` defaults to 1 and ``dtype`` to
    float32 (an ONNX file's own batch where it fixes one, and its own float type)."""
    from cnncost.spec import ModelSpec

    if isinstance(model_or_spec, str | Path | Target):
        target = (model_or_spec if isinstance(model_or_spec, Target)
                  else resolve(str(model_or_spec)))
        if target.onnx_path is not None:
            return count_onnx(target, input, batch, dtype, policy, strict, overrides, engine,
                              mode)
    n = 1 if batch is None else batch
    dt = "float32" if dtype is None else dtype
    if isinstance(model_or_spec, ModelSpec):
        if overrides or input is not None:
            raise UsageError("a loaded spec has its variables and input already; load it "
                             "again with them instead")
        return count_loaded(model_or_spec, n, dt, policy, model_or_spec.file, strict,
                            engine, mode)
    if not isinstance(model_or_spec, str | Path | Target):  # an nn.Module
        engine_for(engine, False, type(model_or_spec).__name__, mode)
        from cnncost.count.drivers import count_module

        return count_module(model_or_spec, input or DEFAULT_INPUT, n, dt, policy, strict,
                            mode=mode)
    engine_for(engine, target.spec_path is not None, target.display, mode)  # before loading
    loaded = load_target(target, overrides, input)
    if isinstance(loaded, ModelSpec):
        table = count_loaded(loaded, n, dt, policy, target.display, strict, engine, mode)
        return table.recorded(overrides, input is not None, file=loaded.file)
    from cnncost.count.drivers import count_module

    shape = input or default_input(target.factory) or DEFAULT_INPUT
    two = frames(target.factory)
    table = count_module(loaded, shape, n, dt, policy, strict,
                         name=target.label, source=target.display, frames=two, mode=mode)
    if two > 1:  # say so where the report describes the model
        table = replace(table, description=f"{two} frames of the input shape (the same "
                        "tensor as each)")
    return table.recorded(overrides, input is not None)


def count_onnx(target: Target, input: tuple[int, ...] | None = None,
               batch: int | None = None, dtype: str | torch.dtype | None = None,
               policy: str = "all", strict: bool = False,
               overrides: Mapping[str, Any] | None = None,
               engine: Engine | str | None = None, mode: str = "inference") -> CostTable:
    """An ONNX file's table (cnncost.onnx, no torch): ``batch`` and ``input`` set its
    symbolic sizes; what only applies to specs and modules is refused, naming it."""
    what = target.display
    if overrides:
        raise UsageError(f"{what}: --set sets a spec's variables; an ONNX file has none (its "
                         "sizes: --batch and --input)")
    if engine is not None and Engine(str(getattr(engine, "value", engine))) is Engine.TORCH:
        raise UsageError(f"{what}: an ONNX file is counted from its graph through the formula "
                         "table (the analytic engine); --engine torch counts specs and modules")
    if mode != "inference":
        raise UsageError(f"{what}: --mode {mode} is not for ONNX files (a training step needs "
                         "a spec or a module)")
    from cnncost.onnx.engine import count_file

    assert target.onnx_path is not None
    table = count_file(target.onnx_path, batch, input, None if dtype is None else str(dtype),
                       policy, strict, source=what)
    return table.recorded({}, input is not None)


# --------------------------------------------------------------------------- compare


def compare_targets(models: Sequence[str], input: tuple[int, ...] | None = None,
                    batch: int | None = None, dtype: str | None = None, policy: str = "all",
                    strict: bool = False, overrides: Mapping[str, Any] | None = None,
                    bench: bool = False, progress: Progress | None = None, *,
                    engine: Engine | str | None = None,
                    mode: str = "inference", latency: bool = False) -> Comparison:
    """Models side by side; with ``bench``, measured latency and images/s after the MACs;
    with ``latency``, the latency predicted from this machine's calibration (after the
    measured one, or the MACs); ``mode="train"``: one training step of each."""
    from cnncost.compare import compare_tables

    if len(models) < 2:
        raise UsageError("compare needs at least two models, e.g. cnncost compare resnet50 "
                         "vgg16")
    if bench and mode == "train":
        raise UsageError("compare --bench times inference; for a training step use "
                         "cnncost bench MODEL --train")
    if latency and mode == "train":
        raise UsageError("compare --latency predicts inference; a training step is not "
                         "calibrated")
    cal = find_calibration(dtype or "float32") if latency else None  # before any counting
    targets = [resolve(m) for m in models]  # every name resolved before any counting
    sets = overrides_per_model(targets, overrides)
    tables = [analyze_target(t, input=input, batch=batch, dtype=dtype, policy=policy,
                             strict=strict, overrides=s, engine=engine, mode=mode)
              for t, s in zip(targets, sets, strict=True)]
    comparison = compare_tables(tables)
    if bench:
        comparison = _with_bench_columns(comparison, models, batch or 1, dtype or "float32",
                                         input, sets, progress)
    if cal is not None:
        from cnncost.compare import Column
        from cnncost.predict.model import predict_table

        predicted = [predict_table(t, cal).latency_ms for t in tables]
        comparison = comparison.with_column(Column("predicted_ms", "predicted latency", "ms"),
                                            predicted, after="latency_ms" if bench else "macs")
    return comparison


def overrides_per_model(targets: Sequence[Target], overrides: Mapping[str, Any] | None
                        ) -> list[dict[str, Any]]:
    """Each model's share of ``--set``: the variables its spec declares. A variable that no
    model declares is a UsageError naming it and every model's variables."""
    if not overrides:
        return [{} for _ in targets]
    from cnncost.spec import declared_vars

    declared = [declared_vars(t.spec_path) if t.spec_path is not None else ()
                for t in targets]
    for name in overrides:
        if not any(name in names for names in declared):
            models = "; ".join(f"{t.display}: {', '.join(names) or '(none)'}"
                               for t, names in zip(targets, declared, strict=True))
            raise UsageError(f"--set {name}: no model declares a variable {name!r} (their "
                             f"variables: {models})")
    return [{k: v for k, v in overrides.items() if k in names} for names in declared]


def _with_bench_columns(comparison: Comparison, models: Sequence[str], batch: int, dtype: str,
                        input: tuple[int, ...] | None, sets: Sequence[Mapping[str, Any]],
                        progress: Progress | None) -> Comparison:
    from cnncost.compare import Column
    from cnncost.measure.bench import BenchOptions
    from cnncost.measure.ort import bench_runtimes

    latency, throughput = [], []
    for m, s in zip(models, sets, strict=True):  # an ONNX file on onnxruntime, else torch
        run = bench_runtimes(m, (batch,), BenchOptions(dtype=dtype), input=input, overrides=s,
                             progress=progress).runs[0]
        latency.append(run.timing.median_s * 1e3)
        throughput.append(run.images_per_s)
    # MAC ratio next to latency ratio: how far counted work predicts measured time.
    comparison = comparison.with_column(Column("latency_ms", "latency", "ms"), latency,
                                        after="macs")
    return comparison.with_column(Column("images_per_s", "images/s", "count"), throughput,
                                  after="latency_ms")


# --------------------------------------------------------------------------- list, validate


def bench_target(model: str, batches: Sequence[int], options: BenchOptions, train: bool = False,
                 input: tuple[int, ...] | None = None,
                 overrides: Mapping[str, Any] | None = None,
                 progress: Progress | None = None,
                 runtimes: Sequence[str] | None = None) -> BenchReport | TrainBenchReport:
    """Measure a model here: forward passes (on ``runtimes``: torch, onnxruntime or both;
    default torch, onnxruntime for an ONNX file), or with ``train`` whole training steps
    (forward, loss, backward, ``options.optimizer``'s step) and their peak memory."""
    if train:
        if runtimes and tuple(runtimes) != ("torch",):
            raise UsageError("--train times torch's training steps; --runtime onnxruntime "
                             "times inference")
        from cnncost.measure.bench_train import bench_train

        return bench_train(model, batches, options, input=input, overrides=overrides,
                           progress=progress)
    from cnncost.measure.ort import bench_runtimes

    return bench_runtimes(model, batches, options, runtimes, input=input, overrides=overrides,
                          progress=progress)


def bench_predicted(model: str, batches: Sequence[int], options: BenchOptions,
                    input: tuple[int, ...] | None = None,
                    overrides: Mapping[str, Any] | None = None,
                    progress: Progress | None = None) -> Versus:
    """``bench --predict``: the benchmark with every layer timed, and beside each batch its
    prediction from this machine's calibration (looked up before anything runs)."""
    from cnncost.predict.model import predict_table
    from cnncost.predict.versus import Versus

    device = options.device.value if isinstance(options.device, Enum) else options.device
    cal = find_calibration(options.dtype, device, options.threads)
    report = bench_target(model, batches, replace(options, per_layer=True), False, input,
                          overrides, progress)
    predictions = tuple(predict_table(analyze_target(model, input, b, options.dtype,
                                                     overrides=overrides), cal)
                        for b in batches)
    return Versus(report, predictions)  # type: ignore[arg-type]


def find_calibration(dtype: str = "float32", device: str = "auto",
                     threads: int | None = None,
                     calibration: Path | None = None) -> Calibration:
    """This machine's cached calibration (device, dtype, threads, torch), or the file named
    by ``calibration`` (another machine's: predictions are then for that machine)."""
    from cnncost.predict.calibration import find

    return find(dtype, device, threads, calibration)


def predict_target(model_or_spec: nn.Module | ModelSpec | str | Path | Target,
                   input: tuple[int, ...] | None = None, batch: int = 1,
                   dtype: str = "float32", overrides: Mapping[str, Any] | None = None,
                   device: str = "auto", threads: int | None = None,
                   calibration: Path | Calibration | None = None) -> Prediction:
    """Predicted latency of a model on a calibrated machine, without running it: counted as
    ``analyze_target`` counts it (a spec without torch), then each layer predicted by its op
    class's fit. ``calibration``: a Calibration, a file, or None for this machine's cache."""
    from cnncost.predict.calibration import Calibration
    from cnncost.predict.model import predict_table

    cal = calibration if isinstance(calibration, Calibration) else find_calibration(
        dtype, device, threads, calibration)
    table = analyze_target(model_or_spec, input, batch, dtype, overrides=overrides)
    return predict_table(table, cal)


def calibrate_here(options: CalibrateOptions,
                   progress: Progress | None = None) -> tuple[Calibration, Path]:
    """Calibrate this machine (``cnncost.predict.calibrate``) and cache the result; the
    calibration and the file written."""
    from cnncost.predict.calibrate import calibrate
    from cnncost.predict.calibration import save

    cal = calibrate(options, progress)
    return cal, save(cal)


def load_spec_target(name: str, overrides: Mapping[str, Any] | None = None,
                     input: tuple[int, ...] | None = None) -> ModelSpec:
    """The spec a name resolves to (``validate``: a spec, never a module factory)."""
    from cnncost.spec import load_spec

    target = resolve(name)
    if target.spec_path is None:
        what = "an ONNX file (analyze checks one)" if target.onnx_path else "a module factory"
        raise UsageError(f"{name}: validate takes a spec, not {what}")
    return load_spec(target.spec_path, overrides=overrides, input_shape=input)


# --------------------------------------------------------------------------- explain


@dataclass(frozen=True)
class Explanation:
    """What ``explain`` derives from: the table, and for a spec its explain data, variables,
    the other tables its comparisons read and its default case (what its prose describes)."""

    table: CostTable
    explain: Any = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    tables: Mapping[Ref, CostTable] = field(default_factory=dict)
    file: str = ""
    case: Case | None = None


def explain_target(model: str, input: tuple[int, ...] | None = None,
                   batch: int | None = None, dtype: str | None = None, policy: str = "all",
                   overrides: Mapping[str, Any] | None = None,
                   engine: Engine | str | None = None,
                   mode: str = "inference") -> Explanation:
    """Count a model, and for a spec every distinct table its ``explain`` comparisons refer
    to, each once (``mode="train"``: a training step, its backward formulas beside the
    forward ones)."""
    from cnncost.explain import Recipes, references
    from cnncost.spec import ModelSpec

    target = resolve(model)
    if target.onnx_path is not None:
        return Explanation(count_onnx(target, input, batch, dtype, policy, False, overrides,
                                      engine, mode))
    overrides = dict(overrides or {})
    batch, dtype = (1 if batch is None else batch), dtype or "float32"
    engine_for(engine, target.spec_path is not None, target.display, mode)
    loaded = load_target(target, overrides, input)
    if not isinstance(loaded, ModelSpec):
        return Explanation(analyze_target(loaded, input=input, batch=batch, dtype=dtype,
                                          policy=policy, mode=mode))
    table = count_loaded(loaded, batch, dtype, policy, target.display, engine=engine, mode=mode)
    recipes = Recipes()
    counted = {recipes.key(loaded.file, overrides, input): table}
    tables = {}
    for ref in references(loaded.explain, loaded.vars, batch, loaded.file):
        if ref.spec is None:  # the same spec with other variables: keep --set and --input
            path, sets, shape = loaded.file, {**overrides, **dict(ref.set)}, input
        else:  # another spec: it gets the variables it shares with this one
            path = str(Path(loaded.file).parent / ref.spec)
            shared = set(recipes.declared(path)) & loaded.vars.keys()
            sets, shape = {**{k: loaded.vars[k] for k in shared}, **dict(ref.set)}, None
        key = recipes.key(path, sets, shape)
        if key not in counted:  # each distinct table once, however many lines read it
            other = recipes.compile(path, sets, shape)
            counted[key] = count_loaded(other, batch, dtype, policy, engine=engine, mode=mode)
        tables[ref] = counted[key]
    return Explanation(table, loaded.explain, loaded.vars, tables, loaded.file,
                       recipes.case(loaded.file, overrides))


# --------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Recheck:
    """One report recomputed from its recipe: what drifted (empty: it matches), or why it
    could not be recomputed (``error``; ``current`` is then None)."""

    path: Path
    baseline: CostTable
    current: CostTable | None
    regressions: list[Regression]
    error: CnnCostError | None = None
    missing: bool = False  # the error: its source (a spec file, a factory's file) is gone


def recheck(baselines: Sequence[tuple[Path, CostTable]], tolerance: float = 0.0,
            engine: Engine | str | None = None) -> Iterator[Recheck]:
    """Recompute each report from the recipe it records and diff it with the baseline (a
    spec's report with ``engine``, a module's with torch).

    The current folder is not importable meanwhile (a ``torch.py`` there is not torch), and a
    report that cannot be recomputed does not stop the others."""
    from cnncost.check import diff_tables, recipe
    from cnncost.reports import source_target
    from cnncost.sources import without_current_folder

    with without_current_folder():
        for path, baseline in baselines:
            r = recipe(baseline)
            try:
                target = source_target(r.source)
            except CnnCostError as exc:
                error = UsageError(f"{path}: cannot recompute {r.source}: {exc}")
                yield Recheck(path, baseline, None, [], error, missing=True)
                continue
            try:
                current = analyze_target(target, input=r.input, batch=r.batch, dtype=r.dtype,
                                         policy=r.policy, overrides=r.vars, mode=r.mode,
                                         engine=engine if target.spec_path is not None
                                         else None)
            except CnnCostError as exc:
                error = UsageError(f"{path}: cannot recompute {r.source}: {exc}")
                yield Recheck(path, baseline, None, [], error)
                continue
            yield Recheck(path, baseline, current, diff_tables(baseline, current, tolerance))


# --------------------------------------------------------------------------- export


def export_target(model: str, path: Path | str, input: tuple[int, ...] | None = None,
                  overrides: Mapping[str, Any] | None = None, *,
                  static_batch: int | None = None, opset: int | None = None) -> Exported:
    """Write a spec (compiled) or a module factory's module as ONNX at ``path`` (atomically;
    cnncost.onnx.export says how): a dynamic batch, or ``static_batch``."""
    from cnncost.graph.build import build_module
    from cnncost.io import check_output, write_atomic
    from cnncost.onnx.export import export_module, require_exporter
    from cnncost.spec import ModelSpec

    target = resolve(model)
    if target.onnx_path is not None:
        raise UsageError(f"{target.display}: is an ONNX file already; export takes a spec or "
                         "a module")
    require_exporter()
    loaded = load_target(target, overrides, input)
    check_output(path)  # said before the export's seconds
    module: nn.Module
    if isinstance(loaded, ModelSpec):
        module, sample = build_module(loaded), loaded.input_shape
    else:
        module = loaded
        sample = input or default_input(target.factory) or DEFAULT_INPUT
    exported = export_module(module, sample, dynamic_batch=static_batch is None,
                             opset=opset, batch=static_batch or 1, label=target.display)
    write_atomic(path, exported.data)
    return exported


# --------------------------------------------------------------------------- sweep


def sweep_grid(spec: str | Path, grid: Mapping[str, Any], zips: Sequence[Any] = (),
               batch: Any = None, *, jobs: int = 1, dask: str | None = None,
               **options: Any) -> Sweep:
    """``cnncost sweep`` with the grid given in Python: variable -> values (a list, a range,
    one value, or the command line's text such as ``"128..640:32"``), ``"batch"`` included;
    ``zips`` are groups of variables that move together (``("width", "depth", "res")`` or
    ``"width,depth,res"``). ``options`` are prepare_sweep's (input, dtype, policy, ...)."""
    from cnncost.sweep import BATCH, prepare_sweep
    from cnncost.sweep.plan import values_text

    if not isinstance(grid, Mapping):
        raise UsageError(f"sweep: the grid is a mapping of variable -> values, e.g. "
                         f"{{'res': range(128, 641, 32)}}, not {type(grid).__name__}")
    if BATCH in grid and batch is not None:
        raise UsageError("sweep: the batch sizes given twice (in the grid and as batch=)")
    sets = [f"{name}={values_text(name, values)}" for name, values in grid.items()
            if name != BATCH]
    batches = grid.get(BATCH, batch)
    groups = [g if isinstance(g, str) else ",".join(g) for g in zips]
    prepared = prepare_sweep(str(spec), sets, groups,
                             None if batches is None else values_text(BATCH, batches),
                             **options)
    return prepared.run(jobs, dask)


# --------------------------------------------------------------------------- advise


def advise_target(spec: str | Path | Target, overrides: Mapping[str, Any] | None = None,
                  min_saving: float | None = None, latency: bool = False) -> Advice:
    """The design guidelines applied to a spec (path or bundled name): an advise.Advice;
    with ``latency``, each finding's predicted latency change (this machine's calibration)."""
    from cnncost.advise.engine import DEFAULT_MIN_SAVING, advise_spec

    calibration = find_calibration() if latency else None
    target = spec if isinstance(spec, Target) else resolve(str(spec))
    if target.onnx_path is not None:
        raise UsageError(f"{target.display}: advise is not for ONNX files: it prices each "
                         "guideline by rewriting a spec's YAML and counting the result")
    if target.spec_path is None:
        raise UsageError(f"{target.label}: advise takes a spec (it rewrites the YAML), not a "
                         "module factory")
    return advise_spec(target.spec_path, overrides,
                       DEFAULT_MIN_SAVING if min_saving is None else min_saving,
                       source=target.display, calibration=calibration)


# --------------------------------------------------------------------------- plot


def plot_data(kind: PlotKind, models: Sequence[str], *, input: tuple[int, ...] | None = None,
              batch: int | None = None, dtype: str | None = None, policy: str = "all",
              overrides: Mapping[str, Any] | None = None, strict: bool = False,
              max_time: float = 2.0, sweep_sets: Sequence[str] = (), zips: Sequence[str] = (),
              bench: bool = False, progress: Progress | None = None) -> PlotData:
    """Count (or, for roofline, benchmark) the models a chart of ``kind`` shows.

    A sweep takes the ``--set`` texts as ``cnncost sweep`` does (``res=128..640:32``) in
    ``sweep_sets``, and ``zips``; ``overrides`` are for the other kinds. ``bench`` (scatter)
    measures each model's latency as ``cnncost compare --bench`` does."""
    from cnncost.plotting import PlotData, PlotKind, check_count, declared_top1

    check_count(kind, models)
    if bench and kind is not PlotKind.SCATTER:
        raise UsageError("--bench goes with --kind scatter (roofline always measures)")
    if kind is PlotKind.SWEEP:
        from cnncost.sweep import run_sweep

        return PlotData(kind, sweep=run_sweep(models[0], sweep_sets, zips,
                                              None if batch is None else str(batch),
                                              input=input, dtype=dtype, policy=policy,
                                              strict=strict))
    if zips:
        raise UsageError("--zip goes with --kind sweep")
    targets = [resolve(m) for m in models]  # every name resolved before any counting
    if kind is PlotKind.ROOFLINE:
        return PlotData(kind, bench=_plot_bench(targets[0], input, batch or 1,
                                                dtype or "float32", overrides, max_time,
                                                progress))
    if kind is PlotKind.LAYERS:
        return PlotData(kind, table=analyze_target(targets[0], input=input, batch=batch,
                                                   dtype=dtype, policy=policy, strict=strict,
                                                   overrides=overrides))
    comparison = compare_targets(models, input, batch, dtype, policy, strict, overrides,
                                 bench=bench, progress=progress)
    # A published accuracy is for the spec as written: not with other --set vars or --input.
    as_published = not overrides and input is None
    top1 = (declared_top1(targets, [r.model for r in comparison.rows])
            if kind is PlotKind.SCATTER and as_published else {})
    return PlotData(kind, comparison=comparison, top1=top1)


def _plot_bench(target: Any, input: tuple[int, ...] | None, batch: int, dtype: str,
                overrides: Mapping[str, Any] | None, max_time: float,
                progress: Progress | None) -> BenchReport:
    from cnncost.measure.bench import BenchOptions, bench
    from cnncost.measure.timing import Budget

    if target.onnx_path is not None:
        raise UsageError(f"{target.display}: --kind roofline times each layer with torch; an "
                         "ONNX file has no torch layers (cnncost bench FILE times it whole on "
                         "onnxruntime)")
    budget = Budget(min_samples=5, max_time=max_time, min_time=min(0.5, max_time / 2),
                    warmup_time=min(0.25, max_time / 4))
    return bench(target, (batch,), BenchOptions(dtype=dtype, per_layer=True, budget=budget),
                 input=input, overrides=overrides, progress=progress)

"""Latency on ONNX Runtime (CPU), beside PyTorch eager in one run, with the bench's method.

``cnncost bench MODEL --runtime onnxruntime`` (or ``torch,onnxruntime``): a spec or module is
built as for the torch benchmark, exported through cnncost.onnx.export (the same weights),
and run by an ONNX Runtime session; an ``.onnx`` file is run as it is. Each batch is timed by
cnncost.measure.timing (warm-up, adaptive repetitions, median and IQR), with the threads
pinned as for torch: ``--threads`` (default: torch's current setting) is torch's
``set_num_threads`` and ORT's ``intra_op_num_threads`` (one inter-op thread, sequential
execution), denormals flushed to zero in both. Achieved GFLOP/s = the counted FLOPs / median,
against the machine's roofline (cnncost.measure.roofline). ORT runs the graph with its own
optimisations (ORT_ENABLE_ALL: batch norms folded into convs, fused activations), as it
would in deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from cnncost.errors import UsageError
from cnncost.measure.bench import (
    BenchOptions,
    BenchReport,
    BenchRun,
    BenchSetting,
    Device,
    _count,
    _cpu_settings,
    _materialize,
    bench,
    resolve_device,
)
from cnncost.measure.memory import check_memory
from cnncost.measure.roofline import Roofline, get_roofline, layer_rooflines, load_average
from cnncost.measure.timing import Progress, time_fn
from cnncost.sources import DEFAULT_INPUT, Target, default_input, load_target, resolve
from cnncost.spec import ModelSpec

if TYPE_CHECKING:
    from cnncost.table import CostTable

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
RUNTIMES = (TORCH, ONNXRUNTIME)


def parse_runtimes(text: str) -> tuple[str, ...]:
    """'torch,onnxruntime' -> ('torch', 'onnxruntime'); unknown names are a UsageError."""
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in RUNTIMES]
    if not names or bad:
        raise UsageError(f"--runtime {text!r}: expected torch, onnxruntime or "
                         "torch,onnxruntime")
    return names


def default_runtimes(target: Target) -> tuple[str, ...]:
    """What runs a model when no --runtime is given: ORT for an ONNX file, else torch."""
    return (ONNXRUNTIME,) if target.onnx_path is not None else (TORCH,)


def bench_runtimes(model: str | Target, batches: Sequence[int], options: BenchOptions,
                   runtimes: Sequence[str] | None = None,
                   input: tuple[int, ...] | None = None,
                   overrides: Mapping[str, Any] | None = None,
                   progress: Progress | None = None) -> BenchReport:
    """Time a model on each runtime (torch eager, ONNX Runtime) at each batch size: one
    report, its runs in runtime order, with each batch's latency ratio in the notes."""
    target = model if isinstance(model, Target) else resolve(str(model))
    runtimes = tuple(runtimes or default_runtimes(target))
    if target.onnx_path is not None and TORCH in runtimes:
        raise UsageError(f"{target.display}: an ONNX file runs on onnxruntime only (torch "
                         "runs specs and modules): --runtime onnxruntime")
    if ONNXRUNTIME not in runtimes:
        return bench(target, batches, options, input, overrides, progress)
    _check_options(target, runtimes, options)
    import onnxruntime as ort

    torch_report = (bench(target, batches, options, input, overrides, progress)
                    if TORCH in runtimes else None)
    report = _bench_ort(target, batches, options, input, overrides, progress)
    if torch_report is None:
        return replace(report, ort_version=ort.__version__)
    ratios = [f"batch {o.batch}: onnxruntime {o.timing.median_s * 1e3:.3f} ms, torch "
              f"{t.timing.median_s * 1e3:.3f} ms: onnxruntime takes "
              f"{o.timing.median_s / t.timing.median_s:.2f}x torch's time"
              for t, o in zip(torch_report.runs, report.runs, strict=True)]
    # (ORT's own notes say only that the machine was busy, as torch's do)
    notes = tuple(dict.fromkeys((*torch_report.notes, *ratios)))
    return replace(torch_report, runs=(*torch_report.runs, *report.runs), notes=notes,
                   ort_version=ort.__version__)


def _check_options(target: Target, runtimes: Sequence[str], options: BenchOptions) -> None:
    if options.device not in (Device.AUTO, Device.CPU, "auto", "cpu"):
        raise UsageError("--runtime onnxruntime times ONNX Runtime's CPU provider: --device "
                         "cpu (or auto)")
    unsupported = [flag for flag, on in (("--per-layer", options.per_layer),
                                         ("--compile", options.compile),
                                         ("--channels-last", options.channels_last)) if on]
    if unsupported:
        raise UsageError(f"{unsupported[0]} is for torch's runs; --runtime onnxruntime times "
                         "the whole model")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError("--runtime onnxruntime needs onnxruntime: pip install "
                         "'cnncost[onnxruntime]'") from None


def _bench_ort(target: Target, batches: Sequence[int], options: BenchOptions,
               input: tuple[int, ...] | None, overrides: Mapping[str, Any] | None,
               progress: Progress | None) -> BenchReport:
    """ORT's runs: the ONNX file, or the spec/module exported (float32, its weights)."""
    device = resolve_device("cpu")
    threads = options.threads or torch.get_num_threads()
    if threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    if target.onnx_path is not None:
        tables, data, label = _onnx_tables(target, batches, input, options.dtype)
    else:
        tables, data, label = _exported(target, batches, options, input, overrides, device)
    dt = torch.float32 if tables[batches[0]].dtype == "float32" else getattr(
        torch, tables[batches[0]].dtype)
    estimates = {b: check_memory(tables[b], device) for b in sorted(set(batches))}
    notes = _busy(threads)
    with _cpu_settings(device, threads):
        roof = get_roofline(device, dt, threads, recalibrate=options.recalibrate,
                            quick=options.quick_roofline, progress=progress)
        session = session_for(data, threads)
        runs = [_ort_run(session, tables[b], estimates[b], roof, options, progress)
                for b in batches]
    return BenchReport(**BenchSetting.fields(label, target.display, device, dt, threads,
                                             False, roof),
                       compiled=False, runs=tuple(runs), notes=tuple(notes))


def _busy(threads: int) -> list[str]:
    load, cpus = load_average(), os.cpu_count() or 1
    if load is None or load <= 0.5 * cpus:
        return []
    return [f"machine busy before the run: load average {load:.2f} on {cpus} CPUs; expect "
            "noisy wall times (see IQR/median; CPU ms is steadier)"
            + ("; several threads wait on each other when a core is taken, --threads 1 is "
               "steadier" if threads > 1 else "")]


def _onnx_tables(target: Target, batches: Sequence[int], input: tuple[int, ...] | None,
                 dtype: str) -> tuple[dict[int, CostTable], bytes, str]:
    from cnncost.io import read_bytes
    from cnncost.onnx.engine import count_graph
    from cnncost.onnx.model import MAX_FILE_BYTES, read

    assert target.onnx_path is not None
    source = read(target.onnx_path)
    tables = {b: count_graph(source.sized(b, input), None if dtype == "float32" else dtype,
                             source=target.display) for b in batches}
    data = read_bytes(target.onnx_path, MAX_FILE_BYTES, "ONNX file")
    return tables, data, target.label


def _exported(target: Target, batches: Sequence[int], options: BenchOptions,
              input: tuple[int, ...] | None, overrides: Mapping[str, Any] | None,
              device: torch.device) -> tuple[dict[int, CostTable], bytes, str]:
    from cnncost.onnx.export import export_module

    if options.dtype != "float32":
        raise UsageError(f"--dtype {options.dtype}: --runtime onnxruntime runs the model "
                         "exported in float32")
    loaded = load_target(target, overrides, input)
    sample = (loaded.input_shape if isinstance(loaded, ModelSpec)
              else input or default_input(target.factory) or DEFAULT_INPUT)
    tables = {b: _count(loaded, sample, b, torch.float32, target.label, target.display)
              for b in batches}
    model = _materialize(loaded, device, torch.float32, False)
    exported = export_module(model, sample, label=target.display)
    return tables, exported.data, tables[batches[0]].model


def session_for(data: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session with the threads pinned as torch's are."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: its warnings are not cnncost's output
    so.add_session_config_entry("session.set_denormal_as_zero", "1")  # as torch's flush
    try:
        return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own errors (a model it cannot run)
        lines = str(exc).strip().splitlines()
        raise UsageError(f"onnxruntime cannot load the model: {lines[0] if lines else exc}"
                         ) from None


def _feeds(session: Any, table: CostTable) -> dict[str, Any]:
    """Random inputs for the session: the first at the table's input shape, others at their
    declared shape (the batch of the table)."""
    import numpy as np

    gen = np.random.default_rng(0)
    feeds = {}
    for i, arg in enumerate(session.get_inputs()):
        shape = table.input if i == 0 else tuple(
            d if isinstance(d, int) else table.input[0] for d in arg.shape)
        kind = arg.type.removeprefix("tensor(").removesuffix(")")
        if kind in ("float", "float16", "double"):
            dtype = {"float": np.float32, "float16": np.float16, "double": np.float64}[kind]
            feeds[arg.name] = gen.standard_normal(shape).astype(dtype)
        else:
            feeds[arg.name] = np.zeros(shape, dtype=np.int64 if "int64" in kind else np.int32)
    return feeds


def _ort_run(session: Any, table: CostTable, memory: Any, roof: Roofline,
             options: BenchOptions, progress: Progress | None) -> BenchRun:
    batch = table.input[0]
    feeds = _feeds(session, table)
    try:
        session.run(None, feeds)
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise UsageError(f"onnxruntime failed at batch {batch}: "
                         f"{lines[0] if lines else exc}") from None
    timing = time_fn(lambda: session.run(None, feeds), torch.device("cpu"), options.budget,
                     progress, f"batch {batch}: onnxruntime")
    roofs = layer_rooflines(table, roof)
    from cnncost.measure.bench import LayerResult

    return BenchRun(batch=batch, input=table.input, macs=table.totals.macs,
                    flops=table.totals.flops, bytes=sum(r.bytes for r in roofs), timing=timing,
                    predicted_s=sum(r.predicted_s for r in roofs),
                    compute_only_s=table.totals.flops / roof.peak_flops, memory=memory,
                    layers=tuple(LayerResult(r) for r in roofs), runtime=ONNXRUNTIME)

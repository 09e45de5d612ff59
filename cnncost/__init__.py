"""cnncost: what a convolutional network costs, layer by layer.

    >>> import cnncost
    >>> report = cnncost.analyze("resnet50", batch=8)      # bundled spec, file, or nn.Module
    >>> report.totals.macs, report.to_dict()["layers"][0]
    >>> cnncost.compare(["resnet50", "mobilenetv2"])       # the commands' twins: compare,
    >>> cnncost.sweep("resnet50", {"res": range(128, 641, 64)})   # sweep, advise, bench
    >>> model = cnncost.build("specs/mobilenetv2.yaml", width=0.5)   # a real GraphModule

Each returns the result its command renders (CostTable, Comparison, Sweep, Advice, a bench
report), with the same options; in a notebook a result shows itself as the page its command
writes with ``--format html``, and a bad input as its one-line error. torch is imported only
when a function that needs it is called.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cnncost import display
from cnncost.errors import (
    CnnCostError,
    RegressionError,
    SpecError,
    UnsupportedOpError,
    UsageError,
)
from cnncost.table import CostRow, CostTable

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import fx, nn

    from cnncost.advise.engine import Advice
    from cnncost.compare import Comparison
    from cnncost.measure.bench import BenchReport
    from cnncost.measure.bench_train import TrainBenchReport
    from cnncost.sweep import Sweep

__version__ = "0.1.0"
Report = CostTable

__all__ = [
    "CnnCostError",
    "CostRow",
    "CostTable",
    "RegressionError",
    "Report",
    "SpecError",
    "UnsupportedOpError",
    "UsageError",
    "advise",
    "analyze",
    "bench",
    "build",
    "compare",
    "sweep",
]


# The functions below that share their names with the modules doing their work
# (cnncost/compare.py, cnncost/sweep/, cnncost/advise/).
_TWINS = frozenset({"compare", "sweep", "advise"})


class _Package(types.ModuleType):
    """The package itself. Python sets every module it imports as an attribute of its
    package, so the first ``import cnncost.sweep`` anywhere would replace the function
    ``cnncost.sweep`` with the module; here the functions keep their names, and the modules
    are where Python keeps them all: ``from cnncost.sweep import run_sweep`` works as ever
    (``from cnncost import sweep`` is the function)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _TWINS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def _load_renderers() -> None:
    """Fill cnncost.display's registry (the first time a result is shown in a notebook)."""
    import cnncost.render.notebook  # noqa: F401


display.load_with(_load_renderers)


def analyze(model_or_spec: nn.Module | str | Path, input: tuple[int, ...] | None = None,
            batch: int | None = None, dtype: str | torch.dtype | None = None,
            policy: str = "all",
            strict: bool = False, engine: str | None = None, mode: str = "inference",
            **vars: Any) -> CostTable:
    """Count MACs, FLOPs, parameters and memory of a spec (path or bundled name), a module
    or an ONNX file (``model.onnx``, counted without torch).

    ``input`` is one sample's shape (C, H, W); for a spec it defaults to the spec's own
    input, for a module to (3, 224, 224), for an ONNX file to its own sizes. ``batch``
    defaults to 1 and ``dtype`` to float32 (an ONNX file's own fixed batch and float type).
    ``vars`` override a spec's variables. ``engine``:
    "analytic" (a spec's default: its own shapes, no torch) or "torch" (runs the modules on
    the meta device; the only engine for an nn.Module). Both give the same table.
    ``mode="train"`` counts one training step: the forward in training behaviour, the
    backward (per layer, the gradient of its input and of its weights), the optimizer's
    update and the step's memory (``report.totals.train``, ``row.train``). A training step
    is the torch engine's: with ``engine=None`` a spec is counted by it, and
    ``engine="analytic"`` with ``mode="train"`` is a usage error.
    """
    from cnncost.api import analyze_target

    return analyze_target(model_or_spec, input=input, batch=batch, dtype=dtype, policy=policy,
                          strict=strict, overrides=vars, engine=engine, mode=mode)


def compare(models: Sequence[str | Path], input: tuple[int, ...] | None = None,
            batch: int = 1, dtype: str = "float32", policy: str = "all", strict: bool = False,
            engine: str | None = None, mode: str = "inference", bench: bool = False,
            latency: bool = False, **vars: Any) -> Comparison:
    """``cnncost compare``: models (spec files, bundled names, pkg.module:factory, ONNX
    files) side by side, each figure also as a ratio to the first model's. ``vars`` go to
    every model whose spec declares them (an error only when none does); ``bench`` measures
    latency here, ``latency`` predicts it from this machine's calibration; ``mode="train"``
    compares training steps. The result's ``to_dict()`` is the ``cnncost.compare/1``
    document."""
    from cnncost.api import compare_targets

    if isinstance(models, str) or not isinstance(models, Sequence):
        raise UsageError("compare takes a list of models, e.g. cnncost.compare(['resnet50', "
                           "'vgg16'])")
    return compare_targets([str(m) for m in models], input, batch, dtype, policy, strict, vars,
                           bench, engine=engine, mode=mode, latency=latency)


def sweep(spec: str | Path, grid: Mapping[str, Any], *, zip: Sequence[Any] = (),
          batch: Any = None, input: tuple[int, ...] | None = None, dtype: str | None = None,
          policy: str = "all", strict: bool = False, engine: str | None = None,
          mode: str = "inference", latency: bool = False, jobs: int = 1,
          dask: str | None = None, max_points: int = 100_000) -> Sweep:
    """``cnncost sweep``: a spec counted at every point of ``grid`` (variable -> values: a
    list, a range, one fixed value, or the command line's text such as ``"128..640:32"``;
    ``"batch"`` is the batch size), the cartesian product of the variables, or, for each
    group in ``zip`` (``("width", "depth", "res")``), those variables moving together. The
    result holds every point (``results``) and the fitted scaling exponents (``exponents``).
    ``jobs``: local processes; ``dask``: a Dask scheduler's address."""
    from cnncost.api import sweep_grid

    return sweep_grid(spec, grid, zip, batch, jobs=jobs, dask=dask, input=input,
                      dtype=dtype, policy=policy, strict=strict, engine=engine, mode=mode,
                      max_points=max_points, latency=latency)


def advise(spec: str | Path, min_saving: float | str | None = None, latency: bool = False,
           **vars: Any) -> Advice:
    """``cnncost advise``: the lectures' design guidelines applied to a spec, each suggestion
    counted on the rewritten spec; ``min_saving`` (0.05 or "5%", the default) is the least
    saving of the model's params or MACs a cost rule reports; ``latency`` adds each rewrite's
    predicted latency (this machine's calibration)."""
    from cnncost.advise.engine import parse_saving
    from cnncost.api import advise_target

    saving = parse_saving(min_saving) if isinstance(min_saving, str) else min_saving
    if saving is not None and not 0 <= saving < 1:
        raise UsageError(f"min_saving {saving!r}: expected a fraction from 0 to below 1")
    return advise_target(str(spec), vars, saving, latency)


def bench(model: str | Path, batch: int | Sequence[int] = 1, *, train: bool = False,
          device: str = "auto", dtype: str = "float32", threads: int | None = None,
          per_layer: bool = False, optimizer: str = "sgd", max_time: float = 10.0,
          min_samples: int = 7, input: tuple[int, ...] | None = None,
          **vars: Any) -> BenchReport | TrainBenchReport:
    """``cnncost bench``: the model measured here at each batch size (latency, throughput,
    GFLOP/s against the roofline; ``per_layer`` times every layer), or with ``train`` whole
    training steps with ``optimizer`` and their peak memory. Needs torch."""
    from cnncost.api import bench_target
    from cnncost.measure.bench import BenchOptions
    from cnncost.measure.timing import Budget

    batches = (batch,) if isinstance(batch, int) else tuple(batch)
    budget = Budget(min_samples=min_samples, max_time=max_time,
                    min_time=min(0.5, max_time / 2), warmup_time=min(0.25, max_time / 4))
    options = BenchOptions(device=device, dtype=dtype, threads=threads, per_layer=per_layer,
                           optimizer=optimizer, budget=budget)
    return bench_target(str(model), batches, options, train, input, vars)


def build(spec_path: str | Path, input: tuple[int, ...] | None = None,
          **vars: Any) -> fx.GraphModule:
    """Compile a spec (path or bundled name) into a trainable torch.fx GraphModule."""
    from cnncost.graph.build import build_module
    from cnncost.sources import resolve
    from cnncost.spec import load_spec

    target = resolve(str(spec_path))
    if target.spec_path is None:
        raise SpecError(f"{spec_path}: build() takes a spec, not a module factory")
    return build_module(load_spec(target.spec_path, overrides=vars, input_shape=input))

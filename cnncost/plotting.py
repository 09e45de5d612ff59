"""What ``cnncost plot`` needs for each kind of chart, asked of the engines (no drawing).

``layers`` needs one CostTable; ``compare`` and ``scatter`` a Comparison of several (the
same one ``cnncost compare`` prints) and, for scatter, the top-1 accuracy each spec declares
under ``reference: {top1: ...}``; ``roofline`` a benchmark with per-layer timing (the one
``cnncost bench --per-layer`` prints). render/plot.py draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from cnncost.errors import SpecError, UsageError

if TYPE_CHECKING:
    from cnncost.compare import Comparison
    from cnncost.measure.bench import BenchReport
    from cnncost.sweep import Sweep
    from cnncost.table import CostTable


class PlotKind(str, Enum):
    """What ``cnncost plot`` draws."""

    LAYERS = "layers"
    COMPARE = "compare"
    SCATTER = "scatter"
    ROOFLINE = "roofline"
    SWEEP = "sweep"


# How many models each kind takes: (at least, at most).
MODELS = {PlotKind.LAYERS: (1, 1), PlotKind.COMPARE: (2, None), PlotKind.SCATTER: (2, None),
          PlotKind.ROOFLINE: (1, 1), PlotKind.SWEEP: (1, 1)}


@dataclass(frozen=True)
class PlotData:
    """The figures one chart is drawn from (only those its kind needs are set)."""

    kind: PlotKind
    table: CostTable | None = None
    comparison: Comparison | None = None
    bench: BenchReport | None = None
    sweep: Sweep | None = None
    top1: Mapping[str, float] = field(default_factory=dict)


def default_kind(models: Sequence[str]) -> PlotKind:
    """layers for one model, compare for several."""
    return PlotKind.LAYERS if len(models) == 1 else PlotKind.COMPARE


def check_count(kind: PlotKind, models: Sequence[str]) -> None:
    """UsageError when ``kind`` cannot take this many models."""
    least, most = MODELS[kind]
    n = len(models)
    if n < least:
        raise UsageError(f"--kind {kind.value} needs at least {least} models (got {n}), e.g. "
                         "cnncost plot alexnet vgg16 --kind compare --output cmp.png")
    if most is not None and n > most:
        other = "--kind compare or scatter" if kind is PlotKind.LAYERS else "one plot per model"
        raise UsageError(f"--kind {kind.value} draws one model (got {n}); use {other}")


def gather(kind: PlotKind, models: Sequence[str], *, input: tuple[int, ...] | None = None,
           batch: int = 1, dtype: str = "float32", policy: str = "all",
           overrides: Mapping[str, Any] | None = None, strict: bool = False,
           max_time: float = 2.0, sweep_sets: Sequence[str] = (), zips: Sequence[str] = (),
           bench: bool = False,
           progress: Callable[[str, float], None] | None = None) -> PlotData:
    """Count (or, for roofline, benchmark) the models a chart of ``kind`` shows.

    A sweep takes the ``--set`` texts as ``cnncost sweep`` does (``res=128..640:32``) in
    ``sweep_sets``, and ``zips``; ``overrides`` are for the other kinds. ``bench`` (scatter)
    measures each model's latency as ``cnncost compare --bench`` does."""
    check_count(kind, models)
    if bench and kind is not PlotKind.SCATTER:
        raise UsageError("--bench goes with --kind scatter (roofline always measures)")
    if kind is PlotKind.SWEEP:
        from cnncost.sweep import run_sweep

        return PlotData(kind, sweep=run_sweep(models[0], sweep_sets, zips, str(batch),
                                              input=input, dtype=dtype, policy=policy,
                                              strict=strict))
    if zips:
        raise UsageError("--zip goes with --kind sweep")
    from cnncost.api import analyze_target, compare_targets
    from cnncost.sources import resolve

    targets = [resolve(m) for m in models]  # every name resolved before any counting
    if kind is PlotKind.ROOFLINE:
        return PlotData(kind, bench=_bench(targets[0], input, batch, dtype, overrides,
                                           max_time, progress))
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


def declared_top1(targets: Sequence[Any], names: Sequence[str]) -> dict[str, float]:
    """model name -> the ``reference.top1`` its spec declares (percent), where it does."""
    from cnncost.spec import load_spec

    out: dict[str, float] = {}
    for target, name in zip(targets, names, strict=True):
        if target.spec_path is None:
            continue
        value = load_spec(target.spec_path).reference.get("top1")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 < value <= 100):
            raise SpecError(f"reference.top1 {value!r}: expected a top-1 accuracy in percent, "
                            "like 76.13", str(target.spec_path))
        out[name] = float(value)
    return out


def _bench(target: Any, input: tuple[int, ...] | None, batch: int, dtype: str,
           overrides: Mapping[str, Any] | None, max_time: float,
           progress: Callable[[str, float], None] | None) -> BenchReport:
    from cnncost.measure.bench import BenchOptions, bench
    from cnncost.measure.timing import Budget

    budget = Budget(min_samples=5, max_time=max_time, min_time=min(0.5, max_time / 2),
                    warmup_time=min(0.25, max_time / 4))
    return bench(target, (batch,), BenchOptions(dtype=dtype, per_layer=True, budget=budget),
                 input=input, overrides=overrides, progress=progress)

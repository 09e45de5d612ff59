"""What ``cnncost plot`` draws: the kinds of chart, how many models each takes, and the
figures one chart is drawn from (``PlotData``, gathered by ``cnncost.api.plot_data``; no
drawing, no counting here).

``layers`` needs one CostTable; ``compare`` and ``scatter`` a Comparison of several (the
same one ``cnncost compare`` prints) and, for scatter, the top-1 accuracy each spec declares
under ``reference: {top1: ...}``; ``roofline`` a benchmark with per-layer timing (the one
``cnncost bench --per-layer`` prints). render/plot.py draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

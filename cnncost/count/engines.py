"""Which engine counts: the one place that chooses between the analytic engine and the torch
engine, and counts a compiled spec with it.

What belongs here: the engine names (``Engine``), the rule that picks one (``engine_for``),
and the two entry points every command counts a loaded spec through (``count_loaded`` for a
table, ``totals_loaded`` for totals alone: a sweep's point). Commands (advise, sweep, api)
import these; the engines themselves (``analytic``, ``drivers``) are imported lazily, so
choosing costs no torch import.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from cnncost.errors import UsageError

if TYPE_CHECKING:
    import torch

    from cnncost.spec import ModelSpec
    from cnncost.table import CostTable, Totals


class Engine(str, Enum):
    """How a table is counted: ``analytic`` from a spec's own shapes (no torch), ``torch`` by
    running the modules on the meta device (the oracle; the only way to count an nn.Module)."""

    ANALYTIC = "analytic"
    TORCH = "torch"


def engine_for(engine: Engine | str | None, spec: bool, what: str = "",
               mode: str = "inference") -> Engine:
    """The engine to count with: ``None`` is analytic for a spec and torch for a module, and
    torch for a training step (``mode="train"``: its backward is what autograd runs, and the
    analytic engine runs no autograd). The analytic engine asked for a module or a training
    step is a UsageError naming it."""
    if engine is None:
        return Engine.ANALYTIC if spec and mode == "inference" else Engine.TORCH
    try:
        chosen = Engine(engine)
    except ValueError:
        raise UsageError(f"engine {engine!r}: expected 'analytic' or 'torch'") from None
    if chosen is Engine.ANALYTIC and not spec:
        raise UsageError(f"{what or 'an nn.Module'}: the analytic engine counts specs only; "
                         "count a module with engine='torch' (--engine torch)")
    if chosen is Engine.ANALYTIC and mode != "inference":
        raise UsageError(f"{what + ': ' if what else ''}the analytic engine counts inference "
                         f"only; mode={mode!r} (a training step) is counted by the torch "
                         "engine (engine='torch', --engine torch, or no engine at all)")
    return chosen


def count_loaded(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
                 policy: str = "all", source: str | None = None, strict: bool = False,
                 engine: Engine | str | None = None, mode: str = "inference") -> CostTable:
    """Count an already compiled spec with the engine asked for (default: analytic; torch
    for a training step, see ``engine_for``)."""
    if engine_for(engine, True, source or "", mode) is Engine.TORCH:
        from cnncost.count import drivers

        return drivers.count_spec(spec, batch, dtype, policy, strict, source=source, mode=mode)
    from cnncost.count import analytic

    return analytic.count_spec(spec, batch, dtype, policy, strict, source=source)


def totals_loaded(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
                  policy: str = "all", strict: bool = False,
                  engine: Engine | str | None = None, mode: str = "inference") -> Totals:
    """``count_loaded(...).totals``; the analytic engine makes no rows for it (a sweep). A
    training step (``mode="train"``) is the torch engine's, as in ``count_loaded``."""
    if engine_for(engine, True, "", mode) is Engine.TORCH:
        return count_loaded(spec, batch, dtype, policy, None, strict, engine, mode).totals
    from cnncost.count import analytic

    return analytic.count_totals(spec, batch, dtype, policy, strict)

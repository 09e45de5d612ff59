"""Models side by side: each model's headline figures and their ratios to the first model.

The comparison is a result like a CostTable (``cnncost.compare/1`` JSON document); its
renderings are in ``cnncost.render.compare``. Pure Python, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cnncost.display import repr_html
from cnncost.table import CostTable

COMPARE_SCHEMA = "cnncost.compare/1"


@dataclass(frozen=True)
class Column:
    """One compared figure: a key in each model's values, a label, and its unit."""

    key: str
    label: str
    unit: str  # "count", "bytes" or "ms"


COMPARE_COLUMNS = (
    Column("params", "params", "count"),
    Column("macs", "MACs", "count"),
    Column("flops", "FLOPs", "count"),
    Column("activation_bytes", "activations", "bytes"),
    Column("peak_memory_bytes", "peak memory", "bytes"),
)
# Shown after params when some model has parameters that do not train.
FROZEN_COLUMN = Column("frozen_params", "frozen params", "count")
# --mode train: a training step's figures (the update and memory with Adam).
TRAIN_COMPARE_COLUMNS = (
    Column("params", "params", "count"),
    Column("macs", "MACs fwd", "count"),
    Column("backward_macs", "MACs bwd", "count"),
    Column("step_flops", "step FLOPs (Adam)", "count"),
    Column("saved_activation_bytes", "saved activations", "bytes"),
    Column("training_memory_bytes", "training memory (Adam)", "bytes"),
)


@dataclass(frozen=True)
class CompareRow:
    """One model in a comparison: its recipe and the value of each column."""

    model: str
    source: str
    input: tuple[int, ...]
    dtype: str
    policy: str
    vars: Mapping[str, Any]
    values: Mapping[str, float | None]
    mode: str = "inference"  # or "train": a training step's figures (train documents only)


@dataclass(frozen=True)
class Comparison:
    """Models side by side; every column also as a ratio to the first model."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    rows: tuple[CompareRow, ...]
    columns: tuple[Column, ...] = COMPARE_COLUMNS

    def ratio(self, index: int, key: str) -> float | None:
        """rows[index].values[key] / rows[0].values[key]; None when undefined."""
        base = self.rows[0].values.get(key)
        value = self.rows[index].values.get(key)
        if base is None or value is None or base == 0:
            return None
        return value / base

    def with_column(self, column: Column, values: Sequence[float | None],
                    after: str | None = None) -> Comparison:
        """Add a column (e.g. measured latency from ``bench``), one value per model; placed
        right after the column ``after`` when given, else last."""
        if len(values) != len(self.rows):
            raise ValueError(f"{len(values)} values for {len(self.rows)} models")
        rows = tuple(replace(r, values={**r.values, column.key: v})
                     for r, v in zip(self.rows, values, strict=True))
        cols = list(self.columns)
        at = next((i + 1 for i, c in enumerate(cols) if c.key == after), len(cols))
        return Comparison(rows, (*cols[:at], column, *cols[at:]))

    def to_dict(self) -> dict[str, Any]:
        """The compare JSON document (schema ``cnncost.compare/1``)."""
        return {
            "schema": COMPARE_SCHEMA,
            "baseline": self.rows[0].model if self.rows else None,
            "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in self.columns],
            "models": [
                {
                    "model": r.model,
                    "source": r.source,
                    "input": list(r.input),
                    "dtype": r.dtype,
                    "policy": r.policy,
                    **({"mode": r.mode} if r.mode != "inference" else {}),
                    "vars": dict(sorted(r.vars.items())),
                    **{c.key: r.values.get(c.key) for c in self.columns},
                    "ratios": {c.key: self.ratio(i, c.key) for c in self.columns},
                }
                for i, r in enumerate(self.rows)
            ],
        }


def compare_tables(tables: Sequence[CostTable]) -> Comparison:
    """One row per table with params, MACs, FLOPs, activation and peak memory (training
    steps: params, forward and backward MACs, Adam's step FLOPs, saved and training memory)."""
    train = bool(tables) and all(t.train for t in tables)
    columns: tuple[Column, ...] = TRAIN_COMPARE_COLUMNS if train else COMPARE_COLUMNS
    if any(t.totals.frozen_params for t in tables):  # trainable and frozen apart
        columns = (columns[0], FROZEN_COLUMN, *columns[1:])
    rows = []
    for t in tables:
        values = _train_values(t) if train else {c.key: getattr(t.totals, c.key)
                                                 for c in columns}
        if train and FROZEN_COLUMN in columns:
            values["frozen_params"] = t.totals.frozen_params
        rows.append(CompareRow(t.model, t.source, tuple(t.input), t.dtype, t.policy,
                               dict(t.vars), values, t.mode))
    return Comparison(tuple(rows), columns)


def _train_values(t: CostTable) -> dict[str, float | None]:
    tr = t.totals.train
    assert tr is not None
    return {"params": t.totals.params, "macs": t.totals.macs,
            "backward_macs": tr.backward_macs, "step_flops": tr.step_flops["adam"],
            "saved_activation_bytes": tr.saved_activation_bytes,
            "training_memory_bytes": t.totals.training_memory_bytes["adam"]}

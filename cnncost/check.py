"""Baseline cost table vs current cost table -> the list of what drifted (pure Python, no torch).

``cnncost check reports/`` loads every committed report, recomputes it from the recipe it
records (source, input, dtype, policy, vars; see cnncost.table) and diffs the two here.
Numbers may move by a relative ``tolerance``; names, kinds and shapes must match exactly.
The diff's rendering is in ``cnncost.render.check``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncost.errors import UsageError
from cnncost.table import CostRow, CostTable

MODEL = "(model)"
TOTALS = "(totals)"
MODEL_FIELDS = ("input", "dtype", "policy")
ROW_FIELDS = ("kind", "input_shape", "output_shape", "params", "buffers", "macs", "flops",
              "output_bytes", "receptive_field", "calls", "uncounted")
PRESENT, MISSING = "present", "missing"


@dataclass(frozen=True)
class Regression:
    """One drifted figure: ``layer`` (or "(model)"/"(totals)"), the field, old and new value."""

    layer: str
    field: str
    old: Any
    new: Any


def is_number(x: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def within(old: Any, new: Any, tolerance: float = 0.0) -> bool:
    """Equal, or both numbers with |new - old| <= tolerance * |old|."""
    if is_number(old) and is_number(new):
        return bool(abs(new - old) <= tolerance * abs(old))
    return bool(old == new)


def _plain(value: Any) -> Any:
    """Tuples -> lists and mappings -> sorted dicts, so a table and its JSON compare equal."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in sorted(value.items())}
    return value


def _flat_totals(table: CostTable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.totals.to_dict().items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in sorted(value.items())})
        else:
            out[key] = value
    return out


def _diff_rows(old: CostRow, new: CostRow, tolerance: float) -> Iterable[Regression]:
    for name in ROW_FIELDS:
        a, b = _plain(getattr(old, name)), _plain(getattr(new, name))
        if not within(a, b, tolerance):
            yield Regression(old.name, name, a, b)


def diff_tables(baseline: CostTable, current: CostTable,
                tolerance: float = 0.0) -> list[Regression]:
    """Everything that moved from ``baseline`` to ``current``: model recipe, layers, totals.

    Layers are matched by name; a layer only in one table is reported with field
    "layer" and old/new "present"/"missing". ``tolerance`` is relative (0.01 = 1%).
    """
    if tolerance < 0:
        raise UsageError(f"--tolerance {tolerance}: must be >= 0 (relative, 0.01 = 1%)")
    found: list[Regression] = []
    for name in MODEL_FIELDS:
        a, b = _plain(getattr(baseline, name)), _plain(getattr(current, name))
        if a != b:
            found.append(Regression(MODEL, name, a, b))
    now = {r.name: r for r in current.layers}
    before = {r.name for r in baseline.layers}
    for row in baseline.layers:
        if row.name not in now:
            found.append(Regression(row.name, "layer", PRESENT, MISSING))
        else:
            found.extend(_diff_rows(row, now[row.name], tolerance))
    found.extend(Regression(r.name, "layer", MISSING, PRESENT)
                 for r in current.layers if r.name not in before)
    old_totals, new_totals = _flat_totals(baseline), _flat_totals(current)
    for key in [*old_totals, *(k for k in new_totals if k not in old_totals)]:
        a, b = old_totals.get(key), new_totals.get(key)
        if not within(a, b, tolerance):
            found.append(Regression(TOTALS, key, a, b))
    return found


# --------------------------------------------------------------------------- baselines on disk


def report_files(directory: Path) -> list[Path]:
    """The JSON reports under ``directory`` (recursively, sorted); UsageError if none."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory (make one with `cnncost report "
                         f"--all --out {directory}`)")
    files = sorted(p for p in directory.rglob("*.json") if not p.name.startswith("."))
    if not files:
        raise UsageError(f"{directory}: no reports (*.json) here; make them with "
                         f"`cnncost report --all --out {directory}`")
    return files


def load_report(path: Path) -> CostTable:
    """A committed report; unreadable or foreign JSON is a one-line UsageError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        return CostTable.from_json(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a cnncost report: {exc}") from None


@dataclass(frozen=True)
class Recipe:
    """How to recompute a report: what ``cnncost analyze`` was given."""

    source: str
    input: tuple[int, ...] | None
    batch: int
    dtype: str
    policy: str
    vars: Mapping[str, Any]


def recipe(table: CostTable) -> Recipe:
    """The recipe a report records (input only when --input was given)."""
    if not table.input:
        raise UsageError(f"{table.model}: report has no input shape")
    return Recipe(table.source, tuple(table.input[1:]) if table.input_given else None,
                  int(table.input[0]), table.dtype, table.policy, dict(table.vars))

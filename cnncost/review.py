"""The cost review of a change: what ``check`` (committed reports vs a recount) and ``diff``
(two folders or files of reports) found, model by model (pure Python, no torch).

A :class:`Review` holds one :class:`ModelReview` per report: its status, the model's recipe
and totals old -> new (with change and ratio) first, then its layers' differences, largest
first, and the budgets (cnncost.budgets) its new figures break. Its JSON document:

    {"schema": "cnncost.check/1" | "cnncost.diff/1", "command": "check" | "diff",
     "reports": str (check) | "base": str, "head": str (diff),
     "tolerance": float, "budgets": str | null, "updated": bool,
     "status": "ok" | "drift" | "over_budget" | "error",
     "exit_code": 0 | 1 | 2,
     "summary": {"reports": n, "ok": n, "drift": n, "over_budget": n, "missing": n,
                 "cannot_recompute": n, "added": n},
     "unreported": [bundled spec names without a report],
     "models": [{"path", "model", "source", "status", "differences", "updated",
                 "figures": {"params"|"macs"|"flops"|"peak_memory_bytes"|"receptive_field":
                             {"old": n | null, "new": n | null}},
                 "recipe": [change], "totals": [change],
                 "layers": [{"name", "status": "changed" | "added" | "removed",
                             "changes": [change]}],
                 "budget": [{"field", "ceiling", "ceiling_text", "value", "over", "ratio",
                             "where"}],
                 "error": str | null}]}

    change = {"field", "old", "new", "change": new - old | null, "ratio": new / old | null}

A model's status is one of STATUSES: ``ok``; ``drift`` (a figure moved: in ``diff``, the
head's report differs from the base's); ``over_budget`` (its new figures break a ceiling,
drifted or not: ``differences`` says); ``missing`` (``check``: its source is gone;
``diff``: the head has no such report); ``cannot_recompute``; ``added`` (``diff``: only in
the head). ``check`` exits 1 on drift or a budget broken, else 2 when a report is missing
or cannot be recomputed, else 0; ``diff`` exits 1 only for a budget broken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnncost.budgets import Breach, Budgets
from cnncost.check import (
    MODEL,
    TOTALS,
    Regression,
    diff_tables,
    flat_totals,
    is_number,
    row_keys,
)
from cnncost.errors import UsageError
from cnncost.table import CostRow, CostTable, final_receptive_field

SCHEMAS = {"check": "cnncost.check/1", "diff": "cnncost.diff/1"}
STATUSES = ("ok", "drift", "over_budget", "missing", "cannot_recompute", "added")
FAILED = ("missing", "cannot_recompute")
# The figures the summary shows for every model, in this order.
FIGURES = ("params", "macs", "flops", "peak_memory_bytes", "receptive_field")
# A layer's weight in the "largest first" order: its change in these, compared in turn.
WEIGHTS = ("macs", "params", "output_bytes", "flops")
ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclass(frozen=True)
class Change:
    """One figure old -> new (None where a side has none)."""

    field: str
    old: Any
    new: Any

    @property
    def change(self) -> int | float | None:
        """new - old, for numbers."""
        return self.new - self.old if is_number(self.old) and is_number(self.new) else None

    @property
    def ratio(self) -> float | None:
        """new / old, for numbers with old != 0."""
        if is_number(self.old) and is_number(self.new) and self.old:
            return float(self.new / self.old)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new,
                "change": self.change, "ratio": self.ratio}


@dataclass(frozen=True)
class LayerChange:
    """A layer that changed, was added or was removed, with its figures' changes."""

    name: str
    status: str
    changes: tuple[Change, ...]

    def weight(self) -> tuple[float, ...]:
        """How much it moved: |change| of MACs, params, output bytes, FLOPs in turn."""
        by = {c.field: c for c in self.changes}
        return tuple(abs(_number(by[f].new) - _number(by[f].old)) if f in by else 0.0
                     for f in WEIGHTS)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status,
                "changes": [c.to_dict() for c in self.changes]}


def _number(value: Any) -> float:
    return float(value) if is_number(value) else 0.0


@dataclass(frozen=True)
class ModelReview:
    """One report's review: status, recipe and totals changes, layers, budgets broken."""

    path: str
    model: str
    source: str
    status: str
    figures: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    recipe: tuple[Change, ...] = ()
    totals: tuple[Change, ...] = ()
    layers: tuple[LayerChange, ...] = ()
    differences: int = 0
    breaches: tuple[Breach, ...] = ()
    error: str | None = None
    updated: bool = False

    @property
    def changed(self) -> bool:
        return self.differences > 0 or self.status in ("added", "missing")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "model": self.model, "source": self.source,
                "status": self.status, "differences": self.differences,
                "updated": self.updated,
                "figures": {k: {"old": old, "new": new} for k, (old, new) in self.figures.items()},
                "recipe": [c.to_dict() for c in self.recipe],
                "totals": [c.to_dict() for c in self.totals],
                "layers": [layer.to_dict() for layer in self.layers],
                "budget": [b.to_dict() for b in self.breaches],
                "error": self.error}


@dataclass(frozen=True)
class Review:
    """Every report's review, for ``check`` (``where``: {"reports": DIR}) or ``diff``
    ({"base": ..., "head": ...})."""

    command: str
    where: Mapping[str, str]
    models: tuple[ModelReview, ...]
    tolerance: float = 0.0
    budgets: str | None = None
    updated: bool = False
    unreported: tuple[str, ...] = ()

    def count(self, status: str) -> int:
        return sum(m.status == status for m in self.models)

    @property
    def drifted(self) -> int:
        """Reports whose figures moved (over budget or not)."""
        return sum(m.differences > 0 for m in self.models)

    @property
    def exit_code(self) -> int:
        """check: 1 for drift (not updated) or a budget broken, else 2 for a report that
        could not be recomputed, else 0; diff: 1 for a budget broken, else 0."""
        if self.count("over_budget"):
            return 1
        if self.command == "diff":
            return 0
        if self.drifted and not self.updated:
            return 1
        return 2 if any(m.status in FAILED for m in self.models) else 0

    @property
    def status(self) -> str:
        """The whole review in one word: over_budget, drift, error or ok."""
        if self.count("over_budget"):
            return "over_budget"
        if any(m.changed for m in self.models) and not self.updated:
            return "drift"
        return "error" if self.exit_code == 2 else "ok"

    def to_dict(self) -> dict[str, Any]:
        summary = {"reports": len(self.models), **{s: self.count(s) for s in STATUSES}}
        return {"schema": SCHEMAS[self.command], "command": self.command, **self.where,
                "tolerance": self.tolerance, "budgets": self.budgets, "updated": self.updated,
                "status": self.status, "exit_code": self.exit_code, "summary": summary,
                "unreported": list(self.unreported),
                "models": [m.to_dict() for m in self.models]}


# --------------------------------------------------------------------------- one model


def broken_review(path: Path | str, error: str) -> ModelReview:
    """The review of a report that cannot be read: it cannot be recomputed."""
    return ModelReview(str(path), Path(path).stem, "", "cannot_recompute", error=error)



def figures(table: CostTable | None) -> dict[str, Any]:
    """The summary's figures of a table (FIGURES), or {} for none."""
    if table is None:
        return {}
    totals = flat_totals(table)
    return {f: final_receptive_field(table) if f == "receptive_field" else totals.get(f)
            for f in FIGURES}


def review_model(path: Path | str, baseline: CostTable | None, current: CostTable | None,
                 tolerance: float = 0.0, budgets: Budgets | None = None,
                 regressions: Sequence[Regression] | None = None, error: str | None = None,
                 missing: bool = False, updated: bool = False) -> ModelReview:
    """The review of one report: ``baseline`` (None: only in diff's head) against
    ``current`` (None: it could not be recomputed, ``error`` says why, or is ``missing``)."""
    some = baseline if baseline is not None else current
    assert some is not None, "a review needs at least one table"
    old, new = figures(baseline), figures(current)
    shown = {f: (old.get(f), new.get(f)) for f in FIGURES}
    breaches = tuple(budgets.breaches(current.model, flat_totals(current))
                     if budgets is not None and current is not None else ())
    m = ModelReview(str(path), some.model, some.source, "ok", shown, breaches=breaches,
                    error=error, updated=updated)
    if baseline is None or current is None:
        status = ("added" if baseline is None else "missing" if missing
                  else "cannot_recompute")
        return replace(m, status="over_budget" if breaches else status)
    if regressions is None:
        regressions = diff_tables(baseline, current, tolerance)
    return replace(
        m, status="over_budget" if breaches else "drift" if regressions else "ok",
        recipe=tuple(Change(r.field, r.old, r.new) for r in regressions if r.layer == MODEL),
        totals=tuple(Change(r.field, r.old, r.new) for r in regressions if r.layer == TOTALS),
        layers=layer_changes(baseline, current, regressions), differences=len(regressions))


_ROW_SHOWN = ("macs", "params", "output_shape", "output_bytes")  # an added/removed layer's


def layer_changes(baseline: CostTable, current: CostTable,
                  regressions: Iterable[Regression]) -> tuple[LayerChange, ...]:
    """The layers' differences grouped by layer, largest first (ties: in execution order);
    an added or removed layer with its own MACs, params, output shape and bytes."""
    old_rows, new_rows = _rows(baseline), _rows(current)
    grouped: dict[str, list[Change]] = {}
    status: dict[str, str] = {}
    for r in regressions:
        if r.layer in (MODEL, TOTALS):
            continue
        if r.field == "layer":
            added = r.new == "present"
            row = (new_rows if added else old_rows)[r.layer]
            status[r.layer] = ADDED if added else REMOVED
            grouped[r.layer] = [Change(f, None, _plain(getattr(row, f))) if added else
                                Change(f, _plain(getattr(row, f)), None) for f in _ROW_SHOWN]
        else:
            grouped.setdefault(r.layer, []).append(Change(r.field, r.old, r.new))
    changes = [LayerChange(name, status.get(name, CHANGED), tuple(c))
               for name, c in grouped.items()]
    return tuple(sorted(changes, key=lambda c: tuple(-w for w in c.weight())))


def _rows(table: CostTable) -> dict[str, CostRow]:
    return dict(zip(row_keys(table.layers), table.layers, strict=True))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- diff


def diff_review(base: Path, head: Path, budgets: Path | None = None) -> Review:
    """``cnncost diff``: the review of two folders of reports (matched by their path inside
    the folder) or two report files, no recount; budgets apply to the head's figures."""
    from cnncost.budgets import budgets_for
    from cnncost.check import load_report

    pairs = report_pairs(base, head)
    old = {name: load_report(b) for name, (b, _) in pairs.items() if b is not None}
    new = {name: load_report(h) for name, (_, h) in pairs.items() if h is not None}
    ceilings = budgets_for(head, list(new.values()), budgets)
    models = tuple(review_model(h or b or name, old.get(name), new.get(name),
                                budgets=ceilings, missing=True)
                   for name, (b, h) in pairs.items())
    return Review("diff", {"base": str(base), "head": str(head)}, models,
                  budgets=ceilings.file if ceilings else None)


def report_pairs(base: Path, head: Path) -> dict[str, tuple[Path | None, Path | None]]:
    """diff's reports by name (their path inside the folder): (base's, head's), either may be
    None; two files are one pair. UsageError for a missing path, a file and a folder, or two
    folders with no report name in common."""
    from cnncost.check import report_files

    for path in (base, head):
        if not path.exists():
            raise UsageError(f"{path}: no such folder or report")
    if base.is_file() or head.is_file():
        if not (base.is_file() and head.is_file()):
            raise UsageError(f"{base} and {head}: diff takes two folders of reports or two "
                             "report files, not one of each")
        report_files(base), report_files(head)  # each a *.json, or a one-line error
        return {head.name: (base, head)}
    old = {p.relative_to(base).as_posix(): p for p in report_files(base)}
    new = {p.relative_to(head).as_posix(): p for p in report_files(head)}
    if not old.keys() & new.keys():
        raise UsageError(f"{base} and {head} have no report in common ({_few(old)} vs "
                         f"{_few(new)}); diff compares reports of the same name")
    names = [*old, *(n for n in new if n not in old)]
    return {n: (old.get(n), new.get(n)) for n in sorted(names)}


def _few(reports: Mapping[str, Path]) -> str:
    names = sorted(reports)
    return ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")

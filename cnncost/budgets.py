"""Budgets: ceilings on a model's totals, read from ``budgets.yaml`` beside the reports.

    # reports/budgets.yaml
    resnet50:
      macs: 4.2G                # counts: a number, or SI prefixes k/K, M, G, T, P
      params: 26M
      peak_memory_bytes: 300MiB # bytes: B, IEC KiB..PiB or SI kB/KB, MB, GB, TB, PB
      training_memory_bytes.adam: 1.5GiB

A key is a model's name (a report's ``model``), a field is any totals field of its report
(cnncost.table.Totals, flattened: ``training_memory_bytes.adam``). A field's unit comes
from its name (UNITS: ``*_bytes`` are sizes, ``*_ms`` durations, anything else a count),
so a new totals field (a predicted ``latency_ms``) can be budgeted without a change here.
A figure over its ceiling is a :class:`Breach` (``check`` exits 1); a malformed file is a
UsageError naming its file and line. Pure Python, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cnncost.errors import SpecError, UsageError
from cnncost.fmt import human, human_bytes
from cnncost.table import CostTable

FILE_NAME = "budgets.yaml"
MAX_BUDGET_BYTES = 1 << 20
LARGEST = Decimal(10) ** 30  # beyond any figure (MACs of a zoo at batch 1e6: ~1e20)

_NUMBER = r"(?P<n>[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE](?P<e>[+-]?[0-9]{1,3}))?"
_COUNT_PREFIX = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                 "P": 10**15}
_BYTE_UNIT = {"": 1, "B": 1, **{f"{p}B": 1000**i for i, p in enumerate("kMGTP", 1)},
              "KB": 1000, **{f"{p}iB": 1024**i for i, p in enumerate("KMGTP", 1)}}
_MS_UNIT: dict[str, int | Decimal] = {"": 1, "ms": 1, "s": 1000, "us": Decimal("0.001")}


@dataclass(frozen=True)
class Unit:
    """How a field's ceiling is written (``units``: suffix -> factor) and shown."""

    name: str
    units: Mapping[str, int | Decimal]
    example: str
    show: Callable[[float], str]


UNITS = {  # by the end of a field's name; the last entry is the default
    "_bytes": Unit("a size", _BYTE_UNIT, "300MiB or 300MB", human_bytes),
    "_ms": Unit("a duration", _MS_UNIT, "12.5ms or 0.5s", lambda v: f"{v:.3g} ms"),
    "": Unit("a count", _COUNT_PREFIX, "4.2G or 26M", human),
}


def unit_of(field: str) -> Unit:
    """The unit of a totals field, from the end of its name (of the mapping's name for a
    flattened ``training_memory_bytes.adam``)."""
    name = field.split(".")[0]
    return next(u for suffix, u in UNITS.items() if name.endswith(suffix))


def parse_quantity(value: Any, unit: Unit) -> Decimal:
    """A ceiling as written (``4.2G``, ``300MiB``, ``26000000``) -> its exact value; ValueError
    saying what was expected."""
    expected = f"{unit.name} such as {unit.example}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {expected}, found {_shown(value)}")
    text = str(value).strip()
    m = re.fullmatch(_NUMBER + r"\s*(?P<u>[A-Za-z]*)", text)
    if m is None or m["u"] not in unit.units:
        suffix = f"; {m['u']!r} is not a unit of {unit.name}" if m and m["u"] else ""
        raise ValueError(f"expected {expected}, found {_shown(value)}{suffix}")
    try:
        number = Decimal(m["n"].replace("_", "")) * Decimal(10) ** int(m["e"] or 0)
    except InvalidOperation:
        raise ValueError(f"expected {expected}, found {_shown(value)}") from None
    result = number * unit.units[m["u"]]
    if result > LARGEST:
        raise ValueError(f"{_shown(value)} is absurdly large (more than 1e30)")
    return result


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Ceiling:
    """One budget: ``model``'s ``field`` must stay at or under ``limit`` (written ``text``
    at ``file:line``)."""

    model: str
    field: str
    limit: Decimal
    text: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Breach:
    """A figure over its ceiling: by ``over`` (value - limit) and ``ratio`` (value / limit)."""

    ceiling: Ceiling
    value: int | float

    @property
    def field(self) -> str:
        return self.ceiling.field

    @property
    def over(self) -> int | float:
        return _plain(Decimal(self.value) - self.ceiling.limit)

    @property
    def ratio(self) -> float | None:
        return float(Decimal(self.value) / self.ceiling.limit) if self.ceiling.limit else None

    def text(self) -> str:
        """'macs 4.3G over its budget 4.2G by 100M (+2.4%)'."""
        show = unit_of(self.field).show
        pct = f" ({100 * (self.ratio - 1):+.3g}%)" if self.ratio is not None else ""
        return (f"{self.field} {show(self.value)} over its budget {self.ceiling.text} "
                f"by {show(self.over)}{pct}")

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "ceiling": _plain(self.ceiling.limit),
                "ceiling_text": self.ceiling.text, "value": self.value, "over": self.over,
                "ratio": self.ratio, "where": self.ceiling.where}


def _plain(value: Decimal) -> int | float:
    """An exact Decimal as JSON writes it: an int when whole."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class Budgets:
    """The ceilings of one budgets.yaml, by model."""

    file: str
    ceilings: Mapping[str, tuple[Ceiling, ...]]

    def breaches(self, model: str, totals: Mapping[str, Any]) -> list[Breach]:
        """The ceilings of ``model`` its flattened ``totals`` are over."""
        return [Breach(c, totals[c.field]) for c in self.ceilings.get(model, ())
                if c.field in totals and Decimal(totals[c.field]) > c.limit]


def default_path(reports: Path) -> Path:
    """Where budgets for a folder of reports (or one report) are read: beside them."""
    return (reports.parent if reports.is_file() else reports) / FILE_NAME


def budgets_for(reports: Path, tables: Sequence[CostTable], path: Path | None = None
                ) -> Budgets | None:
    """The budgets of a folder of reports (or one report): ``path``, else ``budgets.yaml``
    beside them when there is one (None when not), checked against ``tables`` (every model
    of a folder must have a report; one report's file may name others)."""
    from cnncost.check import flat_totals

    if path is None:
        path = default_path(reports)
        if not path.exists():
            return None
    known: dict[str, list[dict[str, Any]]] = {}
    for t in tables:
        known.setdefault(t.model, []).append(flat_totals(t))
    return load_budgets(path, known, every_model=not reports.is_file())


def load_budgets(path: Path, known: Mapping[str, Sequence[Mapping[str, Any]]],
                 every_model: bool = True) -> Budgets:
    """Read ``path`` and check it against the reports: ``known`` maps each model name to its
    reports' flattened totals. A model with no report (when ``every_model``: ``check``
    was given the whole folder), a field none of its reports has, a ceiling that is not a
    number or size: UsageError ``FILE:LINE: model.field: what; expected``."""
    from cnncost.io import read_text
    from cnncost.spec.loader import YMap, load_yaml

    file = str(path)
    text = read_text(path, MAX_BUDGET_BYTES, "budgets file")
    try:
        doc = load_yaml(text, file)
    except SpecError as exc:
        raise UsageError(str(exc).replace("spec is larger", "budgets file is larger")
                         .replace("specs may only hold", "budgets may only hold")) from None
    if doc is None:
        return Budgets(file, {})
    if not isinstance(doc, YMap):
        raise UsageError(f"{file}:{getattr(doc, 'line', 1)}: expected a mapping of model "
                         "names to ceilings (resnet50: {macs: 4.2G})")
    ceilings: dict[str, tuple[Ceiling, ...]] = {}
    for model, fields in doc.items():
        line = doc.key_lines.get(model, doc.line)
        name = str(model)
        if name not in known:
            if not every_model:
                continue
            raise UsageError(f"{file}:{line}: {name}: no report of a model called {name!r}; "
                             f"known: {_listed(known)}")
        ceilings[name] = tuple(_ceilings(name, fields, line, file, known[name]))
    return Budgets(file, ceilings)


def _ceilings(model: str, fields: Any, line: int, file: str,
              totals: Sequence[Mapping[str, Any]]) -> Iterable[Ceiling]:
    from cnncost.spec.loader import YMap

    if not isinstance(fields, YMap) or not fields:
        raise UsageError(f"{file}:{line}: {model}: expected a mapping of totals fields to "
                         f"ceilings (macs: 4.2G), found {_shown(fields)}")
    names = {k for t in totals for k in t}
    for field, value in fields.items():
        where = f"{file}:{fields.key_lines.get(field, line)}: {model}.{field}"
        if field not in names:
            raise UsageError(f"{where}: unknown field; a budget caps one of the report's "
                             f"totals: {_listed(sorted(names, key=_order(totals)))}")
        try:
            limit = parse_quantity(value, unit_of(str(field)))
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        yield Ceiling(model, str(field), limit, str(value).strip(), file,
                      fields.key_lines.get(field, line))


def _order(totals: Sequence[Mapping[str, Any]]) -> Callable[[str], int]:
    first = list(dict.fromkeys(k for t in totals for k in t))
    return first.index


def _listed(names: Iterable[str], most: int = 12) -> str:
    names = list(names)
    more = f", ... ({len(names) - most} more)" if len(names) > most else ""
    return ", ".join(names[:most]) + more

"""Baseline cost table vs current cost table -> the list of what drifted (pure Python, no torch).

``cnncost check reports/`` loads every committed report, recomputes it from the recipe it
records (source, input, dtype, policy, vars; see cnncost.table) and diffs the two here.
Numbers may move by a relative ``tolerance``; names, kinds and shapes must match exactly.
The review of a change built on it (status, totals, layers, budgets) is ``cnncost.review``'s,
its rendering ``cnncost.render.review``'s.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncost.errors import UsageError
from cnncost.schema import SchemaError, drift_fields, shown, validate
from cnncost.table import SCHEMA, CostRow, CostTable, TrainCost, report_schema

MODEL = "(model)"
TOTALS = "(totals)"
# What is compared: the figures the dataclasses declare (cnncost.table; a field marked TEXT
# is words about them). Layers and totals are compared row by row and key by key.
MODEL_FIELDS = tuple(f for f in drift_fields(CostTable) if f not in ("layers", "totals"))
ROW_FIELDS = drift_fields(CostRow)
# A training step's rows also hold their backward.
TRAIN_ROW_FIELDS = drift_fields(TrainCost)
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
    """Equal, or both numbers with |new - old| <= tolerance * |old| (a zero moves by any
    tolerance, an infinite one included: inf * 0 is no room)."""
    if old == new:
        return True
    if is_number(old) and is_number(new) and old:
        return bool(abs(new - old) <= tolerance * abs(old))
    return bool(old == new)


def _plain(value: Any) -> Any:
    """Tuples -> lists and mappings -> sorted dicts, so a table and its JSON compare equal."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in sorted(value.items())}
    return value


def flat_totals(table: CostTable) -> dict[str, Any]:
    """A table's totals with mappings flattened: ``training_memory_bytes.adam``."""
    out: dict[str, Any] = {}
    for key, value in table.totals.to_dict().items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in sorted(value.items())})
        else:
            out[key] = value
    return out


def row_keys(rows: Sequence[CostRow]) -> list[str]:
    """The names rows are matched by: a name, and ``name (#k)`` for its k-th row (k >= 2),
    so a duplicated row is a layer of its own, never compared twice with one."""
    seen: dict[str, int] = {}
    keys = []
    for r in rows:
        seen[r.name] = seen.get(r.name, 0) + 1
        keys.append(r.name if seen[r.name] == 1 else f"{r.name} (#{seen[r.name]})")
    return keys


def _diff_rows(key: str, old: CostRow, new: CostRow,
               tolerance: float) -> Iterable[Regression]:
    for name in ROW_FIELDS:
        a, b = _plain(getattr(old, name)), _plain(getattr(new, name))
        if not within(a, b, tolerance):
            yield Regression(key, name, a, b)
    if old.train is None and new.train is None:
        return
    for name in TRAIN_ROW_FIELDS:
        a, b = (getattr(r.train, name) if r.train else None for r in (old, new))
        if not within(a, b, tolerance):
            yield Regression(key, name, a, b)


def diff_tables(baseline: CostTable, current: CostTable,
                tolerance: float = 0.0) -> list[Regression]:
    """Everything that moved from ``baseline`` to ``current``: model recipe, layers, totals.

    Layers are matched by name (the k-th of several rows of one name as ``name (#k)``,
    see row_keys); a layer only in one table is reported with field "layer" and old/new
    "present"/"missing". ``tolerance`` is relative (0.01 = 1%).
    """
    if not tolerance >= 0:  # NaN included
        raise UsageError(f"--tolerance {tolerance}: must be >= 0 (relative, 0.01 = 1%)")
    found: list[Regression] = []
    for name in MODEL_FIELDS:
        a, b = _plain(getattr(baseline, name)), _plain(getattr(current, name))
        if a != b:
            found.append(Regression(MODEL, name, a, b))
    now = dict(zip(row_keys(current.layers), current.layers, strict=True))
    before = row_keys(baseline.layers)
    for key, row in zip(before, baseline.layers, strict=True):
        if key not in now:
            found.append(Regression(key, "layer", PRESENT, MISSING))
        else:
            found.extend(_diff_rows(key, row, now[key], tolerance))
    known = set(before)
    found.extend(Regression(key, "layer", MISSING, PRESENT)
                 for key in now if key not in known)
    old_totals, new_totals = flat_totals(baseline), flat_totals(current)
    for key in [*old_totals, *(k for k in new_totals if k not in old_totals)]:
        a, b = old_totals.get(key), new_totals.get(key)
        if not within(a, b, tolerance):
            found.append(Regression(TOTALS, key, a, b))
    return found


# --------------------------------------------------------------------------- baselines on disk


def report_folder(path: Path) -> Path:
    """The folder of the reports ``check`` was given: ``path``, or a single report's folder."""
    return path.parent if path.is_file() else path


def report_files(directory: Path) -> list[Path]:
    """The JSON reports under ``directory`` (:func:`find_reports`), or ``directory`` itself
    when it is one report; UsageError if none."""
    if directory.is_file():
        if directory.suffix != ".json":
            raise UsageError(f"{directory}: not a report; expected a folder of reports or one "
                             "report (*.json) written by `cnncost report`")
        return [directory]
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory (make one with `cnncost report "
                         f"--all --out {directory}`)")
    files = find_reports(directory)
    if not files:
        raise UsageError(f"{directory}: no reports (*.json) here; make them with "
                         f"`cnncost report --all --out {directory}`")
    return files


# How deep report folders may nest under the folder given (reports/ nests 1; a project's
# own layout a few more): a bound on the walk, which a folder 1,500 deep would overflow.
MAX_FOLDER_DEPTH = 32


def find_reports(directory: Path) -> list[Path]:
    """cnncost's reports under the folder ``directory`` (sorted; none is no error): each
    ``*.json`` that :func:`is_report`, hidden names and symlinked folders left out, at most
    MAX_FOLDER_DEPTH folders deep (deeper is a UsageError)."""
    import os

    found: list[Path] = []
    folders = [(directory, 0)]
    while folders:
        folder, depth = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise UsageError(f"{folder}: cannot read the folder ({exc.strerror or exc})"
                             ) from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if depth >= MAX_FOLDER_DEPTH:
                    raise UsageError(f"{directory}: folders nest more than {MAX_FOLDER_DEPTH} "
                                     f"deep under it ({path}); expected a folder of reports")
                folders.append((path, depth + 1))
            elif entry.name.endswith(".json") and is_report(path):
                found.append(path)
    return sorted(found)


def is_report(path: Path) -> bool:
    """``path`` is to be read as one of cnncost's reports (and refused if broken): unless it
    is JSON that is something else (a package.json, a ``check --json`` document: valid JSON
    whose ``schema`` is not ``cnncost.report/N``), which a folder of reports may hold. A file
    that cannot be read or parsed counts as a report, so a broken one is shown, never hidden."""
    from cnncost.io import read_head, read_text

    try:
        if REPORT_SCHEMA_PREFIX.encode() in read_head(path, 4096):
            return True  # ``cnncost report`` writes the schema first
        doc = parse_json(read_text(path, MAX_REPORT_BYTES, "report", track=False), str(path))
    except UsageError:  # unreadable, or not JSON: load_report will say why
        return True
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith(
        REPORT_SCHEMA_PREFIX)


REPORT_SCHEMA_PREFIX = SCHEMA.partition("/")[0] + "/"  # cnncost.report/, any version


MAX_REPORT_BYTES = 32 << 20  # the largest bundled report is ~0.2 MiB
MAX_DEPTH = 16  # a report nests 4 deep (layers[i].input_shape[j][k])
MAX_DIGITS = 30  # beyond any count (MACs of a whole zoo at batch 1e6 has ~20 digits)


def load_report(path: Path) -> CostTable:
    """A committed report, checked field by field (types, sizes, nesting); unreadable or
    foreign JSON is a one-line UsageError naming the file and the field."""
    from cnncost.io import read_text

    text = read_text(path, MAX_REPORT_BYTES, "report")
    doc = parse_json(text, str(path))
    try:
        check_report(doc)
    except SchemaError as exc:
        raise UsageError(f"{path}: not a cnncost report: {exc}") from None
    return CostTable.from_dict(doc)


def read_reports(directory: Path) -> tuple[list[tuple[Path, CostTable]],
                                            list[tuple[Path, UsageError]]]:
    """Every report under ``directory`` (report_files), read: the good ones, and each one that
    cannot be read with its one-line error (a broken report hides no other's drift)."""
    good, broken = [], []
    for path in report_files(directory):
        try:
            good.append((path, load_report(path)))
        except UsageError as exc:
            broken.append((path, exc))
    return good, broken


def parse_json(text: str, where: str) -> Any:
    """JSON with Python's limits made errors: no NaN or Infinity, integers of at most
    MAX_DIGITS digits, floats that are finite, nesting at most MAX_DEPTH deep."""
    depth = deepest = 0
    # Brackets outside strings, counted before parsing: json's recursion is no limit to rely on.
    for m in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        depth += 1 if m[0] in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise UsageError(f"{where}: JSON nested {deepest} deep; a report nests at most "
                         f"{MAX_DEPTH}")
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (_Bad, RecursionError) as exc:
        raise UsageError(f"{where}: not a cnncost report: {exc or 'nested too deeply'}"
                         ) from None


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class _Bad(ValueError):
    """A report field of the wrong type or size (the message names the field)."""


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Bad(f"a {len(text)}-digit number; counts have at most {MAX_DIGITS} digits")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Bad(f"number {text[:20]} is out of range")
    return value


def _json_constant(text: str) -> Any:
    raise _Bad(f"{text} is not a number JSON allows")


def check_report(doc: Any) -> None:
    """Raise SchemaError naming the first field of a report document that its schema (the
    one ``cnncost.table`` writes it from) refuses."""
    validate(doc, _report_schema())


@functools.cache
def _report_schema() -> dict[str, Any]:
    return report_schema()


@dataclass(frozen=True)
class Recipe:
    """How to recompute a report: what ``cnncost analyze`` was given."""

    source: str
    input: tuple[int, ...] | None
    batch: int
    dtype: str
    policy: str
    vars: Mapping[str, Any]
    mode: str = "inference"


def recipe(table: CostTable) -> Recipe:
    """The recipe a report records (input only when --input was given)."""
    if not table.input:
        raise UsageError(f"{table.model}: report has no input shape")
    return Recipe(table.source, tuple(table.input[1:]) if table.input_given else None,
                  int(table.input[0]), table.dtype, table.policy, dict(table.vars), table.mode)


# --------------------------------------------------------------------------- what check may run

CONFIG_KEY = "check-factories"  # in the user's own config.toml: ["pkg.models:tiny", ...]


def _config_patterns(path: Path) -> list[str]:
    """The factory patterns of the user's own configuration file (none if it is absent)."""
    from cnncost.io import read_text

    if not path.exists():
        return []
    try:
        import tomllib
    except ImportError:  # Python 3.10: tomli if it is there, else no config
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return []
    try:
        doc = tomllib.loads(read_text(path, 1 << 20, "configuration file"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    value = doc.get(CONFIG_KEY, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{path}: {CONFIG_KEY}: expected a list of factory names such as "
                         f"[\"mypkg.models:build\"], found {shown(value)}")
    return value


def refuse_code(baselines: Sequence[tuple[Path, CostTable]],
                allowed: Sequence[str] = ()) -> None:
    """UsageError, before any work, when a report's source is Python code (a module factory)
    that neither ``allowed`` (``--allow-factory``) nor ``check-factories`` of the user's own
    configuration file (cnncost.io.config_file) allows (fnmatch patterns): a committed JSON
    file must not be able to run code on its own, and neither may any file committed beside
    it (a pyproject.toml next to the reports is the same change's, so it is not read)."""
    import fnmatch

    from cnncost.io import config_file
    from cnncost.sources import is_factory_ref

    code = [(path, b.source) for path, b in baselines if is_factory_ref(b.source)]
    if not code:
        return  # the config is only read when a report needs it
    config = config_file()
    patterns = [*allowed, *_config_patterns(config)]
    refused = [(path, source) for path, source in code
               if not any(fnmatch.fnmatchcase(source, p) for p in patterns)]
    if refused:
        path, source = refused[0]
        more = f"; {len(refused) - 1} more report(s) name code too" if len(refused) > 1 else ""
        raise UsageError(
            f"{path}: source {source!r} is Python code (a module factory), which check runs "
            f"only when allowed: --allow-factory {source!r}, or {CONFIG_KEY} = [{source!r}] "
            f"in your own {config}{more}")

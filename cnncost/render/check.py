"""Rendering of ``check``'s drift (cnncost.check.Regression): an aligned plain-text diff."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnncost.check import Regression, is_number
from cnncost.fmt import shape
from cnncost.table import CostTable


def _cell(value: Any) -> str:
    if is_number(value):
        return f"{value:,}"
    if isinstance(value, list) and all(is_number(v) for v in value):
        return shape(value) if value else "[]"
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def change_text(r: Regression) -> str:
    """Relative change of a number ('+100%', '-3.2%'), else ''."""
    if is_number(r.old) and is_number(r.new) and r.old:
        return f"{100 * (r.new - r.old) / abs(r.old):+.3g}%"
    return ""


def format_regressions(regressions: Sequence[Regression], limit: int | None = 40) -> str:
    """A readable aligned diff: layer, field, old, new, change (cut to ``limit`` lines)."""
    shown = list(regressions if limit is None else regressions[:limit])
    rows = [("layer", "field", "old", "new", "change")]
    rows += [(r.layer, r.field, _cell(r.old), _cell(r.new), change_text(r)) for r in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        lines.append("  " + "  ".join(cells).rstrip())
    if len(regressions) > len(shown):
        lines.append(f"  ... and {len(regressions) - len(shown)} more")
    return "\n".join(lines) + "\n"


def drift_header(path: Path, baseline: CostTable, count: int) -> str:
    """The line above a drifted report's diff."""
    return f"{path}: {baseline.model} ({baseline.source}) drifted, {count} difference(s):\n"


def drift_text(path: Path, baseline: CostTable, regressions: Sequence[Regression],
               limit: int | None = 40) -> str:
    """A drifted report: its header line, then the diff."""
    return drift_header(path, baseline, len(regressions)) + format_regressions(regressions, limit)


def check_summary(checked: int, drifted: int, updated: bool, directory: Path,
                  failed: int = 0) -> str:
    """The last line of ``check``: all match, how many were updated, or how to accept drift."""
    failures = f"; {failed} could not be recomputed (see above)" if failed else ""
    if drifted and not updated:
        return (f"drift in {drifted} of {checked} report(s){failures}; if the change is "
                f"intended: cnncost check {directory} --update\n")
    if failed:
        done = f", {drifted} updated" if drifted else ""
        return f"{failed} of {checked} report(s) could not be recomputed (see above){done}\n"
    verb = "updated" if drifted else "match"
    return f"ok: {checked} report(s) checked, {drifted if drifted else checked} {verb}\n"


def unreported_note(missing: Sequence[str], directory: Path) -> str:
    """Names the bundled specs a folder of bundled reports has no report for."""
    return (f"note: {len(missing)} bundled spec(s) have no report in {directory}: "
            f"{', '.join(missing)} (cnncost report NAME --out {directory})")

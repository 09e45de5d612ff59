"""Rendering of a cost review (cnncost.review.Review): ``check``/``diff`` as aligned text,
as a pull-request comment in Markdown, or as JSON.

Every drifted model shows its totals old -> new first (change, ratio), then its layers'
differences largest first, cut to ``limit`` lines with a count (never the totals), then the
budgets it breaks. The Markdown opens with a hidden marker (MARKER) a bot finds its comment
by, one summary table of every changed model, then a collapsible section per model; every
piece of user text in it (model, layer and file names, error messages) is escaped, so a
spec cannot inject HTML or Markdown, and a newline in a name cannot break a table.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from cnncost.check import is_number
from cnncost.fmt import human, human_bytes, shape
from cnncost.render.formats import md_text, one_line
from cnncost.review import FAILED, Change, LayerChange, ModelReview, Review
from cnncost.table import dumps


class ReviewFormat(str, Enum):
    """Output formats of check and diff."""

    TABLE = "table"
    MD = "md"
    JSON = "json"


MARKER = "<!-- cnncost-review -->"
# GitHub refuses a comment over 65,536 characters: the layer lists shrink to fit under this.
MAX_COMMENT = 60_000
LABELS = {"params": "params", "macs": "MACs", "flops": "FLOPs",
          "peak_memory_bytes": "peak memory", "receptive_field": "receptive field"}
STATUS_TEXT = {"ok": "ok", "drift": "drift", "over_budget": "over budget",
               "missing": "missing", "cannot_recompute": "cannot recompute", "added": "added"}


def review_json(review: Review) -> str:
    """The review's JSON document (cnncost.check/1 or cnncost.diff/1)."""
    return dumps(review.to_dict())


# --------------------------------------------------------------------------- values


def value_text(value: Any) -> str:
    """A figure as a cell: 1,234; a shape 1x3x8x8; a list of shapes; '-' for none."""
    if value is None:
        return "-"
    if is_number(value):
        return f"{value:,}"
    if isinstance(value, list) and all(is_number(v) for v in value):
        return shape(value) if value else "[]"
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, list | dict):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


def change_text(c: Change) -> str:
    """new - old with its sign: '+2,442,968'; '' for what is not a number."""
    d = c.change
    return "" if d is None else f"{d:+,}"


def percent_text(c: Change) -> str:
    """The relative change: '+9.56%'; 'added'/'removed' for a figure only on one side."""
    if c.old is None and c.new is not None:
        return "added"
    if c.new is None and c.old is not None:
        return "removed"
    r = c.ratio
    return "" if r is None else f"{100 * (r - 1):+.3g}%"


def ratio_text(c: Change) -> str:
    """new / old with four significant digits, or as many more as it takes not to read
    1: '1.096x', '1.00015x'; '' where old is 0 or no number."""
    r = c.ratio
    if r is None:
        return ""
    digits = 4
    while digits < 12 and r != 1 and float(f"{r:.{digits}g}") == 1:
        digits += 1
    return f"{r:.{digits}g}x"


def status_text(m: ModelReview) -> str:
    """'drift', 'over budget', or 'drift, over budget' for both; ', updated' after --update."""
    text = STATUS_TEXT[m.status]
    if m.status == "over_budget" and m.differences:
        text = "drift, over budget"
    return text + (", updated" if m.updated else "")


def short(field: str, value: Any) -> str:
    """A figure in the summary's short form: 25.6M, 97.9 MiB, 427."""
    if not is_number(value):
        return "-"
    if field.endswith("_bytes"):
        return human_bytes(value)
    return f"{value:,}" if field == "receptive_field" else human(value)


def figure_text(field: str, old: Any, new: Any) -> str:
    """'25.6M -> 28M (1.096x)' where the figure moved, else its one value."""
    if old == new:
        return short(field, new)
    ratio = ratio_text(Change(field, old, new))
    return f"{short(field, old)} → {short(field, new)}" + (f" ({ratio})" if ratio else "")


def headline(m: ModelReview) -> str:
    """What moved, in a few words: 'MACs +5.14%, params +9.56%, 53 layers changed'."""
    parts = []
    for f, (old, new) in m.figures.items():
        pct = percent_text(Change(f, old, new)) if old != new else ""
        if pct and pct not in ("added", "removed"):
            parts.append(f"{LABELS[f]} {pct}")
    if m.layers:
        parts.append(f"{len(m.layers)} layer(s) changed")
    if m.breaches:
        parts.append(f"{len(m.breaches)} budget(s) broken")
    return ", ".join(parts)


# --------------------------------------------------------------------------- text


def _aligned(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(w) if r else cell.ljust(w)
                             for cell, w, r in zip(row, widths, right, strict=True)).rstrip()
            for row in rows]


def totals_rows(m: ModelReview) -> list[tuple[str, str, str, str, str]]:
    """The model's recipe and totals: field, old, new, change, ratio."""
    return [(c.field, value_text(c.old), value_text(c.new), change_text(c), ratio_text(c))
            for c in (*m.recipe, *m.totals)]


def layer_rows(layers: Sequence[LayerChange]) -> list[tuple[str, str, str, str, str]]:
    """The layers' changes: layer, field, old, new, change (relative, or added/removed); a
    line break in a name shown as an escape (it cannot end a row)."""
    return [(one_line(layer.name), c.field, one_line(value_text(c.old)),
             one_line(value_text(c.new)), percent_text(c))
            for layer in layers for c in layer.changes]


def cut_note(layers: Sequence[LayerChange], shown: int) -> str:
    """'... and 531 more line(s) in 50 layer(s)' for what ``shown`` lines left out."""
    rows = [layer.name for layer in layers for _ in layer.changes]
    if shown >= len(rows):
        return ""
    return (f"... and {len(rows) - shown} more line(s) in {len(set(rows[shown:]))} "
            "layer(s)")


def model_header(m: ModelReview) -> str:
    """'reports/x.json: x (specs/x.yaml) drifted, 3 difference(s) in 2 layer(s)'."""
    what = {"drift": "drifted", "over_budget": "is over budget", "added": "is new",
            "missing": "is missing", "cannot_recompute": "cannot be recomputed"}[m.status]
    counted = (f", {m.differences} difference(s) in {len(m.layers)} layer(s)"
               if m.differences else "")
    if m.status == "over_budget" and m.differences:
        what = "drifted and is over budget"
    return one_line(f"{m.path}: {m.model} ({m.source}) {what}{counted}")


def model_text(m: ModelReview, limit: int | None = 40) -> str:
    """One model's block: header, totals first, budgets broken, then layers (cut to ``limit``
    lines)."""
    lines = [model_header(m) + ":"]
    totals = totals_rows(m)
    if totals:
        lines += _aligned([("total", "old", "new", "change", "ratio"), *totals],
                          (False, True, True, True, True))
    lines += [one_line(f"  over budget: {b.text()} ({b.ceiling.where})") for b in m.breaches]
    rows = layer_rows(m.layers)
    shown = rows if limit is None else rows[:limit]
    if shown:
        lines += _aligned([("layer", "field", "old", "new", "change"), *shown],
                          (False, False, True, True, True))
    note = cut_note(m.layers, len(shown))
    if note:
        lines.append("  " + note)
    return "\n".join(lines) + "\n"


def review_text(review: Review, limit: int | None = 40) -> Iterator[str]:
    """The text of every model that changed or breaks a budget, one block each."""
    for m in review.models:
        if m.differences or m.breaches or (m.status in ("added", "missing") and (
                review.command == "diff")):
            yield model_text(m, limit)


def summary_text(review: Review) -> str:
    """The last line: all match, how many drifted (and how to accept it), budgets broken."""
    n, drifted = len(review.models), review.drifted
    failed = sum(m.status in ("missing", "cannot_recompute") for m in review.models)
    over = review.count("over_budget")
    parts = []
    if review.command == "diff":
        parts.append(_diff_counts(review))
    elif drifted and review.updated:
        parts.append(f"{drifted} of {n} report(s) drifted and were updated")
    elif drifted:
        parts.append(f"drift in {drifted} of {n} report(s)")
    if failed and review.command == "check":
        parts.append(f"{failed} could not be recomputed (see above)")
    if over:
        parts.append(f"{over} over budget ({review.budgets})")
    if not parts:
        return f"ok: {n} report(s) checked, {n} match\n"
    fix = ""
    if review.command == "check" and drifted and not review.updated:
        fix = f"; if the change is intended: cnncost check {review.where['reports']} --update"
    return "; ".join(parts) + fix + "\n"


def unreported_note(missing: Sequence[str], directory: Path) -> str:
    """Names the bundled specs a folder of bundled reports has no report for."""
    return (f"note: {len(missing)} bundled spec(s) have no report in {directory}: "
            f"{', '.join(missing)} (cnncost report NAME --out {directory})")


def _diff_counts(review: Review) -> str:
    n = len(review.models)
    counts = [f"{review.drifted} of {n} report(s) changed"]
    counts += [f"{review.count(s)} {s}" for s in ("added", "missing") if review.count(s)]
    return ", ".join(counts)


# --------------------------------------------------------------------------- Markdown


def html_text(text: str) -> str:
    """User text inside an HTML element (a <summary>): escaped as HTML, line breaks shown."""
    return html.escape(one_line(text))


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_table(head: Sequence[str], align: str, rows: Sequence[Sequence[str]]) -> list[str]:
    return [_md_row(head), "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
            *(_md_row(r) for r in rows)]


def summary_table(review: Review) -> list[str]:
    """One row per model that changed, broke a budget or failed: status and figures."""
    rows = []
    for m in review.models:
        if not (m.changed or m.breaches or m.status != "ok"):
            continue
        figures = [figure_text(f, *m.figures.get(f, (None, None))) for f in LABELS]
        rows.append([f"**{md_text(m.model)}**", status_text(m), *figures])
    if not rows:
        return []
    return _md_table(["model", "status", *LABELS.values()], "llrrrrr", rows)


def model_md(m: ModelReview, limit: int | None) -> list[str]:
    """One model's collapsible section: where it is, totals, budgets broken, then one row per
    layer that changed (cut to ``limit`` rows)."""
    title = f"<b>{html_text(m.model)}</b>: {status_text(m)}"
    lines = ["<details>", f"<summary>{title}"
             + (f" ({html_text(headline(m))})" if headline(m) else "") + "</summary>", "",
             f"report {md_text(m.path)}, counted from {md_text(m.source or '?')}", ""]
    if m.error:
        lines += [f"> error: {md_text(m.error)}", ""]
    totals = [[md_text(c) for c in row] for row in totals_rows(m)]
    if totals:
        lines += [*_md_table(["total", "old", "new", "change", "ratio"], "lrrrr", totals), ""]
    lines += [f"- **over budget**: {md_text(b.text())} ({md_text(b.ceiling.where)})"
              for b in m.breaches]
    if m.breaches:
        lines.append("")
    shown = m.layers if limit is None else m.layers[:limit]
    if shown:
        lines += _md_table(["layer", "change", "MACs", "params", "output", "also changed"],
                           "llrrrl", [layer_md_row(layer) for layer in shown])
        lines.append("")
    if len(shown) < len(m.layers):
        lines += [f"_... and {len(m.layers) - len(shown)} more layer(s); the JSON (--format "
                  "json) has every one._", ""]
    return [*lines, "</details>", ""]


_LAYER_COLUMNS = ("macs", "params", "output_shape")


def layer_md_row(layer: LayerChange) -> list[str]:
    """A layer's row: name, changed/added/removed, MACs, params and output shape old -> new
    (empty where it did not move), the other fields that moved."""
    by = {c.field: c for c in layer.changes}
    cells = [md_text(one_line(layer.name)), layer.status]
    for f in _LAYER_COLUMNS:
        c = by.get(f)
        cells.append("" if c is None else f"{_short(f, c.old)} → {_short(f, c.new)}"
                     + (f" ({percent_text(c)})" if c.ratio is not None else ""))
    others = [f for f in by if f not in _LAYER_COLUMNS and layer.status == "changed"]
    return [*cells, ", ".join(md_text(f) for f in others)]


def _short(field: str, value: Any) -> str:
    if value is None:
        return "-"
    return md_text(one_line(value_text(value))) if not is_number(value) else short(field, value)


def review_markdown(review: Review, limit: int | None = 40) -> str:
    """The pull-request comment: marker, title, summary table, a section per changed model,
    the way to accept drift; layer lists shortened until it fits in one GitHub comment."""
    for cut in _limits(limit):
        text = _markdown(review, cut)
        if len(text) <= MAX_COMMENT or cut == 0:
            return text
    raise AssertionError("unreachable: the last limit is 0")


def _limits(limit: int | None) -> list[int | None]:
    steps = [limit] + [n for n in (20, 10, 5, 0) if limit is None or n < limit]
    return list(dict.fromkeys(steps))


def _markdown(review: Review, limit: int | None) -> str:
    lines = [MARKER, f"### {md_text(_title(review))}", ""]
    table = summary_table(review)
    lines += [*table, ""] if table else []
    for m in review.models:
        if m.changed or m.breaches or m.status != "ok":
            lines += model_md(m, limit)
    unchanged = sum(not (m.changed or m.breaches) and m.status == "ok" for m in review.models)
    if unchanged:
        lines.append(f"{unchanged} report(s) unchanged.")
    if review.unreported:
        lines.append(f"No report for: {md_text(', '.join(review.unreported))}.")
    if review.command == "check" and review.drifted and not review.updated:
        command = f"cnncost check {review.where['reports']} --update"
        lines.append(f"If the change is intended, update the reports: {md_text(command)}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _title(review: Review) -> str:
    """'cnncost check: drift in 1 of 23 report(s), 1 over budget'."""
    n, drifted, over = len(review.models), review.drifted, review.count("over_budget")
    failed = sum(m.status in FAILED for m in review.models)
    if review.command == "diff":
        parts = [_diff_counts(review)]
    else:
        parts = [f"drift in {drifted} of {n} report(s)" + (", updated" if review.updated
                                                            else "")] if drifted else []
        parts += [f"{failed} could not be recomputed"] if failed else []
    parts += [f"{over} over budget"] if over else []
    return f"cnncost {review.command}: " + (", ".join(parts) or f"all {n} report(s) match")

"""The HTML kit: what every self-contained page is made of (the page, its style and sorting
script, sortable tables and their cells, figure cards, chart boxes).

One file per page: inline CSS, inline SVG charts (svg.py), a few lines of inline JavaScript
that sort a table by the clicked column. No network request of any kind (no CDN, font,
image or link to a web address), so a page opens offline and can be mailed as is. Same
input, same bytes (no dates). What belongs here: pieces any result's page uses. A result's
own page is in its renderer (``cost.table_page``, ``compare.compare_page``,
``bench.bench_page``, ``sweep.sweep_page``), which imports this kit; the kit imports no
renderer back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

from cnncost.fmt import human_bytes
from cnncost.render import svg

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       margin: 0 auto; padding: 18px 28px 40px; max-width: 1500px; }
h1 { font-size: 24px; margin: 8px 0 2px; } h2 { font-size: 18px; margin: 28px 0 8px; }
p.lead { color: #555; margin: 2px 0 10px; } .recipe { color: #444; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 18px; } .card span { color: #666; font-size: 12px; }
.table-box { overflow-x: auto; max-width: 100%; }
td.desc { white-space: normal; min-width: 260px; max-width: 560px; color: #555;
          font-size: 12px; }
.chart-box { overflow-x: auto; border: 1px solid #eee; border-radius: 8px; padding: 10px;
             margin: 8px 0 16px; }
table.costs { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.costs th, table.costs td { padding: 3px 10px; border-bottom: 1px solid #eee;
                                 white-space: nowrap; text-align: left; }
table.costs td.n, table.costs th.n { text-align: right; }
table.costs thead th { position: sticky; top: 0; background: #f6f6f8; cursor: pointer;
                       user-select: none; border-bottom: 2px solid #ccc; }
table.costs thead th:hover { background: #ececf0; }
table.costs th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
table.costs th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
table.costs tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
table.costs tbody tr:hover { background: #f3f7ff; }
td.formula, td.src { color: #666; font-size: 12px; }
.note { color: #666; font-size: 13px; } .warn { color: #a15c00; }
ul.conventions { color: #444; font-size: 13px; }
"""

# Sort a table.sortable by the clicked (or Enter-ed) header: numbers by their exact value
# (data-v), largest first on the first click; text A to Z. The footer (totals) stays put.
JS = """
(function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (table.getAttribute("data-sort-ready")) { return; }  // (several results on one page)
    table.setAttribute("data-sort-ready", "1");
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent;
      function sort() {
        var numeric = th.classList.contains("n");
        var next = th.getAttribute("aria-sort") === (numeric ? "descending" : "ascending")
          ? (numeric ? "ascending" : "descending") : (numeric ? "descending" : "ascending");
        var sign = next === "ascending" ? 1 : -1;
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        function key(row) {
          var cell = row.cells[col];
          var v = cell.getAttribute("data-v");
          return numeric ? (v === null || v === "" ? -Infinity : Number(v)) : cell.textContent;
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (numeric) { return sign * (x - y) || a.rowIndex - b.rowIndex; }
          return sign * String(x).localeCompare(String(y));
        });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", next);
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  });
  document.documentElement.setAttribute("data-sortable", "ready");
})();
"""


def page(title: str, body: Iterable[str]) -> str:
    """A whole HTML document with the inline style and sorting script."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script>\n</body>\n</html>\n")


# How a page's parts are put together: a whole document (``page``), or a ``fragment``.
Wrap = Callable[[str, Iterable[str]], str]
SCOPE = "cnncost-result"


def fragment(title: str, body: Iterable[str]) -> str:
    """A page's parts as one ``<div>`` to put inside another page (a notebook's output): the
    style scoped to the div (nothing around it changes) and the sorting script, which sets
    up each table once however many results a page shows (where the host runs scripts:
    Jupyter's classic notebook and VS Code do; elsewhere the tables are static). ``title`` is
    the page's (a fragment has none of its own: its heading says it)."""
    return (f'<div class="{SCOPE}">\n<style>{scoped_css()}</style>\n' + "\n".join(body)
            + f"\n<script>{JS}</script>\n</div>\n")


@functools.cache
def scoped_css(scope: str = SCOPE) -> str:
    """CSS with every rule under ``.scope`` (the page's ``body`` and ``:root`` become the
    div itself, which keeps its host's margins)."""
    rules = []
    for rule in CSS.split("}"):
        if "{" not in rule:
            continue
        selectors, declarations = rule.split("{", 1)
        where = [f".{scope}" if s.strip() in (":root", "body") else f".{scope} {s.strip()}"
                 for s in selectors.split(",")]
        rules.append(f"{', '.join(where)} {{{declarations}}}")
    rules.append(f".{scope} {{ margin: 0; padding: 4px 0; max-width: none; }}")
    return "\n".join(rules) + "\n"


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Col:
    """A column of a sortable table: header, numeric (right-aligned, sorted by value)?"""

    label: str
    numeric: bool = False
    css: str = ""


def cell(text: str, value: float | int | None = None, css: str = "",
         tip: str = "") -> str:
    """A ``<td>``: the text, escaped; ``value`` is what the column sorts by, ``tip`` the
    exact figure shown on hover."""
    attrs = ""
    if value is not None:
        attrs += f' data-v="{value}"'
    if tip:
        attrs += f' title="{escape(tip)}"'
    if css:
        attrs += f' class="{css}"'
    return f"<td{attrs}>{escape(text)}</td>"


def sortable_table(cols: Sequence[Col], rows: Iterable[Sequence[str]],
                   footer: Sequence[str] | None = None, table_id: str = "") -> str:
    """A table.costs.sortable; each row is a list of ready ``<td>`` strings (see cell)."""
    head = "".join(f'<th class="{"n " if c.numeric else ""}{c.css}">{escape(c.label)}</th>'
                   for c in cols)
    ident = f' id="{table_id}"' if table_id else ""
    out = [f'<div class="table-box"><table class="costs sortable"{ident}>',
           f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    out += ["<tr>" + "".join(r) + "</tr>" for r in rows]
    out.append("</tbody>")
    if footer is not None:
        out.append("<tfoot><tr>" + "".join(footer) + "</tr></tfoot>")
    out.append("</table></div>")
    return "\n".join(out)


def num_cell(n: int | float, css: str = "n") -> str:
    """A number's cell: whole numbers with separators, others to four figures."""
    return cell(f"{n:,}" if isinstance(n, int) else f"{n:.4g}", n, css)


def bytes_cell(n: int) -> str:
    """A byte count's cell: binary units, the exact count on hover."""
    return cell(human_bytes(n), n, "n", f"{n:,} bytes")


def cards(items: Sequence[tuple[str, str, str]]) -> str:
    """(big figure, caption, exact value tooltip) boxes."""
    cards = "".join(f'<div class="card" title="{escape(tip)}"><b>{escape(big)}</b>'
                    f"<span>{escape(caption)}</span></div>" for big, caption, tip in items)
    return f'<div class="cards">{cards}</div>'


def conventions_list(conventions: Sequence[str]) -> str:
    """The counting conventions under their heading."""
    items = "".join(f"<li>{escape(c)}</li>" for c in conventions)
    return f'<h2>Counting conventions</h2>\n<ul class="conventions">{items}</ul>'


def chart_box(svg_text: str, caption: str = "") -> str:
    """An inline chart in its box, with a caption under it."""
    cap = f'<p class="note">{escape(caption)}</p>' if caption else ""
    return f'<div class="chart-box">{svg_text}{cap}</div>'


def scatter_points(labels: Sequence[str], macs: Sequence[float | None],
                   ys: Sequence[float | None], acts: Sequence[float | None],
                   tips: Sequence[str]) -> list[svg.Point]:
    """Points sized by activation memory (area proportional, 3 to 16 px radius)."""
    top = max((a or 0 for a in acts), default=0) or 1
    out = []
    for i, (label, x, y, a) in enumerate(zip(labels, macs, ys, acts, strict=True)):
        if x and y:
            radius = max(3.0, 16 * ((a or 0) / top) ** 0.5)
            out.append(svg.Point(float(x), float(y), label,
                                 f"hsl({(i * 137) % 360}, 45%, 52%)", radius, tips[i]))
    return out

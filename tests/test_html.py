"""HTML pages: parsed back, every layer present, sortable, self-contained, small enough.

The browser itself opens them in test_browser.py; here the pages are read with the
standard library's HTML parser.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from small_spec import small as small_text
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.compare import compare_tables
from cnncost.render import compare, cost, html, sweep
from cnncost.table import CostTable

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"

# conv 3 -> 4, 3x3, pad 1, no bias, on 3x8x8: params 3*3*3*4 = 108, MACs 8*8*4*27 = 6,912;
# linear 4 -> 10: params 50, MACs 40. The description holds markup that must stay text.
SMALL = small_text("name: small", 'description: "a <b>tiny</b> net & friends"')


@dataclass
class Table:
    """One parsed <table>: its id and classes, header texts and, per body row, the cells
    as (text, data-v)."""

    ident: str
    classes: list[str]
    head: list[str] = field(default_factory=list)
    rows: list[list[tuple[str, str | None]]] = field(default_factory=list)
    foot: list[str] = field(default_factory=list)


class Page(HTMLParser):
    """Tables, tags, attribute values and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._part = ""
        self._cell: list[str] | None = None
        self._v: str | None = None
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = {k: v or "" for k, v in attrs}
        self.attrs += [(tag, k, v) for k, v in a.items()]
        if tag == "table":
            self.tables.append(Table(a.get("id", ""), a.get("class", "").split()))
        elif tag in ("thead", "tbody", "tfoot"):
            self._part = tag
        elif tag == "tr" and self._part == "tbody":
            self.tables[-1].rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._v = [], a.get("data-v")
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            if self._part == "thead":
                table.head.append(text)
            elif self._part == "tbody":
                table.rows[-1].append((text, self._v))
            else:
                table.foot.append(text)
            self._cell = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, ident: str) -> Table:
        return next(t for t in self.tables if t.ident == ident)


def assert_self_contained(text: str) -> None:
    """No web address, no external resource of any kind, inline style and script only."""
    assert not re.search(r"https?://", text), re.search(r".{40}https?://.{40}", text)
    page = Page(text)
    for tag, name, value in page.attrs:
        assert name != "src", f"<{tag} src={value}>"
        if name == "href":
            assert not re.match(r"[a-z]+:", value), f"<{tag} href={value}>"
    assert "link" not in page.tags and "img" not in page.tags and "iframe" not in page.tags
    assert "@import" not in text and "url(" not in text
    assert page.tags.count("style") == 1 and page.tags.count("script") == 1


@pytest.fixture
def small(write_spec: Callable[..., Path]) -> Path:
    return write_spec(SMALL, "small.yaml")


def test_table_page_has_every_layer_sortable(small: Path) -> None:
    table = cnncost.analyze(small)
    text = cost.table_page(table)
    assert_self_contained(text)
    page = Page(text)
    costs = page.table("cost-table")
    assert "sortable" in costs.classes
    assert costs.head[:6] == ["#", "layer", "kind", "output", "params", "MACs"]
    assert [r[1][0] for r in costs.rows] == ["conv1", "global_avg_pool1", "flatten1",
                                             "linear1"]
    # exact integers to sort by, from the hand-worked figures above
    assert [r[4][1] for r in costs.rows] == ["108", "0", "0", "50"]
    assert [r[5][1] for r in costs.rows] == ["6912", "0", "0", "40"]
    assert costs.foot[4:6] == ["158", "6,952"]
    assert "a <b>tiny</b> net & friends" in "".join(page.text)  # escaped, shown as text
    assert "<b>tiny" not in text
    assert page.tags.count("svg") == 1 and page.tags.count("rect") >= 4
    assert "1 MAC = 1 multiply + 1 add" in "".join(page.text)


def test_depth_sort_and_top_shape_the_table_like_the_text_table(small: Path) -> None:
    table = cnncost.analyze(small)
    page = Page(cost.table_page(table, sort="params", top=2))
    rows = page.table("cost-table").rows
    assert [r[1][0] for r in rows] == ["conv1", "linear1"]
    assert [r[0][0] for r in rows] == ["1", "4"]  # the # column keeps execution order
    blocks = Page(cost.table_page(table, depth=1)).table("cost-table")
    assert blocks.head[1:3] == ["block", "layers"]


def test_sorting_script_sorts_numbers_by_their_exact_value() -> None:
    # The script reads data-v (exact numbers), never the shown text ("1.2M" < "950K").
    assert 'getAttribute("data-v")' in html.JS and "Number(v)" in html.JS
    assert "tBodies[0]" in html.JS  # the footer (totals) is not sorted with the rows


def test_cli_analyze_compare_format_html(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["analyze", str(small), "--format", "html", "--output",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert_self_contained(out.read_text())
    wide = tmp_path / "wide.yaml"
    wide.write_text(SMALL.replace("name: small", "name: wide").replace("width: 4", "width: 8"))
    result = runner.invoke(app, ["compare", str(small), str(wide), "-f", "html"])
    assert result.exit_code == 0, result.output
    assert_self_contained(result.stdout)
    cmp = Page(result.stdout).table("compare-table")
    assert [r[0][0] for r in cmp.rows] == ["small", "wide"]
    # wide / small MACs: (13,824 + 80) / (6,912 + 40) = 2
    macs = cmp.head.index("MACs")
    assert cmp.rows[1][macs + 1] == ("2.00x", "2.0")


def test_compare_page_has_charts() -> None:
    tables = [CostTable.from_json((REPORTS / f"{n}.json").read_text())
              for n in ("alexnet", "vgg16")]
    page = Page(compare.compare_page(compare_tables(tables)))
    assert page.tags.count("svg") == 2
    assert page.tags.count("circle") == 2  # one bubble per model


@pytest.mark.parametrize("report", sorted(REPORTS.rglob("*.json")),
                         ids=lambda p: p.relative_to(REPORTS).with_suffix("").as_posix())
def test_every_committed_report_makes_a_small_complete_page(report: Path) -> None:
    """From the committed JSON (no counting): every layer's row is on the page, and the
    page stays under 2 MB however many layers the model has."""
    table = CostTable.from_json(report.read_text())
    text = cost.table_page(table)
    assert len(text.encode()) < 2_000_000
    rows = Page(text).table("cost-table").rows
    assert [r[1][0] for r in rows] == [layer.name for layer in table.layers]


def test_report_writes_pages_and_index_and_check_ignores_them(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = runner.invoke(app, ["report", "alexnet", "textbook/conv5x5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text()
    assert_self_contained(index)
    entries = Page(index).table("index-table")
    assert [r[0][0] for r in entries.rows] == ["alexnet", "textbook/conv5x5"]
    links = [v for tag, k, v in Page(index).attrs if tag == "a" and k == "href"]
    assert links == ["alexnet.html", "textbook/conv5x5.html"]
    for link in links:
        page = (out / link).read_text()
        assert_self_contained(page)
        back = [v for tag, k, v in Page(page).attrs if tag == "a" and k == "href"]
        assert (out / link).parent.joinpath(back[0]).resolve() == (out / "index.html").resolve()
    check = runner.invoke(app, ["check", str(out)])
    assert check.exit_code == 0, check.output
    assert "ok: 2 report(s) checked" in check.stdout  # the .html files are not reports


def test_index_gives_an_older_report_its_page(tmp_path: Path) -> None:
    """A folder with a report from before pages existed: the next `report` makes its page."""
    out = tmp_path / "r"
    out.mkdir()
    shutil.copy(REPORTS / "lenet5.json", out / "lenet5.json")
    result = runner.invoke(app, ["report", "textbook/conv5x5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "lenet5.html").is_file()
    assert len(Page((out / "index.html").read_text()).table("index-table").rows) == 2


def test_check_update_refreshes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert runner.invoke(app, ["report", "textbook/conv5x5", "--out", str(out)]).exit_code == 0
    report = out / "textbook" / "conv5x5.json"
    doc = json.loads(report.read_text())
    doc["layers"][0]["params"] += 1  # a baseline that drifted
    doc["totals"]["params"] += 1
    report.write_text(json.dumps(doc))
    page = out / "textbook" / "conv5x5.html"
    page.write_text("stale")
    result = runner.invoke(app, ["check", str(out), "--update"])
    assert result.exit_code == 0, result.output
    assert Page(page.read_text()).table("cost-table").rows  # rewritten from the new figures


def test_sweep_page(small: Path) -> None:
    from cnncost.sweep import run_sweep

    text = sweep.sweep_page(run_sweep(str(small), ["width=2,4,8"], batch="1,2"))
    assert_self_contained(text)
    page = Page(text)
    points = page.table("sweep-table")
    assert len(points.rows) == 6
    assert points.head[:3] == ["#", "width", "batch"]
    # point 5 = width 8, batch 2: MACs 2 x (8*8*8*27 + 8*10) = 27,808
    assert points.rows[5][points.head.index("MACs")] == ("27.8K", "27808")
    assert page.tags.count("svg") == 5  # one log-log panel per metric
    assert page.tags.count("polyline") == 10  # a line per batch size in each
    result = runner.invoke(app, ["sweep", str(small), "--set", "width=2,4", "-f", "html"])
    assert result.exit_code == 0, result.output
    assert len(Page(result.stdout).table("sweep-table").rows) == 2

"""Results in a notebook: each shows itself (``_repr_html_``) as the page its command writes
with ``--format html``, as a fragment whose style touches nothing around it; a bad input or
a result that cannot be drawn is one line, never a traceback.

Parametrized over cnncost.display.HTML, the registry render/notebook.py fills: a result
type registered there without an example below fails ``test_every_registered_result_has_an
example``.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cnncost
from cnncost import display
from cnncost.errors import UsageError
from cnncost.render.html import SCOPE, scoped_css

ROOT = Path(__file__).resolve().parents[1]


def _prediction() -> Any:
    from calibrations import hand_calibration

    from cnncost.predict.model import predict_table

    cal = hand_calibration("cpu:test CPU|float32|threads=1|torch=2.0")
    return predict_table(cnncost.analyze("lenet5"), cal)


def _bench(train: bool = False) -> Any:
    return cnncost.bench("lenet5", device="cpu", train=train, max_time=0.05, min_samples=2)


def _versus() -> Any:
    from cnncost.predict.versus import Versus

    return Versus(_bench(), (_prediction(),))


# Each registered result: how to make one, and a text its page must show. LeNet-5's
# parameters by hand: C1 6x(5x5x1+1) = 156, C3 16x(5x5x6+1) = 2,416, C5 120x(5x5x16+1) =
# 48,120, F6 84x(120+1) = 10,164, output 10x(84+1) = 850; 61,706 in all.
EXAMPLES: dict[str, tuple[Callable[[], Any], str, bool]] = {
    "cnncost.table.CostTable": (lambda: cnncost.analyze("lenet5"), "61,706", False),
    "cnncost.compare.Comparison": (lambda: cnncost.compare(["lenet5", "alexnet"]), "alexnet",
                                   False),
    "cnncost.sweep.Sweep": (lambda: cnncost.sweep("lenet5", {"res": [8, 32]}), "res", False),
    "cnncost.advise.engine.Advice": (lambda: cnncost.advise("lenet5"), "depthwise-separable",
                                     False),
    "cnncost.predict.model.Prediction": (_prediction, "predict: lenet5", False),
    "cnncost.measure.bench.BenchReport": (_bench, "bench: lenet5", True),
    "cnncost.measure.bench_train.TrainBenchReport": (lambda: _bench(train=True),
                                                     "bench --train: lenet5", True),
    "cnncost.predict.versus.Versus": (_versus, "bench --predict: lenet5", True),
}


def _registered() -> list[str]:
    display.renderer(object())  # loads the registry (the package's loader)
    return sorted(display.HTML)


def test_every_registered_result_has_an_example() -> None:
    assert _registered() == sorted(EXAMPLES)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.slow] if EXAMPLES[n][2] else [])
    for n in sorted(EXAMPLES)])
def test_a_result_shows_its_page_as_a_fragment(name: str) -> None:
    module, _, cls = name.rpartition(".")
    assert getattr(importlib.import_module(module), cls)._repr_html_ is display.repr_html
    make, shown, _ = EXAMPLES[name]
    html = make()._repr_html_()
    assert html.startswith(f'<div class="{SCOPE}">\n<style>') and html.endswith("</div>\n")
    assert not re.search(r"<(html|head|body)\b|<!DOCTYPE", html)  # no document of its own
    assert shown in html


def test_the_fragments_style_is_scoped() -> None:
    css = scoped_css()
    rules = [r.split("{")[0].strip() for r in css.split("}") if "{" in r]
    selectors = [s.strip() for r in rules for s in r.split(",")]
    assert len(selectors) > 20
    assert all(s == f".{SCOPE}" or s.startswith(f".{SCOPE} ") for s in selectors), selectors
    assert not any(re.search(r"(^|\s)(body|:root)\b", s) for s in selectors)


def test_a_result_that_cannot_be_drawn_shows_its_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(table: Any) -> str:
        raise UsageError("spec.yaml:3: layers[0]: cannot be drawn")

    display.renderer(object())
    monkeypatch.setitem(display.HTML, "cnncost.table.CostTable", broken)
    html = cnncost.analyze("lenet5")._repr_html_()
    assert "error: spec.yaml:3: layers[0]: cannot be drawn" in html
    assert "Traceback" not in html and html.count("\n") == 0


def test_a_sweep_with_every_point_failed_still_shows() -> None:
    sweep = cnncost.sweep("lenet5", {"res": [4, 8]})  # LeNet-5's 5x5 convs need 32
    assert len(sweep.failed) == 2
    html = sweep._repr_html_()
    assert "failed" in html and "layers[" in html  # each point's one-line error


def test_ipython_shows_the_fragment_and_keeps_the_text(ipython: Any) -> None:
    html = ipython.display_formatter.formatters["text/html"]
    was, html.enabled = html.enabled, True  # (a terminal shell shows text only)
    try:
        table = cnncost.analyze("lenet5")
        assert html(table) == table._repr_html_()
        assert ipython.display_formatter.formatters["text/plain"](table).startswith(
            "CostTable(")
    finally:
        html.enabled = was


def test_showing_a_spec_table_imports_no_torch(tmp_path: Path) -> None:
    code = ("import sys, cnncost\n"
            "html = cnncost.analyze('lenet5')._repr_html_()\n"
            "print('torch' in sys.modules, len(html) > 1000)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                             "HOME": str(tmp_path),
                                             "XDG_CACHE_HOME": str(tmp_path)}, check=True)
    assert done.stdout.split() == ["False", "True"], done.stderr


@pytest.mark.slow  # a browser (the fragment's HTML is held in the fast tier above)
def test_two_results_on_one_page_sort_once_and_leave_the_page_alone(tmp_path: Path) -> None:
    """In a browser: the host's own text keeps its style, and a click sorts a table once
    (each fragment carries the script; each table is set up once)."""
    browser = pytest.importorskip("test_browser").find_browser()
    if browser is None:
        pytest.skip("no headless Chromium here (apt-get install chromium)")
    table = cnncost.analyze("lenet5")._repr_html_()
    probe = ("<script>document.querySelectorAll('table.sortable')[0].tHead.rows[0]"
             ".cells[5].click(); var p = document.getElementById('host');"
             "p.setAttribute('data-font', getComputedStyle(p).fontFamily);</script>")
    page = tmp_path / "notebook.html"
    page.write_text("<!DOCTYPE html><html><body style=\"font-family: serif\">"
                    f'<p id="host">the notebook</p>{table}{table}{probe}</body></html>')
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    dom = done.stdout
    assert 'data-font="serif"' in dom, dom[:500]
    first = dom.split("<tbody>")[0]
    assert re.search(r'aria-sort="descending"[^>]*>MACs</th>', first), first[-3000:]
    assert dom.count('data-sort-ready="1"') == 2

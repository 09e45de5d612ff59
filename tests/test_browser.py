"""The pages in a real browser: headless Chromium (Debian's `chromium`; .ci/run installs it).

Each page is opened with every network request made to fail (a dead proxy, no name
resolution): a page that asked for anything would log a console error. The test then
checks that nothing was logged to the console, that the sorting script ran and sorts, that
a screenshot of the page is not blank and that its charts, shown alone, are drawn. Without
Chromium the tests skip and say why; they never pass silently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.render import charts
from cnncost.reports import save_index

# A browser: the slow tier (issue 22); the pages' HTML is held by tests/test_html.py in the fast.
pytestmark = pytest.mark.slow

matplotlib = pytest.importorskip("matplotlib", reason="reads the screenshots (cnncost[plot])")

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip("no headless Chromium here (apt-get install chromium; .ci/run does): the "
                    "pages were not opened in a browser")
    return path


@dataclass(frozen=True)
class Run:
    """What Chromium did with a page."""

    stdout: str  # the DOM, with --dump-dom
    console: str  # console messages the page logged (errors included), one per line
    requests: tuple[str, ...]  # URLs the page itself asked the network for


def chromium(browser: str, page: Path, tmp_path: Path, *mode: str) -> Run:
    """Run headless Chromium on a file, with its network log on."""
    runs = len(list(tmp_path.glob("net-*.json")))
    net = tmp_path / f"net-{runs}.json"
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", f"--user-data-dir={tmp_path / f'profile-{runs}'}",
            # Whatever the page asks for fails (no proxy there, no names resolve) and is
            # in the network log.
            "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--log-net-log={net}", "--enable-logging=stderr", "--v=0", *mode,
            page.resolve().as_uri()]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish on {page.name} in 120 s")
    if done.returncode != 0 and not done.stdout:
        pytest.skip(f"chromium did not start here (exit {done.returncode}): "
                    f"{done.stderr.strip().splitlines()[-1:]}")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Run(done.stdout, "\n".join(console), page_requests(net))


def page_requests(net: Path) -> tuple[str, ...]:
    """URLs requested on behalf of a page in a Chromium network log. Chromium's own
    background requests (updates, accounts) have no origin and are left out."""
    try:
        log = json.loads(net.read_text())
    except (OSError, ValueError):
        pytest.fail(f"chromium wrote no readable network log ({net})")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return tuple(sorted({e["params"]["url"] for e in log["events"]
                         if e["type"] == start and e.get("params", {}).get("initiator")
                         not in (None, "not an origin")}))


def screenshot(browser: str, page: Path, tmp_path: Path, size: str = "1400,1800") -> object:
    """A screenshot of the page as an (H, W, channels) array; asserts that the page logged
    nothing to the console and asked the network for nothing."""
    import matplotlib.image

    shot = tmp_path / f"{page.stem}-{len(list(tmp_path.glob('*.png')))}.png"
    run = chromium(browser, page, tmp_path, f"--screenshot={shot}", f"--window-size={size}")
    assert run.console == "", f"console messages on {page.name}:\n{run.console}"
    assert run.requests == (), f"{page.name} asked the network for {run.requests}"
    assert shot.is_file(), f"no screenshot of {page.name}"
    return matplotlib.image.imread(shot)


def charts_only(page: Path) -> Path:
    """A copy of the page showing its charts and nothing else."""
    text = page.read_text()
    hide = ("<style>body > *:not(.chart-box) { display: none !important; } "
            ".chart-box p { display: none; }</style></head>")
    copy = page.with_name(page.stem + "-charts.html")
    copy.write_text(text.replace("</head>", hide, 1))
    return copy


def inked(img: object) -> float:
    import numpy as np

    rgb = np.asarray(img)[..., :3]
    return float((rgb < 0.85).any(axis=-1).mean())


def colored(img: object) -> int:
    """Pixels of a clear hue (not white, grey or black): chart marks, not text or grid."""
    import numpy as np

    rgb = np.asarray(img)[..., :3]
    return int((rgb.max(axis=-1) - rgb.min(axis=-1) > 0.15).sum())


def color_pixels(img: object, color: str) -> int:
    import numpy as np
    from matplotlib.colors import to_rgb

    rgb = np.asarray(img)[..., :3]
    return int((np.abs(rgb - np.array(to_rgb(color))) < 0.03).all(axis=-1).sum())


@pytest.fixture(scope="module")
def resnet50_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pages") / "r.html"
    result = CliRunner().invoke(app, ["analyze", "resnet50", "--format", "html", "--output",
                                      str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reports_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reports/index.html as `cnncost report --all` makes it, from the committed JSON."""
    folder = tmp_path_factory.mktemp("reports")
    for report in (ROOT / "reports").rglob("*.json"):
        target = folder / report.relative_to(ROOT / "reports")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(report, target)
    save_index(folder)
    return folder / "index.html"


def test_analyze_page_renders_with_charts(browser: str, resnet50_page: Path,
                                          tmp_path: Path) -> None:
    img = screenshot(browser, resnet50_page, tmp_path)
    assert inked(img) > 0.05
    bars = screenshot(browser, charts_only(resnet50_page), tmp_path)
    # the per-block bars: the convolution colour and the fully connected layer's colour
    assert color_pixels(bars, charts.COLORS[charts.CONV]) > 5000
    assert color_pixels(bars, charts.COLORS[charts.FC]) > 50


def test_analyze_page_table_has_every_layer_and_sorts(browser: str, resnet50_page: Path,
                                                      tmp_path: Path) -> None:
    # Click the MACs header, as a reader would, and dump the DOM the browser then holds.
    text = resnet50_page.read_text()
    click = ("<script>document.querySelectorAll('#cost-table th')[5].click();</script>"
             "</body>")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(text.replace("</body>", click, 1))
    run = chromium(browser, clicked, tmp_path, "--dump-dom")
    assert run.console == "" and run.requests == (), run
    dom = run.stdout
    assert 'data-sortable="ready"' in dom  # the page's own script ran to its end
    assert re.search(r'<th class="n ?"[^>]*aria-sort="descending"[^>]*>MACs</th>', dom)
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    rows = body.split("</tr>")[:-1]
    assert len(rows) == 175  # every layer of ResNet-50 in this layout (see reports/)
    macs = [int(re.findall(r'data-v="([^"]+)"', r)[2]) for r in rows]  # #, params, MACs
    assert macs == sorted(macs, reverse=True) and macs[0] > macs[-1]


def test_reports_index_renders(browser: str, reports_index: Path, tmp_path: Path) -> None:
    img = screenshot(browser, reports_index, tmp_path)
    assert inked(img) > 0.05
    chart = screenshot(browser, charts_only(reports_index), tmp_path)
    assert colored(chart) > 2000  # a bubble per model
    run = chromium(browser, reports_index, tmp_path, "--dump-dom")
    assert run.console == "" and run.requests == ()
    dom = run.stdout
    models = len(list((ROOT / "reports").rglob("*.json")))
    assert dom.count("<circle") == models
    links = re.findall(r'<a href="([^"]+)">', dom)
    assert len(links) == models and all((reports_index.parent / h).is_file() for h in links)


def test_the_checks_can_fail(browser: str, tmp_path: Path) -> None:
    """A page that fetches from a CDN, and one whose script throws, are both caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><script src="http://cdn.invalid/x.js">'
                   '</script></head><body><img src="https://example.invalid/a.png">'
                   "<script>undefinedFunction();</script></body></html>")
    run = chromium(browser, bad, tmp_path, "--dump-dom")
    assert run.requests == ("http://cdn.invalid/x.js", "https://example.invalid/a.png")
    assert "undefinedFunction is not defined" in run.console

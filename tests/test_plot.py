"""`cnncost plot`: what the charts show (charts.py) and the images themselves (plot.py).

Every kind is drawn to a PNG and the PNG is read back: its size, its pixel dimensions
(figure inches x dpi) and that it is not blank (many distinct colours, the bar colours
present). The chart data are checked against figures worked out by hand.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from clirun import one_line_error as assert_one_line_error
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.plotting import MODELS, PlotKind, default_kind
from cnncost.render import charts

matplotlib = pytest.importorskip("matplotlib", reason="plots need matplotlib (cnncost[plot])")

from small_spec import small  # noqa: E402  (after the importorskip)

from cnncost.render import plot  # noqa: E402  (after the importorskip)

runner = CliRunner()

# conv 3 -> 4, 3x3, pad 1, no bias, on 3x8x8: params 3*3*3*4 = 108, MACs 8*8*4*27 = 6,912,
# output 4x8x8 floats = 1,024 B; global_avg_pool 16 B; flatten 16 B; linear 4 -> 10:
# params 4*10 + 10 = 50, MACs 40, output 40 B.
SMALL = small("name: small", "reference: {top1: 61.5}")
# The same, 8 wide: conv params 216, MACs 13,824, output 2,048 B; linear 8 -> 10: 90, 80.
WIDE = SMALL.replace("name: small", "name: wide").replace("width: 4", "width: 8").replace(
    "61.5", "70.25")

# AlexNet (torchvision layout) by hand, MACs = C_out x H_out x W_out x C_in x K x K:
ALEXNET_CONV_MACS = (64 * 55 * 55 * 3 * 11 * 11 + 192 * 27 * 27 * 64 * 5 * 5
                     + 384 * 13 * 13 * 192 * 3 * 3 + 256 * 13 * 13 * 384 * 3 * 3
                     + 256 * 13 * 13 * 256 * 3 * 3)
ALEXNET_FC_MACS = 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 1000
ALEXNET_FC_PARAMS = (9216 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
ALEXNET_PARAMS = 61_100_840  # torchvision.models.alexnet docs, num_params


@pytest.fixture
def specs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "small.yaml", tmp_path / "wide.yaml"
    a.write_text(SMALL)
    b.write_text(WIDE)
    return a, b


@pytest.fixture(scope="module")
def alexnet() -> cnncost.CostTable:
    return cnncost.analyze("alexnet")


# --------------------------------------------------------------------------- the data


def test_alexnet_bars_show_the_lectures_three_findings(alexnet: cnncost.CostTable) -> None:
    bars = charts.layer_bars(alexnet)
    assert bars.depth is None and len(bars.labels) == len(alexnet.layers)
    params = bars.category_shares("params")
    macs = bars.category_shares("macs")
    # Nearly all parameters in the fully connected layers ...
    assert params[charts.FC] == pytest.approx(ALEXNET_FC_PARAMS / ALEXNET_PARAMS)
    assert params[charts.FC] > 0.95
    assert bars.breakdown("params").startswith("fully connected 96%")
    # ... most MACs in the convolutions ...
    assert macs[charts.CONV] == pytest.approx(
        ALEXNET_CONV_MACS / (ALEXNET_CONV_MACS + ALEXNET_FC_MACS))
    assert next(iter(macs)) == charts.CONV  # the largest share first
    # ... and the most activation memory in the early convs: conv1's 64x55x55 floats.
    memory = bars.values["output_bytes"]
    assert max(memory) == 64 * 55 * 55 * 4
    assert bars.labels[memory.index(max(memory))] == "features.conv1"
    assert sum(memory) == alexnet.totals.activation_bytes


def test_categories_come_from_counts_and_shapes(specs: tuple[Path, Path]) -> None:
    table = cnncost.analyze(specs[0])
    cats = [charts.category(r) for r in table.layers]
    assert cats == [charts.CONV, charts.OTHER, charts.OTHER, charts.FC]


def test_many_layers_are_grouped_to_the_deepest_readable_depth() -> None:
    table = cnncost.analyze("resnet50")
    assert len(table.layers) > charts.MAX_BARS
    bars = charts.layer_bars(table)
    # resnet50's names: layer1.0.conv1 ... depth 2 = stem layers, 16 bottlenecks, pool, fc.
    assert bars.auto_depth and bars.depth == 2
    assert len(bars.labels) <= charts.MAX_BARS
    assert "layer3.5" in bars.labels and "layer3.5.conv1" not in bars.labels
    assert sum(bars.values["macs"]) == table.totals.macs  # grouping loses nothing
    assert charts.layer_bars(table, depth=1).labels[:4] == ("conv1", "bn1", "relu", "maxpool")


@pytest.mark.parametrize(("values", "log"), [
    ([100, 50, 2, 1], False),                  # 2 of 4 under 1% of the top: not "most"
    ([10_000, 5, 3, 1], True),                 # 3 of 4 under 1%
    ([0, 0, 10, 0.05], False),                 # zeros do not count; one of two
    ([5], False), ([], False),
], ids=["half", "most", "zeros", "one", "none"])
def test_log_scale_only_when_most_bars_would_vanish(values: list[float], log: bool) -> None:
    assert charts.log_scale(values) is log


@pytest.mark.parametrize(("x", "step"), [(0.8, 1), (1.3, 2), (2.2, 2.5), (3, 5), (7, 10),
                                         (190, 200)])
def test_nice_step(x: float, step: float) -> None:
    assert charts.nice_step(x) == pytest.approx(step)


def test_scatter_panels_add_latency_and_declared_top1(specs: tuple[Path, Path]) -> None:
    from cnncost.compare import Column, compare_tables

    cmp = compare_tables([cnncost.analyze(s) for s in specs])
    assert [p.y.key for p in charts.scatter_panels(cmp)] == ["params"]
    timed = cmp.with_column(Column("latency_ms", "latency", "ms"), [1.5, 2.5])
    panels = charts.scatter_panels(timed, {"small": 61.5})
    assert [p.y.key for p in panels] == ["params", "latency_ms", "top1"]
    assert panels[0].xs == (6912 + 40, 13824 + 80) and panels[0].ys == (108 + 50, 216 + 90)
    assert panels[2].ys == (61.5, None)
    # bubble areas proportional to activation bytes: 1,024+16+16+40 vs 2,048+32+32+40
    big, small = charts.bubble_sizes(cmp, 1000.0, 1.0)[::-1]
    assert big == 1000.0 and small == pytest.approx(1000.0 * 1096 / 2152)


def test_titles_state_input_dtype_policy_and_mac_convention(alexnet: cnncost.CostTable
                                                            ) -> None:
    title, subtitle = charts.layers_title(alexnet, charts.layer_bars(alexnet))
    assert "alexnet" in title and "per layer" in title
    assert subtitle.startswith("input 1x3x224x224, float32, FLOPs policy all")
    assert "1 MAC = 1 multiply + 1 add" in subtitle


# --------------------------------------------------------------------------- the images


def read_png(data: bytes, tmp_path: Path) -> object:
    """The PNG as an (H, W, channels) float array, via matplotlib's own reader."""
    import matplotlib.image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    path = tmp_path / "read.png"
    path.write_bytes(data)
    return matplotlib.image.imread(path)


def assert_not_blank(img: object, colors: tuple[str, ...] = ()) -> None:
    """Many distinct colours, a good share of non-white pixels, and each colour present."""
    import numpy as np
    from matplotlib.colors import to_rgb

    rgb = np.asarray(img)[..., :3]
    pixels = rgb.reshape(-1, 3)
    inked = (pixels < 0.9).any(axis=1).mean()
    assert inked > 0.03, f"only {inked:.1%} of the pixels are not white"
    rgb8 = (pixels * 255).round().astype(np.uint32)
    distinct = len(np.unique(rgb8[:, 0] << 16 | rgb8[:, 1] << 8 | rgb8[:, 2]))
    assert distinct > 30, f"only {distinct} colours"
    for color in colors:
        near = (np.abs(pixels - np.array(to_rgb(color))) < 0.02).all(axis=1).sum()
        assert near > 200, f"colour {color} barely present ({near} pixels)"


def assert_png(data: bytes, fig_size: tuple[float, float], tmp_path: Path,
               colors: tuple[str, ...] = ()) -> None:
    assert 10_000 < len(data) < 5_000_000
    img = read_png(data, tmp_path)
    height, width = img.shape[:2]  # type: ignore[attr-defined]
    assert (width, height) == (round(fig_size[0] * plot.DPI), round(fig_size[1] * plot.DPI))
    assert_not_blank(img, colors)


@pytest.mark.slow  # matplotlib images
def test_layers_png(alexnet: cnncost.CostTable, tmp_path: Path) -> None:
    fig = plot.layers_figure(alexnet)
    size = tuple(fig.get_size_inches())
    # 22 bars: the height grows with the bar count, so names stay readable
    assert size[1] == pytest.approx(0.27 * 22 + 2.2)
    assert_png(plot.to_bytes(fig, "png"), size, tmp_path,  # type: ignore[arg-type]
               (charts.COLORS[charts.CONV], charts.COLORS[charts.FC],
                charts.COLORS[charts.OTHER]))


@pytest.mark.slow  # matplotlib images
def test_compare_png(specs: tuple[Path, Path], tmp_path: Path) -> None:
    from cnncost.compare import compare_tables

    fig = plot.compare_figure(compare_tables([cnncost.analyze(s) for s in specs]))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "13.9K\n2.00x" in texts  # wide's MACs 13,824 + 80 = 13,904; 13,904 / 6,952 = 2
    assert any("wide / small" in t for t in texts)  # the ratio summary in the spare panel
    assert_png(plot.to_bytes(fig, "png"), tuple(fig.get_size_inches()), tmp_path)  # type: ignore[arg-type]


@pytest.mark.slow  # matplotlib images
def test_scatter_png_with_top1(specs: tuple[Path, Path], tmp_path: Path) -> None:
    from cnncost.api import plot_data

    data = plot_data(PlotKind.SCATTER, [str(s) for s in specs])
    assert dict(data.top1) == {"small": 61.5, "wide": 70.25}
    fig = plot.figure(data)
    assert [ax.get_ylabel() for ax in fig.axes] == ["parameters (log scale)",
                                                   "top-1 accuracy (%)"]
    assert_png(plot.to_bytes(fig, "png"), tuple(fig.get_size_inches()), tmp_path)  # type: ignore[arg-type]
    # With other variables the published accuracy no longer applies: no top-1 panel.
    assert plot_data(PlotKind.SCATTER, [str(s) for s in specs], overrides={"width": 2}).top1 == {}


@pytest.mark.slow  # matplotlib images
def test_roofline_png(specs: tuple[Path, Path], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.api import plot_data
    from cnncost.measure import bench as bench_mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = bench_mod.BenchOptions
    monkeypatch.setattr(bench_mod, "BenchOptions", lambda **kw: replace(
        real(**kw), device="cpu", threads=1, quick_roofline=True))
    data = plot_data(PlotKind.ROOFLINE, [str(specs[0])], max_time=0.05)
    assert data.bench is not None
    points = charts.roofline_points(data.bench.runs[0])
    # conv and linear do arithmetic; the pool does too (a sum per element); flatten none.
    assert {p.name for p in points} >= {"conv1", "linear1"}
    assert all(p.measured and p.flops_per_s > 0 for p in points)
    fig = plot.figure(data)
    assert_png(plot.to_bytes(fig, "png"), tuple(fig.get_size_inches()), tmp_path,  # type: ignore[arg-type]
               ("#222222",))


@pytest.mark.slow  # matplotlib images
def test_sweep_chart_and_png(specs: tuple[Path, Path], tmp_path: Path) -> None:
    from cnncost.api import plot_data

    data = plot_data(PlotKind.SWEEP, [str(specs[0])], sweep_sets=["width=2,4,8"])
    assert data.sweep is not None
    chart = charts.sweep_chart(data.sweep)
    assert chart.var == "width" and len(chart.series) == 1 and chart.series[0].xs == (2, 4, 8)
    # MACs = conv 8*8*w*27 + linear w*10 = 1,738 w: exactly linear in the width
    assert chart.series[0].ys["macs"] == (3476, 6952, 13904)
    assert chart.fit_text("macs") == "∝ width^1.00"
    fig = plot.figure(data)
    assert fig.axes[1].get_title() == "MACs ∝ width^1.00"
    assert_png(plot.to_bytes(fig, "png"), tuple(fig.get_size_inches()), tmp_path)  # type: ignore[arg-type]


def test_sweep_chart_draws_a_line_per_other_value(specs: tuple[Path, Path]) -> None:
    from cnncost.sweep import run_sweep

    sweep = run_sweep(str(specs[0]), ["width=2,4,8"], batch="1,2")
    chart = charts.sweep_chart(sweep)  # the spec variable on x, before the batch size
    assert chart.var == "width"
    assert [s.label for s in chart.series] == ["batch=1", "batch=2"]
    assert chart.series[1].ys["macs"] == (2 * 3476, 2 * 6952, 2 * 13904)
    only_batch = charts.sweep_chart(run_sweep(str(specs[0]), [], batch="1,2,4"))
    assert only_batch.var == "batch" and only_batch.fit_text("params") == "∝ batch^0.00"


@pytest.mark.slow  # matplotlib images
def test_cli_sweep_kind(specs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "sweep.png"
    code, _, err = run("plot", specs[0], "--kind", "sweep", "--set", "width=2..8:2", "-o", out)
    assert code == 0, err
    assert out.read_bytes().startswith(b"\x89PNG")
    code, out_text, err = run("plot", specs[0], "--zip", "a,b", "-o", tmp_path / "z.png")
    assert_one_line_error(code, out_text, err)
    assert "--zip goes with --kind sweep" in err


@pytest.mark.slow  # matplotlib images
def test_scatter_with_bench_adds_the_latency_panel(specs: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.api import plot_data
    from cnncost.measure import bench as bench_mod
    from cnncost.measure.timing import Budget

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = bench_mod.BenchOptions
    fast = Budget(min_samples=3, min_time=0.0, max_time=0.05, warmup_time=0.0)
    monkeypatch.setattr(bench_mod, "BenchOptions", lambda **kw: replace(
        real(**kw), device="cpu", threads=1, quick_roofline=True, budget=fast))
    data = plot_data(PlotKind.SCATTER, [str(s) for s in specs], bench=True)
    fig = plot.figure(data)
    assert [ax.get_ylabel() for ax in fig.axes][:2] == ["parameters (log scale)",
                                                       "measured latency (log scale)"]


@pytest.mark.slow  # matplotlib images
def test_svg_is_the_same_bytes_each_time(specs: tuple[Path, Path]) -> None:
    table = cnncost.analyze(specs[0])
    svg1 = plot.to_bytes(plot.layers_figure(table), "svg")
    assert svg1.lstrip().startswith(b"<?xml") and b"<svg" in svg1
    assert svg1 == plot.to_bytes(plot.layers_figure(table), "svg")
    assert plot.to_bytes(plot.layers_figure(table), "pdf").startswith(b"%PDF")


# --------------------------------------------------------------------------- the command


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_kinds_take_the_right_number_of_models() -> None:
    assert default_kind(["a"]) is PlotKind.LAYERS
    assert default_kind(["a", "b"]) is PlotKind.COMPARE
    assert set(MODELS) == set(PlotKind)  # every kind says how many models it draws


@pytest.mark.slow  # matplotlib images
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_cli_writes_each_format(specs: tuple[Path, Path], tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out" / f"chart{suffix}"
    code, _, err = run("plot", specs[0], specs[1], "--output", out)
    assert code == 0, err
    assert f"wrote {out}" in err
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix]
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.slow  # matplotlib images
def test_cli_layers_with_depth_and_scale(specs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    code, _, err = run("plot", specs[0], "--depth", "1", "--scale", "log", "-o", out)
    assert code == 0, err
    assert_png(out.read_bytes(), (14, 4.0), tmp_path)  # 4 bars: the minimum height


@pytest.mark.parametrize(("args", "message"), [
    (["--output", "{tmp}/x.gif"], "cannot write a .gif image"),
    (["--output", "{tmp}/x"], "suffix-less"),
    (["--output", "{tmp}/x.html"], "an HTML page (tables and charts) is cnncost analyze MODEL "
                                   "--format html --output"),
    (["--output", "{tmp}/blocker/x.png"], "is a file, not a folder"),
    (["--output", "{tmp}/x.png", "--kind", "pie"], "--kind 'pie': expected one of"),
    (["--output", "{tmp}/x.png", "--scale", "sqrt"], "--scale 'sqrt'"),
    (["--output", "{tmp}/x.png", "--kind", "compare"], "needs at least 2 models"),
    (["--output", "{tmp}/x.png", "--bench"], "--bench goes with --kind scatter"),
], ids=["extension", "no-extension", "html", "unwritable", "kind", "scale", "count", "bench"])
def test_cli_bad_input_is_one_line_and_writes_nothing(specs: tuple[Path, Path], tmp_path: Path,
                                                      args: list[str], message: str) -> None:
    (tmp_path / "blocker").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run("plot", specs[0], *[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(code, out, err)
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_model_that_fails_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninput: [4, 8, 8]\nlayers:\n  - conv: {out: 8, kernel: 3}\n"
                   "  - conv: {out: 8, kernel: 3, groups: 3}\n")
    code, out, err = run("plot", bad, "--output", tmp_path / "bad.png")
    assert_one_line_error(code, out, err)
    assert "bad.yaml:5" in err and "groups=3" in err
    assert not (tmp_path / "bad.png").exists()


def test_cli_layers_refuses_two_models(specs: tuple[Path, Path], tmp_path: Path) -> None:
    code, out, err = run("plot", *specs, "--kind", "layers", "-o", tmp_path / "x.png")
    assert_one_line_error(code, out, err)
    assert "--kind compare or scatter" in err


def test_matplotlib_is_not_imported_for_help() -> None:
    import subprocess
    import sys

    code = ("import sys; from cnncost.cli import app; import cnncost.render.plot, "
            "cnncost.render.html, cnncost.plotting; print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**__import__("os").environ,
                                           "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert done.stdout.strip() == "False"


def test_png_dimensions_follow_the_figure_size(tmp_path: Path) -> None:
    fig = plot._figure(3, 2)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    img = read_png(plot.to_bytes(fig, "png"), tmp_path)
    assert img.shape[:2] == (math.floor(2 * plot.DPI), math.floor(3 * plot.DPI))  # type: ignore[attr-defined]

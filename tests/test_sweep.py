"""`cnncost sweep`: value grammar, product and zip, exponent fitting, failing points, scale-out.

Every expected figure is worked out by hand in the comments, from conv MACs =
N x C_out x H_out x W_out x (C_in / groups) x K x K and linear MACs = N x in x out, or taken
from a published figure named in the comment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.errors import UsageError
from cnncost.render import sweep as render
from cnncost.sweep import (
    Exponent,
    PointResult,
    Sweep,
    fit_loglog,
    parse_values,
    plan_sweep,
    run_sweep,
)
from cnncost.sweep import run as sweep_run

# A VGG-style conv stack (3x3 'same' convs, a 2x2/2 pool between), no bias, on 3 x R x R:
#   conv1 3 -> 8:  params 3*3*3*8 = 216,   MACs 8 * R * R * 27          = 216 R^2
#   pool  2x2/2:   R -> R/2 (fails on a 1x1 input: the kernel is larger than it)
#   conv2 8 -> 16: params 3*3*8*16 = 1152, MACs 16 * (R/2)^2 * 72       = 288 R^2
# so params = 1,368 at every R, MACs = 504 R^2 (an exact power law, exponent 2), and every
# layer's output is proportional to R^2, so activation bytes are too.
VGGISH = """\
name: vggish
vars: {res: 32, act: true}
input: [3, res, res]
layers:
  - conv: {out: 8, kernel: 3, padding: 1, bias: false}
  - relu
  - max_pool: {kernel: 2, stride: 2}
  - conv: {out: 16, kernel: 3, padding: 1, bias: false}
"""

# Two linear layers of int(16 * width) features on a 1-D input of the same width:
#   bias false: params = MACs = 2 * (16w)^2 = 512 w^2 (exponent 2 exactly);
#   bias true:  params = 2 * ((16w)^2 + 16w); at w=1: 2*(256+16) = 544, at w=2:
#   2*(1024+32) = 2112, so with two points k = log2(2112 / 544) = log2(66 / 17).
LINEAR = """\
name: linear_width
vars: {width: 1.0, bias: false}
input: ["int(16 * width)"]
layers:
  - linear: {out: "int(16 * width)", bias: bias}
  - linear: {out: "int(16 * width)", bias: bias}
"""


@pytest.fixture
def vggish(write_spec) -> Path:
    return write_spec(VGGISH, "vggish.yaml")


@pytest.fixture
def linear(write_spec) -> Path:
    return write_spec(LINEAR, "linear.yaml")


def fit(result: Sweep, var: str, metric: str) -> Exponent:
    return next(e for e in result.exponents if e.var == var and e.metric == metric)


# --------------------------------------------------------------------------- value grammar


@pytest.mark.parametrize(("text", "values"), [
    ("128..640:32", tuple(range(128, 641, 32))),           # 17 values, both ends included
    ("1..10:4", (1, 5, 9)),                                # a step that misses the end
    ("640..128:-256", (640, 384, 128)),                    # counting down
    ("3..5", (3, 4, 5)),                                   # step 1 by default
    ("7..7", (7,)),
    ("0.5..1:0.25", (0.5, 0.75, 1.0)),                     # decimals, exact
    ("0.1..0.3:0.1", (0.1, 0.2, 0.3)),                     # 0.1 + 0.1 + 0.1 != 0.3 in float
    ("1,2..4,8", (1, 2, 3, 4, 8)),                         # lists may hold ranges
    ("0.5,1,2", (0.5, 1, 2)),
    ("true,false", (True, False)),
], ids=lambda v: str(v))
def test_values(text: str, values: tuple) -> None:
    got = parse_values("--set x", text)
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


@pytest.mark.parametrize(("text", "match"), [
    ("128..", "unbounded or incomplete"),
    ("..640", "unbounded or incomplete"),
    ("1..2:", "unbounded or incomplete"),
    ("1..inf", "unbounded"),
    ("1..2:0", "a step of 0"),
    ("5..1", "is empty"),
    ("1..5:-1", "is empty"),
    ("1,,2", "empty item"),
    ("1,two", "'two' is not a number"),
    ("1,nan", "not a finite number"),
    ("a..b", "not a number"),
    ("1..1000", "1,000 values, more than --max-points 100;"),  # the limit given below
    ("1,2,3..200", "198 values, more than --max-points 100;"),  # 3..200: 198 values
], ids=lambda v: str(v))
def test_bad_values(text: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        parse_values("--set x", text, limit=100)


# --------------------------------------------------------------------------- product and zip


def test_product_first_axis_slowest_batch_last() -> None:
    plan = plan_sweep(["a=1,2", "b=10..30:10", "c=5"], batch="1,8")
    assert plan.fixed == {"c": "5"}  # a single value is fixed, passed on as given
    assert plan.names == ("a", "b", "batch")
    assert plan.size == 2 * 3 * 2
    assert [tuple(v for _, v in p.values) for p in plan.points()] == [
        (a, b, n) for a in (1, 2) for b in (10, 20, 30) for n in (1, 8)]
    p = list(plan.points())[3]  # a=1, b=20, batch=8
    assert (p.index, p.coords, p.vars, p.batch) == (3, (0, 1, 1), {"a": 1, "b": 20}, 8)


def test_zip_moves_variables_together() -> None:
    plan = plan_sweep(["w=1.0,1.1,1.2", "d=5,6", "r=224,240,260"], zips=["w,r"])
    assert [a.names for a in plan.axes] == [("w", "r"), ("d",), ("batch",)]
    assert [(p.vars["w"], p.vars["r"], p.vars["d"]) for p in plan.points()] == [
        (1.0, 224, 5), (1.0, 224, 6), (1.1, 240, 5), (1.1, 240, 6), (1.2, 260, 5),
        (1.2, 260, 6)]


def test_zip_with_batch() -> None:
    plan = plan_sweep(["r=64,128"], zips=["r,batch"], batch="1,4")
    assert [(p.vars["r"], p.batch) for p in plan.points()] == [(64, 1), (128, 4)]


@pytest.mark.parametrize(("sets", "zips", "batch", "match"), [
    (["w=1,2", "r=1,2,3"], ["w,r"], None, "equally many values; w has 2, r has 3"),
    (["w=1,2"], ["w,q"], None, "no --set q=... sweeps 'q'"),
    (["w=1,2", "r=3"], ["w,r"], None, "r has a single value"),
    (["w=1,2", "r=1,2"], ["w,r", "r"], None, "r is already zipped"),
    (["w=1,2", "w=3,4"], [], None, "given twice"),
    (["batch=1,2"], [], None, "the batch size is --batch"),
    (["w"], [], None, "expected name=values"),
    (["w=1"], [], None, "nothing to sweep"),
    (["w=1,2"], [], "0,1", "positive whole batch sizes"),
    (["w=1,2"], [], "1.5,2", "positive whole batch sizes"),
    (["a=1..10", "b=1..10", "c=1..10"], [], None, "1,000 points, more than --max-points 999"),
], ids=lambda v: str(v))
def test_bad_plans(sets: list[str], zips: list[str], batch: str | None, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        plan_sweep(sets, zips, batch, max_points=999)


def test_default_max_points_is_100000() -> None:
    assert plan_sweep(["a=1..100000"]).size == 100_000
    with pytest.raises(UsageError, match="200,000 points, more than --max-points 100,000"):
        plan_sweep(["a=1..100000"], batch="1,2")


@pytest.mark.parametrize(("sets", "match"), [
    (["size=1,2"], "the spec has no variable 'size'; known: res, act"),
    (["res=16,24.5"], "24.5 is not a whole number, as the spec's default 32 is"),
    (["res=true,false"], "True is not a whole number"),
    (["act=1,0"], "1 is not true or false"),
], ids=lambda v: str(v))
def test_plan_meets_spec(vggish: Path, sets: list[str], match: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_run, "evaluate", _no_work)
    with pytest.raises(UsageError, match=match):
        run_sweep(str(vggish), sets)


def test_float_variable_takes_whole_numbers(linear: Path) -> None:
    result = run_sweep(str(linear), ["width=1,2"])
    assert [r.params for r in result.results] == [512, 512 * 4]  # 512 w^2


def _no_work(*args: object) -> PointResult:
    raise AssertionError("a point was counted although the input was bad")


# --------------------------------------------------------------------------- exponent fitting


def test_fit_by_hand() -> None:
    # x = ln[1, 2, 4] = [0, L, 2L], y = ln[1, 4, 8] = [0, 2L, 3L] (L = ln 2):
    # mean x = L, mean y = 5L/3; Sxy = L*5L/3 + 0 + L*4L/3 = 3L^2; Sxx = 2L^2 -> k = 1.5.
    # Syy = (25 + 1 + 16)/9 L^2 = 14/3 L^2; SSR = Syy - k Sxy = L^2/6; r2 = 1 - 1/28 = 27/28.
    pts = [(math.log(x), math.log(y)) for x, y in ((1, 1), (2, 4), (4, 8))]
    k, r2, n, groups = fit_loglog([pts])
    assert (k, n, groups) == (1.5, 3, 1)
    assert r2 == pytest.approx(27 / 28, abs=1e-6)


def test_fit_groups_share_the_slope() -> None:
    # y = 3 x^2 in one group and 50 x^2 in the other: different intercepts, slope 2 exactly;
    # a group with one x value carries no slope and is not counted.
    g1 = [(math.log(x), math.log(3 * x * x)) for x in (1, 2, 3)]
    g2 = [(math.log(x), math.log(50 * x * x)) for x in (2, 5)]
    lone = [(math.log(7.0), math.log(9.0))]
    assert fit_loglog([g1, g2, lone]) == (2.0, 1.0, 5, 2)


def test_fit_constant_and_degenerate() -> None:
    flat = [(math.log(x), math.log(0.1)) for x in (1, 2, 3)]
    assert fit_loglog([flat]) == (0.0, 1.0, 3, 1)
    assert fit_loglog([[(0.0, 1.0), (0.0, 2.0)]]) == (None, None, 0, 0)


def test_conv_stack_macs_scale_as_res_squared(vggish: Path) -> None:
    result = run_sweep(str(vggish), ["res=32..128:32"])
    assert [r.macs for r in result.results] == [504 * r * r for r in (32, 64, 96, 128)]
    assert [r.params for r in result.results] == [1368] * 4
    assert (fit(result, "res", "macs").exponent, fit(result, "res", "macs").r2) == (2.0, 1.0)
    assert fit(result, "res", "activation_bytes").exponent == 2.0
    assert fit(result, "res", "params").exponent == 0.0  # params do not depend on res
    assert [result.ratio(r, "macs") for r in result.results] == [1.0, 4.0, 9.0, 16.0]


def test_exponents_with_other_variables_fixed(vggish: Path) -> None:
    # MACs = 504 R^2 N: against res with batch fixed 2, against batch with res fixed 1.
    result = run_sweep(str(vggish), ["res=8,16,32"], batch="1,4")
    assert (fit(result, "res", "macs").exponent, fit(result, "res", "macs").groups) == (2.0, 2)
    assert (fit(result, "batch", "macs").exponent, fit(result, "batch", "macs").groups) == (1.0, 3)
    assert fit(result, "batch", "params").exponent == 0.0
    assert [e for e in result.exponents if e.var == "act"] == []  # not swept


def test_width_multiplier_on_linear_layers(linear: Path) -> None:
    result = run_sweep(str(linear), ["width=0.5,1,2"])
    assert [r.params for r in result.results] == [128, 512, 2048]  # 512 w^2
    assert fit(result, "width", "params").exponent == 2.0
    assert fit(result, "width", "macs").exponent == 2.0
    with_bias = run_sweep(str(linear), ["width=1,2", "bias=True"])
    assert [r.params for r in with_bias.results] == [544, 2112]
    assert fit(with_bias, "width", "params").exponent == round(math.log2(66 / 17), 6)


def test_efficientnet_compound_scaling_zip() -> None:
    # torchvision's model docs (num_params) for EfficientNet-B0..B3; B1-B3 are B0 with
    # width/depth/resolution coefficients (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 300).
    result = run_sweep("efficientnet_b0", ["width=1.0,1.0,1.1,1.2", "depth=1.0,1.1,1.2,1.4",
                                              "res=224,240,260,300"], zips=["width,depth,res"])
    assert [r.params for r in result.results] == [5_288_548, 7_794_184, 9_109_994, 12_233_232]


# --------------------------------------------------------------------------- failing points


def test_failing_point_is_reported_not_fatal(vggish: Path) -> None:
    # res 1: the 2x2 pool is larger than its 1x1 input; res 2 and 4 fit (MACs 504 R^2).
    result = run_sweep(str(vggish), ["res=1,2,4"])
    first, second, third = result.results
    assert not first.ok and "max_pool" in (first.error or "") and "\n" not in (first.error or "")
    assert "vggish.yaml:7:" in (first.error or "")  # file and line of the pool
    assert (second.macs, third.macs) == (504 * 4, 504 * 16)
    assert result.baseline is second  # ratios are against the first point that counted
    assert result.ratio(third, "macs") == 4.0 and result.ratio(first, "macs") is None
    assert fit(result, "res", "macs").points == 2
    doc = render.to_dict(result)
    assert (doc["failed"], doc["baseline"], doc["points"][0]["macs"]) == (1, 1, None)


def test_progress_reports_every_point(vggish: Path) -> None:
    seen: list[tuple[int, int]] = []
    run_sweep(str(vggish), ["res=2,4,8"], progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


# --------------------------------------------------------------------------- scale-out


SCALE_SETS = ["res=1..8"]  # 8 points x 2 batches, point res=1 fails at both batches


def test_jobs_equal_serial(vggish: Path) -> None:
    serial = run_sweep(str(vggish), SCALE_SETS, batch="1,3")
    pooled = run_sweep(str(vggish), SCALE_SETS, batch="1,3", jobs=2)
    assert pooled.results == serial.results
    assert render.to_json(pooled) == render.to_json(serial)
    assert len(serial.failed) == 2


def test_jobs_fork_where_torch_is_not_imported(vggish: Path) -> None:
    """Without torch in the process a pool forks (its workers start with what this process
    imported and compiled) and gives exactly the serial result; with torch it spawns."""
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from cnncost.sweep import run_sweep\n"
            "from cnncost.render import sweep as render\n"
            "from cnncost.sweep import run\n"
            f"args = ({str(vggish)!r}, {SCALE_SETS!r})\n"
            "method = run._start_method()\n"
            "serial = render.to_json(run_sweep(*args, batch='1,3'))\n"
            "pooled = render.to_json(run_sweep(*args, batch='1,3', jobs=2))\n"
            "print(json.dumps([method, 'torch' in sys.modules, serial == pooled]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[1])
    assert json.loads(done.stdout) == ["fork", False, True]
    import torch  # noqa: F401 - once torch is imported, fresh interpreters

    assert sweep_run._start_method() == "spawn"


def test_dask_local_cluster_equals_serial(vggish: Path) -> None:
    pytest.importorskip("distributed", reason="dask distributed not installed "
                                              "(pip install 'cnncost[dask]')")
    from distributed import LocalCluster

    serial = run_sweep(str(vggish), SCALE_SETS, batch="1,3")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster:
        seen: list[int] = []
        remote = run_sweep(str(vggish), SCALE_SETS, batch="1,3",
                              dask=cluster.scheduler_address,
                              progress=lambda d, t: seen.append(d))
    assert remote.results == serial.results
    assert render.to_json(remote) == render.to_json(serial)
    assert seen[-1] == 16


def test_dask_missing_is_a_usage_error(vggish: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(UsageError, match=r"pip install 'cnncost\[dask\]'"):
        run_sweep(str(vggish), ["res=2,4"], dask="tcp://127.0.0.1:8786")


class FakeClient:
    """What _check_cluster asks of a distributed.Client: the probe on scheduler and workers."""

    def __init__(self, scheduler: object, workers: dict[str, object]) -> None:
        self.scheduler, self.workers = scheduler, workers

    def run_on_scheduler(self, probe: object) -> object:
        if isinstance(self.scheduler, Exception):
            raise self.scheduler
        return self.scheduler

    def run(self, probe: object) -> dict[str, object]:
        return self.workers


@pytest.mark.parametrize(("client", "match"), [
    (FakeClient(ModuleNotFoundError("No module named 'cnncost.sweep'"), {}),
     "the scheduler cannot import cnncost"),
    (FakeClient(sweep_run.PROTOCOL, {"tcp://w1": sweep_run.PROTOCOL, "tcp://w2": "old/0"}),
     "tcp://w2 runs another cnncost version"),
    (FakeClient(sweep_run.PROTOCOL, {}), "the scheduler has no workers"),
], ids=["no cnncost", "other version", "no workers"])
def test_dask_cluster_checked_first(client: FakeClient, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        sweep_run._check_cluster(client, "tcp://sched:8786")


def test_dask_probe_is_the_protocol() -> None:
    # The probe resolves the constant by name, as a scheduler or worker would.
    import pkgutil

    assert pkgutil.resolve_name(f"{sweep_run.__name__}:PROTOCOL") == sweep_run.PROTOCOL
    ok = FakeClient(sweep_run.PROTOCOL, {"tcp://w1": sweep_run.PROTOCOL})
    assert sweep_run._check_cluster(ok, "tcp://sched:8786") == 1


def test_jobs_and_dask_exclusive(vggish: Path) -> None:
    with pytest.raises(UsageError, match="choose one"):
        run_sweep(str(vggish), ["res=2,4"], jobs=2, dask="tcp://127.0.0.1:8786")


# --------------------------------------------------------------------------- command line


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["sweep", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_json(vggish: Path) -> None:
    code, out, err = run(vggish, "--set", "res=1,2,4", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.sweep/1"
    assert doc["axes"] == [{"vars": ["res"], "values": [[1], [2], [4]]},
                           {"vars": ["batch"], "values": [[1]]}]
    assert [p["macs"] for p in doc["points"]] == [None, 504 * 4, 504 * 16]
    assert doc["points"][2]["ratios"]["macs"] == 4.0 and doc["points"][0]["ok"] is False
    macs = next(e for e in doc["exponents"] if e["var"] == "res" and e["metric"] == "macs")
    assert macs["exponent"] == 2.0
    assert run(vggish, "--set", "res=1,2,4", "--format", "json")[1] == out  # deterministic


def test_cli_csv_and_md(vggish: Path) -> None:
    code, out, _ = run(vggish, "--set", "res=2,4", "--batch", "1,2", "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("index,res,batch,ok,params,macs,")
    # res 4, batch 2: MACs 2 * 504 * 16 = 16,128, ratio to res 2 batch 1 (2,016) = 8
    assert lines[4].split(",")[:6] == ["3", "4", "2", "true", "1368", "16128"]
    code, out, _ = run(vggish, "--set", "res=2,4", "--format", "md")
    assert code == 0 and "| 1 | 4 | 1,368 (1.00x) | 8,064 (4.00x) |" in out


def test_cli_table_and_output_file(vggish: Path, tmp_path: Path) -> None:
    code, out, err = run(vggish, "--set", "res=1,2,4")
    assert code == 0, err
    assert "failed points:" in out and "#0 res=1, batch=1:" in out
    assert "scaling exponents" in out
    target = tmp_path / "out" / "sweep.json"
    code, _, err = run(vggish, "--set", "res=2,4", "--format", "json", "--output", target)
    assert code == 0 and json.loads(target.read_text())["failed"] == 0


@pytest.mark.parametrize("args", [
    ["--set", "res=1..0"],                         # empty range
    ["--set", "res=1.."],                          # unbounded
    ["--set", "res=1..9:0"],                       # step 0
    ["--set", "res=1..9", "--max-points", "8"],    # too many points
    ["--set", "size=1,2"],                         # unknown variable
    ["--set", "res=1,2.5"],                        # wrong type
    ["--set", "res=1,2", "--zip", "res,act"],      # zip of a variable not swept
    ["--set", "res=1,2", "--set", "res=3"],        # twice
    ["--set", "res=1,2", "--set", "nope=3"],       # unknown fixed variable
    ["--set", "res=2,4", "--jobs", "2", "--dask", "tcp://127.0.0.1:8786"],
], ids=lambda a: " ".join(a))
def test_cli_bad_input(vggish: Path, tmp_path: Path, args: list[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_run, "evaluate", _no_work)
    target = tmp_path / "never.json"
    code, out, err = run(vggish, *args, "--output", target)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err and not target.exists()


def test_cli_module_factory_refused() -> None:
    code, _, err = run("cnncost.sweep:plan_sweep", "--set", "res=1,2")
    assert code == 2 and "sweep takes a spec" in err


def test_the_bar_on_a_terminal_runs_no_thread_and_ends_at_the_total(monkeypatch) -> None:
    """The sweep's bar is drawn from its callback, not by a refresh thread (a pool may then
    fork), and shows every point done at the end."""
    import io
    import threading

    from rich.console import Console

    from cnncost.render import terminal

    screen = io.StringIO()
    monkeypatch.setattr(terminal, "console", lambda **_: Console(
        file=screen, force_terminal=True, width=80, color_system=None))
    threads = threading.active_count()
    with terminal.point_progress("sweep", 500) as update:
        for done in range(1, 501):
            update(done, 500)
            assert threading.active_count() == threads
    assert "500/500" in screen.getvalue()
    assert screen.getvalue().count("/500") < 50  # redrawn at most ten times a second


def test_a_narrow_terminal_widens_the_table_and_cuts_no_point_number(vggish: Path) -> None:
    """Printed narrower than the table, it is widened (never cut): every point's number is
    shown whole, 10 and 11 included."""
    import io

    from rich.console import Console

    from cnncost.render.terminal import fit_width

    result = run_sweep(str(vggish), ["res=2..13"])  # 12 points: #0 .. #11
    table = render.rich_sweep(result)
    out = Console(file=io.StringIO(), width=fit_width(table, 40), color_system=None)
    out.print(table)  # as print_whole prints to a 40-column terminal
    text = out.file.getvalue()  # type: ignore[attr-defined]
    numbers = [line.split()[0] for line in text.splitlines()
               if line.split() and line.split()[0].isdigit()]
    assert numbers[:12] == [str(i) for i in range(12)]

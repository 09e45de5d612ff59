"""The Python API is the command line's twin: cnncost.compare, cnncost.sweep, cnncost.advise
and cnncost.bench return the results their commands render, from the same options.

Each twin's result is held to its command's JSON document for the same input (the same
figures, however the options travel), and bad input is the command's one-line error.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.errors import UsageError


def _cli_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_twins_stay_functions_beside_their_modules() -> None:
    # Python sets each module it imports on its package: these must not undo the functions.
    import cnncost.advise.engine
    import cnncost.compare
    import cnncost.sweep.run

    for name in ("compare", "sweep", "advise"):
        assert callable(getattr(cnncost, name)), name
        assert type(sys.modules[f"cnncost.{name}"]).__name__ == "module"
    from cnncost.sweep import run_sweep

    assert callable(run_sweep)


@pytest.mark.parametrize("models,options,argv", [
    (["lenet5", "alexnet"], {}, []),
    (["lenet5", "alexnet"], {"mode": "train", "batch": 2}, ["--mode", "train", "--batch", "2"]),
    # c is declared by conv1x1_5x5 only: it goes to that model (README, compare); given as
    # the command line's text, it is recorded as the document records --set (a string)
    (["textbook/conv5x5", "textbook/conv1x1_5x5"], {"c": "32", "policy": "conv+linear"},
     ["--set", "c=32", "--policy", "conv+linear"]),
], ids=["plain", "train", "vars"])
def test_compare_is_the_command(models: list[str], options: dict[str, Any],
                                argv: list[str]) -> None:
    assert cnncost.compare(models, **options).to_dict() == _cli_json("compare", *models, *argv)


@pytest.mark.parametrize("grid,options,argv", [
    ({"res": [8, 32, 40]}, {}, ["--set", "res=8,32,40"]),  # res=8 fails: a failed point
    ({"res": range(32, 65, 16), "batch": (1, 2)}, {"policy": "conv+linear"},
     ["--set", "res=32..64:16", "--batch", "1,2", "--policy", "conv+linear"]),
    ({"res": "32..48:16", "classes": 10}, {}, ["--set", "res=32..48:16", "--set", "classes=10"]),
], ids=["list", "range-batch", "text-and-fixed"])
def test_sweep_is_the_command(grid: dict[str, Any], options: dict[str, Any],
                              argv: list[str]) -> None:
    from cnncost.render.sweep import to_dict

    assert to_dict(cnncost.sweep("lenet5", grid, **options)) == _cli_json(
        "sweep", "lenet5", *argv)


def test_a_variable_as_a_number_counts_as_its_text() -> None:
    models = ["textbook/conv5x5", "textbook/conv1x1_5x5"]
    number, text = cnncost.compare(models, c=32), cnncost.compare(models, c="32")
    assert [r.values for r in number.rows] == [r.values for r in text.rows]
    assert number.rows[1].vars == {"c": 32}  # recorded as given


def test_sweep_zip_scales_efficientnet_compound() -> None:
    # EfficientNet-B0 and B2 are B0's spec at width 1.0/1.1, depth 1.0/1.2, resolution
    # 224/260; torchvision's model docs give their parameters: 5,288,548 and 9,109,994.
    result = cnncost.sweep("efficientnet_b0", {"width": [1.0, 1.1], "depth": [1.0, 1.2],
                                               "res": [224, 260]},
                           zip=[("width", "depth", "res")])
    assert [r.params for r in result.results] == [5_288_548, 9_109_994]


def test_advise_is_the_command() -> None:
    assert cnncost.advise("lenet5").to_dict() == _cli_json("advise", "lenet5")
    assert cnncost.advise("lenet5", min_saving="50%").to_dict() == _cli_json(
        "advise", "lenet5", "--min-saving", "50%")
    assert cnncost.advise("lenet5", min_saving=0.5) == cnncost.advise("lenet5", "50%")


@pytest.mark.parametrize("call,message", [
    (lambda: cnncost.compare("lenet5"), "compare takes a list of models"),
    (lambda: cnncost.compare(["lenet5"]), "at least two models"),
    (lambda: cnncost.sweep("lenet5", [8, 32]), "the grid is a mapping"),
    (lambda: cnncost.sweep("lenet5", {"res": {"a": 1}}), r"res: \{'a': 1\} is not a value"),
    (lambda: cnncost.sweep("lenet5", {"res": []}), "res: no values"),
    (lambda: cnncost.sweep("lenet5", {"res": [32, float("nan")]}), "not a finite number"),
    (lambda: cnncost.sweep("lenet5", {"colour": [1, 2]}), "no variable 'colour'"),
    (lambda: cnncost.sweep("lenet5", {"res": [8, 32], "batch": [1, 2]}, batch=[4]),
     "batch sizes given twice"),
    (lambda: cnncost.advise("lenet5", min_saving=1.5), "min_saving 1.5"),
    (lambda: cnncost.advise("lenet5", min_saving="lots"), "--min-saving 'lots'"),
], ids=["compare-one-name", "compare-one-model", "grid-list", "grid-dict-value",
        "grid-empty", "grid-nan", "grid-unknown", "batch-twice", "saving-range",
        "saving-text"])
def test_bad_input_is_one_usage_error(call: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_an_error_in_ipython_is_its_one_line(ipython: Any) -> None:
    """IPython (and Jupyter's kernel) print a cnncost error as the command line does, not as
    a traceback."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        ipython.run_cell("import cnncost\ncnncost.sweep('lenet5', {'colour': [1, 2]})")
    assert out.getvalue().splitlines() == [
        "error: --set colour: the spec has no variable 'colour'; known: res, classes"]


@pytest.mark.slow
def test_bench_is_the_command_structure() -> None:
    report = cnncost.bench("lenet5", batch=[1, 2], device="cpu", max_time=0.05,
                           min_samples=2, per_layer=True)
    assert [r.batch for r in report.runs] == [1, 2]
    assert all(r.layer_pass is not None for r in report.runs)  # per_layer timed each layer
    train = cnncost.bench("lenet5", device="cpu", train=True, optimizer="adam", max_time=0.05,
                          min_samples=2)
    assert train.optimizer == "adam" and [r.batch for r in train.runs] == [1]

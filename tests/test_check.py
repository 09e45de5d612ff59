"""check.py: baseline vs current cost table -> Regression(layer, field, old, new).

The pure diff is tested on hand-built tables; the `cnncost check` command on a temporary
spec whose width is edited between `report` and `check`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from small_spec import small
from typer.testing import CliRunner

from cnncost.check import (
    MODEL,
    TOTALS,
    Regression,
    diff_tables,
    load_report,
    recipe,
    report_files,
    within,
)
from cnncost.cli import app
from cnncost.errors import UsageError
from cnncost.render.review import model_text, percent_text
from cnncost.review import Change, review_model
from cnncost.table import CostRow, CostTable, Totals


def table(conv_macs: int = 1000, fc_params: int = 50, extra: bool = False,
          input_: tuple[int, ...] = (1, 3, 8, 8)) -> CostTable:
    rows = [CostRow("conv1", "conv", ((1, 3, 8, 8),), (1, 4, 8, 8), params=108,
                    macs=conv_macs, flops=2 * conv_macs, output_bytes=1024),
            CostRow("fc", "linear", ((1, 4),), (1, 10), params=fc_params, macs=40, flops=80,
                    output_bytes=40)]
    if extra:
        rows.append(CostRow("relu", "relu", ((1, 10),), (1, 10), output_bytes=40))
    totals = Totals(params=sum(r.params for r in rows), buffers=0,
                    macs=sum(r.macs for r in rows), flops=sum(r.flops for r in rows),
                    activation_bytes=sum(r.output_bytes for r in rows), param_bytes=0,
                    buffer_bytes=0, input_bytes=768, peak_activation_bytes=0,
                    peak_memory_bytes=0, training_memory_bytes={"adam": 0})
    return CostTable("m", "specs/m.yaml", input_, "float32", "all", (), tuple(rows), totals)


def test_identical_tables_have_no_regressions() -> None:
    assert diff_tables(table(), table()) == []


def test_drift_names_layer_field_old_new() -> None:
    regs = diff_tables(table(conv_macs=1000), table(conv_macs=1500))
    # conv1's MACs and FLOPs (2 x MACs) move, and the totals with them:
    # totals MACs 1000 + 40 -> 1500 + 40, FLOPs 2000 + 80 -> 3000 + 80.
    assert regs == [
        Regression("conv1", "macs", 1000, 1500),
        Regression("conv1", "flops", 2000, 3000),
        Regression(TOTALS, "macs", 1040, 1540),
        Regression(TOTALS, "flops", 2080, 3080),
    ]
    assert percent_text(Change("macs", 1000, 1500)) == "+50%"


def test_added_and_removed_layers() -> None:
    regs = diff_tables(table(), table(extra=True))
    assert Regression("relu", "layer", "missing", "present") in regs
    assert Regression(TOTALS, "activation_bytes", 1064, 1104) in regs  # 1024 + 40 (+ 40)
    back = diff_tables(table(extra=True), table())
    assert Regression("relu", "layer", "present", "missing") in back


def test_model_recipe_drift() -> None:
    regs = diff_tables(table(), table(input_=(1, 3, 16, 16)))
    assert regs == [Regression(MODEL, "input", [1, 3, 8, 8], [1, 3, 16, 16])]


def test_shapes_must_match_exactly_even_with_tolerance() -> None:
    other = table()
    moved = replace(other, layers=(replace(other.layers[0], output_shape=(1, 4, 9, 9)),
                                   other.layers[1]))
    assert diff_tables(table(), moved, tolerance=0.5) == [
        Regression("conv1", "output_shape", [1, 4, 8, 8], [1, 4, 9, 9])]


def test_tolerance_is_relative() -> None:
    # fc params 50 -> 51 is +2%; totals params 158 -> 159 is +0.63%.
    assert diff_tables(table(fc_params=50), table(fc_params=51), tolerance=0.02) == []
    regs = diff_tables(table(fc_params=50), table(fc_params=51), tolerance=0.01)
    assert regs == [Regression("fc", "params", 50, 51)]
    assert within(100, 101, 0.01) and not within(100, 102, 0.01)
    assert within(0, 0, 0.5) and not within(0, 1, 0.5)
    with pytest.raises(UsageError, match="tolerance"):
        diff_tables(table(), table(), tolerance=-1)


def test_a_drifted_model_is_aligned_and_cut() -> None:
    m = review_model("r/m.json", table(conv_macs=1000), table(conv_macs=1500, extra=True))
    text = model_text(m)
    assert "conv1" in text and "1,000" in text and "1,500" in text and "+50%" in text
    assert re.search(r"relu\s+output_shape\s+-\s+1x10\s+added", text)
    # one line per changed figure: conv1's MACs and FLOPs, relu's four; cut to one
    assert "... and 5 more line(s) in 2 layer(s)" in model_text(m, limit=1)


def test_recipe_uses_input_only_when_given() -> None:
    t = table(input_=(4, 3, 32, 32))
    assert recipe(t).input is None and recipe(t).batch == 4
    given = replace(t, input_given=True, vars={"width": "0.5"})
    assert recipe(given).input == (3, 32, 32)
    assert recipe(given).vars == {"width": "0.5"}


def test_report_files_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        report_files(tmp_path / "nope")
    with pytest.raises(UsageError, match="no reports"):
        report_files(tmp_path)
    (tmp_path / "bad.json").write_text('{"schema": ')
    with pytest.raises(UsageError, match=r"bad.json:1: not valid JSON"):
        load_report(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text('{"schema": "other/1"}')
    with pytest.raises(UsageError, match="not a cnncost report"):
        load_report(tmp_path / "bad.json")


# --------------------------------------------------------------------------- the command

SPEC = small("name: small")


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["report", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return spec, out


def test_check_passes_then_detects_drift_then_updates(reports: tuple[Path, Path]) -> None:
    spec, out = reports
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "1 match" in ok.stdout

    spec.write_text(SPEC.replace("width: 4", "width: 5"))
    drift = runner.invoke(app, ["check", str(out)])
    assert drift.exit_code == 1, drift.output
    # conv1 params 3 x 3 x 3 x 4 = 108 -> 3 x 3 x 3 x 5 = 135;
    # MACs 8 x 8 x 4 x 27 = 6,912 -> 8 x 8 x 5 x 27 = 8,640.
    lines = drift.stdout.splitlines()
    assert any(ln.split()[:4] == ["conv1", "params", "108", "135"] for ln in lines)
    assert any(ln.split()[:4] == ["conv1", "macs", "6,912", "8,640"] for ln in lines)
    assert "--update" in drift.stdout

    updated = runner.invoke(app, ["check", str(out), "--update"])
    assert updated.exit_code == 0, updated.output
    assert json.loads((out / "small.json").read_text())["totals"]["params"] == 135 + 5 * 10 + 10
    assert "135" in (out / "small.md").read_text()
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0


def test_check_takes_one_report(reports: tuple[Path, Path]) -> None:
    spec, out = reports
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(out / "small.json")])
    assert ok.exit_code == 0, ok.output
    assert "1 report(s) checked, 1 match" in ok.stdout

    spec.write_text(SPEC.replace("width: 4", "width: 5"))
    drift = runner.invoke(app, ["check", str(out / "small.json")])
    assert drift.exit_code == 1, drift.output
    # conv1 params 3 x 3 x 3 x 4 = 108 -> 3 x 3 x 3 x 5 = 135, as for the folder.
    assert any(ln.split()[:4] == ["conv1", "params", "108", "135"]
               for ln in drift.stdout.splitlines())
    assert f"cnncost check {out / 'small.json'} --update" in drift.stdout

    assert runner.invoke(app, ["check", str(out / "small.json"), "--update"]).exit_code == 0
    assert json.loads((out / "small.json").read_text())["totals"]["params"] == 135 + 5 * 10 + 10

    other = runner.invoke(app, ["check", str(out / "small.md")])
    assert other.exit_code == 2
    assert "small.md: not a report" in other.output and "Traceback" not in other.output


def test_check_tolerance(reports: tuple[Path, Path]) -> None:
    spec, out = reports
    spec.write_text(SPEC.replace("bias: false", "bias: true"))
    # Shapes stay; conv1 params 108 -> 108 + 4 = 112 (+3.7%), total params 158 -> 162
    # (+2.5%), MACs unchanged: a 4% tolerance accepts it, 3% does not.
    runner = CliRunner()
    assert runner.invoke(app, ["check", str(out), "--tolerance", "0.04"]).exit_code == 0
    strict = runner.invoke(app, ["check", str(out), "--tolerance", "0.03"])
    assert strict.exit_code == 1
    assert any(ln.split()[:4] == ["conv1", "params", "108", "112"]
               for ln in strict.stdout.splitlines())
    assert not any(ln.split()[:2] == ["conv1", "macs"] for ln in strict.stdout.splitlines())


def test_check_recomputes_with_recorded_vars(tmp_path: Path) -> None:
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "r"
    runner = CliRunner()
    made = runner.invoke(app, ["report", str(spec), "--out", str(out), "--set", "width=2",
                               "--input", "3x16x16", "--batch", "2"])
    assert made.exit_code == 0, made.output
    doc = json.loads((out / "small.json").read_text())
    assert doc["vars"] == {"width": "2"} and doc["input_given"] is True
    assert doc["input"] == [2, 3, 16, 16]
    # conv params 27 x 2 = 54, MACs 2 x 16 x 16 x 2 x 27 = 27,648 (batch 2)
    assert doc["layers"][0]["params"] == 54 and doc["layers"][0]["macs"] == 27648
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0


def test_check_bad_input_is_exit_2_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["check", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.output
    (tmp_path / "x.json").write_text("not json")
    bad = runner.invoke(app, ["check", str(tmp_path)])
    assert bad.exit_code == 2
    assert "x.json:1: not valid JSON" in bad.stderr and bad.stderr.count("\n") == 1


def test_check_missing_source_is_exit_2(reports: tuple[Path, Path]) -> None:
    spec, out = reports
    spec.unlink()
    result = CliRunner().invoke(app, ["check", str(out)])
    assert result.exit_code == 2
    assert "cannot recompute" in result.stderr and result.stderr.count("\n") == 1

"""The command line: exit codes, one-line errors, formats, atomic --output, compare, report.

Two small specs are written to a temp folder; every expected figure is worked out by hand
in the comments from conv MACs = N x C_out x H_out x W_out x C_in x K x K.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from clirun import one_line_error as assert_one_line_error
from clirun import run
from small_spec import small

from cnncost.table import SUMMED

GOLDEN = Path(__file__).parent / "golden"

# conv 3 -> 4, 3x3, pad 1, no bias, on 3x8x8: params 3*3*3*4 = 108; MACs 8*8*4*27 = 6,912;
# output 4x8x8 floats = 1,024 B. global_avg_pool -> 4 floats (16 B), flatten 16 B,
# linear 4 -> 10: params 4*10 + 10 = 50, MACs 40, output 40 B.
SMALL = small("name: small", "description: conv, pool, linear")
# the same with width 8: conv params 216, MACs 8*8*8*27 = 13,824, output 2,048 B;
# pool and flatten 32 B each; linear 8 -> 10: params 90, MACs 80, output 40 B.
WIDE = SMALL.replace("name: small", "name: wide").replace("width: 4", "width: 8")


@pytest.fixture
def specs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "small.yaml", tmp_path / "wide.yaml"
    a.write_text(SMALL)
    b.write_text(WIDE)
    return a, b


# --------------------------------------------------------------------------- analyze


def test_analyze_table(specs: tuple[Path, Path]) -> None:
    code, out, err = run("analyze", specs[0])
    assert code == 0, err
    for name in ("conv1", "global_avg_pool1", "flatten1", "linear1", "total", "conventions"):
        assert name in out
    assert "params 158  MACs 6,952" in out  # 108 + 50, 6,912 + 40


def test_analyze_json_rows_sum_to_totals(specs: tuple[Path, Path]) -> None:
    code, out, err = run("analyze", specs[0], "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.report/1"
    assert doc["input"] == [1, 3, 8, 8]
    for key in SUMMED:
        total = doc["totals"]["activation_bytes" if key == "output_bytes" else key]
        assert sum(row[key] for row in doc["layers"]) == total, key
    assert doc["totals"]["params"] == 158 and doc["totals"]["macs"] == 6952
    assert doc["totals"]["activation_bytes"] == 1024 + 16 + 16 + 40
    assert doc["layers"][0]["source"].endswith("small.yaml:6")


def test_analyze_json_is_deterministic(specs: tuple[Path, Path]) -> None:
    assert run("analyze", specs[0], "-f", "json")[1] == run("analyze", specs[0], "-f", "json")[1]


def test_analyze_csv_and_md(specs: tuple[Path, Path]) -> None:
    rows = list(csv.DictReader(io.StringIO(run("analyze", specs[0], "-f", "csv")[1])))
    assert [r["name"] for r in rows] == ["conv1", "global_avg_pool1", "flatten1", "linear1"]
    assert rows[0]["macs"] == "6912" and rows[3]["params"] == "50"
    md = run("analyze", specs[0], "-f", "md")[1]
    assert "| `conv1` | conv | 1x4x8x8 | 108 | 6,912 |" in md


def test_analyze_sort_top_depth(specs: tuple[Path, Path]) -> None:
    out = run("analyze", specs[0], "--sort", "params", "--top", "1", "-f", "csv")[1]
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["conv1"]
    table = run("analyze", specs[0], "--sort", "macs", "--top", "2")[1]
    assert "showing 2 of 4 layers" in table
    depth = run("analyze", specs[1], "--depth", "1", "-f", "json")[1]
    assert [b["name"] for b in json.loads(depth)["blocks"]] == [
        "conv1", "global_avg_pool1", "flatten1", "linear1"]


def test_analyze_set_batch_input(specs: tuple[Path, Path]) -> None:
    out = run("analyze", specs[0], "--set", "width=8", "--batch", "2", "--input", "3x16x16",
              "-f", "json")[1]
    doc = json.loads(out)
    # conv 3 -> 8 on 2 x 3x16x16: MACs 2*16*16*8*27 = 110,592
    assert doc["layers"][0]["macs"] == 110592
    assert doc["input"] == [2, 3, 16, 16]
    assert doc["vars"] == {"width": "8"} and doc["input_given"] is True


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "md"])
def test_output_writes_the_file_atomically(specs: tuple[Path, Path], tmp_path: Path,
                                           fmt: str) -> None:
    target = tmp_path / "out" / f"small.{fmt}"
    code, out, err = run("analyze", specs[0], "-f", fmt, "--output", target)
    assert code == 0, err
    assert out == ""  # nothing on stdout; the file has it all
    text = target.read_text()
    assert "conv1" in text
    if fmt == "json":
        assert json.loads(text)["totals"]["macs"] == 6952
    if fmt == "table":  # the whole name, never cut, and no colour codes
        assert "global_avg_pool1" in text and "\x1b[" not in text
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_unwritable_output_is_one_line_exit_2(specs: tuple[Path, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out, err = run("analyze", specs[0], "--output", blocker / "r.txt")
    assert_one_line_error(code, out, err)
    assert "cannot write" in err and "r.txt" in err


def test_bad_spec_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("kernel: 3", "kernel: 3, groups: 2"))
    code, out, err = run("analyze", bad)
    assert_one_line_error(code, out, err)
    assert "bad.yaml:6" in err  # file and line of the conv


@pytest.mark.parametrize("args", [
    ["analyze", "no_such_model_xyz"],
    ["analyze", "missing.yaml"],
    ["analyze", "{spec}", "--input", "3xtwo"],
    ["analyze", "{spec}", "--sort", "speed"],
    ["analyze", "{spec}", "--policy", "some"],
    ["analyze", "{spec}", "--dtype", "int3"],
    ["analyze", "{spec}", "--set", "nope=1"],
    ["analyze", "{spec}", "--set", "novalue"],
    ["compare", "{spec}"],
    ["report"],
], ids=["unknown-name", "missing-file", "bad-input", "bad-sort", "bad-policy", "bad-dtype",
        "unknown-var", "bad-set", "compare-one", "report-nothing"])
def test_usage_errors_are_one_line_exit_2(specs: tuple[Path, Path], args: list[str]) -> None:
    code, out, err = run(*[a.format(spec=specs[0]) for a in args])
    assert_one_line_error(code, out, err)


def test_typer_usage_error_is_exit_2() -> None:
    assert run("analyze")[0] == 2
    assert run("analyze", "x", "--top", "0")[0] == 2


# --------------------------------------------------------------------------- compare


def test_compare_ratios_by_hand(specs: tuple[Path, Path]) -> None:
    code, out, err = run("compare", *specs, "--policy", "conv+linear", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.compare/1" and doc["baseline"] == "small"
    small, wide = doc["models"]
    # params 108 + 50 = 158 vs 216 + 90 = 306; MACs 6,912 + 40 = 6,952 vs 13,824 + 80 = 13,904
    assert (small["params"], wide["params"]) == (158, 306)
    assert (small["macs"], wide["macs"]) == (6952, 13904)
    assert wide["ratios"]["params"] == 306 / 158
    assert wide["ratios"]["macs"] == 2.0
    # policy conv+linear: FLOPs = 2 x MACs, so the same ratio
    assert (small["flops"], wide["flops"]) == (13904, 27808)
    assert wide["ratios"]["flops"] == 2.0
    # activations 1,024 + 16 + 16 + 40 = 1,096 vs 2,048 + 32 + 32 + 40 = 2,152
    assert wide["ratios"]["activation_bytes"] == 2152 / 1096
    assert small["ratios"] == dict.fromkeys(small["ratios"], 1.0)


def test_compare_table_csv_md(specs: tuple[Path, Path], tmp_path: Path) -> None:
    table = run("compare", *specs)[1]
    assert "small" in table and "wide" in table and "2.00x" in table  # MACs ratio
    rows = list(csv.DictReader(io.StringIO(run("compare", *specs, "-f", "csv")[1])))
    assert rows[1]["macs"] == "13904" and rows[1]["macs_ratio"] == "2"
    md = tmp_path / "c.md"
    assert run("compare", *specs, "-f", "md", "-o", md)[0] == 0
    assert "| `wide` | 1x3x8x8 | 306 (1.94x) | 13,904 (2.00x) |" in md.read_text()


# --------------------------------------------------------------------------- report, list


def test_report_writes_json_md_and_html(specs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "reports"
    code, _, err = run("report", *specs, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "small.html", "small.json",
                                                     "small.md", "wide.html", "wide.json",
                                                     "wide.md"]
    first = (out / "small.json").read_bytes()
    assert json.loads(first)["totals"]["macs"] == 6952
    assert "| `conv1` | conv | 1x4x8x8 | 108 | 6,912 |" in (out / "small.md").read_text()
    assert run("report", specs[0], "--out", out)[0] == 0
    assert (out / "small.json").read_bytes() == first  # same input, same bytes


def test_report_name_clash_is_exit_2(specs: tuple[Path, Path], tmp_path: Path) -> None:
    other = tmp_path / "sub"
    other.mkdir()
    (other / "small.yaml").write_text(SMALL)
    code, out, err = run("report", specs[0], other / "small.yaml", "--out", tmp_path / "r")
    assert_one_line_error(code, out, err)


def test_list_without_totals_names_bundled_specs(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.sources import bundled_specs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, err = run("list", "--no-totals")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["name", "description"]  # no totals columns
    names = [line.split()[0] for line in out.splitlines()[1:] if line[:2].strip()]
    assert names == list(bundled_specs())
    cache = json.loads((tmp_path / "cnncost" / "list-totals.json").read_text())
    assert len(cache["specs"]) == len(set(p.read_bytes() for p in bundled_specs().values()))


def test_list_cache_key_covers_every_module_of_the_package(tmp_path: Path) -> None:
    # The key is found by walking the package, so a new or edited module anywhere in it
    # (a new counting package too) makes `list` count again.
    from cnncost.catalog import code_digest

    (tmp_path / "count").mkdir()
    (tmp_path / "count" / "formulas.py").write_text("A = 1\n")
    first = code_digest(tmp_path)
    assert code_digest(tmp_path) == first
    (tmp_path / "count" / "formulas.py").write_text("A = 2\n")
    edited = code_digest(tmp_path)
    assert edited != first
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "conv.py").write_text("")
    assert code_digest(tmp_path) != edited


def test_help_lists_the_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for command in ("analyze", "compare", "report", "check", "list", "validate"):
        assert command in out


@pytest.mark.parametrize("args", [["--help"], ["analyze", "--help"], ["bench", "--help"]],
                         ids=["help", "analyze-help", "bench-help"])
def test_help_imports_neither_torch_nor_rich(args: list[str]) -> None:
    # --help stays fast: the commands import torch and rich only when they run.
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from cnncost.cli import app; "
            f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'rich', 'cnncost.api') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}  # this tree's cnncost
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# --------------------------------------------------------------------------- golden tables


@pytest.mark.parametrize("depth", [None, 1], ids=["layers", "depth1"])
def test_golden_analyze_table(depth: int | None, update_golden: bool) -> None:
    from cnncost.api import analyze_target
    from cnncost.render.cost import rich_table
    from cnncost.render.terminal import to_text

    table = analyze_target(GOLDEN / "small_resnet.yaml")
    text = to_text(rich_table(table, depth=depth), width=120)
    path = GOLDEN / f"small_resnet{'' if depth is None else f'_depth{depth}'}.txt"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text(), "rendering changed; review, then pytest --update-golden"


def test_check_names_bundled_specs_without_a_report(tmp_path: Path) -> None:
    from cnncost.sources import bundled_specs

    name = next(iter(bundled_specs()))
    assert run("report", name, "--out", tmp_path)[0] == 0
    code, out, err = run("check", tmp_path)
    assert code == 0, out + err
    assert "1 match" in out
    missing = err.split(": ", 1)[1]
    assert f"{name}," not in missing and "have no report" in err


def test_error_text_in_square_brackets_is_printed_as_is(tmp_path: Path) -> None:
    # Rich would swallow "[torchvision]" or "[3, 8]" as markup if the message were not escaped.
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: [3, 3, 3]}\n")
    code, out, err = run("analyze", str(bad))
    assert_one_line_error(code, out, err)
    assert "[3, 3, 3]" in err or "3 values" in err, err
    code, out, err = run("analyze", "json:[x]")
    assert code == 2 and "[x]" in err, err


def test_missing_spec_path_points_at_the_bundled_spec(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # From a folder without specs/, the path form fails but the bundled name works.
    monkeypatch.chdir(tmp_path)
    code, out, err = run("validate", "specs/lenet5.yaml")
    assert_one_line_error(code, out, err)
    assert "`lenet5`" in err, err
    code, out, err = run("validate", "specs/no_such_net.yaml")
    assert_one_line_error(code, out, err)
    assert "bundled" not in err, err


def test_channels_last_input_is_refused_with_the_channels_first_one() -> None:
    # resnet50's input is [3, res, res]: 224x224x3 would be a 224-channel image
    code, out, err = run("analyze", "resnet50", "--input", "224x224x3")
    assert_one_line_error(code, out, err)
    assert "channels-first" in err and "--input 3x224x224" in err

"""The cost review of a change: `check` and `diff` as text, a pull-request comment (md) and
JSON; budgets.yaml; and the ways check's exit code must not be talked out of drift.

The spec is tests/small_spec.py's (conv 3 -> width, 3x3 on 3x8x8, pool, linear -> 10). By
hand at width 4: conv params 3*3*3*4 = 108, MACs 8*8*4*27 = 6,912; linear params 4*10 + 10 =
50, MACs 40; totals params 158, MACs 6,952. At width 5: conv params 135, MACs 8*8*5*27 =
8,640, output 5x8x8 floats = 1,280 B; linear params 5*10 + 10 = 60, MACs 50; totals params
195, MACs 8,690.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clirun import one_line_error, run
from small_spec import small

from cnncost.budgets import UNITS, parse_quantity, unit_of
from cnncost.review import STATUSES

ROOT = Path(__file__).resolve().parents[1]
SPEC = small("name: small")
WIDE = SPEC.replace("width: 4", "width: 5")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """reports/small.json of the spec at width 4 (the spec itself beside the folder)."""
    (tmp_path / "small.yaml").write_text(SPEC)
    assert run("report", tmp_path / "small.yaml", "--out", tmp_path / "reports")[0] == 0
    return tmp_path / "reports"


def widen(folder: Path) -> None:
    (folder.parent / "small.yaml").write_text(WIDE)


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("text,field,value", [
    ("4.2G", "macs", 4_200_000_000),
    ("26M", "params", 26_000_000),
    ("1.5k", "macs", 1_500),
    ("7", "params", 7),
    (26_000_000, "params", 26_000_000),
    ("2_000", "flops", 2_000),
    ("4.2e9", "macs", 4_200_000_000),
    ("300MiB", "peak_memory_bytes", 300 * 2**20),
    ("1.5GiB", "training_memory_bytes.adam", 3 * 2**29),
    ("300MB", "peak_memory_bytes", 300_000_000),
    ("2kB", "activation_bytes", 2_000),
    ("512 KiB", "activation_bytes", 512 * 1024),
    (4096, "param_bytes", 4096),
    ("12.5ms", "latency_ms", Decimal("12.5")),
    ("0.5s", "latency_ms", 500),
], ids=lambda v: str(v))
def test_a_ceiling_as_written(text: Any, field: str, value: Any) -> None:
    assert parse_quantity(text, unit_of(field)) == value


@pytest.mark.parametrize("text,field,why", [
    ("4.2X", "macs", "'X' is not a unit of a count"),
    ("300MiB", "macs", "'MiB' is not a unit of a count"),
    ("300M", "peak_memory_bytes", "'M' is not a unit of a size"),
    ("lots", "macs", "expected a count such as 4.2G"),
    (True, "macs", "expected a count"),
    ([1, 2], "params", "expected a count"),
    ("-5", "params", "expected a count"),
    ("1e999", "macs", "absurdly large"),
    ("1e9999", "macs", "expected a count"),
    ("9e40", "macs", "absurdly large"),
], ids=lambda v: str(v))
def test_a_ceiling_that_is_not_a_number_or_size(text: Any, field: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_quantity(text, unit_of(field))


def test_every_unit_has_a_working_example() -> None:
    for suffix, unit in UNITS.items():
        for example in unit.example.split(" or "):
            assert parse_quantity(example, unit) > 0, (suffix, example)


def test_a_model_over_its_budget_exits_1_naming_field_ceiling_and_excess(folder: Path) -> None:
    (folder / "budgets.yaml").write_text("small:\n  macs: 8k\n  params: 200\n")
    assert run("check", folder)[0] == 0  # 6,952 MACs <= 8,000 and 158 params <= 200
    widen(folder)
    code, out, err = run("check", folder)
    assert code == 1, (out, err)
    # MACs 8,690 > 8,000 by 690 (8.6%); params 195 <= 200 stays within.
    assert "over budget: macs 8.69K over its budget 8k by 690 (+8.6" in out
    assert f"({folder / 'budgets.yaml'}:2)" in out
    assert "params" not in "".join(ln for ln in out.splitlines() if "over budget:" in ln)


def test_a_budget_broken_without_drift_still_exits_1(folder: Path) -> None:
    (folder / "budgets.yaml").write_text("# ceilings\nsmall:\n  peak_memory_bytes: 2KiB\n")
    code, out, err = run("check", folder, "--format", "json")
    doc = json.loads(out)
    # peak memory 2,440 B (the report's) > 2 KiB = 2,048 B by 392 B
    assert code == 1 and doc["status"] == "over_budget", (out, err)
    (model,) = doc["models"]
    assert model["status"] == "over_budget" and model["differences"] == 0
    assert model["budget"] == [{"field": "peak_memory_bytes", "ceiling": 2048,
                                "ceiling_text": "2KiB", "value": 2440, "over": 392,
                                "ratio": 2440 / 2048,
                                "where": f"{folder / 'budgets.yaml'}:3"}]


def test_budgets_from_the_command_line(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "ceilings.yaml").write_text("small: {params: 150}\n")
    code, out, _ = run("check", folder, "--budgets", tmp_path / "ceilings.yaml")
    assert code == 1 and "params 158 over its budget 150 by 8" in out


@pytest.mark.parametrize("text,where,why", [
    ("small:\n  macs: 8k\nlarge:\n  macs: 1G\n", ":3: large:", "no report of a model called"),
    ("small:\n  macs: 8k\n  mac: 1G\n", ":3: small.mac: unknown field",
     "params, buffers, macs"),
    ("small:\n  backward_macs: 1G\n", ":2: small.backward_macs: unknown field", ""),
    ("small:\n  peak_memory_bytes: 300M\n", ":2: small.peak_memory_bytes:",
     "'M' is not a unit of a size"),
    ("small:\n  macs: many\n", ":2: small.macs: expected a count such as 4.2G", ""),
    ("small:\n  macs: yes\n", ":2: small.macs: expected a count", ""),
    ("small: 5\n", ":1: small: expected a mapping of totals fields", ""),
    ("- small\n", ":1: expected a mapping of model names", ""),
    ("small:\n  macs: [1\n", ":3: malformed YAML", ""),
    ("small:\n  macs: 1G\n  macs: 2G\n", ":3: duplicate key 'macs'", ""),
], ids=["model", "field", "train-field", "unit", "text", "bool", "not-mapping", "list",
        "yaml", "duplicate"])
def test_a_malformed_budgets_file_is_one_line_and_writes_nothing(
        folder: Path, text: str, where: str, why: str) -> None:
    (folder / "budgets.yaml").write_text(text)
    widen(folder)
    before = (folder / "small.json").read_bytes()
    out_file = folder.parent / "review.md"
    code, out, err = run("check", folder, "--update", "--format", "md", "--output", out_file)
    one_line_error(code, out, err, f"{folder / 'budgets.yaml'}{where}", why)
    assert out == "" and not out_file.exists()
    assert (folder / "small.json").read_bytes() == before  # --update wrote nothing


# --------------------------------------------------------------------------- check's review


def test_drift_shows_the_totals_first_then_layers_largest_first(folder: Path) -> None:
    widen(folder)
    code, out, _ = run("check", folder)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{folder / 'small.json'}: small (")
    assert lines[1].split() == ["total", "old", "new", "change", "ratio"]
    # params 158 -> 195 (+37, 195/158 = 1.234x); MACs 6,952 -> 8,690 (+1,738, 1.25x)
    assert lines[2].split() == ["params", "158", "195", "+37", "1.234x"]
    assert lines[3].split() == ["macs", "6,952", "8,690", "+1,738", "1.25x"]
    layer_lines = [ln.split() for ln in lines if ln.split()[:1] in (["conv1"], ["linear1"])]
    # conv1 moved by 1,728 MACs, linear1 by 10: conv1's lines come first
    assert layer_lines[0][0] == "conv1" and layer_lines[-1][0] == "linear1"
    assert ["conv1", "macs", "6,912", "8,640", "+25%"] in layer_lines
    assert ["linear1", "params", "50", "60", "+20%"] in layer_lines


def test_the_limit_cuts_layers_never_totals(folder: Path) -> None:
    widen(folder)
    _, whole, _ = run("check", folder)
    _, cut, _ = run("check", folder, "--limit", "1")
    totals = [ln for ln in whole.splitlines() if ln.split()[:1] == ["training_memory_bytes.adam"]]
    assert totals and totals[0] in cut.splitlines()
    layer_lines = [ln for ln in whole.splitlines()
                   if ln.split()[:1] in (["conv1"], ["linear1"], ["global_avg_pool1"],
                                         ["flatten1"])]
    assert len(layer_lines) > 1
    layers = {ln.split()[0] for ln in layer_lines[1:]}
    assert f"... and {len(layer_lines) - 1} more line(s) in {len(layers)} layer(s)" in cut


def test_a_limit_below_1_is_one_line(folder: Path) -> None:
    one_line_error(*run("check", folder, "--limit", "0"), "--limit 0: expected")
    one_line_error(*run("diff", folder, folder, "--limit", "-1"), "--limit -1: expected")


def test_the_json_document(folder: Path) -> None:
    widen(folder)
    code, out, _ = run("check", folder, "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["schema"] == "cnncost.check/1" and doc["exit_code"] == 1
    assert doc["summary"] == {"reports": 1, **dict.fromkeys(STATUSES, 0), "drift": 1}
    (model,) = doc["models"]
    assert model["status"] == "drift" and model["model"] == "small"
    assert model["figures"]["macs"] == {"old": 6952, "new": 8690}
    assert {"field": "params", "old": 158, "new": 195, "change": 37,
            "ratio": 195 / 158} in model["totals"]
    assert model["layers"][0]["name"] == "conv1"
    assert {"field": "macs", "old": 6912, "new": 8640, "change": 1728,
            "ratio": 8640 / 6912} in model["layers"][0]["changes"]


def test_markdown_is_a_pull_request_comment(folder: Path) -> None:
    (folder / "budgets.yaml").write_text("small:\n  macs: 8k\n")
    widen(folder)
    code, out, _ = run("check", folder, "--format", "md")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "<!-- cnncost-review -->"
    assert lines[1] == "### cnncost check: drift in 1 of 1 report(s), 1 over budget"
    assert "| model | status | params | MACs | FLOPs | peak memory | receptive field |" in lines
    row = next(ln for ln in lines if ln.startswith("| **small**"))
    assert "drift, over budget" in row and "158 → 195 (1.234x)" in row
    assert "6.95K → 8.69K (1.25x)" in row
    assert out.count("<details>") == out.count("</details>") == 1
    assert "<summary><b>small</b>: drift, over budget" in out
    assert "| params | 158 | 195 | +37 | 1.234x |" in lines
    # one row per layer: conv1 MACs 6,912 -> 8,640 (+25%), params 108 -> 135, output
    # 1x4x8x8 -> 1x5x8x8, and its FLOPs (2 x MACs) and output bytes (1,024 -> 1,280) moved
    assert ("| conv1 | changed | 6.91K → 8.64K (+25%) | 108 → 135 (+25%) | 1x4x8x8 → 1x5x8x8 "
            "| flops, output_bytes |") in lines


def test_an_added_and_a_removed_layer_are_named(folder: Path) -> None:
    (folder.parent / "small.yaml").write_text(SPEC.replace("  - flatten\n",
                                                           "  - flatten\n  - relu\n"))
    code, out, _ = run("check", folder, "--format", "json")
    assert code == 1
    (model,) = json.loads(out)["models"]
    relu = next(layer for layer in model["layers"] if layer["status"] == "added")
    # relu on the flattened 4 values: no params, no MACs, 4 floats = 16 B
    assert relu["name"] == "relu1"
    assert {c["field"]: c["new"] for c in relu["changes"]} == {
        "macs": 0, "params": 0, "output_shape": [1, 4], "output_bytes": 16}
    text = run("check", folder)[1]
    assert re.search(r"relu1\s+output_bytes\s+-\s+16\s+added", text)


def test_the_readmes_pull_request_comment_is_what_check_prints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # README, "The comment, from a real run": resnet50's report, then width_per_group 64 -> 80
    # in a copy of its spec, the README's budgets.yaml, check --format md --limit 6.
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"<!-- readme:pr-comment:start -->\n(.*)<!-- readme:pr-comment:end -->",
                      readme, re.S)
    budgets = re.search(r"```yaml\n# reports/budgets.yaml\n(.*?)```", readme, re.S)
    assert shown and budgets
    (tmp_path / "specs").mkdir()
    spec = (ROOT / "specs" / "resnet50.yaml").read_text()
    (tmp_path / "specs" / "resnet50.yaml").write_text(spec)
    monkeypatch.chdir(tmp_path)
    assert run("report", "specs/resnet50.yaml", "--out", "reports")[0] == 0
    assert spec.count("width_per_group: 64 ") == 1
    (tmp_path / "specs" / "resnet50.yaml").write_text(
        spec.replace("width_per_group: 64 ", "width_per_group: 80 "))
    (tmp_path / "reports" / "budgets.yaml").write_text(budgets[1])
    code, out, _ = run("check", "reports", "--format", "md", "--limit", "6")
    assert code == 1
    assert out == shown[1]
    # by hand: layer4.0.conv2, 3x3 on 512 -> 640 channels at 7x7 from 14x14 (stride 2):
    # params 3*3*512*512 = 2,359,296 -> 3*3*640*640 = 3,686,400; MACs x 7*7 = 115,605,504 ->
    # 180,633,600; the whole model's params 25,557,032 (torchvision's resnet50) before
    assert "| **resnet50** | drift, over budget | 25.6M → 34.3M (1.341x) |" in out
    assert "| layer4.0.conv2 | changed | 116M → 181M (+56.2%) | 2.36M → 3.69M (+56.2%) |" in out
    assert "| params | 25,557,032 |" in out


# --------------------------------------------------------------------------- escaping

NASTY = "conv\n| x | <img src=x onerror=alert(1)> **b** [l](http://e) `c`\x1b[2J"


def _nasty(folder: Path) -> None:
    doc = json.loads((folder / "small.json").read_text())
    doc["model"] = "<script>alert(1)</script>"
    doc["layers"][0]["name"] = NASTY
    (folder / "small.json").write_text(json.dumps(doc))


def test_markdown_escapes_user_text(folder: Path) -> None:
    _nasty(folder)
    code, out, _ = run("check", folder, "--format", "md")
    assert code == 1
    assert "<script>" not in out and "<img" not in out and "\x1b" not in out
    assert "&lt;script&gt;" in out
    table = [ln for ln in out.splitlines() if ln.startswith("|")]
    # a row's cells are split at pipes that no backslash escapes (GFM: "\\" is one escape)
    widths = {re.sub(r"\\.", "", ln).count("|") for ln in table
              if ln.startswith(("| layer", "| conv"))}
    assert widths == {7}, table  # every row of the layer table keeps its six cells
    row = next(ln for ln in table if ln.startswith("| conv"))
    assert row.startswith(r"| conv\\n\| x \| &lt;img src=x onerror=alert(1)> \*\*b\*\* "
                          r"[l\](http://e) \`c\`\\x1b[2J | removed |")


INJECTING = small('name: "<img src=x onerror=alert(1)>"',
                  'description: "# Heading\\n- item **bold** [link](http://e) ~~gone~~ `c`"')


@pytest.mark.parametrize("command", [["analyze", "-f", "md"], ["compare", "SPEC", "-f", "md"],
                                     ["sweep", "--set", "width=2,4", "-f", "md"],
                                     ["advise", "-f", "md"], ["report", "--out", "OUT"]],
                         ids=["analyze", "compare", "sweep", "advise", "report"])
def test_a_specs_text_cannot_inject_markdown(tmp_path: Path, command: list[str]) -> None:
    # Every Markdown rendering (analyze, report's .md, compare, sweep, advise) shows a spec's
    # name and description as text: no HTML tag, heading, list, emphasis, link or strike.
    spec = tmp_path / "inj.yaml"
    spec.write_text(INJECTING)
    args = [str(spec) if a == "SPEC" else str(tmp_path / "out") if a == "OUT" else a
            for a in command]
    code, out, err = run(args[0], spec, *args[1:])
    assert code == 0, err
    if command[0] == "report":
        out = (tmp_path / "out" / "inj.md").read_text()
    # code blocks and spans show text as written: what is left is where markup could act
    prose = re.sub(r"^(`{3,})\n.*?^\1$", "", out, flags=re.M | re.S)
    prose = re.sub(r"(`+) .*? \1|(`+)[^`].*?\2", "", prose)
    assert "<img" not in prose and "img src=x onerror=alert(1)>" in out
    for markup in (r"(?<!\\)\*\*bold", r"(?<!\\)\]\(http", r"(?<!\\)~~gone", r"(?<!\\)`c`"):
        assert not re.search(markup, prose), (markup, prose)
    assert not re.search(r"^(# Heading|- item)", out, re.M)


@pytest.mark.parametrize("text,shown", [
    ("layer1.0.conv2", "layer1.0.conv2"), ("peak_memory_bytes", "peak_memory_bytes"),
    ("C_in -> C_out", "C_in -> C_out"), ("_x_", r"\_x\_"), ("a*b", "a*b"), ("*a*", r"\*a\*"),
    ("~1/10", "~1/10"), ("~a~", r"\~a\~"), ("a|b", r"a\|b"), ("<b>", "&lt;b>"),
    ("[l](u)", r"[l\](u)"), ("a\nb", r"a\\nb"), ("x" * 100_000 + "_", "x" * 100_000 + "_"),
    ("9" * 50_000 + "!", "9" * 50_000 + "!"), ("*" * 100_000, "\\*" * 100_000),
], ids=lambda v: v if len(v) < 20 else f"{len(v)} characters")
def test_user_text_in_markdown(text: str, shown: str) -> None:
    # a name of 100,000 characters is escaped in one pass (a regular expression that
    # backtracked over the ways to split it would never finish)
    from cnncost.render.formats import md_text

    assert md_text(text) == shown


def test_text_and_json_keep_user_text(folder: Path) -> None:
    _nasty(folder)
    _, out, _ = run("check", folder, "--format", "json")
    names = [layer["name"] for layer in json.loads(out)["models"][0]["layers"]]
    assert NASTY in names  # JSON keeps it exactly (json escapes it)
    _, text, _ = run("check", folder)
    assert "conv\n| x" not in text and "conv\\n| x" in text and "\\x1b[2J" in text


# --------------------------------------------------------------------------- diff


@pytest.fixture
def two(folder: Path) -> tuple[Path, Path]:
    """base/ (width 4) and head/ (width 5) folders of reports of the same name."""
    base = folder
    widen(folder)
    head = folder.parent / "head"
    assert run("report", folder.parent / "small.yaml", "--out", head)[0] == 0
    return base, head


def test_diff_two_folders(two: tuple[Path, Path]) -> None:
    base, head = two
    code, out, _ = run("diff", base, head)
    assert code == 0  # a change on purpose is no failure
    assert out.splitlines()[2].split() == ["params", "158", "195", "+37", "1.234x"]
    assert out.splitlines()[-1] == "1 of 1 report(s) changed"
    code, out, _ = run("diff", base, head, "--format", "json")
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.diff/1" and doc["base"] == str(base)
    assert doc["models"][0]["status"] == "drift"


def test_diff_two_files_and_added_and_missing_reports(two: tuple[Path, Path]) -> None:
    base, head = two
    code, out, _ = run("diff", base / "small.json", head / "small.json", "-f", "json")
    assert code == 0 and json.loads(out)["models"][0]["differences"] > 0
    (head / "small.json").rename(head / "other.json")
    (base / "other.json").write_bytes((head / "other.json").read_bytes())
    (head / "extra.json").write_bytes((base / "small.json").read_bytes())
    code, out, _ = run("diff", base, head, "-f", "json")
    by = {m["path"]: m["status"] for m in json.loads(out)["models"]}
    assert by == {str(head / "extra.json"): "added", str(head / "other.json"): "ok",
                  str(base / "small.json"): "missing"}


def test_diff_applies_the_heads_budgets(two: tuple[Path, Path]) -> None:
    base, head = two
    (head / "budgets.yaml").write_text("small:\n  params: 190\n")
    code, out, _ = run("diff", base, head)
    assert code == 1 and "params 195 over its budget 190 by 5" in out


@pytest.mark.parametrize("case,why", [
    ("missing", "nope: no such folder or report"),
    ("disjoint", "have no report in common"),
    ("file-and-folder", "not one of each"),
])
def test_diff_bad_input_is_one_line(two: tuple[Path, Path], case: str, why: str) -> None:
    base, head = two
    if case == "missing":
        args: tuple[Any, ...] = (base, base.parent / "nope")
    elif case == "disjoint":
        (head / "small.json").rename(head / "other.json")
        args = (base, head)
    else:
        args = (base / "small.json", head)
    out_file = base.parent / "d.md"
    one_line_error(*run("diff", *args, "-f", "md", "-o", out_file), why)
    assert not out_file.exists()


# --------------------------------------------------------------------------- trust in check
# Drift always exits 1: no field left out of the comparison, no duplicate hiding another, no
# tolerance that turns equal figures into drift, no other report or user code deciding.


def _edit(folder: Path, change: Any) -> None:
    doc = json.loads((folder / "small.json").read_text())
    change(doc)
    (folder / "small.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("change,shown", [
    # the report holds conv1 twice (its totals untouched): the recount has one
    (lambda d: d["layers"].insert(1, dict(d["layers"][0])), r"conv1 \(#2\)\s+macs\s+6,912\s+-"),
    (lambda d: d["layers"][0].update(frozen_params=5), r"conv1\s+frozen_params\s+5\s+0"),
    (lambda d: d["uncounted"].update({"aten::foo": 2}), r"uncounted\s+\{\"aten::foo\": 2\}"),
    (lambda d: d["totals"].update(frozen_params=3), r"frozen_params\s+3\s+-"),
], ids=["duplicated-row", "row-frozen-params", "uncounted", "totals-frozen-params"])
def test_every_recorded_figure_is_compared(folder: Path, change: Any, shown: str) -> None:
    _edit(folder, change)
    code, out, err = run("check", folder)
    assert code == 1, (out, err)
    assert re.search(shown, out), out


def test_an_infinite_tolerance_lets_numbers_move_but_nothing_else(folder: Path) -> None:
    assert run("check", folder, "--tolerance", "inf")[0] == 0  # zero fields are no drift
    (folder.parent / "small.yaml").write_text(SPEC.replace("bias: false", "bias: true"))
    assert run("check", folder, "--tolerance", "inf")[0] == 0  # params 108 -> 112 only
    widen(folder)  # output shapes move: 1x4x8x8 -> 1x5x8x8
    code, out, _ = run("check", folder, "--tolerance", "inf")
    assert code == 1 and re.search(r"conv1\s+output_shape\s+1x4x8x8\s+1x5x8x8", out)
    for bad in ("nan", "-1"):
        one_line_error(*run("check", folder, "--tolerance", bad), f"--tolerance {bad}")


def test_a_drifted_report_beside_a_broken_one_exits_1(folder: Path) -> None:
    (folder / "broken.json").write_text('{"schema": ')
    widen(folder)
    code, out, err = run("check", folder)
    assert code == 1, (out, err)
    assert "broken.json:1: not valid JSON" in err and "small.json: small" in out
    assert "drift in 1 of 2 report(s); 1 could not be recomputed" in out
    (folder.parent / "small.yaml").write_text(SPEC)
    code, _, err = run("check", folder)  # no drift: the broken report decides, exit 2
    assert code == 2 and err.count("\n") == 1


MODULE = """\
import sys
from torch import nn


class Exits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        raise SystemExit(0)


def build():
    return Exits()
"""


@pytest.fixture
def exiting(tmp_path: Path) -> str:
    (tmp_path / "exits.py").write_text(MODULE)
    return f"{tmp_path / 'exits.py'}:build"


@pytest.mark.parametrize("command", [["analyze"], ["report", "--out", "OUT"], ["explain"],
                                     ["compare", "textbook/conv5x5"], ["bench"],
                                     ["analyze", "--mode", "train"]])
def test_a_forward_raising_systemexit_0_is_an_error_naming_the_model(
        exiting: str, tmp_path: Path, command: list[str]) -> None:
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    code, out, err = run(args[0], exiting, *args[1:], "--input", "3x8x8")
    one_line_error(code, out, err, "the model failed on an input of shape 1x3x8x8",
                   "(Exits): SystemExit: 0")
    assert err.startswith(("error: build:", "error: Exits:")), err  # the factory, or class
    assert not (tmp_path / "out").exists()


def test_an_allowed_factorys_forward_exiting_0_does_not_hide_drift(
        folder: Path, exiting: str) -> None:
    doc = json.loads((folder / "small.json").read_text())
    doc.update(source=exiting, input_given=True)
    (folder / "exits.json").write_text(json.dumps(doc))
    widen(folder)
    code, out, err = run("check", folder, "--allow-factory", exiting)
    assert code == 1, (out, err)
    assert "small.json: small" in out and "SystemExit: 0" in err

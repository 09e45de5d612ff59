"""ONNX files at the command line: analyze, compare, explain, report and check, sweep, plot,
bench on ONNX Runtime, and the commands that refuse them in one line.

The model is tests/onnx_graphs.small_cnn with a dynamic batch and sizes (N x 3 x H x W):
conv 3x3 (3 -> 4, pad 1, bias), batch norm, ReLU, global average pool, flatten, linear 4 ->
10. Its MACs at N x 3 x H x W: conv N x 4 x H x W x 3 x 3 x 3 = 108 N H W, linear 40 N.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnx")
from clirun import one_line_error, run
from fresh import run_cli
from onnx import helper
from onnx_graphs import save, small_cnn, x_input


@pytest.fixture
def cnn(tmp_path: Path) -> Path:
    return small_cnn(tmp_path, ("N", 3, "H", "W"))


def macs(n: int, h: int, w: int) -> int:
    return 108 * n * h * w + 40 * n


def test_analyze_json_and_table(cnn: Path) -> None:
    code, out, err = run("analyze", cnn, "--input", "3x8x8", "--batch", "2", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "cnncost.report/1" and doc["source"] == str(cnn)
    assert doc["input"] == [2, 3, 8, 8] and doc["input_given"] is True
    assert doc["totals"]["macs"] == macs(2, 8, 8)
    assert [r["name"] for r in doc["layers"]][:2] == ["conv.Conv", "bn.BatchNormalization"]
    code, out, err = run("analyze", cnn, "--input", "3x8x8", "--depth", "1")
    assert code == 0, err
    assert "ONNX: one row per node" in out and "fc " in out


def test_needs_input_says_so(cnn: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    code, out, err = run("analyze", cnn, "--output", target)
    one_line_error(code, out, err, "input 'x' has a symbolic dim 'H' (dim 2); give --input")
    assert not target.exists()


@pytest.mark.parametrize(("data", "match"), [
    (b"not onnx at all", "not an ONNX model"),
    (b"\x08\x07\x12\x04", "not an ONNX model, or a truncated one"),
])
def test_bad_files_one_line_nothing_written(tmp_path: Path, data: bytes, match: str) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    for command in (["analyze", bad, "-o", tmp_path / "a.json", "-f", "json"],
                    ["report", bad, "--out", tmp_path / "reports"],
                    ["compare", bad, bad],
                    ["sweep", bad, "--batch", "1,2"]):
        code, out, err = run(*command)
        one_line_error(code, out, err, match)
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "reports").exists()


@pytest.mark.parametrize(("args", "match"), [
    (["advise"], "advise is not for ONNX files"),
    (["analyze", "--set", "width=2"], "an ONNX file has none"),
    (["analyze", "--engine", "torch"], "--engine torch counts specs and modules"),
    (["analyze", "--mode", "train"], "--mode train is not for ONNX files"),
    (["bench", "--runtime", "torch"], "an ONNX file runs on onnxruntime only"),
    (["export", "--onnx", "x.onnx"], "is an ONNX file already"),
])
def test_refused_in_one_line(cnn: Path, args: list[str], match: str) -> None:
    code, out, err = run(args[0], cnn, *args[1:], "--input", "3x8x8") if args[0] in (
        "analyze",) else run(args[0], cnn, *args[1:])
    one_line_error(code, out, err, match)


def test_compare_and_explain(cnn: Path, tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    fixed = small_cnn(tmp_path / "f", (1, 3, 8, 8))
    code, out, err = run("compare", fixed, cnn, "--input", "3x16x16")
    one_line_error(code, out, err, "is 1x3x8x8, its dim 2 fixed at 8")
    code, out, err = run("compare", fixed, cnn, "--input", "3x8x8", "-f", "json")
    assert code == 0, err
    assert [m["macs"] for m in json.loads(out)["models"]] == [macs(1, 8, 8)] * 2
    code, out, err = run("explain", cnn, "conv.Conv", "--input", "3x8x8")
    assert code == 0, err
    assert f"(8x8x4) x (3x3x3) = {4 * 8 * 8 * 27} MACs" in out


def test_report_and_check(cnn: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    code, out, err = run("report", cnn, "--input", "3x8x8", "--batch", "4", "--out", folder)
    assert code == 0, err
    assert json.loads((folder / "m.json").read_text())["totals"]["macs"] == macs(4, 8, 8)
    code, out, err = run("check", folder)
    assert code == 0, out + err
    relu = helper.make_node("Relu", ["x"], ["y"])
    save(cnn.parent, [relu], [x_input("N", 3, "H", "W")], ["y"])  # the file changed
    code, out, err = run("check", folder)
    assert code == 1, out + err
    assert "conv.Conv" in out


def test_sweep_batch_and_named_dims(cnn: Path) -> None:
    code, out, err = run("sweep", cnn, "--set", "H=8,16", "--set", "W=8,16", "--zip", "H,W",
                         "--batch", "1,2", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    got = [(p["vars"]["H"], p["vars"]["batch"], p["macs"]) for p in doc["points"]]
    assert got == [(8, 1, macs(1, 8, 8)), (8, 2, macs(2, 8, 8)), (16, 1, macs(1, 16, 16)),
                   (16, 2, macs(2, 16, 16))]
    code, out, err = run("sweep", cnn, "--set", "res=8,16")
    one_line_error(code, out, err, "has no symbolic input dim 'res'; its inputs' symbolic "
                                   "dims: H, W")
    code, out, err = run("sweep", cnn, "--batch", "1,2")
    one_line_error(code, out, err, "give --input")


@pytest.mark.slow  # fresh interpreters
def test_counting_a_file_imports_no_torch(cnn: Path, tmp_path: Path) -> None:
    code, err, imported = run_cli(["analyze", str(cnn), "--input", "3x8x8"], tmp_path, "torch")
    assert code == 0, err
    assert not imported


@pytest.mark.slow  # measures on ONNX Runtime
def test_bench_on_onnxruntime(cnn: Path) -> None:
    pytest.importorskip("onnxruntime")
    code, out, err = run("bench", cnn, "--input", "3x8x8", "--batch", "1,2", "--max-time",
                         "0.05", "--min-samples", "3", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["runtime"], r["batch"], r["macs"]) for r in doc["runs"]] == [
        ("onnxruntime", 1, macs(1, 8, 8)), ("onnxruntime", 2, macs(2, 8, 8))]
    assert doc["onnxruntime"] and all(r["latency_ms"] > 0 for r in doc["runs"])


@pytest.mark.slow  # fresh interpreters
def test_plot_layers_and_roofline_refused(cnn: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    picture = tmp_path / "layers.svg"
    code, out, err = run("plot", cnn, "--input", "3x8x8", "--output", picture)
    assert code == 0, err
    assert picture.read_text().lstrip().startswith("<?xml")
    code, out, err = run("plot", cnn, "--kind", "roofline", "--output", tmp_path / "r.png")
    one_line_error(code, out, err, "--kind roofline times each layer with torch")
    assert not (tmp_path / "r.png").exists()


@pytest.mark.slow  # exports and measures on both runtimes
def test_bench_a_spec_and_a_module_on_both_runtimes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    fast = ("--max-time", "0.05", "--min-samples", "3", "--threads", "1", "-f", "json")
    code, out, err = run("bench", "lenet5", "--runtime", "torch,onnxruntime", *fast)
    assert code == 0, err
    doc = json.loads(out)
    runs = [(r["runtime"], r["batch"]) for r in doc["runs"]]
    assert runs == [("torch", 1), ("onnxruntime", 1)]
    assert doc["runs"][0]["macs"] == doc["runs"][1]["macs"] > 0  # the same count
    assert any("onnxruntime takes" in n for n in doc["notes"])
    factory = tmp_path / "net.py"
    factory.write_text("import torch\n\ndef build():\n"
                       "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), "
                       "torch.nn.ReLU())\n")
    code, out, err = run("bench", f"{factory}:build", "--runtime", "onnxruntime",
                         "--input", "3x16x16", *fast)
    assert code == 0, err
    run_ = json.loads(out)["runs"][0]
    assert run_["runtime"] == "onnxruntime"
    assert run_["macs"] == 4 * 14 * 14 * 3 * 3 * 3  # C_out x H x W x C_in x K x K

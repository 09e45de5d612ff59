"""`cnncost predict` and `cnncost calibrate` on the command line: the figures a hand-made
calibration gives, and every kind of bad input answered in one line with exit code 2.

The small spec (tests/small_spec.py) by hand, at float32: conv 3 -> 4, 3x3, pad 1, no bias,
on 3x8x8: MACs 8*8*4*27 = 6,912, bytes in 3*64*4 = 768, out 4*64*4 = 1,024, weights
108*4 = 432; global_avg_pool: in 1,024, out 16; flatten: in 16, out 16; linear 4 -> 10:
MACs 40, in 16, out 40, weights 50*4 = 200.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from calibrations import hand_calibration
from fresh import run_cli
from small_spec import small
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.predict.calibration import calibration_path, save, this_machine

ROOT = Path(__file__).resolve().parents[1]

A, B, C = 3e-6, 1e-10, 1e-9  # per call, per MAC, per byte
# each layer's a + b * MACs + c * bytes, by hand from the docstring's figures
LAYERS_S = [A + B * 6912 + C * (768 + 1024 + 432), A + C * (1024 + 16), A + C * (16 + 16),
            A + B * 40 + C * (16 + 40 + 200)]
OVERHEAD_S = 2e-5


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return tmp_path


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(small("name: small"))
    return path


def _calibrate_by_hand(dtype: str = "float32", threads: int | None = 1) -> Path:
    """A hand calibration of this machine at ``threads`` (None: torch's default)."""
    key, _ = this_machine("cpu", dtype, threads)
    return save(hand_calibration(key, [A, B, C], overhead_s=OVERHEAD_S, dtype=dtype),
                calibration_path(key))


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_predict_json_is_the_sum_of_its_layers_and_the_call(home: Path, spec: Path) -> None:
    _calibrate_by_hand()
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["schema"] == "cnncost.predict/1"
    assert [lay["latency_ms"] for lay in doc["layers"]] == pytest.approx(
        [t * 1e3 for t in LAYERS_S])
    assert doc["totals"]["latency_ms"] == pytest.approx((sum(LAYERS_S) + OVERHEAD_S) * 1e3)
    assert doc["totals"]["uncertainty"] == pytest.approx(0.1)
    assert doc["calibration"]["threads"] == 1


@pytest.mark.parametrize("fmt", ["table", "csv", "md", "html"])
def test_predict_formats_name_every_layer(home: Path, spec: Path, fmt: str) -> None:
    _calibrate_by_hand()
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1", "-f", fmt)
    assert r.exit_code == 0, r.output
    for name in ("conv1", "global_avg_pool1", "flatten1", "linear1"):
        assert name in r.output


def test_predict_top_keeps_the_slowest(home: Path, spec: Path) -> None:
    _calibrate_by_hand()
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1", "-f", "csv",
             "--top", "1")
    assert r.exit_code == 0, r.output
    rows = r.output.strip().splitlines()
    assert len(rows) == 2 and rows[1].startswith("conv1,")  # the conv is the slowest


def _one_line_error(r, *words: str) -> None:
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for w in words:
        assert w in lines[0], lines[0]


def test_no_calibration_says_how_to_make_one(home: Path, spec: Path) -> None:
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1")
    _one_line_error(r, "no calibration", "cnncost calibrate --device cpu --dtype float32 "
                    "--threads 1")


def test_threads_no_calibration_here_could_have_are_refused(home: Path, spec: Path) -> None:
    # more threads than this process may run on: calibrate refuses them, so predict does not
    # send the user there (it said `cnncost calibrate ... --threads 65536`)
    from cnncost.measure.machine import usable_cpus

    cpus = usable_cpus()
    r = _run("predict", str(spec), "--device", "cpu", "--threads", str(cpus + 1))
    _one_line_error(r, f"--threads {cpus + 1}: expected 1 to {cpus}")


def test_a_dtype_not_calibrated_is_one_line(home: Path, spec: Path) -> None:
    _calibrate_by_hand()
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1", "--dtype", "float16")
    _one_line_error(r, "no calibration", "--dtype float16", "calibrated here: cpu-float32-t1")


@pytest.mark.parametrize("damage", ["cut", "foreign", "hostile tree"])
def test_a_corrupt_or_foreign_cache_is_refused_by_name(home: Path, spec: Path,
                                                       damage: str) -> None:
    path = _calibrate_by_hand()
    doc = json.loads(path.read_text())
    if damage == "cut":
        path.write_text(path.read_text()[:200])
    elif damage == "foreign":
        doc["key"] = doc["key"].replace("threads=1", "threads=64")
        path.write_text(json.dumps(doc))
    else:  # a node pointing back at the root: evaluating it would never end
        doc["classes"]["conv"]["method"] = "trees"
        doc["classes"]["conv"]["trees"] = {"init": 0.0, "trees": [
            [[0, -2], [1.0, -2.0], [0, -1], [1, -1], [0.0, 0.5]]]}
        path.write_text(json.dumps(doc))
    r = _run("predict", str(spec), "--device", "cpu", "--threads", "1")
    _one_line_error(r, str(path))


def test_another_machines_calibration_predicts_for_it(home: Path, spec: Path,
                                                      tmp_path: Path) -> None:
    key = "cpu:Their CPU|float32|threads=4|torch=9.9"
    path = save(hand_calibration(key, [A, B, C], overhead_s=OVERHEAD_S), tmp_path / "t.json")
    r = _run("predict", str(spec), "--calibration", str(path), "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["calibration"]["device_name"] == "Their CPU"
    assert doc["totals"]["latency_ms"] == pytest.approx((sum(LAYERS_S) + OVERHEAD_S) * 1e3)


def test_bad_device_and_budget_are_usage_errors(home: Path, spec: Path) -> None:
    _one_line_error(_run("predict", str(spec), "--device", "tpu"), "--device 'tpu'")
    _one_line_error(_run("calibrate", "--max-time", "1"), "--max-time 1")


def test_a_spec_is_predicted_without_importing_torch(home: Path, spec: Path) -> None:
    _calibrate_by_hand()
    rc, err, imported = run_cli(["predict", str(spec), "--device", "cpu", "--threads", "1"],
                                home, "torch")
    assert rc == 0, err
    assert not imported


@pytest.mark.slow  # bench measures the model
def test_bench_predict_puts_the_prediction_beside_the_measurement(home: Path,
                                                                  spec: Path) -> None:
    pytest.importorskip("torch")
    _calibrate_by_hand()
    r = _run("bench", str(spec), "--device", "cpu", "--threads", "1", "--predict",
             "--max-time", "0.05", "--min-samples", "1", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    (run,) = doc["runs"]
    assert run["predicted"]["latency_ms"] == pytest.approx((sum(LAYERS_S) + OVERHEAD_S) * 1e3)
    assert run["predicted"]["ratio"] == pytest.approx(run["predicted"]["latency_ms"]
                                                      / run["latency_ms"])
    assert [lay["predicted_ms"] for lay in run["layers"]] == pytest.approx(
        [t * 1e3 for t in LAYERS_S])
    assert all(lay["measured_s"] is not None for lay in run["layers"])  # --per-layer implied
    assert doc["calibration"]["threads"] == 1


@pytest.mark.slow  # bench measures the model
def test_bench_predict_page_charts_every_layer(home: Path, spec: Path) -> None:
    pytest.importorskip("torch")
    _calibrate_by_hand()
    r = _run("bench", str(spec), "--device", "cpu", "--threads", "1", "--predict",
             "--max-time", "0.05", "--min-samples", "1", "-f", "html")
    assert r.exit_code == 0, r.output
    page = r.output[r.output.index("<!DOCTYPE html>"):]
    assert page.count("<circle") == 4 and "predicted vs measured per layer" in page


def test_bench_predict_without_a_calibration_stops_before_measuring(home: Path,
                                                                    spec: Path) -> None:
    r = _run("bench", str(spec), "--device", "cpu", "--threads", "1", "--predict")
    _one_line_error(r, "no calibration", "cnncost calibrate")


def test_compare_latency_is_each_models_prediction(home: Path, spec: Path,
                                                   tmp_path: Path) -> None:
    _calibrate_by_hand(threads=None)
    wide = tmp_path / "wide.yaml"  # width 8: conv MACs 8*8*8*27 = 13,824, out 2,048 B,
    wide.write_text(small("name: wide").replace("width: 4", "width: 8"))  # weights 864 B
    wide_s = [A + B * 13824 + C * (768 + 2048 + 864), A + C * (2048 + 32), A + C * (32 + 32),
              A + B * 80 + C * (32 + 40 + 360)]  # linear 8 -> 10: 90 params
    r = _run("compare", str(spec), str(wide), "--latency", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [m["predicted_ms"] for m in doc["models"]] == pytest.approx(
        [(sum(LAYERS_S) + OVERHEAD_S) * 1e3, (sum(wide_s) + OVERHEAD_S) * 1e3])
    assert "predicted_ms" in [c["key"] for c in doc["columns"]]


def test_sweep_latency_column_and_exponent(home: Path, spec: Path) -> None:
    _calibrate_by_hand(threads=None)
    r = _run("sweep", str(spec), "--set", "width=4,8", "--latency", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    first, second = (p["latency_ms"] for p in doc["points"])
    assert first == pytest.approx((sum(LAYERS_S) + OVERHEAD_S) * 1e3)
    (fit,) = [e for e in doc["exponents"] if e["metric"] == "latency_ms"]
    # two points: the slope of ln(latency) against ln(width)
    assert fit["exponent"] == pytest.approx(math.log(second / first) / math.log(2), abs=1e-6)


@pytest.mark.parametrize("command", [["compare", "{spec}", "{spec}", "--latency"],
                                     ["sweep", "{spec}", "--set", "width=4,8", "--latency"]])
def test_latency_without_a_calibration_is_one_line(home: Path, spec: Path,
                                                   command: list[str]) -> None:
    r = _run(*[w.format(spec=spec) for w in command])
    _one_line_error(r, "no calibration", "cnncost calibrate")


def test_advise_latency_is_the_prediction_of_each_rewritten_spec(home: Path,
                                                                 tmp_path: Path) -> None:
    from cnncost.count.analytic import count_spec
    from cnncost.predict.calibration import find
    from cnncost.predict.model import predict_table
    from cnncost.spec import parse_spec

    _calibrate_by_hand(threads=None)
    r = _run("advise", "alexnet", "--latency", "-f", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["findings"]
    cal = find()
    original = predict_table(count_spec(parse_spec((ROOT / "specs/alexnet.yaml").read_text(),
                                                   "alexnet.yaml"), 1, "float32"), cal)
    first = doc["findings"][0]
    emitted = tmp_path / "emit"
    assert _run("advise", "alexnet", "--emit", str(emitted), "-f", "json").exit_code == 0
    rewritten = (emitted / first["spec_file"]).read_text()
    after = predict_table(count_spec(parse_spec(rewritten, "x.yaml"), 1, "float32"), cal)
    assert first["latency_ms"]["before"] == pytest.approx(original.latency_ms)
    assert first["latency_ms"]["after"] == pytest.approx(after.latency_ms)
    plain = json.loads(_run("advise", "alexnet", "-f", "json").output)
    assert "latency_ms" not in plain["findings"][0]  # without --latency: the same document


def test_calibrate_budget_default_is_the_calibrators() -> None:
    # the CLI cannot import the calibrator (torch) to read its default: the two must agree
    import inspect

    from cnncost.cli.predict import calibrate as command
    from cnncost.predict.calibrate import DEFAULT_MAX_TIME

    assert inspect.signature(command).parameters["max_time"].default == DEFAULT_MAX_TIME

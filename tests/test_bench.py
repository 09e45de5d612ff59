"""cnncost.measure (bench, timing, memory, roofline) and its renderings: structure and sanity of
measured runs, never a wall-clock threshold."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import cnncost
from cnncost.cli import app
from cnncost.errors import UsageError
from cnncost.measure import bench as bench_mod
from cnncost.measure import memory as mem_mod
from cnncost.measure import roofline as roof_mod
from cnncost.measure.bench import BenchOptions, bench
from cnncost.measure.memory import InsufficientMemoryError, check_memory
from cnncost.measure.roofline import Bound, Roofline, bytes_moved, cache_path, get_roofline
from cnncost.measure.timing import Budget, quartiles, summarize, time_fn
from cnncost.table import CostRow

runner = CliRunner()
FAST = Budget(min_samples=3, min_time=0.0, max_time=0.05, warmup_time=0.0)
CPU = torch.device("cpu")

TINY_SPEC = """\
name: tiny_bench
input: [3, 16, 16]
layers:
  - conv: {out: 8, kernel: 3, padding: 1, bias: false}
  - bn
  - relu
  - residual:
      - conv: {out: 8, kernel: 3, padding: 1, groups: 8, bias: false}
      - relu
  - global_avg_pool
  - flatten
  - linear: {out: 4}
"""


@pytest.fixture(scope="session")
def quick_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A roofline cache file holding one quick (tiny) CPU float32 calibration."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        get_roofline(CPU, torch.float32, 1, quick=True)
        return cache_path().read_text()


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_cache: str) -> Path:
    """Every test gets its own XDG cache, seeded with the quick calibration."""
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    cache_path().parent.mkdir(parents=True)
    cache_path().write_text(quick_cache)
    return home


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def opts(**kw: object) -> BenchOptions:
    """One CPU thread (steady on a shared machine) and a tiny timing budget."""
    return replace(BenchOptions(device="cpu", threads=1, budget=FAST), **kw)


def make_roof(peak: float, bandwidth: float) -> Roofline:
    return Roofline("k", "cpu", "test", "float32", 1, peak, bandwidth, 0, 0, "", "")


# --------------------------------------------------------------------------- statistics


def test_quartiles_by_hand() -> None:
    # Linear interpolation on 1..5: Q1 at rank 1 + 0.25*4 = 2 -> 2, median 3, Q3 -> 4.
    assert quartiles([5.0, 1.0, 3.0, 2.0, 4.0]) == (2.0, 3.0, 4.0)
    t = summarize([1.0, 2.0, 3.0, 4.0, 5.0], number=2, warmup=3)
    assert (t.median_s, t.iqr_s, t.mean_s, t.min_s) == (3.0, 2.0, 3.0, 1.0)
    assert t.rel_iqr == pytest.approx(2 / 3)
    assert not t.stable
    assert quartiles([7.0]) == (7.0, 7.0, 7.0)


def test_budget_stopping_rule() -> None:
    b = Budget(min_samples=5, min_time=1.0, max_time=10.0)
    assert not b.done(4, 2.0, 0.0)          # too few samples
    assert not b.done(5, 0.5, 0.0)          # too little time
    assert b.done(5, 1.0, 0.01)             # enough of both, and stable (1% <= 5%)
    assert not b.done(5, 1.0, 0.5)          # unstable: keep going ...
    assert b.done(5, 10.0, 0.5)             # ... until max_time
    assert not b.done(2, 99.0, 0.5)         # but never fewer than 3 samples
    with pytest.raises(UsageError):
        Budget(min_samples=0)


def test_time_fn_sanity() -> None:
    x = torch.randn(64, 64)
    t = time_fn(lambda: x @ x, CPU, FAST)
    assert len(t.samples_s) >= 3 and t.number >= 1 and t.warmup >= 2
    assert all(s > 0 for s in t.samples_s)
    assert t.min_s <= t.q1_s <= t.median_s <= t.q3_s
    assert t.iqr_s >= 0
    assert len(t.cpu_samples_s) == len(t.samples_s)  # process CPU time, CPU device only
    assert t.cpu_median_s is not None and t.cpu_median_s >= 0


# --------------------------------------------------------------------------- the roofline


def test_roofline_bound_and_prediction_by_hand() -> None:
    roof = make_roof(peak=1e9, bandwidth=1e8)  # ridge = 1e9 / 1e8 = 10 FLOP/byte
    assert roof.ridge == 10
    # 1e6 FLOPs / 1e9 = 1 ms of compute; 1e6 bytes / 1e8 = 10 ms of traffic -> memory-bound.
    assert roof.predict(1e6, 1e6) == pytest.approx(0.01)
    assert roof.bound(1e6, 1e6) is Bound.MEMORY
    # 1e8 FLOPs = 100 ms vs 1e6 bytes = 10 ms -> compute-bound.
    assert roof.predict(1e8, 1e6) == pytest.approx(0.1)
    assert roof.bound(1e8, 1e6) is Bound.COMPUTE
    assert roof.bound(5, 0) is Bound.COMPUTE  # nothing moved: no division by zero


def test_bytes_moved_by_hand() -> None:
    # conv 3 -> 16, 3x3, on 1x3x8x8 (padding 1): input 192 elements, weights 16*3*9 = 432,
    # output 16*8*8 = 1024 elements = 4096 bytes at float32.
    row = CostRow("c", "conv", ((1, 3, 8, 8),), (1, 16, 8, 8), params=432, output_bytes=4096)
    assert bytes_moved(row, 4) == (192 + 432) * 4 + 4096


def test_layer_rooflines_match_counted_flops_and_bytes() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    table = cnncost.analyze(model, input=(3, 16, 16))
    roof = make_roof(peak=2e9, bandwidth=1e9)
    conv, relu = roof_mod.layer_rooflines(table, roof)
    # conv: MACs = 8*16*16*3*9 = 55296; FLOPs = 2*MACs + bias adds 8*16*16 = 112640.
    # bytes = input 3*16*16*4 = 3072 + weights (8*3*9 + 8)*4 = 896 + output 8*16*16*4 = 8192.
    assert (conv.macs, conv.flops, conv.bytes) == (55296, 112640, 3072 + 896 + 8192)
    # relu: 1 FLOP per element (2048), bytes = in 8192 + out 8192.
    assert relu.bytes == 16384
    for lr in (conv, relu):
        assert lr.intensity == pytest.approx(lr.flops / lr.bytes)
        assert lr.predicted_s == max(lr.flops / 2e9, lr.bytes / 1e9)
        assert lr.bound is (Bound.COMPUTE if lr.intensity >= roof.ridge else Bound.MEMORY)
    assert relu.bound is Bound.MEMORY and conv.bound is Bound.COMPUTE  # 9.3 vs ridge 2


# --------------------------------------------------------------------------- the cache


def test_cache_honours_xdg_and_is_reused(cache_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = cache_path()
    assert path == cache_home / "cnncost" / "roofline.json"
    doc = json.loads(path.read_text())
    key = roof_mod.cache_key(CPU, torch.float32, 1)
    assert doc["schema"] == "cnncost.roofline/1" and key in doc["entries"]
    first = doc["entries"][key]
    assert first["peak_flops"] > 0 and first["bandwidth"] > 0

    def fail(*args: object, **kwargs: object) -> Roofline:
        raise AssertionError("calibrated again although the cache holds this key")

    monkeypatch.setattr(roof_mod, "calibrate", fail)
    again = get_roofline(CPU, torch.float32, 1)
    assert again.from_cache and again.peak_flops == first["peak_flops"]

    fresh = make_roof(peak=123.0, bandwidth=4.0)
    monkeypatch.setattr(roof_mod, "calibrate", lambda *a, **k: fresh)
    got = get_roofline(CPU, torch.float32, 1, recalibrate=True)
    assert got is fresh and not got.from_cache
    assert json.loads(path.read_text())["entries"][key]["peak_flops"] == 123.0


def test_corrupt_cache_is_measured_again(cache_home: Path) -> None:
    cache_path().write_text("{not json")
    roof = get_roofline(CPU, torch.float32, 1, quick=True)
    assert not roof.from_cache
    assert json.loads(cache_path().read_text())["entries"]


# --------------------------------------------------------------------------- whole runs


def test_bench_module_structure() -> None:
    model = tiny_net()
    report = bench(model, (1, 2), opts(per_layer=True),
                   input=(3, 12, 12))
    assert [r.batch for r in report.runs] == [1, 2]
    assert report.roofline.from_cache
    for run in report.runs:
        table = cnncost.analyze(tiny_net(), input=(3, 12, 12), batch=run.batch)
        assert [lr.roof.name for lr in run.layers] == [r.name for r in table.layers]
        assert (run.macs, run.flops) == (table.totals.macs, table.totals.flops)
        t = run.timing
        assert t.median_s > 0 and t.iqr_s >= 0 and len(t.samples_s) >= 3
        assert run.images_per_s == run.batch / t.median_s
        assert run.achieved_flops == run.flops / t.median_s
        assert run.predicted_s == pytest.approx(sum(lr.roof.predicted_s for lr in run.layers))
        assert run.compute_only_s == run.flops / report.roofline.peak_flops
        assert run.predicted_s >= run.compute_only_s  # the max of two roofs is never below one
        for lr in run.layers:
            assert lr.measured_s is not None and lr.measured_s > 0
            assert lr.efficiency == lr.roof.predicted_s / lr.measured_s
        assert run.layer_sum_s == pytest.approx(sum(lr.measured_s or 0 for lr in run.layers))
        assert run.layer_whole is not None and run.layer_whole.median_s > 0
        assert run.layer_cpu_sum_s == pytest.approx(
            sum(lr.measured_cpu_s or 0 for lr in run.layers))
        assert run.memory.required_bytes > 0


def test_bench_spec_per_layer_times_every_node(write_spec) -> None:
    path = write_spec(TINY_SPEC)
    report = bench(str(path), (1,), opts(per_layer=True))
    run = report.runs[0]
    names = [lr.roof.name for lr in run.layers]
    assert "add1" in names and names[0] == "conv1"  # graph ops get rows and times too
    assert all(lr.measured_s is not None and lr.measured_s > 0 for lr in run.layers)
    assert report.model == "tiny_bench"
    doc = json.loads(report.to_json())
    assert doc["schema"] == "cnncost.bench/1"
    assert doc["runs"][0]["layers"][0]["bound"] in ("compute", "memory")


def test_bench_bfloat16_counts_bytes_at_dtype() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False))
    report = bench(model, (1,), opts(dtype="bfloat16", quick_roofline=True),
                   input=(3, 4, 4))
    assert report.dtype == "bfloat16"
    # 2 bytes/element: input 3*4*4 = 48, weights 4*3 = 12, output 4*4*4 = 64 -> 124 * 2.
    assert report.runs[0].layers[0].roof.bytes == 124 * 2


def test_bench_channels_last() -> None:
    report = bench(tiny_net(), (1,), opts(channels_last=True), input=(3, 8, 8))
    assert report.channels_last and report.runs[0].timing.median_s > 0


def test_module_pass_exclusive_times_with_a_fake_clock() -> None:
    class Ticks:
        def __init__(self) -> None:
            self.now = 0

        def mark(self) -> int:
            self.now += 1
            return self.now

        def seconds(self, start: int, end: int) -> float:
            return float(end - start)

        def cpu_seconds(self, start: int, end: int) -> float:
            return 10.0 * (end - start)

    model = nn.Sequential(nn.ReLU(), nn.Sequential(nn.ReLU()))
    wall, cpu = bench_mod._module_pass(model, torch.ones(2), Ticks(), CPU)  # type: ignore[arg-type]
    # Marks: root 1, "0" 2..3, "1" 4, "1.0" 5..6, "1" ..7, root ..8.
    # Inclusive: root 7, "0" 1, "1" 3, "1.0" 1; exclusive: root 7-1-3 = 3, "1" 3-1 = 2.
    assert wall == {"(model)": 3.0, "0": 1.0, "1": 2.0, "1.0": 1.0}
    assert cpu == {"(model)": 30.0, "0": 10.0, "1": 20.0, "1.0": 10.0}  # same arithmetic x10


# --------------------------------------------------------------------------- memory guard


def test_memory_guard_refuses_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.count.limits import Free

    table = cnncost.analyze(tiny_net(), input=(3, 8, 8))
    t = table.totals
    # the counter's peak (weights, input, live activations) + the runtime's state + the
    # allocator's slack over the live activations
    need = (t.param_bytes + t.buffer_bytes + t.input_bytes + t.peak_activation_bytes
            + mem_mod.CPU_RUNTIME + int(mem_mod.CPU_SLACK * t.peak_activation_bytes))
    monkeypatch.setattr(mem_mod, "free_limit", lambda device: Free(need - 1, "ulimit -v"))
    with pytest.raises(InsufficientMemoryError, match=r"needs about .* free \(ulimit -v\)"):
        check_memory(table, CPU)
    monkeypatch.setattr(mem_mod, "free_limit", lambda device: Free(need, "RAM"))
    assert check_memory(table, CPU).required_bytes == need


def test_memory_guard_densenet121_batch_32_covers_what_it_uses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """bench densenet121 --batch 32 on CPU: the guard once asked for 383 MiB ((weights + input
    + live activations) x 1.25) of a run whose RSS grew by 762 MiB; repeated passes grew it by
    up to 965 MiB more than the model's (measured on this project's 2-core machine, torch
    2.13, 1 and 2 threads; see cnncost/measure/memory.py)."""
    from cnncost.count.limits import Free

    MiB = 1 << 20
    monkeypatch.setattr(mem_mod, "free_limit", lambda device: Free(1 << 40, "RAM"))
    table = cnncost.analyze("densenet121", batch=32)
    t = table.totals
    # DenseNet-121: 7,978,856 parameters (torchvision's published count), float32
    assert t.param_bytes == 7_978_856 * 4
    assert t.input_bytes == 32 * 3 * 224 * 224 * 4  # 19,267,584 B
    est = check_memory(table, CPU)
    weights = t.param_bytes + t.buffer_bytes
    assert est.required_bytes >= 762 * MiB  # the run the old guard let through
    # the worst growth seen, on top of the weights the model materializes (~41 MiB measured)
    assert est.required_bytes >= 965 * MiB + weights
    # and the worst slack seen: input + live activations + 2.5x them again + the runtime
    live = t.input_bytes + t.peak_activation_bytes
    assert est.required_bytes >= weights + live + 2.5 * t.peak_activation_bytes + 53 * MiB
    assert est.required_bytes == t.peak_memory_bytes + est.workspace_bytes


def test_cli_memory_guard_absurd_batch(write_spec) -> None:
    path = write_spec(TINY_SPEC)
    # 2^20 images of 3x1024x1024 float32: the input alone is 2^20 * 3 * 2^20 * 4 B = 12 TiB.
    result = runner.invoke(app, ["bench", str(path), "--batch", str(1 << 20),
                                 "--input", "3x1024x1024"])
    assert result.exit_code == 2, result.output
    assert "needs about" in result.output and "free" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- CLI


def test_cli_bench_formats(write_spec, tmp_path: Path) -> None:
    path = write_spec(TINY_SPEC)
    base = ["bench", str(path), "--device", "cpu", "--threads", "1", "--batch", "1,2",
            "--max-time", "0.05", "--min-samples", "3"]
    result = runner.invoke(app, [*base, "--format", "json", "--per-layer"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["batch"] for r in doc["runs"]] == [1, 2]
    assert all(r["latency_ms"] > 0 and r["iqr_ms"] >= 0 for r in doc["runs"])
    assert all(lr["measured_s"] > 0 for r in doc["runs"] for lr in r["layers"])

    result = runner.invoke(app, [*base, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["layer"] for r in rows if r["kind"] == "total"] == ["(model)", "(model)"]
    assert {r["bound"] for r in rows if r["kind"] != "total"} <= {"compute", "memory"}

    out = tmp_path / "bench.md"
    result = runner.invoke(app, [*base, "--format", "md", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# bench: tiny_bench")

    base[base.index("1,2")] = "1"
    result = runner.invoke(app, [*base, "--per-layer", "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "roofline" in result.stdout and "measured ms" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--batch", "0"], "positive batch sizes"),
    (["--batch", "one"], "batch sizes like"),
    (["--device", "tpu"], "expected auto, cpu or cuda"),
    (["--dtype", "int8"], "unknown dtype"),
], ids=["batch-zero", "batch-word", "device", "dtype"])
def test_cli_bad_options(write_spec, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", str(write_spec(TINY_SPEC)), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cli_cuda_without_gpu(write_spec) -> None:
    result = runner.invoke(app, ["bench", str(write_spec(TINY_SPEC)), "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "CUDA is not available" in result.output


def test_cli_compile_failure_is_one_line(write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model: nn.Module) -> object:
        def call(x: torch.Tensor) -> None:
            raise RuntimeError("no C++ compiler\nlong backtrace here")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    result = runner.invoke(app, ["bench", str(write_spec(TINY_SPEC)), "--device", "cpu",
                                 "--threads", "1", "--compile", "--max-time", "0.05"])
    assert result.exit_code == 2, result.output
    assert "torch.compile failed: RuntimeError: no C++ compiler" in result.output
    assert "long backtrace" not in result.output


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_cuda_smoke() -> None:
    report = bench(tiny_net(), (1, 2), BenchOptions(device="cuda", per_layer=True,
                                                    budget=FAST, quick_roofline=True),
                   input=(3, 16, 16))
    assert report.device == "cuda"
    for run in report.runs:
        assert run.timing.median_s > 0 and run.timing.iqr_s >= 0
        assert run.cuda_peak_bytes is not None and run.cuda_peak_bytes > 0
        assert all(lr.measured_s is not None for lr in run.layers)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_free_memory_cuda() -> None:
    free = mem_mod.free_memory(torch.device("cuda"))
    assert free is not None and free > 0


def test_cli_compare_bench_puts_latency_next_to_macs(write_spec,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_mod, "BenchOptions", lambda **kw: opts(**kw))
    small = write_spec(TINY_SPEC, "a.yaml")
    wide = write_spec(TINY_SPEC.replace("out: 8,", "out: 16,"), "b.yaml")
    result = runner.invoke(app, ["compare", str(small), str(wide), "--bench", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    keys = [c["key"] for c in doc["columns"]]
    assert keys[keys.index("macs") + 1:keys.index("macs") + 3] == ["latency_ms", "images_per_s"]
    a, b = doc["models"]
    assert a["latency_ms"] > 0 and b["images_per_s"] > 0
    assert b["ratios"]["latency_ms"] == pytest.approx(b["latency_ms"] / a["latency_ms"])
    assert b["ratios"]["macs"] == b["macs"] / a["macs"]

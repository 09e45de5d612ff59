"""MobileNetV2 vs ResNet-50 on this machine: do MACs predict milliseconds? (issue 5 checks)

Prints, for batch 1 and 8:
- the MAC ratio (ResNet-50 / MobileNetV2) next to the measured latency ratio;
- which layers the roofline marks memory-bound, by category (depthwise, 1x1, bn, ...),
  and their share of the roofline time and of the measured per-layer time;
- how well repeated runs agree (IQR / median within a run, spread of medians across runs);
- whether the per-layer medians sum to the whole-model median (within 15%).

    python benchmarks/bench_mobilenet_vs_resnet.py [--threads N] [--max-time S]
                                                    [--repeats R] [--recalibrate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from cnncost.measure.bench import BenchOptions, BenchReport, BenchRun, bench
from cnncost.measure.roofline import Bound, load_average
from cnncost.measure.timing import Budget
from cnncost.sources import resolve
from cnncost.spec import LayerSpec, load_spec

MODELS = ("mobilenetv2", "resnet50")
BATCHES = (1, 8)


def category(layer: LayerSpec | None, kind: str) -> str:
    """depthwise conv / 1x1 conv / kxk conv / the layer kind."""
    if layer is None or layer.kind != "conv":
        return kind
    groups = int(layer.params.get("groups", 1))
    k = layer.params["kernel"]
    k = k if isinstance(k, int) else "x".join(map(str, k))
    if groups > 1 and groups == layer.in_shapes[0][0]:
        return f"depthwise conv {k}x{k}"
    return "conv 1x1" if k == 1 else f"conv {k}x{k}"


def specs_by_path(name: str) -> dict[str, LayerSpec]:
    path = resolve(name).spec_path
    assert path is not None
    return {layer.path: layer for layer in load_spec(path).layers}


def memory_bound_summary(run: BenchRun, layers: dict[str, LayerSpec]) -> list[str]:
    """Memory-bound layers grouped by category, with their shares of the time."""
    groups: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    total_pred = run.predicted_s
    total_meas = run.layer_sum_s or 0.0
    for lr in run.layers:
        cat = category(layers.get(lr.roof.name), lr.roof.kind)
        g = groups[cat]
        g[1] += 1
        if lr.roof.bound is Bound.MEMORY:
            g[0] += 1
            g[2] += lr.roof.predicted_s
            g[3] += lr.measured_s or 0.0
    out = []
    for cat, (mem, n, pred, meas) in sorted(groups.items(), key=lambda kv: -kv[1][3]):
        if mem:
            out.append(f"    {cat:<22} {int(mem):>3}/{int(n):<3} memory-bound   "
                       f"{100 * pred / total_pred:5.1f}% of roofline time   "
                       f"{100 * meas / total_meas if total_meas else 0:5.1f}% of measured")
    compute = sorted({category(layers.get(lr.roof.name), lr.roof.kind) for lr in run.layers
                      if lr.roof.bound is Bound.COMPUTE})
    out.append(f"    compute-bound categories: {', '.join(compute)}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--max-time", type=float, default=6.0,
                    help="seconds of timing per model, batch and phase (at most)")
    ap.add_argument("--repeats", type=int, default=3, help="independent whole-model runs")
    ap.add_argument("--recalibrate", action="store_true", help="measure the roofline again")
    args = ap.parse_args()

    budget = Budget(min_samples=5, min_time=0.5, max_time=args.max_time)
    print(f"load average before: {load_average()} on {os.cpu_count()} CPUs; "
          f"threads {args.threads}; torch {torch.__version__}")
    started = time.perf_counter()
    reports: dict[str, list[BenchReport]] = {}
    for i in range(args.repeats):
        for name in MODELS:
            opts = BenchOptions(device="cpu", threads=args.threads, per_layer=(i == 0),
                                recalibrate=args.recalibrate and i == 0 and name == MODELS[0],
                                budget=budget)
            reports.setdefault(name, []).append(bench(name, BATCHES, opts))
            print(f"  [{time.perf_counter() - started:6.1f}s] run {i + 1} {name} done",
                  file=sys.stderr)

    first = {name: reports[name][0] for name in MODELS}
    roof = first[MODELS[0]].roofline
    print(f"roofline: peak {roof.peak_flops / 1e9:.1f} GFLOP/s, bandwidth "
          f"{roof.bandwidth / 1e9:.1f} GB/s, ridge {roof.ridge:.2f} FLOP/byte "
          f"({'cached' if roof.from_cache else 'measured'} {roof.measured_at}, "
          f"load then {roof.load_avg})")

    print("\n1. MAC ratio vs measured latency ratio (ResNet-50 / MobileNetV2), run 1")
    print("   wall = median wall-clock time per forward; CPU = median process CPU time per")
    print("   forward (does not grow while other processes hold the cores)")
    print(f"  {'batch':>5}  {'MAC ratio':>9}  {'wall ratio':>10}  {'CPU ratio':>9}"
          f"  {'roofline ratio':>14}  {'MV2 wall ms':>11} {'R50 wall ms':>11}"
          f"  {'MV2 CPU ms':>10} {'R50 CPU ms':>10}  {'MV2 GFLOP/s':>11} {'R50 GFLOP/s':>11}"
          f"  {'MV2 img/s':>9} {'R50 img/s':>9}")
    for b in BATCHES:
        m, r = first["mobilenetv2"].run(b), first["resnet50"].run(b)
        mc, rc = m.timing.cpu_median_s or 0.0, r.timing.cpu_median_s or 0.0
        print(f"  {b:>5}  {r.macs / m.macs:9.2f}  {r.timing.median_s / m.timing.median_s:10.2f}"
              f"  {rc / mc if mc else 0:9.2f}  {r.predicted_s / m.predicted_s:14.2f}"
              f"  {m.timing.median_s * 1e3:11.2f} {r.timing.median_s * 1e3:11.2f}"
              f"  {mc * 1e3:10.2f} {rc * 1e3:10.2f}  {m.achieved_flops / 1e9:11.1f}"
              f" {r.achieved_flops / 1e9:11.1f}  {m.images_per_s:9.1f} {r.images_per_s:9.1f}")

    print("\n2. layers the roofline marks memory-bound (run 1, per-layer timing)")
    for name in MODELS:
        layers = specs_by_path(name)
        for b in BATCHES:
            run = first[name].run(b)
            n_mem = len(run.memory_bound())
            print(f"  {name} batch {b}: {n_mem} of {len(run.layers)} layers memory-bound")
            for line in memory_bound_summary(run, layers):
                print(line)

    print("\n3. repeatability: median ms of each independent run, spread = (max-min)/median"
          " of those medians, and IQR/median within each run")
    for name in MODELS:
        for b in BATCHES:
            timings = [rep.run(b).timing for rep in reports[name]]
            meds = [t.median_s * 1e3 for t in timings]
            cpus = [(t.cpu_median_s or 0.0) * 1e3 for t in timings]
            print(f"  {name:<12} batch {b}: wall medians {', '.join(f'{x:.2f}' for x in meds)}"
                  f" ms (spread {100 * (max(meds) - min(meds)) / statistics.median(meds):.1f}%,"
                  f" IQR/median {', '.join(f'{100 * t.rel_iqr:.1f}%' for t in timings)}); "
                  f"CPU medians {', '.join(f'{x:.2f}' for x in cpus)} ms (spread "
                  f"{100 * (max(cpus) - min(cpus)) / (statistics.median(cpus) or 1):.1f}%)")

    print("\n4. per-layer medians summed vs the whole model (eager, timed between the "
          "per-layer passes), run 1")
    for name in MODELS:
        for b in BATCHES:
            run = first[name].run(b)
            assert run.layer_sum_s is not None and run.layer_whole is not None
            wall, cpu = run.layer_whole.median_s, run.layer_whole.cpu_median_s or 0.0
            cpu_sum = run.layer_cpu_sum_s or 0.0
            d_wall = run.layer_sum_s / wall - 1
            d_cpu = cpu_sum / cpu - 1 if cpu else 0.0
            print(f"  {name:<12} batch {b}: wall {run.layer_sum_s * 1e3:8.2f} vs "
                  f"{wall * 1e3:8.2f} ms ({100 * d_wall:+.1f}%, "
                  f"{'within' if abs(d_wall) <= 0.15 else 'OUTSIDE'} 15%); CPU time "
                  f"{cpu_sum * 1e3:8.2f} vs {cpu * 1e3:8.2f} ms ({100 * d_cpu:+.1f}%, "
                  f"{'within' if abs(d_cpu) <= 0.15 else 'OUTSIDE'} 15%)")
    print(f"\nload average after: {load_average()}; wall time "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

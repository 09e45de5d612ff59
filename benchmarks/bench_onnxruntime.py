"""PyTorch eager vs ONNX Runtime (CPU) latency for a few bundled models, in one run.

Each model is timed by ``cnncost bench MODEL --runtime torch,onnxruntime``'s code
(cnncost.measure.ort.bench_runtimes): the spec built once, timed on torch eager, exported
through cnncost.onnx.export (the same weights) and timed on an ONNX Runtime session, both
with the bench's method (warm-up, adaptive repetitions, median and IQR) and the same
threads. Prints one row per model and batch: each runtime's median wall time and IQR, their
ratio, the median process CPU time of each and its ratio (steadier than wall time when other
work holds the cores), and the achieved GFLOP/s (the counted FLOPs / median); the load average
before and after.

    python benchmarks/bench_onnxruntime.py [--models resnet18,mobilenetv2] [--batch 1,8]
                                           [--threads N] [--max-time S]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from cnncost.measure.bench import BenchOptions
from cnncost.measure.ort import bench_runtimes
from cnncost.measure.roofline import load_average
from cnncost.measure.timing import Budget

MODELS = "resnet18,mobilenetv2,efficientnet_b0,alexnet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-time", type=float, default=10.0)
    args = parser.parse_args()
    import onnxruntime

    threads = args.threads or torch.get_num_threads()
    batches = tuple(int(b) for b in args.batch.split(","))
    options = BenchOptions(device="cpu", threads=threads,
                           budget=Budget(max_time=args.max_time, min_samples=7))
    before = load_average()
    print(f"torch {torch.__version__} eager vs onnxruntime {onnxruntime.__version__} (CPU "
          f"provider), {threads} threads, float32, {platform.processor() or platform.machine()}"
          f" ({os.cpu_count()} CPUs); load average before: {before:.2f}" if before is not None
          else "")
    print(f"{'model':<16}{'batch':>6}{'torch ms':>10}{'IQR':>8}{'ORT ms':>9}{'IQR':>8}"
          f"{'ratio':>7}{'torch CPU ms':>14}{'ORT CPU ms':>12}{'ratio':>7}"
          f"{'torch GFLOP/s':>15}{'ORT GFLOP/s':>13}")
    for model in args.models.split(","):
        t0 = time.perf_counter()
        report = bench_runtimes(model, batches, options, ("torch", "onnxruntime"))
        for b in batches:
            t, o = report.run(b, "torch"), report.run(b, "onnxruntime")
            tc, oc = t.timing.cpu_median_s or math.nan, o.timing.cpu_median_s or math.nan
            print(f"{model:<16}{b:>6}{t.timing.median_s * 1e3:>10.1f}"
                  f"{t.timing.iqr_s * 1e3:>8.1f}{o.timing.median_s * 1e3:>9.1f}"
                  f"{o.timing.iqr_s * 1e3:>8.1f}{o.timing.median_s / t.timing.median_s:>7.2f}"
                  f"{tc * 1e3:>14.1f}{oc * 1e3:>12.1f}{oc / tc:>7.2f}"
                  f"{t.achieved_flops / 1e9:>15.1f}{o.achieved_flops / 1e9:>13.1f}"
                  f"   [{time.perf_counter() - t0:.0f} s]", flush=True)
    after = load_average()
    print(f"load average after: {after:.2f}" if after is not None else "")


if __name__ == "__main__":
    main()

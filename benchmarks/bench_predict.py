"""Predicted against measured latency: every bundled ImageNet model at batch 1 and 8 (and a few
--set variants), in one run.

    python benchmarks/bench_predict.py [--calibrate] [--rounds 3] [--threads N] [--plot FILE]
                                       [--readme README.md]

The figures in the README come from one run (about 10 minutes on a quiet 2-core machine):

    python benchmarks/bench_predict.py --calibrate --threads 1 \
        --plot docs/img/predict-vs-measured.png --readme README.md

Issue 24's targets (benchmark figures, not tests): >= 90% of (model, batch) pairs predicted
within ±10% of the measured median; the rank correlation (Spearman) of the predictions with
the measurements >= 0.95, printed beside that of MACs with the measurements; a calibration
within 5 minutes at its default budget (``--calibrate`` runs one and times it); a prediction
of resnet50 under 50 ms (in process: count + predict, from the model's name).

Method: the calibration is this machine's cached one (``cnncost calibrate``), made on
calibration kernels only, never on these models' layers. Each model is built as ``cnncost
bench`` builds it (the spec compiled to a torch.fx module, eval, inference_mode, threads
pinned, subnormals flushed) and timed with bench's method (``time_fn``: warm-up, blocks,
median); the pairs are timed in turn, ``--rounds`` times, so a change of load falls on all of
them alike, and each pair's figure is the median of its rounds. The load average is printed
before and after: on a shared machine, run it when the load is low. The pairs are always the
same (MODELS and VARIANTS at ``--batches``, in that order). ``--readme FILE`` rewrites the part
of FILE between the two ``bench_predict`` markers (the command, its summary lines and the
table of every pair) with this run's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("alexnet", "densenet121", "efficientnet_b0", "googlenet", "googlenet_paper",
          "mobilenetv1", "mobilenetv2", "mobilenetv3_large", "mobilenetv3_small", "resnet18",
          "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
          "shufflenetv2_x1_0", "squeezenet1_0", "squeezenet1_1", "vgg11", "vgg16", "vgg19")
VARIANTS = (("mobilenetv2", {"width": "0.5"}), ("mobilenetv1", {"res": "160"}),
            ("resnet50", {"res": "160"}), ("efficientnet_b0", {"res": "260"}))


def ranks(xs: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy)


def label(name: str, sets: dict[str, str]) -> str:
    return name + "".join(f" {k}={v}" for k, v in sets.items())


def prediction_time(cal: object) -> tuple[tuple[float, float], tuple[float, float]]:
    """Seconds to predict resnet50 from its name in process, wall and CPU (a loaded machine
    stretches the wall clock): the first call, and the median of five more."""
    from cnncost import api

    walls, cpus = [], []
    for _ in range(6):
        t0, c0 = time.perf_counter(), time.process_time()
        api.predict_target("resnet50", calibration=cal)  # type: ignore[arg-type]
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return (walls[0], statistics.median(walls[1:])), (cpus[0], statistics.median(cpus[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate", action="store_true", help="calibrate first (timed)")
    ap.add_argument("--max-time", type=float, default=None, help="calibration budget (s)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-variants", action="store_true")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="a calibration file instead of this machine's cached one")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--plot", type=Path, default=None, help="draw predicted vs measured")
    ap.add_argument("--readme", type=Path, default=None,
                    help="rewrite this file's part between the bench_predict markers")
    args = ap.parse_args()
    if args.readme and not MARKERS.search(args.readme.read_text(encoding="utf-8")):
        sys.exit(f"error: {args.readme} has no '{BEGIN}' ... '{END}' part to rewrite")

    import torch

    from cnncost import api
    from cnncost.graph.build import build_module
    from cnncost.measure.bench import _cpu_settings
    from cnncost.measure.machine import cpu_name, load_average
    from cnncost.measure.timing import Budget, time_fn
    from cnncost.predict.calibrate import DEFAULT_MAX_TIME, CalibrateOptions
    from cnncost.sources import load_target, resolve

    threads = args.threads or torch.get_num_threads()
    load_before = load_average()
    machine = (f"{cpu_name()}, {os.cpu_count()} CPUs, {threads} thread"
               f"{'s' if threads > 1 else ''}, torch {torch.__version__}")
    print(f"machine: {machine}; load average {load_before}")
    shown: list[str] = []  # the lines the README shows
    if args.calibrate:
        budget = args.max_time or DEFAULT_MAX_TIME
        t0 = time.perf_counter()
        cal, path = api.calibrate_here(CalibrateOptions(device="cpu", threads=threads,
                                                        max_time=budget))
        took = time.perf_counter() - t0
        line = (f"calibration: {took:.0f} s at a {budget:.0f} s budget (target <= 300 s: "
                f"{'met' if took <= 300 else 'not met'}); {cal.sample_count} kernels")
        print(f"{line}; {path}")
        shown.append(f"{line}; ...")
    else:
        cal = api.find_calibration("float32", "cpu", threads, args.calibration)
        print(f"calibration: {cal.path} ({cal.sample_count} kernels, {cal.measured_at}, "
              f"load {cal.load_avg})")
    for name, fitted in cal.classes.items():
        e = fitted["error"]
        print(f"  {name:16s} {fitted['samples']:5d} kernels  {fitted['method']:8s} held-out "
              f"median {e['median']:6.1%}  p90 {e['p90']:6.1%}")
    (first, warm), (first_cpu, warm_cpu) = prediction_time(cal)
    line = (f"predict resnet50 in process (count + predict): first {first * 1e3:.1f} ms, then "
            f"{warm * 1e3:.1f} ms wall; CPU {first_cpu * 1e3:.1f} ms, then "
            f"{warm_cpu * 1e3:.1f} ms (target < 50 ms: {'met' if first < 0.05 else 'not met'} "
            f"by wall, {'met' if first_cpu < 0.05 else 'not met'} by CPU)")
    print(line)
    shown += ["...", line]

    batches = [int(b) for b in args.batches.split(",")]
    models = [(m, {}) for m in args.models.split(",")]
    if not args.no_variants:
        models += [(m, dict(s)) for m, s in VARIANTS]
    pairs = []
    device = torch.device("cpu")
    with _cpu_settings(device, threads), torch.inference_mode():
        for name, sets in models:
            spec = load_target(resolve(name), sets, None)
            module = build_module(spec)
            for b in batches:
                p = api.predict_target(name, batch=b, overrides=sets, calibration=cal)
                x = torch.randn(b, *spec.input_shape)
                pairs.append({"model": label(name, sets), "batch": b, "macs": p.macs,
                              "predicted_ms": p.latency_ms, "uncertainty": p.uncertainty,
                              "outside": len(p.outside), "module": module, "x": x,
                              "rounds": [], "cpu_rounds": []})
        budget = Budget(min_samples=3, min_time=0.1, max_time=2.0, warmup_time=0.05)
        for r in range(args.rounds):
            for pair in pairs:
                m, x = pair["module"], pair["x"]
                t = time_fn(lambda m=m, x=x: m(x), device, budget)
                pair["rounds"].append(t.median_s)
                pair["cpu_rounds"].append(t.cpu_median_s)
            print(f"round {r + 1}/{args.rounds} done; load {load_average()}", flush=True)
    rows, lines = report(pairs, args, load_average(), threads == 1)
    if args.readme:
        key = "cpu_ms" if threads == 1 else "measured_ms"
        write_readme(args.readme, machine, load_before, shown + lines, rows, key)


BEGIN, END = "<!-- bench_predict: begin -->", "<!-- bench_predict: end -->"
MARKERS = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)


def shown_args(argv: list[str]) -> list[str]:
    """The arguments as the README shows them: without --json and its file (a local path)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--json":
            skip = True
        elif not a.startswith("--json="):
            out.append(a)
    return out


def readme_part(machine: str, load_before: float | None, lines: list[str], rows: list[dict],
                key: str) -> str:
    """The README's part: the run's setting, the command and its summary, the table."""
    what = "CPU-time median" if key == "cpu_ms" else "wall-clock median"
    command = "python benchmarks/bench_predict.py " + " ".join(shown_args(sys.argv[1:]))
    models = list(dict.fromkeys(r["model"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    head = "| model | " + " | ".join(f"batch {b}: measured ms | predicted | ratio"
                                     for b in batches) + " |"
    table = [head, "|---|" + "---:|" * (3 * len(batches))]
    by = {(r["model"], r["batch"]): r for r in rows}
    for m in models:
        cells = []
        for b in batches:
            r = by.get((m, b))
            cells += ([f"{r[key]:.1f}", f"{r['predicted_ms']:.1f}",
                       f"{r['predicted_ms'] / r[key]:.2f}"] if r else ["", "", ""])
        table.append(f"| {m} | " + " | ".join(cells) + " |")
    setting = textwrap.fill(f"One run on {machine}, load average {load_before} before; "
                            f"measured is the {what} of each pair:", 95)
    return "\n".join([
        BEGIN, setting, "", "```", f"$ {command}", *lines, "```", "", *table, "", END])


def write_readme(path: Path, machine: str, load_before: float | None, lines: list[str],
                 rows: list[dict], key: str) -> None:
    text = path.read_text(encoding="utf-8")
    part = readme_part(machine, load_before, lines, rows, key)
    path.write_text(MARKERS.sub(lambda _: part, text, count=1), encoding="utf-8")
    print(f"wrote {path}")


def summary(rows: list[dict], key: str, what: str) -> list[str]:
    """The share within ±10% and ±20% and the rank correlations, against ``key``."""
    ratios = [r["predicted_ms"] / r[key] for r in rows]
    within = {t: sum(abs(x - 1) <= t for x in ratios) / len(ratios) for t in (0.1, 0.2)}
    measured = [r[key] for r in rows]
    rho_pred = spearman([r["predicted_ms"] for r in rows], measured)
    rho_macs = spearman([float(r["macs"]) for r in rows], measured)
    lines = [f"against the {what}: {len(rows)} (model, batch) pairs within ±10%: "
             f"{within[0.1]:.0%} (target >= 90%: {'met' if within[0.1] >= 0.9 else 'not met'}), "
             f"within ±20%: {within[0.2]:.0%}; median |pred/meas - 1| "
             f"{statistics.median(abs(x - 1) for x in ratios):.1%}",
             f"rank correlation with the measurements (Spearman): predicted {rho_pred:.3f} "
             f"(target >= 0.95: {'met' if rho_pred >= 0.95 else 'not met'}), MACs {rho_macs:.3f}"]
    print("\n" + "\n".join(lines))
    return lines


def report(pairs: list[dict], args: argparse.Namespace, load_after: float | None,
           cpu: bool) -> tuple[list[dict], list[str]]:
    """One line per pair, then the summaries (with one thread also against CPU time); the
    rows, and the summary lines of the figure the README shows (CPU time with one thread)."""
    rows = []
    print(f"\n{'model':<28} {'batch':>5} {'MACs':>9} {'measured':>10} {'predicted':>10} "
          f"{'pred/meas':>9}  {'±':>4} out" + ("   cpu ms  pred/cpu" if cpu else ""))
    for p in pairs:
        measured = statistics.median(p["rounds"]) * 1e3
        row = {k: v for k, v in p.items() if k not in ("module", "x")}
        row |= {"measured_ms": measured, "ratio": p["predicted_ms"] / measured}
        line = (f"{p['model']:<28} {p['batch']:>5} {p['macs'] / 1e9:>8.2f}G {measured:>10.2f} "
                f"{p['predicted_ms']:>10.2f} {row['ratio']:>9.3f}  {p['uncertainty']:>4.0%} "
                f"{p['outside']:>3}")
        if cpu:
            row["cpu_ms"] = statistics.median(p["cpu_rounds"]) * 1e3
            line += f" {row['cpu_ms']:>8.2f} {p['predicted_ms'] / row['cpu_ms']:>9.3f}"
        rows.append(row)
        print(line)
    lines = summary(rows, "measured_ms", "wall-clock median (what bench reports)")
    if cpu:
        lines = summary(rows, "cpu_ms", "CPU-time median (one thread: the run without "
                        "preemption)")
    print(f"load average after: {load_after}")
    lines.append(f"load average after: {load_after}")
    if args.json:
        args.json.write_text(json.dumps({"pairs": rows, "load_after": load_after}, indent=1))
    if args.plot:
        plot(rows, args.plot, "cpu_ms" if cpu else "measured_ms",
             "measured ms (CPU time, one thread)" if cpu else "measured ms (median)")
    return rows, lines


def plot(rows: list[dict], path: Path, key: str, label: str) -> None:
    """Predicted against measured (``key``), log-log, with the ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    lo = min(min(r[key], r["predicted_ms"]) for r in rows) / 1.5
    hi = max(max(r[key], r["predicted_ms"]) for r in rows) * 1.5
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9",
                    label="±10%")
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
    for b, marker in ((1, "o"), (8, "s")):
        sel = [r for r in rows if r["batch"] == b]
        ax.scatter([r[key] for r in sel], [r["predicted_ms"] for r in sel],
                   marker=marker, s=22, label=f"batch {b}")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=label,
           ylabel="predicted ms", title="cnncost predict: predicted vs measured latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    from cnncost.errors import CnnCostError

    try:
        main()
    except CnnCostError as exc:
        sys.exit(f"error: {exc}")

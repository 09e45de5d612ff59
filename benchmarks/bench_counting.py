"""How fast cnncost counts, against its peers, measured in one run on this machine.

    python benchmarks/bench_counting.py [--repeats 7] [--quick]

1. Speed: counting a torchvision-style ResNet-50 ``nn.Module`` (benchmarks/tv_models.py, a
   plain copy of torchvision's; 224x224, batch 1) with ``cnncost.analyze`` vs fvcore
   ``FlopCountAnalysis(...).total()``, ``torch.utils.flop_counter.FlopCounterMode``, thop,
   ptflops and torchinfo (each skipped with a note if not installed). Every tool gets its
   own model instance and one untimed warm-up call; then the tools take turns, ``repeats``
   rounds, so background load hits them alike. Reported: median and best time, and each
   peer's median divided by cnncost's (how many times slower the peer is).
2. Memory: VGG-16 (specs/vgg16.yaml) at batch 64 and 2048x2048 in a fresh subprocess:
   time of the first ("cold", lazy initialisation included) and of a second analysis, and
   the RSS each adds over the process's RSS before it (peak of a 1 ms RSS sampler and
   ru_maxrss, minus the RSS before).
3. Depth: residual nets of 250/500/1000 basic blocks (conv-bn-relu-conv-bn + add + relu),
   spec text generated here; time to load the spec and to count it, per block.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from tv_models import resnet50  # noqa: E402

import cnncost  # noqa: E402

Runner = Callable[[], Any]


def _peers(x: torch.Tensor) -> tuple[dict[str, Runner], dict[str, str]]:
    """One runner per tool (each with its own model), and notes on tools left out."""
    runners: dict[str, Runner] = {}
    notes: dict[str, str] = {}
    shape = tuple(x.shape[1:])

    m_ours = resnet50()
    runners["cnncost"] = lambda: cnncost.analyze(m_ours, input=shape).totals.macs

    try:
        from fvcore.nn import FlopCountAnalysis

        m_fv = resnet50().eval()

        def fvcore_total() -> int:
            fca = FlopCountAnalysis(m_fv, x)
            fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return int(fca.total())

        runners["fvcore"] = fvcore_total
    except ImportError as exc:
        notes["fvcore"] = f"not installed ({exc})"

    from torch.utils.flop_counter import FlopCounterMode

    m_fcm = resnet50().eval()

    def flop_counter_mode() -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as fcm:
            m_fcm(x)
        return int(fcm.get_total_flops())

    runners["FlopCounterMode"] = flop_counter_mode

    try:
        from thop import profile

        m_thop = resnet50().eval()

        def thop_profile() -> int:
            macs, _ = profile(m_thop, inputs=(x,), verbose=False)
            return int(macs)

        runners["thop"] = thop_profile
    except ImportError as exc:
        notes["thop"] = f"not installed ({exc}); pip install thop"

    try:
        from ptflops import get_model_complexity_info

        m_pt = resnet50().eval()

        def ptflops_count() -> int:
            macs, _ = get_model_complexity_info(m_pt, shape, as_strings=False,
                                                print_per_layer_stat=False, verbose=False)
            return int(macs or 0)

        runners["ptflops"] = ptflops_count
    except ImportError as exc:
        notes["ptflops"] = f"not installed ({exc}); pip install ptflops"

    try:
        from torchinfo import summary

        m_ti = resnet50().eval()

        def torchinfo_summary() -> int:
            return int(summary(m_ti, input_size=tuple(x.shape), verbose=0).total_mult_adds)

        runners["torchinfo"] = torchinfo_summary
    except ImportError as exc:
        notes["torchinfo"] = f"not installed ({exc}); pip install torchinfo"
    return runners, notes


def bench_speed(repeats: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    runners, notes = _peers(x)
    counts: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, run in runners.items():  # warm-up: imports, lazy init, first-call caches
            counts[name] = run()
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(repeats):
            for name, run in runners.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
    ours = statistics.median(times["cnncost"])
    print(f"== ResNet-50 nn.Module, 224x224, batch 1: {repeats} interleaved rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'tool':18s}{'median ms':>11s}{'best ms':>10s}{'vs cnncost':>12s}  count reported")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:18s}{med * 1e3:11.1f}{min(ts) * 1e3:10.1f}{med / ours:11.1f}x  "
              f"{counts[name]:,}")
    for name, note in notes.items():
        print(f"{name:18s}skipped: {note}")
    print("(FlopCounterMode reports FLOPs = 2 x MACs; fvcore, thop and ptflops also count "
          "batch norm / pooling as 'MACs', hence their slightly larger figures)")
    spec = ROOT / "specs" / "resnet50.yaml"
    if spec.is_file():
        cnncost.analyze(str(spec))
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            macs = cnncost.analyze(str(spec)).totals.macs
            ts.append(time.perf_counter() - t0)
        print(f"{'cnncost spec':18s}{statistics.median(ts) * 1e3:11.1f}{min(ts) * 1e3:10.1f}"
              f"{statistics.median(ts) / ours:11.1f}x  {macs:,}  (specs/resnet50.yaml: load "
              "+ count)")


_MEMORY_CHILD = r"""
import json, resource, sys, threading, time
import psutil, torch
sys.path.insert(0, ROOT)
import cnncost
proc = psutil.Process()

def measure():
    rss0 = proc.memory_info().rss
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [rss0]
    done = threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)
    t = threading.Thread(target=sample)
    t.start()
    t0 = time.perf_counter()
    rep = cnncost.analyze(ROOT + "/specs/vgg16.yaml", input=(3, 2048, 2048), batch=64)
    dt = time.perf_counter() - t0
    done.set()
    t.join()
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    added = max(peak[0], proc.memory_info().rss, maxrss1 if maxrss1 > maxrss0 else 0) - rss0
    return {"seconds": dt, "rss_before": rss0, "added": added, "macs": rep.totals.macs,
            "activation_bytes": rep.totals.activation_bytes,
            "peak": rep.totals.peak_memory_bytes}

cold = measure()  # the first analysis in the process (after imports): lazy init included
warm = measure()
print(json.dumps({"cold": cold, "warm": warm}))
"""


def bench_memory() -> None:
    code = f"ROOT = {str(ROOT)!r}\n" + _MEMORY_CHILD
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    wall = time.perf_counter() - t0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print("== VGG-16 at batch 64, 3x2048x2048, in a fresh subprocess (targets: < 3 s, "
          "< 100 MiB RSS added)")
    for label in ("cold", "warm"):
        m = r[label]
        print(f"{label} analysis: {m['seconds']:.2f} s, RSS added {m['added'] / 2**20:.1f} MiB "
              f"over {m['rss_before'] / 2**20:.0f} MiB before")
    m = r["warm"]
    print(f"whole subprocess (python + import torch + cnncost + both analyses): {wall:.1f} s")
    print(f"counted {m['macs']:,} MACs, {m['activation_bytes'] / 2**30:,.0f} GiB of "
          f"activations, {m['peak'] / 2**30:,.1f} GiB peak inference memory - none allocated")


def deep_spec(blocks: int) -> str:
    """A residual net of ``blocks`` basic blocks, written out (no repeat) as spec text."""
    body = ("  - residual:\n"
            "      - conv: {out: 16, kernel: 3, padding: 1, bias: false}\n"
            "      - bn\n"
            "      - relu\n"
            "      - conv: {out: 16, kernel: 3, padding: 1, bias: false}\n"
            "      - bn\n"
            "  - relu\n")
    head = "name: deep\ninput: [3, 32, 32]\nlayers:\n  - conv: {out: 16, kernel: 3, padding: 1}\n"
    tail = "  - global_avg_pool\n  - flatten\n  - linear: {out: 10}\n"
    return head + body * blocks + tail


def bench_depth() -> None:
    from cnncost.count.drivers import count_spec
    from cnncost.spec import load_spec

    print("== residual nets written out block by block (spec text generated here)")
    print(f"{'blocks':>7s}{'layers':>8s}{'load s':>9s}{'count s':>9s}{'total s':>9s}"
          f"{'ms/block':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.yaml"
        warm.write_text(deep_spec(4))
        count_spec(load_spec(warm))
        for blocks in (250, 500, 1000):
            path = Path(tmp) / f"deep{blocks}.yaml"
            path.write_text(deep_spec(blocks))
            t0 = time.perf_counter()
            spec = load_spec(path)
            t1 = time.perf_counter()
            count_spec(spec)
            t2 = time.perf_counter()
            print(f"{blocks:7d}{len(spec.layers):8d}{t1 - t0:9.2f}{t2 - t1:9.2f}{t2 - t0:9.2f}"
                  f"{(t2 - t0) / blocks * 1e3:10.2f}")
    print("(target: 1,000 blocks < 10 s; linear growth = a flat ms/block column)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="speed comparison only")
    args = ap.parse_args()
    bench_speed(args.repeats)
    if not args.quick:
        print()
        bench_memory()
        print()
        bench_depth()


if __name__ == "__main__":
    main()

"""cnncost's peak inference memory estimate vs the peak measured on CPU (batch 8, 224x224).

    python benchmarks/bench_peak_memory.py [--batch 8] [--no-rss]

Models: ResNet-50 and MobileNetV2, each as the compiled spec (specs/resnet50.yaml,
specs/mobilenetv2.yaml, when present) and as a torchvision-style eager nn.Module
(benchmarks/tv_models.py: in-place ReLUs, residual adds in Python).

Estimate: ``cnncost.analyze(...).totals.peak_memory_bytes`` = parameters + buffers + input +
the peak of live activations, from tensor liveness in execution order on the meta device.

Measured, two independent ways, both on real CPU tensors in float32 under ``torch.no_grad``:

1. torch.profiler (``profile_memory=True``): after one untimed warm-up forward, one forward
   is profiled; its ``[memory]`` events (+bytes on allocation, -bytes on free, every
   allocation of PyTorch's CPU allocator, oneDNN's buffers included) are summed in time
   order and the largest running sum is the activation peak. Measured peak = that + the
   bytes of the parameters, buffers and input, which exist before the forward (read off the
   tensors themselves).
2. RSS high-water mark, in a fresh subprocess (Linux): after a warm-up forward, the kernel's
   peak-RSS counter is reset (``/proc/self/clear_refs``, "5") and read back
   (``VmHWM``) after one forward; added = VmHWM - RSS before the forward. glibc is run with
   ``MALLOC_MMAP_THRESHOLD_=65536`` so every tensor buffer is its own mmap returned on free;
   with glibc's default dynamic threshold, freed buffers stay in the heap and the
   high-water mark overstates the peak (by ~45% for ResNet-50 here).

Where the two differ from the estimate: PyTorch's CPU convolution (oneDNN) converts its
input to a blocked layout and computes its output in a blocked layout before converting it
back, so *inside* a conv one more buffer of max(input + weight, output) bytes is briefly
live. Those buffers are not tensors of the model; the estimate leaves them out by design
(it is tensor liveness, the same on every device). The last column re-computes the peak
with them added (liveness + that transient at every conv) to show that they account for
the whole difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import tv_models  # noqa: E402

import cnncost  # noqa: E402
from cnncost.measure.bench_train import profiled_peak_bytes  # noqa: E402

MiB = 2**20


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers as they sit in memory."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def profiled_peak(model: nn.Module, x: torch.Tensor) -> int:
    """Peak of live bytes allocated during one forward, from the profiler's memory events."""
    with torch.no_grad():
        model(x)  # warm-up: oneDNN primitive caches, thread pools
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU],
                                  profile_memory=True) as prof:
        out = model(x)
    del out
    return profiled_peak_bytes(prof)


_RSS_CHILD = r"""
import gc, json, re, sys, torch
sys.path[:0] = [HERE, ROOT]
import cnncost, tv_models
def status(key):
    text = open("/proc/self/status").read()
    return int(re.search(key + r":\s+(\d+) kB", text).group(1)) * 1024
torch.manual_seed(0)
model = (cnncost.build(WHAT) if WHAT.endswith(".yaml") else getattr(tv_models, WHAT)()).eval()
x = torch.randn(BATCH, 3, 224, 224)
with torch.no_grad():
    model(x)
gc.collect()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
with torch.no_grad():
    out = model(x)
print(json.dumps({"added": status("VmHWM") - before}))
"""


def rss_peak(what: str, batch: int) -> int | None:
    """Peak RSS added by one forward in a fresh process (None where /proc is missing)."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    code = (f"HERE, ROOT, WHAT, BATCH = {str(HERE)!r}, {str(ROOT)!r}, {what!r}, {batch}\n"
            + _RSS_CHILD)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["added"])


class TransientModel(TorchDispatchMode):
    """Tensor liveness (as cnncost counts it) plus oneDNN's transient buffers in a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        outs = out if isinstance(out, tuple | list) else (out,)
        for i, t in enumerate(outs):
            if isinstance(t, torch.Tensor) and not (i < len(returns) and
                                                    returns[i].alias_info is not None):
                nbytes = t.numel() * t.element_size()
                self.live += nbytes
                weakref.finalize(t, self._free, nbytes)
        extra = 0
        if func is torch.ops.aten.convolution.default:
            x, w = args[0], args[1]
            extra = max(x.numel() * 4 + w.numel() * 4, outs[0].numel() * 4)
        self.peak = max(self.peak, self.live + extra)
        return out

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes


def transient_model_peak(make: Callable[[], nn.Module], batch: int) -> int:
    """Peak activations under the transient model, counted on the meta device."""
    model = make().to("meta").eval()
    x = torch.empty(batch, 3, 224, 224, device="meta")
    mode = TransientModel()
    with torch.no_grad(), mode:
        model(x)
    return mode.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-rss", action="store_true", help="skip the RSS measurement")
    args = ap.parse_args()
    b = args.batch
    cases: list[tuple[str, str, Callable[[], nn.Module]]] = []
    for spec, fn in (("resnet50", "resnet50"), ("mobilenetv2", "mobilenet_v2")):
        path = ROOT / "specs" / f"{spec}.yaml"
        if path.is_file():
            cases.append((f"{spec} (spec)", str(path),
                          lambda p=str(path): cnncost.build(p)))  # type: ignore[misc]
        cases.append((f"{fn} (nn.Module)", fn, getattr(tv_models, fn)))
    print(f"peak inference memory at batch {b}, 3x224x224, float32, CPU "
          f"(torch {torch.__version__}); MiB")
    print(f"{'model':24s}{'estimate':>10s}{'profiler':>10s}{'est/meas':>9s}{'RSS':>9s}"
          f"{'est/RSS':>9s}{'+conv tmp':>11s}")
    for label, what, make in cases:
        torch.manual_seed(0)
        model = make().eval()
        x = torch.randn(b, 3, 224, 224)
        target: Any = what if what.endswith(".yaml") else model
        est = cnncost.analyze(target, input=(3, 224, 224), batch=b).totals
        base = weight_bytes(model) + x.numel() * x.element_size()
        measured = base + profiled_peak(model, x)
        rss_added = None if args.no_rss else rss_peak(what, b)
        rss = None if rss_added is None else base + rss_added
        modeled = (base + transient_model_peak(make, b))
        rss_cols = (f"{rss / MiB:9.1f}{est.peak_memory_bytes / rss:9.3f}" if rss else
                    f"{'-':>9s}{'-':>9s}")
        print(f"{label:24s}{est.peak_memory_bytes / MiB:10.1f}{measured / MiB:10.1f}"
              f"{est.peak_memory_bytes / measured:9.3f}{rss_cols}{modeled / MiB:11.1f}")
        print(f"{'':24s}of which parameters+buffers+input {base / MiB:.1f}; activations: "
              f"estimate {est.peak_activation_bytes / MiB:.1f}, profiler "
              f"{(measured - base) / MiB:.1f}")
    print("estimate = parameters + buffers + input + peak of live activations (cnncost); "
          "target: within 10% of the measured peak.\n'+conv tmp' = the same liveness plus "
          "oneDNN's transient blocked-layout copy inside each convolution, max(input + "
          "weight, output) bytes - the part of the measured peak the estimate leaves out.")


if __name__ == "__main__":
    main()

"""cnncost's training-step peak memory estimate vs the peak of a real step (batch 8, 224x224).

    python benchmarks/bench_train_memory.py [--batch 8] [--device cpu|cuda] [--steps 2]

Models: ResNet-18 and MobileNetV2, each as the compiled spec (specs/resnet18.yaml,
specs/mobilenetv2.yaml) and as a torchvision-style eager nn.Module (benchmarks/tv_models.py:
in-place ReLUs, residual adds in Python); optimizers SGD and Adam (torch.optim, defaults).

Estimate: ``cnncost.analyze(..., mode="train").totals.training_memory_bytes[optimizer]`` =
parameters + buffers + input + optimizer state + the step's peak of live tensors, simulated
on the meta device in execution order (what autograd saves, gradients as they are made,
backward temporaries), or the update's needs when larger.

Measured (cnncost.measure.bench_train.measure_peak, the method of ``cnncost bench --train``):
after ``--steps`` untimed steps (so the optimizer's state exists), one step (zero_grad to
None, forward, loss = sum of the outputs, backward, optimizer step) in float32:

- CPU: torch.profiler's memory events (every allocation and free of PyTorch's CPU allocator,
  oneDNN's buffers included) summed in time order; the largest running sum, plus the bytes of
  parameters, buffers, optimizer state and input that exist before the step;
- CUDA: ``torch.cuda.max_memory_allocated`` over the step (reset just before it).

Printed per case: estimate, measured, their ratio, and the estimate's parts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import tv_models  # noqa: E402

import cnncost  # noqa: E402
from cnncost.measure.bench_train import make_optimizer, make_step, measure_peak  # noqa: E402

MiB = 2**20
OPTIMIZERS = ("sgd", "adam")


def cases() -> list[tuple[str, Any, Callable[[], nn.Module]]]:
    """(label, what cnncost.analyze counts, a factory of the real module)."""
    out: list[tuple[str, Any, Callable[[], nn.Module]]] = []
    for spec, fn in (("resnet18", "resnet18"), ("mobilenetv2", "mobilenet_v2")):
        path = str(ROOT / "specs" / f"{spec}.yaml")
        out.append((f"{spec} (spec)", path, lambda p=path: cnncost.build(p)))  # type: ignore[misc]
        make = getattr(tv_models, fn)
        out.append((f"{fn} (nn.Module)", None, make))
    return out


def measured_peak(make: Callable[[], nn.Module], optimizer: str, batch: int,
                  device: torch.device, steps: int) -> int:
    torch.manual_seed(0)
    model = make().to(device).train()
    x = torch.randn(batch, 3, 224, 224, device=device)
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    step = make_step(model, x, opt)
    for _ in range(steps):
        step()
    peak = measure_peak(model, x, opt, step, device)
    del model, opt, step, x
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=2, help="untimed steps before the measured one")
    args = ap.parse_args()
    device = torch.device(args.device)
    b = args.batch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"training-step peak memory at batch {b}, 3x224x224, float32, {name} "
          f"(torch {torch.__version__}); MiB")
    print(f"{'model':26s}{'optimizer':>10s}{'estimate':>10s}{'measured':>10s}{'est/meas':>9s}"
          f"   estimate = weights+input + state + step peak (saved activations)")
    ratios = []
    for label, spec, make in cases():
        target: Any = spec if spec is not None else make()
        table = cnncost.analyze(target, input=(3, 224, 224), batch=b, mode="train")
        t, tr = table.totals, table.totals.train
        assert tr is not None
        for optimizer in OPTIMIZERS:
            t0 = time.perf_counter()
            meas = measured_peak(make, optimizer, b, device, args.steps)
            est = t.training_memory_bytes[optimizer]
            ratios.append(est / meas)
            fixed = t.param_bytes + t.buffer_bytes + t.input_bytes
            print(f"{label:26s}{optimizer:>10s}{est / MiB:10.1f}{meas / MiB:10.1f}"
                  f"{est / meas:9.3f}   {fixed / MiB:.1f} + "
                  f"{tr.optimizer_state_bytes[optimizer] / MiB:.1f} + "
                  f"{t.peak_activation_bytes / MiB:.1f} "
                  f"({tr.saved_activation_bytes / MiB:.1f})  [{time.perf_counter() - t0:.0f} s]")
    worst = max(abs(r - 1) for r in ratios)
    print(f"largest deviation {100 * worst:.1f}% (target: within 10% of the measured peak)")


if __name__ == "__main__":
    main()

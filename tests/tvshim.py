"""Real torchvision models for the tests, also where torchvision's C++ ops cannot load.

PyPI's Linux torchvision wheels are CUDA builds. Beside the CPU torch that CI installs, their
``_C.so`` does not load, and torchvision 0.28 then fails at import (it registers a fake
kernel for ``torchvision::nms``, an op that only ``_C.so`` defines). cnncost itself reports
that as a one-line error (tests/test_sources.py checks it in a fresh process). For the
tests that count real torchvision models, this module defines the two C++ ops the models
use, ``torchvision::nms`` and ``torchvision::roi_align``, as CPU kernels written in Python
before torchvision is imported; everything else is torchvision's own code. Each op stays
one op, as with the real ``_C.so``, so counters see the same calls.

This is test scaffolding only: cnncost never patches torchvision.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import torch

_LIB: Any = None


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as torchvision's CPU kernel: indices of the kept
    boxes by decreasing score; a box goes when its IoU with a kept one exceeds the threshold."""
    order = scores.argsort(descending=True)
    boxes = dets[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        lt = torch.maximum(boxes[i, :2], boxes[:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        suppressed |= inter / (area[i] + area - inter) > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def _define_ops() -> None:
    global _LIB
    if _LIB is not None:
        return
    _LIB = torch.library.Library("torchvision", "DEF")
    _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIB.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt "
                "pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
    _LIB.impl("nms", _nms, "CPU")

    def roi_align(*args: Any) -> torch.Tensor:
        from torchvision.ops.roi_align import _roi_align  # torchvision's Python version

        eager = getattr(_roi_align, "__wrapped__", _roi_align)  # not torch.compile'd
        return eager(*args)  # type: ignore[no-any-return]

    _LIB.impl("roi_align", roi_align, "CPU")


def _extension_loads() -> bool:
    """Whether torchvision's own _C.so loads beside this torch (tried in a child process,
    so a failure leaves this one untouched)."""
    import subprocess

    code = ("import importlib.util, pathlib, torch; "
            "spec = importlib.util.find_spec('torchvision'); "
            "so = next(pathlib.Path(spec.origin).parent.glob('_C*.so')); "
            "torch.ops.load_library(str(so))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          check=False).returncode == 0


def torchvision_models() -> ModuleType | None:
    """``torchvision.models``, or None when torchvision is not installed."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    if "torchvision" not in sys.modules and not _extension_loads():
        _define_ops()
        import torchvision.ops

        # (torchvision.ops.roi_align is the function; its module is in sys.modules)
        boxes, roi_align = (sys.modules[f"torchvision.ops.{n}"] for n in ("boxes", "roi_align"))
        boxes._assert_has_ops = lambda: None  # type: ignore[attr-defined]
        roi_align._has_ops = lambda: True  # type: ignore[attr-defined]
        roi_align._assert_has_ops = lambda: None  # type: ignore[attr-defined]
    import torchvision.models

    return torchvision.models

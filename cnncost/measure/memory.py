"""Will a real run fit: the memory it needs (from the meta-device count) against what is free.

Before anything real is allocated, parameters + buffers + input + peak live activations,
plus 25% headroom, are compared with the free RAM (the smaller of the OS's and a container's
cgroup figure) or GPU memory; a run that would not fit raises InsufficientMemoryError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnncost.errors import CnnCostError
from cnncost.render.fmt import human_bytes
from cnncost.table import CostTable

HEADROOM = 1.25  # allocator slack, workspaces and the framework's own buffers


class InsufficientMemoryError(CnnCostError):
    """The real run would not fit in the free RAM / GPU memory (refused before allocating)."""


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device`` now; None when it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    candidates: list[int] = []
    try:
        import psutil

        candidates.append(int(psutil.virtual_memory().available))
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
        except (OSError, ValueError, IndexError):
            pass
    # A container's cgroup limit can be far below what the host reports.
    cgroup = _cgroup_free()
    if cgroup is not None:
        candidates.append(cgroup)
    return min(candidates) if candidates else None


def _cgroup_free() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text().strip())
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        limit_v1 = int((root / "memory/memory.limit_in_bytes").read_text().strip())
        if limit_v1 >= 1 << 60:
            return None
        used = int((root / "memory/memory.usage_in_bytes").read_text().strip())
        return limit_v1 - used
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class MemoryEstimate:
    """What the real run needs (from the meta-device count) and what is free."""

    param_bytes: int
    input_bytes: int
    peak_activation_bytes: int
    required_bytes: int  # (params + buffers + input + peak activations) x HEADROOM
    free_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Memory the real forward pass needs, from a CostTable counted at the run's batch/dtype."""
    t = table.totals
    need = t.param_bytes + t.buffer_bytes + t.input_bytes + t.peak_activation_bytes
    return MemoryEstimate(t.param_bytes + t.buffer_bytes, t.input_bytes,
                          t.peak_activation_bytes, math.ceil(need * HEADROOM),
                          free_memory(device))


def check_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Raise InsufficientMemoryError when the run would not fit in free memory."""
    est = estimate_memory(table, device)
    if est.free_bytes is not None and est.required_bytes > est.free_bytes:
        where = "GPU memory" if device.type == "cuda" else "RAM"
        raise InsufficientMemoryError(
            f"{table.model}: batch {table.input[0]} at {table.dtype} needs about "
            f"{human_bytes(est.required_bytes)} (weights {human_bytes(est.param_bytes)}, input "
            f"{human_bytes(est.input_bytes)}, peak activations "
            f"{human_bytes(est.peak_activation_bytes)}, +{round((HEADROOM - 1) * 100)}% "
            f"headroom) but only {human_bytes(est.free_bytes)} of {where} is free; "
            "use a smaller --batch or --input")
    return est

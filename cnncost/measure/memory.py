"""Will a real run fit: the memory it needs (from the meta-device count) against what is free.

Before anything real is allocated, the counter's own peak (parameters + buffers + input +
the most activations alive at once: allocator-exact for the tensors themselves) plus the
backend's workspace is compared with the tightest limit on this process: free RAM, its
cgroup's, ``ulimit -v`` (cnncost.count.limits), or free GPU memory. A run that would not
fit raises InsufficientMemoryError, naming the limit.

The workspace, measured (growth of the peak RSS over the model's, a forward pass in
inference mode on this project's 2-core CPU machine, torch 2.13, against the counter's live
activations): the runtime's one-time state (oneDNN primitives, thread pools: 44-53 MiB) and
the allocator's slack over the live bytes. glibc keeps freed blocks of the sizes a network
makes, so the slack is largest on networks whose tensors change size a little at each layer
and grows, unevenly, over repeated passes as timing makes them: on DenseNet-121 at batch 32
(257 MiB of live activations) the first pass grew the RSS by 358-415 MiB, six to fifteen
passes by 411-965 MiB (1 or 2 threads), i.e. up to 3.7x the live activations on top of the
weights; ResNet-18 1.0x, GoogLeNet 1.1x, MobileNetV2, EfficientNet-B0 and ResNet-50 1.3x.
CPU_SLACK covers the worst of these. CUDA's caching allocator rounds and caches blocks;
cuDNN and cuBLAS take workspaces and handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cnncost.count import limits
from cnncost.count.limits import Free
from cnncost.errors import CnnCostError
from cnncost.fmt import human_bytes
from cnncost.table import CostTable

CPU_RUNTIME = 64 << 20  # the runtime's one-time state: 44-53 MiB measured
CPU_SLACK = 3.0  # allocator slack over the live activations, x their peak (measured: 2.5)
CUDA_RUNTIME = 512 << 20  # cuDNN / cuBLAS handles and workspaces
CUDA_SLACK = 0.25


class InsufficientMemoryError(CnnCostError):
    """The real run would not fit in the free RAM / GPU memory (refused before allocating)."""


def free_limit(device: torch.device) -> Free | None:
    """Bytes free for new tensors on ``device`` now, and the limit that says so."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return Free(int(free), f"free memory of {torch.cuda.get_device_name(device)}")
    return limits.free_bytes()


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on ``device`` now; None when it cannot be told."""
    found = free_limit(device)
    return None if found is None else found.bytes


def workspace_bytes(table: CostTable, device: torch.device) -> int:
    """What a real run takes beyond its tensors' bytes: the runtime's state and the
    allocator's slack over the live activations (see the module docstring)."""
    if device.type == "cuda":
        return CUDA_RUNTIME + int(CUDA_SLACK * table.totals.peak_activation_bytes)
    return CPU_RUNTIME + int(CPU_SLACK * table.totals.peak_activation_bytes)


@dataclass(frozen=True)
class MemoryEstimate:
    """What the real run needs (from the meta-device count) and what is free."""

    param_bytes: int
    input_bytes: int
    peak_activation_bytes: int
    workspace_bytes: int
    required_bytes: int  # the counter's peak (weights + input + activations) + workspace
    free_bytes: int | None
    limit: str | None = None  # which limit free_bytes is

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def estimate_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Memory the real forward pass needs, from a CostTable counted at the run's batch/dtype."""
    t = table.totals
    work = workspace_bytes(table, device)
    free = free_limit(device)
    return MemoryEstimate(t.param_bytes + t.buffer_bytes, t.input_bytes,
                          t.peak_activation_bytes, work, t.peak_memory_bytes + work,
                          None if free is None else free.bytes,
                          None if free is None else free.limit)


def check_memory(table: CostTable, device: torch.device) -> MemoryEstimate:
    """Raise InsufficientMemoryError when the run would not fit in free memory."""
    est = estimate_memory(table, device)
    if est.free_bytes is not None and est.required_bytes > est.free_bytes:
        raise InsufficientMemoryError(
            f"{table.model}: batch {table.input[0]} at {table.dtype} needs about "
            f"{human_bytes(est.required_bytes)} (weights {human_bytes(est.param_bytes)}, input "
            f"{human_bytes(est.input_bytes)}, peak activations "
            f"{human_bytes(est.peak_activation_bytes)}, runtime and allocator "
            f"{human_bytes(est.workspace_bytes)}) but only {human_bytes(est.free_bytes)} is "
            f"free ({est.limit}); use a smaller --batch or --input")
    return est

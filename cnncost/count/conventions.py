"""The counting conventions: policies, dtypes and the text every report prints (one source).

Renderers and cross-checks quote these strings instead of writing their own; the per-op
costs behind them are the formulas in cnncost.count.formulas. No torch at import.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from cnncost.errors import UsageError

if TYPE_CHECKING:
    import torch


class Policy(str, Enum):
    """Which ops count toward FLOPs."""

    ALL = "all"
    CONV_LINEAR = "conv+linear"


# The analysis dtypes, with their bytes per element.
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

MAC_DEFINITION = "1 MAC = 1 multiply + 1 add"
MACS_FROM = f"{MAC_DEFINITION}; MACs come from conv, linear and matrix products only"
FLOPS_CONV_LINEAR = "FLOPs = 2 x MACs (policy conv+linear: only conv/linear/matmul count)"
FLOPS_ALL = ("FLOPs = 2 x MACs + bias adds + per-element costs of norm, activation, pooling "
             "and elementwise ops (policy all; costs in cnncost.formulas)")
CONV_MACS = ("conv MACs = N x C_out x H_out x W_out x (C_in/groups) x K_h x K_w; transposed "
             "conv counts per input element; dilation changes the receptive field, not MACs")
PARAMS = "params = trainable parameters; buffers (e.g. BN running stats) are counted apart"
TRAINING_MEMORY = ("training memory = parameters + gradients + optimizer state + saved "
                   "activations (estimate)")


def dtype_check(dtype: str | torch.dtype) -> str:
    """The name of an analysis dtype (float32, float16, bfloat16, float64), without torch."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise UsageError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}")
    return name


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A torch dtype from its name (float32, float16, bfloat16, float64)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    dt: torch.dtype = getattr(torch, dtype_check(dtype))
    return dt


def check_batch(batch: int) -> None:
    """A batch size is a whole number from 1 to 2^20."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1 << 20:
        raise UsageError(f"batch={batch!r} must be a whole number from 1 to {1 << 20}")


def dtype_name(dtype: torch.dtype | str) -> str:
    """``float32`` for torch.float32 (or its name)."""
    return str(dtype).removeprefix("torch.")


def dtype_bytes(dtype: torch.dtype | str) -> int:
    """Bytes per element of a dtype."""
    name = dtype_name(dtype)
    if name in DTYPE_BYTES:
        return DTYPE_BYTES[name]
    import torch

    return torch.empty((), dtype=parse_dtype(dtype), device="meta").element_size()


def memory_convention(dtype: torch.dtype | str) -> str:
    """What the memory figures include, at ``dtype``."""
    return (f"memory at {dtype_name(dtype)} ({dtype_bytes(dtype)} bytes/element); "
            "activation_bytes = sum of every layer's output; peak = input + parameters + "
            "buffers + live activations in execution order (inference)")


def conventions(policy: Policy | str, dtype: torch.dtype | str) -> tuple[str, ...]:
    """The counting conventions printed in every report's header."""
    flops = FLOPS_CONV_LINEAR if Policy(policy) is Policy.CONV_LINEAR else FLOPS_ALL
    return (MACS_FROM, flops, CONV_MACS, PARAMS, memory_convention(dtype), TRAINING_MEMORY)

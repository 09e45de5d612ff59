"""The counting conventions: policies, dtypes and the text every report prints (one source).

Renderers and cross-checks quote these strings instead of writing their own; the per-op
costs behind them are the formulas in cnncost.count.formulas. No torch at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnncost.caches import cache
from cnncost.errors import SpecError, UsageError

# What a report may hold (its schema's values), re-exported where counting conventions live.
from cnncost.table import DTYPE_BYTES as DTYPE_BYTES
from cnncost.table import Mode as Mode
from cnncost.table import Policy as Policy

if TYPE_CHECKING:
    import torch

    from cnncost.spec import ModelSpec

@dataclass(frozen=True)
class Optimizer:
    """An optimizer's update, per trainable parameter (torch.optim's defaults: no weight
    decay, no dampening, no Nesterov, Adam without amsgrad; the per-tensor update)."""

    name: str
    label: str
    flops_per_param: int
    state_copies: int  # parameter-sized state tensors it keeps between steps
    temporaries: int  # parameter-sized temporaries of one tensor's update, at once
    update: str  # the update, with the FLOPs of each line


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("sgd", "SGD", 2, 0, 0, "w -= lr x g (2)"),
    Optimizer("sgd_momentum", "SGD-momentum", 4, 1, 0, "b = mu x b + g (2); w -= lr x b (2)"),
    Optimizer("adam", "Adam", 13, 2, 2,
              "m = m + (1 - b1)(g - m) (3); v = b2 x v + (1 - b2) x g x g (4); "
              "d = sqrt(v) / sqrt(1 - b2^t) + eps (3); w -= lr / (1 - b1^t) x m / d (3)"),
)}

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


TRAIN_STEP = ("train mode: one step = forward in training behaviour (batch norm on batch "
              "statistics, dropout active) + backward of loss = sum of the outputs (its "
              "gradient, all ones, is not counted) + the optimizer's update; MACs and FLOPs "
              "= forward + backward (+ update in step_flops)")
BACKWARD_MACS = ("backward: a conv's or linear layer's input gradient and weight gradient each "
                 "cost its forward MACs (2x in all); the first layer computes no input "
                 "gradient and frozen parameters (requires_grad=False) no weight gradient; "
                 "a gradient of the weights is a result that reaches a parameter's .grad")
FLOP_COUNTER_DIFFERENCE = ("vs torch's FlopCounterMode: a grouped conv's weight gradient is "
                           "counted here at its forward's MACs; FlopCounterMode ignores the "
                           "groups there and counts it G times")


def optimizer_convention(policy: Policy | str) -> str:
    """The optimizers' per-parameter update cost and state."""
    rules = "; ".join(f"{o.label} {o.flops_per_param} FLOPs ({o.update}), {o.state_copies} "
                      "state tensor(s)" for o in OPTIMIZERS.values())
    counted = ("counted in step_flops" if Policy(policy) is Policy.ALL else
               "not counted under policy conv+linear")
    return f"optimizer update per trainable parameter ({counted}): {rules}"


def train_memory_convention(dtype: torch.dtype | str) -> str:
    """What the training memory figures include, at ``dtype``."""
    adam = OPTIMIZERS["adam"]
    return (f"memory at {dtype_name(dtype)} ({dtype_bytes(dtype)} bytes/element); training "
            "memory = parameters + buffers + input + optimizer state + the step's peak of "
            "live tensors in execution order (what autograd saves, once per storage; "
            "gradients as they are made, set to None before the step; backward temporaries) "
            "or, when larger, the gradients plus the update's temporaries "
            f"({adam.label}: {adam.temporaries} copies of the largest parameter); "
            "peak_memory_bytes = the step's peak without optimizer state")


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


# Specs already checked: id -> (the spec, its layers' batch needs: (inference, train, layer)).
_NEEDS: dict[int, tuple[Any, list[tuple[int, int, Any]]]] = cache("count: layers' batch needs")


def check_layer_batch(spec: ModelSpec, batch: int, train: bool = False) -> None:
    """Refuse a batch smaller than a layer of ``spec`` needs (Built.min_batch: a group norm
    with one value per group, a training step's batch norm with one value per channel),
    as a SpecError at that layer, before PyTorch refuses it mid-run."""
    found = _NEEDS.get(id(spec))
    if found is None or found[0] is not spec:
        if len(_NEEDS) > 1000:
            _NEEDS.clear()
        found = _NEEDS[id(spec)] = (spec, [
            (layer.built.min_batch.inference, layer.built.min_batch.train, layer)
            for layer in spec.layers
            if layer.built is not None and layer.built.min_batch is not None])
    for inference, training, layer in found[1]:
        least = training if train else inference
        if batch < least:
            step = " in a training step" if train else ""
            raise SpecError(f"{layer.built.min_batch.why}, which PyTorch refuses at batch "
                            f"{batch}{step}; expected --batch {least} or more",
                            layer.loc.file, layer.loc.line, layer.loc.where)


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


def conventions(policy: Policy | str, dtype: torch.dtype | str,
                mode: Mode | str = Mode.INFERENCE) -> tuple[str, ...]:
    """The counting conventions printed in every report's header."""
    flops = FLOPS_CONV_LINEAR if Policy(policy) is Policy.CONV_LINEAR else FLOPS_ALL
    if Mode(mode) is Mode.TRAIN:
        return (MACS_FROM, flops, CONV_MACS, PARAMS, TRAIN_STEP, BACKWARD_MACS,
                optimizer_convention(policy), train_memory_convention(dtype),
                FLOP_COUNTER_DIFFERENCE)
    return (MACS_FROM, flops, CONV_MACS, PARAMS, memory_convention(dtype), TRAINING_MEMORY)

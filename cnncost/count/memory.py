"""Memory figures and table assembly: a counted run's layers -> the frozen CostTable.

Peak inference memory = input + parameters + buffers + the dispatch mode's peak of live
activations; training memory = parameters + gradients + optimizer state + the activations
saved for the backward pass (an estimate: every layer's output and the input). No torch
here: both engines assemble their tables with :func:`assemble_table`.

A counted training step (train mode, cnncost.count.train) replaces that estimate by the
step itself: parameters + buffers + input + optimizer state + the larger of the step's peak
of live tensors and what the update needs (the gradients, still live, plus its temporaries).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cnncost.count.conventions import (
    OPTIMIZERS,
    Mode,
    Policy,
    conventions,
    dtype_bytes,
    dtype_name,
)
from cnncost.count.formulas import policy_flops
from cnncost.errors import ModelRunError, UnsupportedOpError
from cnncost.table import (
    CostRow,
    CostTable,
    Factors,
    Totals,
    TrainCost,
    TrainTotals,
    formula_text,
    sum_rows,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnncost.count.limits import Free
    from cnncost.count.mode import Acc, CostCounterMode


@dataclass(frozen=True)
class StepRecord:
    """What one counted training step left (cnncost.count.train): memory, in bytes.

    ``peak_bytes``: the largest sum of live tensors made during the step (activations,
    saved tensors, gradients, temporaries; not the parameters, buffers or input, which
    exist before); ``end_bytes``: what is still live when the backward has finished (the
    parameters' gradients, the output); ``saved_bytes``: the storages autograd saved for
    the backward (parameters, buffers and input excluded).
    """

    peak_bytes: int
    end_bytes: int
    saved_bytes: int


@dataclass(frozen=True)
class Trainable:
    """The parameters that get a gradient: how many values, their bytes, the largest's."""

    params: int
    bytes: int
    largest_bytes: int


def nbytes(tensors: Iterator[torch.Tensor], elem: int | None) -> int:
    """Bytes of weights at the analysis dtype (``elem`` bytes per floating-point element) or
    their own (integer, or every one where ``elem`` is None)."""
    return sum(t.numel() * (elem if elem and t.is_floating_point() else t.element_size())
               for t in tensors)


def build_table(model_name: str, source: str, description: str,
                weights: nn.Module | tuple[int, int], x: torch.Tensor, accs: list[Acc],
                mode: CostCounterMode, policy: Policy, dtype: torch.dtype,
                strict: bool, step: StepRecord | None = None,
                trained: Trainable | None = None, own_dtypes: bool = False) -> CostTable:
    """The table of a counted run: one row per layer, totals, memory, conventions.

    ``weights`` is the module whose parameters and buffers were counted, or their bytes
    (parameter bytes, buffer bytes); ``strict`` turns ops without a formula into an error.
    ``step`` and ``trained`` (its parameters that get a gradient) make it a training step's
    table. ``own_dtypes``: the weights' bytes at their own dtypes (a module that mixes
    several), not at the analysis dtype.
    """
    rows = tuple(_row(a, policy, step is not None) for a in accs)
    uncounted: Counter[str] = Counter()
    for a in accs:
        uncounted.update(a.uncounted)
    elem = None if own_dtypes else x.element_size()
    trainable = None
    if not isinstance(weights, tuple):
        trainable = nbytes((p for p in weights.parameters() if p.requires_grad), elem)
        weights = nbytes(weights.parameters(), elem), nbytes(weights.buffers(), elem)
    return assemble_table(model_name, source, description, tuple(x.shape), dtype, policy, rows,
                          uncounted, weights, mode.peak, strict, trainable, step, trained)


def assemble_table(model_name: str, source: str, description: str, input_shape: tuple[int, ...],
                   dtype: str | torch.dtype, policy: Policy, rows: tuple[CostRow, ...],
                   uncounted: Mapping[str, int], weights: tuple[int, int],
                   peak_activation_bytes: int, strict: bool,
                   trainable_bytes: int | None = None, step: StepRecord | None = None,
                   trained: Trainable | None = None) -> CostTable:
    """The table from its rows: totals, memory and conventions (``weights``
    are the parameter and buffer bytes; ``trainable_bytes`` those of the parameters that
    train, default all). ``strict`` turns ops without a formula into an error; ``step``
    (with ``trained``) makes it a training step's table."""
    check_strict(strict, uncounted)
    input_bytes = math.prod(input_shape) * dtype_bytes(dtype)
    totals = _totals(rows, weights, input_bytes, peak_activation_bytes, trainable_bytes)
    mode = Mode.INFERENCE if step is None else Mode.TRAIN
    if step is not None:
        totals = train_totals(totals, rows, step, trained or Trainable(0, 0, 0), policy)
    return CostTable(
        model=model_name,
        source=source,
        input=input_shape,
        dtype=dtype_name(dtype),
        policy=policy.value,
        conventions=conventions(policy, dtype, mode),
        layers=rows,
        totals=totals,
        uncounted=dict(uncounted),
        description=description,
        mode=mode.value,
    )


def _row(a: Acc, policy: Policy, train: bool = False) -> CostRow:
    return CostRow(
        name=a.name,
        kind=a.kind,
        input_shape=a.input_shape,
        output_shape=a.output_shape,
        params=a.params,
        buffers=a.buffers,
        macs=a.macs,
        flops=policy_flops(a.macs, a.elem_flops, policy.value),
        output_bytes=a.output_bytes,
        receptive_field=a.receptive_field,
        receptive_field_axes=a.receptive_field_axes,
        formula=formula_text(a.factors),
        uncounted=dict(a.uncounted),
        calls=max(a.calls, 1),
        source=a.source,
        factors=tuple(a.factors),
        frozen_params=a.frozen,
        train=_train_cost(a, policy) if train else None,
    )


def check_strict(strict: bool, uncounted: Mapping[str, int]) -> None:
    """``strict``: ops without a formula are an error (the table lists them otherwise)."""
    if strict and uncounted:
        ops = ", ".join(f"{op} ({n}x)" for op, n in sorted(uncounted.items()))
        raise UnsupportedOpError(f"ops without a counting formula: {ops}")


def _train_cost(a: Acc, policy: Policy) -> TrainCost:
    macs = a.grad_input_macs + a.grad_weight_macs
    return TrainCost(
        grad_input_macs=a.grad_input_macs,
        grad_weight_macs=a.grad_weight_macs,
        backward_flops=policy_flops(macs, a.grad_input_flops + a.grad_weight_flops,
                                    policy.value),
        saved_bytes=a.saved_bytes,
        backward_formula=backward_formula_text(a.grad_factors),
        factors=tuple(a.grad_factors),
    )


def backward_formula_text(factors: Sequence[tuple[str, Factors]]) -> str:
    """``dL/dx: (4x4x5) x (3x3x3) = 2,160; dL/dW: ...``: each gradient's MACs, as counted."""
    parts = []
    for side, label in (("input", "dL/dx"), ("weight", "dL/dW")):
        mine = [f for s, f in factors if s == side]
        if mine:
            parts.append(f"{label}: {formula_text(mine)}")
    return "; ".join(parts)


def _totals(rows: tuple[CostRow, ...], weights: tuple[int, int], input_bytes: int,
            peak_activation_bytes: int, trainable_bytes: int | None) -> Totals:
    return totals_of(sum_rows(rows), sum(r.frozen_params for r in rows), weights, input_bytes,
                     peak_activation_bytes, trainable_bytes)


def totals_of(sums: Mapping[str, int], frozen_params: int, weights: tuple[int, int],
              input_bytes: int, peak_activation_bytes: int,
              trainable_bytes: int | None = None) -> Totals:
    """The totals from the sums of the rows' summed fields (table.SUMMED), the frozen
    parameters, the parameter and buffer bytes and the peak of the activations."""
    param_bytes, buffer_bytes = weights
    return Totals(
        params=sums["params"],
        buffers=sums["buffers"],
        macs=sums["macs"],
        flops=sums["flops"],
        activation_bytes=sums["output_bytes"],
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        input_bytes=input_bytes,
        peak_activation_bytes=peak_activation_bytes,
        peak_memory_bytes=param_bytes + buffer_bytes + input_bytes + peak_activation_bytes,
        training_memory_bytes=training_memory(param_bytes, buffer_bytes,
                                              sums["output_bytes"] + input_bytes,
                                              trainable_bytes),
        frozen_params=frozen_params,
    )


def train_totals(totals: Totals, rows: tuple[CostRow, ...], step: StepRecord,
                 trained: Trainable, policy: Policy) -> Totals:
    """A training step's totals: its backward, the update per optimizer, its memory.

    Memory per optimizer = parameters + buffers + input + optimizer state + the larger of
    the step's peak of live tensors and, at the update, what is still live (the
    gradients) plus the update's temporaries (of its largest parameter).
    """
    sums = sum_rows(rows)
    fixed = totals.param_bytes + totals.buffer_bytes + totals.input_bytes
    state = {n: o.state_copies * trained.bytes for n, o in OPTIMIZERS.items()}
    update = {n: o.flops_per_param * trained.params if policy is Policy.ALL else 0
              for n, o in OPTIMIZERS.items()}
    memory = {n: fixed + state[n] + max(step.peak_bytes,
                                        step.end_bytes + o.temporaries * trained.largest_bytes)
              for n, o in OPTIMIZERS.items()}
    train = TrainTotals(
        backward_macs=sums["backward_macs"],
        grad_input_macs=sums["grad_input_macs"],
        grad_weight_macs=sums["grad_weight_macs"],
        backward_flops=sums["backward_flops"],
        trainable_params=trained.params,
        grad_bytes=trained.bytes,
        saved_activation_bytes=step.saved_bytes,
        optimizer_state_bytes=state,
        optimizer_flops=update,
        step_flops={n: totals.flops + sums["backward_flops"] + update[n] for n in OPTIMIZERS},
    )
    return replace(totals, peak_activation_bytes=step.peak_bytes,
                   peak_memory_bytes=fixed + step.peak_bytes, training_memory_bytes=memory,
                   train=train)


def training_memory(param_bytes: int, buffer_bytes: int, saved_bytes: int,
                    trainable_bytes: int | None = None) -> dict[str, int]:
    """Training memory per optimizer: every weight + gradients of the trainable ones +
    optimizer state of the trainable ones (momentum: one copy, Adam: two) + buffers + the
    activations saved for backward. ``trainable_bytes`` defaults to every parameter."""
    grads = param_bytes if trainable_bytes is None else trainable_bytes
    fixed = param_bytes + buffer_bytes + saved_bytes
    return {
        "sgd": fixed + grads,
        "sgd_momentum": fixed + 2 * grads,
        "adam": fixed + 3 * grads,
    }


# A real run needs more than its tensors' bytes (allocator slack, kernels' scratch space).
HEADROOM = 1.5


def free_ram_bytes() -> int | None:
    """Memory this process may still allocate (free RAM, its cgroup, ulimit: the tightest,
    cnncost.count.limits), or None if unknown."""
    found = free_limit()
    return None if found is None else found.bytes


def free_limit() -> Free | None:
    """The tightest limit on new memory now, and its name (cnncost.count.limits)."""
    from cnncost.count.limits import free_bytes

    return free_bytes()


def real_run_budget() -> tuple[int, str] | None:
    """What a count on real tensors may allocate in all: the memory free when it starts
    (the tightest limit, cnncost.count.limits) over the headroom, and that limit's name;
    None where no limit is known. The counter holds a run to it op by op
    (cnncost.count.mode), so a run that would outgrow it stops before it does."""
    found = free_limit()
    return None if found is None else (int(found.bytes / HEADROOM), found.limit)


def check_free_memory(label: str, need_bytes: int, why: str) -> None:
    """Refuse a count on real CPU tensors that would not fit in free RAM (with headroom).

    ``need_bytes`` is what is known before running: the input and the activations the meta
    run reached before it stopped (a lower bound; the weights exist already)."""
    free = free_ram_bytes()
    need = int(need_bytes * HEADROOM)
    if free is not None and need > free:
        raise ModelRunError(f"{label}: counting needs real tensors ({why}), at least "
                            f"{need:,} bytes, but only {free:,} bytes of RAM are free; use "
                            "a smaller --batch or --input")

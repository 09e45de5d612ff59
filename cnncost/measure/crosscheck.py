"""Cross-check cnncost's per-layer MACs against fvcore's FlopCountAnalysis.

fvcore traces the model with ``torch.jit.trace`` on a real CPU tensor and counts one
fused multiply-add as one "flop", so its conv / linear / matmul counts are MACs in
cnncost's sense. Both sides run the same module (for a spec: the compiled GraphModule) on
the same input at batch 1 (MACs are linear in the batch), and are compared layer by layer.

fvcore also counts a few non-MAC ops (batch norm, adaptive pooling, upsampling, group and
layer norm) in its total; those are conventions, not disagreements: cnncost counts them as
per-element FLOPs (policy ``all``), never as MACs. fvcore has no handle at all for some
MAC-carrying ops (attention, recurrent layers, baddbmm, string-padded convs) and counts 0
there; cnncost counts their products, and such a difference is named (``FVCORE_BLIND``).
Any other difference is unexplained.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnncost.errors import CnnCostError, UsageError

if TYPE_CHECKING:
    from torch import nn

    from cnncost.sources import Target
    from cnncost.table import CostTable

# fvcore operator names (its handles' simplified names) that are multiply-accumulates.
FVCORE_MAC_OPS = frozenset({"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"})

# fvcore's handles for non-MAC ops: what fvcore counts (its own constants, from
# fvcore/nn/jit_handles.py) and per which element. cnncost's side of each convention is
# never written here: it is counted by cnncost on a one-op module (_probe_module).
FVCORE_HANDLES: dict[str, tuple[str, str]] = {
    "batch_norm": ("inference batch norm as 2 flops per element (1 without affine)",
                   "element"),
    "group_norm": ("group norm as 5 flops per element (4 without affine)", "element"),
    "layer_norm": ("layer norm as 5 flops per element (4 without affine)", "element"),
    "instance_norm": ("instance norm as 5 flops per element (4 without affine)", "element"),
    "adaptive_avg_pool2d": ("adaptive average pooling as 1 flop per input element",
                            "input element"),
    "upsample_nearest2d": ("nearest upsampling as 1 flop per output element",
                           "output element"),
    "upsample_bilinear2d": ("bilinear upsampling as 4 flops per output element",
                            "output element"),
    "grid_sampler": ("grid sampling as 4 flops per output element", "output element"),
}


@dataclass(frozen=True)
class Convention:
    """How fvcore and cnncost each count one non-MAC op (a convention, not a disagreement)."""

    op: str  # fvcore's handle
    fvcore: str = ""  # what fvcore counts; "" for a handle not in FVCORE_HANDLES
    per: str = "element"
    macs: int = 0  # cnncost's MACs per ``per``
    flops: float | None = None  # cnncost's FLOPs per ``per`` under policy all; None: uncounted


def _probe_module(name: str) -> Any:
    """A module that runs the one op fvcore's handle ``name`` counts."""
    import torch
    from torch import nn

    class GridSample(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            grid = torch.zeros(x.shape[0], 3, 3, 2, device=x.device, dtype=x.dtype)
            return nn.functional.grid_sample(x, grid, align_corners=False)

    return {
        "batch_norm": lambda: nn.BatchNorm2d(2),
        "group_norm": lambda: nn.GroupNorm(1, 2),
        "layer_norm": lambda: nn.LayerNorm(4),
        "instance_norm": lambda: nn.InstanceNorm2d(2, affine=True),
        "adaptive_avg_pool2d": lambda: nn.AdaptiveAvgPool2d(1),
        "upsample_nearest2d": lambda: nn.Upsample(scale_factor=2),
        "upsample_bilinear2d": lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
        "grid_sampler": GridSample,
    }[name]().eval()


def convention(op: str) -> Convention:
    """fvcore's count of ``op`` beside cnncost's, counted by cnncost on a one-op module."""
    import math

    from cnncost.count.drivers import count_module

    if op not in FVCORE_HANDLES:
        return Convention(op)
    fvcore, per = FVCORE_HANDLES[op]
    table = count_module(_probe_module(op), (2, 4, 4), policy="all")
    row = table.layers[-1]
    elements = math.prod(row.output_shape if per == "output element" else table.input)
    flops = None if table.uncounted and not table.totals.flops else (
        table.totals.flops / elements)
    return Convention(op, fvcore, per, table.totals.macs // elements, flops)


_RECURRENT = ("fvcore has no handle for {op} (a recurrent layer): it counts 0 there; cnncost "
              "counts the input and hidden matrix products of every gate at every step as "
              "MACs")

# MAC-carrying ATen ops fvcore has no handle for: a difference there is fvcore's blind spot,
# a convention (fvcore leaves these products out), not a disagreement on any count.
FVCORE_BLIND = {
    "aten::baddbmm": "fvcore has no handle for aten::baddbmm: it counts 0 there",
    "aten::_convolution_mode": "fvcore has no handle for convolutions with string padding "
                               "('same'/'valid' trace to aten::_convolution_mode): it counts "
                               "0 there",
    "aten::scaled_dot_product_attention": "fvcore has no handle for "
                                          "aten::scaled_dot_product_attention: it counts 0 "
                                          "there; cnncost counts attention's Q x K^T and "
                                          "weights x V products as MACs",
    "aten::_native_multi_head_attention": "fvcore has no handle for "
                                          "aten::_native_multi_head_attention "
                                          "(nn.MultiheadAttention's inference fast path): it "
                                          "counts 0 there; cnncost counts its projections and "
                                          "attention products as MACs",
    **{f"aten::{op}": _RECURRENT.format(op=f"aten::{op}")
       for op in ("lstm", "gru", "rnn_tanh", "rnn_relu")},
}


class CrossCheckError(CnnCostError):
    """cnncost and fvcore disagree on some layer's MACs with no known convention."""

    exit_code = 1


@dataclass(frozen=True)
class CrossRow:
    """One layer: cnncost's MACs, fvcore's MAC-op count, and fvcore's other ops."""

    name: str
    ours: int
    fvcore: int
    fvcore_other: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def delta(self) -> int:
        """cnncost's MACs minus fvcore's MAC-op count (conv/linear/matmul)."""
        return self.ours - self.fvcore

    @property
    def fvcore_total(self) -> int:
        """Everything fvcore counts for this layer, its non-MAC ops included."""
        return self.fvcore + sum(self.fvcore_other.values())


@dataclass(frozen=True)
class CrossCheck:
    """The comparison of one model: rows in cnncost's layer order, totals, explanations."""

    model: str
    input: tuple[int, ...]
    rows: tuple[CrossRow, ...]
    ours_total: int
    fvcore_macs_total: int
    fvcore_total: int
    conventions: Mapping[str, Convention]
    fvcore_unsupported: Mapping[str, int]

    @property
    def unexplained(self) -> tuple[CrossRow, ...]:
        return tuple(r for r in self.rows if r.delta and not r.note)

    @property
    def agree(self) -> bool:
        return not self.unexplained


def _fvcore_counts(module: nn.Module, x: Any) -> tuple[dict[str, Counter[str]], Counter[str],
                                                        dict[str, Counter[str]]]:
    """fvcore's own (not inherited from children) counts per module, and unsupported ops."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fvcore's import uses deprecated torch.jit APIs
            from fvcore.nn import FlopCountAnalysis
    except ImportError:
        raise UsageError("--crosscheck fvcore needs fvcore: pip install fvcore "
                         "(or pip install 'cnncost[crosscheck]')") from None

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(module, x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        totals = {k: Counter(v) for k, v in fca.by_module_and_operator().items()}
        unsupported = Counter(fca.unsupported_ops())
        unsupported_by = {k: Counter(fca.unsupported_ops(k)) for k in totals}
    return _own(totals), unsupported, _own(unsupported_by)


def _own(by_module: Mapping[str, Counter[str]]) -> dict[str, Counter[str]]:
    """fvcore's per-module counts include the children's: keep each module's own part."""
    own: dict[str, Counter[str]] = {}
    for name, counts in by_module.items():
        mine = Counter(counts)
        for child, child_counts in by_module.items():
            if child != name and _parent(child) == name:
                mine.subtract(child_counts)
        own[name] = +mine
    return own


def _parent(name: str) -> str | None:
    if not name:
        return None
    return name.rpartition(".")[0]


def compare(table: CostTable, module: nn.Module, x: Any) -> CrossCheck:
    """Compare a cnncost table with fvcore on ``module`` run on the real tensor ``x``."""
    own, unsupported, own_unsupported = _fvcore_counts(module, x)
    rows: list[CrossRow] = []
    seen: set[str] = set()
    used: Counter[str] = Counter()
    for r in table.layers:
        key = "" if r.name == "(model)" else r.name
        fv = own.get(key)
        if fv is None:
            # a graph op (residual add, concat): fvcore files it under the enclosing module
            fv_macs, other = 0, {}
        else:
            seen.add(key)
            fv_macs = sum(v for op, v in fv.items() if op in FVCORE_MAC_OPS)
            other = {op: v for op, v in fv.items() if op not in FVCORE_MAC_OPS}
        used.update(other)
        note = ""
        if r.macs != fv_macs:
            blind = [FVCORE_BLIND[op] for op in own_unsupported.get(key, {})
                     if op in FVCORE_BLIND]
            note = "; ".join(blind)
        if r.macs or fv_macs or other:
            rows.append(CrossRow(r.name, r.macs, fv_macs, other, note))
    for key, fv in own.items():
        if key in seen:
            continue
        fv_macs = sum(v for op, v in fv.items() if op in FVCORE_MAC_OPS)
        other = {op: v for op, v in fv.items() if op not in FVCORE_MAC_OPS}
        if fv_macs or other:
            used.update(other)
            rows.append(CrossRow(key or "(model)", 0, fv_macs, other))
    fv_mac_total = sum(r.fvcore for r in rows)
    fv_total = fv_mac_total + sum(sum(r.fvcore_other.values()) for r in rows)
    conventions = {op: convention(op) for op in sorted(used)}
    return CrossCheck(table.model, tuple(x.shape), tuple(rows), table.totals.macs,
                      fv_mac_total, fv_total, conventions, dict(unsupported))


def crosscheck_fvcore(model_or_spec: nn.Module | str | Path | Target,
                      input: tuple[int, ...] | None = None,
                      overrides: Mapping[str, Any] | None = None) -> CrossCheck:
    """Per-layer MACs of cnncost vs fvcore on the same module, at batch 1 on CPU."""
    import torch
    from torch import nn

    from cnncost.count.drivers import count_module, count_spec
    from cnncost.graph.build import build_module
    from cnncost.sources import DEFAULT_INPUT, Target, load_target, resolve
    from cnncost.spec import ModelSpec

    if isinstance(model_or_spec, nn.Module):
        loaded: ModelSpec | nn.Module = model_or_spec
        label = type(model_or_spec).__name__
    else:
        target = (model_or_spec if isinstance(model_or_spec, Target)
                  else resolve(str(model_or_spec)))
        loaded = load_target(target, overrides, input)
        label = target.label
    gen = torch.Generator().manual_seed(0)
    module: nn.Module
    if isinstance(loaded, ModelSpec):
        table = count_spec(loaded, batch=1)
        module = build_module(loaded)  # real CPU weights: fvcore runs the model for real
        shape = loaded.input_shape
    else:
        shape = tuple(input or DEFAULT_INPUT)
        table = count_module(loaded, shape, batch=1, name=label)
        module = loaded
    was_training = {m: m.training for m in module.modules()}
    module.eval()
    try:
        x = torch.randn((1, *shape), generator=gen)
        return compare(table, module, x)
    finally:
        for m, flag in was_training.items():
            m.training = flag


TOOLS = ("fvcore",)


def crosscheck(tool: str, model_or_spec: nn.Module | str | Path | Target,
               input: tuple[int, ...] | None = None,
               overrides: Mapping[str, Any] | None = None) -> CrossCheck:
    """``analyze --crosscheck TOOL``: the per-layer comparison with ``tool``."""
    if tool not in TOOLS:
        raise UsageError(f"--crosscheck {tool!r}: the supported tool is 'fvcore'")
    return crosscheck_fvcore(model_or_spec, input, overrides)


def disagreement(cc: CrossCheck) -> CrossCheckError | None:
    """The error to exit with when some layer differs without a known convention."""
    if cc.agree:
        return None
    return CrossCheckError(
        f"crosscheck: {len(cc.unexplained)} layer(s) differ from fvcore without a known "
        f"convention: {', '.join(r.name for r in cc.unexplained[:8])}")

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
    from rich.table import Table
    from torch import nn

    from cnncost.sources import Target
    from cnncost.table import CostTable

# fvcore operator names (its handles' simplified names) that are multiply-accumulates.
FVCORE_MAC_OPS = frozenset({"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"})

# Why fvcore's non-MAC counts differ from cnncost's MACs (its handle -> cnncost convention).
FVCORE_CONVENTIONS: dict[str, str] = {
    "batch_norm": "fvcore counts inference batch norm as 2 flops per element (1 without "
                  "affine); cnncost: no MACs, 2 FLOPs per element under --policy all",
    "group_norm": "fvcore counts group norm as 5 flops per element (4 without affine); "
                  "cnncost: no MACs, 5 FLOPs per element under --policy all",
    "layer_norm": "fvcore counts layer norm as 5 flops per element (4 without affine); "
                  "cnncost: no MACs, 5 FLOPs per element under --policy all",
    "instance_norm": "fvcore counts instance norm as 5 flops per element (4 without "
                     "affine); cnncost: no MACs",
    "adaptive_avg_pool2d": "fvcore counts adaptive average pooling as 1 flop per input "
                           "element; cnncost: no MACs, 1 FLOP per input element (policy all)",
    "upsample_nearest2d": "fvcore counts nearest upsampling as 1 flop per output element; "
                          "cnncost: a copy, 0 FLOPs",
    "upsample_bilinear2d": "fvcore counts bilinear upsampling as 4 flops per output element; "
                           "cnncost: no MACs, 7 FLOPs per output element (policy all)",
    "grid_sampler": "fvcore counts grid sampling as 4 flops per output element; cnncost "
                    "lists it as uncounted",
}

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
    conventions: Mapping[str, str]
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
    conventions = {op: FVCORE_CONVENTIONS.get(op, "fvcore-specific op count (not MACs in "
                                                  "cnncost)") for op in sorted(used)}
    return CrossCheck(table.model, tuple(x.shape), tuple(rows), table.totals.macs,
                      fv_mac_total, fv_total, conventions, dict(unsupported))


def crosscheck_fvcore(model_or_spec: nn.Module | str | Path | Target,
                      input: tuple[int, ...] | None = None,
                      overrides: Mapping[str, Any] | None = None) -> CrossCheck:
    """Per-layer MACs of cnncost vs fvcore on the same module, at batch 1 on CPU."""
    import torch
    from torch import nn

    from cnncost.api import DEFAULT_INPUT, load_target
    from cnncost.count.drivers import count_module, count_spec
    from cnncost.graph.build import build_module
    from cnncost.sources import Target, resolve
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


def crosscheck_table(cc: CrossCheck, all_rows: bool = False) -> Table:
    """A rich table of the per-layer comparison (rows that differ, or every row)."""
    from rich.table import Table

    t = Table(title=f"cnncost vs fvcore: MACs per layer ({cc.model}, input "
                    f"{'x'.join(map(str, cc.input))})", box=None)
    t.add_column("layer")
    t.add_column("cnncost MACs", justify="right")
    t.add_column("fvcore", justify="right")
    t.add_column("delta", justify="right")
    t.add_column("why")
    for r in cc.rows:
        delta = r.ours - r.fvcore_total
        if not all_rows and not delta:
            continue
        if r.delta:
            why = r.note or "UNEXPLAINED: the MAC counts differ"
        else:
            why = "convention: " + ", ".join(sorted(r.fvcore_other))
        t.add_row(r.name, f"{r.ours:,}", f"{r.fvcore_total:,}", f"{delta:+,}", why)
    return t


def summary_lines(cc: CrossCheck) -> list[str]:
    """What a reader needs below the table: agreement, totals, the conventions involved."""
    compared = [r for r in cc.rows if r.ours or r.fvcore]
    same = sum(1 for r in compared if not r.delta)
    lines = [
        f"{same} of {len(compared)} layers with MACs agree exactly; cnncost "
        f"{cc.ours_total:,} MACs, fvcore {cc.fvcore_macs_total:,} (conv/linear/matmul "
        f"handles; fvcore counts 1 multiply-add as 1 flop), fvcore total with its other ops "
        f"{cc.fvcore_total:,}",
        "compared at batch 1 on a real CPU tensor (MACs scale linearly with the batch); bias "
        "adds are MACs for neither tool",
    ]
    for op, why in cc.conventions.items():
        lines.append(f"convention, {op}: {why}")
    if cc.fvcore_unsupported:
        ops = ", ".join(f"{op} ({n}x)" for op, n in sorted(cc.fvcore_unsupported.items()))
        lines.append(f"ops fvcore skips (no MACs in cnncost either unless noted): {ops}")
    if cc.unexplained:
        names = ", ".join(r.name for r in cc.unexplained[:8])
        lines.append(f"UNEXPLAINED differences in {len(cc.unexplained)} layer(s): {names}")
    return lines


def crosscheck_report(tool: str, model: str, input: tuple[int, ...] | None,
                      overrides: Mapping[str, Any] | None
                      ) -> tuple[list[Any], CrossCheckError | None]:
    """What ``analyze --crosscheck TOOL`` shows (table and notes), and the error to raise
    afterwards when some layer differs without a known convention."""
    if tool != "fvcore":
        raise UsageError(f"--crosscheck {tool!r}: the supported tool is 'fvcore'")
    cc = crosscheck_fvcore(model, input, overrides)
    shown: list[Any] = [crosscheck_table(cc), *summary_lines(cc)]
    error = None if cc.agree else CrossCheckError(
        f"crosscheck: {len(cc.unexplained)} layer(s) differ from fvcore without a known "
        f"convention: {', '.join(r.name for r in cc.unexplained[:8])}")
    return shown, error

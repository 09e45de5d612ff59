"""Rendering of a cross-check (cnncost.measure.crosscheck): the per-layer table and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnncost.fmt import shape

if TYPE_CHECKING:
    from rich.table import Table

    from cnncost.measure.crosscheck import Convention, CrossCheck


def crosscheck_table(cc: CrossCheck, all_rows: bool = False) -> Table:
    """A rich table of the per-layer comparison (rows that differ, or every row)."""
    from rich.table import Table

    t = Table(title=f"cnncost vs fvcore: MACs per layer ({cc.model}, input "
                    f"{shape(cc.input)})", box=None)
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


def convention_text(c: Convention) -> str:
    """fvcore's count of an op, then cnncost's (as counted, under policy all)."""
    if not c.fvcore:
        return "fvcore-specific op count (not MACs in cnncost)"
    if c.flops is None:
        ours = "cnncost lists it as uncounted"
    else:
        macs = "no MACs" if not c.macs else f"{c.macs:g} MACs per {c.per}"
        flops = (f"{c.flops:g} FLOP{'' if c.flops == 1 else 's'} per {c.per} (policy all)"
                 if c.flops else "0 FLOPs (it only moves data)")
        ours = f"cnncost: {macs}, {flops}"
    return f"fvcore counts {c.fvcore}; {ours}"


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
    for op, c in cc.conventions.items():
        lines.append(f"convention, {op}: {convention_text(c)}")
    if cc.fvcore_unsupported:
        ops = ", ".join(f"{op} ({n}x)" for op, n in sorted(cc.fvcore_unsupported.items()))
        lines.append(f"ops fvcore skips (no MACs in cnncost either unless noted): {ops}")
    if cc.unexplained:
        names = ", ".join(r.name for r in cc.unexplained[:8])
        lines.append(f"UNEXPLAINED differences in {len(cc.unexplained)} layer(s): {names}")
    return lines


def crosscheck_renderables(cc: CrossCheck) -> list[Any]:
    """What ``analyze --crosscheck`` prints: the table, then the summary lines."""
    return [crosscheck_table(cc), *summary_lines(cc)]

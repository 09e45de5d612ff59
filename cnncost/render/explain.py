"""Explain a cost table the way the lecture slides derive it (pure Python, no torch).

:func:`explain_lines` turns a :class:`~cnncost.table.CostTable` (plus a spec's ``explain``
data) into lines of text:

1. a header: model, description, input, dtype, variables;
2. per layer (or only the one asked for) its derivation, e.g.::

       conv1: (128x128x64) x (5x5x256) = 6,710,886,400 MACs
         params: 5x5x256x64 + 64 bias = 409,664
         output: 64x128x128 = 1,048,576 values x 4 B = 4,194,304 B (4 MiB)
         receptive field: 5x5

   The MAC line is written from the row's ``factors`` (cnncost.table.Factors:
   output volume x cost per output value), the parameter split from their weight dims
   (the rest is bias);
3. totals with their terms written out (``total MACs: 432 + 240 = 672``);
4. the spec's ``explain`` data: closed forms checked against the count, ratio lines, notes.

Numbers below 10,000 are written without separators, as the slides do (``672 / 2160``).

The ``explain`` key of a spec (free-form data, kept as ``ModelSpec.explain``)::

    explain:
      formulas:                 # closed forms, each checked against the count
        - what: macs            # macs | flops | params | output_bytes | output_elements
                                #   | receptive_field
          layers: [conv1]       # optional: layer names or name prefixes (default: all rows)
          formula: "17HWC^2 = 17 x {H} x {W} x {C}^2"  # shown as written, {expr} -> its value
          expr: "17 * H * W * C**2"                     # the closed form, per sample
      compare:                  # ratio lines: num / den = ratio = formula
        - label: "separable / standard"                 # optional
          what: macs
          num: {}               # a side; {} (the default) = this spec as counted
          den: {spec: conv3x3_6x6x3.yaml, set: {c_out: 512}, layers: [conv1]}
          formula: "1/{c_out} + 1/{f**2}  (1/n_c' + 1/f^2)"
          expr: "1 / c_out + 1 / f**2"                  # optional, checked against the ratio
          digits: 2             # decimals of the ratio (default 2)
      notes:                    # free text, printed last
        - "slide: = 6710886400 = 6.7 billion"

prints ``MACs, separable / standard: 672 / 2160 = 0.31 = 1/5 + 1/9  (1/n_c' + 1/f^2)``.

A side names a table by ``spec`` (a path relative to this spec's file; default: this spec)
and ``set`` (variable overrides, evaluated with this spec's variables), and optionally rows
by ``layers``. Another spec also receives every variable it shares with this one, so
``--set C=128`` moves both sides of a comparison; the same spec keeps the command line's
``--set`` (and ``--input``) under its own ``set``. Which tables are needed is
:func:`cnncost.explain.references` (which also parses this key); counting them is the
caller's job (cnncost.api.explain_target), so this module only writes lines.

Expressions (``expr``, ``set`` values, ``{...}`` in a formula) use the spec expression
language (cnncost.spec.expr) with the spec's variables and ``N`` (the batch size, unless the spec
has its own ``N``). Closed forms are per sample: for macs, flops, output_bytes and
output_elements they are multiplied by N before the check. ``receptive_field`` is the
largest receptive field of the selected rows (the output's, for a chain). A closed form or
ratio that disagrees with the count is printed with both values, never hidden.

A spec's description and notes quote its source (a lecture) for its default case (``Case``):
where the counted case differs (other variables, input or batch), a line under the header and
the notes' heading say which case they describe, and a disagreeing closed form names it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cnncost.count.conventions import MAC_DEFINITION, OPTIMIZERS
from cnncost.errors import SpecError, UsageError
from cnncost.explain import (
    EXTENSIVE,
    SELF,
    WHAT,
    Case,
    ClosedForm,
    Comparison,
    Ref,
    evaluate_at,
    expr_scope,
    parse_explain,
    side_ref,
)
from cnncost.table import CostRow, CostTable

REL_TOLERANCE = 1e-9
MAX_SUM_TERMS = 8  # totals write out their terms up to this many ("432 + 240 = 672")

_FIELD = re.compile(r"\{([^{}]+)\}")
# --------------------------------------------------------------------------- rendering


def explain_lines(table: CostTable, explain: Any = None, vars: Mapping[str, Any] | None = None,
                  tables: Mapping[Ref, CostTable] | None = None, layer: str | None = None,
                  file: str = "", case: Case | None = None) -> list[str]:
    """The derivation of every layer (or ``layer``), the totals, then the spec's explain data.

    ``tables`` holds the other tables the comparisons read (see :func:`references`);
    ``vars`` are the spec's resolved variables; ``case`` is the spec's default case: where
    the counted one differs, the description and notes (the lecture's prose, written for the
    default case) are said to describe it, and so is a closed form the count disagrees with.
    """
    plan = parse_explain(explain, file)
    batch = table.input[0] if table.input else 1
    scope = expr_scope(vars, batch)
    other = None if case is None else case_difference(case, table, vars or {})
    lines = _header(table, vars or {})
    if other is not None and (table.description or plan.notes):
        what = "the description and notes describe" if table.description and plan.notes \
            else "the description describes" if table.description else "the notes describe"
        lines.append(f"({what} the default case, {other[0]}, that the source works out; "
                     f"counted here: {other[1]})")
    rows = list(table.layers) if layer is None else _layer_rows(table, layer)
    for row in rows:
        lines += ["", *layer_lines(row)]
    if layer is None:
        lines += ["", *_total_lines(table)]
    if plan.formulas:
        lines += ["", "closed forms:"]
        lines += ["  " + _closed_form_line(cf, table, scope, batch, plan.file, other)
                  for cf in plan.formulas]
    if plan.compare:
        known = {SELF: table, **(tables or {})}
        lines += ["", "comparisons:"]
        lines += ["  " + _comparison_line(c, known, scope, plan.file, other)
                  for c in plan.compare]
    if plan.notes:
        head = "notes:" if other is None else f"notes (the default case, {other[0]}):"
        lines += ["", head, *("  " + n for n in plan.notes)]
    return lines


def case_difference(case: Case, table: CostTable, vars: Mapping[str, Any]
                    ) -> tuple[str, str] | None:
    """How the counted case differs from ``case``: (its values, the counted ones) in words,
    e.g. ("c=32", "c=16"); None where it does not."""
    theirs, ours = [], []
    for name, value in case.vars.items():
        if name in vars and vars[name] != value:
            theirs.append(f"{name}={_value(value)}")
            ours.append(f"{name}={_value(vars[name])}")
    shape = tuple(table.input[1:])
    if shape != tuple(case.input if case.own_input is None else case.own_input):
        theirs.append(f"input {_shape(case.input)}")
        ours.append(f"input {_shape(shape)}")
    batch = table.input[0] if table.input else 1
    if batch != 1:
        theirs.append("batch 1")
        ours.append(f"batch {batch}")
    return (", ".join(theirs), ", ".join(ours)) if theirs else None


def _header(table: CostTable, vars: Mapping[str, Any]) -> list[str]:
    head = f"{table.model}: {table.description}" if table.description else table.model
    lines = [head, f"input {_shape(table.input)}, {table.dtype}; {MAC_DEFINITION} "
             "(the slides' \"multiplication\"; most papers' \"FLOP\")"]
    if vars:
        lines.append("vars: " + ", ".join(f"{k}={_value(v)}" for k, v in vars.items()))
    return lines


def _layer_rows(table: CostTable, layer: str) -> list[CostRow]:
    rows = [r for r in table.layers if r.name == layer or r.name.startswith(layer + ".")]
    if not rows:
        names = ", ".join(r.name for r in table.layers[:12])
        more = ", ..." if len(table.layers) > 12 else ""
        raise UsageError(f"no layer {layer!r} in {table.model}; layers: {names}{more}")
    return rows


def layer_lines(row: CostRow) -> list[str]:
    """One layer's derivation: MACs, parameters, output memory, receptive field."""
    lines = [f"{row.name}: {_macs_text(row)}"]
    params = _params_text(row)
    if params:
        lines.append(f"  params: {params}")
    output = _output_text(row)
    if output:
        lines.append(f"  output: {output}")
    if row.receptive_field is not None:
        lines.append(f"  receptive field: {field_text(row)}")
    return lines + backward_lines(row)


def field_text(row: CostRow) -> str:
    """A row's receptive field per spatial dim: ``5x5``, ``3x1`` (H x W), ``5 (along L)``;
    a flat row's (a classifier's) is the one number of what it covers."""
    if row.receptive_field_axes is not None:
        return "x".join(map(str, row.receptive_field_axes))
    dims = len(row.output_shape) - 2
    if dims == 1:
        return f"{row.receptive_field} (along L)"
    return "x".join([str(row.receptive_field)] * dims) if dims > 1 else \
        str(row.receptive_field)


def backward_lines(row: CostRow) -> list[str]:
    """A training step's backward of one layer (train mode): each gradient's MACs from its
    factors, written like the forward's, its FLOPs and what autograd saved for it."""
    tr = row.train
    if tr is None:
        return []
    lines = []
    for side, label, macs, why in (
            ("input", "dL/dx", tr.grad_input_macs, "no layer before it needs one"),
            ("weight", "dL/dW", tr.grad_weight_macs, "its weights are frozen")):
        factors = [f for s, f in tr.factors if s == side]
        if factors:
            lines.append(f"  backward {label}: {' + '.join(f.text() for f in factors)} = "
                         f"{_num(macs)} MACs")
        elif macs:
            lines.append(f"  backward {label}: {_num(macs)} MACs")
        elif row.macs and (side == "input" or row.params):
            lines.append(f"  backward {label}: not computed ({why})")
    extra = tr.backward_flops - 2 * tr.backward_macs
    flops = _num(tr.backward_flops) + (f" ({_num(extra)} beside the MACs)"
                                       if extra and tr.backward_macs else "")
    saved = f"; saved for it: {_bytes(tr.saved_bytes)}" if tr.saved_bytes else ""
    lines.append(f"  backward FLOPs: {flops}{saved}")
    return lines


def _macs_text(row: CostRow) -> str:
    if row.factors:
        return f"{' + '.join(f.text() for f in row.factors)} = {_num(row.macs)} MACs"
    if row.macs:
        return f"{_num(row.macs)} MACs"
    other = f", {_num(row.flops)} FLOPs" if row.flops else ""
    return f"no MACs ({row.kind}{other})"


def _params_text(row: CostRow) -> str:
    if not row.params and not row.buffers:
        return ""
    text = _num(row.params)
    # One op with a weight operand (conv, linear): its dims, the rest of the params is bias.
    weight = row.factors[0].weight if len(row.factors) == 1 else None
    if weight and row.params and math.prod(weight) <= row.params:
        bias = row.params - math.prod(weight)
        text = _shape(weight) + (f" + {_num(bias)} bias" if bias else "")
        text += f" = {_num(row.params)}"
    if row.buffers:
        text += f" (+ {_num(row.buffers)} buffer values, not trained)"
    return text


def _output_text(row: CostRow) -> str:
    if not row.output_shape or not row.output_bytes:
        return ""
    values = math.prod(row.output_shape)
    shown = row.output_shape[1:] if row.output_shape[0] == 1 and len(row.output_shape) > 1 \
        else row.output_shape
    text = f"{_num(values)} values" if len(shown) == 1 else \
        f"{_shape(shown)} = {_num(values)} values"
    if values and row.output_bytes % values == 0:
        text += f" x {row.output_bytes // values} B"
    text += f" = {_num(row.output_bytes)} B"
    if row.output_bytes >= 1024:
        text += f" ({_bytes(row.output_bytes)})"
    return text


def _total_lines(table: CostTable) -> list[str]:
    t = table.totals
    lines = []
    for what, total in (("MACs", t.macs), ("params", t.params)):
        terms = [getattr(r, what.lower()) for r in table.layers if getattr(r, what.lower())]
        sum_text = " + ".join(map(_num, terms)) + " = " if 2 <= len(terms) <= MAX_SUM_TERMS \
            else ""
        lines.append(f"total {what}: {sum_text}{_num(total)}")
    outputs = sum(1 for r in table.layers if r.output_bytes)
    memory = f"{_num(t.activation_bytes)} B"
    if t.activation_bytes >= 1024:
        memory += f" ({_bytes(t.activation_bytes)})"
    if t.train is not None:
        tr = t.train
        lines.append(f"backward MACs: dL/dx {_num(tr.grad_input_macs)} + dL/dW "
                     f"{_num(tr.grad_weight_macs)} = {_num(tr.backward_macs)} "
                     f"({tr.backward_macs / t.macs:.2f} x forward)" if t.macs else
                     f"backward MACs: {_num(tr.backward_macs)}")
        lines.append("step FLOPs: forward + backward + update = " + ", ".join(
            f"{o.label} {_num(tr.step_flops[n])}" for n, o in OPTIMIZERS.items()))
        lines.append(f"activation memory: {memory} over {outputs} output{'s' * (outputs != 1)}; "
                     f"saved for the backward {_bytes(tr.saved_activation_bytes)}; training "
                     f"memory (Adam) {_bytes(t.training_memory_bytes['adam'])}")
        return lines
    lines.append(f"activation memory: {memory} over {outputs} output{'s' * (outputs != 1)}; "
                 "peak inference memory "
                 f"{_bytes(t.peak_memory_bytes)}")
    return lines


def _measure(table: CostTable, what: str, layers: Sequence[str], file: str,
             line: int | None, where: str) -> int:
    rows = list(table.layers)
    if layers:
        picked = []
        for name in layers:
            match = [r for r in rows if r.name == name or r.name.startswith(name + ".")]
            if not match:
                names = ", ".join(r.name for r in rows[:12]) + (", ..." if len(rows) > 12 else "")
                raise SpecError(f"no layer {name!r} in {table.model}; layers: {names}", file,
                                line, where)
            picked += [r for r in match if r not in picked]
        rows = picked
    if what == "receptive_field":
        return max((r.receptive_field for r in rows if r.receptive_field is not None), default=0)
    if what == "output_elements":
        return sum(math.prod(r.output_shape) for r in rows if r.output_bytes)
    return int(sum(getattr(r, what) for r in rows))


def _differs(other: tuple[str, str] | None) -> str:
    """What a disagreement adds where the counted case is not the default one."""
    return "" if other is None else f"; the default case is {other[0]}"


def _closed_form_line(cf: ClosedForm, table: CostTable, scope: Mapping[str, Any], batch: int,
                      file: str, other: tuple[str, str] | None = None) -> str:
    value = evaluate_at(cf.expr, scope, file, cf.line, cf.where + ".expr")
    if not _is_number(value):
        raise SpecError(f"expr gives {value!r}, not a number", file, cf.line, cf.where)
    counted = _measure(table, cf.what, cf.layers, file, cf.line, cf.where)
    label = WHAT[cf.what] + (f" of {', '.join(cf.layers)}" if cf.layers else "")
    text = _render(cf.formula, scope, file, cf.line, cf.where) if cf.formula else str(cf.expr)
    line = f"{label}: {text}"
    if text != _value(value):
        line += f" = {_value(value)}"
    expected = value
    if cf.what in EXTENSIVE and batch != 1:
        expected = value * batch
        line += f" per sample; x N={batch} = {_value(expected)}"
    agree = _close(expected, counted)
    return line + ("  (count agrees)" if agree else
                   f"  (count: {_num(counted)}, differs{_differs(other)})")


def _comparison_line(c: Comparison, tables: Mapping[Ref, CostTable], scope: Mapping[str, Any],
                     file: str, other: tuple[str, str] | None = None) -> str:
    values = []
    for side in (c.num, c.den):
        ref = side_ref(side, scope, file)
        if ref not in tables:
            raise SpecError(f"the table for {ref} was not counted (see explain.references)",
                            file, side.line, side.where)
        values.append(_measure(tables[ref], c.what, side.layers, file, side.line, side.where))
    num, den = values
    head = f"{WHAT[c.what]}, {c.label}" if c.label else WHAT[c.what]
    if den == 0:
        return f"{head}: {_num(num)} / 0 (no ratio)"
    ratio = num / den
    line = f"{head}: {_num(num)} / {_num(den)} = {ratio:.{c.digits}f}"
    if c.formula:
        line += " = " + _render(c.formula, scope, file, c.line, c.where)
    if c.expr is not None:
        closed = evaluate_at(c.expr, scope, file, c.line, c.where + ".expr")
        if not _is_number(closed):
            raise SpecError(f"expr gives {closed!r}, not a number", file, c.line, c.where)
        if not _close(closed, ratio):
            line += f"  (closed form gives {closed:.6g}: differs from the count{_differs(other)})"
    return line


def _render(template: str, scope: Mapping[str, Any], file: str, line: int | None,
            where: str) -> str:
    """Replace every {expr} in ``template`` by its value."""
    return _FIELD.sub(lambda m: _value(evaluate_at(m.group(1), scope, file, line,
                                             f"{where}.formula")), template)


# --------------------------------------------------------------------------- numbers


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=1e-12)


def _num(n: int) -> str:
    """Integers as the slides write them: 2160, 6,710,886,400 (separators from 10,000)."""
    return f"{n:,}" if abs(n) >= 10_000 else str(n)


def _value(v: Any) -> str:
    if isinstance(v, bool) or not _is_number(v):
        return str(v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    return _num(v) if isinstance(v, int) else f"{v:.4g}"


def _shape(dims: Sequence[int]) -> str:
    return "x".join(map(str, dims))


def _bytes(n: int) -> str:
    for factor, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} B"

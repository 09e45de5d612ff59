"""explain's data, apart from its text: a spec's ``explain`` block parsed (closed forms,
ratio lines, notes: ``parse_explain``), the tables its ratio lines read (``references``; each
distinct one identified by ``Recipes.key``, so that it is counted once however it is named),
and the case the spec's prose describes (``Case``). Pure Python, no torch; the lines are
written by cnncost.render.explain, which documents the ``explain`` key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnncost.errors import SpecError
from cnncost.spec.expr import ExprError, evaluate

WHAT: dict[str, str] = {
    "macs": "MACs",
    "flops": "FLOPs",
    "params": "params",
    "output_bytes": "output bytes",
    "output_elements": "memory (values)",
    "receptive_field": "receptive field",
}
# Quantities that grow with the batch: closed forms (per sample) are scaled by N.
EXTENSIVE = frozenset({"macs", "flops", "output_bytes", "output_elements"})

# Other tables (another spec, or other variables) the ratio lines of one spec may read: each
# is counted, so their number bounds explain's work (the bundled specs read at most 2).
MAX_REFERENCES = 64

_TOP_KEYS = ("formulas", "compare", "notes")
_FORMULA_KEYS = ("what", "layers", "formula", "expr")
_COMPARE_KEYS = ("label", "what", "num", "den", "formula", "expr", "digits")
_SIDE_KEYS = ("spec", "set", "layers")


@dataclass(frozen=True)
class Ref:
    """A table a comparison reads: a spec (None = this one) with variable overrides."""

    spec: str | None = None
    set: tuple[tuple[str, Any], ...] = ()


SELF = Ref()


@dataclass(frozen=True)
class Side:
    """One side of a ratio: which table (spec + set) and which rows (layers)."""

    spec: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ()
    line: int | None = None
    where: str = ""


@dataclass(frozen=True)
class ClosedForm:
    """A closed form of one figure, e.g. MACs = 17HWC^2, checked against the count."""

    what: str
    expr: Any
    formula: str = ""
    layers: tuple[str, ...] = ()
    line: int | None = None
    where: str = ""


@dataclass(frozen=True)
class Comparison:
    """A ratio line: num / den = ratio = formula."""

    what: str
    num: Side
    den: Side
    label: str = ""
    formula: str = ""
    expr: Any = None
    digits: int = 2
    line: int | None = None
    where: str = ""


@dataclass(frozen=True)
class Case:
    """The case a spec describes: its default variables and input, batch 1. A textbook spec's
    description, notes and closed forms quote the lecture's numbers for it; where the counted
    case differs, explain_lines says which case they describe."""

    vars: Mapping[str, Any]
    input: tuple[int, ...]      # one sample, channels first
    # The input the spec gives itself at the counted variables: another one was asked for
    # (--input) where the counted input differs from it. None: ``input``.
    own_input: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Explain:
    """A spec's parsed ``explain`` data."""

    file: str = ""
    formulas: tuple[ClosedForm, ...] = ()
    compare: tuple[Comparison, ...] = ()
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- parsing


def parse_explain(data: Any, file: str = "") -> Explain:
    """Validate a spec's ``explain`` data; errors name the file, line and key."""
    if data is None or isinstance(data, Explain):
        return data or Explain(file)
    p = _Parser(file)
    top = p.mapping(data, _TOP_KEYS, getattr(data, "line", None), "explain")
    formulas = tuple(p.closed_form(item, line, f"explain.formulas[{i}]")
                     for i, item, line in p.items(top, "formulas"))
    compare = tuple(p.comparison(item, line, f"explain.compare[{i}]")
                    for i, item, line in p.items(top, "compare"))
    notes = []
    for i, item, line in p.items(top, "notes"):
        if not isinstance(item, str | int | float):
            raise SpecError("a note is a line of text", file, line, f"explain.notes[{i}]")
        notes.append(str(item))
    return Explain(file, formulas, compare, tuple(notes))


class _Parser:
    def __init__(self, file: str) -> None:
        self.file = file

    def err(self, reason: str, line: int | None, where: str) -> SpecError:
        return SpecError(reason, self.file, line, where)

    def mapping(self, data: Any, keys: Sequence[str], line: int | None,
                where: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.err(f"expected a mapping with {', '.join(keys)}", line, where)
        for key in data:
            if key not in keys:
                raise self.err(f"unknown key {key!r}; expected one of {', '.join(keys)}",
                               _key_line(data, key, line), where)
        return data

    def items(self, top: Mapping[str, Any], key: str) -> list[tuple[int, Any, int | None]]:
        raw = top.get(key)
        if raw is None:
            return []
        line = _key_line(top, key, getattr(top, "line", None))
        if not isinstance(raw, list):
            raise self.err(f"`{key}` must be a list", line, f"explain.{key}")
        lines = getattr(raw, "item_lines", [line] * len(raw))
        return [(i, item, getattr(item, "line", lines[i])) for i, item in enumerate(raw)]

    def what(self, entry: Mapping[str, Any], line: int | None, where: str) -> str:
        what = entry.get("what")
        if what not in WHAT:
            raise self.err(f"what={what!r}; expected one of {', '.join(WHAT)}",
                           _key_line(entry, "what", line), where)
        return str(what)

    def layers(self, entry: Mapping[str, Any], line: int | None, where: str) -> tuple[str, ...]:
        raw = entry.get("layers", ())
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise self.err("`layers` is a layer name or a list of names (or name prefixes)",
                           _key_line(entry, "layers", line), where)
        return tuple(names)

    def text(self, entry: Mapping[str, Any], key: str, line: int | None, where: str) -> str:
        raw = entry.get(key, "")
        if not isinstance(raw, str | int | float):
            raise self.err(f"`{key}` must be text", _key_line(entry, key, line), where)
        return str(raw)

    def expr(self, entry: Mapping[str, Any], line: int | None, where: str,
             required: bool) -> Any:
        raw = entry.get("expr")
        if raw is None and required:
            raise self.err("missing `expr`: the closed form to check, e.g. \"17 * H * W * C**2\"",
                           line, where)
        if raw is not None and (isinstance(raw, bool) or not isinstance(raw, str | int | float)):
            raise self.err("`expr` must be an expression or a number",
                           _key_line(entry, "expr", line), where)
        return raw

    def closed_form(self, item: Any, line: int | None, where: str) -> ClosedForm:
        entry = self.mapping(item, _FORMULA_KEYS, line, where)
        return ClosedForm(self.what(entry, line, where), self.expr(entry, line, where, True),
                          self.text(entry, "formula", line, where),
                          self.layers(entry, line, where), line, where)

    def comparison(self, item: Any, line: int | None, where: str) -> Comparison:
        entry = self.mapping(item, _COMPARE_KEYS, line, where)
        if "den" not in entry:
            raise self.err("missing `den`: what to divide by, e.g. {spec: other.yaml}", line,
                           where)
        digits = entry.get("digits", 2)
        if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 12:
            raise self.err(f"digits={digits!r} must be a whole number from 0 to 12",
                           _key_line(entry, "digits", line), where)
        return Comparison(
            what=self.what(entry, line, where),
            num=self.side(entry.get("num"), _key_line(entry, "num", line), where + ".num"),
            den=self.side(entry.get("den"), _key_line(entry, "den", line), where + ".den"),
            label=self.text(entry, "label", line, where),
            formula=self.text(entry, "formula", line, where),
            expr=self.expr(entry, line, where, False),
            digits=digits, line=line, where=where)

    def side(self, raw: Any, line: int | None, where: str) -> Side:
        entry = self.mapping(raw if raw is not None else {}, _SIDE_KEYS, line, where)
        spec = entry.get("spec")
        if spec is not None and not isinstance(spec, str):
            raise self.err("`spec` is a path relative to this spec's file",
                           _key_line(entry, "spec", line), where)
        sets = entry.get("set") or {}
        if not isinstance(sets, Mapping) or not all(isinstance(k, str) for k in sets):
            raise self.err("`set` is a mapping of variable: value",
                           _key_line(entry, "set", line), where)
        return Side(spec, dict(sets), self.layers(entry, line, where), line, where)


def _key_line(node: Any, key: str, default: int | None) -> int | None:
    lines = getattr(node, "key_lines", None)
    if isinstance(lines, Mapping) and key in lines:
        return int(lines[key])
    return default


# --------------------------------------------------------------------------- references


def expr_scope(vars: Mapping[str, Any] | None, batch: int = 1) -> dict[str, Any]:
    """The names explain expressions see: the spec's variables and N (the batch size)."""
    scope = dict(vars or {})
    scope.setdefault("N", batch)
    return scope


def references(explain: Any, vars: Mapping[str, Any] | None = None, batch: int = 1,
               file: str = "") -> list[Ref]:
    """The tables a spec's comparisons read, besides the spec itself (in first-use order)."""
    plan = parse_explain(explain, file)
    scope = expr_scope(vars, batch)
    refs: list[Ref] = []
    for cmp in plan.compare:
        for side in (cmp.num, cmp.den):
            ref = side_ref(side, scope, plan.file)
            if ref != SELF and ref not in refs:
                if len(refs) == MAX_REFERENCES:  # each one is a table to count
                    raise SpecError(f"more than {MAX_REFERENCES} other tables to count (specs "
                                    "and sets); expected ratio lines that read at most "
                                    f"{MAX_REFERENCES}", plan.file, side.line, side.where)
                refs.append(ref)
    return refs


def side_ref(side: Side, scope: Mapping[str, Any], file: str) -> Ref:
    """The table a side names, its ``set`` evaluated in ``scope``."""
    values = {k: evaluate_at(v, scope, file, side.line, f"{side.where}.set.{k}")
              for k, v in side.set.items()}
    return Ref(side.spec, tuple(sorted(values.items())))


def evaluate_at(raw: Any, scope: Mapping[str, Any], file: str, line: int | None, where: str
                ) -> Any:
    """``raw`` evaluated in ``scope`` when it is an expression; SpecError at ``file:line``."""
    if not isinstance(raw, str):
        return raw
    try:
        return evaluate(raw, scope)
    except ExprError as exc:
        raise SpecError(str(exc), file, line, where) from None


# --------------------------------------------------------------------------- the tables


class Recipes:
    """The spec documents an explanation reads (each file once) and what identifies a table
    of one: its file, its variables once evaluated and its input shape (compile_top: no
    layers compiled), so that the same table named in two ways is counted once."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}

    def doc(self, path: str) -> Any:
        from cnncost.spec import load_document

        if path not in self.docs:
            self.docs[path] = load_document(path)
        return self.docs[path]

    def declared(self, path: str) -> tuple[str, ...]:
        """The variables of the spec at ``path``."""
        from cnncost.spec.compiler import vars_of

        return vars_of(self.doc(path))

    def top(self, path: str, sets: Mapping[str, Any], shape: tuple[int, ...] | None = None
            ) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The variables and input shape of the spec at ``path`` with ``sets`` and ``shape``
        (``None``: its own input)."""
        from cnncost.spec.compiler import compile_top

        top = compile_top(self.doc(path), path, dict(sets), shape)
        return top.scope, tuple(top.input_shape)

    def key(self, path: str, sets: Mapping[str, Any], shape: tuple[int, ...] | None
            ) -> tuple[str, tuple[int, ...], str]:
        """What one table of the spec at ``path`` is: equal keys, the same table."""
        scope, in_shape = self.top(path, sets, shape)
        return os.path.realpath(path), in_shape, repr(sorted(scope.items()))

    def compile(self, path: str, sets: Mapping[str, Any], shape: tuple[int, ...] | None
                ) -> Any:
        """The spec at ``path`` with ``sets`` and ``shape``, compiled (a ModelSpec)."""
        from cnncost.spec import compile_spec

        return compile_spec(self.doc(path), path, dict(sets), shape)

    def case(self, path: str, sets: Mapping[str, Any]) -> Case:
        """The default case of the spec at ``path``, and its own input at ``sets``."""
        defaults, default_input = self.top(path, {})
        return Case({k: v for k, v in defaults.items() if not k.startswith("_")},
                    default_input, self.top(path, sets)[1])

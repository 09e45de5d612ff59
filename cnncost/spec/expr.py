"""A small, safe evaluator for the arithmetic written in spec fields ("in * t").

Only literals, names from the given scope, arithmetic, comparisons, boolean logic,
conditional expressions, indexing into the lists and tables of the scope (``depths[2]``,
``stages[depth]``) and a fixed set of functions are allowed. Nothing is looked up on
objects (no attributes), so a spec cannot reach Python. :func:`render` fills a template
such as ``"enc{i + 1}"`` with the values of its ``{expressions}``.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import operator
import re
import tokenize
from collections.abc import Callable, Mapping
from typing import Any

Number = int | float | bool

# Results larger than this are absurd for any network and would only slow things down.
MAX_MAGNITUDE = 2**53
MAX_EXPR_CHARS = 500
MAX_DEPTH = 50


class ExprError(ValueError):
    """An expression is not allowed, refers to an unknown name, or fails to evaluate."""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it.

    The rule torchvision's MobileNet/EfficientNet builders use for width multipliers.
    """
    if min_value is None:
        min_value = divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _round_half_up(x: float, ndigits: int | None = None) -> float | int:
    if ndigits is None:
        return math.floor(x + 0.5)
    return round(x, ndigits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": _round_half_up,
    "ceil": math.ceil,
    "floor": math.floor,
    "sqrt": math.sqrt,
    "make_divisible": make_divisible,
    "len": len,
}

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
# Friendly names for the syntax a spec expression may not use.
_FORBIDDEN = {
    "Attribute": "attribute access (a.b)",
    "Lambda": "lambda",
    "ListComp": "a comprehension",
    "SetComp": "a comprehension",
    "DictComp": "a comprehension",
    "GeneratorExp": "a generator expression",
    "NamedExpr": "assignment (:=)",
    "JoinedStr": "an f-string",
    "Starred": "unpacking (*a)",
    "Dict": "a dict",
    "Set": "a set",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield",
    "Slice": "slicing (a[i:j])",
}

_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def evaluate(text: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` with the names in ``scope``; raise ExprError when it is not allowed."""
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    tree = _parse(text.strip())
    return _Evaluator(scope).visit(tree.body)


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def render(template: str, scope: Mapping[str, Any]) -> str:
    """``template`` with each ``{expression}`` replaced by its value: ``"enc{i + 1}"`` ->
    ``"enc1"``; ``{{`` and ``}}`` are literal braces. Raise ExprError when a field fails."""
    if "{" not in template and "}" not in template:
        return template
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        raise ExprError(f"unbalanced brace in {template!r}; expected {{expression}} fields "
                        "like 'enc{i + 1}' ({{ and }} for a literal brace)")

    def field(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        try:
            value = evaluate(match.group(1), scope)
        except ExprError as exc:
            raise ExprError(f"{{{match.group(1)}}} in {template!r}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int | float | str | list):
            raise ExprError(f"{{{match.group(1)}}} is {value!r}; expected a number or a "
                            "string to write into the text")
        return str(value)

    return _FIELD.sub(field, template)


@functools.lru_cache(maxsize=8192)
def _parse(text: str) -> ast.Expression:
    """Parse as Python first (so `for x in` stays a comprehension to reject), else rename `in`.

    Remembered: a spec's expressions recur in every repetition, and a sweep compiles the same
    spec at every point (the trees are only read)."""
    if not text:
        raise ExprError("empty expression; expected a number or arithmetic like 'in * 4'")
    try:
        try:
            return ast.parse(text, mode="eval")
        except SyntaxError:
            return ast.parse(_rename_in(text), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse expression {text!r}: {exc.msg}") from None
    except ValueError as exc:  # e.g. a NUL character
        raise ExprError(f"cannot parse expression {text!r}: {exc}") from None
    except (RecursionError, MemoryError):
        raise ExprError(f"cannot parse expression {text[:40]!r}...: nested too deeply") from None


def _rename_in(text: str) -> str:
    """Let specs say ``in`` (the input channels) although it is a Python keyword.

    Only used when the text does not parse as Python; the membership operator is not
    supported anyway, so every ``in`` token is then a name.
    """
    if not re.search(r"\bin\b", text):
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return text
    out = [(t.type, IN_NAME if t.type == tokenize.NAME and t.string == "in" else t.string)
           for t in tokens]
    return tokenize.untokenize(out)


IN_NAME = "_in_"


class _Evaluator:
    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        self.depth = 0

    def visit(self, node: ast.AST) -> Any:
        self.depth += 1
        try:
            return self._visit(node)
        finally:
            self.depth -= 1

    def _visit(self, node: ast.AST) -> Any:
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression is nested more than {MAX_DEPTH} levels deep")
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _FORBIDDEN.get(type(node).__name__, f"'{type(node).__name__}'")
            raise ExprError(f"{what} is not allowed in a spec expression; expected "
                            "arithmetic on numbers and variables")
        value = method(node)
        if isinstance(value, complex):
            raise ExprError("the result is a complex number; expected a real number")
        if (isinstance(value, int | float) and not isinstance(value, bool)
                and abs(value) > MAX_MAGNITUDE):
            raise ExprError(f"value {value:g} is absurdly large")
        return value

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool | int | float | str):
            return node.value
        raise ExprError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node: ast.Name) -> Any:
        key = "in" if node.id == IN_NAME else node.id
        if key in self.scope:
            return self.scope[key]
        if node.id in ("True", "False"):
            return node.id == "True"
        known = ", ".join(sorted(k for k in self.scope if not k.startswith("_")))
        raise ExprError(f"undefined name '{node.id}'; known: {known or '(none)'}")

    def visit_List(self, node: ast.List) -> list[Any]:
        return [self.visit(e) for e in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> list[Any]:
        return [self.visit(e) for e in node.elts]

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        """``a[i]``: an element of a list (negative counts from the end) or a table entry."""
        if isinstance(node.slice, ast.Slice):
            raise ExprError("slicing (a[i:j]) is not allowed; expected one element, e.g. a[0]")
        seq = self.visit(node.value)
        index = self.visit(node.slice)
        what = ast.unparse(node.value).replace(IN_NAME, "in")
        if isinstance(seq, list):
            if isinstance(index, bool) or not isinstance(index, int):
                raise ExprError(f"{what}[{index!r}]: a list index must be a whole number")
            if not -len(seq) <= index < len(seq):
                size = (f"has {len(seq)} element{'s' if len(seq) > 1 else ''}, 0 to "
                        f"{len(seq) - 1}" if seq else "is empty")
                raise ExprError(f"{what}[{index}]: index out of range; {what} {size}")
            return seq[index]
        if isinstance(seq, Mapping):
            if isinstance(index, float) and index.is_integer():
                index = int(index)
            if isinstance(index, bool) or not isinstance(index, int | str) or index not in seq:
                known = ", ".join(map(str, seq)) or "(none)"
                raise ExprError(f"{what}[{index!r}]: no entry {index!r} in {what}; known: "
                                f"{known}")
            return seq[index]
        raise ExprError(f"{what}[{index!r}]: only lists and tables can be indexed, but {what} "
                        f"is {seq!r}")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        _check_numbers(left, right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExprError(f"exponent {right} is absurdly large")
        try:
            return op(left, right)
        except ZeroDivisionError:
            raise ExprError("division by zero") from None

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        _check_numbers(value)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = self.visit(v)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = self.visit(v)
            if result:
                return result
        return result

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise ExprError(f"comparison '{type(op_node).__name__}' is not allowed; "
                                "expected ==, !=, <, <=, >, >=")
            right = self.visit(right_node)
            try:
                holds = op(left, right)
            except TypeError:
                raise ExprError(f"cannot compare {left!r} and {right!r}") from None
            if not holds:
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node: ast.Call) -> Any:
        allowed = ", ".join(sorted(FUNCTIONS))
        if not isinstance(node.func, ast.Name):
            raise ExprError(f"only plain function calls are allowed, like max(a, b); "
                            f"functions: {allowed}")
        if node.func.id not in FUNCTIONS:
            raise ExprError(f"function '{node.func.id}' is not allowed; allowed: {allowed}")
        args = [self.visit(a) for a in node.args]
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ExprError("'**' arguments are not allowed")
            kwargs[kw.arg] = self.visit(kw.value)
        try:
            return FUNCTIONS[node.func.id](*args, **kwargs)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise ExprError(f"{node.func.id}(): {exc}") from None


def _check_numbers(*values: Any) -> None:
    for v in values:
        if not isinstance(v, int | float):
            raise ExprError(f"arithmetic needs numbers, got {v!r}")

"""A small, safe evaluator for the arithmetic written in spec fields ("in * t").

Only literals, names from the given scope, arithmetic, comparisons, boolean logic,
conditional expressions, indexing into the lists and tables of the scope (``depths[2]``,
``stages[depth]``) and a fixed set of functions are allowed. Nothing is looked up on
objects (no attributes), so a spec cannot reach Python. :func:`render` fills a template
such as ``"enc{i + 1}"`` with the values of its ``{expressions}``.

Every evaluation is bounded: each number is at most MAX_MAGNITUDE and finite (no NaN, no
inf), and is checked *before* an operation could build a huge one (``2 ** 10**9``,
``round(4, -10**8)``, ``9e15 ** 20``); every term evaluated, and every list element a
function walks, is charged to a :class:`Budget` that a whole compilation shares, so no spec
can make the evaluator work for long.
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

from cnncost.caches import register

Number = int | float | bool

# Results larger than this are absurd for any network and would only slow things down.
MAX_MAGNITUDE = 2**53
MAX_EXPR_CHARS = 500
MAX_DEPTH = 50
# The most digits round() may keep or drop: round(4, -10**8) would build 10**(10**8).
MAX_ROUND_DIGITS = 16
# The work one evaluate() may do when no shared budget is given (terms and list elements).
DEFAULT_BUDGET = 100_000


class ExprError(ValueError):
    """An expression is not allowed, refers to an unknown name, or fails to evaluate."""


class Budget:
    """Work left for evaluation (terms visited, list elements walked), shared by every
    expression of one compilation; running out is an ExprError."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        # The names expressions looked up while this is a set (cnncost.spec.reshape records
        # what a compilation read, to know which variables its layers depend on).
        self.reads: set[str] | None = None

    def charge(self, units: int = 1) -> None:
        self.left -= units
        if self.left < 0:
            raise ExprError(f"the spec needs more than {self.limit} steps of arithmetic to "
                            "evaluate; expected a network of realistic size (check repeat "
                            "counts and the size of lists)")


def size(value: Any, limit: int) -> int:
    """The work of walking ``value`` (comparing it, printing it, finding its max): one unit per
    list element and table entry, nested ones included, and one per 64 characters of text;
    counting stops past ``limit`` (whatever is over the budget, by how much does not matter)."""
    if not isinstance(value, list | Mapping | str):
        return 0
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) // 64
        elif isinstance(item, list):
            total += len(item)
            stack.extend(v for v in item if isinstance(v, list | Mapping | str))
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(v for v in item.values() if isinstance(v, list | Mapping | str))
    return total


def show(value: Any) -> str:
    """``value`` as a message may quote it: a huge integer as its number of digits (str()
    of one is slow, and refused beyond 4300 digits), a long text cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = math.floor(value.bit_length() * math.log10(2)) + 1
        return f"{'-' if value < 0 else ''}a number of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def listing(names: Any, limit: int = 30) -> str:
    """``names`` joined for a message ("a, b, c"), the first ``limit`` and a count of the rest."""
    names = [str(n) if len(str(n)) <= 40 else str(n)[:37] + "..." for n in names]
    if len(names) > limit:
        return ", ".join(names[:limit]) + f", ... ({len(names) - limit} more)"
    return ", ".join(names) or "(none)"


def check_number(value: Any) -> None:
    """Refuse a number a spec may not hold: complex, NaN, infinite, or beyond MAX_MAGNITUDE.

    Lists and tables are checked element by element; other values pass.
    """
    if isinstance(value, bool | str) or value is None:
        return
    if isinstance(value, complex):
        raise ExprError("the result is a complex number; expected a real number")
    if isinstance(value, float) and math.isnan(value):
        raise ExprError("the result is not a number (NaN); expected a real number")
    if isinstance(value, int | float):
        if abs(value) > MAX_MAGNITUDE:
            raise ExprError(f"value {show(value)} is absurdly large; expected at most "
                            f"2**53 in size")
        return
    if isinstance(value, list):
        for v in value:
            check_number(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            check_number(v)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it.

    The rule torchvision's MobileNet/EfficientNet builders use for width multipliers.
    """
    for what, v in (("value", value), ("min_value", min_value)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError(f"{what} must be a number, got {show(v)}")
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"divisor must be a positive whole number, got {show(divisor)}")
    if min_value is None:
        min_value = divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _round_half_up(x: float, ndigits: int | None = None) -> float | int:
    if ndigits is None:
        return math.floor(x + 0.5)
    if (isinstance(ndigits, bool) or not isinstance(ndigits, int)
            or abs(ndigits) > MAX_ROUND_DIGITS):
        raise ValueError(f"ndigits must be a whole number from -{MAX_ROUND_DIGITS} to "
                         f"{MAX_ROUND_DIGITS}, got {show(ndigits)}")
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


def evaluate(text: str, scope: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Evaluate ``text`` with the names in ``scope``; raise ExprError when it is not allowed.

    The work is charged to ``budget`` (a fresh one of DEFAULT_BUDGET when None).
    """
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    tree = _parse(text.strip())
    return _Evaluator(scope, budget or Budget(DEFAULT_BUDGET)).visit(tree.body)


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def render(template: str, scope: Mapping[str, Any], budget: Budget | None = None) -> str:
    """``template`` with each ``{expression}`` replaced by its value: ``"enc{i + 1}"`` ->
    ``"enc1"``; ``{{`` and ``}}`` are literal braces. Raise ExprError when a field fails."""
    budget = budget or Budget(DEFAULT_BUDGET)
    budget.charge(1 + len(template) // 64)
    if "{" not in template and "}" not in template:
        return template
    if "{" in _FIELD.sub("", template) or "}" in _FIELD.sub("", template):
        raise ExprError(f"unbalanced brace in {template!r}; expected {{expression}} fields "
                        "like 'enc{i + 1}' ({{ and }} for a literal brace)")

    def field(match: re.Match[str]) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        try:
            value = evaluate(match.group(1), scope, budget)
        except ExprError as exc:
            raise ExprError(f"{{{match.group(1)}}} in {show(template)}: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int | float | str | list):
            raise ExprError(f"{{{match.group(1)}}} is {show(value)}; expected a number or a "
                            "string to write into the text")
        if isinstance(value, list):
            budget.charge(size(value, budget.left))
        return str(value)

    return _FIELD.sub(field, template)


@functools.lru_cache(maxsize=4096)
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


register("expr: expressions parsed", _parse.cache_clear)


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
_MISSING = object()


class _Evaluator:
    def __init__(self, scope: Mapping[str, Any], budget: Budget) -> None:
        self.scope = scope
        self.budget = budget
        self.depth = 0
        self.names: dict[str, Any] = {}

    def visit(self, node: ast.AST) -> Any:
        if self.depth >= MAX_DEPTH:
            raise ExprError(f"expression is nested more than {MAX_DEPTH} levels deep")
        budget = self.budget
        budget.left -= 1
        if budget.left < 0:
            budget.charge(0)  # raises
        method = _METHODS.get(type(node))
        if method is None:
            what = _FORBIDDEN.get(type(node).__name__, f"'{type(node).__name__}'")
            raise ExprError(f"{what} is not allowed in a spec expression; expected "
                            "arithmetic on numbers and variables")
        self.depth += 1
        try:
            value = method(self, node)
        finally:
            self.depth -= 1
        if type(value) is int and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            return value  # the common case, checked without a call
        if not isinstance(value, list | Mapping):  # their elements were checked as made
            check_number(value)
        return value

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool | int | float | str):
            return node.value
        raise ExprError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node: ast.Name) -> Any:
        key = "in" if node.id == IN_NAME else node.id
        found = self.names.get(key, _MISSING)  # a name used again: no walk through the scopes
        if found is not _MISSING:
            return found
        if key in self.scope:
            found = self.names[key] = self.scope[key]
            if self.budget.reads is not None:
                self.budget.reads.add(key)
            return found
        if node.id in ("True", "False"):
            return node.id == "True"
        known = listing(sorted(k for k in self.scope if not k.startswith("_")))
        raise ExprError(f"undefined name '{node.id}'; known: {known}")

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
        return _element(seq, index, ast.unparse(node.value).replace(IN_NAME, "in"))

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        _check_numbers(left, right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            return op(left, right)
        except ZeroDivisionError:
            raise ExprError("division by zero") from None
        except OverflowError:
            raise ExprError(f"the result of {show(left)} {_SYMBOLS[type(node.op)]} "
                            f"{show(right)} is absurdly large") from None

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
            if not (type(left) is int and type(right) is int):
                _charge_walk(self.budget, left, right)
            try:
                holds = op(left, right)
            except TypeError:
                raise ExprError(f"cannot compare {show(left)} and {show(right)}") from None
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
        _charge_walk(self.budget, *args, *kwargs.values())  # min/max walk a list or table
        try:
            return FUNCTIONS[node.func.id](*args, **kwargs)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise ExprError(f"{node.func.id}(): {exc}") from None


# visit_X for each node type X the evaluator handles (a dict lookup per node, not getattr)
_METHODS: dict[type, Callable[[_Evaluator, Any], Any]] = {
    getattr(ast, name[len("visit_"):]): fn for name, fn in vars(_Evaluator).items()
    if name.startswith("visit_") and name != "visit"}


def _charge_walk(budget: Budget, *values: Any) -> None:
    """Charge what walking ``values`` costs: comparing two lists or tables (``a == b`` of two
    50,000-element lists, in every repetition, is 10^8 steps), or min/max over one, walks
    all they hold, nested lists and tables included."""
    budget.charge(sum(size(v, budget.left) for v in values))


def _element(seq: Any, index: Any, what: str) -> Any:
    """``seq[index]`` for a list (negative from the end) or a table; ``what`` names seq."""
    if isinstance(seq, list):
        if isinstance(index, bool) or not isinstance(index, int):
            raise ExprError(f"{what}[{show(index)}]: a list index must be a whole number")
        if not -len(seq) <= index < len(seq):
            size = (f"has {len(seq)} element{'s' if len(seq) > 1 else ''}, 0 to "
                    f"{len(seq) - 1}" if seq else "is empty")
            raise ExprError(f"{what}[{index}]: index out of range; {what} {size}")
        return seq[index]
    if isinstance(seq, Mapping):
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int | str) or index not in seq:
            raise ExprError(f"{what}[{show(index)}]: no entry {show(index)} in {what}; "
                            f"known: {listing(seq)}")
        return seq[index]
    raise ExprError(f"{what}[{show(index)}]: only lists and tables can be indexed, but "
                    f"{what} is {show(seq)}")


def _check_numbers(*values: Any) -> None:
    for v in values:
        if not isinstance(v, int | float):
            raise ExprError(f"arithmetic needs numbers, got {show(v)}")


_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**"}


def _check_power(base: float, exponent: float) -> None:
    """Refuse ``base ** exponent`` before computing it when the result would be absurd."""
    if abs(exponent) > 64:
        raise ExprError(f"exponent {show(exponent)} is absurdly large")
    if abs(base) > 1 and exponent > 0 and exponent * math.log2(abs(base)) > 64:
        raise ExprError(f"{show(base)} ** {show(exponent)} is absurdly large; expected at "
                        "most 2**53 in size")

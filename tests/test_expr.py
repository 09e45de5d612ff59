"""The safe expression evaluator: what specs may compute, and everything they may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnncost.spec.expr import (
    MAX_EXPR_CHARS,
    Budget,
    ExprError,
    evaluate,
    make_divisible,
    render,
)


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("1 + 2 * 3", {}, 7),
        ("(1 + 2) * 3", {}, 9),
        ("7 // 2", {}, 3),
        ("7 % 4", {}, 3),
        ("2 ** 10", {}, 1024),
        ("-3 + +1", {}, -2),
        ("7 / 2", {}, 3.5),
        ("in * 4", {"in": 16}, 64),  # `in` = input channels, although a Python keyword
        ("in*t", {"in": 24, "t": 6}, 144),
        ("max(in, 8) // 2", {"in": 4}, 4),
        ("in // 2 if in > 8 else in", {"in": 32}, 16),
        ("in // 2 if in > 8 else in", {"in": 8}, 8),
        ("int(64 * width)", {"width": 0.5}, 32),
        ("s != 1 or in != c", {"s": 1, "in": 64, "c": 64}, False),
        ("s != 1 or in != c", {"s": 2, "in": 64, "c": 64}, True),
        ("not (a and b)", {"a": True, "b": False}, True),
        ("1 < x <= 3", {"x": 3}, True),
        ("1 < x <= 3", {"x": 4}, False),
        ("[k, k]", {"k": 3}, [3, 3]),
        ("(k, 1)", {"k": 7}, [7, 1]),
        ("'same' if k > 1 else 0", {"k": 3}, "same"),
        ("True", {}, True),
        ("min(3, 1, 2) + abs(-2)", {}, 3),
        ("ceil(7 / 2) + floor(7 / 2)", {}, 7),  # 4 + 3
        ("sqrt(16)", {}, 4.0),
        ("float(3)", {}, 3.0),
        # round() rounds halves up (the usual channel-rounding rule), not to even like Python
        ("round(2.5)", {}, 3),
        ("round(3.5)", {}, 4),
        ("round(1.2345, 2)", {}, 1.23),
        # indexing into the lists and tables (mappings) of the scope
        ("depths[2]", {"depths": [3, 4, 6, 3]}, 6),
        ("widths[i] * 2", {"widths": [16, 24, 32], "i": 1}, 48),
        ("widths[-1]", {"widths": [16, 24, 32]}, 32),  # from the end, as in Python
        ("stages[depth]", {"stages": {18: [2, 2], 50: [3, 4]}, "depth": 50}, [3, 4]),
        ("stages[depth][1]", {"stages": {18: [2, 2], 50: [3, 4]}, "depth": 18}, 2),
        ("kind['a']", {"kind": {"a": 1, "b": 2}}, 1),
        ("t[2.0]", {"t": {2: "two"}}, "two"),  # 2.0 is the whole number 2
        ("[8, 16][in // 4]", {"in": 4}, 16),
    ],
)
def test_evaluates(text: str, scope: dict, expected: object) -> None:
    result = evaluate(text, scope)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [
        # torchvision's _make_divisible, by hand: max(d, int(v + d/2) // d * d), +d if < 0.9 v
        (24.0, 8, 24),    # int(28) // 8 * 8 = 24
        (5.6, 8, 8),      # int(9.6) // 8 * 8 = 8
        (33.6, 8, 32),    # int(37.6) // 8 * 8 = 32 >= 0.9 * 33.6 = 30.24
        (91.2, 8, 88),    # int(95.2) // 8 * 8 = 88 >= 82.08
        (10.0, 8, 16),    # int(14) // 8 * 8 = 8 < 0.9 * 10 = 9 -> 8 + 8
        (3.0, 8, 8),      # never below the divisor
        (1280 * 0.5, 8, 640),
    ],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    assert make_divisible(value, divisor) == expected
    assert evaluate(f"make_divisible({value}, {divisor})", {}) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(1).__class__", r"attribute access \(a\.b\) is not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "only plain function calls"),
        ("x.real", r"attribute access \(a\.b\) is not allowed"),
        ("__import__('os').system('echo hacked')", "only plain function calls"),
        ("__import__('os')", "function '__import__' is not allowed"),
        ("eval('1')", "function 'eval' is not allowed"),
        ("open('/etc/passwd')", "function 'open' is not allowed"),
        ("getattr(1, 'real')", "function 'getattr' is not allowed"),
        ("[1, 2][0:1]", r"slicing \(a\[i:j\]\) is not allowed"),
        ("'abc'[0]", "only lists and tables can be indexed"),
        ("x[0]", "x\\[0\\]: only lists and tables can be indexed, but x is 1"),
        ("max[0]", "undefined name 'max'"),  # functions are not values
        ("(lambda: 4)()", "only plain function calls"),
        ("lambda: 4", "lambda is not allowed"),
        ("[x for x in [4]]", "a comprehension is not allowed"),
        ("{x for x in [4]}", "a comprehension is not allowed"),
        ("max(x for x in [4])", "a generator expression is not allowed"),
        ("(y := 4)", r"assignment \(:=\) is not allowed"),
        ("f'{4}'", "an f-string is not allowed"),
        ("max(*[1, 2])", r"unpacking \(\*a\) is not allowed"),
        ("max(**{'a': 1})", "'\\*\\*' arguments are not allowed"),
        ("{'a': 1}", "a dict is not allowed"),
        ("{1, 2}", "a set is not allowed"),
        ("1 in [1]", "comparison 'In' is not allowed"),
        ("1 is 1", "comparison 'Is' is not allowed"),
        ("1 | 2", "operator 'BitOr' is not allowed"),
        ("~1", "operator 'Invert' is not allowed"),
        ("import os", "cannot parse expression"),
        ("x = 1", "cannot parse expression"),
        ("b'1'", "constant b'1' is not allowed"),
        ("...", "constant Ellipsis is not allowed"),
        ("1j", "constant 1j is not allowed"),
        ("", "empty expression"),
    ],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"x": 1})


def test_nothing_executes(tmp_path: Path) -> None:
    """Classic sandbox escapes fail before anything runs: the marker file never appears."""
    marker = tmp_path / "pwned"
    for text in [
        f"__import__('os').system('touch {marker}')",
        f"().__class__.__base__.__subclasses__()[0]('touch {marker}')",
        f"open('{marker}', 'w')",
        f"[c for c in ().__class__.__base__.__subclasses__()][0]('{marker}')",
    ]:
        with pytest.raises(ExprError):
            evaluate(text, {})
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("widht * 2", r"undefined name 'widht'; known: in, width"),
        ("9 ** 9 ** 9", "exponent 387420489 is absurdly large"),
        ("10 ** 20", "absurdly large"),
        ("2.0 ** 60", "absurdly large"),
        ("100000000000000000000", "absurdly large"),
        ("float('inf')", "absurdly large"),
        ("1 / 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("make_divisible(1, 0)",
         r"make_divisible\(\): divisor must be a positive whole number, got 0"),
        ("sqrt(-1)", "sqrt\\(\\): math domain error"),
        ("max()", "max\\(\\)"),
        ("(-8) ** 0.5", "complex number"),
        ("'a' < 1", "cannot compare 'a' and 1"),
        ("'a' * 1000000000", "arithmetic needs numbers, got 'a'"),
        ("[1] * 1000000000", r"arithmetic needs numbers, got \[1\]"),
        ("-" * 60 + "1", "nested more than 50 levels deep"),
        ("abs(" * 60 + "1" + ")" * 60, "nested more than 50 levels deep"),
        ("(" * 240 + "1" + ")" * 240, "cannot parse expression"),  # Python's own limit
        ("1 + " * 200 + "1", f"longer than {MAX_EXPR_CHARS} characters"),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"in": 3, "width": 1.0})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("d[4]", r"d\[4\]: index out of range; d has 4 elements, 0 to 3"),
        ("d[-5]", r"d\[-5\]: index out of range; d has 4 elements, 0 to 3"),
        ("e[0]", r"e\[0\]: index out of range; e is empty"),
        ("d[1.5]", r"d\[1.5\]: a list index must be a whole number"),
        ("d[True]", r"d\[True\]: a list index must be a whole number"),
        ("t[19]", r"t\[19\]: no entry 19 in t; known: 18, 50"),
        ("t['18']", r"t\['18'\]: no entry '18' in t; known: 18, 50"),  # keys keep their type
        ("t[d]", r"t\[\[1, 2, 3, 4\]\]: no entry \[1, 2, 3, 4\] in t"),
    ],
)
def test_indexing_errors_name_the_list_and_its_range(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        evaluate(text, {"d": [1, 2, 3, 4], "e": [], "t": {18: "a", 50: "b"}})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("skip1", "skip1"),  # no field: as written
        ("enc{i + 1}", "enc3"),
        ("up{levels - i}", "up2"),
        ("resnet{depth}", "resnet50"),
        ("ResNet-{depth}{' v1.5' if depth >= 50 else ''}", "ResNet-50 v1.5"),
        ("blocks {stages[depth]}", "blocks [3, 4]"),
        ("{{literal}} {i}", "{literal} 2"),
    ],
)
def test_render_fills_each_field(template: str, expected: str) -> None:
    scope = {"i": 2, "levels": 4, "depth": 50, "stages": {50: [3, 4]}}
    assert render(template, scope) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("enc{i", r"unbalanced brace in 'enc\{i'"),
        ("enc}", "unbalanced brace"),
        ("enc{}", r"\{\} in 'enc\{\}': empty expression"),
        ("enc{j}", r"\{j\} in 'enc\{j\}': undefined name 'j'; known: i"),
        ("enc{i == 2}", r"\{i == 2\} is True; expected a number or a string"),
    ],
)
def test_render_errors(template: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        render(template, {"i": 2})


def test_in_is_only_a_name_when_python_cannot_parse_it() -> None:
    # "in" as the membership operator parses as Python and is rejected, never misread
    with pytest.raises(ExprError, match="comparison 'In'"):
        evaluate("2 in x", {"x": [2], "in": 5})
    assert evaluate("in", {"in": 5}) == 5
    assert evaluate("in+in", {"in": 5}) == 10
    assert evaluate("inner + in", {"inner": 1, "in": 5}) == 6  # only the whole word is renamed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("float('nan')", r"not a number \(NaN\)"),
        ("float('inf') - float('inf')", "absurdly large"),  # inf is refused before NaN
        ("1e308 * 10", "absurdly large"),
        ("9e15 ** 20", r"9000000000000000.0 \*\* 20 is absurdly large"),
        ("(2 ** 53) ** 2", "absurdly large"),
        ("1e300 / 1e-300", "absurdly large"),
        ("2 ** 0.5 ** -70", "exponent .* is absurdly large"),
        ("round(4, -100000000)", "ndigits must be a whole number from -16 to 16"),
        ("round(4.5, 1.5)", "ndigits must be a whole number"),
        ("make_divisible(1e15, 1e-300)", "divisor must be a positive whole number"),
        ("make_divisible(100, 0)", "divisor must be a positive whole number"),
        ("make_divisible('a')", "value must be a number"),
        ("int(float('inf'))", "absurdly large"),
        ("ceil(1e300)", "absurdly large"),
        ("int('9' * 3)", "arithmetic needs numbers"),  # no string repetition
        ("[0] * 1000000000", "arithmetic needs numbers"),  # no list repetition
    ],
)
def test_no_evaluation_builds_a_huge_or_undefined_number(text: str, message: str) -> None:
    """Each of these would take minutes, gigabytes or a traceback if computed as Python does."""
    with pytest.raises(ExprError, match=message):
        evaluate(text, {})


def test_huge_numbers_in_messages_are_summarised() -> None:
    # str() of a 5000-digit int raises in Python >= 3.11 (and is slow before): say its size
    with pytest.raises(ExprError, match=r"value a number of about 1506 digits is absurdly"):
        evaluate("x", {"x": 1 << 5000})


def test_a_shared_budget_bounds_the_work() -> None:
    budget = Budget(100)
    evaluate("1 + 2 + 3", {}, budget)  # 5 terms: 3 constants, 2 additions
    assert budget.left == 95
    with pytest.raises(ExprError, match="more than 100 steps of arithmetic"):
        evaluate("max(x)", {"x": list(range(200))}, budget)  # max walks 200 elements

"""Fitting spec values to a layer kind's typed signature (the signature is the YAML schema).

``fit(value, hint)`` answers whether a value (already evaluated) fits a parameter's type
hint and returns it converted (``4.0`` -> ``4`` for an int); ``describe(hint)`` says in
words what was expected, for error messages.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from cnncost.layers import LayerKind

Fit = tuple[bool, Any]
_NO: Fit = (False, None)


def is_plain(value: Any) -> bool:
    """A number, bool, string, or a list or table (mapping) of them: what a variable holds."""
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, bool | int | float | str) and is_plain(v)
                   for k, v in value.items())
    return isinstance(value, bool | int | float | str)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def literals(hint: Any) -> tuple[Any, ...]:
    """The literal strings a hint accepts as they are (``'same'`` for conv padding)."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if _is_union(hint):
        return tuple(x for h in typing.get_args(hint) for x in literals(h))
    return ()


def _fit_int(value: Any) -> Fit:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, int):
        return True, value
    if isinstance(value, float) and value.is_integer():
        return True, int(value)
    return _NO


def _fit_float(value: Any) -> Fit:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True, float(value)
    return _NO


_SCALARS: dict[Any, Callable[[Any], Fit]] = {
    type(None): lambda v: (v is None, None),
    bool: lambda v: (isinstance(v, bool), v),
    int: _fit_int,
    float: _fit_float,
    str: lambda v: (isinstance(v, str), v),
    Any: lambda v: (True, v),
}


def fit(value: Any, hint: Any) -> Fit:
    """(True, converted value) if ``value`` fits ``hint``, else (False, None)."""
    if _is_union(hint):
        for h in typing.get_args(hint):
            ok, result = fit(value, h)
            if ok:
                return True, result
        return _NO
    origin = typing.get_origin(hint)
    if origin is Literal:
        return (value in typing.get_args(hint)), value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list) or not value:
            return _NO
        fitted = [fit(v, inner) for v in value]
        if all(ok for ok, _ in fitted):
            return True, [r for _, r in fitted]
        return _NO
    scalar = _SCALARS.get(hint)
    return scalar(value) if scalar is not None else _NO


def describe(hint: Any) -> str:
    """What a hint expects, in words: 'a whole number or a list of whole numbers'."""
    if _is_union(hint):
        return " or ".join(describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(x) for x in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        inner = typing.get_args(hint)[0]
        plural = {int: "whole numbers", float: "numbers", bool: "booleans", str: "strings"}
        return f"a list of {plural.get(inner, describe(inner))}"
    if hint is type(None):
        return "nothing (~)"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, str(hint))


def example(lk: LayerKind) -> str:
    """The required fields of a kind with example values: 'out: 64, kernel: 3'."""
    return ", ".join(f"{name}: 3" if name != "out" else "out: 64" for name in lk.required)

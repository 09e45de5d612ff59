"""Typer's parameter coercion, with pydantic imported only when a value is out of the common.

Typer (0.2x) coerces every parameter's value, given or default, through a pydantic
TypeAdapter, so any command imported pydantic: about a third of `cnncost analyze`'s start-up
(0.15 s), with or without options. :func:`install` makes typer build a parameter's coercion
lazily. A value typer's adapter would return as it is passes (a string for ``str``, an
``int`` within the parameter's min/max for ``int``, a member for an ``Enum``, ``True`` or
``False`` for ``bool``; ``None`` is None, or no values for a list, as typer has it). The
commonest texts are converted here exactly as the adapter converts them: a plain decimal
integer or number, an enum's name (through typer's own choice matching), a list of strings,
and a path (``Path(text)`` checked by typer's own path checks). Anything else goes to
typer's own coercion, built on first use, with its own conversions and messages; so does
a value out of a parameter's min/max, for typer's message. ``tests/test_cli_coerce.py``
holds every conversion here equal to typer's on every parameter of every command. A typer
without the hooks this relies on is left as it is.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any, get_args, get_origin

_INSTALLED = False
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")
_NOT = (False, None)


def install() -> None:
    """Make typer's parameter coercion lazy (idempotent; a no-op where typer differs)."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    build = getattr(core, "build_runtime_param", None)
    if build is None or not hasattr(core, "_TyperParameter"):
        return  # another typer: its coercion as it is
    lazy: Any = lambda descriptor: _Lazy(descriptor, build)  # noqa: E731
    core.build_runtime_param = lazy


class _Lazy:
    """A parameter's coercion: common values here, the rest by typer's own (built once)."""

    def __init__(self, descriptor: Any, build: Any) -> None:
        self.descriptor = descriptor
        self.build = build
        self.real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        several = param.multiple or param.nargs == -1
        if value is None:  # as typer's RuntimeParam.coerce: before any conversion
            return () if several else None
        done, result = (_strings(self.descriptor, value) if several
                        else converted(self.descriptor, value, param, ctx))
        if done:
            return result
        if self.real is None:
            self.real = self.build(self.descriptor)
        return self.real.coerce(value, param=param, ctx=ctx)

    def __getattr__(self, name: str) -> Any:  # anything else typer asks of its coercion
        if self.real is None:
            self.real = self.build(self.descriptor)
        return getattr(self.real, name)


def _strings(descriptor: Any, value: Any) -> tuple[bool, Any]:
    """Several values of a ``list[str]`` parameter: a list of the same strings."""
    annotation = getattr(descriptor, "annotation", None)
    if get_origin(annotation) is list and get_args(annotation) == (str,) \
            and _plain(descriptor) and isinstance(value, list | tuple) \
            and all(type(v) is str for v in value):
        return True, list(value)
    return _NOT


def _plain(descriptor: Any) -> bool:
    """No file opening and no custom parser: typer's adapter is its plain one."""
    info = getattr(descriptor, "parameter_info", None)
    return getattr(descriptor, "file_annotation", None) is None and \
        getattr(info, "parser", None) is None and not getattr(info, "clamp", False)


def _in_range(descriptor: Any, number: float) -> bool:
    info = getattr(descriptor, "parameter_info", None)
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    return (low is None or number >= low) and (high is None or number <= high)


def converted(descriptor: Any, value: Any, param: Any = None,
              ctx: Any = None) -> tuple[bool, Any]:
    """``(True, what typer's adapter returns for value)``, or ``(False, None)`` to leave
    ``value`` to typer's own coercion."""
    annotation = getattr(descriptor, "annotation", None)
    if not _plain(descriptor):
        return _NOT
    if annotation is str or annotation is bool:
        return (True, value) if type(value) is annotation else _NOT
    if annotation is int or annotation is float:
        if type(value) is str and (_INT if annotation is int else _FLOAT).fullmatch(value):
            value = annotation(value)
        if type(value) is annotation and _in_range(descriptor, value):
            return True, value
        return _NOT
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _member(descriptor, annotation, value, ctx)
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return _path(descriptor, annotation, value, param, ctx)
    return _NOT


def _member(descriptor: Any, annotation: type[enum.Enum], value: Any,
            ctx: Any) -> tuple[bool, Any]:
    if type(value) is annotation:
        return True, value
    choose = _typer_function("coerce_cli_choice")
    if type(value) is not str or choose is None:
        return _NOT
    try:  # typer's own matching of a text to a choice (its normalisation and case rule)
        return True, choose(value, choices=tuple(annotation), ctx=ctx,
                            case_sensitive=descriptor.parameter_info.case_sensitive)
    except ValueError:
        return _NOT  # not a choice: typer's message


def _path(descriptor: Any, annotation: type[Path], value: Any, param: Any,
          ctx: Any) -> tuple[bool, Any]:
    check = _typer_function("coerce_cli_path")
    info = descriptor.parameter_info
    if check is None or param is None or getattr(info, "path_type", None) is not None \
            or type(value) is not str or not value or "\x00" in value:
        return _NOT
    # typer's adapter makes the text a path, then checks it with coerce_cli_path; its
    # checks (and their messages) are typer's own here too.
    return True, check(annotation(value), info, path_type=annotation, param=param, ctx=ctx)


def _typer_function(name: str) -> Any:
    try:
        from typer import _param_types
    except ImportError:  # pragma: no cover - another typer
        return None
    return getattr(_param_types, name, None)

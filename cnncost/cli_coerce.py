"""Typer's parameter coercion, with pydantic imported only when a value needs converting.

Typer (0.2x) coerces every parameter's value, given or default, through a pydantic
TypeAdapter, so any command imported pydantic: about a third of `cnncost analyze`'s start-up.
:func:`install` makes typer build a parameter's coercion lazily: a value that is already
what the adapter would return it as is (a string for ``str``, an ``int`` within the
parameter's min/max for ``int``, a member for an ``Enum``, ``True``/``False`` for
``bool``; ``None`` is None, or no values for a list, as typer has it), and any other
value goes to typer's own coercion, built on first use, with its own conversions and
messages. A typer without the hook this relies on is left as it is.
"""

from __future__ import annotations

import enum
from typing import Any

_INSTALLED = False


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
    """A parameter's coercion: unchanged values here, the rest by typer's own (built once)."""

    def __init__(self, descriptor: Any, build: Any) -> None:
        self.descriptor = descriptor
        self.build = build
        self.real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        several = param.multiple or param.nargs == -1
        if value is None:  # as typer's RuntimeParam.coerce: before any conversion
            return () if several else None
        if not several and _unchanged(self.descriptor, value):
            return value
        if self.real is None:
            self.real = self.build(self.descriptor)
        return self.real.coerce(value, param=param, ctx=ctx)

    def __getattr__(self, name: str) -> Any:  # anything else typer asks of its coercion
        if self.real is None:
            self.real = self.build(self.descriptor)
        return getattr(self.real, name)


def _unchanged(descriptor: Any, value: Any) -> bool:
    """Whether typer's adapter would return ``value`` as it is."""
    annotation = getattr(descriptor, "annotation", None)
    if getattr(descriptor, "file_annotation", None) is not None:
        return False
    if annotation is str or annotation is bool:
        return type(value) is annotation
    if annotation is int:
        info = getattr(descriptor, "parameter_info", None)
        low, high = getattr(info, "min", None), getattr(info, "max", None)
        return type(value) is int and (low is None or value >= low) and \
            (high is None or value <= high)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return type(value) is annotation
    return False

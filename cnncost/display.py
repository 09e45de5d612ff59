"""How a result shows itself in a notebook: Jupyter calls a result's ``_repr_html_``, which
is :func:`repr_html` for every result (CostTable, Comparison, Sweep, Advice, the benchmarks,
the predictions).

The HTML comes from the HTML renderer (``cnncost.render``), which stands above every result;
a result cannot import it. So this base module holds the one registry, ``HTML`` (result type
-> its HTML fragment), which ``cnncost.render.notebook`` fills with ``@shows(name)``; the
package's ``__init__`` (the top floor, which may import render) hands :func:`load_with` the
function that imports it, called once, the first time a result is shown. Nothing here
imports anything, so a result's module pays nothing for being displayable.

A result that cannot be drawn (a CnnCostError while rendering) shows the error's one line
in a box instead of a traceback; a CnnCostError raised by a call in a notebook prints its
one line too (cnncost.errors.CnnCostError._render_traceback_).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any, TypeVar

from cnncost.errors import CnnCostError

# "module.Class" of a result -> its HTML. By name, so that registering the benchmarks' reports
# does not import their modules (and torch): a name is looked up along the class's MRO.
HTML: dict[str, Callable[[Any], str]] = {}
_LOADER: list[Callable[[], None]] = []
T = TypeVar("T")


def name_of(cls: type) -> str:
    """A class's registry name: ``cnncost.table.CostTable``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def shows(*names: str) -> Callable[[Callable[[T], str]], Callable[[T], str]]:
    """Register a function as the HTML of the result classes named (``module.Class``; in
    cnncost.render.notebook)."""

    def register(fn: Callable[[T], str]) -> Callable[[T], str]:
        for name in names:
            if name in HTML:
                raise ValueError(f"{name} has an HTML renderer already")
            HTML[name] = fn
        return fn

    return register


def load_with(loader: Callable[[], None]) -> None:
    """The function that fills HTML (by importing cnncost.render.notebook)."""
    _LOADER[:] = [loader]


def renderer(obj: object) -> Callable[[Any], str] | None:
    """The HTML renderer of a result (of its class or a base class), or None."""
    if not HTML and _LOADER:
        _LOADER[0]()
    return next((HTML[name_of(c)] for c in type(obj).__mro__ if name_of(c) in HTML), None)


def repr_html(obj: object) -> str | None:
    """A result as an HTML fragment for Jupyter (None: it has none, and Jupyter shows its
    repr); a CnnCostError while rendering is shown as its one line."""
    draw = renderer(obj)
    if draw is None:
        return None
    try:
        return draw(obj)
    except CnnCostError as exc:
        return error_html(exc)


def error_html(exc: BaseException) -> str:
    """An error as a notebook shows it: one line in a red box."""
    return ('<div class="cnncost-error" style="border:1px solid #c33;border-radius:6px;'
            'padding:6px 10px;color:#a00;font-family:ui-monospace,monospace">'
            f"error: {escape(str(exc))}</div>")

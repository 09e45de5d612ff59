"""What a process remembers between counts, in one place, and the one way counting pauses the
garbage collector.

Every cache that outlives a call and grows with what is counted (layers lowered, specs
planned, layers inferred, op metadata, parsed expressions, a sweep's compiled spec) is made
here with ``cache("owner: what")`` (a plain dict, so a lookup costs what a dict lookup
costs) or, when it is kept otherwise (``functools.lru_cache``), registered with
``register(name, clear)``.
``clear_caches()`` then forgets them all: the process as fresh (benchmarks time cold counts
from there, tests start from it). A memo of what the code alone decides (a JSON schema) is
no such cache and may stay a ``functools.cache``.

``gc_paused()``: counting makes no reference cycles worth collecting, and a full collection
of a big heap (torch imported, thousands of layers lowered) costs more than a count; the
torch engine also needs tensors freed at the same points every run (its peak). The engines
and the sweep pause the cyclic collector with it; nested pauses restore it once.

Pure Python; imports nothing of cnncost, so any module may use it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

_CLEARS: dict[str, Callable[[], None]] = {}


def register(name: str, clear: Callable[[], None]) -> None:
    """Register a cache kept elsewhere (its ``clear``) under ``name``; a name is taken once."""
    if name in _CLEARS:
        raise RuntimeError(f"cache {name!r} registered twice")
    _CLEARS[name] = clear


def cache(name: str) -> dict[Any, Any]:
    """A new process-wide cache (a dict), registered under ``name``."""
    found: dict[Any, Any] = {}
    register(name, found.clear)
    return found


def names() -> list[str]:
    """The caches registered so far (by the modules imported so far), in registration order."""
    return list(_CLEARS)


def clear_caches(*prefixes: str) -> None:
    """Forget everything every registered cache holds: as in a fresh process. With
    ``prefixes``, only the caches whose names start with one (``"analytic:"``: one engine's,
    as a benchmark times it cold while the other stays warm)."""
    for name, clear in _CLEARS.items():
        if not prefixes or name.startswith(prefixes):
            clear()


class gc_paused:
    """The cyclic garbage collector paused for a ``with`` block, and enabled again after it
    only if it was enabled before (so a pause inside a pause changes nothing)."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()

"""The two tiers of a parametrized check (issue 22): the fast tier (`pytest -m "not slow"`)
runs a representative of each class of its cases, the slow tier runs the rest, so CI still
runs every case and a new registry entry is still tested without editing a test."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import pytest


def tiered(cases: Iterable[Any], fast: Collection[str],
           ids: Sequence[str] | None = None) -> list[Any]:
    """`cases` as `pytest.param`s, a tuple case spread over the test's arguments: a case whose
    id (`ids[i]`, else `str(case)`) is in `fast` runs in both tiers, the others in the slow
    tier only. An id in `fast` that names no case is an error, not a case silently lost."""
    cases = list(cases)
    names = [str(c) for c in cases] if ids is None else list(ids)
    unknown = set(fast) - set(names)
    assert not unknown, f"tiered: no case is called {sorted(unknown)}"
    return [pytest.param(*(case if isinstance(case, tuple) else (case,)), id=name,
                         marks=() if name in fast else pytest.mark.slow)
            for case, name in zip(cases, names, strict=True)]

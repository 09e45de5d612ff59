"""What a process remembers lives in one place (cnncost.caches): every cache is registered
there, one clear_caches() forgets them all, and gc_paused() is the only pause of the collector."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import pytest
from small_spec import small

from cnncost import caches

PACKAGE = Path(__file__).resolve().parents[1] / "cnncost"
SOURCES = {p.relative_to(PACKAGE).as_posix(): p.read_text(encoding="utf-8")
           for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _empty_private_dicts(text: str) -> list[str]:
    """Module-level private names bound to an empty dict: a cache filled at run time."""
    found = []
    for node in ast.parse(text).body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        empty = (isinstance(value, ast.Dict) and not value.keys) or (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id == "dict" and not value.args)
        found += [t.id for t in targets if empty and isinstance(t, ast.Name)
                  and t.id.startswith("_")]
    return found


def test_every_module_level_cache_is_made_in_caches() -> None:
    loose = [f"{name}: {var}" for name, text in SOURCES.items() if name != "caches.py"
             for var in _empty_private_dicts(text)]
    assert not loose, ("module-level caches not made by cnncost.caches.cache: "
                       + ", ".join(loose))


def test_only_caches_pauses_the_collector() -> None:
    pausing = [name for name, text in SOURCES.items() if name != "caches.py"
               and ("gc.disable(" in text or "gc.enable(" in text)]
    assert not pausing, f"pause the collector with cnncost.caches.gc_paused: {pausing}"


def test_clear_caches_empties_every_cache_counting_filled(tmp_path: Path) -> None:
    from cnncost.count import analytic, drivers, lowering, mode
    from cnncost.spec import expr, parse_spec
    from cnncost.spec import reshape as reshape_module
    from cnncost.sweep import run_sweep

    path = tmp_path / "small.yaml"
    path.write_text(small("name: small"))
    spec = parse_spec(path.read_text(), str(path))
    analytic.count_spec(spec)
    drivers.count_spec(spec)
    run_sweep(str(path), ["width=2,4"])
    held = {"analytic: layers lowered": analytic._PROGRAMS,
            "analytic: specs planned": analytic._PLANS,
            "analytic: op names qualified": lowering._QUALIFIED,
            "torch: op schemas": mode._OP_INFO, "torch: op costs": mode._CACHE,
            "reshape: layers inferred": reshape_module._INFERRED}
    assert set(held) <= set(caches.names())
    filled = ("analytic: layers lowered", "analytic: specs planned", "torch: op schemas",
              "torch: op costs")
    assert all(held[k] for k in filled), {k: len(v) for k, v in held.items()}
    assert expr._parse.cache_info().currsize > 0

    caches.clear_caches("analytic:")  # one engine's alone
    assert not analytic._PROGRAMS and not analytic._PLANS and mode._CACHE
    caches.clear_caches()
    assert not any(held.values())
    assert expr._parse.cache_info().currsize == 0


def test_a_name_is_registered_once() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        caches.cache("analytic: layers lowered")


def test_gc_paused_restores_the_collector_once_nested_pauses_end() -> None:
    assert gc.isenabled()
    with caches.gc_paused():
        assert not gc.isenabled()
        with caches.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause found it paused: leaves it so
    assert gc.isenabled()
    gc.disable()
    try:
        with caches.gc_paused():
            pass
        assert not gc.isenabled()  # paused before: still paused after
    finally:
        gc.enable()

"""Imports flow one way: the floors of README's Layout section, held against every import.

Every import of the package is read from the source (module level, inside functions, under
``if TYPE_CHECKING:``, relative ones, and ``importlib.import_module("cnncost...")`` /
``__import__`` with a literal name): a lazy import is for start-up time, not a way around the
order. Two things fail:

- an arrow that runs back up: a module imports one on a higher floor than its own (a module
  may import its own floor and the floors below);
- a circle: files that import each other in a loop, at any floor, inside a package too.
  ``REGISTRATION_PAIR`` may name the one pair of files allowed to (a registry and the module
  that fills it, say); today none needs to.

The order is written once, in the README (the numbered floors of "## Layout"); this test
reads it from there, so the two cannot disagree.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnncost"
README = ROOT / "README.md"

# The one pair of files allowed to import each other (a registration pair), or None.
REGISTRATION_PAIR: frozenset[str] | None = None

# What the floors must keep apart whatever else moves (issue 22): no module of the first
# part imports the second, so the first must stand on a lower floor.
NEVER = [(low, high) for low in ("advise", "sweep", "measure", "count", "graph", "spec")
         for high in ("api", "cli", "render")] + [("render", "api")]


# render's kit: what every renderer builds on. It imports no renderer back (a result's
# renderer may import the kit, never the other way round).
RENDER_KIT = frozenset({"cnncost.render.formats", "cnncost.render.terminal",
                        "cnncost.render.console", "cnncost.render.html", "cnncost.render.svg",
                        "cnncost.render.charts"})


@dataclass(frozen=True)
class Import:
    """One import of a cnncost module: who, where, and the module it names."""

    source: str  # dotted name of the importing module
    line: int
    target: str  # dotted name of the imported module (a module of the package)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """cnncost/count/drivers.py -> cnncost.count.drivers; a package's __init__ -> the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))
            if "__pycache__" not in p.parts}


def _named(name: str, modules: Mapping[str, Path]) -> str | None:
    """The package module a dotted name refers to (the longest that exists), or None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _literal_module(node: ast.Call) -> str | None:
    """``importlib.import_module("x")``, ``import_module("x")``, ``__import__("x")`` -> x."""
    fn = node.func
    called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(
        fn, ast.Name) else None
    if called not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(
        first.value, str) else None


def imports_of(source: str, text: str, modules: Mapping[str, Path],
               is_package: bool = False) -> Iterator[Import]:
    """Every import of a package module in one module's text, wherever it stands."""
    package = source if is_package else source.rpartition(".")[0]
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` mod.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        elif isinstance(node, ast.Call):
            literal = _literal_module(node)
            names = [literal] if literal else []
        for name in names:
            target = _named(name, modules)
            if target is not None and target != source:
                yield Import(source, node.lineno, target)


def read_imports(root: Path = PACKAGE) -> list[Import]:
    """Every import between the package's modules (once per module, line and target)."""
    modules = package_modules(root)
    found = [imp for name, path in modules.items()
             for imp in imports_of(name, path.read_text(encoding="utf-8"), modules,
                                   path.name == "__init__.py")]
    return list(dict.fromkeys(found))


def floors_in(readme: str) -> list[list[str]]:
    """The numbered floors of the README's Layout section, bottom first: each floor's
    backticked names before its dash (``1. `errors`, `fmt` - the base``)."""
    start = readme.index("\n## Layout\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start:end if end >= 0 else None]
    found = re.findall(r"^(\d+)\. (.*?)(?: - |$)", section, re.M)
    assert found, "README's Layout section lists no numbered floors"
    numbers = [int(n) for n, _ in found]
    assert numbers == list(range(1, len(found) + 1)), f"floors numbered {numbers}"
    return [[n.removesuffix("/").removesuffix(".py") for n in re.findall(r"`([^`]+)`", names)]
            for _, names in found]


def entry(module: str) -> str:
    """The floor-plan name of a module: its top-level module or package under cnncost."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def upward(imports: Iterable[Import], floor: Mapping[str, int]) -> list[str]:
    """Each import from a lower floor to a higher one, as ``file:line: a -> b``."""
    return [f"{i.source}:{i.line}: {entry(i.source)} (floor {floor[entry(i.source)]}) "
            f"imports {i.target} (floor {floor[entry(i.target)]})"
            for i in imports if floor[entry(i.source)] < floor[entry(i.target)]]


def circles(imports: Iterable[Import]) -> list[list[str]]:
    """The import circles (strongly connected sets of more than one module), Tarjan's way."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set()).add(i.target)
        graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


IMPORTS = read_imports()
FLOORS = floors_in(README.read_text(encoding="utf-8"))
FLOOR = {name: n for n, names in enumerate(FLOORS, 1) for name in names}


def test_every_module_stands_on_one_floor() -> None:
    named = [name for names in FLOORS for name in names]
    assert len(named) == len(set(named)), f"named on two floors: {named}"
    entries = {entry(m) for m in package_modules()}
    assert entries <= set(named), (
        f"README's floors do not place: {sorted(entries - set(named))}")
    assert set(named) <= entries, f"README's floors name what is not in cnncost/: " \
        f"{sorted(set(named) - entries)}"


def test_no_import_runs_back_up() -> None:
    wrong = upward(IMPORTS, FLOOR)
    assert not wrong, "imports that run back up (README's Layout floors):\n" + "\n".join(wrong)


def test_no_import_circle() -> None:
    found = [c for c in circles(IMPORTS) if frozenset(c) != REGISTRATION_PAIR]
    lines = [" <-> ".join(c) + ": " + "; ".join(
        f"{i.source}:{i.line} -> {i.target}" for i in IMPORTS
        if i.source in c and i.target in c) for c in found]
    assert not found, "import circles:\n" + "\n".join(lines)


@pytest.mark.parametrize(("low", "high"), NEVER, ids=[f"{a}-not-{b}" for a, b in NEVER])
def test_the_floors_keep_apart_what_never_imports(low: str, high: str) -> None:
    assert FLOOR[low] < FLOOR[high], f"README's floors let {low} import {high}"


def test_the_render_kit_imports_no_renderer() -> None:
    assert set(package_modules()) >= RENDER_KIT, "RENDER_KIT names a module that is gone"
    back = [f"{i.source}:{i.line} -> {i.target}" for i in IMPORTS
            if i.source in RENDER_KIT and i.target.startswith("cnncost.render.")
            and i.target not in RENDER_KIT]
    assert not back, "the render kit imports a renderer:\n" + "\n".join(back)


def test_no_command_module_imports_another() -> None:
    # typer's own layout: each command group's module imports the shared options, and only
    # the app (cnncost/cli/__init__.py) imports the command modules.
    shared = {"cnncost.cli.options"}
    crossing = [f"{i.source}:{i.line} -> {i.target}" for i in IMPORTS
                if i.source.startswith("cnncost.cli.") and i.target.startswith("cnncost.cli")
                and i.target not in shared]
    assert not crossing, "a command module imports another:\n" + "\n".join(crossing)


# --------------------------------------------------------------------------- the reader


READER_CASES = {
    "module level": "from cnncost.b import thing\n",
    "plain import": "import cnncost.b\n",
    "inside a function": "def f():\n    from cnncost.b import thing\n    return thing\n",
    "type checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from cnncost.b import Thing\n",
    "relative": "from .b import thing\n",
    "submodule by from": "from cnncost import b\n",
    "import_module": "import importlib\nm = importlib.import_module('cnncost.b')\n",
    "bare import_module": "from importlib import import_module\n"
                          "def f():\n    return import_module('cnncost.b.inner')\n",
    "__import__": "m = __import__('cnncost.b')\n",
}


@pytest.mark.parametrize("text", list(READER_CASES.values()), ids=list(READER_CASES))
def test_the_reader_sees_every_kind_of_import(text: str, tmp_path: Path) -> None:
    root = tmp_path / "cnncost"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text(text)
    (root / "b.py").write_text("")
    assert [(i.source, i.target) for i in read_imports(root)] == [("cnncost.a", "cnncost.b")]


def test_the_checks_fail_on_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    root = tmp_path / "cnncost"
    (root / "low").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "low" / "__init__.py").write_text("")
    (root / "low" / "one.py").write_text("def f():\n    from cnncost.low import two\n")
    (root / "low" / "two.py").write_text("from cnncost.low.one import f\n")
    (root / "high.py").write_text("")
    (root / "low" / "three.py").write_text("import cnncost.high\n")
    found = read_imports(root)
    floors = floors_in("\n## Layout\n\n1. `low/` - below\n2. `high.py` - above\n")
    floor = {name: n for n, names in enumerate(floors, 1) for name in names}
    assert upward(found, floor) == [
        "cnncost.low.three:1: low (floor 1) imports cnncost.high (floor 2)"]
    assert circles(found) == [["cnncost.low.one", "cnncost.low.two"]]

"""The layout stays readable: module and function sizes, and the README agrees with the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cnncost.layers import LAYERS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnncost"
README = (ROOT / "README.md").read_text(encoding="utf-8")
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 600
MAX_DEF_LINES = 150


@pytest.mark.parametrize("module", MODULES)
def test_module_and_definition_sizes(module: str) -> None:
    source = (PACKAGE / module).read_text(encoding="utf-8")
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines; split it by job"
    too_long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.end_lineno is not None
                and node.end_lineno - node.lineno + 1 > MAX_DEF_LINES]
    assert not too_long, f"{module}: longer than {MAX_DEF_LINES} lines: {', '.join(too_long)}"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def _without_parentheses(text: str) -> str:
    """The text with every (possibly nested) parenthesised part removed."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def readme_layer_kinds() -> list[str]:
    """The kinds the README's spec rules list: the backticked names of the "Layer kinds"
    bullet, leaving out the fields given in parentheses after a kind."""
    found = re.search(r"^- \*\*Layer kinds\*\*:(.*?)(?=^- \*\*|\Z)", README, re.M | re.S)
    assert found, "README: no '- **Layer kinds**:' bullet in the spec language rules"
    return re.findall(r"`([a-z_0-9]+)`", _without_parentheses(found[1]))


def test_readme_lists_every_layer_kind() -> None:
    listed = readme_layer_kinds()
    assert len(listed) == len(set(listed)), "README lists a layer kind twice"
    assert set(listed) == set(LAYERS), (
        f"README's layer kinds differ from cnncost.layers.LAYERS: missing "
        f"{sorted(set(LAYERS) - set(listed))}, unknown {sorted(set(listed) - set(LAYERS))}")


def test_readme_layout_names_every_package_and_module() -> None:
    layout = _section("Layout")
    top = sorted({m.split("/")[0] for m in MODULES} - {"__init__.py", "__main__.py"})
    missing = [name for name in top
               if f"`{name.removesuffix('.py')}/`" not in layout and f"`{name}`" not in layout]
    assert not missing, f"README's Layout section does not name: {', '.join(missing)}"

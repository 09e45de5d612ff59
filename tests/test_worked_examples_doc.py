"""docs/worked-examples.md: every command shown runs, and prints the lines shown.

The page quotes cnncost's output under each lecture's example; this test keeps the quotes true
(each shown line must be a line of the real output; ``...`` stands for lines left out), checks
that every textbook spec is on the page with its lecture's slide titles, and that the
contents' links lead to headings.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "worked-examples.md"
TEXTBOOK = ROOT / "specs" / "textbook"


def _blocks() -> list[tuple[str, list[str]]]:
    """(command, shown output lines) of each fenced block that starts with ``$ cnncost``."""
    found = []
    for block in re.findall(r"^```\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S):
        first, *rest = block.rstrip("\n").split("\n")
        if first.startswith("$ cnncost "):
            found.append((first[2:], rest))
    return found


BLOCKS = _blocks()


def test_the_page_shows_commands() -> None:
    assert len(BLOCKS) >= 23


@pytest.mark.parametrize(("command", "shown"), BLOCKS, ids=[c for c, _ in BLOCKS])
def test_shown_output_is_real(command: str, shown: list[str]) -> None:
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    lines = {line.rstrip() for line in result.output.splitlines()}
    missing = [line for line in shown if line != "..." and line.rstrip() not in lines]
    assert not missing, f"{command}: not in its output:\n" + "\n".join(missing)


def test_every_textbook_spec_is_on_the_page_with_its_slides() -> None:
    text = DOC.read_text(encoding="utf-8")
    commands = {c.split()[2] for c, _ in BLOCKS if c.startswith("cnncost explain ")}
    for path in sorted(TEXTBOOK.glob("*.yaml")):
        assert f"textbook/{path.stem}" in commands, path.name
        titles = re.findall(r": '([^']+)'", load_spec(path).description)
        assert titles, path.name
        for title in titles:
            assert f'"{title}"' in text, (path.name, title)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_contents_links_lead_to_headings() -> None:
    text = DOC.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) >= 23
    assert [a for a in links if a not in anchors] == []
    numbered = re.findall(r"^### (\d+)\. ", text, re.M)
    assert [int(n) for n in numbered] == list(range(1, len(numbered) + 1))

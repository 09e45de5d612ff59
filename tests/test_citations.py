"""What users and contributors read cites the lectures, never our private copies of them.

The worked examples come from lecture slides (docs/worked-examples.md cites each one: course,
author, institution, lecture and slide title). Our transcripts of those slides, their file
names and the table we keep of their numbers are not part of the repository, so nothing in
it may point at them: this test scans every user-facing text file for their names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("README.md", "docs", "specs", "cnncost", "tests", "benchmarks", "reports", ".ci",
           "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".txt", ".cfg", ".ini", ""}

# Built from pieces so that this file does not match itself.
FORBIDDEN = {
    "a transcript file name": re.compile(r"\b[0-9]{3}_[0-9a-f]{16}\b"),
    "the private table of worked numbers": re.compile("WORKED" + "_NUMBERS", re.IGNORECASE),
    "a transcript by number": re.compile(r"\bseeds?[ /]0[0-9]{2}\b", re.IGNORECASE),
    "the transcripts folder": re.compile(r"\bseeds/", re.IGNORECASE),
}


def _files() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in sorted(path.rglob("*")) if p.is_file()
                      and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    return found


def offences(text: str) -> list[str]:
    """``line N: what`` for each forbidden reference in ``text``."""
    return [f"line {no}: {what} ({m.group(0)!r})"
            for no, line in enumerate(text.splitlines(), 1)
            for what, pattern in FORBIDDEN.items() for m in pattern.finditer(line)]


def test_the_scan_sees_the_user_facing_files() -> None:
    rel = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"README.md", "docs/worked-examples.md", "specs/textbook/conv5x5.yaml",
            "cnncost/cli/analyze.py", "tests/test_textbook.py"} <= rel


@pytest.mark.parametrize("text", [
    "# see " + "seed" + " 004 for the numbers",
    "source: " + "seeds" + "/001_0533114b" + "4908a7d6.txt",
    "Cost of Convolution (000_ac2cd715f1d10" + "492.txt)",
    "def test_vgg16_matches_worked_" + "numbers():",
    "WORKED_" + "NUMBERS row 6",
])
def test_offences_are_found(text: str) -> None:
    assert offences(text)


@pytest.mark.parametrize("text", [
    "torch.manual_seed(0)", "seeded with the quick calibration", "hypothesis seed=1234",
    '(A. Erdem, COMP541 Deep Learning, Koç University: "Receptive Fields")',
])
def test_ordinary_text_passes(text: str) -> None:
    assert not offences(text)


def test_no_user_facing_file_names_the_private_sources() -> None:
    found = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT).as_posix()} {o}" for o in offences(text)]
    assert not found, "cite the lecture (course, author, slide title) instead:\n" + "\n".join(found)

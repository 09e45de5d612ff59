"""README.md: every Python session it shows (a ``pycon`` block, ``>>>`` lines and what they
print) runs as shown, with doctest: the Python API's examples are the user's manual too.

Each block runs in a fresh namespace, in a temporary folder (a block may write files), and
every printed value is compared with the README's (doctest's own rules: ``...`` in an
expected value stands for any text with the ELLIPSIS option on).
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")


def pycon_blocks(text: str) -> list[tuple[int, str]]:
    """Every ```pycon block: (its first line in the README, its text)."""
    return [(text[:m.start()].count("\n") + 2, m[1])
            for m in re.finditer(r"^```pycon\n(.*?)^```", text, re.M | re.S)]


BLOCKS = pycon_blocks(TEXT)


def test_the_readme_has_python_sessions() -> None:
    assert BLOCKS, "README.md shows no ```pycon block"


@pytest.mark.parametrize("line,block", BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_session_prints_what_the_readme_shows(line: int, block: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(block, {}, f"README.md:{line}", str(README),
                                               line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)

"""Output through a real pipe: when stdout is not a terminal, tables are never folded or cut.

Each row is one line at its natural width, whatever COLUMNS says, so that
`cnncost analyze mobilenetv2 | grep stage2.0.expand.conv` finds the row and `awk`/`diff`
see whole rows. On a terminal (a pseudo-terminal here) names still fold to fit its width.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _env(columns: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    return {**env, "COLUMNS": str(columns), "PYTHONPATH": str(ROOT)}


def piped(*args: str, columns: int = 40) -> str:
    """stdout of `python -m cnncost ARGS | ...` (a pipe), at a COLUMNS narrower than any table."""
    # capture_output: stdout is a pipe (os.pipe), as in a shell's `cnncost ... | grep`
    done = subprocess.run([sys.executable, "-m", "cnncost", *args], capture_output=True,
                          text=True, env=_env(columns), timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_piped_table_row_is_one_line_that_grep_finds() -> None:
    out = piped("analyze", "mobilenetv2")
    (row,) = [line for line in out.splitlines() if "stage2.0.expand.conv" in line]
    # MobileNetV2's second stage expands 16 channels to 96 (t=6) at 112x112 with a 1x1 conv
    # (Sandler et al. 2018, table 2): params 16 x 96 = 1,536; MACs 96 x 16 x 112 x 112 =
    # 19,267,584 (19.3M); output 96 x 112 x 112 float32 = 4,816,896 bytes = 4.59 MiB.
    cells = row.split()
    assert cells[:5] == ["stage2.0.expand.conv", "conv", "1x96x112x112", "1,536", "19.3M"]
    assert cells[-2:] == ["4.59", "MiB"]
    assert row == row.rstrip()  # no padding to a terminal's width either


def test_every_piped_list_row_holds_its_whole_description() -> None:
    out = piped("list", "--no-totals").splitlines()
    specs = sorted((ROOT / "specs").rglob("*.yaml"))
    assert specs
    checked = 0
    for path in specs:
        name = path.relative_to(ROOT / "specs").with_suffix("").as_posix()
        rows = [line for line in out if line.split()[:1] == [name]]
        assert len(rows) == 1, name
        own = yaml.safe_load(path.read_text()).get("description")
        if own is not None and "{" not in str(own):  # (not one extended or templated)
            assert " ".join(rows[0].split()[1:]) == " ".join(str(own).split()), name
            checked += 1
    assert checked > len(specs) // 2


def _on_a_terminal(*args: str, columns: int) -> list[str]:
    """The lines `python -m cnncost ARGS` shows on a pseudo-terminal COLUMNS wide."""
    leader, follower = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cnncost", *args], stdout=follower,
                               stderr=subprocess.DEVNULL, env=_env(columns))
    os.close(follower)
    chunks = []
    try:
        while True:  # read while it writes: a full terminal buffer would block it
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the other end is closed and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        assert process.wait(timeout=300) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_on_a_terminal_names_still_fold_to_its_width() -> None:
    lines = _on_a_terminal("analyze", "mobilenetv2", columns=60)
    assert not [line for line in lines if "stage2.0.expand.conv" in line]  # folded ...
    assert [line for line in lines if line.split()[:1] == ["stage2.0.expand."]]  # ... here

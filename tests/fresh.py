"""`python -m cnncost ARGS` in a fresh interpreter, for tests of what a command imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_cli(args: list[str], tmp: Any, module: str) -> tuple[int, str, bool]:
    """Run ``python -m cnncost ARGS`` in a fresh interpreter in ``tmp`` (its cache folder
    too: `list` counts instead of reading a cache): the exit code, stderr, and whether
    ``module`` was imported."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['cnncost', *{args!r}]\n"
            "try:\n    runpy.run_module('cnncost', run_name='__main__')\n"
            "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
            f"print({module!r} in sys.modules, code, file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
           "XDG_CACHE_HOME": str(tmp)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp)
    *err, last = done.stderr.strip().splitlines()
    imported, rc = last.split()
    return int(rc or 0), "\n".join(err), imported == "True"

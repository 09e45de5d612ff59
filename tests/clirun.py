"""The command line in-process, as the tests run it: ``run`` and the one-line error rule.

``run(*args)`` invokes the app (each argument as text) and gives (exit code, stdout, stderr);
an exception the command did not turn into an exit (a traceback a user would see) is raised,
so the test fails showing it. ``one_line_error`` holds the project's rule for bad input:
exit 2, one ``error:`` line on stderr, no traceback, naming each of ``parts``.
"""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from cnncost.cli import app


def run(*args: Any) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the test fails showing it
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, out: str, err: str, *parts: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    for part in parts:
        assert part in err, err

"""Typer's coercion made lazy (cnncost/cli_coerce.py): pydantic is imported only when an
option's text needs converting, and every value comes out as typer's own coercion gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.cli_coerce import _unchanged

runner = CliRunner()


def _pydantic_imported(args: list[str], tmp: Path) -> tuple[int, bool]:
    code = ("import runpy, sys\n"
            f"sys.argv = ['cnncost', *{args!r}]\n"
            "try:\n    runpy.run_module('cnncost', run_name='__main__')\n"
            "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
            "print('pydantic' in sys.modules, code, file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
           "XDG_CACHE_HOME": str(tmp)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp)
    imported, rc = done.stderr.strip().splitlines()[-1].split()
    return int(rc or 0), imported == "True"


def test_analyze_with_defaults_imports_no_pydantic(tmp_path: Path) -> None:
    assert _pydantic_imported(["analyze", "lenet5"], tmp_path) == (0, False)


def test_option_text_is_still_converted_by_typer(tmp_path: Path) -> None:
    assert _pydantic_imported(["analyze", "lenet5", "--batch", "2", "-f", "json"],
                              tmp_path) == (0, True)
    ok = runner.invoke(app, ["analyze", "lenet5", "--batch", "2", "-f", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["input"][0] == 2  # the batch, converted from "2"


@pytest.mark.parametrize("args,message", [
    (["--batch", "x"], "valid integer"),
    (["--batch", "0"], "greater than or equal to 1"),
    (["-f", "nope"], "nope"),
])
def test_bad_option_text_gets_typers_own_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", "lenet5", *args])
    assert result.exit_code == 2
    assert message in result.output


class _Info:
    min, max = 1, 8


class _Descriptor:
    def __init__(self, annotation: object, info: object = None) -> None:
        self.annotation, self.parameter_info, self.file_annotation = annotation, info, None


def test_only_values_the_adapter_keeps_pass_unchanged() -> None:
    from cnncost.render.formats import Format

    assert _unchanged(_Descriptor(str), "x")
    assert not _unchanged(_Descriptor(int), "3")  # text: typer converts it
    assert _unchanged(_Descriptor(int, _Info()), 8)
    assert not _unchanged(_Descriptor(int, _Info()), 9)  # out of range: typer's message
    assert not _unchanged(_Descriptor(int), True)  # a bool is not an int here
    assert _unchanged(_Descriptor(Format), next(iter(Format)))
    assert not _unchanged(_Descriptor(Format), "json")
    assert not _unchanged(_Descriptor(Path), Path("x"))  # paths: always typer's

"""Typer's coercion made lazy (cnncost/cli_coerce.py): pydantic is imported only when an
option's text needs converting, and every value comes out as typer's own coercion gives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fresh
import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.cli_coerce import converted

runner = CliRunner()


def _pydantic_imported(args: list[str], tmp: Path) -> tuple[int, bool]:
    rc, _, imported = fresh.run_cli(args, tmp, "pydantic")
    return rc, imported


def test_analyze_with_defaults_imports_no_pydantic(tmp_path: Path) -> None:
    assert _pydantic_imported(["analyze", "lenet5"], tmp_path) == (0, False)


def test_common_option_text_is_converted_without_pydantic(tmp_path: Path) -> None:
    args = ["analyze", "lenet5", "--batch", "2", "-f", "json", "--top", "3",
            "--set", "classes=7", "-o", "out.json"]
    assert _pydantic_imported(args, tmp_path) == (0, False)
    assert json.loads((tmp_path / "out.json").read_text())["input"][0] == 2  # from "2"
    assert _pydantic_imported(["check", str(Path(__file__).parents[1] / "reports"),
                               "--tolerance", "0.5"], tmp_path) == (0, False)


def test_other_option_text_still_goes_to_typer(tmp_path: Path) -> None:
    assert _pydantic_imported(["analyze", "lenet5", "--batch", " 2"], tmp_path) == (0, True)
    ok = runner.invoke(app, ["analyze", "lenet5", "--batch", " 2", "-f", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["input"][0] == 2  # typer's own conversion of " 2"


@pytest.mark.parametrize("args,message", [
    (["--batch", "x"], "valid integer"),
    (["--batch", "0"], "greater than or equal to 1"),
    (["-f", "nope"], "nope"),
])
def test_bad_option_text_gets_typers_own_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["analyze", "lenet5", *args])
    assert result.exit_code == 2
    assert message in result.output


def _parameters() -> list[tuple[str, Any]]:
    import typer.main

    group: Any = typer.main.get_command(app)
    return [(f"{name} --{param.name}", (command, param)) for name, command in
            sorted(group.commands.items()) for param in command.params
            if hasattr(param, "type_descriptor")]


_TEXTS = ["0", "1", "5", "8", "9", "-3", "007", "1_000", " 5", "5.0", "2.5", "-0.5", "1e3",
          "nan", "inf", "abc", "", "99999999999999999999", "json", "JSON", "md", "train",
          "macs", "flops", "reports", "x.json", "/no/such/dir/y", ".", "\u00e9t\u00e9"]


def _outcome(coerce: Any) -> tuple[str, Any]:
    try:
        value = coerce()
    except Exception as exc:
        return "error", (type(exc).__name__, str(exc))
    return type(value).__name__, value


@pytest.mark.parametrize("where,parameter", _parameters(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_every_conversion_here_is_typers_own(where: str, parameter: Any) -> None:
    """Every text (and list of texts) this module converts comes out exactly as typer's own
    coercion gives it, for every parameter of every command; the rest is left to typer."""
    from typer._click import Context
    from typer._coercion import build_runtime_param

    command, param = parameter
    descriptor, ctx = param.type_descriptor, Context(command)
    real = build_runtime_param(descriptor)
    several = param.multiple or param.nargs == -1
    for value in ([("a", "b=2"), ()] if several else _TEXTS):
        ours = _outcome(lambda v=value: _ours(descriptor, param, ctx, v, several))
        if ours != ("tuple", (False, None)):  # converted here (or refused by typer's checks)
            if ours[0] == "tuple":
                ours = type(ours[1][1]).__name__, ours[1][1]
            theirs = _outcome(lambda v=value: real.coerce(v, param=param, ctx=ctx))
            assert ours == theirs, (where, value)


def _ours(descriptor: Any, param: Any, ctx: Any, value: Any, several: bool) -> Any:
    from cnncost.cli_coerce import _Lazy

    if not several:
        return converted(descriptor, value, param, ctx)
    lazy = _Lazy(descriptor, build=None)  # build is never called when the value is ours
    return True, lazy.coerce(value, param, ctx)


class _Info:
    min, max = 1, 8
    parser = None
    clamp = False


class _Descriptor:
    def __init__(self, annotation: object, info: object = None) -> None:
        self.annotation, self.parameter_info, self.file_annotation = annotation, info, None


def test_the_common_texts_are_converted_here() -> None:
    from cnncost.render.formats import Format

    assert converted(_Descriptor(str), "x") == (True, "x")
    assert converted(_Descriptor(int), "3") == (True, 3)
    assert converted(_Descriptor(int, _Info()), 8) == (True, 8)
    assert converted(_Descriptor(int, _Info()), "9") == (False, None)  # typer's message
    assert converted(_Descriptor(int), " 3") == (False, None)  # typer's own conversion
    assert converted(_Descriptor(int), True) == (False, None)  # a bool is not an int here
    assert converted(_Descriptor(float), "0.5") == (True, 0.5)
    member = next(iter(Format))
    assert converted(_Descriptor(Format), member) == (True, member)

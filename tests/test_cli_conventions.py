"""What every command line shares (cnncost/cli/conventions.py): --version, -h, global options
where users type them, every usage error in one `error:` line with exit 2, and output that
cannot be written or encoded answered in one line (exit 2), never a traceback."""

from __future__ import annotations

import enum
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.errors import CnnCostError

ROOT = Path(__file__).resolve().parent.parent
GROUP: Any = typer.main.get_command(app)
COMMANDS = sorted(GROUP.commands)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def one_error_line(result: Any, *words: str) -> str:
    """The result is exit 2 with one `error:` line on stderr (holding ``words``), no stdout."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    for word in words:
        assert word in lines[0], (word, lines[0])
    return str(lines[0])


# --------------------------------------------------------------------------- --version, -h


def test_version_is_the_installed_distributions() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"cnncost {importlib.metadata.version('cnncost')}\n"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert result.stdout == f"cnncost {pyproject['project']['version']}\n"


@pytest.mark.parametrize("args", [["--version", "analyze"], ["analyze", "resnet50", "--version"],
                                  ["--debug", "--version"], ["--version", "--version"]])
def test_version_with_anything_else_is_one_line(args: list[str]) -> None:
    one_error_line(invoke(*args), "--version takes no other arguments")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_h_is_help_everywhere(command: str | None) -> None:
    words = [command] if command else []
    short, long = invoke(*words, "-h"), invoke(*words, "--help")
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout and "-h, --help" in short.stdout


@pytest.mark.parametrize("args", [["--debug", "analyze", "no_such_model_xyz"],
                                  ["analyze", "no_such_model_xyz", "--debug"],
                                  ["analyze", "--debug", "no_such_model_xyz"]])
def test_debug_is_taken_before_or_after_the_command(args: list[str]) -> None:
    result = invoke(*args)  # --debug: the error is raised (a traceback), not one line
    assert isinstance(result.exception, CnnCostError), result.output
    one_error_line(invoke(*[a for a in args if a != "--debug"]), "no_such_model_xyz")


def test_words_after_a_double_dash_are_not_options() -> None:
    # `--` ends the options: a --debug after it is an argument (here: a model's name)
    one_error_line(invoke("analyze", "--", "--debug"), "--debug")


# --------------------------------------------------------------------------- usage errors


def _is_path(param: Any) -> bool:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return annotation is Path or type(getattr(param, "type", None)).__name__ == "Path"


def _arguments(command: Any, tmp: Path) -> list[str]:
    """A plausible value for each of a command's arguments and required options (so that
    only the option under test is wrong)."""
    words = []
    for param in command.params:
        if param.param_type_name == "argument":
            words.append(str(tmp) if _is_path(param) else "resnet50")
        elif param.required:
            words += [param.opts[0], str(tmp / "out.png") if _is_path(param) else "resnet50"]
    return words


def _bad_values(param: Any) -> list[tuple[str, str]]:
    """(value, why) pairs an option must refuse, read from its declaration: below its
    minimum, above its maximum, not a number (a float), not one of its choices. (click's
    types: IntRange, FloatRange, Choice; typer 0.29's own: min, max and the annotation.)"""
    kind = getattr(param, "type", None)
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    low = getattr(kind, "min", getattr(param, "min", None))
    high = getattr(kind, "max", getattr(param, "max", None))
    floating = annotation is float or type(kind).__name__ in ("FloatRange", "FloatParamType")
    bad = []
    if low is not None:
        bad.append((str(low - 1), "below-min"))
    if high is not None:
        bad.append((str(high + 1), "above-max"))
    if floating:
        bad.append(("nan", "nan"))
    choices = getattr(kind, "choices", None)
    if choices or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        bad.append(("xml", "not-a-choice"))
    return bad


def _option_cases() -> list[Any]:
    cases = []
    for name in COMMANDS:
        command = GROUP.commands[name]
        for param in command.params:
            if param.param_type_name != "option" or param.is_flag:
                continue
            for value, why in _bad_values(param):
                cases.append(pytest.param(name, param.opts[0], value,
                                          id=f"{name}-{param.opts[0]}-{why}"))
    return cases


CASES = _option_cases()


def test_the_option_cases_cover_the_ones_users_met() -> None:
    # the classes issue 26 names, found by reading the commands' declarations
    ids = {c.id for c in CASES}
    for case in ["analyze---batch-below-min", "analyze---top-below-min",
                 "analyze---depth-below-min", "sweep---jobs-below-min",
                 "analyze---format-not-a-choice", "analyze---units-not-a-choice",
                 "analyze---mode-not-a-choice", "bench---max-time-nan"]:
        assert case in ids, case


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_a_bad_option_value_is_one_error_line(command: str, option: str, value: str,
                                              tmp_path: Path) -> None:
    args = [command, *_arguments(GROUP.commands[command], tmp_path), option, value]
    one_error_line(invoke(*args), option)


@pytest.mark.parametrize("args", [
    ["check", "reports", "--tolerance", "nan"], ["check", "reports", "--tolerance", "-1"],
    ["check", "reports", "--limit", "0"], ["bench", "lenet5", "--max-time", "nan"],
    pytest.param(["bench", "lenet5", "--threads", "65536"], marks=pytest.mark.slow),
    pytest.param(["bench", "lenet5", "--threads", "2147483648"], marks=pytest.mark.slow),
    ["bench", "lenet5", "--threads", "0"], ["analyze", "resnet50", "--nosuch"],
    ["analyze"], ["nosuch"], ["compare", "resnet50", "--batch", "x"],
], ids=lambda a: " ".join(a))
def test_usage_errors_users_met_are_one_line(args: list[str]) -> None:
    one_error_line(invoke(*args))


@pytest.mark.slow  # (bench imports torch before it asks for threads)
def test_threads_beyond_the_cpus_are_refused_before_torch_is_asked() -> None:
    # `bench --threads 65536` ended in a segfault (OpenMP could not make the threads)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = one_error_line(invoke("bench", "lenet5", "--threads", str((cpus or 1) + 1)))
    assert f"expected 1 to {cpus}" in line


# --------------------------------------------------------------------------- the output


def script(args: list[str], stdout: Any = subprocess.PIPE, shell_tail: str = "",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m cnncost ARGS` as the console script runs (cnncost.cli.main)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if shell_tail:  # a redirection the shell makes: `... >&-`
        command = " ".join(["exec", sys.executable, "-m", "cnncost", *args, shell_tail])
        return subprocess.run(["sh", "-c", command], stdout=stdout, stderr=subprocess.PIPE,
                              text=True, env=full_env, timeout=300, check=False)
    return subprocess.run([sys.executable, "-m", "cnncost", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=full_env, timeout=300,
                          check=False)


def assert_output_error(done: subprocess.CompletedProcess[str], why: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: cannot write the output to stdout: {why}"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
@pytest.mark.parametrize("args", [
    ["analyze", "resnet50"],
    *(pytest.param(a, marks=pytest.mark.slow) for a in (
        ["explain", "textbook/conv5x5"], ["analyze", "resnet50", "-f", "json"], ["--version"],
        ["--help"], ["list", "--no-totals"]))], ids=lambda a: " ".join(a))
def test_stdout_on_a_full_device_is_one_line_exit_2(args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        assert_output_error(script(args, stdout=full), "No space left on device")


def test_a_closed_stdout_is_one_line_exit_2(tmp_path: Path) -> None:
    assert_output_error(script(["analyze", "resnet50"], stdout=None, shell_tail=">&-"),
                        "it is closed")
    # a command that prints nothing on stdout needs none
    done = script(["report", "lenet5", "--out", str(tmp_path)], stdout=None, shell_tail=">&-")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lenet5.json").exists()


def test_a_reader_gone_is_one_line_exit_2() -> None:
    # `cnncost analyze resnet50 | true`: the reader exits before anything is written
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "cnncost", "analyze", "resnet50"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=300) == 2, err
    assert err.splitlines() == ["error: cannot write the output to stdout: Broken pipe"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_check_with_drift_and_a_full_stdout_is_2_not_1(tmp_path: Path) -> None:
    # exit 1 means drift; a check that could not say what drifted is exit 2
    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninput: [3, 8, 8]\nvars: {c: 4}\n"
                    "layers:\n  - conv: {out: c, kernel: 3}\n")
    assert invoke("report", str(spec), "--out", str(tmp_path / "reports")).exit_code == 0
    spec.write_text(spec.read_text().replace("c: 4", "c: 8"))
    assert invoke("check", str(tmp_path / "reports")).exit_code == 1  # it drifted
    with open("/dev/full", "w") as full:
        assert_output_error(script(["check", str(tmp_path / "reports")], stdout=full),
                            "No space left on device")


def test_an_ascii_terminal_gets_escapes_not_a_traceback(tmp_path: Path) -> None:
    # The escapes are JSON's own (\u00e9, a surrogate pair above U+FFFF; a C1 control and
    # DEL alike), so that JSON printed there is still JSON: Python's \xe9 and \U0001f600
    # are escapes no JSON parser reads
    spec = tmp_path / "cafe.yaml"
    spec.write_text('name: "caf\\u00e9 \\U0001f600 \\x9b\\x7f"\ninput: [3, 8, 8]\nlayers:\n'
                    '  - conv: {out: 4, kernel: 3}\n', encoding="utf-8")
    for fmt in ("table", "md", "json"):
        done = script(["analyze", str(spec), "-f", fmt], env={"PYTHONIOENCODING": "ascii"})
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        # (Markdown escapes a control's escape once more, so that its backslash shows)
        controls = "\\\\u009b\\\\u007f" if fmt == "md" else "\\u009b\\u007f"
        assert "caf\\u00e9 \\ud83d\\ude00 " + controls in done.stdout, fmt
    assert json.loads(done.stdout)["model"] == "caf\u00e9 \U0001f600 \x9b\x7f"
    assert "Ko\\u00e7 University" in script(["list", "--no-totals"],
                                             env={"PYTHONIOENCODING": "ascii"}).stdout


SURROGATE_SPEC = ('name: "net\\ud800"\ndescription: "a lone \\udc00 surrogate"\n'
                  "input: [3, 8, 8]\nlayers:\n  - conv: {out: 4, kernel: 3}\n")


@pytest.mark.parametrize("args", [["analyze", "{spec}"], ["analyze", "{spec}", "-f", "json"],
                                  ["analyze", "{spec}", "-f", "md"],
                                  ["analyze", "{spec}", "-f", "html"], ["validate", "{spec}"],
                                  ["explain", "{spec}"], ["compare", "{spec}", "{spec}"]],
                         ids=lambda a: " ".join(a))
def test_a_lone_surrogate_prints_escaped(args: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SURROGATE_SPEC, encoding="utf-8")
    words = [a.format(spec=spec) for a in args]
    result = invoke(*words)  # in-process: the printing layer itself
    assert result.exit_code == 0, result.output
    # (Markdown writes the escape's backslash as "\\\\", so that it shows: render.formats)
    shown = "net\\\\ud800" if "md" in args else "net\\ud800"
    assert shown in result.stdout
    if args == ["analyze", "{spec}"]:  # and as the script prints to a pipe
        done = script(words)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert shown in done.stdout
    if args[0] in ("analyze", "compare"):  # and to a file (--output)
        out = tmp_path / "out.txt"
        assert invoke(*words, "--output", str(out)).exit_code == 0
        assert shown in out.read_text(encoding="utf-8")

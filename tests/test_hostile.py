"""Hostile and broken input: every class of attack is a one-line error with exit 2 (or is
ignored, for caches), never a traceback, a hang, or code run on a report's say-so.

The classes: files that are not regular files or are too large (read before their size was
known), reports with fields of the wrong type or numbers beyond Python's limits, factories
named by reports, markup and control characters in user text, odd output paths, corrupt
caches, and the memory guard's limits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.errors import SpecError, UsageError
from cnncost.io import ReadError, read_bytes, read_text

ROOT = Path(__file__).resolve().parent.parent
TINY = "name: tiny\ninput: [1, 4, 4]\nlayers:\n  - conv: {out: 2, kernel: 3}\n  - relu\n"


def run(*args: Any) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the test fails showing it
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, out: str, err: str, *parts: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


# --------------------------------------------------------------------------- files


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(ReadError, match=r"pipe\.yaml: is a FIFO \(named pipe\), not a regular"):
        read_bytes(fifo, 1024)


def test_a_device_behind_a_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(ReadError, match="is a character device, not a regular file"):
        read_bytes(link, 1 << 20)


def test_a_sparse_giant_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.truncate(12 << 30)  # 12 GiB that take no disk: reading them would take minutes
    with pytest.raises(ReadError, match=r"spec is larger than 1024 KiB \(12 GiB\)"):
        read_bytes(path, 1 << 20, "spec")


def test_the_limit_is_inclusive_and_a_folder_is_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"a" * 100)
    assert read_bytes(path, 100) == b"a" * 100
    with pytest.raises(ReadError, match="larger than"):
        read_bytes(path, 99)
    with pytest.raises(ReadError, match="is a folder"):
        read_bytes(tmp_path, 100)
    with pytest.raises(ReadError, match="no such file"):
        read_bytes(tmp_path / "nope", 100)


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(ReadError, match=r"line 2 is not UTF-8 text \(byte 0xff\)"):
        read_text(path, 100)


def test_a_fifo_spec_is_a_spec_error(fifo: Path) -> None:
    from cnncost.spec import load_spec

    with pytest.raises(SpecError, match=r"pipe\.yaml: is a FIFO"):
        load_spec(fifo)


@pytest.mark.parametrize("command", [["validate"], ["analyze"], ["sweep", "--set", "a=1,2"],
                                     ["advise"]], ids=lambda c: c[0])
def test_every_command_refuses_a_fifo_spec(fifo: Path, command: list[str]) -> None:
    assert_one_line_error(*run(command[0], fifo, *command[1:]), "is a FIFO")


def test_check_refuses_a_fifo_report(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "r.json")
    assert_one_line_error(*run("check", tmp_path), "r.json: is a FIFO")


def test_explain_refuses_a_fifo_it_refers_to(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "other.yaml")
    spec = tmp_path / "s.yaml"
    spec.write_text(TINY + "explain:\n  compare:\n    - what: macs\n      num: {}\n"
                    "      den: {spec: other.yaml}\n")
    assert_one_line_error(*run("explain", spec), "other.yaml: is a FIFO")


# --------------------------------------------------------------------------- reports


def _report() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "reports" / "lenet5.json").read_text())
    return doc


def _set(path: str, value: Any) -> Any:
    """A mutation of the lenet5 report: the field at dotted ``path`` set to ``value``."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


BAD_FIELDS = {
    "input-string": ("input", "1x1x32x32"),
    "input-empty": ("input", []),
    "policy-number": ("policy", 3),
    "policy-unknown": ("policy", "most"),
    "dtype-list": ("dtype", ["float32"]),
    "source-number": ("source", 5),
    "source-empty": ("source", ""),
    "vars-list": ("vars", [1, 2]),
    "vars-nested": ("vars", {"w": {"x": 1}}),
    "layer-name-number": ("layers.0.name", 5),
    "layer-shape-strings": ("layers.0.output_shape", ["1", "6"]),
    "layer-macs-float": ("layers.0.macs", 1.5),
    "layer-macs-negative": ("layers.0.macs", -1),
    "layer-macs-bool": ("layers.0.macs", True),
    "layers-mapping": ("layers", {"conv1": {}}),
    "training-memory-number": ("totals.training_memory_bytes", 5),
    "totals-string": ("totals.macs", "many"),
    "document-list": (None, [1, 2, 3]),
}


@pytest.mark.parametrize("field,value", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_a_report_field_of_the_wrong_type_is_named(tmp_path: Path, field: str | None,
                                                   value: Any) -> None:
    doc: Any = value if field is None else _report()
    if field is not None:
        _set(field, value)(doc)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    code, out, err = run("check", tmp_path)
    assert_one_line_error(code, out, err, "r.json: not a cnncost report")
    if field is not None:
        assert field.replace(".0.", "[0].") in err


@pytest.mark.parametrize("text,why", [
    ("[" * 100_000 + "]" * 100_000, "nested 100000 deep"),
    ('{"schema": "cnncost.report/1", "x": ' + "9" * 4000 + "}", "a 4000-digit number"),
    ('{"schema": "cnncost.report/1", "x": 1e999}', "out of range"),
    ('{"schema": "cnncost.report/1", "x": NaN}', "NaN is not a number JSON allows"),
    ('{"schema": "cnncost.report/1", "x": -Infinity}', "-Infinity is not a number"),
    ("{\n  \"schema\": ", "r.json:2: not valid JSON"),
], ids=["deep", "digits", "overflow", "nan", "infinity", "truncated"])
def test_numbers_and_nesting_beyond_pythons_limits(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "r.json").write_text(text)
    assert_one_line_error(*run("check", tmp_path), why)


def test_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    from cnncost.check import parse_json

    assert parse_json(json.dumps({"d": "[" * 100}), "x") == {"d": "[" * 100}
    with pytest.raises(UsageError, match="nested 17 deep"):
        parse_json("[" * 17 + "]" * 17, "x")


def test_the_bundled_reports_pass_the_schema() -> None:
    from cnncost.check import load_report, report_files

    assert len([load_report(f) for f in report_files(ROOT / "reports")]) >= 20

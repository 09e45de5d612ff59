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
from collections.abc import Callable
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


# --------------------------------------------------------------------------- check runs no code


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """reports/a.json of a spec that then drifts (its conv widened 2 -> 3 channels)."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "reports"
    assert run("report", spec, "--out", out)[0] == 0
    (out / "tiny.json").rename(out / "a.json")
    spec.write_text(TINY.replace("out: 2", "out: 3"))
    return out


def _factory_report(reports: Path, source: str, name: str = "b.json") -> None:
    doc = json.loads((reports / "a.json").read_text())
    doc["source"] = source
    doc["input_given"] = True  # a module has no input of its own: the report's 1x4x4
    (reports / name).write_text(json.dumps(doc))


def _factory_file(tmp_path: Path, body: str) -> str:
    (tmp_path / "model.py").write_text(
        "import pathlib, sys\nfrom torch import nn\n\ndef build():\n"
        f"    pathlib.Path({str(tmp_path / 'ran')!r}).write_text('ran')\n    {body}\n")
    return f"{tmp_path / 'model.py'}:build"


@pytest.mark.parametrize("source", ["sys:exit", "builtins:exit", "os:getcwd",
                                    "model.py:build"])
def test_check_refuses_a_factory_before_any_work(reports: Path, source: str) -> None:
    _factory_report(reports, source)
    code, out, err = run("check", reports)
    assert_one_line_error(code, out, err, f"b.json: source {source!r} is Python code",
                          f"--allow-factory {source!r}", "check-factories")
    assert out == ""  # refused before a.json's drift was even computed


def test_an_allowed_factorys_sys_exit_does_not_decide_the_exit_code(reports: Path) -> None:
    _factory_report(reports, "sys:exit")
    code, out, err = run("check", reports, "--allow-factory", "sys:*")
    assert code == 1, (out, err)  # a.json drifted: exit 1, whatever b.json's factory did
    assert "a.json: tiny" in out and "drift in 1 of 2 report(s); 1 could not be" in out
    assert "b.json: cannot recompute sys:exit" in err and "SystemExit" in err


def test_a_factory_raising_keyboardinterrupt_after_drift_is_still_exit_1(
        reports: Path, tmp_path: Path) -> None:
    _factory_report(reports, _factory_file(tmp_path, "raise KeyboardInterrupt"))
    code, out, err = run("check", reports, "--allow-factory", "*model.py:build")
    assert code == 1 and "a.json: tiny" in out, (out, err)


@pytest.mark.parametrize("where", ["tmp", "reports", "reports/.."])
def test_a_pyproject_beside_the_reports_allows_no_factory(reports: Path, tmp_path: Path,
                                                          where: str) -> None:
    # A pull request that adds a report naming code could add the pyproject.toml allowing it:
    # only the command line and the user's own configuration may allow a factory.
    source = _factory_file(tmp_path, "return nn.Conv2d(1, 2, 3)")
    _factory_report(reports, source)
    folder = tmp_path if where == "tmp" else tmp_path / where
    (folder / "pyproject.toml").write_text('[tool.cnncost]\ncheck-factories = ["*"]\n'
                                           'allow-factories = ["*"]\n')
    assert_one_line_error(*run("check", reports), "b.json: source", "is Python code",
                          "config.toml")
    assert not (tmp_path / "ran").exists()


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's own configuration file ($XDG_CONFIG_HOME/cnncost/config.toml)."""
    home = tmp_path / "config-home"
    (home / "cnncost").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home / "cnncost" / "config.toml"


def test_the_users_own_config_allows_a_factory(reports: Path, tmp_path: Path,
                                               user_config: Path) -> None:
    source = _factory_file(tmp_path, "return nn.Conv2d(1, 2, 3)")
    _factory_report(reports, source)
    user_config.write_text(f"check-factories = [{json.dumps(source)}]\n")
    code, out, err = run("check", reports)
    assert code == 1, (out, err)  # both ran and both differ from what a.json recorded
    assert (tmp_path / "ran").read_text() == "ran"
    assert "b.json: " in out and "cannot recompute" not in err


@pytest.mark.parametrize("config,why", [
    ('check-factories = "sys:exit"\n', "expected a list of factory names"),
    ("[tool.cnncost\n", "not valid TOML"),
])
def test_a_bad_user_config_is_one_line(reports: Path, user_config: Path, config: str,
                                       why: str) -> None:
    _factory_report(reports, "sys:exit")
    user_config.write_text(config)
    assert_one_line_error(*run("check", reports), "config.toml", why)


def test_check_does_not_import_from_the_current_folder(
        reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(tmp_path / 'ran')!r}).write_text('ran')\n"
        "def build():\n    raise SystemExit(0)\n")
    _factory_report(reports, "evil:build")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m cnncost` puts it first
    monkeypatch.delenv("PYTHONPATH", raising=False)
    code, out, err = run("check", reports, "--allow-factory", "evil:build")
    assert code == 1 and "cannot import evil" in err, (out, err)
    assert not (tmp_path / "ran").exists()
    import sys

    assert str(tmp_path) in sys.path  # restored afterwards


def test_the_console_script_puts_the_folder_on_the_path_except_for_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import sys

    from cnncost import cli

    seen: list[bool] = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(os.getcwd() in sys.path))
    for argv, expected in ((["--debug", "check", "reports"], False),
                           (["analyze", "mod:build"], True)):
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
        monkeypatch.setattr(sys, "argv", ["cnncost", *argv])
        cli.main()
        assert seen[-1] is expected, argv


def test_a_factorys_sys_exit_is_a_one_line_error(tmp_path: Path) -> None:
    source = _factory_file(tmp_path, "sys.exit(0)")
    assert_one_line_error(*run("analyze", source), "calling build() failed: SystemExit")


@pytest.mark.parametrize("source,code", [
    ("pkg.mod:build", True), ("m.py:build", True), ("dir/m.py:build", True),
    ("torchvision:resnet18", False), ("specs/resnet50.yaml", False), ("resnet50", False),
    ("textbook/conv5x5", False), ("x.yaml", False),
])
def test_which_sources_are_code(source: str, code: bool) -> None:
    from cnncost.sources import is_factory_ref

    assert is_factory_ref(source) is code


# --------------------------------------------------------------------------- terminal injection

NASTY = "x[/foo]:thumbs_up:[link=https://e]L[/link]\x1b]0;pwned\x07\x1b[2J\u202e"


@pytest.mark.parametrize("text,shown", [
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
    ("over\rwrite", "over\\x0dwrite"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("c1\x9bcontrol", "c1\\x9bcontrol"),
    ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
    ("[red]markup[/red] :thumbs_up: é", "[red]markup[/red] :thumbs_up: é"),
], ids=["csi", "osc", "cr", "bidi", "c1", "newline-tab", "printable"])
def test_literal_escapes_control_characters_only(text: str, shown: str) -> None:
    from cnncost.render.console import literal

    assert literal(text) == shown
    assert literal(shown) == shown  # idempotent


def _printable(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or
                   0x202a <= ord(c) <= 0x202e for c in text)


@pytest.fixture
def nasty_spec(tmp_path: Path) -> Path:
    path = tmp_path / "nasty.yaml"
    name = json.dumps(NASTY)  # a JSON string is a YAML double-quoted string
    path.write_text(f"name: {name}\ndescription: {name}\n" + TINY.split("\n", 1)[1])
    return path


@pytest.mark.parametrize("args", [["validate"], ["analyze"], ["analyze", "-f", "md"],
                                  ["analyze", "-f", "csv"], ["explain"]],
                         ids=["validate", "table", "md", "csv", "explain"])
def test_user_text_prints_literally(nasty_spec: Path, args: list[str]) -> None:
    code, out, err = run(args[0], nasty_spec, *args[1:])
    assert code == 0, err
    assert _printable(out + err), out
    # markup and emoji codes are text: shown as written, escapes visible (csv has no name;
    # Markdown writes a backslash as "\\\\", so that it shows)
    shown = "x[/foo]:thumbs_up:[link=https://e]L[/link]\\x1b]0;pwned"
    assert "csv" in args or (shown.replace("\\", "\\\\") if "md" in args else shown) in out
    assert "👍" not in out


def test_an_error_quoting_user_text_prints_it_literally() -> None:
    code, out, err = run("analyze", "a:thumbs_up:b\x1b[2J[/foo]")
    assert_one_line_error(code, out, err, "a:thumbs_up:b\\x1b[2J[/foo]: not a spec file")
    code, out, err = run("analyze", "nosuchmod:factory")
    assert_one_line_error(code, out, err, "nosuchmod:factory: cannot import nosuchmod")
    assert "🏭" not in err


def test_a_report_with_a_nasty_layer_name_diffs_literally(reports: Path) -> None:
    doc = json.loads((reports / "a.json").read_text())
    doc["layers"][0]["name"] = "conv\x1b]0;pwned\x07[/x]"
    (reports / "a.json").write_text(json.dumps(doc))
    code, out, err = run("check", reports)
    assert code == 1 and _printable(out + err), out
    assert "conv\\x1b]0;pwned\\x07[/x]" in out


def test_module_names_print_literally(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from torch import nn\n\ndef build():\n    m = nn.Sequential()\n"
        "    m.add_module('[b]\\x1b[2J', nn.Conv2d(1, 2, 3))\n    return m\n")
    code, out, err = run("analyze", f"{tmp_path / 'm.py'}:build", "--input", "1x4x4")
    assert code == 0, err
    assert _printable(out) and " [b]\\x1b[2J " in out  # the column is as wide as that


# --------------------------------------------------------------------------- torch's own limits


def test_a_kernel_beyond_torchs_storage_is_a_located_error(tmp_path: Path) -> None:
    # out 2^24 x in 1 x 2^24 x 2^24 weights = 2^72 elements: each size is within the spec's
    # limits (2^24), the product beyond what torch can hold (2^63 bytes of storage); every
    # command says so on one line, the spec's own check (validate) first
    spec = tmp_path / "big.yaml"
    spec.write_text("input: [1, 1, 1]\nlayers:\n"
                    "  - conv: {out: 16777216, kernel: 16777216, padding: 8388608}\n")
    for command in (("validate",), ("analyze",), ("analyze", "--engine", "torch"), ("bench",)):
        assert_one_line_error(*run(*command, spec), "big.yaml:3: layers[0].conv:",
                              f"weight tensor would hold {2**72:,} elements")
    import cnncost

    with pytest.raises(SpecError, match="weight tensor would hold"):
        cnncost.build(spec)


# --------------------------------------------------------------------------- caches


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    (home / "cnncost").mkdir(parents=True)
    return home / "cnncost"


def test_a_corrupt_list_cache_is_ignored_and_rebuilt(cache_home: Path) -> None:
    from cnncost.catalog import ListCache
    from cnncost.sources import bundled_specs

    path = bundled_specs()["textbook/conv5x5"]
    fresh = ListCache().get(path, True)  # counted: (description, params, macs)
    cache = ListCache()
    cache.get(path, True)
    cache.save()
    good = json.loads((cache_home / "list-totals.json").read_text())
    (key,) = good["specs"]
    for bad in ({"description": "[red]x", "params": "many", "macs": 1},
                {"description": 5, "params": 1, "macs": 1}, {"params": 1},
                {"description": "d", "params": -1, "macs": 10**40}, [1, 2], "x"):
        (cache_home / "list-totals.json").write_text(
            json.dumps({**good, "specs": {key: bad}}))
        assert ListCache().get(path, True) == fresh, bad
    for text in ("[1, 2]", '{"code": 5}', "{" * 100_000, "not json", '{"specs": []}'):
        (cache_home / "list-totals.json").write_text(text)
        assert ListCache().get(path, True) == fresh, text[:20]
    (cache_home / "list-totals.json").unlink()
    os.mkfifo(cache_home / "list-totals.json")
    assert ListCache().get(path, True) == fresh  # a FIFO is not waited on


ROOF_BAD = {
    "zero-peak": ("peak_flops", 0.0), "negative-bandwidth": ("bandwidth", -1e9),
    "string-peak": ("peak_flops", "fast"), "huge-peak": ("peak_flops", 1e300),
    "nan-peak": ("peak_flops", float("nan")), "bool-threads": ("threads", True),
    "number-name": ("device_name", 3), "negative-load": ("load_avg", -1.0),
}


@pytest.fixture(scope="module")
def quick_roof() -> Any:
    import torch

    from cnncost.measure.roofline import calibrate

    return calibrate(torch.device("cpu"), torch.float32, 1, quick=True)


@pytest.mark.parametrize("field,value", ROOF_BAD.values(), ids=ROOF_BAD.keys())
def test_an_impossible_cached_roofline_is_not_used(quick_roof: Any, field: str,
                                                   value: Any) -> None:
    from cnncost.measure.roofline import cached_roofline

    entry = quick_roof.to_dict()
    assert cached_roofline(entry, quick_roof.key) == quick_roof
    entry[field] = value
    assert cached_roofline(entry, quick_roof.key) is None


def test_a_roofline_entry_must_be_for_its_key(quick_roof: Any) -> None:
    from cnncost.measure.roofline import cached_roofline

    entry = quick_roof.to_dict()
    assert cached_roofline(entry, quick_roof.key + "x") is None
    del entry["bandwidth"]
    assert cached_roofline(entry, quick_roof.key) is None
    assert cached_roofline([entry], quick_roof.key) is None


def test_a_corrupt_roofline_cache_is_measured_again(cache_home: Path, quick_roof: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from cnncost.measure import roofline

    calls: list[int] = []

    def measure(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return quick_roof

    monkeypatch.setattr(roofline, "calibrate", measure)
    cpu = torch.device("cpu")
    for text in ("{" * 100_000, json.dumps({"schema": roofline.CACHE_SCHEMA, "entries": {
            quick_roof.key: {**quick_roof.to_dict(), "peak_flops": -5}}}),
            json.dumps({"schema": roofline.CACHE_SCHEMA, "entries": [1]})):
        (cache_home / "roofline.json").write_text(text)
        got = roofline.get_roofline(cpu, torch.float32, 1)
        assert got.valid and got.peak_flops == quick_roof.peak_flops
    assert len(calls) == 3
    assert roofline.get_roofline(cpu, torch.float32, 1).from_cache  # rewritten: now it reads
    assert len(calls) == 3


def test_an_impossible_measurement_is_an_error(cache_home: Path, quick_roof: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import torch

    from cnncost.measure import roofline

    broken = dataclasses.replace(quick_roof, peak_flops=float("inf"))
    monkeypatch.setattr(roofline, "calibrate", lambda *a, **k: broken)
    with pytest.raises(roofline.MeasurementError, match="is not usable"):
        roofline.get_roofline(torch.device("cpu"), torch.float32, 1)


def test_bench_json_has_no_nan() -> None:
    from cnncost.measure.bench import _finite

    doc = _finite({"a": [1.0, float("nan")], "b": {"c": float("-inf")}, "d": "x"})
    assert doc == {"a": [1.0, None], "b": {"c": None}, "d": "x"}
    json.dumps(doc, allow_nan=False)


# --------------------------------------------------------------------------- outputs


@pytest.fixture
def tiny(write_spec: Callable[..., Path]) -> Path:
    return write_spec(TINY, "tiny.yaml")


def test_output_onto_the_spec_is_refused(tiny: Path) -> None:
    assert_one_line_error(*run("analyze", tiny, "-o", tiny), "tiny.yaml: is the spec",
                          "refusing to overwrite an input")
    assert tiny.read_text() == TINY
    link = tiny.with_name("alias.yaml")
    link.symlink_to(tiny.name)
    assert_one_line_error(*run("analyze", tiny, "-o", link), "alias.yaml: is the spec")
    assert tiny.read_text() == TINY and link.is_symlink()


def test_output_onto_a_spec_it_extends_or_a_module_is_refused(tiny: Path) -> None:
    variant = tiny.with_name("variant.yaml")
    variant.write_text("extends: tiny.yaml\nname: variant\n")
    assert_one_line_error(*run("analyze", variant, "-o", tiny), "is the spec")
    module = tiny.with_name("m.py")
    module.write_text("from torch import nn\n\ndef build():\n    return nn.Conv2d(1, 2, 3)\n")
    before = module.read_text()
    assert_one_line_error(*run("analyze", f"{module}:build", "-i", "1x4x4", "-o", module),
                          "is the module")
    assert module.read_text() == before


def test_check_update_still_rewrites_its_reports(reports: Path) -> None:
    code, out, err = run("check", reports, "--update")
    assert code == 0 and "updated" in out, (out, err)
    assert run("check", reports)[0] == 0


def test_output_through_a_symlink_replaces_its_target(tiny: Path) -> None:
    target = tiny.with_name("target.txt")
    link = tiny.with_name("link.txt")
    link.symlink_to(target.name)  # dangling: written through, as `>` would
    assert run("analyze", tiny, "-f", "csv", "-o", link)[0] == 0
    assert link.is_symlink() and target.read_text().startswith("name,kind")


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_unwritable_output_paths_are_one_line(tiny: Path, where: str) -> None:
    output = tiny.parent if where == "folder" else tiny / "x.txt"
    why = "is a folder" if where == "folder" else "tiny.yaml is a file, not a folder"
    assert_one_line_error(*run("analyze", tiny, "-o", output), "cannot write", why)


def test_a_read_only_folder_and_a_full_disk_are_one_line(
        tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    folder = tiny.parent / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # root writes anywhere: there, the refusal is simulated
        folder.chmod(0o500)
        assert_one_line_error(*run("analyze", tiny, "-o", folder / "t.txt"),
                              "cannot write: Permission denied")
        folder.chmod(0o700)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", refuse)
        assert_one_line_error(*run("analyze", tiny, "-o", folder / "t.txt"),
                              "cannot write: Permission denied")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd: int, *args: Any, **kwargs: Any) -> None:
            self.fh = real_fdopen(fd, *args, **kwargs)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.fh.close()

        def write(self, data: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    (folder / "t.txt").write_text("old")
    with monkeypatch.context() as m:
        m.setattr(os, "fdopen", Full)
        assert_one_line_error(*run("analyze", tiny, "-o", folder / "t.txt"),
                              "cannot write: No space left on device")
    assert sorted(p.name for p in folder.iterdir()) == ["t.txt"]  # no temp file left
    assert (folder / "t.txt").read_text() == "old"  # the old file as it was


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tiny: Path, umask: int, mode: int) -> None:
    out = tiny.with_name(f"out{umask:o}.txt")
    old = os.umask(umask)
    try:
        assert run("analyze", tiny, "-o", out)[0] == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode  # 0666 minus the umask, as `>` would make it


DEEP_STEP = """
import resource, sys
import torch
from torch import nn
import cnncost

class Deep(nn.Module):
    # {n} multiplications in a chain: a training step's graph {n} nodes deep
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.n = n

    def forward(self, x):
        for _ in range(self.n):
            x = x * self.w
        return x

report = cnncost.analyze(Deep({n}), input=(2,), mode="train")
print(report.totals.flops, report.totals.train.backward_flops)
"""


@pytest.mark.slow
def test_a_training_step_through_a_very_deep_graph_ends_cleanly() -> None:
    """Freeing the autograd graph of a 50,000-layer spec's training step overflowed the C
    stack (a segfault). The same depth in a fresh interpreter with a 1 MiB stack (8 times
    less than Linux's default) takes 8,000 nodes: it ends with the count."""
    import resource
    import subprocess
    import sys

    def small_stack() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.RLIM_INFINITY))

    n = 8000
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", DEEP_STEP.format(n=n)], capture_output=True,
                          text=True, env=env, preexec_fn=small_stack, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    forward, backward = map(int, done.stdout.split())
    # forward: one multiply per element, 2 elements, n times. Backward, per multiply: the
    # gradient of its input, 2 multiplies (not for the first: the input needs none), and of
    # the shared weight, 2 multiplies and their sum over the batch (2); the n gradients of
    # the weight are then added up (n - 1 adds of 2): 2(n - 1) + 4n + 2(n - 1) = 8n - 4
    assert (forward, backward) == (2 * n, 8 * n - 4)

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
from clirun import one_line_error as assert_one_line_error
from clirun import run

from cnncost import io
from cnncost.errors import SpecError, UsageError
from cnncost.io import ReadError, read_bytes, read_text

ROOT = Path(__file__).resolve().parent.parent
TINY = "name: tiny\ninput: [1, 4, 4]\nlayers:\n  - conv: {out: 2, kernel: 3}\n  - relu\n"


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


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_extends_onto_what_is_no_file_says_what_it_is(tmp_path: Path, kind: str) -> None:
    # `extends:` onto a FIFO said "no such file"; it names what is there, at the extends
    # line, without opening it (a FIFO would wait for a writer)
    base = tmp_path / "base.yaml"
    if kind == "fifo":
        os.mkfifo(base)
    elif kind == "device":
        base.symlink_to("/dev/zero")
    else:
        base.mkdir()
    spec = tmp_path / "v.yaml"
    spec.write_text("name: v\nextends: base.yaml\n")
    shown = {"fifo": "a FIFO (named pipe)", "device": "a character device",
             "folder": "a folder"}[kind]
    assert_one_line_error(*run("validate", spec),
                          f"v.yaml:2: extends: '{base}' is {shown}, not a regular file")


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
    # (JSON of another kind in a folder is no report, cnncost.check.is_report: named alone)
    code, out, err = run("check", tmp_path if field is not None else tmp_path / "r.json")
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
    ("c1\x9bcontrol", "c1\\u009bcontrol"),
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
        m.setattr(io, "_open_unnamed", refuse)
        assert_one_line_error(*run("analyze", tiny, "-o", folder / "t.txt"),
                              "cannot write: Permission denied")

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    (folder / "t.txt").write_text("old")
    for unnamed in (True, False):  # O_TMPFILE's file, and a named temporary where none
        with monkeypatch.context() as m:
            m.setattr(io, "_write_all", full)
            if not unnamed:
                m.setattr(io, "_open_unnamed", lambda folder: None)
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


# --------------------------------------------------------------------------- misplaced writes


def test_output_onto_a_fifo_reaches_its_reader(tiny: Path) -> None:
    import stat
    import threading

    fifo = tiny.with_name("out.csv")
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = run("analyze", tiny, "-f", "csv", "-o", fifo)
    reader.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # a FIFO still, not replaced by a file
    # conv1: 2 channels x 2x2 positions x (1 channel x 3x3) = 72 MACs
    assert got and got[0].splitlines()[1].startswith("conv1,conv,1x1x4x4,1x2x2x2,20,0,72,")


def _report_folder(tmp_path: Path) -> Path:
    """reports/ holding, beside what report writes, JSON that is not cnncost's: a package
    file deep down and a check --json document."""
    out = tmp_path / "reports"
    (out / "web" / "assets" / "js").mkdir(parents=True)
    (out / "web" / "assets" / "js" / "package.json").write_text('{"name": "site"}')
    (out / "review.json").write_text('{"schema": "cnncost.check/1", "models": []}')
    (out / "list.json").write_text("[1, 2, 3]")
    return out


def test_report_leaves_other_json_alone(tiny: Path, tmp_path: Path) -> None:
    out = _report_folder(tmp_path)
    code, _, err = run("report", tiny, "--out", out)
    assert code == 0, err
    index = (out / "index.html").read_text()
    assert "tiny.html" in index and "package" not in index and "review" not in index
    assert (out / "list.json").read_text() == "[1, 2, 3]"  # untouched
    assert run("check", out)[0] == 0  # the same rule for check
    assert run("diff", out, out)[0] == 0  # and for diff


def test_report_checks_the_folder_before_writing_anything(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert run("report", tiny, "--out", out)[0] == 0
    broken = out / "old.json"  # a cnncost report (its schema says so), broken
    broken.write_text('{"schema": "cnncost.report/1", "model": 5}')
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    other = tiny.with_name("other.yaml")
    other.write_text(TINY.replace("tiny", "other"))
    assert_one_line_error(*run("report", other, "--out", out), "old.json: not a cnncost report")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing written
    # a spec that fails to count: nothing written either (the first one's files included)
    bad = tiny.with_name("bad.yaml")
    bad.write_text(TINY.replace("kernel: 3", "kernel: 9"))
    broken.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = run("report", other, bad, "--out", out)
    assert code == 2 and "bad.yaml" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # a broken report being rewritten is no obstacle: it is replaced
    (out / "tiny.json").write_text("{")
    assert run("report", tiny, "--out", out)[0] == 0


# Just past the walk's limit, and the 1,500 folders a user met (a RecursionError then: the
# slow tier, big hostile input).
@pytest.mark.parametrize("depth", [40, pytest.param(1500, marks=pytest.mark.slow)])
def test_folders_nested_deeper_than_the_walk_are_one_line(tiny: Path, tmp_path: Path,
                                                          depth: int) -> None:
    from cnncost.check import MAX_FOLDER_DEPTH

    assert depth > MAX_FOLDER_DEPTH
    out = tmp_path / "reports"
    assert run("report", tiny, "--out", out)[0] == 0
    levels = [out / "d"]
    for _ in range(depth):  # os.makedirs recurses once per level: made level by level
        levels[-1].mkdir()
        levels.append(levels[-1] / "d")
    try:
        why = f"folders nest more than {MAX_FOLDER_DEPTH} deep under it"
        for args in (["check", out], ["diff", out, out], ["report", tiny, "--out", out]):
            assert_one_line_error(*run(*args), why)
    finally:  # removed level by level too (shutil.rmtree, pytest's cleanup, recurses)
        for level in reversed(levels[:-1]):
            level.rmdir()


def test_advise_emit_writes_inside_its_folder_only(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    # three 7x7 convs: the small-filter-chain rule rewrites the last two, among others
    layers = "".join("  - conv: {out: 64, kernel: 7}\n  - relu\n" for _ in range(3))
    emit = tmp_path / "a" / "b"
    # "/" made "_" and leading dots dropped: a name, never a path (io.file_name)
    for name, written in [("../../escape/x", "_.._escape_x.small-filter-chain.conv3.yaml"),
                          ("/abs/y", "_abs_y.small-filter-chain.conv3.yaml"),
                          ("..", "small-filter-chain.conv3.yaml")]:
        spec.write_text(f'name: "{name}"\ninput: [3, 32, 32]\nlayers:\n{layers}')
        code, out, err = run("advise", spec, "--emit", emit, "-f", "json")
        assert code == 0, err
        files = {f["spec_file"] for f in json.loads(out)["findings"]}
        assert written in files
        assert files <= {p.name for p in emit.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "net.yaml"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    # a symlink already in the folder that leads out of it is not written through
    target = written
    (emit / target).unlink()
    (emit / target).symlink_to(tmp_path / "outside.yaml")
    assert_one_line_error(*run("advise", spec, "--emit", emit), "is a symlink out of")
    assert not (tmp_path / "outside.yaml").exists()


@pytest.mark.parametrize("kind", ["file", "fifo"])
@pytest.mark.parametrize("option", [["advise", "--emit"], ["report", "--out"]],
                         ids=["emit", "out"])
def test_a_folder_option_onto_what_is_no_folder_is_said_first(
        tiny: Path, kind: str, option: list[str]) -> None:
    # advise --emit onto a FIFO printed the whole advice, then failed writing the first spec
    where = tiny.with_name("where")
    if kind == "fifo":
        os.mkfifo(where)
    else:
        where.write_text("kept")
    command, flag = option
    code, out, err = run(command, tiny, flag, where)
    shown = {"file": "a file", "fifo": "a FIFO (named pipe)"}[kind]
    assert_one_line_error(code, out, err, f"{flag} {where}: is {shown}; expected a folder")
    assert out == ""  # nothing counted or printed before
    if kind == "file":
        assert where.read_text() == "kept"


# --------------------------------------------------------------------------- unbounded work


def test_sweep_jobs_are_capped_by_points_and_cpus(tiny: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    from cnncost.measure.machine import usable_cpus
    from cnncost.sweep import pool_size

    assert pool_size(500, 2) == min(2, usable_cpus())
    assert pool_size(500, 10**6) == usable_cpus() and pool_size(3, 1) == 1
    made: list[int] = []
    real = concurrent.futures.ProcessPoolExecutor

    def pool(max_workers: int, **kwargs: Any) -> Any:
        made.append(max_workers)
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool)
    code, out, err = run("sweep", tiny, "--batch", "1,2", "--jobs", "500", "-f", "csv")
    assert code == 0, err
    assert made in ([min(2, usable_cpus())], [])  # one CPU: counted here, no pool at all
    assert f"--jobs 500: {min(2, usable_cpus())} process" in err
    # batch 2 doubles batch 1's 72 MACs
    head, *rows = [line.split(",") for line in out.splitlines()]
    assert [row[head.index("macs")] for row in rows] == ["72", "144"]


@pytest.mark.parametrize(("values", "why"), [
    ("128..640:1e-999999", "range step 1e-999999 is out of range"),    # hung, then...
    ("1..2:1e-999000", "range step 1e-999000 is out of range"),        # hung
    ("128..640:1e-99999999", "range step 1e-99999999 is out of range"),  # decimal.Overflow
    ("1..2:1e99999999999999999999", "is out of range"),
    ("1e-999999..1:1", "range start 1e-999999 is out of range"),
    ("1..2:" + "1" * 200, "is 200 characters long"),
    ("1..2:1e-12", "1,000,000,000,001 values, more than --max-points"),  # (2-1)/1e-12 + 1
    ("0..1:1e-300", "about 1e300 values, more than --max-points"),
], ids=["step-e-999999", "step-e-999000", "step-e-99999999", "step-e20-digits", "start",
        "long", "many", "very-many"])
def test_sweep_ranges_are_bounded(tiny: Path, values: str, why: str) -> None:
    assert_one_line_error(*run("sweep", tiny, "--batch", values), why)


@pytest.mark.parametrize(("address", "why"), [
    ("garbage", "no port"),
    ("tcp://:::", "an IPv6 address is written in brackets"),
    ("http://x:1", "unknown protocol 'http'"),
    ("tcp://host:99999", "port '99999' is not a number from 1 to 65535"),
    ("tcp://h st:1", "is not a host name"),
    ("tcp://:8786", "no host"),
    ("[::1]8786", "an IPv6 address is written [ADDRESS]:PORT"),
])
def test_a_malformed_dask_address_is_one_line_before_any_work(
        tiny: Path, address: str, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.sweep import run as sweep_run

    def never(*args: Any) -> Any:
        raise AssertionError("counted before the address was checked")

    monkeypatch.setattr(sweep_run, "evaluate", never)
    assert_one_line_error(*run("sweep", tiny, "--batch", "1,2", "--dask", address), why)


def test_an_unreachable_or_silent_dask_scheduler_is_one_line(
        tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    pytest.importorskip("distributed")
    from cnncost.sweep import run as sweep_run

    monkeypatch.setattr(sweep_run, "CONNECT_TIMEOUT_S", 0.5)
    with socket.socket() as probe:  # a port nothing listens on (bound, then closed)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_one_line_error(*run("sweep", tiny, "--batch", "1,2", "--dask",
                               f"tcp://127.0.0.1:{port}"), "cannot connect to 127.0.0.1")
    with socket.socket() as silent:  # listens, accepts, says nothing (a Dask scheduler greets)
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        assert_one_line_error(*run("sweep", tiny, "--batch", "1,2", "--dask", address),
                              "something other than a Dask scheduler listens")


# --------------------------------------------------------------------------- lone surrogates
# The rule (one, at the root): text is kept as read and escaped where it is written, by the
# printing layer (render.console.literal), the file writer (io.write_atomic), the text
# formats (render.formats) and the one place text meets matplotlib (render.plot).


@pytest.fixture
def surrogate_spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text('name: "net\\ud800"\ndescription: "a lone \\udc00 surrogate"\n'
                    "vars: {w: 4}\ninput: [3, 16, 16]\nlayers:\n"
                    "  - conv: {out: w, kernel: 7}\n  - relu\n  - conv: {out: 8, kernel: 7}\n")
    return path


@pytest.mark.parametrize("args", [
    ["analyze", "-f", "csv"], ["sweep", "--set", "w=4,8", "-f", "md"],
    ["sweep", "--set", "w=4,8", "-f", "csv"], ["advise", "-f", "md"], ["advise", "-f", "json"],
    ["compare", "{spec}", "-f", "csv"]], ids=lambda a: " ".join(a))
def test_a_lone_surrogate_is_escaped_in_every_format(surrogate_spec: Path,
                                                     args: list[str]) -> None:
    words = [a.format(spec=surrogate_spec) for a in args]
    code, out, err = run(words[0], surrogate_spec, *words[1:])
    assert code == 0, err
    out.encode("utf-8")  # nothing left that cannot be written
    # (analyze's and sweep's CSV rows name layers and points, not the model)
    assert "\\ud800" in out or ("csv" in args and words[0] in ("analyze", "sweep")), out


@pytest.mark.slow  # matplotlib images
@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_a_lone_surrogate_and_mathtext_plot(surrogate_spec: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    text = surrogate_spec.read_text().replace("net\\ud800", "net\\ud800 $\\\\frac{{$")
    surrogate_spec.write_text(text)
    image = surrogate_spec.with_name(f"p.{suffix}")
    for models in ([surrogate_spec], [surrogate_spec, surrogate_spec]):
        code, _, err = run("plot", *models, "-o", image)
        assert code == 0, err
        assert image.stat().st_size > 0
    if suffix == "svg":  # text is drawn as paths: the title's escape is no text to find
        assert "<svg" in image.read_text()


def test_a_report_with_a_lone_surrogate_is_written_and_checked(surrogate_spec: Path) -> None:
    out = surrogate_spec.parent / "reports"
    code, _, err = run("report", surrogate_spec, "--out", out)
    assert code == 0, err
    assert '"net\\ud800"' in (out / "net.json").read_text(encoding="utf-8")  # JSON's escape
    assert "net\\\\ud800" in (out / "net.md").read_text(encoding="utf-8")  # shown, escaped
    assert run("check", out)[:2] == (0, "ok: 1 report(s) checked, 1 match\n")


# --------------------------------------------------------------------------- output safety


@pytest.fixture
def odd_names(tmp_path: Path) -> Path:
    """A module whose layers are named like a spreadsheet formula and with a line break."""
    path = tmp_path / "oddnames.py"
    path.write_text(
        "from torch import nn\n\n\n"
        "class Odd(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.add_module('=HYPERLINK(\"x\")', nn.Conv2d(1, 2, 3))\n"
        "        self.add_module('a\\nb | <b>c</b>', nn.ReLU())\n\n"
        "    def forward(self, x):\n"
        "        for m in self.children():\n"
        "            x = m(x)\n"
        "        return x\n\n\n"
        "def build():\n"
        "    return Odd()\n")
    return path


def test_csv_cells_cannot_start_a_formula_or_a_new_row(odd_names: Path) -> None:
    import csv
    import io as _io

    code, out, err = run("analyze", f"{odd_names}:build", "-i", "1x4x4", "-f", "csv")
    assert code == 0, err
    assert out.count("\n") == 3  # the header and one line per layer
    rows = list(csv.reader(_io.StringIO(out)))
    # OWASP's rule: a quote before a cell that would start with = + - @
    assert rows[1][:2] == ["'=HYPERLINK(\"x\")", "Conv2d"] and rows[1][6] == "72"
    assert rows[2][0] == "a\\nb | <b>c</b>"  # the line break shown, not a new row


def test_every_csv_goes_through_the_one_writer() -> None:
    import re

    package = ROOT / "cnncost"
    direct = [str(p.relative_to(package)) for p in package.rglob("*.py")
              if re.search(r"\bcsv\.(writer|DictWriter)\(", p.read_text())]
    assert direct == ["render/formats.py"], direct  # render.formats.csv_writer


def test_csv_cell_rule() -> None:
    from cnncost.render.formats import csv_cell

    for cell, safe in [("=1+1", "'=1+1"), ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
                       ("@SUM(A1)", "'@SUM(A1)"), ("-2+3", "'-2+3"), ("\t=1", "\\t=1"),
                       ("-0.5", "-0.5"), ("1e-3", "1e-3"), ("conv1", "conv1"), (-5, -5)]:
        assert csv_cell(cell) == safe, cell


def test_markdown_tables_keep_their_rows(odd_names: Path) -> None:
    code, out, err = run("analyze", f"{odd_names}:build", "-i", "1x4x4", "-f", "md")
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert rows[2].startswith("| `a\\nb \\| <b>c</b>` | ReLU |")  # code: HTML inert there
    assert len(rows) == 4  # head, two layers, total
    assert "<b>" not in _outside_code(out)


def _outside_code(markdown: str) -> str:
    """Markdown less its fenced blocks and code spans, where HTML and markup are text."""
    import re

    markdown = re.sub(r"^(`{3,})\n.*?^\1$", "", markdown, flags=re.S | re.M)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", markdown)


MARKUP = "# title\n<script>alert(1)</script> **b** [l](javascript:x)"


@pytest.fixture
def markup_spec(tmp_path: Path) -> Path:
    path = tmp_path / "markup.yaml"
    path.write_text(f"name: {json.dumps('<img src=x onerror=alert(1)>')}\n"
                    f"description: {json.dumps(MARKUP)}\n"
                    "vars: {w: 4}\ninput: [3, 16, 16]\nlayers:\n"
                    "  - conv: {out: w, kernel: 7}\n  - relu\n  - conv: {out: 8, kernel: 7}\n")
    return path


@pytest.mark.parametrize("args", [
    ["analyze"], ["analyze", "--mode", "train"], ["compare", "{spec}"],
    ["sweep", "--set", "w=4,8"], ["advise"]], ids=lambda a: " ".join(a))
def test_markdown_escapes_names_and_descriptions(markup_spec: Path, args: list[str]) -> None:
    words = [a.format(spec=markup_spec) for a in args]
    code, out, err = run(words[0], markup_spec, *words[1:], "-f", "md")
    assert code == 0, err
    text = _outside_code(out)
    assert "<img" not in text and "<script" not in text and "**b**" not in text
    assert "[l](" not in text and not any(ln.startswith("# title") for ln in out.splitlines())
    if words[0] == "analyze":
        title = "# &lt;img src=x onerror=alert(1)>" + (" (training step)" if len(words) > 1
                                                         else "")
        assert out.splitlines()[0] == title
        # the description: one line, "#" that would open a heading escaped, "<" an entity,
        # paired "*" escaped, no "](" of a link (render.formats.md_line)
        assert (r"\# title\\n&lt;script>alert(1)&lt;/script> \*\*b\*\* [l\](javascript:x)"
                in out.splitlines())


def test_markdown_reports_escape_user_text(markup_spec: Path) -> None:
    out = markup_spec.parent / "reports"
    assert run("report", markup_spec, "--out", out)[0] == 0
    text = (out / "markup.md").read_text()
    assert "<img" not in text and "<script" not in text


def test_a_description_opens_no_block() -> None:
    from cnncost.render.formats import md_line

    # a line of its own: no heading, list, setext underline or quote of the user's making
    for text in ["# h", "- item", "+ item", "= x", "12. x", "> quote"]:
        assert md_line(text) != text and md_line(text).lstrip("\\0123456789")[1:] == (
            text.lstrip("0123456789")[1:]), text

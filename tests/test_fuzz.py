"""Fuzzing: bundled specs, reports and caches, mutated at random, never make a traceback.

Each case runs the CLI in-process (typer's CliRunner) and must end with an exit code the
README documents (validate/analyze: 0 or 2; check: 0, 1 or 2), an error as one line on
stderr, within a time limit and a memory limit. Caches are read through their own readers:
an entry that is not valid is ignored (counted again), never returned.

Mutations: a YAML or JSON node replaced by a hostile value (negative, zero, huge, NaN-ish,
wrong type, markup, control characters), a key deleted, a node nested deep, and bytes of
the text deleted, duplicated or replaced.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncost.cli import app
from cnncost.sources import bundled_specs

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 30  # per case; the slowest unmutated case here takes ~2 s on a busy 2-core machine
GROWTH = 1 << 30  # peak resident memory a case may add
SMALL_SPECS = sorted(str(p) for p in bundled_specs().values() if p.stat().st_size < 2500)
REPORT = json.loads((ROOT / "reports" / "lenet5.json").read_text())

HOSTILE: list[Any] = [
    -1, 0, 1, 2, 3, 7, 64, 1_000_000, 2**31, 2**63, 10**40, 0.5, -0.0, 1e308, True, False,
    None, "", "x", "nan", ".inf", "a[/b]", "[link=https://e]l[/link]", ":thumbs_up:",
    "\x1b]0;t\x07\x1b[2J", "\u202e", "same", "valid", "in", "N", "1 +", "specs/x.yaml",
    "sys:exit", [], {}, [1, 2], [[[1]]], {"a": 1}, [0] * 8,
    # what issue 26's red team wrote into names: a lone surrogate, a spreadsheet formula, raw
    # HTML and Markdown, a line break, paths out of a folder, mathtext
    "\ud800", "=HYPERLINK(\"http://e\")", "<img src=x onerror=alert(1)>", "# h\n- **b**",
    "a\nb|c", "../../x", "/abs/x", "$\\frac{$",
]
# CNNCOST_FUZZ_EXAMPLES=1000 explores longer (locally; CI keeps 40 per test, derandomized).
settings_ = settings(max_examples=int(os.environ.get("CNNCOST_FUZZ_EXAMPLES", "40")),
                     deadline=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def bounded(what: str) -> Iterator[None]:
    """Fail a case that runs past SECONDS or grows the peak resident memory past GROWTH."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what}: still running after {SECONDS} s")

    reset = _reset_peak()
    base = _peak()
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if reset:
        assert _peak() - base < GROWTH, f"{what}: peak memory grew by {_peak() - base:,} B"


def _reset_peak() -> bool:
    """Reset the peak resident size the kernel keeps (VmHWM) to the current one."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cli(*args: Any) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the case fails showing it
    return result.exit_code, result.stdout, result.stderr


def assert_documented(code: int, out: str, err: str, codes: tuple[int, ...]) -> None:
    assert code in codes, (code, out, err)
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- mutations


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node of a parsed document, the root first."""
    yield prefix
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in items:
        yield from _paths(child, (*prefix, key))


@st.composite
def mutated_tree(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one to three nodes replaced, deleted or nested deep."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "nest":
            parent[path[-1]] = draw(st.sampled_from([[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]],
                                                     {"a": {"b": {"c": [parent[path[-1]]]}}}]))
        else:
            # a copy: HOSTILE's lists and dicts are shared, and a later mutation inside one
            # would change HOSTILE itself (and could make a document contain itself)
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
    return doc


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """``text`` with a slice deleted, duplicated or replaced by hostile characters."""
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    action = draw(st.sampled_from(["delete", "duplicate", "replace"]))
    if action == "delete":
        return text[:start] + text[end:]
    if action == "duplicate":
        return text[:end] + text[start:end] + text[end:]
    junk = draw(st.text(alphabet=":[]{}-&*!|>#'\"\t\n 0123456789e.x\x1b\u202e", max_size=12))
    return text[:start] + junk + text[end:]


# --------------------------------------------------------------------------- specs


@pytest.mark.slow  # fuzzing: hundreds of cases
@settings_
@given(data=st.data(), spec=st.sampled_from(SMALL_SPECS))
def test_mutated_specs(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject,
                       spec: str) -> None:
    text = Path(spec).read_text()
    if data.draw(st.booleans()):
        doc = yaml.safe_load(text)
        text = yaml.safe_dump(data.draw(mutated_tree(doc)), allow_unicode=False)
    else:
        text = data.draw(mutated_text(text))
    path = tmp_path_factory.mktemp("fuzz") / Path(spec).name
    path.write_text(text, encoding="utf-8")
    fmt = data.draw(st.sampled_from(["json", "md", "csv", "html"]))
    with bounded(f"{spec} mutated"):
        assert_documented(*cli("validate", path), (0, 2))
        code, out, err = cli("analyze", path, "-f", fmt, "-o", path.with_suffix(f".{fmt}"))
        assert_documented(code, out, err, (0, 2))
    if code == 0 and fmt in ("md", "csv"):  # user text stays text (render.formats)
        written = path.with_suffix(f".{fmt}").read_text(encoding="utf-8")
        if fmt == "md":
            assert "<img" not in written and "\n- **b**" not in written
        else:
            assert all(not line.startswith(("=", "@")) for line in written.splitlines())


@pytest.mark.slow  # fuzzing: hundreds of cases
@settings_
@given(name=st.sampled_from(["width", "res", "depth", "classes", "in", "x[/y]"]),
       value=st.sampled_from([str(v) for v in HOSTILE] + ["2**100", "-3", "1e999", "()"]),
       shape=st.sampled_from([None, "3x224x224", "0x1x1", "1x1", "3x-5x5", "3x2e3x5",
                              "99999999x1x1", "3x16777217x1"]))
def test_mutated_options(name: str, value: str, shape: str | None) -> None:
    spec = str(ROOT / "specs" / "mobilenetv1.yaml")
    args = ["analyze", spec, "--set", f"{name}={value}"] + (["--input", shape] if shape else [])
    with bounded(f"--set {name}={value} --input {shape}"):
        assert_documented(*cli(*args), (0, 2))


@pytest.mark.slow  # fuzzing: hundreds of cases
@settings_
@given(start=st.sampled_from(["0", "1", "-1", "128", "0.5", "1e-300", "1e308", "-1e-5",
                              "1e-999999", "1e999999", "9" * 400, "1e99999999999999999999"]),
       end=st.sampled_from(["0", "2", "640", "1.5", "1e-299", "1e308", "-1e308", "1e-999990"]),
       step=st.sampled_from([None, "1", "-1", "32", "0.25", "1e-999999", "1e-999000", "1e-12",
                             "1e-300", "-1e-300", "1e308", "0", "1e-99999999"]))
def test_fuzzed_ranges(start: str, end: str, step: str | None) -> None:
    """A sweep range of extreme ends and steps is values or one UsageError, at once: each
    bound is checked before any arithmetic could overflow or build a number of a million
    digits (issue 26: 1..2:1e-999000 hung, 1e-99999999 raised decimal.Overflow)."""
    from cnncost.errors import UsageError
    from cnncost.sweep import parse_values

    text = f"{start}..{end}" + (f":{step}" if step is not None else "")
    with bounded(f"--set x={text}"):
        try:
            values = parse_values("--set x", text, 1000)
        except UsageError:
            return
    assert 1 <= len(values) <= 1000


# --------------------------------------------------------------------------- reports


@pytest.mark.slow  # fuzzing: hundreds of cases
@settings_
@given(data=st.data())
def test_mutated_reports(tmp_path_factory: pytest.TempPathFactory,
                         data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("reports")
    if data.draw(st.booleans()):
        text = json.dumps(data.draw(mutated_tree(REPORT)))
    else:
        text = data.draw(mutated_text(json.dumps(REPORT, indent=1)))
    (folder / "lenet5.json").write_text(text, encoding="utf-8")
    with bounded("lenet5.json mutated"):
        assert_documented(*cli("check", folder), (0, 1, 2))


# --------------------------------------------------------------------------- caches


@pytest.fixture(scope="module")
def list_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    """A valid list cache holding one small spec, and what it holds."""
    from cnncost.catalog import ListCache

    home = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        spec = bundled_specs()["textbook/conv5x5"]
        cache = ListCache()
        fresh = cache.get(spec, True)
        cache.save()
    return home, json.loads((home / "cnncost" / "list-totals.json").read_text()), fresh


@pytest.mark.slow  # fuzzing: hundreds of cases
@settings_
@given(data=st.data())
def test_mutated_list_cache(list_cache: tuple[Path, dict[str, Any], Any],
                            data: st.DataObject, monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.catalog import ListCache

    home, doc, fresh = list_cache
    if data.draw(st.booleans()):
        text = json.dumps(data.draw(mutated_tree(doc)))
    else:
        text = data.draw(mutated_text(json.dumps(doc)))
    try:  # an edit that left a well-formed entry (another description) is the cache's
        entry = json.loads(text)["specs"][next(iter(doc["specs"]))]
        kept = (entry["description"], entry.get("params"), entry.get("macs"))
    except (ValueError, KeyError, TypeError, IndexError, StopIteration):
        kept = None
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "m"))
    (home / "m" / "cnncost").mkdir(parents=True, exist_ok=True)
    (home / "m" / "cnncost" / "list-totals.json").write_text(text)
    with bounded("list cache mutated"):
        got = ListCache().get(bundled_specs()["textbook/conv5x5"], True)
    description, params, macs = got  # a broken entry is counted again, never shown
    assert isinstance(description, str) and type(params) is int and type(macs) is int
    assert got in (fresh, kept)


@pytest.fixture(scope="module")
def roof_cache() -> tuple[dict[str, Any], Any]:
    """A roofline cache file's document holding one entry, and the roofline a recalibration
    would give (a stand-in: nothing is measured)."""
    import torch

    from cnncost.measure import roofline as rl

    cpu = torch.device("cpu")
    key = rl.cache_key(cpu, torch.float32, 1)
    cached = rl.Roofline(key, "cpu", rl.device_name(cpu), "float32", 1, 5e10, 1e10, 512,
                         8 << 20, torch.__version__, "2026-01-01T00:00:00+00:00", 0.5)
    fresh = rl.Roofline(key, "cpu", rl.device_name(cpu), "float32", 1, 7e10, 2e10, 512,
                        8 << 20, torch.__version__, "2026-01-02T00:00:00+00:00", 0.5)
    return {"schema": rl.CACHE_SCHEMA, "entries": {key: cached.to_dict()}}, fresh


@settings_
@given(data=st.data())
def test_mutated_roofline_cache(roof_cache: tuple[dict[str, Any], Any], data: st.DataObject,
                                tmp_path_factory: pytest.TempPathFactory,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from cnncost.measure import roofline as rl

    doc, fresh = roof_cache
    if data.draw(st.booleans()):
        text = json.dumps(data.draw(mutated_tree(doc)))
    else:
        text = data.draw(mutated_text(json.dumps(doc, indent=1)))
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    rl.cache_path().parent.mkdir(parents=True, exist_ok=True)
    rl.cache_path().write_text(text, encoding="utf-8")
    monkeypatch.setattr(rl, "calibrate", lambda *a, **k: fresh)
    with bounded("roofline cache mutated"):
        roof = rl.get_roofline(torch.device("cpu"), torch.float32, 1)
    # what is used is a roofline for this key: finite, positive, below any machine
    assert roof.key == fresh.key and roof.valid
    assert 0 < roof.peak_flops <= 1e18 and 0 < roof.bandwidth <= 1e16
    assert roof.ridge > 0 and roof.predict(1.0, 1.0) > 0
    if roof == fresh:  # measured again: the cache now holds it, whatever else it held
        again = json.loads(rl.cache_path().read_text())["entries"][fresh.key]
        assert rl.cached_roofline(again, fresh.key) == fresh


# --------------------------------------------------------------------------- determinism


@pytest.mark.slow  # fuzzing: hundreds of cases
def test_json_is_byte_identical_across_hash_seeds_folders_and_locales(tmp_path: Path) -> None:
    import subprocess
    import sys

    outs = []
    for seed, cwd, lang in (("0", ROOT, "C"), ("12345", tmp_path, "C.UTF-8")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "LC_ALL": lang, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-m", "cnncost", "analyze", "densenet121",
                              "--set", "growth=16", "-f", "json"], cwd=cwd, env=env,
                             capture_output=True, timeout=300, check=True)
        outs.append(run.stdout)
    assert outs[0] == outs[1] and outs[0].startswith(b"{")

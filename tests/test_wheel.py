"""What a user installs is what the tests prove: the wheel, not the checkout.

The suite itself runs cnncost installed in editable mode, which reads the source tree; a
user's ``pip install .`` gets the wheel, which holds only what the packaging declares. So:

- the wheel built from this checkout holds every module under ``cnncost/`` and every bundled
  spec (``specs/**/*.yaml``, installed as ``cnncost/specs/``);
- installed into a fresh virtual environment outside the checkout, it runs every command of
  the app once on a real input: exit 0, no traceback. The list of commands is read from the
  app, so a command added later is run too (on a bundled model, unless ``RUNS`` below gives
  it other arguments).

The wheel is built from a copy of the checkout (pip builds in the source folder), once per
test session; the environment is made once per session too. torch goes into it first, the
pinned CPU build from this machine's disk (``pip install --no-index``: pip's configured
``find-links``), so that pip never pulls another torch; the other dependencies come from the
package index as a user's pip gets them. Where no torch wheel is on disk the environment's
tests skip, saying so.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cnncost.cli import app

ROOT = Path(__file__).resolve().parent.parent
# What the build needs of the checkout (the rest is left out of the copy it builds from).
_NOT_BUILT = {"tests", "benchmarks", "docs", "reports", "build", "dist"}
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*_cache", ".hypothesis")


def _ignore(folder: str, names: list[str]) -> set[str]:
    skipped = set(_JUNK(folder, names))
    if Path(folder) == ROOT:
        skipped |= {n for n in names if n in _NOT_BUILT or n.startswith(".")}
    return skipped


def _pip_env() -> dict[str, str]:
    """pip's environment: the user's own pip configuration read from the real home and
    configuration folder (tests/conftest.py points both elsewhere), every cache kept in the
    test session's temporary folder (XDG_CACHE_HOME, set by conftest)."""
    import conftest

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "XDG_CONFIG_HOME")}
    if conftest.REAL_CONFIG_HOME is not None:
        env["XDG_CONFIG_HOME"] = conftest.REAL_CONFIG_HOME
    return {**env, "HOME": str(conftest.REAL_HOME), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False,
                          **kwargs)  # type: ignore[call-overload]


def _setuptools_builds() -> bool:
    """Whether this environment's setuptools can build the wheel (pyproject: >= 68), so pip
    need not fetch one into an isolated build environment."""
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 68
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built from a copy of it."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore, symlinks=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
           str(src)]
    if _setuptools_builds():
        cmd.insert(4, "--no-build-isolation")
    done = _run(cmd, env=_pip_env())
    assert done.returncode == 0, done.stderr
    (built,) = (tmp / "dist").glob("cnncost-*.whl")
    return built


@pytest.mark.slow  # builds the wheel
def test_the_wheel_holds_every_module_and_every_bundled_spec(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cnncost").rglob("*.py")}
    specs = {"cnncost/specs/" + p.relative_to(ROOT / "specs").as_posix()
             for p in (ROOT / "specs").rglob("*.yaml")}
    assert len(specs) > 10 and "cnncost/advise/__init__.py" in modules  # the tree was read
    assert sorted(modules - names) == [], "modules missing from the wheel"
    assert sorted(specs - names) == [], "bundled specs missing from the wheel"
    # and nothing of the checkout that is not the package (tests, benchmarks, caches)
    assert sorted(n for n in names if not n.startswith(("cnncost/", "cnncost-"))) == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


# --------------------------------------------------------------------------- a fresh install


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def _fresh_venv(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, list[str]]:
    """A new virtual environment outside the checkout, and the pip command installing into it
    (this interpreter's pip with --python: the environment needs none of its own, 10 s
    sooner)."""
    venv = tmp_path_factory.mktemp(name) / "venv"
    done = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert done.returncode == 0, done.stderr
    return venv, [sys.executable, "-m", "pip", "--python", str(_bin(venv, "python")), "install",
                  "-q", "--no-compile"]


def _scripts(venv: Path) -> Path:
    """The folder of the environment's scripts, checked to hold the wheel's cnncost."""
    where = _run([str(_bin(venv, "python")), "-c", "import cnncost; print(cnncost.__file__)"],
                 cwd=venv, env=_clean_env(venv))
    assert Path(where.stdout.strip()).is_relative_to(venv), where  # not the checkout's
    return _bin(venv, "python").parent


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with this machine's torch and the wheel with its torch and plot
    extras: the folder of its scripts."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("torch is not installed here: no pinned torch to install beside the wheel")
    venv, pip = _fresh_venv(tmp_path_factory, "fresh")
    pinned = torch_version.split("+")[0]
    done = _run([*pip, "--no-index", "--no-deps", f"torch=={pinned}"], env=_pip_env())
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        pytest.skip(f"no torch {pinned} wheel on this machine's disk (pip's find-links): {last}")
    done = _run([*pip, f"{wheel}[torch,plot]"], env=_pip_env())
    assert done.returncode == 0, done.stderr
    # the torch extra is a range: the installed torch stays (pip never swaps in another)
    kept = _run([str(_bin(venv, "python")), "-c", "import torch; print(torch.__version__)"],
                env=_clean_env(venv))
    assert kept.stdout.strip() == torch_version, kept
    return _scripts(venv)


@pytest.fixture(scope="session")
def installed_bare(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the wheel alone (`pip install cnncost`): no torch."""
    venv, pip = _fresh_venv(tmp_path_factory, "bare")
    done = _run([*pip, str(wheel)], env=_pip_env())
    assert done.returncode == 0, done.stderr
    no_torch = _run([str(_bin(venv, "python")), "-c", "import torch"], env=_clean_env(venv))
    assert no_torch.returncode != 0, "pip install cnncost pulled torch in"
    return _scripts(venv)


def _clean_env(venv: Path, cache: Path | None = None) -> dict[str, str]:
    """The environment of a command run from ``venv`` (with a cache folder of its own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return {**env, "PATH": str(_bin(venv, "python").parent) + os.pathsep + env["PATH"]}


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def _reported(work: Path) -> list[list[str]]:
    out = str(work / "reports")
    return [["report", "lenet5", "textbook/conv5x5", "--out", out], ["check", out]]


def _diffed(work: Path) -> list[list[str]]:
    base, head = str(work / "base"), str(work / "head")
    return [["report", "lenet5", "--out", base],
            ["report", "lenet5", "--set", "classes=100", "--out", head], ["diff", base, head]]


def _predicted(work: Path) -> list[list[str]]:
    """predict with a calibration made by hand (tests/calibrations.py): no 'calibrate' run."""
    from calibrations import hand_calibration

    from cnncost.predict.calibration import save

    path = save(hand_calibration("cpu:Test CPU|float32|threads=1|torch=2.13.0"),
                work / "calibration.json")
    return [["predict", "lenet5", "--calibration", str(path)]]


# Each command's command lines (the last is the one the test is about) and what it writes;
# a command without an entry runs as `cnncost COMMAND resnet50`.
RUNS: dict[str, Callable[[Path], list[list[str]]]] = {
    "analyze": lambda w: [["analyze", "resnet50"]],
    "validate": lambda w: [["validate", "mobilenetv2"]],
    "list": lambda w: [["list"]],
    "compare": lambda w: [["compare", "alexnet", "vgg16", "mobilenetv2"]],
    "advise": lambda w: [["advise", "alexnet", "--emit", str(w / "advice")]],
    "report": _reported,
    "check": _reported,
    "diff": _diffed,
    "bench": lambda w: [["bench", "lenet5", "--max-time", "0.05", "--min-samples", "2"]],
    "calibrate": lambda w: [["calibrate", "--max-time", "5"]],  # (its least)
    "predict": _predicted,
    "explain": lambda w: [["explain", "textbook/dwsep_6x6x3"]],
    "sweep": lambda w: [["sweep", "resnet50", "--set", "res=128..256:64"]],
    "plot": lambda w: [["plot", "alexnet", "vgg16", "--output", str(w / "cmp.png")]],
    "schema": lambda w: [["schema", "report"]],
    "export": lambda w: [["export", "lenet5", "--onnx", str(w / "lenet5.onnx")]],
}
# Commands that need an extra, by the module it brings: the fresh environment has cnncost[plot]
NEEDS = {"plot": ("matplotlib", "cnncost[plot]"), "export": ("onnxscript", "cnncost[onnxruntime]")}
WRITES: dict[str, Callable[[Path], list[Path]]] = {
    "advise": lambda w: [w / "advice"],
    "report": lambda w: [w / "reports" / f for f in ("lenet5.json", "textbook/conv5x5.md",
                                                           "index.html")],
    "plot": lambda w: [w / "cmp.png"],
    "export": lambda w: [w / "lenet5.onnx"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", _commands())
def test_every_command_runs_from_the_installed_wheel(command: str, installed: Path,
                                                     tmp_path: Path) -> None:
    venv = installed.parent
    lines = RUNS.get(command, lambda w: [[command, "resnet50"]])(tmp_path)
    if command in NEEDS:
        module, extra = NEEDS[command]
        if _run([str(installed / "python"), "-c", f"import {module}"],
                env=_clean_env(venv)).returncode != 0:
            # without its extra the command says in one line how to get it
            done = _run([str(installed / "cnncost"), *lines[-1]], cwd=tmp_path,
                        env=_clean_env(venv, tmp_path / "cache"))
            said = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(said) == 1 and extra in said[0], done.stderr
            pytest.skip(f"{module} is not in the fresh environment ({extra} is not installed "
                        "there, to keep it light): checked its one-line answer instead")
    for argv in lines:
        done = _run([str(installed / "cnncost"), *argv], cwd=tmp_path,
                    env=_clean_env(venv, tmp_path / "cache"))
        said = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in said, (argv, said[-3000:])
    written = WRITES.get(command, lambda w: [])(tmp_path)
    for path in written:
        assert path.exists(), path
    assert written or done.stdout.strip(), argv  # it printed its result


@pytest.mark.slow
def test_the_installed_version_is_the_wheels(installed: Path, wheel: Path) -> None:
    done = _run([str(installed / "cnncost"), "--version"], env=_clean_env(installed.parent))
    assert done.returncode == 0, done.stderr
    # a wheel's file name is NAME-VERSION-TAGS.whl (PEP 427)
    assert done.stdout == f"cnncost {wheel.name.split('-')[1]}\n"


# --------------------------------------------------------------------------- without torch

# What `pip install cnncost` runs without torch: the spec path (the analytic engine).
SPEC_PATH = {"analyze", "compare", "report", "check", "diff", "sweep", "advise", "explain",
             "validate", "list", "schema"}


@pytest.mark.slow
@pytest.mark.parametrize("command", _commands())
def test_without_torch_a_command_runs_or_says_in_one_line_what_to_install(
        command: str, installed_bare: Path, tmp_path: Path) -> None:
    venv = installed_bare.parent
    lines = RUNS.get(command, lambda w: [[command, "resnet50"]])(tmp_path)
    for argv in lines:
        done = _run([str(installed_bare / "cnncost"), *argv], cwd=tmp_path,
                    env=_clean_env(venv, tmp_path / "cache"))
        said = done.stdout + done.stderr
        assert "Traceback" not in said, (argv, said[-3000:])
        if done.returncode != 0:
            break
    if command in SPEC_PATH:
        assert done.returncode == 0, (argv, said[-3000:])
    elif done.returncode != 0:  # bench, calibrate, export, plot (no matplotlib either), ...
        lines_said = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines_said) == 1, done.stderr
        assert "pip install 'cnncost[" in lines_said[0], lines_said


@pytest.mark.slow
@pytest.mark.parametrize("args", [["analyze", "resnet50", "--engine", "torch"],
                                  ["analyze", "resnet50", "--mode", "train"],
                                  ["analyze", "torch.nn:ReLU"], ["bench", "lenet5"],
                                  ["compare", "lenet5", "torch.nn:ReLU"]],
                         ids=lambda a: " ".join(a))
def test_without_torch_what_needs_it_says_how_to_get_it(args: list[str], installed_bare: Path,
                                                        tmp_path: Path) -> None:
    done = _run([str(installed_bare / "cnncost"), *args], cwd=tmp_path,
                env=_clean_env(installed_bare.parent, tmp_path / "cache"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: cnncost {args[0]} needs PyTorch here (modules, bench, training steps, "
        "--engine torch, export), and it is not installed: pip install 'cnncost[torch]' (an "
        "installed torch 2.2 or later is kept)"]


@pytest.mark.slow
def test_without_torch_the_committed_reports_check(installed_bare: Path, tmp_path: Path) -> None:
    # CI's own regression check (`cnncost check reports/`) from a torch-free install
    shutil.copytree(ROOT / "reports", tmp_path / "reports")
    done = _run([str(installed_bare / "cnncost"), "check", str(tmp_path / "reports")],
                cwd=tmp_path, env=_clean_env(installed_bare.parent, tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert done.stdout.splitlines()[-1].startswith("ok: "), done.stdout[-3000:]
    everything = tmp_path / "all"  # and every bundled spec reported, then checked
    for argv in (["report", "--all", "--out", str(everything)], ["check", str(everything)]):
        done = _run([str(installed_bare / "cnncost"), *argv], cwd=tmp_path,
                    env=_clean_env(installed_bare.parent, tmp_path / "cache"))
        assert done.returncode == 0, done.stderr

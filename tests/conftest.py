"""Shared fixtures: repo paths, a CLI runner, the golden-file update flag, and a home of the
test session's own."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import captured
import pytest
from hypothesis import settings

# In CI (CI=true) property tests draw the same examples on every run and keep no example
# database: a submission passes or fails on its own code, never on a lucky draw or on
# examples an earlier run left behind. Locally they explore, as hypothesis does by default.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# The fast tier (`pytest -m "not slow"`) leaves out the bundled nets that repeat what a
# smaller one of their family exercises (resnet18/50 for the deeper ResNets and ResNeXt,
# alexnet and the VGG stages for VGG, googlenet for its paper's table, mobilenetv2 and
# mobilenetv3_small for v1 and v3_large, squeezenet1_1 for 1_0, googlenet's and squeezenet's
# concatenations for DenseNet's): a test case parametrized over specs whose id names one of
# these is slow.
BIG_SPECS = frozenset({"resnet34", "resnet101", "resnet152", "resnext50_32x4d", "vgg11",
                       "vgg16", "vgg19", "densenet121", "googlenet_paper", "mobilenetv1",
                       "mobilenetv3_large", "squeezenet1_0"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and BIG_SPECS & set(re.split(r"[-/ .\[\]]", callspec.id)):
            item.add_marker(pytest.mark.slow)


# The tests never touch the user's home. Before anything is collected (test modules import
# matplotlib and torch, which read their folders' variables on import), HOME and every cache
# folder a run may fill point into one temporary folder of the session's: cnncost's own
# (cnncost.io.cache_dir: XDG_CACHE_HOME, the roofline and `list` caches), matplotlib's
# (MPLCONFIGDIR: its configuration and font cache), torch's (hub, compiled kernels,
# extensions, Inductor and Triton caches), IPython's profile (IPYTHONDIR), and, through
# XDG_CACHE_HOME, pip's and any other tool's that follows the XDG rule; and the user's
# configuration (XDG_CONFIG_HOME). Tests that need a cache of their own still set one.
# At the end the session's HOME must still be empty: anything written under "~" fails the run.
REAL_HOME = Path.home()
REAL_CONFIG_HOME = os.environ.get("XDG_CONFIG_HOME")
CACHE_VARIABLES = {
    "XDG_CACHE_HOME": "cache",
    "MPLCONFIGDIR": "matplotlib",
    "TORCH_HOME": "torch",
    "PYTORCH_KERNEL_CACHE_PATH": "torch-kernels",
    "TORCH_EXTENSIONS_DIR": "torch-extensions",
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",
    "TRITON_CACHE_DIR": "triton",
    "IPYTHONDIR": "ipython",  # IPython's profile (the notebook tests run a shell)
    "XDG_CONFIG_HOME": "config",  # (each test gets its own too: _no_user_config below)
}
_SESSION: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    root = Path(tempfile.mkdtemp(prefix="cnncost-tests-"))
    values = {"HOME": root / "home", **{v: root / d for v, d in CACHE_VARIABLES.items()}}
    _SESSION.update(root=root, home=root / "home",
                    saved={v: os.environ.get(v) for v in values})
    (root / "home").mkdir()
    for variable, folder in values.items():
        os.environ[variable] = str(folder)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    home = _SESSION.get("home")
    if not isinstance(home, Path):
        return
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"error: the tests wrote under $HOME: {', '.join(written[:20])}",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = _SESSION.get("saved")
    if not isinstance(saved, dict):
        return
    for variable, value in saved.items():
        if value is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = value
    shutil.rmtree(str(_SESSION["root"]), ignore_errors=True)
    _SESSION.clear()


@pytest.fixture(scope="session")
def _config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-home")


@pytest.fixture(autouse=True)
def _no_user_config(_config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own configuration (cnncost.io.config_file) is never read by a test: one
    that allows factories would change what check runs. A test that needs one sets
    XDG_CONFIG_HOME to a folder of its own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_config_home))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="Rewrite tests/golden/ from the current output (review the diff).")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text to a temporary file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def tv_models():
    """torchvision.models (real models; see tests/tvshim.py), or skip without torchvision."""
    import tvshim

    models = tvshim.torchvision_models()
    if models is None:
        pytest.skip("torchvision is not installed")
    return models


# --------------------------------------------------------------------------- documents


@pytest.fixture(scope="session")
def _capture_documents() -> Iterator[None]:
    """Route every file cnncost writes (cnncost.io.write_atomic, also where a module imported
    it by name) and everything the CLI prints under CliRunner to tests/captured.py."""
    from typer.testing import CliRunner

    import cnncost.io

    write, invoke = cnncost.io.write_atomic, CliRunner.invoke

    def write_atomic(path: Path | str, data: str | bytes, replace_input: bool = False) -> None:
        write(path, data, replace_input)
        captured.note(str(path), data)

    def run(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = invoke(self, *args, **kwargs)
        with contextlib.suppress(ValueError):  # no stdout kept apart
            captured.note("stdout", result.stdout)
        return result

    with pytest.MonkeyPatch.context() as mp:
        for module in [m for name, m in sys.modules.items() if name.startswith("cnncost")]:
            if getattr(module, "write_atomic", None) is write:
                mp.setattr(module, "write_atomic", write_atomic)
        mp.setattr(CliRunner, "invoke", run)
        # The click group typer makes of an app, made once per app for the session: typer's
        # CliRunner makes it again at every invoke (every command's parameters read from its
        # function's signature: ~40 CPU-ms, most of what a test's CLI call costs).
        import typer.main
        import typer.testing

        made: dict[int, tuple[Any, Any]] = {}
        make = typer.main.get_command

        def command_of(app: Any) -> Any:
            if made.get(id(app), (None,))[0] is not app:
                made[id(app)] = (app, make(app))
            return made[id(app)][1]

        mp.setattr(typer.testing, "_get_command", command_of, raising=False)
        yield


@pytest.fixture(autouse=True)
def documents_follow_their_schemas(_capture_documents: None) -> Iterator[None]:
    """Every JSON document a test makes cnncost write validates against its kind's schema
    (cnncost.documents; `cnncost schema KIND`)."""
    captured.problems()  # forget what came before this test
    yield
    bad = captured.problems()
    assert not bad, "a document cnncost wrote does not follow its schema:\n" + "\n".join(bad)


@pytest.fixture(scope="session")
def ipython() -> Any:
    """IPython's test shell (what Jupyter's kernel runs), started once for the session; skip
    without IPython."""
    pytest.importorskip("IPython")
    from IPython.testing import globalipapp

    return globalipapp.start_ipython() or globalipapp.get_ipython()

"""Shared fixtures: repo paths, a CLI runner, and the golden-file update flag."""

from __future__ import annotations

import os
from pathlib import Path

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

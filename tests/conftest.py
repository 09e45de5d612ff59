"""Shared fixtures: repo paths, a CLI runner, and the golden-file update flag."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


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

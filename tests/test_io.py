"""cnncost.io: the one atomic writer and the one cache-directory rule."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cnncost.errors import UsageError
from cnncost.io import cache_dir, write_atomic


def test_write_atomic_writes_exact_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.csv"
    write_atomic(target, "a,b\r\n1,2\n")  # no newline translation: the bytes as given
    assert target.read_bytes() == b"a,b\r\n1,2\n"
    assert [p.name for p in target.parent.iterdir()] == ["r.csv"]  # no temp file left


def test_write_atomic_leaves_the_old_file_on_failure(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(UsageError, match=r"r\.json: cannot write: disk full"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_write_atomic_writes_bytes(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    write_atomic(target, b"\x89PNG\r\n")
    assert target.read_bytes() == b"\x89PNG\r\n"


def test_write_atomic_gives_a_new_file_the_usual_permissions(tmp_path: Path) -> None:
    # A temporary file is made 0600; the file in place must read like one open() made:
    # 0666 less the umask (set here to 022, so 0644), or the old file's mode when replacing.
    old_umask = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        write_atomic(new, "x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        write_atomic(kept, "x")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


def test_cache_dir_honours_an_absolute_xdg_cache_home(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "cnncost"


@pytest.mark.parametrize("value", [None, "", "relative/cache"], ids=["unset", "empty", "relative"])
def test_cache_dir_falls_back_to_home_cache(value: str | None, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The XDG Base Directory rule: an unset, empty or relative XDG_CACHE_HOME means ~/.cache.
    if value is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", value)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "cnncost"


def test_every_cache_lives_in_the_one_cache_dir(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.catalog import ListCache
    from cnncost.measure.roofline import cache_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path().parent == ListCache().path.parent == tmp_path / "cnncost"


def test_the_suite_keeps_out_of_the_users_home() -> None:
    # tests/conftest.py points HOME and every cache at the session's temporary folder before
    # anything is collected, and fails the run if anything lands in that HOME.
    import conftest

    real = conftest.REAL_HOME
    assert not Path.home().is_relative_to(real)
    assert not cache_dir().is_relative_to(real)
    for variable in conftest.CACHE_VARIABLES:
        assert not Path(os.environ[variable]).is_relative_to(real), variable
    matplotlib = pytest.importorskip("matplotlib")
    assert not Path(matplotlib.get_configdir()).is_relative_to(real)
    assert not Path(matplotlib.get_cachedir()).is_relative_to(real)
    import torch.hub

    assert not Path(torch.hub.get_dir()).is_relative_to(real)

"""cnncost.io: the one atomic writer (regular files replaced atomically, FIFOs and devices
written in place, nothing left by a killed run), safe file names, and the one cache-directory
rule."""

from __future__ import annotations

import os
import stat
import threading
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


# --------------------------------------------------------------------------- not a file


def _reader(path: Path, got: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as fh:  # blocks until the writer opens the FIFO
            got.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_a_fifo_is_written_in_place_for_its_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    thread = _reader(fifo, got)
    write_atomic(fifo, "a,b\n1,2\n")
    thread.join(10)
    assert got == [b"a,b\n1,2\n"]  # the reader has the data
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # and the FIFO is still one, not a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def _null_device(tmp_path: Path) -> Path:
    """A character device to write to: a null device made here as root (never /dev/null
    itself, which a regression would replace), else /dev/null (which a user cannot replace)."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # Linux's null device is 1,3
    except OSError as exc:
        pytest.skip(f"cannot make a device node here ({exc.strerror})")
    return node


@pytest.mark.parametrize("through_a_link", [False, True], ids=["device", "symlink"])
def test_a_character_device_is_written_in_place(tmp_path: Path, through_a_link: bool) -> None:
    device = _null_device(tmp_path)
    before = device.stat()
    path = device
    if through_a_link:
        path = tmp_path / "out.txt"
        path.symlink_to(device)
    write_atomic(path, "data")
    after = device.stat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)  # not replaced


def test_a_full_device_is_one_line() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with pytest.raises(UsageError, match=r"^/dev/full: cannot write: No space left on device$"):
        write_atomic("/dev/full", "x")


def test_a_socket_or_a_block_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import tempfile

    from cnncost import io

    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket's path is at most 107 bytes
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(folder / "s"))
        with pytest.raises(UsageError, match=r"s: is a socket, not a file"):
            write_atomic(folder / "s", "x")
        sock.close()
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    # A block device (a disk) is never written, in place or not: its stat says so first.
    disk = os.stat_result((stat.S_IFBLK | 0o660, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    monkeypatch.setattr(io, "_stat_or_none", lambda path: disk)
    with pytest.raises(UsageError, match=r"/dev/sdz: is a block device \(a disk\), not a file"):
        write_atomic("/dev/sdz", "x")


def test_a_name_too_long_is_one_line_and_a_long_one_is_written(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"a{300}: cannot write: File name too long$"):
        write_atomic(tmp_path / ("a" * 300), "x")
    # 255 bytes is a name the file system takes: its temporary name must fit too
    longest = tmp_path / ("b" * 250 + ".json")
    write_atomic(longest, "x")
    assert longest.read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]


# --------------------------------------------------------------------------- killed runs

_KILLED = """
import os, sys, time
from cnncost import io
named = sys.argv[2] == "named"
if named:
    io._open_unnamed = lambda folder: None  # a file system without O_TMPFILE
real = io._write_all
def stall(fd, data):
    real(fd, data[:5])
    open(sys.argv[3], "w").close()  # half written: the parent kills us now
    time.sleep(60)
io._write_all = stall
io.write_atomic(sys.argv[1], "0123456789")
"""


def _kill_while_writing(target: Path, how: str) -> None:
    """A process killed with SIGKILL halfway through write_atomic(target)."""
    import signal
    import subprocess
    import sys
    import time

    marker = target.parent.parent / f"{how}.half"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(target), how, str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the writer never got halfway"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_run_killed_while_writing_leaves_nothing_where_the_system_allows(
        tmp_path: Path) -> None:
    from cnncost import io

    folder = tmp_path / "reports"
    folder.mkdir()
    if io._open_unnamed(folder) is None:
        pytest.skip("no O_TMPFILE on this file system: see the named case")
    (folder / "r.json").write_text("old")
    _kill_while_writing(folder / "r.json", "unnamed")
    assert sorted(p.name for p in folder.iterdir()) == ["r.json"]  # no temporary to see
    assert (folder / "r.json").read_text() == "old"


def test_a_killed_runs_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "r.json").write_text("old")
    _kill_while_writing(folder / "r.json", "named")
    left = [p.name for p in folder.iterdir() if p.name != "r.json"]
    assert len(left) == 1 and left[0].startswith(".r.json.") and left[0].endswith(
        ".cnncost-tmp"), left  # hidden, and saying it is a cnncost temporary
    (folder / "mine.cnncost-tmp").write_text("a user's file: not ours by its name")
    write_atomic(folder / "other.md", "new")  # any later write into the folder
    assert sorted(p.name for p in folder.iterdir()) == ["mine.cnncost-tmp", "other.md",
                                                        "r.json"]
    assert (folder / "r.json").read_text() == "old"


def test_a_live_or_foreign_runs_temporary_is_kept(tmp_path: Path) -> None:
    from cnncost import io

    mine = io._temp_name(tmp_path / "r.json")  # this process's: alive
    other_host = tmp_path / f".r.json.1.elsewhere.0123abcd{io._TEMP_SUFFIX}"
    for p in (mine, other_host):
        p.write_text("being written")
    write_atomic(tmp_path / "x.txt", "x")
    assert mine.exists() and other_host.exists()


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(("text", "name"), [
    ("resnet50.small-filter-chain.layer1.0.conv2", "resnet50.small-filter-chain.layer1.0.conv2"),
    ("../../etc/x", "_.._etc_x"),      # "/" is no separator any more; no leading dot
    ("/abs/x", "_abs_x"),
    ("..", "_"),                        # nothing left but dots: a placeholder
    ("", "_"),
    (".hidden", "hidden"),
    ("a b\\c:d\x00e\u00e9", "a_b_c_d_e_"),
], ids=["plain", "parent", "absolute", "dots", "empty", "hidden", "odd"])
def test_file_name_is_one_safe_name(text: str, name: str) -> None:
    from cnncost.io import file_name

    assert file_name(text, ".yaml") == name + ".yaml"
    assert len(file_name("x" * 1000, ".yaml")) == 200


def test_inside_keeps_a_name_in_its_folder(tmp_path: Path) -> None:
    from cnncost.io import inside

    assert inside(tmp_path, "a.yaml") == tmp_path / "a.yaml"
    for bad in ["../a.yaml", "/etc/passwd", "..", "a/b"]:
        with pytest.raises(UsageError, match="not one file name"):
            inside(tmp_path, bad)
    (tmp_path / "out.yaml").symlink_to(tmp_path.parent / "elsewhere.yaml")
    with pytest.raises(UsageError, match="is a symlink out of"):
        inside(tmp_path, "out.yaml")
    (tmp_path / "in.yaml").symlink_to(tmp_path / "a.yaml")  # a link within: written through
    assert inside(tmp_path, "in.yaml") == tmp_path / "in.yaml"

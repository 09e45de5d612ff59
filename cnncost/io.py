"""Files: the one bounded reader, the one atomic writer and the one cache-directory rule.

- ``read_text`` / ``read_bytes``: every file cnncost reads (specs, reports, caches) is opened
  without blocking, refused unless it is a regular file (a FIFO, a device such as /dev/zero,
  a folder), and read up to a size limit: at most ``limit + 1`` bytes are ever read, whatever
  the file claims to hold, so a 12 GiB sparse file costs nothing.
- ``write_atomic``: every file cnncost writes (``--output``, reports, pages, images, caches)
  goes through a temporary file in the same folder and a rename, so a reader never sees
  half a file and a failed write leaves the old file as it was. The new file gets the
  permissions ``open(path, "w")`` would give (the old file's, or 0666 minus the umask). A
  symlink is written through, as the shell's ``>`` does: its target is replaced, the link
  stays. Inside :func:`guard_inputs` (every CLI command) a file read as an input of the
  command (a spec, a report, a factory's module) is never overwritten: ``--output`` onto the
  spec is refused, unless the caller says replacing it is the point (``check --update``).
- ``cache_dir``: ``$XDG_CACHE_HOME/cnncost`` when ``XDG_CACHE_HOME`` is set to an absolute
  path (the XDG Base Directory rule: an empty or relative value is ignored), else
  ``~/.cache/cnncost``. It holds ``roofline.json`` (bench), ``list-totals.json`` (list) and
  ``calibration/`` (calibrate); deleting it only costs time.
- ``config_file``: the user's own ``$XDG_CONFIG_HOME/cnncost/config.toml`` (else
  ``~/.config/cnncost/config.toml``); ``check-factories = ["pkg.models:*"]`` there lets
  ``check`` replay reports of those module factories.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from cnncost.errors import UsageError

# (st_dev, st_ino) -> "spec x.yaml": the files read as inputs inside guard_inputs().
_INPUTS: contextvars.ContextVar[dict[tuple[int, int], str] | None] = contextvars.ContextVar(
    "cnncost_inputs", default=None)


@contextlib.contextmanager
def guard_inputs() -> Iterator[None]:
    """While inside, files read as inputs are remembered and write_atomic refuses them."""
    token = _INPUTS.set({})
    try:
        yield
    finally:
        _INPUTS.reset(token)


def note_input(path: Path | str, what: str, st: os.stat_result | None = None) -> None:
    """Remember ``path`` as an input of the running command (inside guard_inputs only)."""
    inputs = _INPUTS.get()
    if inputs is None:
        return
    with contextlib.suppress(OSError):
        st = st or os.stat(path)
        inputs[(st.st_dev, st.st_ino)] = f"{what} {path}"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnncost`` (an absolute XDG_CACHE_HOME only), else ``~/.cache/cnncost``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "cnncost"


def config_file() -> Path:
    """The user's own configuration: ``$XDG_CONFIG_HOME/cnncost/config.toml`` (an absolute
    XDG_CONFIG_HOME only), else ``~/.config/cnncost/config.toml``. Never a file beside the
    data a command reads: what a checkout holds cannot configure what runs on it."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "cnncost" / "config.toml"


def _mode_for(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would give: the old file's, or 0666 - umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class ReadError(UsageError):
    """A file that cannot be read as an input: missing, not a regular file, too large, not
    UTF-8. ``reason`` is the message without the path (callers may relocate it)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _size(n: int) -> str:
    for factor, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} B"


def not_a_file(path: Path | str) -> str | None:
    """Why ``path`` is no regular file to read ("no such file", "is a FIFO (named pipe), not
    a regular file", ...), None where it is one (symlinks followed; nothing opened, so a
    FIFO does not block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return None if stat.S_ISREG(st.st_mode) else f"is {_kind(st.st_mode)}, not a regular file"


def not_a_folder(path: Path | str) -> str | None:
    """Why ``path`` is no folder to write files into ("is a file", "is a FIFO (named pipe)",
    ...), None where it is one or nothing is there yet (symlinks followed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be used: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return None
    return "is a file" if stat.S_ISREG(st.st_mode) else f"is {_kind(st.st_mode)}"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def read_bytes(path: Path | str, limit: int, what: str = "file", track: bool = True) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` of
    them; anything else is a ReadError naming the file, raised before reading more.

    ``track``: an input of the command (not a cache), which write_atomic will not replace."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ReadError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise ReadError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(path, f"is {_kind(st.st_mode)}, not a regular file")
        if track:
            note_input(path, what, st)
        if st.st_size > limit:
            raise ReadError(path, f"{what} is larger than {limit // 1024} KiB "
                                  f"({_size(st.st_size)})")
        chunks: list[bytes] = []
        left = limit + 1  # one byte more: a file that grew (or lied about its size) is refused
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ReadError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if left <= 0:
        raise ReadError(path, f"{what} is larger than {limit // 1024} KiB")
    return b"".join(chunks)


def read_head(path: Path | str, size: int) -> bytes:
    """The first ``size`` bytes of the regular file at ``path`` (fewer if it is shorter),
    whatever its length; a ReadError as read_bytes gives one. Not an input of the command."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ReadError(path, "is not a regular file")
        return os.read(fd, size)
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(path: Path | str, limit: int, what: str = "file", track: bool = True) -> str:
    """``read_bytes`` decoded as UTF-8 (a leading BOM dropped); bad bytes are a ReadError
    naming the line."""
    data = read_bytes(path, limit, what, track)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ReadError(path, f"cannot read {what}: line {line} is not UTF-8 text (byte "
                        f"0x{data[exc.start]:02x})") from None


def write_atomic(path: Path | str, data: str | bytes, replace_input: bool = False) -> None:
    """Write text (UTF-8, newlines as given) or bytes to ``path`` via a temporary file in the
    same folder and a rename: readers see the old file or the new one, never half of one.

    A symlink is written through (its target replaced). Something that is not a file (a FIFO,
    ``/dev/null``, a terminal) is written in place, as the shell's ``>`` would, never replaced
    by a file; a block device or a socket is refused. A path that cannot be written (a
    folder, a parent that is a file, a name too long, no permission, a full disk) or that is
    an input of the command (see guard_inputs; ``replace_input`` allows it) is a UsageError
    naming it, and leaves nothing behind.
    """
    path = Path(path)
    # backslashreplace: a lone surrogate (a spec's "\ud800") is written as that escape
    payload = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    target = path
    try:
        st = _stat_or_none(path)
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            _write_in_place(path, payload, st)
            return
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        _refuse_input(path, target, replace_input)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        _replace(target, payload)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {_why(exc, target)}") from None


def file_name(text: str, suffix: str = "", limit: int = 200) -> str:
    """``text`` (a spec's name, a layer's path) as one safe file name ending in ``suffix``:
    every character but ASCII letters, digits, ``_``, ``-`` and ``.`` made ``_``, no leading
    dot (no hidden file, no ``..``), at most ``limit`` characters: it names a file in the
    folder it is joined to, never one elsewhere."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip(".") or "_"
    return name[:max(1, limit - len(suffix))] + suffix


def inside(folder: Path | str, name: str) -> Path:
    """``folder / name`` where ``name`` is one file name (:func:`file_name`) that stays in
    ``folder``: a separator, ``..``, or a symlink already there that leads out of ``folder``
    is a UsageError."""
    folder = Path(folder)
    if name in ("", ".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise UsageError(f"{folder}: refusing to write {name!r}, which is not one file name "
                         "in the folder")
    path = folder / name
    if path.is_symlink():
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
        if root not in real.parents:
            raise UsageError(f"{path}: is a symlink out of {folder} (to {real}); refusing to "
                             "write through it")
    return path


def _stat_or_none(path: Path) -> os.stat_result | None:
    """``path``'s stat (links followed), None where nothing is there yet."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_in_place(path: Path, payload: bytes, st: os.stat_result) -> None:
    """Write into a FIFO or a character device as it is (a FIFO waits for its reader, as
    ``>`` does); a block device (a disk) or a socket is no output file."""
    if stat.S_ISBLK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        kind = "a block device (a disk)" if stat.S_ISBLK(st.st_mode) else "a socket"
        raise UsageError(f"{path}: is {kind}, not a file; cnncost writes files (or a FIFO, "
                         "or a character device such as /dev/null)")
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        _write_all(fd, payload)
    finally:
        os.close(fd)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


# Temporary files, and what a killed run leaves. Where the system can (Linux's O_TMPFILE,
# on the usual local file systems), the new file is written without a name, so a run killed
# while writing (kill -9, a power cut) leaves nothing in the folder; it gets a name just
# before the rename. Elsewhere, and in the instant between naming and renaming, it is a
# hidden file named ".NAME.PID.HOST.XXXXXXXX.cnncost-tmp"; the next write into that folder
# removes such files whose process (on this host) is gone. Nothing else is ever removed.
_TEMP_SUFFIX = ".cnncost-tmp"
_TEMP = re.compile(r"\..*\.(\d+)\.([A-Za-z0-9-]*)\.[0-9a-f]{8}" + re.escape(_TEMP_SUFFIX))
_NAME_MAX = 255  # bytes: the usual file systems' longest file name


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def _temp_name(target: Path) -> Path:
    """A hidden name in ``target``'s folder that says whose it is (and fits NAME_MAX)."""
    tail = f".{os.getpid()}.{_host()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
    room = _NAME_MAX - 1 - len(tail.encode())
    stem = target.name.encode()[:room].decode("utf-8", "ignore")
    return target.parent / f".{stem}{tail}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: someone else's, alive)
        return True
    return True


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files cnncost runs on this host left in ``folder`` when killed."""
    host = _host()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(_TEMP_SUFFIX):
                continue
            m = _TEMP.fullmatch(entry.name)
            if m and m[2] == host and int(m[1]) != os.getpid() and not _alive(int(m[1])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _open_unnamed(folder: Path) -> int | None:
    """A new file in ``folder`` with no name (O_TMPFILE), None where the system has none."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # a file system (or kernel) without it: a named temporary
        raise


def _name_unnamed(fd: int, name: Path) -> None:
    """Give the O_TMPFILE file ``fd`` a name: linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N,
    open(2)'s way (os.link calls plain link() unless given a directory fd)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _replace(target: Path, payload: bytes) -> None:
    """``payload`` into a new file in ``target``'s folder, renamed over ``target``."""
    folder, mode = target.parent, _mode_for(target)
    _remove_stale_temporaries(folder)
    tmp = _temp_name(target)
    fd = _open_unnamed(folder)
    named = fd is None
    if fd is None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            _write_all(fd, payload)
            os.fchmod(fd, mode)  # the file reads as any other, not 0600
            if not named:
                _name_unnamed(fd, tmp)
                named = True
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        if named:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def check_output(path: Path | str) -> None:
    """The UsageError write_atomic raises for an output ``path`` under a file (no folder to
    make) or that is an input of the command, raised before the work that makes the output
    (an export or a chart of seconds, say)."""
    path = Path(path)
    above = _file_above(path)
    if above is not None:
        raise UsageError(f"{path}: cannot write: {above} is a file, not a folder")
    _refuse_input(path, Path(os.path.realpath(path)) if path.is_symlink() else path, False)


def _refuse_input(path: Path, target: Path, replace_input: bool) -> None:
    inputs = _INPUTS.get()
    if not inputs or replace_input:
        return
    try:
        st = os.stat(target)
    except OSError:
        return
    what = inputs.get((st.st_dev, st.st_ino))
    if what is not None:
        raise UsageError(f"{path}: is the {what} this command reads; refusing to overwrite "
                         "an input (write the output elsewhere)")


def _why(exc: OSError, target: Path) -> str:
    """What an OSError means for a path, naming the culprit where the error does not."""
    above = _file_above(target)  # mkdir's "File exists" names no culprit: name it
    if above is not None:
        return f"{above} is a file, not a folder"
    return exc.strerror or str(exc)


def _file_above(path: Path) -> Path | None:
    """The nearest existing folder above ``path`` where it is no folder (a file: no folder
    can be made under it), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None

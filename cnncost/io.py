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
import os
import stat
import tempfile
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
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
            raise ReadError(path, f"is {kind}, not a regular file")
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

    A symlink is written through (its target replaced). A path that cannot be written (a
    folder, a parent that is a file, no permission, a full disk) or that is an input of the
    command (see guard_inputs; ``replace_input`` allows it) is a UsageError naming it, and
    leaves nothing behind.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    _refuse_input(path, target, replace_input)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(21, "is a folder")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        if isinstance(data, str):
            # backslashreplace: a lone surrogate (a spec's "\ud800") is written as that escape
            with os.fdopen(fd, "w", encoding="utf-8", newline="", errors="backslashreplace") as fh:
                fh.write(data)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        os.chmod(tmp, _mode_for(target))  # mkstemp makes 0600; the file reads as any other
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write: {_why(exc, target)}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


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
    for parent in target.parents:  # mkdir's "File exists" names no culprit: name it
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return exc.strerror or str(exc)

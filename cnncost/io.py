"""Files: the one bounded reader, the one atomic writer and the one cache-directory rule.

- ``read_text`` / ``read_bytes``: every file cnncost reads (specs, reports, caches) is opened
  without blocking, refused unless it is a regular file (a FIFO, a device such as /dev/zero,
  a folder), and read up to a size limit: at most ``limit + 1`` bytes are ever read, whatever
  the file claims to hold, so a 12 GiB sparse file costs nothing.
- ``write_atomic``: every file cnncost writes (``--output``, reports, pages, images, caches)
  goes through a temporary file in the same folder and a rename, so a reader never sees
  half a file and a failed write leaves the old file as it was.
- ``cache_dir``: ``$XDG_CACHE_HOME/cnncost`` when ``XDG_CACHE_HOME`` is set to an absolute
  path (the XDG Base Directory rule: an empty or relative value is ignored), else
  ``~/.cache/cnncost``. It holds ``roofline.json`` (bench) and ``list-totals.json`` (list);
  deleting it only costs time.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from cnncost.errors import UsageError


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cnncost`` (an absolute XDG_CACHE_HOME only), else ``~/.cache/cnncost``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "cnncost"


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


def read_bytes(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` of
    them; anything else is a ReadError naming the file, raised before reading more."""
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


def read_text(path: Path | str, limit: int, what: str = "file") -> str:
    """``read_bytes`` decoded as UTF-8 (a leading BOM dropped); bad bytes are a ReadError
    naming the line."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ReadError(path, f"cannot read {what}: line {line} is not UTF-8 text (byte "
                        f"0x{data[exc.start]:02x})") from None


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8, newlines as given) or bytes to ``path`` via a temporary file in the
    same folder and a rename: readers see the old file or the new one, never half of one.

    A path that cannot be written (a parent that is a file, no permission, a full disk) is a
    UsageError naming it, and leaves nothing behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        if isinstance(data, str):
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(data)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; the file should read as any other
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        why = exc.strerror or str(exc)
        for parent in path.parents:  # mkdir's "File exists" names no culprit: name it
            if parent.exists():
                if not parent.is_dir():
                    why = f"{parent} is a file, not a folder"
                break
        raise UsageError(f"{path}: cannot write: {why}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise

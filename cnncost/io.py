"""Files: the one atomic writer and the one cache-directory rule.

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

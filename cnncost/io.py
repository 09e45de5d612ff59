"""Writing files: one atomic writer for every output (tables, reports, pages, images)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cnncost.errors import UsageError


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to ``path`` via a temporary file in the same folder and a
    rename: readers see the old file or the new one, never half of one.

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

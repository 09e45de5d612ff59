"""The bundled specs' catalogue: what ``cnncost list`` shows (each spec's description and
totals), with the totals cached per spec text and version of the code.

What belongs here: the ``list`` command's work (``list_specs``) and its cache
(``ListCache``, in the cache folder of cnncost.io). Its table is ``cnncost.render.catalog``'s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncost.count.engines import count_loaded
from cnncost.errors import CnnCostError
from cnncost.io import cache_dir, read_text, write_atomic


@dataclass(frozen=True)
class Listed:
    """One bundled spec in ``list``: its description and totals, or why it does not load."""

    name: str
    description: str = ""
    params: int | None = None
    macs: int | None = None
    error: str | None = None


def list_specs(totals: bool = True) -> list[Listed]:
    """Every bundled spec with its description (and params, MACs at its default input)."""
    from cnncost.sources import bundled_specs

    cache = ListCache()
    out = []
    for name, path in bundled_specs().items():
        try:
            description, params, macs = cache.get(path, totals)
        except CnnCostError as exc:
            out.append(Listed(name, error=str(exc)))
            continue
        out.append(Listed(name, description, params, macs))
    cache.save()
    return out


def code_digest(root: Path | None = None) -> str:
    """A hash of cnncost's sources (every module found by walking the package folder, or
    ``root``) and of the torch version: what a count depends on besides the spec."""
    import contextlib
    import importlib.metadata

    root = root or Path(__file__).parent
    code = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        code.update(path.relative_to(root).as_posix().encode() + b"\0")
        code.update(path.read_bytes())
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        code.update(importlib.metadata.version("torch").encode())
    return code.hexdigest()


class ListCache:
    """`list`'s totals in ``list-totals.json`` in the cache folder (cnncost.io.cache_dir), kept
    per spec text and valid for one version of the code (an edit of either recounts)."""

    def __init__(self) -> None:
        self.path = cache_dir() / "list-totals.json"
        self.code = code_digest()
        self.entries: dict[str, Any] = {}
        self.dirty = False
        try:  # a cache that cannot be read (missing, a FIFO, too large, not JSON) is rebuilt
            doc = json.loads(read_text(self.path, 4 << 20, "list cache", track=False))
        except (CnnCostError, ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and doc.get("code") == self.code and isinstance(
                doc.get("specs"), dict):
            self.entries = {k: v for k, v in doc["specs"].items() if _valid_listed(v)}

    def get(self, path: Path, totals: bool) -> tuple[str, int | None, int | None]:
        """(description, params, macs) of a spec file; counts only when ``totals``."""
        from cnncost.io import read_bytes
        from cnncost.spec import MAX_FILE_BYTES, load_spec, spec_files

        # A variant's meaning is its text and that of the specs it extends.
        text = b"\0".join(read_bytes(f, MAX_FILE_BYTES, "spec") for f in spec_files(path))
        key = hashlib.sha256(text).hexdigest()
        hit = self.entries.get(key)
        if hit is not None and (not totals or hit.get("params") is not None):
            return hit["description"], hit.get("params"), hit.get("macs")
        spec = load_spec(path)
        params = macs = None
        if totals:
            t = count_loaded(spec).totals
            params, macs = t.params, t.macs
        self.entries[key] = {"description": spec.description, "params": params, "macs": macs}
        self.dirty = True
        return spec.description, params, macs

    def save(self) -> None:
        """Write the cache (best effort: an unwritable cache only costs time)."""
        import contextlib

        if not self.dirty:
            return
        with contextlib.suppress(OSError, CnnCostError):
            write_atomic(self.path, json.dumps({"code": self.code, "specs": self.entries}))


def _valid_listed(entry: Any) -> bool:
    """A cached ``list`` entry: a description and, where counted, both counts, whole and
    >= 0 (an entry is written with both or neither: one without the other is not ours)."""
    def count(x: Any) -> bool:
        return type(x) is int and 0 <= x < 10**30

    if not isinstance(entry, dict) or not isinstance(entry.get("description"), str):
        return False
    params, macs = entry.get("params"), entry.get("macs")
    return (params is None and macs is None) or (count(params) and count(macs))

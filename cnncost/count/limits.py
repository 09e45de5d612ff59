"""How much more memory this process may use: the tightest of the limits that apply to it.

- the machine's ``MemAvailable`` (/proc/meminfo);
- the process's own memory cgroup and every cgroup above it (read from /proc/self/cgroup and
  the cgroup mounts in /proc/self/mountinfo, else /sys/fs/cgroup and /sys/fs/cgroup/memory;
  v2 ``memory.max`` - ``memory.current``, v1 ``memory.limit_in_bytes`` -
  ``memory.usage_in_bytes``, page cache that can be dropped (``inactive_file``) not counted
  as used) - not the root cgroup's, which is the machine's;
- ``ulimit -v`` (RLIMIT_AS) minus the address space in use (VmSize), and ``ulimit -d``
  (RLIMIT_DATA) minus the data segment (VmData).

No torch; every figure is read at call time. ``root`` re-roots the absolute paths (tests).
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from pathlib import Path

UNLIMITED_V1 = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2^63 - 1


@dataclass(frozen=True)
class Free:
    """Bytes this process may still allocate, and the limit that says so."""

    bytes: int
    limit: str  # "RAM", "cgroup /sys/fs/cgroup/x (memory.max)", "ulimit -v", ...


def free_bytes(root: Path = Path("/")) -> Free | None:
    """The tightest limit on new memory for this process now, or None when none is known."""
    found = [f for f in (_meminfo(root), *_cgroups(root), *_rlimits(root)) if f is not None]
    return min(found, key=lambda f: f.bytes) if found else None


def _read(path: Path) -> str | None:
    try:
        with path.open(encoding="ascii", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError:
        return None


def _fields(text: str | None) -> dict[str, int]:
    """``key value`` or ``Key: value kB`` lines -> {key: value in bytes for kB values}."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            scale = 1024 if len(parts) > 2 and parts[2] == "kB" else 1
            out[parts[0]] = int(parts[1]) * scale
    return out


def _meminfo(root: Path) -> Free | None:
    available = _fields(_read(root / "proc/meminfo")).get("MemAvailable")
    return None if available is None else Free(available, "RAM")


# --------------------------------------------------------------------------- cgroups


def _cgroups(root: Path) -> list[Free]:
    """One figure per limited cgroup from the process's own up to its hierarchy's root."""
    found = []
    for folder, version in _own_cgroup_dirs(root):
        free = _cgroup_free(folder, version)
        if free is not None:
            found.append(free)
    return found


def _own_cgroup_dirs(root: Path) -> list[tuple[Path, int]]:
    """The folders of this process's memory cgroup and of its ancestors (v1 and v2)."""
    mounts = _cgroup_mounts(root)
    dirs = []
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        version = 2 if parts[0] == "0" and parts[1] == "" else 1
        if version == 1 and "memory" not in parts[1].split(","):
            continue
        mount = mounts.get(version)
        if mount is None:
            continue
        where, mount_root = mount
        try:  # inside a cgroup namespace the mount's root is the process's own cgroup
            rel = Path(parts[2]).relative_to(mount_root)
        except ValueError:
            continue
        folder = where / rel
        while True:
            dirs.append((folder, version))
            if folder == where:
                break
            folder = folder.parent
    return dirs


def _cgroup_mounts(root: Path) -> dict[int, tuple[Path, str]]:
    """{1: (mount point, its root) of the v1 memory hierarchy, 2: that of cgroup2}."""
    mounts: dict[int, tuple[Path, str]] = {}
    for line in (_read(root / "proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point = root / fields[4].lstrip("/")
        if tail[0] == "cgroup2":
            mounts.setdefault(2, (point, fields[3]))
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.setdefault(1, (point, fields[3]))
    # mountinfo unreadable or silent: where systemd and container runtimes mount them
    mounts.setdefault(2, (root / "sys/fs/cgroup", "/"))
    mounts.setdefault(1, (root / "sys/fs/cgroup/memory", "/"))
    return mounts


def _cgroup_free(folder: Path, version: int) -> Free | None:
    if version == 2:
        limit_text, used_text, stat_key = "memory.max", "memory.current", "inactive_file"
    else:
        limit_text, used_text, stat_key = ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                           "total_inactive_file")
    limit, used = _read(folder / limit_text), _read(folder / used_text)
    if limit is None or used is None or limit.strip() == "max":
        return None
    with contextlib.suppress(ValueError):
        cap, now = int(limit), int(used)
        if cap >= UNLIMITED_V1:
            return None
        reclaimable = _fields(_read(folder / "memory.stat")).get(stat_key, 0)
        return Free(max(0, cap - max(0, now - reclaimable)), f"cgroup {folder} ({limit_text})")
    return None


# --------------------------------------------------------------------------- ulimit


def _rlimits(root: Path) -> list[Free]:
    status = _fields(_read(root / "proc/self/status"))
    found = []
    for name, flag, used in ((resource.RLIMIT_AS, "ulimit -v", "VmSize"),
                             (getattr(resource, "RLIMIT_DATA", None), "ulimit -d", "VmData")):
        if name is None or used not in status:
            continue
        soft, _hard = resource.getrlimit(name)
        if soft != resource.RLIM_INFINITY and soft >= 0:
            found.append(Free(max(0, soft - status[used]), flag))
    return found

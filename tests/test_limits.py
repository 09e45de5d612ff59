"""The memory limits bench's guard (and the real-tensor counting guard) compare with: free
RAM, the process's own cgroup and its ancestors, ulimit -v / -d; fake /proc and /sys trees,
a mocked getrlimit and one real ulimit -v in a subprocess."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clirun import one_line_error as assert_one_line_error
from clirun import run
from test_hostile import TINY

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    return spec


MiB = 1 << 20


def _fake_system(root: Path, cgroup: str, mountinfo: str, files: dict[str, str],
                 status: str = "VmSize:\t 1048576 kB\nVmData:\t 524288 kB\n") -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/meminfo").write_text(f"MemTotal: 33554432 kB\nMemAvailable: {10 << 20} kB\n")
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    (root / "proc/self/status").write_text(status)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNT = "35 31 0:32 {root} /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"


def test_the_process_own_cgroup_v2_and_its_ancestors_limit(tmp_path: Path) -> None:
    from cnncost.count.limits import free_bytes

    root = _fake_system(tmp_path, "0::/a/b\n", V2_MOUNT, {
        "sys/fs/cgroup/a/b/memory.max": "max\n", "sys/fs/cgroup/a/b/memory.current": "5\n",
        "sys/fs/cgroup/a/memory.max": f"{1000 * MiB}\n",
        "sys/fs/cgroup/a/memory.current": f"{400 * MiB}\n",
        "sys/fs/cgroup/a/memory.stat": f"anon 1\ninactive_file {100 * MiB}\n",
        "sys/fs/cgroup/memory.current": f"{9000 * MiB}\n",  # the root: no memory.max
    })
    found = free_bytes(root)
    # a's limit 1000 MiB - (400 MiB used - 100 MiB of droppable page cache) = 700 MiB, less
    # than the 10 GiB MemAvailable and b's "max"
    assert found is not None and found.bytes == 700 * MiB
    assert found.limit == f"cgroup {root}/sys/fs/cgroup/a (memory.max)"


def test_a_cgroup_v1_namespace_and_no_limit(tmp_path: Path) -> None:
    from cnncost.count.limits import free_bytes

    root = _fake_system(tmp_path / "ns", "4:memory:/docker/x\n3:cpu:/docker/x\n",
                        V1_MOUNT.format(root="/docker/x"), {
                            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{512 * MiB}\n",
                            "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{100 * MiB}\n"})
    found = free_bytes(root)
    assert found is not None and found.bytes == 412 * MiB  # 512 MiB - 100 MiB used
    assert found.limit == f"cgroup {root}/sys/fs/cgroup/memory (memory.limit_in_bytes)"
    root = _fake_system(tmp_path / "free", "4:memory:/\n", V1_MOUNT.format(root="/"), {
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{100 * MiB}\n"})
    found = free_bytes(root)
    assert found is not None and (found.bytes, found.limit) == (10 << 30, "RAM")


def test_a_cgroup_without_mountinfo_is_found_where_it_is_mounted(tmp_path: Path) -> None:
    from cnncost.count.limits import free_bytes

    root = _fake_system(tmp_path, "4:memory:/job/7\n0::/\n", "", {
        "sys/fs/cgroup/memory/job/7/memory.limit_in_bytes": f"{256 * MiB}\n",
        "sys/fs/cgroup/memory/job/7/memory.usage_in_bytes": f"{56 * MiB}\n"})
    (root / "proc/self/mountinfo").unlink()
    found = free_bytes(root)
    # 256 MiB - 56 MiB used, read under /sys/fs/cgroup/memory/<the process's own path>
    assert found is not None and found.bytes == 200 * MiB
    assert found.limit == f"cgroup {root}/sys/fs/cgroup/memory/job/7 (memory.limit_in_bytes)"


def test_ulimit_v_and_d_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from cnncost.count import limits

    root = _fake_system(tmp_path, "", "", {})
    caps = {resource.RLIMIT_AS: 3 << 30, resource.RLIMIT_DATA: 4 << 30}
    monkeypatch.setattr(limits.resource, "getrlimit",
                        lambda which: (caps.get(which, resource.RLIM_INFINITY),
                                       resource.RLIM_INFINITY))
    # 3 GiB of address space - 1 GiB in use (VmSize) = 2 GiB, below 4 GiB - 0.5 GiB of data
    assert limits.free_bytes(root) == limits.Free(2 << 30, "ulimit -v")


def test_a_real_ulimit_v_is_seen() -> None:
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, resource.RLIM_INFINITY))

    out = subprocess.run(
        [sys.executable, "-c", "from cnncost.count.limits import free_bytes; f = free_bytes(); "
         "print(f.limit, f.bytes)"], capture_output=True, text=True, preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=True).stdout.split()
    assert out[:3] == ["ulimit", "-v", out[2]] and 0 < int(out[2]) < 2 << 30


def test_bench_refuses_a_batch_beyond_the_limit(tiny: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncost.count import limits

    monkeypatch.setattr(limits, "free_bytes", lambda root=None: limits.Free(100 * MiB,
                                                                           "ulimit -v"))
    # batch 1: a few hundred bytes of tensors and the runtime's 64 MiB fit in 100 MiB
    assert run("bench", tiny, "--batch", "1", "--max-time", "0.01", "--min-samples", "1",
               "--threads", "1")[0] == 0
    # 2^20 images of 1x4x4 floats: the input alone is 2^20 x 64 B = 64 MiB, plus the runtime
    code, out, err = run("bench", tiny, "--batch", str(1 << 20), "--threads", "1")
    assert_one_line_error(code, out, err, "needs about", "free (ulimit -v)")

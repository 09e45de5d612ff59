"""What this machine is, read without torch: the CPU's name, the thread count torch starts
with, the installed torch's version and the load. A calibration's cache key is made of these,
so a prediction finds its calibration without importing torch."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from cnncost.errors import UsageError


def cpu_name() -> str:
    """The CPU model ("model name" in /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def torch_version() -> str | None:
    """The installed torch's version (``torch.__version__``) without importing it; None
    where torch is not installed."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def default_threads() -> int:
    """The intra-op thread count torch starts with, without importing it: OMP_NUM_THREADS
    (else MKL_NUM_THREADS) when set to a positive number, at most the CPUs this process may
    run on (torch caps it there), else the physical cores among them (torch does not use the
    hyperthreads' second logical CPUs)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        text = os.environ.get(var, "").strip()
        if text.isdigit() and int(text) > 0:
            return min(int(text), usable_cpus())
    return _physical_cores() or os.cpu_count() or 1


def usable_cpus() -> int:
    """The logical CPUs this process may run on (its affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # (not Linux)
        return os.cpu_count() or 1


def check_threads(threads: int) -> int:
    """``--threads N`` checked before torch is asked for it: at least 1 and at most the logical
    CPUs this process may run on (more threads than CPUs wait on each other, and asking
    OpenMP for tens of thousands ends the process), else a UsageError."""
    cpus = usable_cpus()
    if not 1 <= threads <= cpus:
        raise UsageError(f"--threads {threads}: expected 1 to {cpus} (the CPUs this process "
                         "may run on)")
    return threads


def _physical_cores() -> int | None:
    """Distinct (package, core) pairs among the CPUs of this process's affinity (Linux)."""
    try:
        allowed = os.sched_getaffinity(0)
        cores = set()
        for cpu in allowed:
            topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topo / "physical_package_id").read_text().strip(),
                       (topo / "core_id").read_text().strip()))
        return len(cores) or None
    except (AttributeError, OSError):
        return None


def machine_key(device: str, name: str, dtype: str, threads: int) -> str:
    """What a measurement of this machine depends on: the device and its model, the dtype and
    (on a CPU) the thread count: ``cpu:NAME|float32|threads=2``, ``cuda:NAME|float16``."""
    if device == "cuda":
        return f"cuda:{name}|{dtype}"
    return f"cpu:{name}|{dtype}|threads={threads}"

"""The machine roofline: peak compute and memory bandwidth, measured once and cached.

A layer that performs F FLOPs and moves B bytes cannot run faster than
``max(F / peak_flops, B / bandwidth)`` seconds (Williams, Waterman & Patterson,
"Roofline", CACM 2009). Its arithmetic intensity I = F / B decides which roof binds:
below the ridge point ``peak_flops / bandwidth`` it is memory-bound, above it compute-bound.

- peak compute: the best of a few large square matmuls (2 n^3 FLOPs each);
- bandwidth: the best of a few large copies (each moves 2 x size bytes: one read, one write);
- both per device / dtype / threads, cached as JSON in ``roofline.json`` in the cache folder
  (``cnncost.io.cache_dir``); ``recalibrate=True`` measures again.

NB: bytes moved per layer = its inputs + weights (params and buffers) + outputs at the
dtype, each touched once. That is the compulsory traffic, a lower bound: a layer whose
tensors spill out of cache moves more, and one whose tensors stay in cache moves less
DRAM traffic than this (small batches on a CPU with a large L3), so the memory roof is
an idealisation, not a promise.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from cnncost.errors import CnnCostError
from cnncost.io import cache_dir, read_text, write_atomic
from cnncost.measure.machine import cpu_name, load_average, machine_key
from cnncost.measure.memory import free_memory
from cnncost.measure.timing import Progress
from cnncost.table import CostRow, CostTable

CACHE_SCHEMA = "cnncost.roofline/1"
CACHE_FILE = "roofline.json"
CACHE_LIMIT = 4 << 20  # a few hundred entries take ~0.1 MiB

_ELEMENT_SIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


class MeasurementError(CnnCostError):
    """A measurement came out impossible (zero time, a non-finite rate)."""


class Bound(str, Enum):
    """Which roof limits a layer."""

    COMPUTE = "compute"
    MEMORY = "memory"


# --------------------------------------------------------------------------- the machine


@dataclass(frozen=True)
class Roofline:
    """Peak compute (FLOP/s) and memory bandwidth (bytes/s) of one device/dtype/threads."""

    key: str
    device: str
    device_name: str
    dtype: str
    threads: int
    peak_flops: float
    bandwidth: float
    matmul_n: int
    copy_bytes: int
    torch_version: str
    measured_at: str
    load_avg: float | None = None  # 1-minute load average when measured (a busy machine)
    from_cache: bool = field(default=False, compare=False)

    @property
    def ridge(self) -> float:
        """The arithmetic intensity (FLOP/byte) where the two roofs meet."""
        return self.peak_flops / self.bandwidth

    def predict(self, flops: float, nbytes: float) -> float:
        """Roofline time in seconds: max(flops / peak, bytes / bandwidth)."""
        return max(flops / self.peak_flops, nbytes / self.bandwidth)

    def bound(self, flops: float, nbytes: float) -> Bound:
        """Compute-bound when flops / peak >= bytes / bandwidth, else memory-bound."""
        # Compared as times, not intensities, so a layer with 0 bytes cannot divide by 0.
        return Bound.COMPUTE if flops / self.peak_flops >= nbytes / self.bandwidth else (
            Bound.MEMORY)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["from_cache"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], from_cache: bool = False) -> Roofline:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "from_cache"}
        return cls(**kw, from_cache=from_cache)

    @property
    def valid(self) -> bool:
        """Every field of the right type, both roofs finite, positive and below any machine
        (a cache entry edited to a zero, negative, string or huge peak is not a roofline)."""
        texts = (self.key, self.device, self.device_name, self.dtype, self.torch_version,
                 self.measured_at)
        counts = (self.threads, self.matmul_n, self.copy_bytes)
        return (all(isinstance(t, str) for t in texts)
                and all(type(c) is int and 0 <= c < 1 << 62 for c in counts)
                and _within(self.peak_flops, MAX_PEAK_FLOPS)
                and _within(self.bandwidth, MAX_BANDWIDTH)
                and (self.load_avg is None or _within(self.load_avg, 1e6, zero=True)))


# Far beyond any machine (an exaflop; 10 PB/s): a figure above is not a measurement.
MAX_PEAK_FLOPS = 1e18
MAX_BANDWIDTH = 1e16


def _within(x: Any, top: float, zero: bool = False) -> bool:
    """A finite number in (0, top], or [0, top] with ``zero``."""
    return (isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            and (x >= 0 if zero else x > 0) and x <= top)


def cached_roofline(entry: Any, key: str) -> Roofline | None:
    """The roofline a cache entry holds for ``key``, or None when it is not a valid one
    (missing or extra-typed fields, another key, a peak that no machine has): a cache that
    cannot be read is measured again, never printed."""
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    try:
        roof = Roofline.from_dict(entry, from_cache=True)
    except (KeyError, TypeError, ValueError):
        return None  # an entry from an older layout, or edited
    return roof if roof.valid else None


def cache_path() -> Path:
    """The roofline cache file."""
    return cache_dir() / CACHE_FILE


def device_name(device: torch.device) -> str:
    """A human name for the device: the CPU model, or the CUDA device's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def cache_key(device: torch.device, dtype: torch.dtype, threads: int) -> str:
    """What a calibration depends on: device model, dtype and (on CPU) the thread count."""
    return machine_key(device.type, device_name(device), str(dtype).removeprefix("torch."),
                       threads)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(read_text(path, CACHE_LIMIT, "roofline cache", track=False))
    except (CnnCostError, ValueError, RecursionError):  # missing, a FIFO, too large, not JSON
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != CACHE_SCHEMA:
        return {}
    entries = doc.get("entries")
    return entries if isinstance(entries, dict) else {}


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    text = json.dumps({"schema": CACHE_SCHEMA, "entries": entries}, indent=1, sort_keys=True)
    write_atomic(path, text + "\n")  # concurrent readers never see half a file


def get_roofline(device: torch.device, dtype: torch.dtype, threads: int,
                 recalibrate: bool = False, quick: bool = False,
                 progress: Progress | None = None) -> Roofline:
    """The cached roofline for this device/dtype/threads, measured (and cached) if missing."""
    path = cache_path()
    key = cache_key(device, dtype, threads)
    entries = _read_cache(path)
    cached = None if recalibrate else cached_roofline(entries.get(key), key)
    if cached is not None:
        return cached
    roof = calibrate(device, dtype, threads, quick=quick, progress=progress)
    if not roof.valid:  # a clock that did not move, a device that lied
        raise MeasurementError(f"the roofline measured on {roof.device_name} is not usable "
                               f"(peak {roof.peak_flops} FLOP/s, bandwidth {roof.bandwidth} "
                               "bytes/s); run again")
    # Re-read: another process may have added entries meanwhile. Only the valid ones are
    # written back (an edited or older entry would be measured again anyway), so the file
    # follows its schema.
    entries = {k: e for k, e in _read_cache(path).items() if cached_roofline(e, k) is not None}
    entries[key] = roof.to_dict()
    _write_cache(path, entries)
    return roof


def calibrate(device: torch.device, dtype: torch.dtype, threads: int, quick: bool = False,
              progress: Progress | None = None) -> Roofline:
    """Measure peak compute (large matmul) and bandwidth (large copy) on this device now."""
    old_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        if progress:
            progress("roofline: matmul", 0.0)
        peak, n = _peak_flops(device, dtype, quick)
        if progress:
            progress("roofline: copy", 0.5)
        bandwidth, nbytes = _bandwidth(device, dtype, quick)
        if progress:
            progress("roofline: done", 1.0)
    finally:
        torch.set_num_threads(old_threads)
    return Roofline(
        key=cache_key(device, dtype, threads),
        device=device.type,
        device_name=device_name(device),
        dtype=str(dtype).removeprefix("torch."),
        threads=threads if device.type == "cpu" else 0,
        peak_flops=peak,
        bandwidth=bandwidth,
        matmul_n=n,
        copy_bytes=nbytes,
        torch_version=torch.__version__,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        load_avg=load_average(),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (a roof is an upper bound: take the best).

    With one CPU thread a call's time is its process CPU time when that is shorter: other
    processes holding the core stretch the wall clock, not the work (on a shared machine
    a wall-clock roof comes out too low). With several threads CPU time sums over threads
    that may idle, so the wall clock is used.
    """
    single = device.type == "cpu" and torch.get_num_threads() == 1
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        cpu0, start = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0  # coarse on some systems: 0 means "not measured"
        best = min(best, min(wall, cpu) if single and cpu > 0 else wall)
    return best


def _peak_flops(device: torch.device, dtype: torch.dtype, quick: bool) -> tuple[float, int]:
    """Grow a square matmul until one call takes ~0.1 s (or n hits its cap); best FLOP/s."""
    n_max = 512 if quick else (8192 if device.type == "cuda" else 2048)
    target = 0.01 if quick else 0.1
    n = 256
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        fn = lambda a=a, b=b: torch.mm(a, b)  # noqa: E731
        fn()  # warm-up (allocations, library dispatch)
        t = _best_time(fn, device, 1)
        if t >= target or n >= n_max:
            break
        n *= 2
    t = min(t, _best_time(fn, device, 2 if quick else 4))
    return 2 * n**3 / max(t, 1e-12), n  # a clock that did not move: an invalid roof


def _bandwidth(device: torch.device, dtype: torch.dtype, quick: bool) -> tuple[float, int]:
    """Best bytes/s of copying a buffer far larger than the last-level cache (read + write)."""
    if quick:
        nbytes = 8 << 20
    elif device.type == "cuda":
        nbytes = 1 << 30
    else:
        nbytes = 256 << 20
    # Two buffers must fit comfortably in what is free now.
    free = free_memory(device)
    if free is not None:
        while nbytes > (16 << 20) and 4 * nbytes > free:
            nbytes //= 2
    elem = torch.empty((), dtype=dtype).element_size()
    src = torch.ones(nbytes // elem, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    t = _best_time(lambda: dst.copy_(src), device, 3 if quick else 6)
    moved = 2 * src.numel() * elem
    return moved / max(t, 1e-12), moved // 2


# --------------------------------------------------------------------------- per layer


def element_size(dtype: str) -> int:
    """Bytes per element of a dtype name (the table's dtype)."""
    return _ELEMENT_SIZE[dtype.removeprefix("torch.")]


def bytes_moved(row: CostRow, elem: int) -> int:
    """Inputs + weights (params and buffers) + outputs of one layer, each touched once."""
    inputs = sum(math.prod(s) for s in row.input_shape) * elem
    return inputs + (row.params + row.buffers) * elem + row.output_bytes


@dataclass(frozen=True)
class LayerRoofline:
    """One layer on the roofline: its intensity, the roof that binds and the time it allows."""

    name: str
    kind: str
    macs: int
    flops: int
    bytes: int
    intensity: float
    bound: Bound
    predicted_s: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bound"] = self.bound.value
        d["intensity"] = None if math.isinf(self.intensity) else self.intensity
        return d


def layer_rooflines(table: CostTable, roof: Roofline) -> list[LayerRoofline]:
    """Every layer row of a cost table placed on the machine's roofline."""
    elem = element_size(table.dtype)
    out = []
    for row in table.layers:
        nbytes = bytes_moved(row, elem)
        intensity = row.flops / nbytes if nbytes else math.inf
        out.append(LayerRoofline(row.name, row.kind, row.macs, row.flops, nbytes, intensity,
                                 roof.bound(row.flops, nbytes),
                                 roof.predict(row.flops, nbytes)))
    return out

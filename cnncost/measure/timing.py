"""Timing a callable: warm-up, adaptive repetitions, median and IQR.

- a warm-up of at least two calls (and ~``Budget.warmup_time``) comes first;
- each sample times a block of calls long enough (>= 1 ms) for the clock to resolve;
  samples are taken until there are at least ``min_samples`` of them and ``min_time`` has
  passed and the spread (IQR / median) is below 5%, or until ``max_time`` (never fewer than 3);
- on CUDA, blocks are timed with CUDA events and the device is synchronised around them;
  on the CPU the process CPU time is recorded beside the wall time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cnncost.errors import UsageError

Progress = Callable[[str, float], None]

TARGET_REL_IQR = 0.05
MIN_BLOCK_S = 1e-3


@dataclass(frozen=True)
class Timing:
    """Per-call times of one benchmark (seconds) and their summary statistics."""

    samples_s: tuple[float, ...]
    number: int  # calls per sample
    warmup: int  # warm-up calls before the first sample
    median_s: float
    q1_s: float
    q3_s: float
    mean_s: float
    min_s: float
    # Process CPU time per call (all threads), CPU device only: unlike wall time it does
    # not grow while other processes hold the cores (with one thread it is the run time
    # without preemption; with several it also counts their spin-waiting).
    cpu_samples_s: tuple[float, ...] = ()

    @property
    def cpu_median_s(self) -> float | None:
        return statistics.median(self.cpu_samples_s) if self.cpu_samples_s else None

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread of the samples (0.02 = 2%)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    @property
    def stable(self) -> bool:
        return self.rel_iqr <= TARGET_REL_IQR

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median_s, "q1_s": self.q1_s, "q3_s": self.q3_s,
                "iqr_s": self.iqr_s, "rel_iqr": self.rel_iqr, "mean_s": self.mean_s,
                "min_s": self.min_s, "samples": len(self.samples_s), "number": self.number,
                "warmup": self.warmup, "stable": self.stable, "cpu_median_s": self.cpu_median_s,
                "samples_s": list(self.samples_s), "cpu_samples_s": list(self.cpu_samples_s)}


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """(Q1, median, Q3) with linear interpolation between order statistics."""
    if not xs:
        raise ValueError("no samples")
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def summarize(samples: Sequence[float], number: int = 1, warmup: int = 0,
              cpu_samples: Sequence[float] = ()) -> Timing:
    """Median, quartiles, mean and minimum of per-call times."""
    q1, med, q3 = quartiles(samples)
    return Timing(tuple(samples), number, warmup, med, q1, q3, statistics.fmean(samples),
                  min(samples), tuple(cpu_samples))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run_block(fn: Callable[[], Any], number: int, device: torch.device) -> float:
    """Seconds for ``number`` calls; CUDA events on GPU, perf_counter on CPU."""
    return run_block(fn, number, device)[0]


def run_block(fn: Callable[[], Any], number: int,
                   device: torch.device) -> tuple[float, float | None]:
    """(wall seconds, process CPU seconds or None on GPU) for ``number`` calls."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, None
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    t1 = time.perf_counter()
    return t1 - t0, time.process_time() - c0


@dataclass(frozen=True)
class Budget:
    """How long to measure: at least min_samples and min_time, at most max_time."""

    min_samples: int = 7
    min_time: float = 0.5
    max_time: float = 10.0
    warmup_time: float = 0.25
    max_samples: int = 1000

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.max_time <= 0 or self.min_time < 0:
            raise UsageError(f"bad timing budget {self}: need min_samples >= 1, max_time > 0")

    def done(self, n: int, elapsed: float, rel_iqr: float) -> bool:
        if n >= self.min_samples and elapsed >= self.min_time and rel_iqr <= TARGET_REL_IQR:
            return True
        return n >= min(3, self.min_samples) and (elapsed >= self.max_time
                                                  or n >= self.max_samples)

    def fraction(self, n: int, elapsed: float) -> float:
        """Progress toward the earliest possible stop (for a progress bar)."""
        soonest = min(n / self.min_samples, elapsed / self.min_time if self.min_time else 1.0)
        return min(1.0, max(soonest, elapsed / self.max_time))


def rel_iqr(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return math.inf
    q1, med, q3 = quartiles(xs)
    return (q3 - q1) / med if med > 0 else 0.0


def time_fn(fn: Callable[[], Any], device: torch.device, budget: Budget = Budget(),
            progress: Progress | None = None, label: str = "timing") -> Timing:
    """Warm up, then time ``fn`` in blocks until the budget's stopping rule is met."""
    calls, best = 0, math.inf
    t_start = time.perf_counter()
    while calls < 2 or (time.perf_counter() - t_start < budget.warmup_time and calls < 50):
        best = min(best, _run_block(fn, 1, device))
        calls += 1
    number = max(1, math.ceil(MIN_BLOCK_S / best)) if best > 0 else 1000
    samples: list[float] = []
    cpu: list[float] = []
    t_begin = time.perf_counter()
    while True:
        wall, cpu_s = run_block(fn, number, device)
        samples.append(wall / number)
        if cpu_s is not None:
            cpu.append(cpu_s / number)
        elapsed = time.perf_counter() - t_begin
        if progress:
            progress(label, budget.fraction(len(samples), elapsed))
        if budget.done(len(samples), elapsed, rel_iqr(samples)):
            break
    return summarize(samples, number, calls, cpu)



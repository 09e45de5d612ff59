"""A calibration made by hand (coefficients the test chooses), for tests of predictions."""

from __future__ import annotations

from typing import Any

from cnncost.predict.calibration import Calibration
from cnncost.predict.features import FEATURES, class_names


def fitted(coef: list[float], p90: float = 0.1) -> dict[str, Any]:
    """A baseline-only fit t = coef[0] + coef[1] x MACs + coef[2] x bytes, whose held-out
    p90 error is ``p90``, calibrated over every value."""
    err = {"median": p90 / 2, "p90": p90, "rms": p90 * 0.8}
    return {"baseline": coef, "trees": None, "method": "baseline", "samples": 3,
            "ranges": [[0.0, 1e12] for _ in FEATURES], "error": err, "baseline_error": err}


def hand_calibration(key: str, coef: list[float] | None = None,
                     classes: dict[str, Any] | None = None, overhead_s: float = 2e-5,
                     dtype: str = "float32") -> Calibration:
    """A calibration for ``key`` (``cpu:NAME|DTYPE|threads=N|torch=V``) with the same
    baseline for every class unless ``classes`` are given."""
    classes = classes or {n: fitted(coef or [1e-6, 1e-11, 1e-10]) for n in class_names()}
    machine, _, torch_part = key.rpartition("|torch=")
    device, _, rest = machine.partition(":")
    name = rest.split("|")[0]
    threads = int(rest.rsplit("threads=", 1)[1]) if "threads=" in rest else 0
    return Calibration(key=key, device=device, device_name=name, dtype=dtype,
                       threads=threads, torch_version=torch_part,
                       measured_at="2026-01-01T00:00:00+00:00", overhead_s=overhead_s,
                       classes=classes,
                       samples={n: [[1.0] * len(FEATURES) + [1e-5]] for n in classes},
                       budget_s=60.0, elapsed_s=59.0, load_avg=0.5, load_avg_after=0.6,
                       trees=None)

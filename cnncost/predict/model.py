"""A cost table + a calibration -> predicted milliseconds per layer and for the whole model.

Each layer is predicted by its op class's fit (``cnncost.predict.fit``) from its features
(``cnncost.predict.features``); the whole model is the sum of its layers (a layer called twice
counts twice) plus the calibrated cost of one whole-model call. Every figure carries the
held-out error of its class: a layer's is its class's 90th-percentile relative error on
calibration kernels that its fit did not see; the model's is those errors weighted by the
layers' predicted times (a bound: it assumes the layers' errors do not cancel). A layer
outside the range its class was calibrated on, or of a kind no class covers, says so.

Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnncost.display import repr_html
from cnncost.errors import UsageError
from cnncost.predict.calibration import Calibration
from cnncost.predict.features import (
    CONTEXT_FEATURES,
    FEATURES,
    LayerFeatures,
    table_features,
)
from cnncost.predict.fit import predict_seconds
from cnncost.table import CostTable

SCHEMA = "cnncost.predict/1"
_ELEMENT_SIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class LayerPrediction:
    """One layer's predicted time, its class, its uncertainty and a note when it is outside
    what was calibrated."""

    name: str
    kind: str
    op_class: str
    latency_ms: float  # all its calls
    uncertainty: float  # relative (0.1 = ±10%): its class's held-out p90 error
    note: str = ""  # outside the calibrated range, or a kind no class covers

    @property
    def in_range(self) -> bool:
        return not self.note


@dataclass(frozen=True)
class Prediction:
    """A model's predicted latency on a calibrated machine, layer by layer."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    model: str
    source: str
    input: tuple[int, ...]
    dtype: str
    macs: int
    layers: tuple[LayerPrediction, ...]
    overhead_ms: float
    calibration: Calibration

    @property
    def layers_ms(self) -> float:
        return sum(p.latency_ms for p in self.layers)

    @property
    def latency_ms(self) -> float:
        return self.layers_ms + self.overhead_ms

    @property
    def uncertainty(self) -> float:
        """The whole model's: the held-out error of the calibration's random networks (their
        90th percentile), else the layers' held-out errors weighted by their predicted
        times."""
        error = self.calibration.context.get("error")
        if error is not None:
            return float(error["p90"])
        total = self.layers_ms
        return sum(p.latency_ms * p.uncertainty for p in self.layers) / total if total else 0.0

    @property
    def outside(self) -> tuple[LayerPrediction, ...]:
        """Layers outside the calibrated range (or of an uncalibrated kind)."""
        return tuple(p for p in self.layers if p.note)

    def share(self, layer: LayerPrediction) -> float:
        return layer.latency_ms / self.latency_ms if self.latency_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        cal = self.calibration
        return {
            "schema": SCHEMA, "model": self.model, "source": self.source,
            "input": list(self.input), "dtype": self.dtype,
            "calibration": {"key": cal.key, "device": cal.device,
                            "device_name": cal.device_name, "threads": cal.threads,
                            "torch": cal.torch_version, "measured_at": cal.measured_at,
                            "load_avg": cal.load_avg, "samples": cal.sample_count,
                            "path": cal.path},
            "totals": {"latency_ms": self.latency_ms, "layers_ms": self.layers_ms,
                       "overhead_ms": self.overhead_ms, "uncertainty": self.uncertainty,
                       "images_per_s": self.input[0] / self.latency_ms * 1e3
                       if self.latency_ms else None,
                       "macs": self.macs, "layers_outside_range": len(self.outside)},
            "layers": [{"name": p.name, "kind": p.kind, "op_class": p.op_class,
                        "latency_ms": p.latency_ms, "share": self.share(p),
                        "uncertainty": p.uncertainty, "in_range": p.in_range,
                        "note": p.note} for p in self.layers],
        }


def element_size(dtype: str) -> int:
    try:
        return _ELEMENT_SIZE[dtype.removeprefix("torch.")]
    except KeyError:
        raise UsageError(f"dtype {dtype!r}: expected one of {', '.join(_ELEMENT_SIZE)}") from None


def outside_range(ranges: list[list[float]], values: tuple[float, ...]) -> str:
    """"" when every feature of the layer itself is within its calibrated [low, high], else
    which ones are not (not the layers' before it, ``CONTEXT_FEATURES``: only trees read
    those, holding their edge value beyond it, so nothing is extrapolated along them)."""
    out = []
    for name, (lo, hi), v in zip(FEATURES, ranges, values, strict=True):
        if name in CONTEXT_FEATURES:
            continue
        if v < lo:
            out.append(f"{name} {v:.4g} < {lo:.4g}")
        elif v > hi:
            out.append(f"{name} {v:.4g} > {hi:.4g}")
    return ("outside the calibrated range: " + ", ".join(out[:3])) if out else ""


def predict_layer(cal: Calibration, feats: LayerFeatures) -> LayerPrediction:
    """One layer's prediction (all its calls)."""
    fitted = cal.classes.get(feats.op_class)
    if fitted is None:
        raise UsageError(f"the calibration {cal.path or cal.key} has no fit for op class "
                         f"{feats.op_class!r} (layer {feats.name}); run `cnncost calibrate` "
                         "again")
    context = cal.context
    seconds = (context["scale"] * predict_seconds(fitted, feats.values)
               + context["per_layer_s"]) * feats.calls
    note = feats.stand_in or outside_range(fitted["ranges"], feats.values)
    return LayerPrediction(feats.name, feats.kind, feats.op_class, seconds * 1e3,
                           fitted["error"]["p90"], note)


def predict_table(table: CostTable, cal: Calibration) -> Prediction:
    """Predict every layer of a counted table with a calibration of its dtype."""
    if table.dtype != cal.dtype:
        raise UsageError(f"{table.model} is counted at {table.dtype}, the calibration "
                         f"({cal.path or cal.key}) is of {cal.dtype}; calibrate {table.dtype} "
                         f"with `cnncost calibrate --dtype {table.dtype}`")
    elem = element_size(table.dtype)
    memo: dict[tuple[str, tuple[float, ...], int], LayerPrediction] = {}
    layers = []
    for row, feats in zip(table.layers, table_features(table.layers, elem, cal.threads),
                          strict=True):
        key = (feats.op_class, feats.values, feats.calls)
        known = memo.get(key)
        if known is None:
            known = memo[key] = predict_layer(cal, feats)
        layers.append(LayerPrediction(row.name, row.kind, known.op_class, known.latency_ms,
                                      known.uncertainty, known.note))
    return Prediction(table.model, table.source, table.input, table.dtype, table.totals.macs,
                      tuple(layers), cal.overhead_s * 1e3, cal)


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None

"""A benchmark with its prediction beside it (``cnncost bench --predict``): per batch, the
measured and predicted whole-model latency, and per layer the measured median (bench's
per-layer timing) beside the predicted time. No torch here: the benchmark has run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnncost.display import repr_html
from cnncost.predict.model import Prediction

if TYPE_CHECKING:
    from cnncost.measure.bench import BenchReport


@dataclass(frozen=True)
class Versus:
    """A benchmark report and, for each of its runs (batch sizes), its prediction."""

    _repr_html_ = repr_html  # in a notebook: its HTML page (cnncost.display)

    report: BenchReport
    predictions: tuple[Prediction, ...]

    def pairs(self) -> list[tuple[Any, Prediction]]:
        return list(zip(self.report.runs, self.predictions, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The bench document (``cnncost.bench/1``) with, per run, ``predicted`` (latency_ms,
        uncertainty, ratio predicted / measured, layers outside the calibrated range) and per
        layer ``predicted_ms``; and the calibration used."""
        doc = self.report.to_dict()
        doc["calibration"] = self.predictions[0].to_dict()["calibration"]
        for run_doc, (run, p) in zip(doc["runs"], self.pairs(), strict=True):
            measured = run.timing.median_s * 1e3
            run_doc["predicted"] = {"latency_ms": p.latency_ms, "uncertainty": p.uncertainty,
                                    "ratio": p.latency_ms / measured if measured else None,
                                    "layers_outside_range": len(p.outside)}
            by_name = {lp.name: lp for lp in p.layers}
            for layer in run_doc["layers"]:
                lp = by_name.get(layer["name"])
                layer["predicted_ms"] = None if lp is None else lp.latency_ms
        return doc

"""cnncost: what a convolutional network costs, layer by layer.

    >>> import cnncost
    >>> report = cnncost.analyze("resnet50", batch=8)      # bundled spec, file, or nn.Module
    >>> report.totals.macs, report.to_dict()["layers"][0]
    >>> model = cnncost.build("specs/mobilenetv2.yaml", width=0.5)   # a real GraphModule

torch is imported only when a function that needs it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnncost.errors import CnnCostError, RegressionError, SpecError, UnsupportedOpError
from cnncost.table import CostRow, CostTable

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import fx, nn

__version__ = "0.1.0"
Report = CostTable

__all__ = [
    "CnnCostError",
    "CostRow",
    "CostTable",
    "RegressionError",
    "Report",
    "SpecError",
    "UnsupportedOpError",
    "analyze",
    "build",
]


def analyze(model_or_spec: nn.Module | str | Path, input: tuple[int, ...] | None = None,
            batch: int | None = None, dtype: str | torch.dtype | None = None,
            policy: str = "all",
            strict: bool = False, engine: str | None = None, mode: str = "inference",
            **vars: Any) -> CostTable:
    """Count MACs, FLOPs, parameters and memory of a spec (path or bundled name), a module
    or an ONNX file (``model.onnx``, counted without torch).

    ``input`` is one sample's shape (C, H, W); for a spec it defaults to the spec's own
    input, for a module to (3, 224, 224), for an ONNX file to its own sizes. ``batch``
    defaults to 1 and ``dtype`` to float32 (an ONNX file's own fixed batch and float type).
    ``vars`` override a spec's variables. ``engine``:
    "analytic" (a spec's default: its own shapes, no torch) or "torch" (runs the modules on
    the meta device; the only engine for an nn.Module). Both give the same table.
    ``mode="train"`` counts one training step: the forward in training behaviour, the
    backward (per layer, the gradient of its input and of its weights), the optimizer's
    update and the step's memory (``report.totals.train``, ``row.train``). A training step
    is the torch engine's: with ``engine=None`` a spec is counted by it, and
    ``engine="analytic"`` with ``mode="train"`` is a usage error.
    """
    from cnncost.api import analyze_target

    return analyze_target(model_or_spec, input=input, batch=batch, dtype=dtype, policy=policy,
                          strict=strict, overrides=vars, engine=engine, mode=mode)


def build(spec_path: str | Path, input: tuple[int, ...] | None = None,
          **vars: Any) -> fx.GraphModule:
    """Compile a spec (path or bundled name) into a trainable torch.fx GraphModule."""
    from cnncost.graph.build import build_module
    from cnncost.sources import resolve
    from cnncost.spec import load_spec

    target = resolve(str(spec_path))
    if target.spec_path is None:
        raise SpecError(f"{spec_path}: build() takes a spec, not a module factory")
    return build_module(load_spec(target.spec_path, overrides=vars, input_shape=input))

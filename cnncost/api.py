"""One entry point from "what the user named" to a CostTable, shared by the API and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnncost.count.drivers import count_module, count_spec
from cnncost.sources import Target, default_input, load_factory, resolve
from cnncost.spec import ModelSpec, load_spec
from cnncost.table import CostTable

if TYPE_CHECKING:
    from cnncost.advise.engine import Advice

DEFAULT_INPUT = (3, 224, 224)


def load_target(target: Target, overrides: Mapping[str, Any] | None = None,
                input: tuple[int, ...] | None = None) -> ModelSpec | nn.Module:
    """The resolved spec, or the module a factory returns."""
    if target.spec_path is not None:
        return load_spec(target.spec_path, overrides=overrides, input_shape=input)
    if overrides:
        from cnncost.errors import UsageError

        raise UsageError("--set only applies to specs, not to module factories")
    assert target.factory is not None
    return load_factory(target.factory)


def analyze_target(model_or_spec: nn.Module | ModelSpec | str | Path | Target,
                   input: tuple[int, ...] | None = None,
                   batch: int = 1, dtype: str | torch.dtype = "float32", policy: str = "all",
                   strict: bool = False,
                   overrides: Mapping[str, Any] | None = None) -> CostTable:
    """Analyze a spec path, bundled name, factory reference, Target, nn.Module, or a loaded
    ModelSpec (counted as loaded: its variables and input are already resolved)."""
    if isinstance(model_or_spec, nn.Module):
        return count_module(model_or_spec, input or DEFAULT_INPUT, batch, dtype, policy, strict)
    if isinstance(model_or_spec, ModelSpec):
        if overrides or input is not None:
            from cnncost.errors import UsageError

            raise UsageError("a loaded spec has its variables and input already; load it "
                             "again with them instead")
        return count_spec(model_or_spec, batch, dtype, policy, strict, source=model_or_spec.file)
    target = model_or_spec if isinstance(model_or_spec, Target) else resolve(str(model_or_spec))
    loaded = load_target(target, overrides, input)
    if isinstance(loaded, ModelSpec):
        table = count_spec(loaded, batch, dtype, policy, strict, source=target.display)
        return table.recorded(overrides, input is not None, file=loaded.file)
    shape = input or default_input(target.factory) or DEFAULT_INPUT
    table = count_module(loaded, shape, batch, dtype, policy, strict,
                         name=target.label, source=target.display)
    return table.recorded(overrides, input is not None)


def count_loaded(spec: ModelSpec, batch: int = 1, dtype: str | torch.dtype = "float32",
                 policy: str = "all", source: str | None = None) -> CostTable:
    """Count an already compiled spec (what `advise` does for each rewrite it proposes)."""
    return count_spec(spec, batch, dtype, policy, source=source)


def advise_target(spec: str | Path | Target, overrides: Mapping[str, Any] | None = None,
                  min_saving: float | None = None) -> Advice:
    """The design guidelines applied to a spec (path or bundled name): an advise.Advice."""
    from cnncost.advise.engine import DEFAULT_MIN_SAVING, advise_spec

    target = spec if isinstance(spec, Target) else resolve(str(spec))
    if target.spec_path is None:
        from cnncost.errors import UsageError

        raise UsageError(f"{target.label}: advise takes a spec (it rewrites the YAML), not a "
                         "module factory")
    return advise_spec(target.spec_path, overrides,
                       DEFAULT_MIN_SAVING if min_saving is None else min_saving,
                       source=target.display)

"""ModelSpec -> torch.fx GraphModule made of ordinary nn.Modules named after the spec."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from cnncost.errors import SpecError
from cnncost.spec import LayerSpec, ModelSpec, load_spec

META_KEY = "cnncost"

# What torch raises for a layer it cannot hold (a weight of more than 2**63 bytes: "Storage
# size calculation overflowed"; a size past int64: TypeError "Overflow when unpacking long
# long"), though the spec's own bounds let each size through.
TORCH_REFUSALS = (RuntimeError, ValueError, OverflowError, MemoryError, TypeError)


def torch_refused(layer: LayerSpec, doing: str, exc: BaseException) -> SpecError:
    """A layer torch would not build or run, as a located one-line SpecError."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return SpecError(f"torch cannot {doing} this layer ({type(exc).__name__}: {first}); its "
                     "sizes are within the spec's limits but beyond what torch can hold",
                     layer.loc.file, layer.loc.line, layer.loc.where)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent = root
    *parents, leaf = path.split(".")
    for part in parents:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)


def _node_name(path: str) -> str:
    return re.sub(r"\W", "_", path)


def build_module(spec: ModelSpec, device: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None) -> fx.GraphModule:
    """Compile a resolved spec into a GraphModule; ``device="meta"`` allocates no weights."""
    root = nn.Module()
    graph = fx.Graph()
    env: dict[str, fx.Node] = {"input": graph.placeholder("x")}
    with torch.device(device):
        for layer in spec.layers:
            args = tuple(env[i] for i in layer.inputs)
            if layer.built is not None:
                try:
                    module = layer.built.make()
                    if dtype is not None:
                        module = module.to(dtype)
                except TORCH_REFUSALS as exc:
                    raise torch_refused(layer, "build", exc) from None
                _set_submodule(root, layer.path, module)
                node = graph.create_node("call_module", layer.path, args,
                                         name=_node_name(layer.path))
            else:
                target, kwargs = op_target(layer)
                node = graph.create_node("call_function", target, op_args(layer, args), kwargs,
                                         name=_node_name(layer.path))
            node.meta[META_KEY] = layer
            env[layer.path] = node
    graph.output(env[spec.output])
    class_name = "".join(p.capitalize() for p in re.split(r"\W+|_", spec.name) if p) or "Model"
    gm = fx.GraphModule(root, graph, class_name=class_name)
    gm.eval()
    return gm


def op_target(layer: LayerSpec) -> tuple[Any, dict[str, Any]]:
    """The torch function and keyword arguments a graph op (add/mul/concat/slice) lowers to."""
    return {
        "add": (operator.add if len(layer.inputs) == 2 else add_all, {}),
        "mul": (operator.mul, {}),
        "concat": (torch.cat, {"dim": 1}),
        "slice": (torch.narrow, {}),
    }[layer.kind]


def add_all(*xs: Any) -> Any:
    """x1 + x2 + ... left to right: an add of more than two branches."""
    return functools.reduce(operator.add, xs)


def op_args(layer: LayerSpec, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A graph op's positional arguments, given its input values (graph nodes or tensors)."""
    if layer.kind == "concat":
        return (list(args),)
    if layer.kind == "slice":
        p = layer.params
        return (args[0], p["dim"] + 1, p["start"], p["length"])
    return args


def build(spec_path: str | Path, input: tuple[int, ...] | None = None,
          device: str | torch.device = "cpu", **vars: Any) -> fx.GraphModule:
    """Load a spec file (with ``vars`` overriding its variables) and compile it."""
    spec = load_spec(spec_path, overrides=vars, input_shape=input)
    return build_module(spec, device=device)


def layer_specs(gm: fx.GraphModule) -> Mapping[str, LayerSpec]:
    """The LayerSpec behind each graph node of a compiled spec, by node name."""
    return {n.name: n.meta[META_KEY] for n in gm.graph.nodes if META_KEY in n.meta}

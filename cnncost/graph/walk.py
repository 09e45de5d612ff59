"""Walking a model: one executor with liveness, and a hook to count or time each layer.

A :class:`Walk` is a list of :class:`Step` in execution order, built from a compiled
spec's GraphModule (:func:`graph_walk`) or from a spec's layers (the counter does that
without compiling). :meth:`Walk.run` calls the steps in order and drops every value right
after its last use, as a GraphModule's generated code does, so the live memory along the
walk is the real one. A hook wraps each spec layer's call: the counter charges the ops it
issues to the layer, the bench times it; what the hook adds is never inside the call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cnncost.spec import LayerSpec

if TYPE_CHECKING:
    from torch import fx

Args = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One call: where its value is kept, what it reads, what runs, and its spec layer."""

    key: Any  # the key of its value (a graph node, or a spec layer's path)
    inputs: tuple[Any, ...]  # the keys of the values it reads, in argument order
    target: Callable[..., Any]  # what runs: a module, a function, a bound method
    bind: Callable[[Mapping[Any, Any]], Args]  # its (args, kwargs) from the values so far
    layer: LayerSpec | None = None  # the spec layer it runs (None: a helper node)


# A hook runs one spec layer's step: hook(step, args, kwargs) calls
# step.target(*args, **kwargs) (with whatever it does around it) and returns the value.
Hook = Callable[[Step, tuple[Any, ...], dict[str, Any]], Any]


@dataclass(frozen=True)
class Walk:
    """Steps in execution order with, per step, the values whose last use it is."""

    steps: tuple[Step, ...]
    inputs: tuple[Any, ...]  # the keys of the values the caller provides
    output: Any  # the key of the result (or a tuple/list of keys)
    dying: tuple[tuple[Any, ...], ...]

    @classmethod
    def of(cls, steps: Sequence[Step], inputs: Sequence[Any], output: Any) -> Walk:
        """A walk over ``steps``; the ``output`` values stay alive to the end."""
        return cls(tuple(steps), tuple(inputs), output, dying_after(steps, _keys(output)))

    def run(self, inputs: Mapping[Any, Any], hook: Hook | None = None) -> Any:
        """Run every step (spec layers through ``hook``); the output's value."""
        env = dict(inputs)
        for step, dying in zip(self.steps, self.dying, strict=True):
            args, kwargs = step.bind(env)
            if hook is None or step.layer is None:
                env[step.key] = step.target(*args, **kwargs)
            else:
                env[step.key] = hook(step, args, kwargs)
            del args, kwargs
            for key in dying:
                del env[key]
        return _resolve(self.output, env)


class Reads(Protocol):
    """Anything that reads values by key: a Step, or a spec layer (its ``inputs``)."""

    @property
    def inputs(self) -> tuple[Any, ...]: ...


def dying_after(steps: Sequence[Reads], keep: Sequence[Any] = ()) -> tuple[tuple[Any, ...], ...]:
    """For each step, the keys whose last use it is (freed right after it runs); the keys
    in ``keep`` never die. The liveness rule of both engines (torch's walk, the analytic
    driver's replay)."""
    last_use = {key: i for i, step in enumerate(steps) for key in step.inputs}
    for key in keep:
        last_use.pop(key, None)
    dying: list[tuple[Any, ...]] = [()] * len(steps)
    for key, i in last_use.items():  # (most steps free one key or none)
        dying[i] += (key,)
    return tuple(dying)


def _keys(output: Any) -> list[Any]:
    return [k for o in output for k in _keys(o)] if isinstance(output, tuple | list) \
        else [output]


def _resolve(output: Any, env: Mapping[Any, Any]) -> Any:
    if isinstance(output, tuple | list):
        return type(output)(_resolve(o, env) for o in output)
    return env[output]


# --------------------------------------------------------------------------- fx graphs


def graph_walk(gm: fx.GraphModule) -> Walk:
    """The walk of a GraphModule's nodes; ``inputs`` are its placeholders. A node made from
    a spec layer (a compiled spec) carries that layer."""
    from torch import fx

    from cnncost.graph.build import META_KEY

    modules = dict(gm.named_modules())
    steps: list[Step] = []
    placeholders: list[fx.Node] = []
    output: Any = None
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            placeholders.append(n)
            continue
        if n.op == "output":
            output = n.args[0]
            break
        target: Callable[..., Any]
        if n.op == "call_module":
            target = modules[str(n.target)]
        elif n.op == "call_method":
            target = functools.partial(_call_method, str(n.target))
        elif n.op == "get_attr":
            target = functools.partial(fetch_attr, gm, str(n.target))
        else:
            target = n.target
        inputs: list[fx.Node] = []
        fx.node.map_arg((n.args, n.kwargs), inputs.append)
        steps.append(Step(n, tuple(inputs), target, functools.partial(_bind_node, n),
                          n.meta.get(META_KEY)))
    return Walk.of(steps, placeholders, output)


def _bind_node(n: fx.Node, env: Mapping[Any, Any]) -> Args:
    from torch import fx

    args = fx.node.map_arg(n.args, env.__getitem__)
    kwargs = fx.node.map_arg(n.kwargs, env.__getitem__)
    return tuple(args), dict(kwargs)


def _call_method(method: str, obj: Any, *args: Any, **kwargs: Any) -> Any:
    return getattr(obj, method)(*args, **kwargs)


def fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    """The attribute a ``get_attr`` node names (``a.b.c``)."""
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj

"""The state of one compilation and the context each item is compiled in.

A spec compiles item by item. What changes from item to item travels in one frozen
:class:`Ctx`: where the item is written (spec path and line), the namespace its layers are
named in, the names its expressions see, and the block instance or repeat child it belongs
to (named in errors, because ``blocks.x.layers[0]`` alone does not say which copy failed).
What the whole compilation shares (the layers made so far, taps, blocks, limits) is the
:class:`Build` every context points to. The tensor flowing from item to item is a
:class:`Value`; compiling an item takes one and returns the next.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnncost.errors import SpecError
from cnncost.layers import Shape
from cnncost.spec.expr import ExprError, evaluate, render
from cnncost.spec.loader import YMap
from cnncost.spec.model import (
    MAX_DIM,
    MAX_LAYERS,
    MAX_NESTING,
    MAX_SAMPLE_ELEMENTS,
    MAX_STEPS,
    NAME_RE,
    RESERVED_NAMES,
    LayerSpec,
    Loc,
)


def fmt(shape: Sequence[Any]) -> str:
    """A shape as the messages write it: 3x224x224."""
    return "x".join(map(str, shape))


def short(value: Any) -> str:
    """A value quoted in a message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shape_problem(shape: Sequence[Any]) -> str | None:
    """Why ``shape`` cannot be a tensor of one sample (None if it can)."""
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int):
            return f"sizes must be whole numbers, got {d!r}"
        if d <= 0:
            return f"size {d} must be positive"
        if d > MAX_DIM:
            return f"size {d} in {fmt(shape)} is absurd; expected at most {MAX_DIM}"
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        return (f"a {fmt(shape)} tensor is absurdly large; expected at most "
                f"{MAX_SAMPLE_ELEMENTS} elements per sample")
    return None


@dataclass
class Value:
    """A tensor between items: the layer that made it, its shape, its receptive field."""

    id: str
    shape: Shape
    rf: int
    jump: float


@dataclass
class Names:
    """A namespace for layer names (a block instance, a repeat child, a branch)."""

    prefix: str
    used: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    auto: set[str] = field(default_factory=set)  # names given by default (kind + counter)

    def child(self, name: str) -> Names:
        return Names(f"{self.prefix}{name}.")


class Build:
    """What one compilation shares: the layers made so far, taps, blocks and counters."""

    def __init__(self, file: str, expand: Callable[[Ctx, Any, Value], Value]) -> None:
        self.file = file
        # Compiles a list of items in a context: the compiler's `items` (composites call it
        # through Ctx.items, so they need not import the compiler).
        self.expand = expand
        self.layers: list[LayerSpec] = []
        self.taps: dict[str, Value] = {}
        self.blocks: dict[str, YMap] = {}
        self.block_stack: list[str] = []
        self.vars: dict[str, Any] = {}
        self.steps = 0
        self.depth = 0

    def add(self, layer: LayerSpec) -> None:
        if len(self.layers) >= MAX_LAYERS:
            # loc.where already names the instance
            raise SpecError(f"the spec expands to more than {MAX_LAYERS} layers; expected a "
                            "network of realistic size (check repeat counts)", layer.loc.file,
                            layer.loc.line, layer.loc.where)
        self.layers.append(layer)


def replaced(ctx: Ctx, **changes: Any) -> Ctx:
    """``ctx`` with ``changes``: dataclasses.replace, without its cost (a context is copied at
    every item, key and block of a spec; sweeps compile specs by the thousand)."""
    new = object.__new__(Ctx)
    new.__dict__.update(ctx.__dict__, **changes)
    return new


@dataclass(frozen=True)
class Ctx:
    """Where an item is compiled: file, spec position, namespace, visible names, instance."""

    build: Build
    file: str  # the file the item is written in (a variant's base, for inherited items)
    where: str
    line: int | None
    ns: Names
    scope: Mapping[str, Any]
    # Model path of the block instance or repeat child being expanded ("" at the top).
    instance: str = ""

    # -- moving around ------------------------------------------------------------------

    def at(self, where: str, line: int | None, file: str | None = None) -> Ctx:
        """The same context at another spec position (in another file, if given)."""
        return replaced(self, where=where, line=line, file=file or self.file)

    def key(self, key: str, line: int | None = None) -> Ctx:
        """The position of field ``key`` of this item (on ``line``, default: the item's)."""
        return replaced(self, where=f"{self.where}.{key}",
                        line=self.line if line is None else line)

    def within(self, ns: Names) -> Ctx:
        """The same position, naming layers in ``ns``."""
        return replaced(self, ns=ns)

    def using(self, scope: Mapping[str, Any]) -> Ctx:
        """The same position, with ``scope`` as the names its expressions see."""
        return replaced(self, scope=scope)

    def seeing(self, value: Value, **names: Any) -> Ctx:
        """The context with ``in`` (the channels of ``value``) and ``names`` visible."""
        return replaced(self, scope={**self.scope, **names, "in": value.shape[0]})

    # -- errors and expressions ----------------------------------------------------------

    @property
    def located(self) -> str:
        """The spec path, with the instance it belongs to when inside a block or repeat."""
        return f"{self.where} (in {self.instance})" if self.where and self.instance else self.where

    def err(self, reason: str) -> SpecError:
        return SpecError(reason, self.file, self.line, self.located or None)

    def loc(self) -> Loc:
        return Loc(self.file, self.line or 0, self.located)

    def eval(self, raw: Any) -> Any:
        """A field's value: strings are expressions over the scope, lists element-wise."""
        if isinstance(raw, str):
            try:
                return evaluate(raw, self.scope)
            except ExprError as exc:
                raise self.err(str(exc)) from None
        if isinstance(raw, list):
            return [self.eval(v) for v in raw]
        return raw

    def render(self, raw: Any) -> Any:
        """A name written as a template, ``"enc{i + 1}"``, filled in (non-strings as they are)."""
        if not isinstance(raw, str):
            return raw
        try:
            return render(raw, self.scope)
        except ExprError as exc:
            raise self.err(str(exc)) from None

    def condition(self, raw: Any) -> bool:
        value = self.eval(raw)
        if not isinstance(value, bool):
            raise self.err(f"expected a condition that is true or false, got {value!r}")
        return value

    def check_shape(self, shape: Sequence[Any]) -> None:
        problem = shape_problem(shape)
        if problem:
            raise self.err(problem)

    def step(self) -> None:
        """Count one expanded item (bounds nested repeats of empty bodies)."""
        self.build.steps += 1
        if self.build.steps > MAX_STEPS:
            raise self.err(f"the spec expands to more than {MAX_STEPS} items; expected a "
                           "network of realistic size (check nested repeat counts)")

    def nested(self) -> Ctx:
        if self.build.depth >= MAX_NESTING:
            raise self.err(f"layers nested more than {MAX_NESTING} levels deep")
        return self

    # -- names ----------------------------------------------------------------------------

    def check_name(self, name: Any) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("_"):
            raise self.err(f"name {name!r} must be an identifier (letters, digits, _) not "
                           "starting with _")
        if name in RESERVED_NAMES:
            raise self.err(f"name {name!r} is reserved (a Python keyword or a torch module "
                           "attribute); choose another name")
        return name

    def name(self, name: str | None, kind: str) -> str:
        """Take ``name`` in this namespace, or the next default name of ``kind`` (conv3)."""
        ns = self.ns
        if name is None:
            n = ns.counters.get(kind, 0)
            sep = "_" if kind[-1].isdigit() else ""  # relu6_1, not relu61
            while True:
                n += 1
                candidate = f"{kind}{sep}{n}"
                if candidate not in ns.used:
                    break
            ns.counters[kind] = n
            ns.auto.add(candidate)
            name = candidate
        elif name in ns.used:
            inside = ns.prefix.rstrip(".") or "the top level"
            if name in ns.auto:
                raise self.err(f"name {name!r} is already the default name of an earlier layer "
                               f"in {inside}; choose another name")
            hint = ""
            if re.search(r"(^|, )i=\d+$", self.instance):  # a repeated group
                hint = f"; in a repeated group, build it from i, e.g. \"{name}{{i + 1}}\""
            raise self.err(f"name {name!r} is used twice in {inside}; names of layers and "
                           f"branches must be unique within their block{hint}")
        ns.used.add(name)
        return name

    def child(self, name: str | None, kind: str) -> Names:
        """A new namespace inside this one, called ``name`` (or after ``kind``)."""
        return self.ns.child(self.name(name, kind))

    # -- making things --------------------------------------------------------------------

    def items(self, items: Any, value: Value) -> Value:
        """Compile a list of items here, in order, starting from ``value``."""
        return self.build.expand(self, items, value)

    def op(self, kind: str, path: str, values: list[Value], shape: Shape,
           params: dict[str, Any]) -> Value:
        """Record a graph op (add, concat, mul, slice) over ``values``."""
        self.check_shape(shape)
        rf = max(v.rf for v in values)
        jump = max(v.jump for v in values)
        self.build.add(LayerSpec(path, kind, params, tuple(v.id for v in values),
                                 tuple(v.shape for v in values), shape, self.loc(), rf))
        return Value(path, shape, rf, jump)

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
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnncost.errors import SpecError
from cnncost.layers import Built, Shape
from cnncost.spec.expr import Budget, ExprError, check_number, evaluate, render, show
from cnncost.spec.loader import YMap
from cnncost.spec.model import (
    MAX_DIM,
    MAX_LAYERS,
    MAX_NAME_CHARS,
    MAX_NESTING,
    MAX_PATH_CHARS,
    MAX_SAMPLE_ELEMENTS,
    MAX_STEPS,
    MAX_WORK,
    NAME_RE,
    RESERVED_NAMES,
    LayerSpec,
    Loc,
)

# What evaluating one field costs in the budget's units (a term of an expression is one):
# the context around an evaluation costs several terms' time.
EVAL_UNITS = 8


def fmt(shape: Sequence[Any]) -> str:
    """A shape as the messages write it: 3x224x224."""
    text = "x".join(str(d) if isinstance(d, int) and d.bit_length() <= 64 else show(d)
                    for d in shape[:8])
    return text + ("x..." if len(shape) > 8 else "")


def shown_key(key: Any) -> str:
    """A key as a spec path shows it, cut short when absurdly long."""
    text = str(key)
    return text if len(text) <= 64 else text[:40] + "..."


def short(value: Any) -> str:
    """A value quoted in a message, cut to 60 characters."""
    return show(value)


def shape_problem(shape: Sequence[Any]) -> str | None:
    """Why ``shape`` cannot be a tensor of one sample (None if it can)."""
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int):
            return f"sizes must be whole numbers, got {show(d)}"
        if d <= 0:
            return f"size {show(d)} must be positive"
        if d > MAX_DIM:
            return f"size {show(d)} in {fmt(shape)} is absurd; expected at most {MAX_DIM}"
    if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
        return (f"a {fmt(shape)} tensor is absurdly large; expected at most "
                f"{MAX_SAMPLE_ELEMENTS} elements per sample")
    return None


def name_problem(name: Any) -> str | None:
    """Why a layer or branch may not be called ``name`` (None if it may)."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("_"):
        return f"name {short(name)} must be an identifier (letters, digits, _) not starting with _"
    if len(name) > MAX_NAME_CHARS:
        return (f"name {short(name)} is {len(name)} characters long; expected at most "
                f"{MAX_NAME_CHARS}")
    if name in RESERVED_NAMES:
        return (f"name {name!r} is reserved (a Python keyword or a torch module attribute); "
                "choose another name")
    return None


def _value(raw: Any, scope: Mapping[str, Any], budget: Budget) -> Any:
    """A field's value (see Ctx.eval); raises ExprError."""
    if isinstance(raw, str):
        return evaluate(raw, scope, budget)
    if isinstance(raw, list):
        budget.charge(len(raw))
        return [_value(v, scope, budget) for v in raw]
    check_number(raw)
    return raw


def layered(scope: Mapping[str, Any], names: Mapping[str, Any]) -> Mapping[str, Any]:
    """``scope`` with ``names`` added on top, without copying it (every item sees a scope of
    its own, and copying a large one per item would make a spec's size quadratic)."""
    if isinstance(scope, ChainMap):
        return scope.new_child(dict(names))
    # ChainMap only reads the maps after the first; the scope is never written through it
    return ChainMap(dict(names), scope)  # type: ignore[arg-type]


@dataclass
class Recording:
    """What one compilation depended on (see compile_spec's ``record``)."""

    names: set[str] = field(default_factory=set)
    work: int = 0
    spatial_fields: bool = False


def joined_fields(rfs: Sequence[tuple[int, ...]], jumps: Sequence[tuple[float, ...]]
                  ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Branches joined (add, concat, mul): per dim, the largest field and jump."""
    return (tuple(max(axis) for axis in zip(*rfs, strict=True)),
            tuple(max(axis) for axis in zip(*jumps, strict=True)))


def field_axes(rf: tuple[int, ...]) -> tuple[int, ...] | None:
    """A field's extent per dim where they differ (the report's receptive_field_axes),
    None where it is square (its receptive_field says it all)."""
    return rf if len(set(rf)) > 1 else None


@dataclass
class Value:
    """A tensor between items: the layer that made it, its shape, its receptive field."""

    id: str
    shape: Shape
    rf: tuple[int, ...]  # the receptive field per spatial dim of the input
    jump: tuple[float, ...]  # the product of the strides so far, per spatial dim


@dataclass
class Names:
    """A namespace for layer names (a block instance, a repeat child, a branch)."""

    prefix: str
    used: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    auto: set[str] = field(default_factory=set)  # names given by default (kind + counter)

    def child(self, name: str) -> Names:
        return Names(f"{self.prefix}{name}.")

    def default(self, kind: str) -> str:
        """The next default name of ``kind`` not taken here: conv1, conv2, ... (relu6_1)."""
        n = self.counters.get(kind, 0)
        sep = "_" if kind[-1].isdigit() else ""  # relu6_1, not relu61
        while True:
            n += 1
            candidate = f"{kind}{sep}{n}"
            if candidate not in self.used:
                break
        self.counters[kind] = n
        self.auto.add(candidate)
        return candidate


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
        # The arithmetic every expression, list and name template of this compilation may do.
        self.budget = Budget(MAX_WORK)
        # Whether a layer's fields were derived from spatial sizes (join's crop): then the
        # layers of a spec at another input size may differ in more than their shapes.
        self.spatial_fields = False

    def add(self, layer: LayerSpec) -> None:
        if len(self.layers) >= MAX_LAYERS:
            # loc.where already names the instance
            raise SpecError(f"the spec expands to more than {MAX_LAYERS} layers; expected a "
                            "network of realistic size (check repeat counts)", layer.loc.file,
                            layer.loc.line, layer.loc.where)
        self.layers.append(layer)


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

    def but(self, **changes: Any) -> Ctx:
        """This context with some fields changed: dataclasses.replace without its checks
        (a context is made per item, key and branch; replace() dominated compiling)."""
        new = object.__new__(Ctx)
        new.__dict__.update(self.__dict__, **changes)
        return new

    def at(self, where: str, line: int | None, file: str | None = None) -> Ctx:
        """The same context at another spec position (in another file, if given)."""
        return self.but(where=where, line=line, file=file or self.file)

    def key(self, key: str, line: int | None = None) -> Ctx:
        """The position of field ``key`` of this item (on ``line``, default: the item's)."""
        return self.but(where=f"{self.where}.{shown_key(key)}",
                        line=self.line if line is None else line)

    def within(self, ns: Names) -> Ctx:
        """The same position, naming layers in ``ns``."""
        return self.but(ns=ns)

    def using(self, scope: Mapping[str, Any]) -> Ctx:
        """The same position, with ``scope`` as the names its expressions see."""
        return self.but(scope=scope)

    def seeing(self, value: Value, **names: Any) -> Ctx:
        """The context with ``in`` (the channels of ``value``) and ``names`` visible."""
        return self.but(scope=layered(self.scope, {**names, "in": value.shape[0]}))

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
        """A field's value: strings are expressions over the scope, lists element-wise.

        Every value is charged to the compilation's budget and every number checked
        (finite, at most MAX_MAGNITUDE), whether written as a number or computed.
        """
        try:
            self.build.budget.charge(EVAL_UNITS)
            return _value(raw, self.scope, self.build.budget)
        except ExprError as exc:
            raise self.err(str(exc)) from None

    def render(self, raw: Any) -> Any:
        """A name written as a template, ``"enc{i + 1}"``, filled in (non-strings as they are)."""
        if not isinstance(raw, str):
            return raw
        try:
            return render(raw, self.scope, self.build.budget)
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
        """``name`` if a layer or branch may be called so, else the error saying why not."""
        problem = name_problem(name)
        if problem:
            raise self.err(problem)
        return str(name)

    def name(self, name: str | None, kind: str) -> str:
        """Take ``name`` in this namespace, or the next default name of ``kind`` (conv3)."""
        ns = self.ns
        if name is None:
            name = ns.default(kind)
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
        if len(ns.prefix) + len(name) > MAX_PATH_CHARS:
            raise self.err(f"the path {short(ns.prefix + name)} is longer than {MAX_PATH_CHARS} "
                           "characters; expected layers nested less deeply")
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
        rf, jump = joined_fields([v.rf for v in values], [v.jump for v in values])
        self.build.add(LayerSpec(path, kind, params, tuple(v.id for v in values),
                                 tuple(v.shape for v in values), shape, self.loc(),
                                 max(rf), None, field_axes(rf)))
        return Value(path, shape, rf, jump)


def receptive_field(ctx: Ctx, built: Built, value: Value
                    ) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The receptive field and jump per spatial dim after ``built`` on ``value``, checked
    to be finite: per dim, field += (extent - 1) x jump, then jump x= stride. A layer's one
    value stands for every dim (and so does its first where it has another number of
    dims than the input: after a flatten, say)."""
    kernel, stride = built.rf_kernel, built.rf_stride
    if kernel.count(1) == len(kernel) and stride.count(1) == len(stride):
        # one position, the step kept (a 1x1 conv, batch norm, an activation: most layers,
        # and each is stepped at every point of a sweep): the field and jump as they were
        return value.rf, value.jump
    nd = len(value.rf)
    kernel = kernel if len(kernel) == nd else (kernel[0],) * nd
    stride = stride if len(stride) == nd else (stride[0],) * nd
    rf, jump = [], []
    for field_, step, k, s in zip(value.rf, value.jump, kernel, stride, strict=True):
        grow, after = (k - 1) * step, step * s
        if not (math.isfinite(grow) and math.isfinite(after)):
            # strides of 10**9 on a 1x1 map are legal in torch, but the receptive field
            # they imply overflows a float after a few layers (inf, then NaN)
            raise ctx.err("the receptive field grows beyond any number (the strides so far "
                          "multiply to more than 1e308); expected strides that fit the input")
        rf.append(field_ + round(grow))
        jump.append(after)
    return tuple(rf), tuple(jump)

"""The advice-rule registry: one decorated function per guideline, and what rules share.

A rule is a function ``rule(ctx) -> Iterable[Proposal]`` registered with
``@advice_rule(name, guideline=..., lecture=..., ...)``. It looks at the compiled spec and
its document and proposes rewritten documents; the engine compiles and counts each one, so
a rule never estimates a number. Its docstring says what it looks for and, in a paragraph
starting ``Threshold:``, when it fires (refused at import time without one). ``example`` and
``near_miss`` are small specs on either side of the threshold; the tests run every
registered rule on both, so a new rule is tested without editing a test.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

from cnncost.advise.rewrite import Node, dump, nodes
from cnncost.advise.trunk import Unit, trunk_units
from cnncost.spec import LayerSpec, ModelSpec, parse_spec
from cnncost.table import CostRow, CostTable

# The lectures, cited as their authors name them.
ERDEM = ('Aykut Erdem, COMP541 Deep Learning, Lecture 5 "Convolutional Neural Networks" '
         "(Koç University, Fall 2024)")
NG = "lecture notes on Andrew Ng's \"Deep Convolutional Models\" (deeplearning.ai CNN course)"
KHAN = ('Nazar Khan, CS-568 Deep Learning (PUCIT), "Variations of Convolutional Neural '
        'Networks"')
KI = 'Ando Ki, Deep Learning "Convolutional Neural Network" (2019-2020)'


class Goal(str, Enum):
    """What a rule's rewrite is for: saving cost, or fixing a design problem (may cost more)."""

    COST = "cost"
    QUALITY = "quality"


@dataclass(frozen=True)
class Proposal:
    """A rewritten document and what to say about it (the numbers come from counting it)."""

    layers: tuple[str, ...]     # the original layers the rewrite replaces or follows
    source: str                 # file:line of the spec item
    found: str                  # what the rule saw, with numbers
    rewrite: str                # the concrete change
    note: str                   # how the function changes (honest: nothing here is free)
    doc: Any                    # the rewritten document (plain dicts and lists)
    shared: str = ""            # "... used N times: rewriting it changes all N uses"
    expected: str = ""          # the lecture's closed form for this case, when there is one
    changes_function: bool = True
    # Layer-name prefixes of the rewritten layers in the new spec (default: ``layers``): their
    # rows give the layers' effect, the last of them the receptive field at their output.
    anchors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A registered rule: its guideline, the lecture it comes from, and its threshold."""

    name: str
    guideline: str
    lecture: str
    goal: Goal
    # Cost rules: the rewritten layers' params or MACs must fall at least this much (counted).
    min_layer_saving: float
    find: Callable[[Context], Iterable[Proposal]] = field(repr=False)
    doc: str = ""
    example: str = field(default="", repr=False)
    near_miss: str = field(default="", repr=False)

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n")[0].replace("\n", " ")

    @property
    def threshold(self) -> str:
        for para in self.doc.split("\n\n"):
            if para.startswith("Threshold:"):
                return para.removeprefix("Threshold:").strip().replace("\n", " ")
        return ""


ADVICE_RULES: dict[str, Rule] = {}


def advice_rule(name: str, *, guideline: str, lecture: str, goal: Goal = Goal.COST,
                min_layer_saving: float = 0.0, example: str = "", near_miss: str = ""
                ) -> Callable[[Callable[[Context], Iterable[Proposal]]],
                              Callable[[Context], Iterable[Proposal]]]:
    """Register a rule under ``name``; a duplicate name or a missing threshold raises."""

    def deco(fn: Callable[[Context], Iterable[Proposal]]
             ) -> Callable[[Context], Iterable[Proposal]]:
        if name in ADVICE_RULES:
            raise RuntimeError(f"advice rule {name!r} registered twice")
        doc = inspect.cleandoc(fn.__doc__ or "")
        if "\n\nThreshold:" not in doc:
            raise RuntimeError(f"advice rule {name!r}: its docstring needs a 'Threshold:' "
                               "paragraph")
        ADVICE_RULES[name] = Rule(name, guideline, lecture, goal, min_layer_saving, fn, doc,
                                  inspect.cleandoc(example), inspect.cleandoc(near_miss))
        return fn

    return deco


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What rules look at: the compiled spec, its document, its nodes and its counted table."""

    spec: ModelSpec
    doc: Any
    table: CostTable

    @cached_property
    def nodes(self) -> dict[str, Node]:
        return nodes(self.spec, self.doc)

    @cached_property
    def layer(self) -> dict[str, LayerSpec]:
        return {lay.path: lay for lay in self.spec.layers}

    @cached_property
    def row(self) -> dict[str, CostRow]:
        return {r.name: r for r in self.table.layers}

    @cached_property
    def units(self) -> list[Unit]:
        return trunk_units(self.spec)

    @cached_property
    def node_of(self) -> dict[str, Node]:
        """Layer path -> its node."""
        return {u.path: n for n in self.nodes.values() for u in n.uses}

    def convs(self) -> Iterator[Node]:
        """Conv nodes, in order of first use."""
        return (n for n in self.nodes.values() if n.kind == "conv")

    def compile(self, doc: Any) -> ModelSpec:
        """A rewritten document compiled (shapes and receptive fields; no counting)."""
        return parse_spec(dump(doc), self.spec.file + " (rewritten)", dict(self.spec.vars))

    def producer(self, lay: LayerSpec, skip: tuple[str, ...]) -> LayerSpec | None:
        """The layer feeding ``lay``, looking through layers of the kinds in ``skip``."""
        cur: LayerSpec | None = lay
        while cur is not None and cur.inputs:
            cur = self.layer.get(cur.inputs[0])
            if cur is None or cur.kind not in skip:
                return cur
        return None


# --------------------------------------------------------------------------- conv fields


def c_in(u: LayerSpec) -> int:
    return u.in_shapes[0][0]


def c_out(u: LayerSpec) -> int:
    return u.out_shape[0]


def dims(u: LayerSpec) -> int:
    """Spatial dimensions of a layer's input (2 for images)."""
    return len(u.in_shapes[0]) - 1


def same_all(value: Any) -> Any:
    """An int, or a list of equal ints, as one int; anything else as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list) and value and all(v == value[0] for v in value) and (
            isinstance(value[0], int)):
        return value[0]
    return None


def square_kernel(uses: Iterable[LayerSpec]) -> int | None:
    """The kernel size K when every use has the same K x K (x K) kernel."""
    sizes = {same_all(u.params.get("kernel")) for u in uses}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def standard(u: LayerSpec) -> bool:
    """A conv with one group and no dilation."""
    return u.params.get("groups", 1) == 1 and same_all(u.params.get("dilation", 1)) == 1


def kernel_area(u: LayerSpec) -> int:
    k = u.params["kernel"]
    return math.prod(k) if isinstance(k, list) else int(k) ** dims(u)


def uniform_padding(uses: Iterable[LayerSpec]) -> int | str | None:
    """'same', 'valid' or one int of padding shared by every use (and every side)."""
    values = {repr(p if isinstance(p, str) else same_all(p))
              for p in (u.params.get("padding", 0) for u in uses)}
    if len(values) != 1 or values == {"None"}:
        return None
    value = next(iter(uses)).params.get("padding", 0)
    return value if isinstance(value, str) else same_all(value)


def widths(uses: Iterable[LayerSpec], raw_out: Any) -> tuple[Any, str]:
    """``out`` of the first conv of a chain that replaces one conv C_in -> C_out, keeping the
    narrower of the two widths until the last conv, and its description."""
    pairs = [(c_in(u), c_out(u)) for u in uses]
    if all(i <= o for i, o in pairs):
        return "in", "C_in"
    if all(i >= o for i, o in pairs):
        return raw_out, "C_out"
    return f"min(in, ({raw_out}))", "min(C_in, C_out)"


def scaled(raw: Any, op: str, factor: int) -> Any:
    """``raw * factor`` or ``raw // factor`` as a field value (an expression when ``raw`` is)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw * factor if op == "*" else max(1, raw // factor)
    return f"({raw}) {op} {factor}" if op == "*" else f"max(1, ({raw}) // {factor})"


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))

"""The trunk of a compiled network: the points every path from input to output goes through.

The lectures' guidelines on data volume ("decrease H x W x C slowly") and channel counts are
about the main path from bottom to top, not about what happens inside a block (an inverted
residual expands and projects on purpose). So the trunk is read at block level: a block
instance (or one repetition of a repeated block) is one unit; any other layer on the trunk is
its own unit. Pure shape arithmetic on the compiled spec, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnncost.spec import LayerSpec, ModelSpec

Shape = tuple[int, ...]
# Kinds that reduce a map to one value per channel: the network's head starts there.
GLOBAL_POOLS = ("global_avg_pool", "adaptive_avg_pool", "adaptive_max_pool")


@dataclass(frozen=True)
class Unit:
    """A stretch of the trunk: one block instance, or one layer."""

    name: str
    layers: tuple[LayerSpec, ...]
    in_shape: Shape

    @property
    def out_shape(self) -> Shape:
        return self.layers[-1].out_shape

    @property
    def in_volume(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_volume(self) -> int:
        return math.prod(self.out_shape)

    def convs(self) -> list[LayerSpec]:
        return [lay for lay in self.layers if lay.kind == "conv"]


def articulation(spec: ModelSpec) -> list[int]:
    """Indices of the layers whose output every later layer depends on only through it."""
    last_use: dict[str, int] = {}
    for i, lay in enumerate(spec.layers):
        for v in lay.inputs:
            last_use[v] = max(last_use.get(v, -1), i)
    out, reach = [], last_use.get("input", -1)
    for i, lay in enumerate(spec.layers):
        if reach <= i:
            out.append(i)
        reach = max(reach, last_use.get(lay.path, i))
    return out


def _unit_names(spec: ModelSpec) -> list[str]:
    """Each layer's unit: the outermost block instance (one repetition of a repeated block)
    it belongs to, or its own path."""
    in_block = {lay.path: lay.loc.where.startswith("blocks.") for lay in spec.layers}
    outside: set[str] = set()  # prefixes holding a layer that is not part of a block
    children: dict[str, set[str]] = {}
    for path, inside in in_block.items():
        parts = path.split(".")
        for n in range(1, len(parts)):
            prefix = ".".join(parts[:n])
            children.setdefault(prefix, set()).add(parts[n])
            if not inside:
                outside.add(prefix)
    names = []
    for lay in spec.layers:
        parts = lay.path.split(".")
        name = lay.path
        if in_block[lay.path]:
            for n in range(1, len(parts)):
                prefix = ".".join(parts[:n])
                if prefix not in outside:
                    name = prefix
                    if all(c.isdigit() for c in children.get(prefix, ())) and n < len(parts) - 1:
                        name = ".".join(parts[:n + 1])  # a repetition of a repeated block
                    break
        names.append(name)
    return names


def trunk_units(spec: ModelSpec) -> list[Unit]:
    """The trunk as units, in execution order, up to where the map collapses to one value
    per channel (global pooling, flatten, linear): the feature hierarchy, not the head."""
    names = _unit_names(spec)
    points = set(articulation(spec))
    units: list[Unit] = []
    start, shape = 0, spec.input_shape
    for i, lay in enumerate(spec.layers):
        if i in points and (len(lay.out_shape) < 2 or math.prod(lay.out_shape[1:]) == 1):
            break
        last_of_unit = i + 1 == len(spec.layers) or names[i + 1] != names[i]
        if i in points and last_of_unit:
            units.append(Unit(names[i], spec.layers[start:i + 1], shape))
            start, shape = i + 1, lay.out_shape
    return units


def collapse_point(spec: ModelSpec) -> int | None:
    """Index of the trunk layer that pools the map to one value per channel, if there is one
    (a squeeze-excite gate pools too, but off the trunk)."""
    for i in articulation(spec):
        lay = spec.layers[i]
        shape = lay.out_shape
        if len(lay.in_shapes[0]) > 1 and math.prod(lay.in_shapes[0][1:]) > 1 and (
                lay.kind in GLOBAL_POOLS or lay.kind in ("avg_pool", "max_pool")) and (
                len(shape) > 1 and math.prod(shape[1:]) == 1):
            return i
    return None

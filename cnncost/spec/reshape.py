"""The compiler's reshaping phase: a compiled spec at other variable values, its layers kept,
their shapes inferred again.

A sweep over the input resolution compiles the same spec a thousand times, and every time
the expansion (which layers, their names, fields and wiring) comes out the same: only the
shapes move. :meth:`Compilation.of` compiles a point in full, recording what the layers
depended on (``compile_spec(record=...)``): every name their expressions looked up, and
whether a field was derived from spatial sizes (a cropping join). :meth:`Compilation.at`
gives the spec at another point's top level (``compile_top``: ``vars`` and ``input``
evaluated) where reusing the expansion is provably what compile_spec would make, else None:

- every variable the layers' expressions read has the same value (same type, same repr),
  so every expression, condition, repeat count and name template gives the same result;
- no field was derived from spatial sizes (crop), and the shapes are inferred again layer
  by layer with the compiler's own functions and checks (``build_layer``,
  ``receptive_field``, ``joined_shape``); every value's channel count (what ``in``
  reads) comes out as before;
- the work stays within the compilation's budget.

Anything else, or any error on the way, is None: compiling the point in full gives
compile_spec's own error. A spec it gives equals ``compile_spec`` at that point field for
field (tests/test_reuse.py holds them equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnncost.caches import cache
from cnncost.layers import LAYERS, Built, Shape
from cnncost.spec.compiler import (
    Top,
    build_layer,
    compile_spec,
    compile_top,
    items,
)
from cnncost.spec.composites import joined_shape
from cnncost.spec.context import (
    Build,
    Ctx,
    Names,
    Recording,
    Value,
    field_axes,
    joined_fields,
    receptive_field,
)
from cnncost.spec.model import MAX_WORK, LayerSpec, ModelSpec

# Layers inferred on inputs (shape, receptive field, jump each): the later stages of a
# network see the same sizes at neighbouring resolutions. Keyed on the identity of a
# compilation's layer (kept alive in the entry, so the identity is never reused) and the
# inputs.
_INFERRED: dict[tuple[Any, ...], tuple[Any, ...]] = cache("reshape: layers inferred")
_BUILT: dict[Any, Built] = cache("reshape: layers built")  # see _built
MAX_INFERRED = 50_000
_set = object.__setattr__


@dataclass(frozen=True)
class Compilation:
    """A full compilation and what it depended on (see the module docstring)."""

    spec: ModelSpec
    reads: frozenset[str]  # names the layers' expressions looked up
    values: Mapping[str, str]  # Top.values at the compiled point
    work: int  # evaluation work beyond vars and input

    @classmethod
    def of(cls, doc: Any, file: str, overrides: Mapping[str, Any],
           input_shape: Sequence[int] | None = None
           ) -> tuple[ModelSpec, Compilation | None]:
        """compile_spec's spec, and its Compilation (None where no other point can reuse it:
        a field was derived from spatial sizes)."""
        record = Recording()
        spec = compile_spec(doc, file, dict(overrides), input_shape, record)
        if record.spatial_fields:
            return spec, None
        top = compile_top(doc, file, dict(overrides), input_shape)
        return spec, cls(spec, frozenset(record.names), top.values, record.work)

    def at(self, top: Top) -> ModelSpec | None:
        """The spec at ``top`` (compile_top of another point), or None where only compiling
        it in full is sure to give what compile_spec gives."""
        values = top.values
        if top.work + self.work > MAX_WORK or values.keys() != self.values.keys():
            return None
        if any(values.get(n) != self.values.get(n) for n in self.reads):
            return None
        return reshaped(self.spec, top.scope, top.input_shape, self.spec.file)


Field = tuple[Shape, tuple[int, ...], tuple[float, ...]]  # shape, field and jump per dim


def reshaped(spec: ModelSpec, scope: Mapping[str, Any], in_shape: Shape,
             file: str) -> ModelSpec | None:
    """``spec``'s layers with their shapes inferred again from ``in_shape`` (None where
    anything differs from what compiling would check or give: see the module docstring)."""
    if len(in_shape) != len(spec.input_shape) or in_shape[0] != spec.input_shape[0]:
        return None
    ctx = Ctx(Build(file, items), file, "", 1, Names(""), {})
    # value id -> (shape, receptive field, jump), as the compiler's Values hold them
    dims = max(1, len(in_shape) - 1)
    env: dict[str, Field] = {"input": (in_shape, (1,) * dims, (1.0,) * dims)}
    layers = []
    if len(_INFERRED) >= MAX_INFERRED:  # a long sweep: keep what the next points are near
        _INFERRED.clear()
    known = _INFERRED
    try:
        for layer in spec.layers:
            values = [env[k] for k in layer.inputs]
            # A layer's step is a function of its own fields and what flows in: the same
            # inputs as at an earlier point, the same LayerSpec (neighbouring resolutions
            # meet the same sizes in a network's later stages).
            key = (id(layer), *values)
            found = known.get(key)
            if found is None or found[0] is not layer:
                found = known[key] = (layer, *_step(ctx, layer, values))
            if found[1] is None:
                return None
            layers.append(found[1])
            env[layer.path] = found[2]
    except Exception:  # any failure: compiling the point in full says what
        return None
    return ModelSpec(
        name=spec.name,
        description=spec.description,
        source=spec.source,
        file=spec.file,
        input_shape=in_shape,
        vars={k: v for k, v in scope.items() if not k.startswith("_")},
        layers=tuple(layers),
        output=spec.output,
        explain=spec.explain,
        reference=spec.reference,
    )


def _step(ctx: Ctx, layer: LayerSpec, values: list[Field]
          ) -> tuple[LayerSpec | None, Field | None]:
    """``layer`` on ``values`` as compiling infers it; (None, None) where it cannot be
    reused (an error: compiling says what it is)."""
    if layer.built is not None:
        shape, rf, jump = values[0]
        built = _built(ctx, layer, shape)
        rf, jump = receptive_field(ctx, built, Value(layer.inputs[0], shape, rf, jump))
        out = built.out_shape
    else:
        op_shape = _op_shape(layer, [v[0] for v in values])
        if op_shape is None:
            return None, None
        ctx.check_shape(op_shape)
        built, out = None, op_shape
        rf, jump = joined_fields([v[1] for v in values], [v[2] for v in values])
    if len(out) != len(layer.out_shape) or out[0] != layer.out_shape[0]:
        return None, None  # a channel count moved: an expression reading `in` may differ
    # LayerSpec(...) without the frozen dataclass's __init__ (a field at a time)
    new = object.__new__(LayerSpec)
    _set(new, "__dict__", {"path": layer.path, "kind": layer.kind, "params": layer.params,
                           "inputs": layer.inputs,
                           "in_shapes": tuple([v[0] for v in values]), "out_shape": out,
                           "loc": layer.loc, "receptive_field": max(rf), "built": built,
                           "receptive_field_axes": field_axes(rf)})
    return new, (out, rf, jump)


def _built(ctx: Ctx, layer: LayerSpec, shape: Shape) -> Built:
    """build_layer, remembered by kind, fields (their values) and input shape: the same
    conv in every block of a stage is built once per input size."""
    # Keyed on each field's type too: 1, 1.0 and True are equal keys, not equal fields.
    key = (layer.kind, tuple([(k, _typed(v)) for k, v in layer.params.items()]), shape)
    found = _BUILT.get(key)
    if found is None:
        if len(_BUILT) >= MAX_INFERRED:
            _BUILT.clear()
        found = _BUILT[key] = build_layer(ctx, LAYERS[layer.kind], layer.params, shape)
    return found


def _typed(value: Any) -> Any:
    if type(value) is list:
        return tuple([(type(v), v) for v in value])
    return type(value), value


def _op_shape(layer: LayerSpec, shapes: Sequence[Shape]) -> Shape | None:
    if layer.kind == "slice":  # a split's equal channel chunks (crops never get here)
        x, p = shapes[0], layer.params
        return (p["length"], *x[1:]) if p.get("dim") == 0 else None
    if layer.kind in ("add", "mul", "concat"):
        return joined_shape(layer.kind, shapes)
    return None

"""The composition forms of the language, registered like layer kinds.

Each composite is a function decorated with ``@register_composite("name")``; it receives the
context of its item (:class:`~cnncost.spec.context.Ctx`: position, namespace, scope), the
fields written after its key, the value flowing in and the item's ``name:`` (or None), and
returns the value flowing out. Composites lower to the graph ops of ``model.OP_KINDS``
(add, concat, mul, slice) and compile their bodies with ``ctx.items``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cnncost import shapes as _shapes
from cnncost.layers import Shape
from cnncost.spec.context import Ctx, Value, fmt, short
from cnncost.spec.loader import YList, YMap
from cnncost.spec.model import MAX_BRANCHES, NAME_RE

CompositeFn = Callable[[Ctx, Any, Value, str | None], Value]


@dataclass(frozen=True)
class Composite:
    """A registered composition form: its key in a spec and its compile function."""

    name: str
    fn: CompositeFn
    doc: str
    # A flat composite makes no namespace: its items, and its repetitions, are named in
    # the enclosing one (and it takes no `name`).
    flat: bool = False


COMPOSITES: dict[str, Composite] = {}


def register_composite(name: str, flat: bool = False) -> Callable[[CompositeFn], CompositeFn]:
    """Register a composite under ``name``; a duplicate name raises at import time."""

    def deco(fn: CompositeFn) -> CompositeFn:
        if name in COMPOSITES:
            raise RuntimeError(f"composite {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        COMPOSITES[name] = Composite(name, fn, doc, flat)
        return fn

    return deco


def join_values(ctx: Ctx, kind: str, values: list[Value],
                params: dict[str, Any] | None = None) -> Value:
    """Join ``values`` by add, mul (x * gate) or concat, named after the kind (add1)."""
    shapes = [v.shape for v in values]
    out = joined_shape(kind, shapes)
    if out is None and kind == "add":
        raise ctx.err(f"cannot add {' and '.join(map(fmt, shapes))}; expected equal "
                      "shapes (or sizes of 1 that broadcast)")
    if out is None and kind == "mul":
        x, gate = shapes
        ones = "x".join(["1"] * (len(x) - 1))
        raise ctx.err(f"cannot multiply {fmt(x)} by a gate of {fmt(gate)}; expected "
                      f"the gate to be {fmt(x)} or {x[0]}x{ones}")
    if out is None:
        raise ctx.err(f"cannot concat {' and '.join(map(fmt, shapes))}; expected "
                      "equal sizes apart from channels")
    path = ctx.ns.prefix + ctx.name(None, kind)
    return ctx.op(kind, path, values, out, params or {})


def joined_shape(kind: str, shapes: Sequence[Shape]) -> Shape | None:
    """The shape an add, mul (x * gate) or concat of ``shapes`` makes (None: they do not
    join that way)."""
    if kind == "add":
        return _broadcast(shapes)
    if kind == "mul":
        x, gate = shapes
        return x if _broadcastable(x, gate) else None
    spatial = {s[1:] for s in shapes}
    if len(spatial) != 1 or len({len(s) for s in shapes}) != 1:
        return None
    return (sum(s[0] for s in shapes), *shapes[0][1:])


def _broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """The shape torch's broadcasting gives equal-rank ``shapes``, or None if it fails."""
    if len({len(s) for s in shapes}) != 1:
        return None
    return _shapes.broadcast(*shapes)


def _broadcastable(a: Shape, b: Shape) -> bool:
    """Whether ``b`` (of the same rank) broadcasts onto ``a`` unchanged."""
    return len(a) == len(b) and _shapes.broadcasts_to(b, a)


def _mapping(ctx: Ctx, args: Any, keys: Sequence[str]) -> YMap:
    if not isinstance(args, YMap):
        raise ctx.err(f"expected a mapping with {', '.join(keys)}")
    for key in args:
        if key not in keys:
            raise ctx.at(ctx.where, args.key_lines[key]).err(
                f"unknown field {key!r}; accepted: {', '.join(keys)}")
    return args


@register_composite("seq")
def seq(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """A namespace: ``seq: [...]`` names its layers ``seq1.conv1`` (or ``NAME.conv1``)."""
    return ctx.within(ctx.child(name, "seq")).items(args, x)


@register_composite("group", flat=True)
def group(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Items in the enclosing namespace: ``group: [...]``, to `if` or `repeat` them together."""
    return ctx.items(args, x)


@register_composite("residual")
def residual(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Body plus shortcut, added: ``residual: [...]`` or ``{layers, shortcut, when}``."""
    if isinstance(args, YList):
        args_map = YMap(layers=args)
        args_map.line, args_map.key_lines = args.line, {"layers": args.line}
        args = args_map
    args = _mapping(ctx, args, ("layers", "shortcut", "when"))
    # The body stays in the enclosing namespace unless the residual is named.
    body = ctx.within(ctx.child(name, "residual")) if name else ctx
    layers = body.key("layers", args.key_lines.get("layers", ctx.line))
    if "when" in args and not ctx.key("when", args.key_lines["when"]).condition(args["when"]):
        return layers.items(args.get("layers"), x)
    out = layers.items(args.get("layers"), x)
    short_cut = x
    if args.get("shortcut"):
        sname = body.name(None if "shortcut" in body.ns.used else "shortcut", "shortcut")
        short_cut = (body.within(body.ns.child(sname))
                     .key("shortcut", args.key_lines["shortcut"]).items(args["shortcut"], x))
    return join_values(body, "add", [out, short_cut])


def _paths(ctx: Ctx, args: Any) -> list[tuple[str, Any, int]]:
    if isinstance(args, YList):
        return [(f"branch{i + 1}", p, args.item_lines[i]) for i, p in enumerate(args)]
    if isinstance(args, YMap):
        paths = []
        for key, p in args.items():
            ctx.at(ctx.where, args.key_lines[key]).check_name(key)
            paths.append((key, p, args.key_lines[key]))
        return paths
    raise ctx.err("expected branches: a mapping of name: [layers] or a list of lists, "
                  f"got {short(args)}")


def _branches(ctx: Ctx, join: str, args: Any, x: Value, name: str | None,
              split: bool = False) -> Value:
    if isinstance(args, list | dict) and len(args) > MAX_BRANCHES:
        raise ctx.err(f"{'split' if split else join} of {len(args)} branches; expected at most "
                      f"{MAX_BRANCHES}")
    paths = _paths(ctx, args)
    if len(paths) < 2:
        raise ctx.err(f"{'split' if split else join} needs at least two branches, got "
                      f"{len(paths)}")
    base = ctx.within(ctx.child(name, join)) if name else ctx
    chunk = x.shape[0] // len(paths)
    if split and x.shape[0] % len(paths):
        raise ctx.err(f"cannot split {x.shape[0]} channels into {len(paths)} equal parts; "
                      "expected a channel count divisible by the number of branches")
    outs = []
    for i, (pname, body, pline) in enumerate(paths):
        # Each branch counts as an item, even an empty one (identity): an add of 20,000
        # empty branches, repeated, must meet the expansion limit like 20,000 layers.
        base.key(pname, pline).step()
        branch = base.within(base.key(pname, pline).child(pname, "branch"))
        start = x
        if split:
            start = branch.at(ctx.where, pline).op(
                "slice", branch.ns.prefix + "slice", [x], (chunk, *x.shape[1:]),
                {"dim": 0, "start": i * chunk, "length": chunk})
            branch.ns.used.add("slice")
        outs.append(branch.key(pname, pline).items(body, start))
    return join_values(base, "concat" if split else join, outs)


@register_composite("concat")
def concat(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Parallel branches concatenated on channels: ``concat: {b1: [...], b2: [...]}``."""
    return _branches(ctx, "concat", args, x, name)


@register_composite("add")
def add(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Parallel branches added (sizes of 1 broadcast): ``add: {b1: [...], b2: [...]}``."""
    return _branches(ctx, "add", args, x, name)


@register_composite("split")
def split(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Equal channel chunks, one per branch, then concat: ``split: {x1: [], x2: [...]}``."""
    return _branches(ctx, "concat", args, x, name, split=True)


@register_composite("scale")
def scale(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """``x * gate(x)`` (squeeze-excite): ``scale: [...]`` computes the gate."""
    gate = ctx.within(ctx.child(name, "scale")).items(args, x)
    return join_values(ctx, "mul", [x, gate])


@register_composite("tap")
def tap(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """Remember the value here under a name for a later ``join``: ``tap: skip1``."""
    args = ctx.render(args)
    if not isinstance(args, str) or not NAME_RE.match(args):
        raise ctx.err("tap takes a name, e.g. `- tap: skip1` or `- tap: \"skip{i + 1}\"`; got "
                      f"{short(args)}")
    if args in ctx.build.taps:
        raise ctx.err(f"tap {args!r} is defined twice; tap names must be unique in the whole "
                      "spec (a tap in a repeat or in a block used twice is defined once per "
                      "instance)")
    ctx.build.taps[args] = x
    return x


@register_composite("join")
def join(ctx: Ctx, args: Any, x: Value, name: str | None) -> Value:
    """A long skip: ``join: {tap: skip1, mode: concat|add, crop: true}`` with the tap."""
    args = _mapping(ctx, args, ("tap", "mode", "crop"))
    if "tap" not in args:
        raise ctx.err("missing field 'tap' for join, e.g. {tap: skip1, mode: concat}")
    kline = args.key_lines
    tap_name = ctx.key("tap", kline["tap"]).render(args["tap"])
    if tap_name not in ctx.build.taps:
        known = ", ".join(ctx.build.taps) or "(none yet)"
        raise ctx.key("tap", kline["tap"]).err(
            f"unknown tap {tap_name!r}; expected a tap defined above: {known}")
    mode = args.get("mode", "concat")
    if mode not in ("concat", "add"):
        raise ctx.key("mode", kline["mode"]).err(f"expected concat or add, got {mode!r}")
    crop = args.get("crop", False)
    if not isinstance(crop, bool):
        raise ctx.key("crop", kline["crop"]).err(f"expected true or false, got {crop!r}")
    skip = ctx.build.taps[tap_name]
    if crop:
        ctx.build.spatial_fields = True
        skip = _crop(ctx, tap_name, skip, x)
    return join_values(ctx, mode, [skip, x], {"tap": tap_name})


def _crop(ctx: Ctx, tap_name: str, skip: Value, x: Value) -> Value:
    """The centre of ``skip`` with the spatial size of ``x``, one slice per dimension."""
    if len(skip.shape) != len(x.shape):
        raise ctx.err(f"cannot crop tap {tap_name!r} ({fmt(skip.shape)}) to {fmt(x.shape)}; "
                      "expected tensors of the same rank")
    for dim in range(1, len(x.shape)):
        big, small = skip.shape[dim], x.shape[dim]
        if big < small:
            raise ctx.err(f"cannot crop tap {tap_name!r} ({fmt(skip.shape)}) to "
                          f"{fmt(x.shape)}; crop only shrinks, so the tap must be at least "
                          "as large")
        if big > small:
            shape = (*skip.shape[:dim], small, *skip.shape[dim + 1:])
            cname = ctx.ns.prefix + ctx.name(None, "crop")
            skip = ctx.op("slice", cname, [skip], shape,
                          {"tap": tap_name, "dim": dim, "start": (big - small) // 2,
                           "length": small})
    return skip

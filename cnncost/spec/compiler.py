"""The compiler: a loaded spec document -> a validated, fully resolved :class:`ModelSpec`.

``compile_spec`` reads the top level (vars, input, blocks), then compiles ``layers`` item
by item: an item is a layer kind (layers.LAYERS), a block of the spec, or a composite
(composites.COMPOSITES), optionally with ``name``, ``repeat``, ``first`` and ``if``. Every
item is compiled in a :class:`~cnncost.spec.context.Ctx` and turns the value flowing in into
the value flowing out; the layers it makes are appended to the shared Build in execution
order. The language itself is summarised in the docstring of :mod:`cnncost.spec`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cnncost.errors import LayerError, SpecError
from cnncost.layers import LAYERS, Built, LayerKind, Shape
from cnncost.spec.composites import COMPOSITES
from cnncost.spec.context import (
    Build,
    Ctx,
    Names,
    Recording,
    Value,
    field_axes,
    fmt,
    layered,
    receptive_field,
    short,
    shown_key,
)
from cnncost.spec.expr import ExprError, check_number, evaluate, listing
from cnncost.spec.fields import describe, example, fit, is_plain, literals
from cnncost.spec.loader import YList, YMap, load_document, load_yaml, resolve_extends
from cnncost.spec.model import (
    MAX_BLOCK_DEPTH,
    MAX_DIM,
    MAX_REPEAT,
    MAX_WEIGHT_ELEMENTS,
    NAME_RE,
    RESERVED_ITEM_KEYS,
    TOP_LEVEL_KEYS,
    LayerSpec,
    ModelSpec,
)

# --------------------------------------------------------------------------- entry points


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None,
              input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Read, validate and resolve a spec file; ``overrides`` replace its ``vars``."""
    return compile_spec(load_document(path), str(path), dict(overrides or {}), input_shape)


def declared_vars(path: str | Path) -> tuple[str, ...]:
    """The names of a spec file's ``vars`` (the specs it extends merged in), in order, read
    without compiling it: what ``--set`` may name. Errors as load_spec's for a file it cannot
    read or parse."""
    return vars_of(load_document(path))


def vars_of(doc: Any) -> tuple[str, ...]:
    """The names of a loaded spec document's ``vars`` (see load_document), in order."""
    raw = doc.get("vars") if isinstance(doc, YMap) else None
    return tuple(str(k) for k in raw) if isinstance(raw, YMap) else ()


def parse_spec(text: str, file: str = "<spec>", overrides: Mapping[str, Any] | None = None,
               input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Validate and resolve spec text (see load_spec)."""
    doc = resolve_extends(load_yaml(text, file), file)
    return compile_spec(doc, file, dict(overrides or {}), input_shape)


# --------------------------------------------------------------------------- top level


def compile_spec(doc: Any, file: str, overrides: Mapping[str, Any],
                 input_shape: Sequence[int] | None = None,
                 record: Recording | None = None) -> ModelSpec:
    """Compile a loaded spec document (see load_document) into a ModelSpec.

    With ``record``, what the compilation depended on is noted there (cnncost.spec.reshape):
    the names the expressions of everything but ``vars`` and ``input`` looked up, the work
    they did, and whether fields were derived from spatial sizes.
    """
    build = Build(file, items)
    top = Ctx(build, file, "", 1, Names(""), {})
    if not isinstance(doc, YMap):
        raise top.err("a spec is a mapping with `input` and `layers`")
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            raise _at_key(top, doc, key).err(
                f"unknown key {short(key)}; expected one of {', '.join(TOP_LEVEL_KEYS)}")
    scope = _vars(top, doc, overrides)
    build.vars = scope
    reads = build.budget.reads = None if record is None else record.names
    work = build.budget.left
    name = _text(top, doc, "name", scope) or Path(file).stem
    description = _text(top, doc, "description", scope)
    build.budget.reads = None  # the input is evaluated again wherever a compilation is reused
    work -= build.budget.left
    in_shape = _input(top, doc, scope, input_shape)
    build.budget.reads = reads
    work += build.budget.left
    _collect_blocks(top, doc)
    if "layers" not in doc:
        raise top.at("", doc.line).err("missing `layers`; expected a list like `layers: [{conv: "
                                       "{out: 64, kernel: 3}}, relu]`")
    layers = _at_key(top, doc, "layers").using(scope)
    if not doc["layers"]:
        raise layers.err("`layers` is empty; expected at least one layer")
    dims = max(1, len(in_shape) - 1)  # the input's spatial dims (one for a flat input)
    value = items(layers, doc["layers"], Value("input", in_shape, (1,) * dims, (1.0,) * dims))
    if not build.layers:
        raise layers.err("every layer was skipped (by `if` or `repeat: 0`); expected at least "
                         "one layer")
    if record is not None:
        record.work = work - build.budget.left
        record.spatial_fields = build.spatial_fields
    return ModelSpec(
        name=name,
        description=description,
        source=str(doc.get("source") or ""),
        file=file,
        input_shape=in_shape,
        vars={k: v for k, v in scope.items() if not k.startswith("_")},
        layers=tuple(build.layers),
        output=value.id,
        explain=doc.get("explain"),
        reference=_reference(top, doc),
    )


@dataclass(frozen=True)
class Top:
    """What a spec's top level gives at some variable values: every variable (``scope``),
    the input shape, and the work evaluating them took."""

    scope: dict[str, Any]
    input_shape: Shape
    work: int

    @cached_property
    def values(self) -> dict[str, str]:
        """Each variable's value as its repr: equal reprs, equal values of the same type (1,
        1.0 and True differ; so do -0.0 and 0.0)."""
        return {k: repr(v) for k, v in self.scope.items()}


def compile_top(doc: YMap, file: str, overrides: Mapping[str, Any],
                input_shape: Sequence[int] | None = None) -> Top:
    """The variables and the input shape compile_spec finds for ``overrides`` (a document
    it compiled before); errors as compile_spec's."""
    build = Build(file, items)
    top = Ctx(build, file, "", 1, Names(""), {})
    scope = _vars(top, doc, overrides)
    build.vars = scope
    in_shape = _input(top, doc, scope, input_shape)
    return Top(scope, in_shape, build.budget.limit - build.budget.left)


def _at_key(top: Ctx, doc: YMap, key: Any) -> Ctx:
    """The position of a top-level key (in the file it was written in)."""
    return top.at(shown_key(key), doc.key_lines.get(key, doc.line), doc.file_of(key))


def _text(top: Ctx, doc: YMap, key: str, scope: Mapping[str, Any]) -> str:
    """``name`` or ``description``: a string, a template over the vars ("resnet{depth}")."""
    raw = doc.get(key)
    if raw is None:
        return ""
    if key == "name" and not isinstance(raw, str):
        raise _at_key(top, doc, key).err(f"`name` must be a string, got {short(raw)}")
    return str(_at_key(top, doc, key).using(scope).render(str(raw)))


def _reference(top: Ctx, doc: YMap) -> dict[str, Any]:
    raw = doc.get("reference") or {}
    if not isinstance(raw, dict):
        raise _at_key(top, doc, "reference").err(
            "`reference` must be a mapping like {params: 25557032, source: '...'}")
    return dict(raw)


def _vars(top: Ctx, doc: YMap, overrides: Mapping[str, Any]) -> dict[str, Any]:
    raw = doc.get("vars") or YMap.empty(doc.line)
    if not isinstance(raw, YMap):
        raise _at_key(top, doc, "vars").err("`vars` must be a mapping of name: default")
    unknown = sorted(set(overrides) - set(raw))
    if unknown:
        raise top.at("", None).err(f"--set {unknown[0]}: the spec has no variable "
                                   f"{unknown[0]!r}; known: {listing(raw)}")
    scope: dict[str, Any] = {}
    for key, default in raw.items():
        if not isinstance(key, str) or not NAME_RE.match(key) or key in ("in", "i"):
            raise top.at("vars", raw.key_lines[key], raw.file_of(key)).err(
                f"bad variable name {key!r}; expected an identifier other than `in` and `i`")
        here = top.at(f"vars.{shown_key(key)}", raw.key_lines[key], raw.file_of(key)).using(scope)
        if key in overrides:
            scope[key] = _override(top, key, overrides[key], scope)
        else:
            scope[key] = _var(here, default)
        if not is_plain(scope[key]):
            raise here.err(f"value {scope[key]!r} is not a number, string, list or table of "
                           "them")
    return scope


def _var(here: Ctx, raw: Any) -> Any:
    """A variable's default; a mapping is a table (keys as written, values evaluated)."""
    if isinstance(raw, YMap):
        return {k: _var(here.at(f"{here.where}.{k}", raw.key_lines[k]), v)
                for k, v in raw.items()}
    return here.eval(raw)


def _override(top: Ctx, key: str, value: Any, scope: Mapping[str, Any]) -> Any:
    """A --set value: a number or an expression over the variables defined before it."""
    if isinstance(value, str):
        try:
            return evaluate(value, scope, top.build.budget)
        except ExprError as exc:
            raise top.at("", None).err(f"--set {key}={value}: {exc}; expected a number or an "
                                       f"expression, e.g. --set {key}=0.5") from None
    if not is_plain(value):
        raise top.at("", None).err(f"{key}={short(value)}: expected a number, bool, string, "
                                   "list or table of them")
    try:
        check_number(value)
    except ExprError as exc:
        raise top.at("", None).err(f"{key}={short(value)}: {exc}") from None
    return value


def _input(top: Ctx, doc: YMap, scope: dict[str, Any],
           override: Sequence[int] | None) -> Shape:
    if override is not None:
        shape: tuple[Any, ...] = tuple(override)
        here = top.at("--input", None)
    else:
        here = _at_key(top, doc, "input")
        if "input" not in doc:
            raise top.at("", doc.line).err("missing `input`, e.g. input: [3, 224, 224] "
                                           "(channels first)")
        raw = doc["input"]
        if not isinstance(raw, list):
            raise here.err(f"`input` must be a list like [3, 224, 224], got {raw!r}")
        shape = tuple(here.using(scope).eval(raw))
    one = "[3, 224, 224]" if override is None else "3x224x224"
    if len(shape) == 5 or (len(shape) == 4 and shape[0] == 1 and shape[1] in (1, 3)):
        raise here.err(f"{fmt(shape)} looks like it includes the batch dimension; give one "
                       f"sample's shape, channels first, e.g. {one} (the batch size is chosen "
                       "when analysing, --batch)")
    declared = doc.get("input")
    if override is not None and isinstance(declared, list) and len(declared) != len(shape):
        # Conv dimensionality follows the input's rank: a 2-D net fed 3x224 would
        # silently become a 1-D net.
        raise here.err(f"{fmt(shape)} has {len(shape)} dims but the spec's input has "
                       f"{len(declared)}; give one sample's shape like "
                       f"{'x'.join(['3'] + ['224'] * (len(declared) - 1))}")
    if not 1 <= len(shape) <= 4:
        raise here.err(f"input has {len(shape)} dims; expected (C,), (C, L), (C, H, W) or "
                       f"(C, D, H, W), e.g. {one}")
    here.check_shape(shape)
    if override is not None and isinstance(declared, list):
        _check_channels(here, shape, declared[0])
    return tuple(int(s) for s in shape)


def _check_channels(here: Ctx, shape: Sequence[int], declared: Any) -> None:
    """A spec whose input channels are a number (not a variable) takes no other count:
    ``--input 224x224x3`` on ``input: [3, res, res]`` is channels-last, not 224 channels."""
    if type(declared) is not int or shape[0] == declared:
        return
    rest = list(shape[:-1] if shape[-1] == declared else shape[1:])
    meant = "x".join(map(str, [declared, *rest]))
    raise here.err(f"{fmt(tuple(shape))} has {shape[0]} input channels but the spec's input "
                   f"has {declared}; inputs are channels-first (CxHxW): --input {meant}")


def _collect_blocks(top: Ctx, doc: YMap) -> None:
    raw = doc.get("blocks") or YMap.empty(doc.line)
    if not isinstance(raw, YMap):
        raise _at_key(top, doc, "blocks").err(
            "`blocks` must be a mapping of name: {params, layers}")
    for name, body in raw.items():
        here = top.at(f"blocks.{shown_key(name)}", raw.key_lines[name], raw.file_of(name))
        if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("_"):
            raise here.at("blocks", here.line).err(
                f"bad block name {name!r}; expected an identifier (letters, digits, _) not "
                "starting with _")
        if name in LAYERS or name in COMPOSITES or name in RESERVED_ITEM_KEYS:
            raise here.err(f"block name {name!r} hides a built-in layer kind or key; choose "
                           "another name")
        if not isinstance(body, YMap) or "layers" not in body:
            raise here.err("a block is a mapping with `layers` (and optional `params`)")
        for key in body:
            if key not in ("params", "layers", "description"):
                raise here.at(here.where, body.key_lines[key]).err(
                    f"unknown key {key!r}; expected params, layers, description")
        params = body.get("params") or YMap.empty(body.line)
        if not isinstance(params, YMap):
            raise here.at(here.where, body.key_lines["params"]).err(
                "`params` must be a mapping of name: default (~ = required)")
        for key in params:
            if not isinstance(key, str) or not NAME_RE.match(key) or key in ("in", "i"):
                raise top.at(f"{here.where}.params", params.key_lines[key]).err(
                    f"bad param name {key!r}; expected an identifier other than `in` and `i`")
        top.build.blocks[name] = body


# --------------------------------------------------------------------------- items


def items(ctx: Ctx, items: Any, value: Value) -> Value:
    """Compile a list of items (at ``ctx``: the list's position), in order, from ``value``."""
    if items is None:
        return value
    if not isinstance(items, YList):
        raise ctx.err(f"expected a list of layers, got {short(items)}")
    ctx = ctx.at(ctx.where, ctx.line, items.file)
    for idx, raw in enumerate(items):
        value = _item(ctx.at(f"{ctx.where}[{idx}]", items.item_lines[idx]), raw, value)
    return value


def _item(ctx: Ctx, raw: Any, value: Value) -> Value:
    ctx.step()
    ctx.nested()
    ctx.build.depth += 1
    try:
        return _expand(ctx, raw, value)
    finally:
        ctx.build.depth -= 1


def _parse_item(ctx: Ctx, raw: Any) -> tuple[Ctx, str, Any, YMap]:
    """(context at the kind, kind, its fields, the item's other keys) of one list entry."""
    if isinstance(raw, str):
        kind, args, extra = raw, YMap.empty(ctx.line or 0), YMap.empty(ctx.line or 0)
    elif isinstance(raw, YMap):
        kinds = [k for k in raw if k not in RESERVED_ITEM_KEYS]
        ctx = ctx.at(ctx.where, raw.line)
        if len(kinds) != 1:
            found = ", ".join(map(str, kinds)) or "none"
            raise ctx.err(f"a layer entry needs exactly one kind key (besides "
                          f"{', '.join(RESERVED_ITEM_KEYS)}), found {found}")
        kind, args, extra = kinds[0], raw[kinds[0]], raw
    else:
        raise ctx.err(f"expected a layer like `- conv: {{out: 64, kernel: 3}}` or `- relu`, got "
                      f"{short(raw)}")
    if not isinstance(kind, str):
        raise ctx.err(f"layer kind must be a name, got {kind!r}")
    return ctx.key(kind), kind, args, extra


def _expand(ctx: Ctx, raw: Any, value: Value) -> Value:
    ctx, kind, args, extra = _parse_item(ctx, raw)
    lines = extra.key_lines
    if "if" in extra and not ctx.key("if", lines["if"]).seeing(value).condition(extra["if"]):
        return value
    name = extra.get("name")
    if name is not None:
        at_name = ctx.key("name", lines["name"]).seeing(value)
        name = at_name.check_name(at_name.render(name))
        if kind in COMPOSITES and COMPOSITES[kind].flat:
            raise at_name.err(f"a {kind} has no name: its items are named in the enclosing "
                              "namespace; expected no `name`, or `seq` for a namespace")
    if "repeat" in extra:
        return _repeat(ctx, kind, args, extra, name, value)
    if "first" in extra:
        raise ctx.key("first", lines["first"]).err("`first` only makes sense with `repeat`")
    return _one(ctx, kind, args, name, value)


def _repeat(ctx: Ctx, kind: str, args: Any, extra: YMap, name: str | None,
            value: Value) -> Value:
    """``repeat: n``: n copies named NAME.0 .. NAME.n-1, ``i`` = the repetition.

    A flat composite (``group``) is repeated in the enclosing namespace instead.
    """
    here = ctx.key("repeat", extra.key_lines["repeat"])
    n = here.seeing(value).eval(extra["repeat"])
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_REPEAT:
        raise here.err(f"repeat={n!r}; expected a whole number from 0 to {MAX_REPEAT}")
    first = extra.get("first")
    if first is not None:
        at_first = ctx.key("first", extra.key_lines["first"])
        if not isinstance(first, YMap):
            raise at_first.err("`first` must be a mapping of fields for the first repetition, "
                               "e.g. first: {stride: 2}")
        if args is not None and not isinstance(args, YMap):
            raise at_first.err(f"`first` overrides fields, but this {kind} is not given as a "
                               "mapping of fields")
    flat = kind in COMPOSITES and COMPOSITES[kind].flat
    inner = ctx.ns if flat else ctx.child(name, kind)
    for i in range(n):
        rep_args = _merge(args, first) if i == 0 and first else args
        instance = (f"{ctx.instance}, i={i}" if ctx.instance else f"i={i}") if flat else (
            f"{inner.prefix}{i}")
        child = ctx.but(ns=inner, scope=layered(ctx.scope, {"i": i}), instance=instance)
        child.step()
        value = _one(child, kind, rep_args, str(i), value)
    return value


def _merge(args: Any, first: YMap) -> YMap:
    merged = YMap()
    merged.line = getattr(args, "line", first.line)
    merged.key_lines = dict(getattr(args, "key_lines", {}))
    if isinstance(args, dict):
        merged.update(args)
    merged.update(first)
    merged.key_lines.update(first.key_lines)
    return merged


def _one(ctx: Ctx, kind: str, args: Any, name: str | None, value: Value) -> Value:
    """One item of ``kind`` (layer, block or composite) on ``value``."""
    ctx = ctx.seeing(value)
    if kind in LAYERS:
        return _leaf(ctx, LAYERS[kind], args, name, value)
    if kind in ctx.build.blocks:
        return _block(ctx, kind, args, name, value)
    if kind in COMPOSITES:
        return COMPOSITES[kind].fn(ctx, args, value, name)
    call = re.match(r"^\s*([A-Za-z_]\w*)\s*\(", kind)
    if call:
        raise ctx.err(f"layer kind {short(kind)} is not a name; a layer without fields is its "
                      "bare "
                      f"name, `- {call.group(1)}`, and fields are a mapping, e.g. "
                      "`- conv: {out: 64, kernel: 3}`")
    if not NAME_RE.match(kind):
        raise ctx.err(f"layer kind {short(kind)} is not a name; check the indentation and that "
                      "each item starts with `- `")
    known = [*LAYERS, *COMPOSITES, *ctx.build.blocks]
    # difflib is quadratic in the name's length: no suggestions for absurd names
    close = difflib.get_close_matches(kind, known, n=3) if len(kind) <= 64 else []
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ctx.err(f"unknown layer kind {short(kind)}; {hint}known: {listing(sorted(known))}")


# --------------------------------------------------------------------------- layers


def _leaf(ctx: Ctx, lk: LayerKind, args: Any, name: str | None, value: Value) -> Value:
    """A layer of a registered kind: fields checked against its signature, shape inferred."""
    if args is None:
        args = YMap.empty(ctx.line or 0)
    if not isinstance(args, YMap):
        raise ctx.err(_fields_expected(lk, args))
    params: dict[str, Any] = {}
    for key, raw in args.items():
        here = ctx.at(ctx.where, args.key_lines.get(key, ctx.line))
        if key not in lk.params:
            accepted = ", ".join(lk.params) or "no fields"
            raise here.err(f"unknown field {short(key)} for {lk.name}; accepted: {accepted}")
        params[key] = _coerce(here.key(key), raw, lk.hints[key])
    missing = [k for k in lk.required if k not in params]
    if missing:
        raise ctx.err(f"missing field {missing[0]!r} for {lk.name} (e.g. {{{example(lk)}}})")
    built, rf, jump = infer_layer(ctx, lk, params, value)
    path = ctx.ns.prefix + ctx.name(name, lk.name)
    ctx.build.add(LayerSpec(path, lk.name, params, (value.id,), (value.shape,), built.out_shape,
                            ctx.loc(), max(rf), built, field_axes(rf)))
    return Value(path, built.out_shape, rf, jump)


def infer_layer(ctx: Ctx, lk: LayerKind, params: Mapping[str, Any],
                value: Value) -> tuple[Built, tuple[int, ...], tuple[float, ...]]:
    """A layer of kind ``lk`` with ``params`` on ``value``: its module, receptive field and
    jump (the product of strides so far), checked (errors at ``ctx``)."""
    built = build_layer(ctx, lk, params, value.shape)
    return (built, *receptive_field(ctx, built, value))


def build_layer(ctx: Ctx, lk: LayerKind, params: Mapping[str, Any], shape: Shape) -> Built:
    """The module of kind ``lk`` with ``params`` on an input of ``shape``, checked: a
    function of these alone."""
    try:
        built = lk.fn(shape, **params)
    except LayerError as exc:
        raise ctx.err(f"{exc} (input {fmt(shape)})") from None
    ctx.check_shape(built.out_shape)
    if built.weight_elements > MAX_WEIGHT_ELEMENTS:
        raise ctx.err(f"its weight tensor would hold {built.weight_elements:,} elements, more "
                      f"than torch can allocate sensibly; expected at most "
                      f"{MAX_WEIGHT_ELEMENTS:,} (input {fmt(shape)})")
    return built


def _fields_expected(lk: LayerKind, args: Any) -> str:
    """What to write instead of ``args`` (not a mapping) after a layer kind."""
    bare = (f"`- {lk.name}` (or `{lk.name}: ~` beside name, if or repeat)")
    if not lk.params:
        return f"{lk.name} has no fields; write it as a bare name, {bare}; got {short(args)}"
    if not lk.required:
        some = ", ".join(f"{k}: ..." for k in list(lk.params)[:2])
        return (f"{lk.name} takes a mapping of fields, e.g. `- {lk.name}: {{{some}}}`, or none "
                f"for the defaults, {bare}; got {short(args)}")
    return (f"{lk.name} takes a mapping of fields, e.g. `- {lk.name}: {{{example(lk)}}}`; got "
            f"{short(args)}")


def _coerce(ctx: Ctx, raw: Any, hint: Any) -> Any:
    """A field's value fitted to its type hint (literals such as 'same' pass as they are)."""
    if isinstance(raw, str) and raw in literals(hint):
        return raw
    try:
        value = ctx.eval(raw)
    except SpecError as exc:
        if not isinstance(raw, str) or not NAME_RE.match(raw.strip()):
            raise
        raise ctx.err(f"expected {describe(hint)}, got {raw!r} ({exc.reason})") from None
    ok, result = fit(value, hint)
    if not ok:
        got = short(value) if value == raw else f"{short(raw)} = {short(value)}"
        raise ctx.err(f"expected {describe(hint)}, got {got}")
    if isinstance(result, float) and not math.isfinite(result):
        raise ctx.err(f"expected a finite number, got {short(result)}")
    whole = [v for v in (result if isinstance(result, list) else [result])
             if isinstance(v, int) and not isinstance(v, bool)]
    if any(abs(v) > MAX_DIM for v in whole):
        raise ctx.err(f"{short(value)} is absurdly large for a layer's field; expected at most "
                      f"{MAX_DIM}")
    return result


# --------------------------------------------------------------------------- blocks


def _block(ctx: Ctx, bname: str, args: Any, name: str | None, value: Value) -> Value:
    """An instance of a spec block: its params bound, its layers in a namespace of its own."""
    build = ctx.build
    if bname in build.block_stack:
        chain = " -> ".join([*build.block_stack, bname])
        raise ctx.err(f"block {bname!r} uses itself ({chain}); blocks may not use themselves, "
                      "directly or through other blocks")
    if len(build.block_stack) >= MAX_BLOCK_DEPTH:
        raise ctx.err(f"blocks nested deeper than {MAX_BLOCK_DEPTH} levels; expected at most "
                      f"{MAX_BLOCK_DEPTH}")
    body = build.blocks[bname]
    inner = _bind(ctx, bname, body, args, value)
    inner_ns = ctx.child(name, bname)
    build.block_stack.append(bname)
    try:
        at = Ctx(build, body.file, f"blocks.{bname}.layers", body.key_lines["layers"], inner_ns,
                 inner, instance=inner_ns.prefix.rstrip("."))
        return items(at, body["layers"], value)
    finally:
        build.block_stack.pop()


def _bind(ctx: Ctx, bname: str, body: YMap, args: Any, value: Value) -> ChainMap[str, Any]:
    """The names a block instance sees: the spec's vars, ``in`` and its params.

    Lexical scope: not the params of the block that uses it. Given params are evaluated
    where the block is used; defaults in the block's own scope, in order.
    """
    declared: YMap = body.get("params") or YMap.empty(body.line)
    if args is None:
        args = YMap.empty(ctx.line or 0)
    shown = ", ".join(f"{k}: ..." for k in declared)
    if not isinstance(args, YMap):
        raise ctx.err(f"block {bname} takes a mapping of its params, e.g. `- {bname}: "
                      f"{{{shown}}}`; got {short(args)}")
    # the params on top of the vars (not a copy of them: a block may be used many times)
    inner: ChainMap[str, Any] = ChainMap({"in": value.shape[0]}, ctx.build.vars)
    for key, raw in args.items():
        here = ctx.at(ctx.where, args.key_lines.get(key, ctx.line))
        if key not in declared:
            raise here.err(f"unknown param {short(key)} for block {bname}; accepted: "
                           f"{listing(declared)}")
        inner[key] = here.key(key).eval(raw)
    for key, default in declared.items():
        if key in args:
            continue
        if default is None:
            raise ctx.err(f"block {bname} needs param {key!r}, e.g. `- {bname}: {{{shown}}}`")
        inner[key] = (ctx.at(f"blocks.{bname}.params.{shown_key(key)}", declared.key_lines[key],
                             declared.file or body.file).using(inner).eval(default))
    return inner

"""YAML spec -> validated, fully resolved ModelSpec (no torch here).

A spec names what each layer produces; this module expands blocks, repeats and
expressions, infers every shape with the layer kinds' shape rules, checks every
field, and records for each resulting layer the file and line it came from.
The result is a flat list of :class:`LayerSpec` in execution order with explicit
data flow, which builder.py turns 1:1 into a torch.fx graph.

The language, in short::

    name: tiny                      # optional; also description, source, explain, reference
    vars: {width: 1.0, classes: 10} # defaults; `--set width=0.5` overrides (an expression)
    input: [3, 32, 32]              # one sample, channels first: (C,) .. (C, D, H, W)
    blocks:
      unit:                         # a reusable block: params (~ = required) and layers
        params: {c: ~, s: 1, mid: "c // 4"}
        layers: [...]
    layers:
      - conv: {out: "int(64 * width)", kernel: 3, stride: 2, padding: 1, bias: false}
      - relu                        # a bare name: a layer without fields
      - unit: {c: 64}               # a block, used like a layer kind
        name: layer1                # optional; default names are kind + counter (conv1, ...)
        repeat: 3                   # children layer1.0 .. layer1.2; `i` is the repetition
        first: {s: 2}               # fields or params overridden in the first repetition
        if: "classes > 0"           # skip the item when false

Fields hold numbers, lists, literals (``same``) or expressions (cnncost/expr.py) over the
vars, the block's params, ``in`` (the input channels of this item; in a block's param
defaults, of the block) and ``i``. A block sees the vars, its own params and ``in`` only
(lexical scope), not the params of the block that uses it.

Composites: ``seq: [...]`` (a namespace); ``residual: [...]`` or ``residual: {layers,
shortcut, when}`` (body + shortcut, identity when no shortcut; the body stays in the
parent namespace unless named; ``when`` false = plain sequence); ``concat:``/``add:``
``{b1: [...], b2: [...]}`` or a list of lists (parallel branches, each a namespace,
``[]`` = identity; add broadcasts sizes of 1); ``split: {x1: [], x2: [...]}`` (equal
channel chunks, then concat); ``scale: [...]`` (x * gate(x), squeeze-excite); ``tap:
name`` and ``join: {tap: name, mode: concat|add, crop: true}`` (long skips; crop takes
the centre of the tap). Names of layers and branches are unique per namespace and may
not be Python keywords or torch module attributes (RESERVED_NAMES).

Every error is one line ``FILE:LINE: where.path (in instance.path): what is wrong;
what was expected``; the instance path appears inside blocks and repeats, where the
spec position alone does not say which copy failed. Specs are loaded with a safe YAML
loader without anchors, aliases or tags, and expressions are evaluated by a small
interpreter, so nothing in a spec executes code; sizes, repeats and nesting are bounded.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from cnncost import shapes as _shapes
from cnncost.errors import LayerError, SpecError
from cnncost.layers import LAYERS, Built, LayerKind, Shape
from cnncost.spec.expr import ExprError, evaluate

MAX_FILE_BYTES = 1 << 20
MAX_LAYERS = 50_000
# Items visited while expanding (catches nested repeats of empty bodies).
MAX_STEPS = 100_000
MAX_REPEAT = 10_000
MAX_BLOCK_DEPTH = 32
# Composites nested inside each other (seq in seq in ...), blocks included.
MAX_NESTING = 64
MAX_DIM = 1 << 24
MAX_SAMPLE_ELEMENTS = 1 << 40

# Composition forms understood here (layer kinds live in layers.LAYERS).
COMPOSITES = ("seq", "residual", "concat", "add", "split", "scale", "tap", "join")
# Graph ops the compositions lower to; builder.py maps each to a torch function.
OP_KINDS = ("add", "concat", "mul", "slice")
RESERVED_ITEM_KEYS = ("name", "repeat", "if", "first")
TOP_LEVEL_KEYS = ("name", "description", "source", "input", "vars", "blocks", "layers", "explain",
                  "reference")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Layer and branch names become attributes of torch modules and names in generated code, so
# they may not be Python keywords, ``self``, or attributes of nn.Module / fx.GraphModule
# (tests/test_builder.py checks this list against the installed torch).
RESERVED_NAMES = frozenset(keyword.kwlist) | frozenset((
    "self", "T_destination", "add_module", "add_submodule", "apply", "bfloat16", "buffers",
    "call_super_init", "children", "code", "compile", "cpu", "cuda", "delete_all_unused_submodules",
    "delete_submodule", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "graph", "half", "ipu",
    "load_state_dict", "meta", "modules", "mtia", "named_buffers", "named_children",
    "named_modules", "named_parameters", "parameters", "print_readable", "recompile",
    "register_backward_hook", "register_buffer", "register_forward_hook",
    "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty",
    "to_folder", "train", "training", "type", "xpu", "zero_grad",
))


@dataclass(frozen=True)
class Loc:
    """Where a layer came from: file, line and the path of keys inside the spec."""

    file: str
    line: int
    where: str

    def error(self, reason: str) -> SpecError:
        return SpecError(reason, self.file, self.line, self.where)


@dataclass(frozen=True)
class LayerSpec:
    """One node of the compiled network: a layer (module) or a graph op (add/concat/...)."""

    path: str
    kind: str
    params: Mapping[str, Any]
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    loc: Loc
    receptive_field: int
    built: Built | None = field(default=None, repr=False, compare=False)

    @property
    def is_op(self) -> bool:
        return self.built is None


@dataclass(frozen=True)
class ModelSpec:
    """A fully resolved spec: input shape, variables and the layers in execution order."""

    name: str
    description: str
    source: str
    file: str
    input_shape: Shape
    vars: Mapping[str, Any]
    layers: tuple[LayerSpec, ...]
    output: str
    explain: Any = None
    # Published figures the spec must reproduce, e.g. {params: 25557032, source: "..."}.
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def output_shape(self) -> Shape:
        for layer in reversed(self.layers):
            if layer.path == self.output:
                return layer.out_shape
        return self.input_shape


# --------------------------------------------------------------------------- YAML with lines


class _YMap(dict[Any, Any]):
    line = 0
    key_lines: dict[Any, int]


class _YList(list[Any]):
    line = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers lines, refuses aliases and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _LoadError(
                "YAML aliases (*name) are not supported; use `blocks` to reuse layers",
                event.start_mark.line + 1,
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _LoadError(
                "YAML anchors (&name) are not supported; use `blocks` to reuse layers",
                event.start_mark.line + 1,
            )
        return super().compose_node(parent, index)


class _LoadError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _YMap:
    result = _YMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise _LoadError("mapping keys must be plain names or numbers, not lists or "
                             "mappings", key_node.start_mark.line + 1)
        if key in result:
            raise _LoadError(f"duplicate key {key!r}; each key may appear once in a mapping",
                             key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _YList:
    result = _YList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text safely, keeping line numbers; errors become SpecError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SpecError(f"spec is larger than {MAX_FILE_BYTES // 1024} KiB", file)
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise SpecError("YAML nested too deeply", file) from None
    except _LoadError as exc:
        raise SpecError(str(exc), file, exc.line) from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = (exc.problem or "").split(" at ")[0] or "unsupported YAML"
        tag = re.search(r"tag '([^']*)'", problem)
        if tag:
            problem = "YAML tag {} is not allowed".format(
                tag.group(1).replace("tag:yaml.org,2002:", "!!"))
        raise SpecError(
            f"{problem}; specs may only hold plain mappings, lists, numbers and strings",
            file, line,
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(exc.problem or exc.context).split())
        if "<block" in problem or "mapping values are not allowed" in problem:
            problem += "; check the indentation"
        elif "'\\t'" in problem:
            problem += "; indent with spaces, not tabs"
        raise SpecError(f"malformed YAML: {problem}", file, line) from None
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise SpecError(f"malformed YAML: character U+{char:04X} is not allowed in a spec",
                        file, line) from None
    except yaml.YAMLError as exc:
        raise SpecError("malformed YAML: " + " ".join(str(exc).split()), file) from None


# --------------------------------------------------------------------------- entry points


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None,
              input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Read, validate and resolve a spec file; ``overrides`` replace its ``vars``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec: {exc}", str(path)) from None
    return parse_spec(text, str(path), overrides, input_shape)


def parse_spec(text: str, file: str = "<spec>", overrides: Mapping[str, Any] | None = None,
               input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Validate and resolve spec text (see load_spec)."""
    doc = load_yaml(text, file)
    return _Compiler(file, doc, dict(overrides or {}), input_shape).compile()


# --------------------------------------------------------------------------- the compiler


@dataclass
class _Value:
    id: str
    shape: Shape
    rf: int
    jump: float


@dataclass
class _Scope:
    """A namespace for layer names (a block instance, a repeat child, a branch)."""

    prefix: str
    used: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    auto: set[str] = field(default_factory=set)  # names given by default (kind + counter)

    def child(self, name: str) -> _Scope:
        return _Scope(f"{self.prefix}{name}.")


class _Compiler:
    def __init__(self, file: str, doc: Any, overrides: dict[str, Any],
                 input_shape: Sequence[int] | None) -> None:
        self.file = file
        self.doc = doc
        self.overrides = overrides
        self.input_override = tuple(input_shape) if input_shape is not None else None
        self.layers: list[LayerSpec] = []
        self.taps: dict[str, _Value] = {}
        self.blocks: dict[str, _YMap] = {}
        self.block_stack: list[str] = []
        # Model path of the block instance or repeat child being expanded, named in errors
        # because the spec position alone (blocks.x.layers[0]) does not say which instance.
        self.context = ""
        self.vars: dict[str, Any] = {}
        self.steps = 0
        self.depth = 0

    # -- helpers -----------------------------------------------------------------------

    def err(self, reason: str, line: int | None, where: str) -> SpecError:
        return SpecError(reason, self.file, line, self.where(where) or None)

    def where(self, where: str) -> str:
        return f"{where} (in {self.context})" if where and self.context else where

    @contextmanager
    def within(self, context: str) -> Iterator[None]:
        saved, self.context = self.context, context
        try:
            yield
        finally:
            self.context = saved

    def eval(self, value: Any, scope: Mapping[str, Any], line: int, where: str) -> Any:
        if isinstance(value, str):
            try:
                return evaluate(value, scope)
            except ExprError as exc:
                raise self.err(str(exc), line, where) from None
        if isinstance(value, list):
            return [self.eval(v, scope, line, where) for v in value]
        return value

    # -- top level -----------------------------------------------------------------------

    def compile(self) -> ModelSpec:
        doc = self.doc
        if not isinstance(doc, _YMap):
            raise self.err("a spec is a mapping with `input` and `layers`", 1, "")
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                raise self.err(f"unknown key {key!r}; expected one of {', '.join(TOP_LEVEL_KEYS)}",
                               doc.key_lines[key], str(key))
        name = doc.get("name") or Path(self.file).stem
        if not isinstance(name, str):
            raise self.err(f"`name` must be a string, got {_short(name)}",
                           doc.key_lines.get("name"), "name")
        scope = self._vars(doc)
        self.vars = scope
        in_shape = self._input(doc, scope)
        self._collect_blocks(doc)
        if "layers" not in doc:
            raise self.err("missing `layers`; expected a list like `layers: [{conv: {out: 64, "
                           "kernel: 3}}, relu]`", doc.line, "")
        line = doc.key_lines["layers"]
        if not doc["layers"]:
            raise self.err("`layers` is empty; expected at least one layer", line, "layers")
        value = _Value("input", in_shape, 1, 1.0)
        value = self.items(doc["layers"], "layers", line, _Scope(""), value, scope)
        if not self.layers:
            raise self.err("every layer was skipped (by `if` or `repeat: 0`); expected at "
                           "least one layer", line, "layers")
        return ModelSpec(
            name=name,
            description=str(doc.get("description") or ""),
            source=str(doc.get("source") or ""),
            file=self.file,
            input_shape=in_shape,
            vars={k: v for k, v in scope.items() if not k.startswith("_")},
            layers=tuple(self.layers),
            output=value.id,
            explain=doc.get("explain"),
            reference=self._reference(doc),
        )

    def _reference(self, doc: _YMap) -> dict[str, Any]:
        raw = doc.get("reference") or {}
        if not isinstance(raw, dict):
            raise self.err("`reference` must be a mapping like {params: 25557032, source: "
                           "'...'}", doc.key_lines["reference"], "reference")
        return dict(raw)

    def _vars(self, doc: _YMap) -> dict[str, Any]:
        raw = doc.get("vars") or _YMap()
        if not isinstance(raw, _YMap):
            raise self.err("`vars` must be a mapping of name: default", doc.key_lines["vars"],
                           "vars")
        unknown = sorted(set(self.overrides) - set(raw))
        if unknown:
            known = ", ".join(map(str, raw)) or "(none)"
            raise SpecError(f"--set {unknown[0]}: the spec has no variable {unknown[0]!r}; "
                            f"known: {known}", self.file)
        scope: dict[str, Any] = {}
        for key, default in raw.items():
            if not isinstance(key, str) or not _NAME_RE.match(key) or key in ("in", "i"):
                raise self.err(f"bad variable name {key!r}; expected an identifier other than "
                               "`in` and `i`", raw.key_lines[key], "vars")
            if key in self.overrides:
                scope[key] = self._override(key, self.overrides[key], scope)
            else:
                scope[key] = self.eval(default, scope, raw.key_lines[key], f"vars.{key}")
            if not _is_plain(scope[key]):
                raise self.err(f"value {scope[key]!r} is not a number, string or list of them",
                               raw.key_lines[key], f"vars.{key}")
        return scope

    def _override(self, key: str, value: Any, scope: Mapping[str, Any]) -> Any:
        """A --set value: a number or an expression over the variables defined before it."""
        if isinstance(value, str):
            try:
                return evaluate(value, scope)
            except ExprError as exc:
                raise SpecError(f"--set {key}={value}: {exc}; expected a number or an "
                                f"expression, e.g. --set {key}=0.5", self.file) from None
        if not _is_plain(value):
            raise SpecError(f"{key}={value!r}: expected a number, bool, string or list of "
                            "them", self.file)
        return value

    def _input(self, doc: _YMap, scope: dict[str, Any]) -> Shape:
        line: int | None = doc.key_lines.get("input", doc.line)
        where = "input"
        if self.input_override is not None:
            shape = self.input_override
            line, where = None, "--input"
        else:
            if "input" not in doc:
                raise self.err("missing `input`, e.g. input: [3, 224, 224] (channels first)",
                               doc.line, "")
            raw = doc["input"]
            if not isinstance(raw, list):
                raise self.err(f"`input` must be a list like [3, 224, 224], got {raw!r}", line,
                               where)
            shape = tuple(self.eval(raw, scope, line or 1, where))
        one = "[3, 224, 224]" if where == "input" else "3x224x224"
        if len(shape) == 5 or (len(shape) == 4 and shape[0] == 1 and shape[1] in (1, 3)):
            raise self.err(f"{_fmt(shape)} looks like it includes the batch dimension; give "
                           f"one sample's shape, channels first, e.g. {one} (the batch size "
                           "is chosen when analysing, --batch)", line, where)
        declared = doc.get("input")
        if where == "--input" and isinstance(declared, list) and len(declared) != len(shape):
            # Conv dimensionality follows the input's rank: a 2-D net fed 3x224 would
            # silently become a 1-D net.
            raise self.err(f"{_fmt(shape)} has {len(shape)} dims but the spec's input has "
                           f"{len(declared)}; give one sample's shape like "
                           f"{'x'.join(['3'] + ['224'] * (len(declared) - 1))}", line, where)
        if not 1 <= len(shape) <= 4:
            raise self.err(f"input has {len(shape)} dims; expected (C,), (C, L), (C, H, W) "
                           f"or (C, D, H, W), e.g. {one}", line, where)
        self._check_shape(shape, line, where)
        return tuple(int(s) for s in shape)

    def _check_shape(self, shape: Sequence[Any], line: int | None, where: str) -> None:
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int):
                raise self.err(f"sizes must be whole numbers, got {d!r}", line, where)
            if d <= 0:
                raise self.err(f"size {d} must be positive", line, where)
            if d > MAX_DIM:
                raise self.err(f"size {d} in {_fmt(tuple(shape))} is absurd; expected at most "
                               f"{MAX_DIM}", line, where)
        if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
            raise self.err(f"a {_fmt(tuple(shape))} tensor is absurdly large; expected at most "
                           f"{MAX_SAMPLE_ELEMENTS} elements per sample", line, where)

    def _collect_blocks(self, doc: _YMap) -> None:
        raw = doc.get("blocks") or _YMap()
        if not isinstance(raw, _YMap):
            raise self.err("`blocks` must be a mapping of name: {params, layers}",
                           doc.key_lines["blocks"], "blocks")
        for name, body in raw.items():
            line = raw.key_lines[name]
            where = f"blocks.{name}"
            if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("_"):
                raise self.err(f"bad block name {name!r}; expected an identifier (letters, "
                               "digits, _) not starting with _", line, "blocks")
            if name in LAYERS or name in COMPOSITES or name in RESERVED_ITEM_KEYS:
                raise self.err(f"block name {name!r} hides a built-in layer kind or key; "
                               "choose another name", line, where)
            if not isinstance(body, _YMap) or "layers" not in body:
                raise self.err("a block is a mapping with `layers` (and optional `params`)",
                               line, where)
            for key in body:
                if key not in ("params", "layers", "description"):
                    raise self.err(f"unknown key {key!r}; expected params, layers, description",
                                   body.key_lines[key], where)
            params = body.get("params") or _YMap()
            if not isinstance(params, _YMap):
                raise self.err("`params` must be a mapping of name: default (~ = required)",
                               body.key_lines["params"], where)
            for key in params:
                if not isinstance(key, str) or not _NAME_RE.match(key) or key in ("in", "i"):
                    raise self.err(f"bad param name {key!r}; expected an identifier other than "
                                   "`in` and `i`", params.key_lines[key], f"{where}.params")
            self.blocks[name] = body

    # -- items -----------------------------------------------------------------------------

    def items(self, items: Any, where: str, line: int, ns: _Scope, value: _Value,
              scope: Mapping[str, Any]) -> _Value:
        if items is None:
            return value
        if not isinstance(items, _YList):
            raise self.err(f"expected a list of layers, got {_short(items)}", line, where)
        for idx, item in enumerate(items):
            value = self.item(item, f"{where}[{idx}]", items.item_lines[idx], ns, value, scope)
        return value

    def step(self, line: int, where: str) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.err(f"the spec expands to more than {MAX_STEPS} items; expected a "
                           "network of realistic size (check nested repeat counts)", line, where)

    def item(self, item: Any, where: str, line: int, ns: _Scope, value: _Value,
             scope: Mapping[str, Any]) -> _Value:
        self.step(line, where)
        if self.depth >= MAX_NESTING:
            raise self.err(f"layers nested more than {MAX_NESTING} levels deep", line, where)
        self.depth += 1
        try:
            return self._item(item, where, line, ns, value, scope)
        finally:
            self.depth -= 1

    def _item(self, item: Any, where: str, line: int, ns: _Scope, value: _Value,
              scope: Mapping[str, Any]) -> _Value:
        if isinstance(item, str):
            kind, args, extra = item, _YMap(), _YMap()
            args.line, args.key_lines = line, {}
        elif isinstance(item, _YMap):
            kinds = [k for k in item if k not in RESERVED_ITEM_KEYS]
            if len(kinds) != 1:
                found = ", ".join(map(str, kinds)) or "none"
                raise self.err(f"a layer entry needs exactly one kind key (besides "
                               f"{', '.join(RESERVED_ITEM_KEYS)}), found {found}",
                               item.line, where)
            kind = kinds[0]
            args = item[kind]
            extra = item
            line = item.line
        else:
            raise self.err(f"expected a layer like `- conv: {{out: 64, kernel: 3}}` or `- relu`, "
                           f"got {_short(item)}", line, where)
        if not isinstance(kind, str):
            raise self.err(f"layer kind must be a name, got {kind!r}", line, where)
        where = f"{where}.{kind}"
        here = {**scope, "in": value.shape[0]}
        if "if" in extra and not self.condition(extra["if"], here, extra.key_lines["if"],
                                                where + ".if"):
            return value
        name = extra.get("name")
        if name is not None:
            self.check_name(name, extra.key_lines["name"], where + ".name")
        if "repeat" in extra:
            rline = extra.key_lines["repeat"]
            n = self.eval(extra["repeat"], here, rline, where + ".repeat")
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_REPEAT:
                raise self.err(f"repeat={n!r}; expected a whole number from 0 to {MAX_REPEAT}",
                               rline, where + ".repeat")
            first = extra.get("first")
            if first is not None:
                fline = extra.key_lines["first"]
                if not isinstance(first, _YMap):
                    raise self.err("`first` must be a mapping of fields for the first "
                                   "repetition, e.g. first: {stride: 2}", fline, where + ".first")
                if args is not None and not isinstance(args, _YMap):
                    raise self.err(f"`first` overrides fields, but this {kind} is not given "
                                   "as a mapping of fields", fline, where + ".first")
            container = self.name(ns, name, kind, line, where)
            inner = ns.child(container)
            for i in range(n):
                rep_args = _merge(args, first) if i == 0 and first else args
                with self.within(f"{inner.prefix}{i}"):
                    self.step(line, where)
                    value = self.one(kind, rep_args, where, line, inner, str(i), value,
                                     {**scope, "i": i})
            return value
        if "first" in extra:
            raise self.err("`first` only makes sense with `repeat`", extra.key_lines["first"],
                           where + ".first")
        return self.one(kind, args, where, line, ns, name, value, scope)

    def condition(self, raw: Any, scope: Mapping[str, Any], line: int, where: str) -> bool:
        value = self.eval(raw, scope, line, where)
        if not isinstance(value, bool):
            raise self.err(f"expected a condition that is true or false, got {value!r}", line,
                           where)
        return value

    def check_name(self, name: Any, line: int, where: str) -> str:
        if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("_"):
            raise self.err(f"name {name!r} must be an identifier (letters, digits, _) not "
                           "starting with _", line, where)
        if name in RESERVED_NAMES:
            raise self.err(f"name {name!r} is reserved (a Python keyword or a torch module "
                           "attribute); choose another name", line, where)
        return name

    def name(self, ns: _Scope, name: str | None, kind: str, line: int, where: str) -> str:
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
                               f"in {inside}; choose another name", line, where)
            raise self.err(f"name {name!r} is used twice in {inside}; names of layers and "
                           "branches must be unique within their block", line, where)
        ns.used.add(name)
        return name

    def one(self, kind: str, args: Any, where: str, line: int, ns: _Scope, name: str | None,
            value: _Value, scope: Mapping[str, Any]) -> _Value:
        local = {**scope, "in": value.shape[0]}
        if kind in LAYERS:
            return self.leaf(LAYERS[kind], args, where, line, ns, name, value, local)
        if kind in self.blocks:
            return self.block(kind, args, where, line, ns, name, value, local)
        if kind in COMPOSITES:
            return getattr(self, f"c_{kind}")(args, where, line, ns, name, value, local)
        if not _NAME_RE.match(kind):
            raise self.err(f"layer kind {kind!r} is not a name; check the indentation and "
                           "that each item starts with `- `", line, where)
        known = [*LAYERS, *COMPOSITES, *self.blocks]
        close = difflib.get_close_matches(kind, known, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise self.err(f"unknown layer kind {kind!r}; {hint}known: {', '.join(sorted(known))}",
                       line, where)

    # -- leaves -----------------------------------------------------------------------------

    def leaf(self, lk: LayerKind, args: Any, where: str, line: int, ns: _Scope, name: str | None,
             value: _Value, scope: Mapping[str, Any]) -> _Value:
        if args is None:
            args = _YMap()
            args.line, args.key_lines = line, {}
        if not isinstance(args, _YMap):
            example = f"`- {lk.name}: {{{_example(lk)}}}`" if lk.params else f"`- {lk.name}`"
            raise self.err(f"{lk.name} takes a mapping of fields, e.g. {example}; got "
                           f"{_short(args)}", line, where)
        params: dict[str, Any] = {}
        for key, raw in args.items():
            kline = args.key_lines.get(key, line)
            if key not in lk.params:
                accepted = ", ".join(lk.params) or "no fields"
                raise self.err(f"unknown field {key!r} for {lk.name}; accepted: {accepted}",
                               kline, where)
            params[key] = self.coerce(raw, lk.hints[key], scope, kline, f"{where}.{key}")
        missing = [k for k in lk.required if k not in params]
        if missing:
            raise self.err(f"missing field {missing[0]!r} for {lk.name} "
                           f"(e.g. {{{_example(lk)}}})", line, where)
        try:
            built = lk.fn(value.shape, **params)
        except LayerError as exc:
            raise self.err(f"{exc} (input {_fmt(value.shape)})", line, where) from None
        self._check_shape(built.out_shape, line, where)
        path = ns.prefix + self.name(ns, name, lk.name, line, where)
        rf = value.rf + round((built.rf_kernel - 1) * value.jump)
        out = _Value(path, built.out_shape, rf, value.jump * built.rf_stride)
        self.add(LayerSpec(path, lk.name, params, (value.id,), (value.shape,), built.out_shape,
                           Loc(self.file, line, self.where(where)), rf, built))
        return out

    def add(self, layer: LayerSpec) -> None:
        if len(self.layers) >= MAX_LAYERS:
            # loc.where already names the instance
            raise SpecError(f"the spec expands to more than {MAX_LAYERS} layers; expected a "
                            "network of realistic size (check repeat counts)", self.file,
                            layer.loc.line, layer.loc.where)
        self.layers.append(layer)

    def coerce(self, raw: Any, hint: Any, scope: Mapping[str, Any], line: int, where: str) -> Any:
        if isinstance(raw, str) and raw in _literals(hint):
            return raw
        try:
            value = self.eval(raw, scope, line, where)
        except SpecError as exc:
            if not isinstance(raw, str) or not _NAME_RE.match(raw.strip()):
                raise
            raise self.err(f"expected {_describe(hint)}, got {raw!r} ({exc.reason})", line,
                           where) from None
        ok, result = _fit(value, hint)
        if not ok:
            got = repr(value) if value == raw else f"{raw!r} = {value!r}"
            raise self.err(f"expected {_describe(hint)}, got {got}", line, where)
        return result

    # -- blocks -----------------------------------------------------------------------------

    def block(self, bname: str, args: Any, where: str, line: int, ns: _Scope, name: str | None,
              value: _Value, scope: Mapping[str, Any]) -> _Value:
        if bname in self.block_stack:
            chain = " -> ".join([*self.block_stack, bname])
            raise self.err(f"block {bname!r} uses itself ({chain}); blocks may not use "
                           "themselves, directly or through other blocks", line, where)
        if len(self.block_stack) >= MAX_BLOCK_DEPTH:
            raise self.err(f"blocks nested deeper than {MAX_BLOCK_DEPTH} levels; expected at "
                           f"most {MAX_BLOCK_DEPTH}", line, where)
        body = self.blocks[bname]
        declared: _YMap = body.get("params") or _YMap()
        if args is None:
            args = _YMap()
            args.line, args.key_lines = line, {}
        example = ", ".join(f"{k}: ..." for k in declared)
        if not isinstance(args, _YMap):
            raise self.err(f"block {bname} takes a mapping of its params, e.g. `- {bname}: "
                           f"{{{example}}}`; got {_short(args)}", line, where)
        # Lexical scope: a block sees the spec's vars, its own params and `in`, not the
        # params of the block that uses it.
        inner: dict[str, Any] = {**self.vars, "in": value.shape[0]}
        for key, raw in args.items():
            kline = args.key_lines.get(key, line)
            if key not in declared:
                accepted = ", ".join(map(str, declared)) or "no params"
                raise self.err(f"unknown param {key!r} for block {bname}; accepted: {accepted}",
                               kline, where)
            inner[key] = self.eval(raw, scope, kline, f"{where}.{key}")
        for key, default in declared.items():
            if key in args:
                continue
            if default is None:
                raise self.err(f"block {bname} needs param {key!r}, e.g. `- {bname}: "
                               f"{{{example}}}`", line, where)
            inner[key] = self.eval(default, inner, declared.key_lines[key],
                                   f"blocks.{bname}.params.{key}")
        container = self.name(ns, name, bname, line, where)
        inner_ns = ns.child(container)
        self.block_stack.append(bname)
        try:
            with self.within(inner_ns.prefix.rstrip(".")):
                return self.items(body["layers"], f"blocks.{bname}.layers",
                                  body.key_lines["layers"], inner_ns, value, inner)
        finally:
            self.block_stack.pop()

    # -- composites ---------------------------------------------------------------------------

    def _mapping(self, args: Any, keys: Sequence[str], line: int, where: str) -> _YMap:
        if not isinstance(args, _YMap):
            raise self.err(f"expected a mapping with {', '.join(keys)}", line, where)
        for key in args:
            if key not in keys:
                raise self.err(f"unknown field {key!r}; accepted: {', '.join(keys)}",
                               args.key_lines[key], where)
        return args

    def c_seq(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
              value: _Value, scope: Mapping[str, Any]) -> _Value:
        container = self.name(ns, name, "seq", line, where)
        return self.items(args, where, line, ns.child(container), value, scope)

    def c_residual(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
                   value: _Value, scope: Mapping[str, Any]) -> _Value:
        if isinstance(args, _YList):
            args_map = _YMap(layers=args)
            args_map.line, args_map.key_lines = args.line, {"layers": args.line}
            args = args_map
        args = self._mapping(args, ("layers", "shortcut", "when"), line, where)
        body_ns = ns.child(self.name(ns, name, "residual", line, where)) if name else ns
        if "when" in args and not self.condition(args["when"], scope, args.key_lines["when"],
                                                 where + ".when"):
            return self.items(args.get("layers"), where + ".layers",
                              args.key_lines.get("layers", line), body_ns, value, scope)
        out = self.items(args.get("layers"), where + ".layers", args.key_lines.get("layers", line),
                         body_ns, value, scope)
        short = value
        if args.get("shortcut"):
            sname = self.name(body_ns, None if "shortcut" in body_ns.used else "shortcut",
                              "shortcut", line, where)
            short = self.items(args["shortcut"], where + ".shortcut", args.key_lines["shortcut"],
                               body_ns.child(sname), value, scope)
        return self.join_op("add", [out, short], where, line, body_ns)

    def _paths(self, args: Any, where: str, line: int) -> list[tuple[str, Any, int]]:
        if isinstance(args, _YList):
            return [(f"branch{i + 1}", p, args.item_lines[i]) for i, p in enumerate(args)]
        if isinstance(args, _YMap):
            paths = []
            for key, p in args.items():
                self.check_name(key, args.key_lines[key], where)
                paths.append((key, p, args.key_lines[key]))
            return paths
        raise self.err("expected branches: a mapping of name: [layers] or a list of lists, "
                       f"got {_short(args)}", line, where)

    def _branches(self, join: str, args: Any, where: str, line: int, ns: _Scope,
                  name: str | None, value: _Value, scope: Mapping[str, Any],
                  split: bool = False) -> _Value:
        paths = self._paths(args, where, line)
        if len(paths) < 2:
            raise self.err(f"{'split' if split else join} needs at least two branches, got "
                           f"{len(paths)}", line, where)
        base = ns.child(self.name(ns, name, join, line, where)) if name else ns
        outs = []
        chunk = value.shape[0] // len(paths)
        if split and value.shape[0] % len(paths):
            raise self.err(f"cannot split {value.shape[0]} channels into {len(paths)} equal "
                           "parts; expected a channel count divisible by the number of "
                           "branches", line, where)
        for i, (pname, body, pline) in enumerate(paths):
            pns = base.child(self.name(base, pname, "branch", pline, f"{where}.{pname}"))
            start = value
            if split:
                start = self.op("slice", pns.prefix + "slice", [value],
                                (chunk, *value.shape[1:]), where, pline,
                                {"dim": 0, "start": i * chunk, "length": chunk})
                pns.used.add("slice")
            outs.append(self.items(body, f"{where}.{pname}", pline, pns, start, scope))
        return self.join_op("concat" if split else join, outs, where, line, base)

    def c_concat(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
                 value: _Value, scope: Mapping[str, Any]) -> _Value:
        return self._branches("concat", args, where, line, ns, name, value, scope)

    def c_add(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
              value: _Value, scope: Mapping[str, Any]) -> _Value:
        return self._branches("add", args, where, line, ns, name, value, scope)

    def c_split(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
                value: _Value, scope: Mapping[str, Any]) -> _Value:
        return self._branches("concat", args, where, line, ns, name, value, scope, split=True)

    def c_scale(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
                value: _Value, scope: Mapping[str, Any]) -> _Value:
        container = self.name(ns, name, "scale", line, where)
        gate = self.items(args, where, line, ns.child(container), value, scope)
        return self.join_op("mul", [value, gate], where, line, ns)

    def c_tap(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
              value: _Value, scope: Mapping[str, Any]) -> _Value:
        if not isinstance(args, str) or not _NAME_RE.match(args):
            raise self.err(f"tap takes a name, e.g. `- tap: skip1`; got {_short(args)}", line,
                           where)
        if args in self.taps:
            raise self.err(f"tap {args!r} is defined twice; tap names must be unique in the "
                           "whole spec (a tap in a repeat or in a block used twice is defined "
                           "once per instance)", line, where)
        self.taps[args] = value
        return value

    def c_join(self, args: Any, where: str, line: int, ns: _Scope, name: str | None,
               value: _Value, scope: Mapping[str, Any]) -> _Value:
        args = self._mapping(args, ("tap", "mode", "crop"), line, where)
        if "tap" not in args:
            raise self.err("missing field 'tap' for join, e.g. {tap: skip1, mode: concat}",
                           line, where)
        tap = args["tap"]
        kline = args.key_lines
        if tap not in self.taps:
            known = ", ".join(self.taps) or "(none yet)"
            raise self.err(f"unknown tap {tap!r}; expected a tap defined above: {known}",
                           kline["tap"], where + ".tap")
        mode = args.get("mode", "concat")
        if mode not in ("concat", "add"):
            raise self.err(f"expected concat or add, got {mode!r}", kline["mode"],
                           where + ".mode")
        crop = args.get("crop", False)
        if not isinstance(crop, bool):
            raise self.err(f"expected true or false, got {crop!r}", kline["crop"],
                           where + ".crop")
        skip = self.taps[tap]
        if crop:
            if len(skip.shape) != len(value.shape):
                raise self.err(f"cannot crop tap {tap!r} ({_fmt(skip.shape)}) to "
                               f"{_fmt(value.shape)}; expected tensors of the same rank", line,
                               where)
            for dim in range(1, len(value.shape)):
                big, small = skip.shape[dim], value.shape[dim]
                if big < small:
                    raise self.err(f"cannot crop tap {tap!r} ({_fmt(skip.shape)}) to "
                                   f"{_fmt(value.shape)}; crop only shrinks, so the tap must be "
                                   "at least as large", line, where)
                if big > small:
                    shape = (*skip.shape[:dim], small, *skip.shape[dim + 1:])
                    cname = ns.prefix + self.name(ns, None, "crop", line, where)
                    skip = self.op("slice", cname, [skip], shape, where, line,
                                   {"tap": tap, "dim": dim, "start": (big - small) // 2,
                                    "length": small})
        return self.join_op(mode, [skip, value], where, line, ns, {"tap": tap})

    # -- graph ops ------------------------------------------------------------------------------

    def join_op(self, kind: str, values: list[_Value], where: str, line: int,
                ns: _Scope, params: dict[str, Any] | None = None) -> _Value:
        shapes = [v.shape for v in values]
        if kind == "add":
            out = _broadcast(shapes)
            if out is None:
                raise self.err(f"cannot add {' and '.join(map(_fmt, shapes))}; expected equal "
                               "shapes (or sizes of 1 that broadcast)", line, where)
        elif kind == "mul":
            x, gate = shapes
            if not _broadcastable(x, gate):
                ones = "x".join(["1"] * (len(x) - 1))
                raise self.err(f"cannot multiply {_fmt(x)} by a gate of {_fmt(gate)}; expected "
                               f"the gate to be {_fmt(x)} or {x[0]}x{ones}", line, where)
            out = x
        else:
            spatial = {s[1:] for s in shapes}
            if len(spatial) != 1 or len({len(s) for s in shapes}) != 1:
                raise self.err(f"cannot concat {' and '.join(map(_fmt, shapes))}; expected "
                               "equal sizes apart from channels", line, where)
            out = (sum(s[0] for s in shapes), *shapes[0][1:])
        path = ns.prefix + self.name(ns, None, kind, line, where)
        return self.op(kind, path, values, out, where, line, params or {})

    def op(self, kind: str, path: str, values: list[_Value], shape: Shape, where: str, line: int,
           params: dict[str, Any]) -> _Value:
        self._check_shape(shape, line, where)
        rf = max(v.rf for v in values)
        jump = max(v.jump for v in values)
        self.add(LayerSpec(path, kind, params, tuple(v.id for v in values),
                           tuple(v.shape for v in values), shape,
                           Loc(self.file, line, self.where(where)), rf))
        return _Value(path, shape, rf, jump)


# --------------------------------------------------------------------------- type fitting


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return isinstance(value, bool | int | float | str)


def _broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """The shape torch's broadcasting gives equal-rank ``shapes``, or None if it fails."""
    if len({len(s) for s in shapes}) != 1:
        return None
    return _shapes.broadcast(*shapes)


def _broadcastable(a: Shape, b: Shape) -> bool:
    """Whether ``b`` (of the same rank) broadcasts onto ``a`` unchanged."""
    return len(a) == len(b) and _shapes.broadcasts_to(b, a)


def _merge(args: Any, first: _YMap) -> _YMap:
    merged = _YMap()
    merged.line = getattr(args, "line", first.line)
    merged.key_lines = dict(getattr(args, "key_lines", {}))
    if isinstance(args, dict):
        merged.update(args)
    merged.update(first)
    merged.key_lines.update(first.key_lines)
    return merged


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _literals(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if _is_union(hint):
        return tuple(x for h in typing.get_args(hint) for x in _literals(h))
    return ()


def _fit(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if _is_union(hint):
        for h in typing.get_args(hint):
            ok, result = _fit(value, h)
            if ok:
                return True, result
        return False, None
    if origin is Literal:
        return (value in typing.get_args(hint)), value
    if hint is type(None):
        return value is None, None
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    if hint is str:
        return isinstance(value, str), value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list) or not value:
            return False, None
        fitted = [_fit(v, inner) for v in value]
        if all(ok for ok, _ in fitted):
            return True, [r for _, r in fitted]
        return False, None
    if hint is Any:
        return True, value
    return False, None


def _describe(hint: Any) -> str:
    if _is_union(hint):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(x) for x in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        inner = typing.get_args(hint)[0]
        plural = {int: "whole numbers", float: "numbers", bool: "booleans", str: "strings"}
        return f"a list of {plural.get(inner, _describe(inner))}"
    if hint is type(None):
        return "nothing (~)"
    names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, str(hint))


def _example(lk: LayerKind) -> str:
    parts = []
    for name in lk.required:
        parts.append(f"{name}: 3" if name != "out" else "out: 64")
    return ", ".join(parts) or ""

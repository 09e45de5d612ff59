"""JSON documents: their JSON Schemas (draft 2020-12), built from the dataclasses that write
them, checked by one small validator, and their deterministic text (``dumps``; pure Python,
no dependency).

A result's dataclass is its document's declaration: ``object_schema`` turns its fields (names,
annotations, defaults, and a field's ``metadata`` where the annotation alone does not say it)
into an ``object`` schema, so a new field is in the schema, in the document and in what
``check`` compares by being written once. ``validate`` checks a document against such a
schema and raises one located ``SchemaError`` (``layers[3].macs: expected a whole number >=
0, found -1``): the reason ``check`` gives for a report it will not read.

The validator reads the part of JSON Schema that cnncost's schemas use (``type``, ``enum``,
``const``, ``minimum``, ``minLength``, ``minItems``, ``items``, ``prefixItems``,
``properties``, ``required``, ``additionalProperties``, ``allOf``, ``anyOf``, ``if``/``then``, local
``$ref``) and refuses any other keyword, so a schema cannot quietly say more than is checked;
the test suite validates every document with the ``jsonschema`` library as well. It is
stricter in one place: an integer is a JSON number written without a fraction (``1.0`` is
not a count). Why not ``jsonschema`` itself at run time: four more packages (one compiled)
and ~0.1 s of import for ``check``, whose CI jobs should install in seconds, and its messages
would need rewriting into the located one-liners above anyway.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Field metadata keys (``dataclasses.field(metadata={...})``):
SKIP = "cnncost.skip"      # True: the field is not in the document (memory only)
FLAT = "cnncost.flat"      # a dataclass (or {key: schema}): its keys are written into this object
NODE = "cnncost.schema"    # the field's schema node, where its annotation does not say it
DRIFT = "cnncost.drift"    # False: text about the figures, not a figure (check ignores it)

# The value types of dataclass fields, as ``$defs`` of every schema built from dataclasses.
DEFS: dict[str, dict[str, Any]] = {
    "count": {"type": "integer", "minimum": 0, "title": "a whole number >= 0"},
    "optional_count": {"type": ["integer", "null"], "minimum": 0,
                       "title": "a whole number >= 0 or null"},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0},
              "title": "a list of sizes like [1, 3, 224, 224]"},
    "shapes": {"type": "array", "items": {"$ref": "#/$defs/shape"},
               "title": "a list of shapes"},
    "strings": {"type": "array", "items": {"type": "string"}, "title": "a list of strings"},
    "counts": {"type": "object", "additionalProperties": {"$ref": "#/$defs/count"},
               "title": "a mapping of names to whole numbers >= 0"},
}


def ref(name: str) -> dict[str, str]:
    """A reference to ``$defs/name``."""
    return {"$ref": f"#/$defs/{name}"}


# What a field's annotation (as written, ``from __future__ import annotations``) means.
ANNOTATIONS: dict[str, dict[str, Any]] = {
    "int": ref("count"),
    "int | None": ref("optional_count"),
    "float": {"type": "number"},
    "float | None": {"type": ["number", "null"]},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "tuple[int, ...]": ref("shape"),
    "tuple[tuple[int, ...], ...]": ref("shapes"),
    "tuple[str, ...]": ref("strings"),
    "Mapping[str, int]": ref("counts"),
}


@functools.cache
def document_fields(cls: type) -> tuple[Field[Any], ...]:
    """The dataclass fields of ``cls`` that its document holds (flattened ones included)."""
    return tuple(f for f in fields(cls) if not f.metadata.get(SKIP))


def default_of(f: Field[Any]) -> Any:
    """A field's default value (MISSING where it has none)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def drift_fields(cls: type) -> tuple[str, ...]:
    """The figures of ``cls`` that ``check`` compares: document fields that are neither text
    about them (``DRIFT: False``) nor flattened parts."""
    return tuple(f.name for f in document_fields(cls)
                 if f.metadata.get(DRIFT, True) and FLAT not in f.metadata)


def object_schema(cls: type, required: bool = True) -> dict[str, Any]:
    """The ``object`` schema of a dataclass's document: first the keys the document derives
    (the class's ``DERIVED``: key -> schema; all required), then one property per field (a
    ``FLAT`` field's dataclass adds its own, never required); fields without a default are
    required (unless not ``required``). No other key is allowed."""
    derived: Mapping[str, Any] = getattr(cls, "DERIVED", {})
    props: dict[str, Any] = dict(derived)
    needed: list[str] = list(derived) if required else []
    for f in document_fields(cls):
        if FLAT in f.metadata:  # a dataclass, or the keys (-> schema) of a mapping
            flat = f.metadata[FLAT]
            props.update(object_schema(flat, required=False)["properties"]
                         if isinstance(flat, type) else flat)
            continue
        node = f.metadata.get(NODE) or ANNOTATIONS.get(str(f.type))
        if node is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no schema for {f.type!r}; declare one "
                            f"with field(metadata={{cnncost.schema.NODE: ...}})")
        props[f.name] = node
        if required and default_of(f) is MISSING:
            needed.append(f.name)
    out: dict[str, Any] = {"type": "object"}
    if needed:
        out["required"] = needed
    out["properties"] = props
    out["additionalProperties"] = False
    return out


# --------------------------------------------------------------------------- the text


def dumps(doc: Any) -> str:
    """JSON text with one key per line and lists of numbers on one line (diff-friendly)."""
    return _dumps(doc, "") + "\n"


def _flat(value: Any) -> bool:
    """Scalars, and lists (of lists) of numbers: written on one line."""
    if isinstance(value, list):
        return all(_flat(v) and not isinstance(v, str) for v in value)
    return not isinstance(value, dict)


def _dumps(value: Any, indent: str) -> str:
    if _flat(value):
        return json.dumps(value, ensure_ascii=False)
    inner = indent + " "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    items = [inner + _dumps(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"


# --------------------------------------------------------------------------- the validator


class SchemaError(ValueError):
    """A document that its schema refuses: where, what was expected, what was found."""

    def __init__(self, where: str, expected: str, found: str) -> None:
        super().__init__(f"{where}: expected {expected}, found {found}")
        self.where, self.expected, self.found = where, expected, found


def shown(value: Any) -> str:
    """A found value as the message quotes it (at most 40 characters)."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def document_schema(kind: str, title: str, root: Mapping[str, Any],
                    defs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A whole schema: the dialect, ``urn:cnncost:KIND`` as its id, a title, the ``root``
    node's keywords and the ``$defs`` (DEFS plus ``defs``)."""
    return {"$schema": DIALECT, "$id": f"urn:cnncost:{kind}", "title": title, **root,
            "$defs": {**DEFS, **(defs or {})}}


def validate(doc: Any, schema: Mapping[str, Any]) -> None:
    """Raise SchemaError for the first place where ``doc`` breaks ``schema`` (whose local
    ``$ref``s point into its own ``$defs``)."""
    _Walk(schema).node(doc, schema, "")


def is_valid(doc: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``doc`` passes ``schema`` (validate without the message)."""
    try:
        validate(doc, schema)
    except SchemaError:
        return False
    return True


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_TYPE_TEXT = {"object": "a mapping", "array": "a list", "string": "a string",
              "integer": "a whole number", "number": "a number", "boolean": "true or false",
              "null": "null"}
_ANNOTATION_ONLY = {"$schema", "$id", "$defs", "$comment", "title", "description", "default",
                    "examples"}
_KEYWORDS = {"$ref", "type", "enum", "const", "minimum", "minLength", "minItems", "items",
             "prefixItems", "properties", "required", "additionalProperties", "allOf", "anyOf",
             "if", "then"} | _ANNOTATION_ONLY


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path or 'document'}[{key}]"
    return f"{path}.{key}" if path else key


def expected(node: Mapping[str, Any]) -> str:
    """What a schema node asks for, in words: its ``title``, else said from its keywords."""
    if "title" in node:
        return str(node["title"])
    if "const" in node:
        return shown(node["const"])
    if "enum" in node:
        names = [str(v) for v in node["enum"]]
        return " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
    kinds = node.get("type", [])
    text = " or ".join(_TYPE_TEXT[t] for t in ([kinds] if isinstance(kinds, str) else kinds))
    if "minimum" in node:
        text += f" >= {node['minimum']}"
    if node.get("minLength"):
        text = "a non-empty string"
    return text or "something else"


class _Walk:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/$defs/"):
                raise ValueError(f"$ref {ref!r}: only local refs (#/$defs/NAME) are read")
            node = self.root["$defs"][ref.removeprefix("#/$defs/")]
        return node

    def node(self, value: Any, node: Mapping[str, Any], path: str) -> None:
        node = self.resolve(node)
        unknown = set(node) - _KEYWORDS
        if unknown:
            raise ValueError(f"schema keyword {sorted(unknown)[0]!r} is not read by "
                             "cnncost.schema.validate")
        self.scalar(value, node, path)
        if "anyOf" in node and not any(self.passes(value, n) for n in node["anyOf"]):
            raise SchemaError(path or "document", " or ".join(
                expected(self.resolve(n)) for n in node["anyOf"]), shown(value))
        if isinstance(value, list):
            self.array(value, node, path)
        elif isinstance(value, dict):
            self.object(value, node, path)
        for part in node.get("allOf", ()):
            self.node(value, part, path)
        if "if" in node and "then" in node and self.passes(value, node["if"]):
            self.node(value, node["then"], path)

    def passes(self, value: Any, node: Mapping[str, Any]) -> bool:
        try:
            self.node(value, node, "")
        except SchemaError:
            return False
        return True

    def scalar(self, value: Any, node: Mapping[str, Any], path: str) -> None:
        kinds = node.get("type")
        ok = kinds is None or any(_TYPES[t](value) for t in (
            [kinds] if isinstance(kinds, str) else kinds))
        if ok and "const" in node:
            ok = value == node["const"] and type(value) is type(node["const"])
        if ok and "enum" in node:
            ok = any(value == v and type(value) is type(v) for v in node["enum"])
        if ok and "minimum" in node and _TYPES["number"](value):
            ok = value >= node["minimum"]
        if ok and "minLength" in node and isinstance(value, str):
            ok = len(value) >= node["minLength"]
        if ok and "minItems" in node and isinstance(value, list):
            ok = len(value) >= node["minItems"]
        if not ok:
            raise SchemaError(path or "document", expected(node), shown(value))

    def array(self, value: list[Any], node: Mapping[str, Any], path: str) -> None:
        first = node.get("prefixItems", ())
        for i, item in enumerate(value):
            if i < len(first):
                self.node(item, first[i], _join(path, i))
            elif "items" in node:
                self.node(item, node["items"], _join(path, i))

    def object(self, value: dict[str, Any], node: Mapping[str, Any], path: str) -> None:
        """Properties in the schema's order (a required one that is missing where it comes),
        then required keys without a property, then the keys the schema does not name."""
        props = node.get("properties", {})
        required = node.get("required", ())
        for key in [*props, *(k for k in required if k not in props)]:
            if key in value:
                if key in props:
                    self.node(value[key], props[key], _join(path, key))
            elif key in required:
                raise SchemaError(_join(path, key), "this field", "nothing")
        extra = node.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                continue
            if extra is False:
                raise SchemaError(path or "document", "only the fields " + ", ".join(props),
                                  f"{shown(key)} too")
            if isinstance(extra, Mapping):
                self.node(item, extra, _join(path, str(key)))

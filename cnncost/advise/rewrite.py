"""Rewriting a spec's YAML document: find the item a compiled layer came from, replace it.

A compiled :class:`~cnncost.spec.LayerSpec` records where it came from (``loc.where``, e.g.
``layers[0].seq[3].conv`` or ``blocks.conv_bn.layers[0].conv (in stage2.0.expand)``). All
layers with the same ``where`` (minus the instance) come from one item of the document: a
*node*. A node inside a block or a repeat has several uses; rewriting the node changes every
use, which the advice says. Rewrites work on plain copies of the document (dicts, lists,
scalars) and are written back as YAML text that the spec compiler reads again, so every
suggested number comes from compiling and counting that text (no torch here).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cnncost.spec import LayerSpec, ModelSpec, load_yaml, resolve_extends

Keys = tuple[str | int, ...]
# Kinds that follow a conv as its companions (copied between the convs of a rewrite).
NORMS = ("bn", "group_norm", "layer_norm")
ACTIVATIONS = ("relu", "relu6", "silu", "hardswish", "gelu", "leaky_relu", "tanh", "sigmoid",
               "hardsigmoid")
_TOKEN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")
_BRANCH = re.compile(r"^branch(\d+)$")
_INSTANCE = re.compile(r" \(in [^()]*\)$")
_USES_IN = re.compile(r"\bin\b")


class RewriteError(Exception):
    """A node cannot be located or rewritten (the rule then makes no suggestion)."""


@dataclass(frozen=True)
class Node:
    """One item of the document and every compiled layer it produced."""

    where: str          # loc.where without the instance suffix
    keys: Keys          # path of the item in the document
    kind: str
    item: Any           # the item itself (plain): {kind: args, name: ..., repeat: ...} or "relu"
    uses: tuple[LayerSpec, ...]
    line: int
    file: str

    @property
    def args(self) -> dict[str, Any]:
        """The item's fields (empty for a bare ``- relu``)."""
        if isinstance(self.item, dict):
            return dict(self.item.get(self.kind) or {})
        return {}

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def in_block(self) -> str | None:
        """The block the node is part of, or None."""
        m = re.match(r"^blocks\.([A-Za-z_][A-Za-z0-9_]*)\.", self.where)
        return m.group(1) if m else None

    def shared(self) -> str:
        """'' for a node used once, else a sentence saying that a rewrite changes every use."""
        n = len(self.uses)
        if n == 1:
            return ""
        paths = [u.path for u in self.uses]
        shown = ", ".join(paths[:3]) + (f", ... {paths[-1]}" if n > 3 else "")
        where = f"block {self.in_block}" if self.in_block else "a repeated item"
        return (f"this layer is in {where}, used {n} times ({shown}): rewriting it changes "
                f"all {n} uses")

    def name(self) -> str:
        """The name of the item's layer (or repeat container), given or the compiler's default."""
        if isinstance(self.item, dict) and isinstance(self.item.get("name"), str):
            return str(self.item["name"])
        parts = self.uses[0].path.split(".")
        repeated = isinstance(self.item, dict) and "repeat" in self.item
        return parts[-2] if repeated and len(parts) > 1 else parts[-1]


# --------------------------------------------------------------------------- documents


def load_doc(text: str, file: str) -> Any:
    """The spec's document as plain dicts and lists (errors are the loader's SpecErrors); a
    variant (``extends``) is merged with its base, so every compiled layer has its item."""
    return plain(resolve_extends(load_yaml(text, file), file))


def plain(value: Any) -> Any:
    """Dict/list subclasses (the line-keeping loader's) as plain dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dump(doc: Any, header: Sequence[str] = ()) -> str:
    """YAML text of a document, leaf mappings on one line; ``header`` lines become comments."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100,
                     allow_unicode=True)
    return "".join(f"# {line}\n" for line in header) + body


class _Dumper(yaml.SafeDumper):
    """No anchors or aliases for repeated items (the spec loader refuses them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def get(doc: Any, keys: Keys) -> Any:
    cur = doc
    for k in keys:
        cur = cur[k]
    return cur


def replaced(doc: Any, keys: Keys, items: Sequence[Any]) -> Any:
    """A copy of ``doc`` with the list item at ``keys`` replaced by ``items`` (one or more)."""
    new = copy.deepcopy(doc)
    parent = get(new, keys[:-1])
    index = keys[-1]
    assert isinstance(parent, list) and isinstance(index, int)
    parent[index:index + 1] = [copy.deepcopy(i) for i in items]
    return new


def with_vars(doc: Any, values: Mapping[str, Any]) -> Any:
    """A copy of ``doc`` whose ``vars`` defaults are ``values`` (the --set overrides, baked in)."""
    new = copy.deepcopy(doc)
    if values:
        new["vars"] = {**(new.get("vars") or {}), **{k: _literal(v) for k, v in values.items()}}
    return new


def _literal(value: Any) -> Any:
    """'0.5' (as --set gives it) -> 0.5; other text stays an expression."""
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


# --------------------------------------------------------------------------- nodes


def strip_instance(where: str) -> str:
    return _INSTANCE.sub("", where)


def locate(doc: Any, where: str) -> tuple[Keys, str]:
    """(keys of the item, its kind) for a compiled layer's ``where`` (see the module doc)."""
    tokens = strip_instance(where).split(".")
    cur, keys = doc, []
    item_keys: Keys | None = None
    for tok in tokens:
        m = _TOKEN.match(tok)
        if m is None:
            raise RewriteError(f"cannot read {where!r}")
        name, idxs = m.group(1), [int(i) for i in re.findall(r"\d+", m.group(2))]
        if isinstance(cur, dict) and name in cur:
            keys.append(name)
            cur = cur[name]
        elif isinstance(cur, list) and name == "layers":
            pass  # `residual: [...]` is the list form of `residual: {layers: [...]}`
        elif isinstance(cur, list) and _BRANCH.match(name):
            index = int(_BRANCH.match(name).group(1)) - 1  # type: ignore[union-attr]
            keys.append(index)
            cur = cur[index]
        elif not (isinstance(cur, str) and cur == name):
            raise RewriteError(f"cannot find {tok!r} of {where!r} in the document")
        for i in idxs:
            if not isinstance(cur, list) or i >= len(cur):
                raise RewriteError(f"cannot find {tok!r} of {where!r} in the document")
            keys.append(i)
            cur = cur[i]
            item_keys = tuple(keys)
    if item_keys is None:
        raise RewriteError(f"{where!r} names no list item")
    return item_keys, tokens[-1]


def nodes(spec: ModelSpec, doc: Any) -> dict[str, Node]:
    """Every leaf layer's node, keyed by its ``where``, in order of first use."""
    groups: dict[str, list[LayerSpec]] = {}
    for layer in spec.layers:
        if not layer.is_op:
            groups.setdefault(strip_instance(layer.loc.where), []).append(layer)
    out = {}
    for where, uses in groups.items():
        try:
            keys, kind = locate(doc, where)
        except RewriteError:
            continue
        out[where] = Node(where, keys, kind, get(doc, keys), tuple(uses), uses[0].loc.line,
                          uses[0].loc.file)
    return out


def portable(raw: Any, key: str, uses: Sequence[LayerSpec]) -> Any:
    """A field value that means the same in a new position, or None.

    ``in`` (the input channels) changes meaning when an item moves behind another one; an
    expression using it is replaced by its value when every use resolves to the same one.
    """
    if not isinstance(raw, str) or not _USES_IN.search(raw):
        return raw
    values = {repr(u.params.get(key)) for u in uses}
    if len(values) == 1:
        return uses[0].params.get(key)
    return None


def uniform(uses: Sequence[LayerSpec], key: str) -> Any:
    """The resolved value of ``key`` when every use has the same one, else None."""
    values = [u.params.get(key) for u in uses]
    return values[0] if all(v == values[0] for v in values) else None


def companions(doc: Any, node: Node) -> list[Any]:
    """The norm and/or activation items right after ``node`` in its list (a norm, an
    activation, or a norm then an activation), copied without their names: what a rewrite
    puts between the convs it makes, as the lectures' blocks do (conv -> BN -> ReLU)."""
    parent = get(doc, node.keys[:-1])
    index = node.keys[-1]
    assert isinstance(index, int)
    out: list[Any] = []
    for want in (NORMS, ACTIVATIONS):
        at = index + 1 + len(out)
        item = parent[at] if at < len(parent) else None
        kind = _kind_of(item)
        if kind is None or kind not in want:
            continue
        if isinstance(item, str):
            out.append(kind)
        elif isinstance(item, dict) and not {"repeat", "if", "first"} & item.keys():
            out.append({kind: copy.deepcopy(item[kind])})
    return out


def _kind(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    kinds = [k for k in item if k not in ("name", "repeat", "if", "first")]
    return str(kinds[0]) if len(kinds) == 1 else None


def _kind_of(item: Any) -> str | None:
    return item if isinstance(item, str) else _kind(item)


def seq_item(node: Node, layers: list[Any]) -> dict[str, Any] | None:
    """``node``'s item turned into a named ``seq`` of ``layers`` (same name, repeat and if), so
    the new layers are named ``<old path>.<name>``; None when the item has ``first``."""
    item = node.item if isinstance(node.item, dict) else {}
    if "first" in item:
        return None
    new: dict[str, Any] = {"seq": layers, "name": node.name()}
    for key in ("repeat", "if"):
        if key in item:
            new[key] = item[key]
    return new


def layer(kind: str, fields: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """A document item ``{kind: {fields}, name: name}``."""
    item: dict[str, Any] = {kind: dict(fields)}
    if name is not None:
        item["name"] = name
    return item


def unique_name(spec: ModelSpec, prefix: str, base: str) -> str:
    """A layer name not used in the namespace ``prefix`` (``''`` = top level)."""
    used = {p[len(prefix):].split(".")[0] for p in (lay.path for lay in spec.layers)
            if p.startswith(prefix)}
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}{n}"
    return name


def walk_lists(doc: Any, keys: Keys = ()) -> Iterator[tuple[Keys, list[Any]]]:
    """Every list of items in ``layers`` (recursively into seqs), with its keys."""
    items = get(doc, keys) if keys else doc.get("layers")
    if not isinstance(items, list):
        return
    base = keys or ("layers",)
    yield base, items
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("seq"), list):
            yield from walk_lists(doc, (*base, i, "seq"))

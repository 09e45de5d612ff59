"""Row names for an ONNX graph's nodes, from the name scopes exporters write.

A row is named ``MODULE.PATH.OpType``, so ``--depth`` groups rows by the module that made
them as it groups a spec's layers:

- the dynamo exporter (``torch.onnx.export(..., dynamo=True)``) keeps each node's scopes in
  its metadata (``pkg.torch.onnx.name_scopes``: ``['', 'layer1', 'layer1.0',
  'layer1.0.conv1', 'conv2d']``, the last the traced op): ``layer1.0.conv1.Conv``;
- the TorchScript-based exporter (and tf2onnx) writes them into the node's name,
  ``/layer1/layer1.0/conv1/Conv``: ``layer1.0.conv1.Conv``;
- any other node keeps its name as it is (``OpType_INDEX`` where it has none).

Scope parts that repeat their parent's path (``layer1`` then ``layer1.0``) extend it rather
than adding to it. A name met twice gets ``_2``, ``_3``, ... in graph order. The node's own
name stays in the row's ``source``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnncost.onnx.graph import Node


def module_path(parts: Sequence[str]) -> str:
    """The dotted module path of nested scope names: ``layer1, layer1.0, conv1`` ->
    ``layer1.0.conv1``; ``downsample, downsample.0`` -> ``downsample.0``."""
    path = ""
    previous = ""
    for part in parts:
        if not part:
            continue
        if previous and part.startswith(previous + "."):
            path = path[:len(path) - len(previous)] + part  # the part repeats its parent
        elif path and part.startswith(path + "."):
            path = part  # a full path (the dynamo exporter's)
        else:
            path = f"{path}.{part}" if path else part
        previous = part
    return path


def row_name(node: Node) -> str:
    """One node's row name, before duplicates are told apart."""
    if node.scopes is not None and len(node.scopes) > 1:
        path = module_path(node.scopes[:-1])  # the last is the traced op, not a module
        return f"{path}.{node.op}" if path else node.op
    name = node.name
    if "/" in name:
        parts = [p for p in name.split("/") if p]
        if parts:
            path = module_path(parts[:-1])
            return f"{path}.{parts[-1]}" if path else parts[-1]
    return name or f"{node.op}_{node.index}"


def row_names(nodes: Sequence[Node]) -> list[str]:
    """Every node's row name, unique: a name met again gets ``_2``, ``_3``, ..."""
    seen: dict[str, int] = {}
    taken: set[str] = set()
    names = []
    for node in nodes:
        base = row_name(node)
        name = base
        while name in taken:
            seen[base] = seen.get(base, 1) + 1
            name = f"{base}_{seen[base]}"
        taken.add(name)
        names.append(name)
    return names

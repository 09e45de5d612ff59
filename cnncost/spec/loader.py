"""Line-keeping YAML: a safe loader whose mappings and lists remember where they were written.

Specs are read with a SafeLoader that builds only plain mappings, lists, numbers and strings,
refuses anchors, aliases and duplicate keys, and records the line of every mapping, key and
list item (:class:`YMap`, :class:`YList`), so every later error can name its line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from cnncost.errors import SpecError
from cnncost.spec.model import MAX_FILE_BYTES


class YMap(dict[Any, Any]):
    """A YAML mapping with the line it starts on and the line of each key."""

    line = 0
    key_lines: dict[Any, int]

    @classmethod
    def empty(cls, line: int) -> YMap:
        """An empty mapping standing for absent fields, located at ``line``."""
        result = cls()
        result.line, result.key_lines = line, {}
        return result


class YList(list[Any]):
    """A YAML list with the line it starts on and the line of each item."""

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


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YMap:
    result = YMap()
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


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList(loader.construct_object(child, deep=True) for child in node.value)
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
        raise _malformed(exc, file) from None
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise SpecError(f"malformed YAML: character U+{char:04X} is not allowed in a spec",
                        file, line) from None
    except yaml.YAMLError as exc:
        raise SpecError("malformed YAML: " + " ".join(str(exc).split()), file) from None


def _malformed(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = " ".join(str(exc.problem or exc.context).split())
    if "<block" in problem or "mapping values are not allowed" in problem:
        problem += "; check the indentation"
    elif "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    return SpecError(f"malformed YAML: {problem}", file, line)

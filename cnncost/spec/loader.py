"""Line-keeping YAML: a safe loader whose mappings and lists remember where they were written.

Specs are read with a SafeLoader that builds only plain mappings, lists, numbers and strings,
refuses anchors, aliases and duplicate keys, and records the file and line of every mapping,
key and list item (:class:`YMap`, :class:`YList`), so every later error can name its line.
Where PyYAML has libyaml, the C parser reads the text (the pure-Python one takes seconds on
a spec near the size limit); what is built from it is the same.

A spec may vary another one: ``extends: base.yaml`` (a path relative to the spec's folder)
reads the base document first, then the variant's top-level keys replace the base's, except
``vars`` (the variant sets new defaults for the base's variables, which keep their order)
and ``blocks`` (merged by name). Every node keeps the file it was written in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from cnncost.errors import SpecError
from cnncost.io import ReadError, not_a_file, read_bytes, read_text
from cnncost.spec.model import MAX_EXTENDS, MAX_FILE_BYTES, MAX_YAML_DEPTH


class YMap(dict[Any, Any]):
    """A YAML mapping with its file, the line it starts on and the line of each key.

    A mapping merged from a variant and its base (``extends``) also knows the file of each
    key (:meth:`file_of`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file = ""
        self.line = 0
        self.key_lines: dict[Any, int] = {}
        self.key_files: dict[Any, str] = {}

    @classmethod
    def empty(cls, line: int) -> YMap:
        """An empty mapping standing for absent fields, located at ``line``."""
        result = cls()
        result.line = line
        return result

    def file_of(self, key: Any) -> str:
        """The file ``key`` was written in."""
        return self.key_files.get(key, self.file)


class YList(list[Any]):
    """A YAML list with its file, the line it starts on and the line of each item."""

    file = ""
    line = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers files and lines, refuses aliases and duplicate keys."""

    file = ""
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            return self._compose(parent, index)
        finally:
            self.depth -= 1

    def _compose(self, parent: Any, index: Any) -> Any:
        if self.depth > MAX_YAML_DEPTH:
            raise _LoadError(f"YAML nested more than {MAX_YAML_DEPTH} levels deep",
                             self.peek_event().start_mark.line + 1)
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
    result.file = loader.file
    result.line = node.start_mark.line + 1
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
    result.file = loader.file
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


# An integer literal longer than this is refused before int() sees it (Python refuses more
# than 4300 digits with a ValueError, and a big one is absurd in a spec anyway).
MAX_INT_CHARS = 64


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    if len(str(node.value)) > MAX_INT_CHARS:
        raise _LoadError(f"a number written with {len(str(node.value))} characters is absurdly "
                         "large; expected a size or count of at most 16 digits",
                         node.start_mark.line + 1)
    value: int = loader.construct_yaml_int(node)
    return value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_CBase: Any = getattr(yaml, "CSafeLoader", None)  # libyaml's parser, when PyYAML has it
_FAST: type | None = None
if _CBase is not None:

    class _CLoader(_CBase):
        """The same constructors on libyaml's parser (several times faster)."""

        file = ""

    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                             _construct_sequence)
    _CLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _FAST = _CLoader

# libyaml composes nodes in C: it cannot refuse anchors as they come (the pure-Python
# loader does, with its own messages), and nesting deep enough overflows the C stack. So it
# reads only text with no possible anchor or alias, no character the pure reader refuses,
# no tab or unicode line break (read differently), and a nesting depth bounded well below
# that (every level needs a bracket or a column).
_ANCHOR_OR_ALIAS = re.compile(r"(?:^|[\s\[\]{},:-])[&*][^\s\[\]{},]")
_MAX_FAST_DEPTH = 2000
# Where the two parsers disagree: tabs (libyaml takes "a:<TAB>1"), unicode line breaks, a
# BOM, "?" (complex keys, and in flow collections), a tag ("!" opening a node: an empty one
# is '' there, None here; "!=" in an expression is no tag) and a comment glued to a block
# scalar header ("|#": refused here).
_LIBYAML_DIFFERS = re.compile("[\t\x85\u2028\u2029\ufeff?]|(?:^|[\\s\\[\\]{},:-])!(?!=)"
                              "|[|>][-+0-9]*#")


def _fast_ok(text: str) -> bool:
    if _FAST is None or _ANCHOR_OR_ALIAS.search(text):
        return False
    if yaml.reader.Reader.NON_PRINTABLE.search(text) or _LIBYAML_DIFFERS.search(text):
        return False
    widest = max(map(len, text.splitlines()), default=0)
    return text.count("[") + text.count("{") + widest < _MAX_FAST_DEPTH


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text safely, keeping line numbers; errors become SpecError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SpecError(f"spec is larger than {MAX_FILE_BYTES // 1024} KiB", file)
    if _fast_ok(text):
        fast = _FAST(text)  # type: ignore[misc]
        fast.file = file
        try:
            return fast.get_single_data()
        except (yaml.YAMLError, _LoadError, RecursionError):
            pass  # every error is reported as the pure-Python loader words it
        finally:
            fast.dispose()
    try:
        loader = _Loader(text)  # its reader checks the characters here
    except yaml.reader.ReaderError as exc:
        raise _unreadable(exc, text, file) from None
    loader.file = file
    try:
        return loader.get_single_data()
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
        raise _unreadable(exc, text, file) from None
    except yaml.YAMLError as exc:
        raise SpecError("malformed YAML: " + " ".join(str(exc).split()), file) from None
    finally:
        loader.dispose()


def _unreadable(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    line = text[:exc.position].count("\n") + 1
    char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
    return SpecError(f"malformed YAML: character U+{char:04X} is not allowed in a spec", file,
                     line)


def _malformed(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = " ".join(str(exc.problem or exc.context).split())
    if "<block" in problem or "mapping values are not allowed" in problem:
        problem += "; check the indentation"
    elif "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    return SpecError(f"malformed YAML: {problem}", file, line)


# --------------------------------------------------------------------------- extends


def read_yaml(path: str | Path) -> Any:
    """Read and parse one spec file (its ``extends`` not resolved)."""
    try:  # bounded: a FIFO, /dev/zero or a 12 GiB sparse file is refused before reading it
        text = read_text(path, MAX_FILE_BYTES, "spec")
    except ReadError as exc:
        raise SpecError(exc.reason, str(path)) from None
    return load_yaml(text, str(path))


def load_document(path: str | Path) -> Any:
    """Read a spec file into one document, with the specs it extends merged in."""
    return resolve_extends(read_yaml(path), str(path))


def spec_files(path: str | Path) -> list[str]:
    """The spec file and, in order, every file it extends (what its meaning depends on)."""
    files = [str(path)]
    while len(files) <= MAX_EXTENDS + 1:
        try:
            text = read_bytes(files[-1], MAX_FILE_BYTES)
        except ReadError:
            break
        if not re.search(rb"^extends\s*:", text, re.MULTILINE):  # no need to parse YAML
            break
        doc = read_yaml(files[-1])
        if not isinstance(doc, YMap) or not isinstance(doc.get("extends"), str):
            break
        files.append(_base_file(files[-1], doc["extends"]))
    return files


def resolve_extends(doc: Any, file: str, chain: tuple[str, ...] = ()) -> Any:
    """``doc`` (read from ``file``) merged over the spec it extends, if it extends one."""
    if not isinstance(doc, YMap) or "extends" not in doc:
        return doc
    ref, line = doc["extends"], doc.key_lines["extends"]
    if not isinstance(ref, str) or not ref.endswith((".yaml", ".yml")):
        raise SpecError(f"expected the spec file this one varies, e.g. `extends: resnet50.yaml` "
                        f"(relative to this file's folder); got {ref!r}", file, line, "extends")
    base_file = _base_file(file, ref)
    chain = (*chain, os.path.realpath(file))
    if os.path.realpath(base_file) in chain:
        raise SpecError(f"{ref} extends, directly or not, the spec that extends it; expected "
                        "a chain of variants that ends in a spec without `extends`", file, line,
                        "extends")
    if len(chain) > MAX_EXTENDS:
        raise SpecError(f"more than {MAX_EXTENDS} specs extending one another; expected a "
                        "short chain of variants", file, line, "extends")
    problem = not_a_file(base_file)  # a FIFO, a device or a folder is no spec to read
    if problem is not None:
        why = f"no such file {base_file!r}" if problem == "no such file" else \
            f"{base_file!r} {problem}"
        raise SpecError(f"{why}; expected a spec file relative to this file's folder", file,
                        line, "extends")
    base = resolve_extends(read_yaml(base_file), base_file, chain)
    if not isinstance(base, YMap):
        raise SpecError("a spec is a mapping with `input` and `layers`", base_file, 1)
    return _merge_docs(base, doc, ref)


def _base_file(file: str, ref: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(file), ref))


def _put(out: YMap, key: Any, value: Any, src: YMap) -> None:
    out[key] = value
    out.key_lines[key] = src.key_lines[key]
    out.key_files[key] = src.file_of(key)


def _merge_docs(base: YMap, variant: YMap, ref: str) -> YMap:
    merged = YMap()
    merged.file, merged.line = variant.file, variant.line
    for key, value in base.items():
        _put(merged, key, value, base)
    for key, value in variant.items():
        if key == "extends":
            continue
        if key in ("vars", "blocks") and isinstance(value, YMap) and isinstance(base.get(key),
                                                                                YMap):
            value = _merge_map(base[key], value, key, ref)
        _put(merged, key, value, variant)
    return merged


def _merge_map(base: YMap, over: YMap, what: str, ref: str) -> YMap:
    """The base's vars (or blocks) with the variant's values; new blocks come last."""
    out = YMap()
    out.file, out.line = over.file, over.line
    for key, value in base.items():
        _put(out, key, value, base)
    for key, value in over.items():
        if what == "vars" and key not in base:
            known = ", ".join(map(str, base)) or "(none)"
            raise SpecError(f"{ref} has no variable {key!r}; known: {known} (a variant sets "
                            "new defaults for its base's vars)", over.file, over.key_lines[key],
                            f"vars.{key}")
        _put(out, key, value, over)
    return out

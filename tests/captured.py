"""Every JSON document cnncost writes while the suite runs, checked against its kind's JSON
Schema with the jsonschema library (the registry is cnncost.documents).

conftest.py routes what the CLI prints (typer's CliRunner) and every file cnncost writes
(cnncost.io.write_atomic, the one writer) through ``note``; after each test, ``problems``
says what is wrong with the documents among them. A text that is not a JSON object with a
``"schema": "cnncost...."`` key is not a document and is passed over.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from cnncost.documents import DOCUMENTS, kind_of

SINK: list[tuple[str, str]] = []  # (where it went, the text)
SEEN: set[str] = set()  # kinds validated in this session


def note(where: str, data: Any) -> None:
    """Keep a text cnncost wrote when it may be a document."""
    if isinstance(data, bytes):
        return
    if isinstance(data, str) and data.lstrip().startswith("{"):
        SINK.append((where, data))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(DOCUMENTS[name].schema())


def document_problems(doc: Any, where: str) -> list[str]:
    """What is wrong with a cnncost document (nothing for JSON that is not one)."""
    name = doc.get("schema") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not name.startswith("cnncost."):
        return []
    kind = kind_of(doc)
    if kind is None:
        return [f"{where}: {name!r} is not a registered document kind (cnncost.documents)"]
    SEEN.add(kind.name)
    errors = sorted(validator(kind.name).iter_errors(doc),
                    key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{where}: {name}: {'/'.join(map(str, e.absolute_path)) or '(document)'}: "
            f"{e.message[:300]}" for e in errors[:3]]


def problems() -> list[str]:
    """What is wrong with the documents noted since the last call (which forgets them)."""
    found = []
    for where, text in SINK:
        try:
            doc = json.loads(text)
        except ValueError:
            continue  # not JSON (a table that starts with a brace, say)
        found.extend(document_problems(doc, where))
    SINK.clear()
    return found
